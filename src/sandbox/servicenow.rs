//! The simulated ServiceNow instance: the Table API on `incident`, and the
//! OAuth token endpoint.
//!
//! Served under `/servicenow`. Records are flat maps of string fields, as
//! the Table API returns them with `sysparm_display_value=false`; reference
//! fields such as `caller_id` hold the user name rather than a sys_id and a
//! link. `work_notes` and `comments` are journal fields: a write appends an
//! entry to the record's journal and the field always reads back as "".
//!
//! `GET /api/now/table/sys_journal_field` lists those entries, as an
//! instance does for a caller with read access to the table, with
//! `element_id`, `element`, `value`, `sys_created_on` and `sys_created_by`;
//! `ORDERBYDESCsys_created_on` puts the newest first.
//!
//! Encoded queries understand `field=value` and `field!=value` joined by
//! `^`; any other term is ignored, as an instance does by default, so a
//! query the simulator cannot read matches more rows, not fewer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::tenant::{self, ids};
use super::wiretap::{observe, query_param, Dialect, Fault, RecordedCall, SimError, Wiretap};

/// How long an OAuth token lives, as an instance answers by default.
const TOKEN_LIFETIME_SECS: i64 = 1799;
const JOURNAL_FIELDS: [&str; 2] = ["work_notes", "comments"];
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One journal entry, as `sys_journal_field` keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// `work_notes` or `comments`.
    pub element: String,
    pub value: String,
    pub created_by: String,
    pub created_on: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Incident {
    fields: Map<String, Value>,
    journal: Vec<JournalEntry>,
}

impl Incident {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).and_then(Value::as_str).unwrap_or("")
    }

    /// The record as the Table API returns it, journal fields empty.
    fn to_json(&self, fields: Option<&[String]>) -> Value {
        let mut all = self.fields.clone();
        for journal in JOURNAL_FIELDS {
            all.insert(journal.into(), json!(""));
        }
        let Some(fields) = fields else {
            return Value::Object(all);
        };
        let picked = fields
            .iter()
            .filter_map(|f| all.get(f).map(|v| (f.clone(), v.clone())))
            .collect();
        Value::Object(picked)
    }
}

#[derive(Debug, Default)]
struct Instance {
    incidents: Vec<Incident>,
    tokens: HashMap<String, DateTime<Utc>>,
}

impl Instance {
    fn by_sys_id(&mut self, sys_id: &str) -> Result<&mut Incident, SimError> {
        self.incidents
            .iter_mut()
            .find(|i| i.field("sys_id") == sys_id)
            .ok_or_else(no_record)
    }
}

/// Who a request authenticated as.
#[derive(Debug, Clone)]
struct Caller(String);

/// The simulated ServiceNow instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceNowSim {
    inner: Arc<ServiceNowState>,
}

#[derive(Debug)]
struct ServiceNowState {
    instance: Mutex<Instance>,
    tap: Arc<Wiretap>,
}

impl ServiceNowSim {
    pub(crate) fn new() -> Self {
        let incidents = tenant::incidents()
            .into_iter()
            .filter_map(|record| match record {
                Value::Object(fields) => Some(Incident {
                    fields,
                    journal: Vec::new(),
                }),
                _ => None,
            })
            .collect();
        let instance = Instance {
            incidents,
            tokens: HashMap::new(),
        };
        ServiceNowSim {
            inner: Arc::new(ServiceNowState {
                instance: Mutex::new(instance),
                tap: Wiretap::new(Dialect::ServiceNow),
            }),
        }
    }

    fn instance(&self) -> std::sync::MutexGuard<'_, Instance> {
        self.inner.instance.lock().expect("instance")
    }

    fn with_incident<T>(&self, number: &str, read: impl FnOnce(&Incident) -> T) -> Option<T> {
        let instance = self.instance();
        instance
            .incidents
            .iter()
            .find(|i| i.field("number").eq_ignore_ascii_case(number))
            .map(read)
    }

    /// An incident by number, as the Table API would return it.
    pub fn incident(&self, number: &str) -> Option<Value> {
        self.with_incident(number, |i| i.to_json(None))
    }

    /// The texts of an incident's work notes, oldest first.
    pub fn work_notes(&self, number: &str) -> Vec<String> {
        self.journal(number)
            .into_iter()
            .filter(|e| e.element == "work_notes")
            .map(|e| e.value)
            .collect()
    }

    /// Every journal entry of an incident, oldest first.
    pub fn journal(&self, number: &str) -> Vec<JournalEntry> {
        self.with_incident(number, |i| i.journal.clone())
            .unwrap_or_default()
    }

    /// Adds an incident. Missing `sys_id` (a random one), `state` ("1"),
    /// `opened_at` and `sys_updated_on` are filled in; returns the sys_id.
    pub fn add_incident(&self, record: Value) -> String {
        let mut fields = match record {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        let now = Utc::now().format(TIME_FORMAT).to_string();
        let sys_id = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let defaults = [
            ("sys_id", sys_id),
            ("state", "1".into()),
            ("opened_at", now.clone()),
            ("sys_created_on", now.clone()),
            ("sys_updated_on", now),
            ("sys_mod_count", "0".into()),
        ];
        for (name, value) in defaults {
            fields.entry(name).or_insert(Value::String(value));
        }
        let sys_id = fields["sys_id"].as_str().unwrap_or_default().to_string();
        let mut instance = self.instance();
        instance.incidents.push(Incident {
            fields,
            journal: Vec::new(),
        });
        sys_id
    }

    /// Makes every OAuth token issued so far expired.
    pub fn expire_tokens(&self) {
        let past = Utc::now() - Duration::seconds(1);
        let mut instance = self.instance();
        instance.tokens.values_mut().for_each(|t| *t = past);
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.tap.calls()
    }

    pub fn clear_calls(&self) {
        self.inner.tap.clear_calls();
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.tap.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.tap.clear_faults();
    }

    pub fn pending_faults(&self) -> u32 {
        self.inner.tap.pending_faults()
    }

    pub(crate) fn router(&self) -> Router {
        Router::new()
            .route("/api/now/table/{table}", get(query_table))
            .route(
                "/api/now/table/{table}/{sys_id}",
                get(get_record).patch(patch_record).put(patch_record),
            )
            .route_layer(from_fn_with_state(self.clone(), require_auth))
            .route("/oauth_token.do", post(issue_token))
            .fallback(unknown_resource)
            .layer(from_fn_with_state(self.inner.tap.clone(), observe))
            .with_state(self.clone())
    }

    fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, credential) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            return basic_caller(credential.trim());
        }
        let now = Utc::now();
        let instance = self.instance();
        let live = instance
            .tokens
            .get(credential.trim())
            .is_some_and(|expiry| *expiry > now);
        (scheme.eq_ignore_ascii_case("bearer") && live)
            .then(|| Caller(ids::SERVICENOW_USER.to_string()))
    }
}

fn basic_caller(encoded: &str) -> Option<Caller> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (user == ids::SERVICENOW_USER && password == ids::SERVICENOW_PASSWORD)
        .then(|| Caller(user.to_string()))
}

fn no_record() -> SimError {
    SimError::new(404, "NotFound", "No Record found")
        .detail("Record doesn't exist or ACL restricts the record retrieval")
}

async fn require_auth(
    State(sim): State<ServiceNowSim>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(caller) = sim.caller(request.headers()) else {
        let error = SimError::new(401, "Unauthorized", "User Not Authenticated")
            .detail("Required to provide Auth information");
        return error.into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn unknown_resource() -> SimError {
    SimError::new(
        400,
        "BadRequest",
        "Requested URI does not represent any resource",
    )
}

fn incident_table(table: &str) -> Result<(), SimError> {
    if table == "incident" {
        return Ok(());
    }
    Err(SimError::new(
        400,
        "BadRequest",
        format!("Invalid table {table}"),
    ))
}

/// The `sysparm_fields` list, if the query has one.
fn field_list(query: Option<&str>) -> Option<Vec<String>> {
    let fields = query_param(query, "sysparm_fields")?;
    Some(fields.split(',').map(|f| f.trim().to_string()).collect())
}

async fn query_table(
    State(sim): State<ServiceNowSim>,
    Path(table): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, SimError> {
    if table == "sys_journal_field" {
        return Ok(query_journal(&sim, query.as_deref()));
    }
    incident_table(&table)?;
    let query = query.as_deref();
    let terms = query_param(query, "sysparm_query").unwrap_or_default();
    let number = |name| query_param(query, name).and_then(|v| v.parse().ok());
    let limit: usize = number("sysparm_limit").unwrap_or(10_000);
    let offset: usize = number("sysparm_offset").unwrap_or(0);
    let fields = field_list(query);

    let instance = sim.instance();
    let matching: Vec<&Incident> = instance
        .incidents
        .iter()
        .filter(|i| matches_query(i, &terms))
        .collect();
    let total = matching.len();
    let result: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|i| i.to_json(fields.as_deref()))
        .collect();

    let mut response = Json(json!({ "result": result })).into_response();
    response
        .headers_mut()
        .insert("x-total-count", header::HeaderValue::from(total));
    Ok(response)
}

/// The journal entries of every incident as `sys_journal_field` rows.
fn query_journal(sim: &ServiceNowSim, query: Option<&str>) -> Response {
    let terms = query_param(query, "sysparm_query").unwrap_or_default();
    let limit: usize = query_param(query, "sysparm_limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let fields = field_list(query);
    let instance = sim.instance();
    let mut rows: Vec<Map<String, Value>> = instance
        .incidents
        .iter()
        .flat_map(|incident| {
            let sys_id = incident.field("sys_id").to_string();
            incident
                .journal
                .iter()
                .map(move |entry| journal_row(&sys_id, entry))
        })
        .filter(|row| matches_terms(|f| row.get(f).and_then(Value::as_str).unwrap_or(""), &terms))
        .collect();
    if terms.contains("ORDERBYDESCsys_created_on") {
        rows.reverse();
    }
    let result: Vec<Value> = rows
        .into_iter()
        .take(limit)
        .map(|row| match &fields {
            Some(fields) => Value::Object(
                fields
                    .iter()
                    .filter_map(|f| row.get(f).map(|v| (f.clone(), v.clone())))
                    .collect(),
            ),
            None => Value::Object(row),
        })
        .collect();
    Json(json!({ "result": result })).into_response()
}

fn journal_row(sys_id: &str, entry: &JournalEntry) -> Map<String, Value> {
    let row = json!({
        "name": "incident",
        "element_id": sys_id,
        "element": entry.element,
        "value": entry.value,
        "sys_created_on": entry.created_on.format(TIME_FORMAT).to_string(),
        "sys_created_by": entry.created_by,
    });
    match row {
        Value::Object(row) => row,
        _ => Map::new(),
    }
}

/// Whether a record passes every `field=value` / `field!=value` term.
fn matches_query(incident: &Incident, query: &str) -> bool {
    matches_terms(|name| incident.field(name), query)
}

/// The same, over any record given as a field reader.
fn matches_terms<'a>(field: impl Fn(&str) -> &'a str, query: &str) -> bool {
    query.split('^').all(|term| {
        if let Some((name, value)) = term.split_once("!=") {
            return field(name) != value;
        }
        match term.split_once('=') {
            Some((name, value)) if is_field_name(name) => field(name) == value,
            // ORDERBY..., operators the simulator does not read: ignored.
            _ => true,
        }
    })
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

async fn get_record(
    State(sim): State<ServiceNowSim>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, SimError> {
    incident_table(&table)?;
    let fields = field_list(query.as_deref());
    let mut instance = sim.instance();
    let incident = instance.by_sys_id(&sys_id)?;
    Ok(Json(
        json!({ "result": incident.to_json(fields.as_deref()) }),
    ))
}

async fn patch_record(
    State(sim): State<ServiceNowSim>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Result<Response, SimError> {
    incident_table(&table)?;
    let Ok(Value::Object(changes)) = serde_json::from_slice(&body) else {
        return Err(
            SimError::new(400, "BadRequest", "Exception while reading request")
                .detail("The payload is not valid JSON."),
        );
    };
    let fields = field_list(query.as_deref());
    let mut instance = sim.instance();
    let incident = instance.by_sys_id(&sys_id)?;
    apply_changes(incident, &changes, &caller.0);
    let result = incident.to_json(fields.as_deref());
    Ok((StatusCode::OK, Json(json!({ "result": result }))).into_response())
}

/// Writes known fields, appends journal entries, ignores unknown fields
/// (as an instance does) and stamps the update.
fn apply_changes(incident: &mut Incident, changes: &Map<String, Value>, by: &str) {
    let now = Utc::now();
    for (name, value) in changes {
        let value = match value {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if JOURNAL_FIELDS.contains(&name.as_str()) {
            if !value.trim().is_empty() {
                incident.journal.push(JournalEntry {
                    element: name.clone(),
                    value,
                    created_by: by.to_string(),
                    created_on: now,
                });
            }
        } else if incident.fields.contains_key(name) && !name.starts_with("sys_") {
            incident.fields.insert(name.clone(), Value::String(value));
        }
    }
    let count: u64 = incident.field("sys_mod_count").parse().unwrap_or(0);
    let stamp = now.format(TIME_FORMAT).to_string();
    incident
        .fields
        .insert("sys_updated_on".into(), json!(stamp));
    incident.fields.insert("sys_updated_by".into(), json!(by));
    incident
        .fields
        .insert("sys_mod_count".into(), json!((count + 1).to_string()));
}

async fn issue_token(
    State(sim): State<ServiceNowSim>,
    body: Bytes,
) -> Result<Json<Value>, Response> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let client_ok = field("client_id") == ids::SERVICENOW_CLIENT_ID
        && field("client_secret") == ids::SERVICENOW_CLIENT_SECRET;
    if field("grant_type") != "client_credentials" || !client_ok {
        let refusal = json!({ "error_description": "access_denied", "error": "server_error" });
        return Err((StatusCode::UNAUTHORIZED, Json(refusal)).into_response());
    }

    let token: String = (0..86)
        .map(|_| rand::thread_rng().sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let expiry = Utc::now() + Duration::seconds(TOKEN_LIFETIME_SECS);
    sim.instance().tokens.insert(token.clone(), expiry);
    Ok(Json(json!({
        "access_token": token,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(number: &str, state: &str) -> Incident {
        let fields = json!({"number": number, "state": state});
        Incident {
            fields: fields.as_object().unwrap().clone(),
            journal: Vec::new(),
        }
    }

    #[test]
    fn encoded_query_terms_are_anded_and_unknown_ones_ignored() {
        let record = incident("INC1", "2");
        assert!(matches_query(&record, "number=INC1^state=2"));
        assert!(!matches_query(&record, "number=INC1^state!=2"));
        assert!(matches_query(&record, "number=INC1^ORDERBYnumber"));
        assert!(!matches_query(&record, "number=INC2"));
    }

    #[test]
    fn work_notes_go_to_the_journal_not_the_record() {
        let mut record = incident("INC1", "1");
        let changes = json!({"work_notes": "blocked", "state": 2, "bogus": "x"});
        apply_changes(&mut record, changes.as_object().unwrap(), "me");
        assert_eq!(record.field("state"), "2");
        assert_eq!(record.journal[0].value, "blocked");
        assert!(!record.fields.contains_key("bogus"));
        assert_eq!(record.to_json(None)["work_notes"], "");
    }
}
