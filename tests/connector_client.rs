//! The Bot Connector client against a local fake connector and token
//! endpoint: paths and bodies, the token cache, retries and the limits the
//! client keeps to.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use cordon::botframework::throttle::{ThreadLimits, Window};
use cordon::botframework::{
    Activity, ConnectorClient, ConnectorError, ConnectorSettings, ThreadRef,
};
use cordon::retry::RetryPolicy;
use serde_json::{json, Value};

const CHANNEL: &str = "19:abc@thread.tacv2";
const TENANT: &str = "6a1d2f4e-8b0c-4f7e-9a3b-1c2d3e4f5a6b";
const ENCODED_CHANNEL: &str = "19%3Aabc%40thread.tacv2";

/// One request the fake connector received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    authorization: String,
    body: Value,
}

/// A canned answer: status, `Retry-After`, body.
type Scripted = (u16, Option<&'static str>, Value);

#[derive(Default)]
struct Fake {
    token_requests: AtomicUsize,
    token_forms: Mutex<Vec<HashMap<String, String>>>,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Scripted>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn sends(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    fn tokens(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    fn answer_next(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.script.lock().unwrap().extend(answers);
    }
}

async fn token(
    State(fake): State<Arc<Fake>>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let n = fake.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    fake.token_forms.lock().unwrap().push(form);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": 3600,
        "ext_expires_in": 3600,
        "access_token": format!("token-{n}"),
    }))
}

async fn connector(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let received = Received {
        method,
        path: uri.path().to_owned(),
        authorization,
        body,
    };
    let n = {
        let mut all = fake.received.lock().unwrap();
        all.push(received.clone());
        all.len()
    };
    if let Some((status, retry_after, body)) = fake.script.lock().unwrap().pop_front() {
        return scripted(status, retry_after, body);
    }
    success(&received, n)
}

fn scripted(status: u16, retry_after: Option<&str>, body: Value) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-correlating-operationid", "op-42".parse().unwrap());
    if let Some(seconds) = retry_after {
        headers.insert("retry-after", seconds.parse().unwrap());
    }
    response
}

fn success(received: &Received, n: usize) -> Response {
    if received.path.ends_with("/v3/conversations") {
        let channel = received.body["channelData"]["channel"]["id"]
            .as_str()
            .unwrap();
        let id = format!("{channel};messageid=root-{n}");
        return (
            StatusCode::CREATED,
            Json(json!({ "id": id, "activityId": format!("root-{n}") })),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        Json(json!({ "id": format!("activity-{n}") })),
    )
        .into_response()
}

struct Fixture {
    fake: Arc<Fake>,
    base: String,
}

impl Fixture {
    async fn start() -> Self {
        let fake = Arc::new(Fake::default());
        let app = Router::new()
            .route("/token", post(token))
            .fallback(connector)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { fake, base }
    }

    fn service_url(&self) -> String {
        format!("{}/teams/", self.base)
    }

    fn client_with(&self, retry: RetryPolicy) -> ConnectorClient {
        let settings = ConnectorSettings {
            token_url: format!("{}/token", self.base),
            app_id: "bot-app".into(),
            app_password: "bot-password".to_owned().into(),
            retry,
            timeout: Duration::from_secs(10),
        };
        ConnectorClient::new(settings, reqwest::Client::new())
    }

    fn client(&self) -> ConnectorClient {
        self.client_with(RetryPolicy::fast())
    }
}

fn thread() -> ThreadRef {
    ThreadRef::new(CHANNEL, "1700000000000")
}

fn thread_path() -> String {
    format!("/teams/v3/conversations/{ENCODED_CHANNEL}%3Bmessageid%3D1700000000000/activities")
}

/// Moves tokio's clock forward without waiting for it.
async fn skip_ahead(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

fn error_body(code: &str) -> Value {
    json!({ "error": { "code": code, "message": "refused by the fake" } })
}

// --- Tokens ---------------------------------------------------------------

#[tokio::test]
async fn one_token_serves_many_sends() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    for _ in 0..5 {
        client
            .send_to_conversation(&fixture.service_url(), "a:1", &Activity::message("hi"))
            .await
            .unwrap();
    }
    assert_eq!(fixture.fake.tokens(), 1);
    let form = fixture.fake.token_forms.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "bot-app");
    assert_eq!(form["client_secret"], "bot-password");
    assert_eq!(form["scope"], "https://api.botframework.com/.default");
    assert!(fixture
        .fake
        .received()
        .iter()
        .all(|r| r.authorization == "Bearer token-1"));
}

#[tokio::test]
async fn the_token_is_renewed_once_five_minutes_before_it_expires() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let service_url = fixture.service_url();
    let hello = Activity::message("hi");
    let send = || client.send_to_conversation(&service_url, "a:1", &hello);
    send().await.unwrap();

    skip_ahead(Duration::from_secs(3600 - 5 * 60)).await;
    send().await.unwrap();
    send().await.unwrap();

    assert_eq!(fixture.fake.tokens(), 2);
    let auths: Vec<_> = fixture
        .fake
        .received()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        auths,
        ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    );
}

#[tokio::test]
async fn concurrent_sends_share_one_token_request() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..10 {
        let (client, url) = (client.clone(), fixture.service_url());
        sends.spawn(async move {
            let id = format!("a:{n}");
            client
                .send_to_conversation(&url, &id, &Activity::message("hi"))
                .await
        });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    assert_eq!(fixture.fake.tokens(), 1);
}

// --- Paths and bodies -----------------------------------------------------

#[tokio::test]
async fn a_channel_thread_is_created_with_the_teams_parameters() {
    let fixture = Fixture::start().await;
    let activity = Activity::message("Containment requested");
    let thread = fixture
        .client()
        .create_channel_thread(&fixture.service_url(), CHANNEL, TENANT, &activity)
        .await
        .unwrap();

    assert_eq!(thread, ThreadRef::new(CHANNEL, "root-1"));
    assert_eq!(
        thread.conversation_id,
        format!("{CHANNEL};messageid=root-1")
    );
    let request = &fixture.fake.received()[0];
    assert_eq!(
        (&request.method, request.path.as_str()),
        (&Method::POST, "/teams/v3/conversations")
    );
    assert_eq!(request.body["isGroup"], true);
    assert_eq!(request.body["channelData"]["channel"]["id"], CHANNEL);
    assert_eq!(request.body["channelData"]["tenant"]["id"], TENANT);
    assert_eq!(request.body["tenantId"], TENANT);
    assert_eq!(request.body["activity"]["text"], "Containment requested");
}

#[tokio::test]
async fn a_threaded_reply_is_posted_to_the_encoded_thread_conversation() {
    let fixture = Fixture::start().await;
    let id = fixture
        .client()
        .reply_in_thread(
            &fixture.service_url(),
            &thread(),
            &Activity::message("step 1 done"),
        )
        .await
        .unwrap();

    assert_eq!(id.as_deref(), Some("activity-1"));
    let request = &fixture.fake.received()[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, thread_path());
    assert_eq!(request.body["text"], "step 1 done");
}

#[tokio::test]
async fn a_service_url_without_trailing_slash_reaches_the_same_path() {
    let fixture = Fixture::start().await;
    let service_url = format!("{}/teams", fixture.base);
    fixture
        .client()
        .reply_in_thread(&service_url, &thread(), &Activity::message("hi"))
        .await
        .unwrap();
    assert_eq!(fixture.fake.received()[0].path, thread_path());
}

#[tokio::test]
async fn an_activity_is_updated_with_put_on_its_encoded_path() {
    let fixture = Fixture::start().await;
    let card = Activity::card(json!({ "type": "AdaptiveCard", "version": "1.5" }));
    fixture
        .client()
        .update_activity(
            &fixture.service_url(),
            &thread().conversation_id,
            "1:abc",
            &card,
        )
        .await
        .unwrap();

    let request = &fixture.fake.received()[0];
    assert_eq!(request.method, Method::PUT);
    let expected = format!("{}/1%3Aabc", thread_path());
    assert_eq!(request.path, expected);
    assert_eq!(request.body["attachments"][0]["content"]["version"], "1.5");
}

#[tokio::test]
async fn an_answer_without_body_gives_no_activity_id() {
    let fixture = Fixture::start().await;
    fixture.fake.answer_next([(202, None, Value::Null)]);
    let id = fixture
        .client()
        .send_to_conversation(&fixture.service_url(), "a:1", &Activity::message("hi"))
        .await
        .unwrap();
    assert_eq!(id, None);
}

// --- Retries --------------------------------------------------------------

#[tokio::test]
async fn throttling_is_retried_after_the_time_the_server_asks() {
    let fixture = Fixture::start().await;
    fixture
        .fake
        .answer_next([(429, Some("0"), error_body("Throttled"))]);
    // Backoff of an hour: only an honoured Retry-After lets the call end.
    let patient = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        max_total: Duration::from_secs(7200),
    };
    let client = fixture.client_with(patient);
    let (service_url, thread, hello) = (fixture.service_url(), thread(), Activity::message("hi"));
    let send = client.reply_in_thread(&service_url, &thread, &hello);
    let sent = tokio::time::timeout(Duration::from_secs(30), send).await;
    assert!(sent.expect("Retry-After was not honoured").is_ok());
    assert_eq!(fixture.fake.sends(), 2);
}

#[tokio::test]
async fn gateway_errors_are_retried_with_backoff() {
    let fixture = Fixture::start().await;
    fixture.fake.answer_next([
        (503, None, error_body("ServiceUnavailable")),
        (502, None, Value::Null),
        (412, None, error_body("PreconditionFailed")),
    ]);
    let sent = fixture
        .client()
        .send_to_conversation(&fixture.service_url(), "a:1", &Activity::message("hi"))
        .await;
    assert!(sent.is_ok());
    assert_eq!(fixture.fake.sends(), 4);
}

#[tokio::test]
async fn retries_stop_when_the_attempts_are_spent() {
    let fixture = Fixture::start().await;
    let unavailable = (503, None, error_body("ServiceUnavailable"));
    fixture.fake.answer_next(vec![unavailable; 10]);
    let error = fixture
        .client()
        .send_to_conversation(&fixture.service_url(), "a:1", &Activity::message("hi"))
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert!(matches!(error, ConnectorError::Api { status: 503, .. }));
    assert_eq!(
        fixture.fake.sends(),
        RetryPolicy::fast().max_attempts as usize
    );
}

#[tokio::test]
async fn final_answers_are_not_retried() {
    // A 401 is final too, once the token has been renewed; see
    // a_token_refused_twice_is_final.
    let cases = [
        (400, "BadSyntax"),
        (403, "BotNotInConversationRoster"),
        (404, "ConversationNotFound"),
        (413, "MessageSizeTooBig"),
    ];
    for (status, code) in cases {
        let fixture = Fixture::start().await;
        fixture.fake.answer_next([(status, None, error_body(code))]);
        let error = fixture
            .client()
            .reply_in_thread(&fixture.service_url(), &thread(), &Activity::message("hi"))
            .await
            .unwrap_err();

        assert_eq!(fixture.fake.sends(), 1, "{status} was retried");
        assert!(!error.is_transient());
        let ConnectorError::Api {
            status: got,
            code: got_code,
            message,
            correlation_id,
        } = error
        else {
            panic!("{status} gave {error:?}");
        };
        assert_eq!(got, status);
        assert_eq!(got_code.as_deref(), Some(code));
        assert_eq!(message.as_deref(), Some("refused by the fake"));
        assert_eq!(correlation_id.as_deref(), Some("op-42"));
    }
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_call_repeated() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let url = fixture.service_url();
    client
        .send_to_conversation(&url, "a:1", &Activity::message("1"))
        .await
        .unwrap();
    fixture
        .fake
        .answer_next([(401, None, error_body("TokenExpired"))]);

    client
        .send_to_conversation(&url, "a:1", &Activity::message("2"))
        .await
        .unwrap();

    assert_eq!(fixture.fake.tokens(), 2);
    assert_eq!(fixture.fake.sends(), 3);
}

#[tokio::test]
async fn a_token_refused_twice_is_final() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let refused = (401, None, error_body("BotNotRegistered"));
    fixture.fake.answer_next([refused.clone(), refused]);
    let url = fixture.service_url();

    let error = client
        .send_to_conversation(&url, "a:1", &Activity::message("1"))
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(401));
    assert_eq!(fixture.fake.tokens(), 2);
    assert_eq!(fixture.fake.sends(), 2);
}

#[tokio::test]
async fn an_unreachable_connector_is_a_transient_transport_error() {
    let fixture = Fixture::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/teams/", closed.local_addr().unwrap());
    drop(closed);
    let error = fixture
        .client()
        .send_to_conversation(&url, "a:1", &Activity::message("hi"))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
}

// --- Size and rate --------------------------------------------------------

#[tokio::test]
async fn an_oversized_activity_is_refused_before_sending() {
    let fixture = Fixture::start().await;
    let huge = Activity::message("x".repeat(100_000));
    let error = fixture
        .client()
        .reply_in_thread(&fixture.service_url(), &thread(), &huge)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::TooLarge { bytes } if bytes > 100_000));
    assert_eq!(fixture.fake.sends(), 0);
    assert_eq!(fixture.fake.tokens(), 0);
}

#[tokio::test]
async fn sends_beyond_the_thread_limit_wait_for_the_window() {
    let fixture = Fixture::start().await;
    let limits = ThreadLimits::new(vec![Window {
        max: 3,
        per: Duration::from_secs(60),
    }]);
    let client = fixture.client().with_thread_limits(limits);
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..5 {
        let (client, url) = (client.clone(), fixture.service_url());
        sends.spawn(async move {
            let text = format!("step {n}");
            client
                .reply_in_thread(&url, &thread(), &Activity::message(text))
                .await
        });
    }

    // Three go out; the other two wait for the window to move on.
    for _ in 0..200 {
        if fixture.fake.sends() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fixture.fake.sends(), 3);

    skip_ahead(Duration::from_secs(60)).await;
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    assert_eq!(fixture.fake.sends(), 5);
}
