//! Recording and fault injection, shared by every simulator.
//!
//! Each simulator owns one [`Wiretap`], and its middleware sees every
//! request first: it buffers the body, gives the call its ids, lets an
//! injected [`Fault`] answer instead of the simulator, renders error answers
//! in the simulator's own wire dialect and records what the client got.
//!
//! A fault that answers in place of the simulator means the handler never
//! runs, so a faulted write has no effect. [`FaultKind::AfterEffect`] and
//! [`FaultKind::Slow`] are the deliberate exceptions.
//!
//! Recorded bodies of form posts (the token endpoints) have their secrets
//! replaced, and no header is recorded, so a test that prints its calls
//! never prints a credential.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::connection::ConnectionHandle;

/// Bodies larger than this are cut when buffered; no simulated API takes
/// anything near it.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What an injected fault does to the calls it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answers this status with an error body in the simulator's dialect
    /// (`code` is the Graph/Connector error code or the ServiceNow message)
    /// and, when given, a `Retry-After` header in seconds.
    Status {
        status: u16,
        retry_after: Option<u64>,
        code: String,
    },
    /// Answers 200 with a JSON body cut in the middle.
    MalformedJson,
    /// Holds the answer this long, then answers 504 as a gateway would.
    /// Meant for client timeouts; the call has no effect.
    Delay(Duration),
    /// Holds the answer this long, then serves the call normally.
    Slow(Duration),
    /// Closes the connection with a TCP reset: no HTTP answer at all.
    Reset,
    /// Serves the call (so a write takes effect), then throws the real
    /// answer away and answers this status instead: the case an idempotent
    /// client must survive.
    AfterEffect { status: u16 },
    /// Serves the call (so a write takes effect) and holds its answer this
    /// long before sending it: the window in which a process can die
    /// between an outside write and its journal entry.
    AnswerLate(Duration),
}

impl FaultKind {
    /// An error answer with the usual code for its status.
    pub fn status(status: u16) -> Self {
        FaultKind::Status {
            status,
            retry_after: None,
            code: default_code(status).to_string(),
        }
    }

    /// A 429 asking the client to wait `seconds`.
    pub fn throttled(seconds: u64) -> Self {
        FaultKind::Status {
            status: 429,
            retry_after: Some(seconds),
            code: default_code(429).to_string(),
        }
    }

    fn label(&self) -> String {
        match self {
            FaultKind::Status { status, .. } => format!("status {status}"),
            FaultKind::MalformedJson => "malformed json".into(),
            FaultKind::Delay(d) => format!("delay {d:?}"),
            FaultKind::Slow(d) => format!("slow {d:?}"),
            FaultKind::Reset => "reset".into(),
            FaultKind::AfterEffect { status } => {
                format!("status {status} after effect")
            }
            FaultKind::AnswerLate(d) => format!("answer late {d:?}"),
        }
    }
}

/// A fault to inject into the next `times` calls that match.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Only calls with this method match; `None` matches any.
    pub method: Option<Method>,
    /// Only calls whose decoded path and query contain this match.
    pub path_contains: String,
    /// How many calls the fault answers before it is used up.
    pub times: u32,
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next call of any kind; narrow it with [`Fault::on`].
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            method: None,
            path_contains: String::new(),
            times: 1,
            kind,
        }
    }

    /// Restricts the fault to one method (`"PATCH"`, ...) and path part.
    /// An empty or unknown method matches every method.
    pub fn on(mut self, method: &str, path_contains: &str) -> Self {
        self.method = Method::from_bytes(method.to_uppercase().as_bytes()).ok();
        self.path_contains = path_contains.to_string();
        self
    }

    /// Restricts the fault to calls whose path and query contain `part`.
    pub fn path(mut self, part: &str) -> Self {
        self.path_contains = part.to_string();
        self
    }

    /// Lets the fault answer `times` calls instead of one.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, method: &Method, target: &str) -> bool {
        let method_ok = self.method.as_ref().map_or(true, |m| m == method);
        method_ok && self.times > 0 && target.contains(&self.path_contains)
    }
}

/// One call a simulator received, as the test sees it afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub method: Method,
    /// The path, percent-decoded, with its simulator prefix
    /// (`/graph/v1.0/users/...`).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The body: JSON as sent, a form as an object with its secrets
    /// replaced, other text as a string, `None` when empty.
    pub body: Option<Value>,
    /// The status the client got; `None` when the connection was reset.
    pub status: Option<u16>,
    /// Which injected fault answered, if one did.
    pub fault: Option<String>,
    /// The id this call was given (Graph's `request-id` header).
    pub request_id: String,
    /// The `client-request-id` the client sent, if it sent one.
    pub client_request_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl RecordedCall {
    /// The query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.query.as_deref(), name)
    }
}

/// The wire dialect in which a simulator writes its error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Login,
    Graph,
    ServiceNow,
    Connector,
}

/// An error answer, written in the dialect of the simulator it leaves.
///
/// Handlers return it without knowing the call's ids; the wiretap renders
/// it on the way out, where it knows them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimError {
    pub status: StatusCode,
    /// Graph/Connector `code`, Entra `error`; unused by ServiceNow.
    pub code: String,
    /// The human message (Entra `error_description`).
    pub message: String,
    /// ServiceNow's `detail`.
    pub detail: Option<String>,
    pub retry_after: Option<u64>,
}

impl SimError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        SimError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.to_string(),
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The ids of one call, available to handlers as an extension.
#[derive(Debug, Clone)]
pub(crate) struct CallIds {
    pub request_id: String,
    /// What the caller sent, if anything; recorded as it came.
    pub client_request_id: Option<String>,
    /// What the answer echoes: the caller's id, or one made up once for it.
    echoed: String,
}

impl CallIds {
    fn for_request(headers: &HeaderMap) -> Self {
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let echoed = client_request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        CallIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id,
            echoed,
        }
    }

    /// The client's id echoed back, or one made up for it, as Graph does.
    fn echoed_client_id(&self) -> String {
        self.echoed.clone()
    }
}

/// The calls a simulator received and the faults waiting for the next ones.
#[derive(Debug)]
pub(crate) struct Wiretap {
    dialect: Dialect,
    // std mutexes: they are held for a push or a scan, never across an await.
    calls: Mutex<Vec<RecordedCall>>,
    faults: Mutex<Vec<Fault>>,
}

impl Wiretap {
    pub fn new(dialect: Dialect) -> Arc<Self> {
        Arc::new(Wiretap {
            dialect,
            calls: Mutex::default(),
            faults: Mutex::default(),
        })
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().expect("call log").clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().expect("call log").clear();
    }

    pub fn inject(&self, fault: Fault) {
        self.faults.lock().expect("fault list").push(fault);
    }

    pub fn clear_faults(&self) {
        self.faults.lock().expect("fault list").clear();
    }

    /// How many faulted answers are still to be given.
    pub fn pending_faults(&self) -> u32 {
        let faults = self.faults.lock().expect("fault list");
        faults.iter().map(|f| f.times).sum()
    }

    /// Uses up one answer of the first fault that matches, oldest first.
    fn take_fault(&self, method: &Method, target: &str) -> Option<FaultKind> {
        let mut faults = self.faults.lock().expect("fault list");
        let index = faults.iter().position(|f| f.matches(method, target))?;
        faults[index].times -= 1;
        let kind = faults[index].kind.clone();
        if faults[index].times == 0 {
            faults.remove(index);
        }
        Some(kind)
    }

    fn record(&self, call: RecordedCall) {
        self.calls.lock().expect("call log").push(call);
    }
}

/// The middleware every simulator router is wrapped in.
pub(crate) async fn observe(
    State(tap): State<Arc<Wiretap>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let ids = CallIds::for_request(&parts.headers);
    parts.extensions.insert(ids.clone());

    // The call as it arrived, before anything can answer it.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let path = percent_decode(uri.path());
    let target = match uri.query() {
        Some(query) => format!("{path}?{}", percent_decode(query)),
        None => path.clone(),
    };
    let mut call = RecordedCall {
        method: parts.method.clone(),
        path,
        query: uri.query().map(str::to_string),
        body: recorded_body(&parts.headers, &bytes),
        status: None,
        fault: None,
        request_id: ids.request_id.clone(),
        client_request_id: ids.client_request_id.clone(),
        at: Utc::now(),
    };

    // A matching fault answers instead of the simulator.
    let fault = tap.take_fault(&parts.method, &target);
    call.fault = fault.as_ref().map(FaultKind::label);
    let request = Request::from_parts(parts, Body::from(bytes));
    let answer = match fault {
        None => Some(next.run(request).await),
        // Recorded as soon as the call took effect, so that a test sees it
        // even when the caller dies while the answer is held back.
        Some(FaultKind::AnswerLate(wait)) => {
            let served = finish(tap.dialect, next.run(request).await, &ids);
            call.status = Some(served.status().as_u16());
            tap.record(call);
            tokio::time::sleep(wait).await;
            return served;
        }
        Some(kind) => play(tap.dialect, kind, request, next).await,
    };

    // What the client gets, in the simulator's dialect.
    let response = answer.map(|response| finish(tap.dialect, response, &ids));
    call.status = response.as_ref().map(|r| r.status().as_u16());
    tap.record(call);
    response.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Plays a fault; `None` means the connection was reset and the response
/// returned by the middleware will never reach the client.
async fn play(dialect: Dialect, kind: FaultKind, request: Request, next: Next) -> Option<Response> {
    match kind {
        FaultKind::Status {
            status,
            retry_after,
            code,
        } => {
            let mut error = SimError::new(status, &code, default_message(status));
            error.retry_after = retry_after;
            Some(error.into_response())
        }
        FaultKind::MalformedJson => Some(malformed(dialect)),
        FaultKind::Delay(wait) => {
            tokio::time::sleep(wait).await;
            Some(SimError::new(504, "GatewayTimeout", default_message(504)).into_response())
        }
        FaultKind::Slow(wait) => {
            tokio::time::sleep(wait).await;
            Some(next.run(request).await)
        }
        FaultKind::Reset => reset(&request),
        // Played by `observe`, which records the call before holding it.
        FaultKind::AnswerLate(_) => Some(next.run(request).await),
        FaultKind::AfterEffect { status } => {
            let _served = next.run(request).await;
            Some(
                SimError::new(status, default_code(status), default_message(status))
                    .into_response(),
            )
        }
    }
}

fn reset(request: &Request) -> Option<Response> {
    match request.extensions().get::<ConnectInfo<ConnectionHandle>>() {
        Some(ConnectInfo(connection)) => {
            connection.reset();
            None
        }
        // Outside the sandbox listener there is no socket to cut; a bare
        // 502 is the closest an HTTP answer can come.
        None => Some(StatusCode::BAD_GATEWAY.into_response()),
    }
}

fn malformed(dialect: Dialect) -> Response {
    let cut = match dialect {
        Dialect::Graph => {
            r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users/$entity","id":"c0d0a000-00"#
        }
        Dialect::ServiceNow => r#"{"result":[{"sys_id":"c0d0a0000"#,
        Dialect::Connector => r#"{"id":"19:"#,
        Dialect::Login => r#"{"token_type":"Bearer","expires_in":35"#,
    };
    ([(header::CONTENT_TYPE, "application/json")], cut).into_response()
}

/// Renders a pending [`SimError`] and adds the dialect's headers.
fn finish(dialect: Dialect, mut response: Response, ids: &CallIds) -> Response {
    if let Some(error) = response.extensions_mut().remove::<SimError>() {
        response = render_error(dialect, &error, ids);
    }
    let failed = !response.status().is_success();
    let headers = response.headers_mut();
    match dialect {
        Dialect::Graph => {
            insert(headers, "request-id", &ids.request_id);
            insert(headers, "client-request-id", &ids.echoed_client_id());
        }
        Dialect::Login => {
            insert(headers, "x-ms-request-id", &ids.request_id);
        }
        Dialect::Connector if failed => {
            insert(headers, "x-correlating-operationid", &ids.request_id);
        }
        Dialect::Connector | Dialect::ServiceNow => {}
    }
    response
}

fn render_error(dialect: Dialect, error: &SimError, ids: &CallIds) -> Response {
    let body = match dialect {
        Dialect::Graph => graph_error_body(error, ids),
        Dialect::ServiceNow => json!({
            "error": { "message": error.message, "detail": error.detail },
            "status": "failure",
        }),
        Dialect::Connector => json!({
            "error": { "code": error.code, "message": error.message },
        }),
        Dialect::Login => entra_error_body(error, ids),
    };
    let mut response = (error.status, axum::Json(body)).into_response();
    if let Some(seconds) = error.retry_after {
        insert(response.headers_mut(), "retry-after", &seconds.to_string());
    }
    response
}

fn graph_error_body(error: &SimError, ids: &CallIds) -> Value {
    json!({
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ids.request_id,
                "client-request-id": ids.echoed_client_id(),
            }
        }
    })
}

fn entra_error_body(error: &SimError, ids: &CallIds) -> Value {
    let aadsts: Vec<u64> = error
        .message
        .strip_prefix("AADSTS")
        .and_then(|rest| rest.split(':').next())
        .and_then(|code| code.parse().ok())
        .into_iter()
        .collect();
    json!({
        "error": error.code,
        "error_description": error.message,
        "error_codes": aadsts,
        "timestamp": Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": ids.request_id,
        "correlation_id": ids.echoed_client_id(),
    })
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The error code a service would usually send with a status.
pub(crate) fn default_code(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "InvalidAuthenticationToken",
        403 => "Authorization_RequestDenied",
        404 => "Request_ResourceNotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "UnknownError",
    }
}

fn default_message(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown error");
    format!("{reason} (injected by the sandbox)")
}

fn recorded_body(headers: &HeaderMap, bytes: &Bytes) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if let Ok(json) = serde_json::from_slice(bytes) {
        return Some(json);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return Some(redacted_form(bytes));
    }
    Some(Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn redacted_form(bytes: &[u8]) -> Value {
    let mut fields = Map::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        let secret = matches!(key.as_ref(), "client_secret" | "password");
        let value = if secret { "[redacted]".into() } else { value };
        fields.insert(key.into_owned(), Value::String(value.into_owned()));
    }
    Value::Object(fields)
}

/// A query parameter, decoded the way forms are.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Decodes `%XX` escapes; anything malformed is kept as it was.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_used_up_after_its_times() {
        let tap = Wiretap::new(Dialect::Graph);
        tap.inject(
            Fault::new(FaultKind::status(503))
                .on("patch", "/users/")
                .times(2),
        );
        let patch = Method::PATCH;
        assert!(tap.take_fault(&Method::GET, "/users/x").is_none());
        assert!(tap.take_fault(&patch, "/users/x").is_some());
        assert_eq!(tap.pending_faults(), 1);
        assert!(tap.take_fault(&patch, "/users/x").is_some());
        assert!(tap.take_fault(&patch, "/users/x").is_none());
    }

    #[test]
    fn form_secrets_are_not_recorded() {
        let body = Bytes::from_static(b"client_id=a&client_secret=s3cret");
        let mut headers = HeaderMap::new();
        let form = "application/x-www-form-urlencoded";
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(form));
        let recorded = recorded_body(&headers, &body).unwrap();
        assert_eq!(recorded["client_id"], "a");
        assert_eq!(recorded["client_secret"], "[redacted]");
    }

    #[test]
    fn percent_escapes_are_decoded_and_broken_ones_kept() {
        assert_eq!(
            percent_decode("19%3Aab%40thread;messageid%3D1"),
            "19:ab@thread;messageid=1"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
