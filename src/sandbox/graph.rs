//! The simulated Microsoft Graph v1.0, for the calls Cordon makes.
//!
//! Served under `/graph/v1.0`: user lookup by id or UPN, transitive
//! `checkMemberGroups`, `PATCH` of `accountEnabled` and `passwordProfile`,
//! `revokeSignInSessions`, authentication methods (list and delete) and
//! direct directory role assignments. Every answer carries Graph's
//! `request-id` and `client-request-id` headers, and errors use Graph's
//! error JSON with its `innerError`.
//!
//! Without `$select`, a user is returned with every property Cordon reads.
//! Real Graph returns a narrower default set that leaves out
//! `accountEnabled`, `department`, `userType` and
//! `signInSessionsValidFromDateTime`, so a client must `$select` them.
//!
//! `$batch` and `transitiveMemberOf` are not simulated: a call to them
//! gets the 400 that Graph gives for an unknown segment.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::{json, Map, Value};

use super::login::{Audience, LoginSim, TokenCheck};
use super::tenant;
use super::wiretap::{observe, query_param, Dialect, Fault, RecordedCall, SimError, Wiretap};

const METADATA: &str = "https://graph.microsoft.com/v1.0/$metadata";
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;\
                          odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Graph's limit on group ids per `checkMemberGroups` call.
const MAX_GROUP_IDS: usize = 20;

/// A directory user as the simulator keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    pub user_type: String,
    pub sign_in_sessions_valid_from: DateTime<Utc>,
    pub force_change_password_next_sign_in: bool,
    /// When a `passwordProfile.password` was last set through `PATCH`.
    pub password_set_at: Option<DateTime<Utc>>,
    pub auth_methods: Vec<AuthMethod>,
}

impl SimUser {
    /// An enabled member of the tenant, mail equal to the UPN.
    pub fn member(id: &str, upn: &str, display_name: &str) -> Self {
        SimUser {
            id: id.to_string(),
            user_principal_name: upn.to_string(),
            display_name: display_name.to_string(),
            mail: Some(upn.to_string()),
            department: None,
            job_title: None,
            account_enabled: true,
            user_type: "Member".into(),
            sign_in_sessions_valid_from: tenant::seed_time(),
            force_change_password_next_sign_in: false,
            password_set_at: None,
            auth_methods: Vec::new(),
        }
    }

    /// An enabled B2B guest.
    pub fn guest(id: &str, upn: &str, display_name: &str, mail: &str) -> Self {
        SimUser {
            mail: Some(mail.to_string()),
            user_type: "Guest".into(),
            ..SimUser::member(id, upn, display_name)
        }
    }

    pub fn works_in(mut self, department: &str, job_title: &str) -> Self {
        self.department = Some(department.to_string());
        self.job_title = Some(job_title.to_string());
        self
    }

    pub fn disabled(mut self) -> Self {
        self.account_enabled = false;
        self
    }

    pub fn with_methods(mut self, methods: Vec<AuthMethod>) -> Self {
        self.auth_methods = methods;
        self
    }

    fn is(&self, key: &str) -> bool {
        self.id.eq_ignore_ascii_case(key) || self.user_principal_name.eq_ignore_ascii_case(key)
    }

    /// Every property the simulator serves, in Graph's names.
    fn properties(&self) -> Vec<(&'static str, Value)> {
        let sessions = self
            .sign_in_sessions_valid_from
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        vec![
            ("id", json!(self.id)),
            ("userPrincipalName", json!(self.user_principal_name)),
            ("displayName", json!(self.display_name)),
            ("mail", json!(self.mail)),
            ("department", json!(self.department)),
            ("jobTitle", json!(self.job_title)),
            ("accountEnabled", json!(self.account_enabled)),
            ("userType", json!(self.user_type)),
            ("signInSessionsValidFromDateTime", json!(sessions)),
        ]
    }
}

/// The kinds of authentication method, with their Graph names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethodKind {
    Password,
    MicrosoftAuthenticator,
    Phone,
    Fido2,
    SoftwareOath,
    Email,
    TemporaryAccessPass,
}

impl AuthMethodKind {
    const ALL: [AuthMethodKind; 7] = [
        AuthMethodKind::Password,
        AuthMethodKind::MicrosoftAuthenticator,
        AuthMethodKind::Phone,
        AuthMethodKind::Fido2,
        AuthMethodKind::SoftwareOath,
        AuthMethodKind::Email,
        AuthMethodKind::TemporaryAccessPass,
    ];

    /// The path segment under `/users/{id}/authentication/`.
    pub fn segment(self) -> &'static str {
        match self {
            AuthMethodKind::Password => "passwordMethods",
            AuthMethodKind::MicrosoftAuthenticator => "microsoftAuthenticatorMethods",
            AuthMethodKind::Phone => "phoneMethods",
            AuthMethodKind::Fido2 => "fido2Methods",
            AuthMethodKind::SoftwareOath => "softwareOathMethods",
            AuthMethodKind::Email => "emailMethods",
            AuthMethodKind::TemporaryAccessPass => "temporaryAccessPassMethods",
        }
    }

    /// The `@odata.type` of a method of this kind.
    pub fn odata_type(self) -> &'static str {
        match self {
            AuthMethodKind::Password => "#microsoft.graph.passwordAuthenticationMethod",
            AuthMethodKind::MicrosoftAuthenticator => {
                "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"
            }
            AuthMethodKind::Phone => "#microsoft.graph.phoneAuthenticationMethod",
            AuthMethodKind::Fido2 => "#microsoft.graph.fido2AuthenticationMethod",
            AuthMethodKind::SoftwareOath => "#microsoft.graph.softwareOathAuthenticationMethod",
            AuthMethodKind::Email => "#microsoft.graph.emailAuthenticationMethod",
            AuthMethodKind::TemporaryAccessPass => {
                "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
            }
        }
    }

    fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.segment() == segment)
    }
}

/// One registered authentication method of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthMethod {
    pub id: String,
    pub kind: AuthMethodKind,
    /// The user's default sign-in method. Graph v1.0 does not show this in
    /// the method list; the simulator uses it for the delete rule only.
    pub is_default: bool,
    /// Kind-specific properties, served as they are.
    pub properties: Map<String, Value>,
}

impl AuthMethod {
    pub fn new(id: &str, kind: AuthMethodKind) -> Self {
        AuthMethod {
            id: id.to_string(),
            kind,
            is_default: false,
            properties: Map::new(),
        }
    }

    pub fn default_method(mut self) -> Self {
        self.is_default = true;
        self
    }

    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.properties.insert(name.to_string(), value);
        self
    }

    fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("@odata.type".into(), json!(self.kind.odata_type()));
        body.insert("id".into(), json!(self.id));
        body.extend(self.properties.clone());
        Value::Object(body)
    }
}

/// A security group; members are user or group object ids.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
}

impl SimGroup {
    pub fn new(id: &str, display_name: &str, members: &[&str]) -> Self {
        SimGroup {
            id: id.to_string(),
            display_name: display_name.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// A direct directory role assignment, scoped to the whole tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub role_definition_id: String,
}

impl RoleAssignment {
    pub fn new(principal_id: &str, role_definition_id: &str) -> Self {
        RoleAssignment {
            id: format!("{role_definition_id}-{principal_id}"),
            principal_id: principal_id.to_string(),
            role_definition_id: role_definition_id.to_string(),
        }
    }
}

#[derive(Debug, Default)]
struct Directory {
    users: Vec<SimUser>,
    groups: Vec<SimGroup>,
    roles: Vec<RoleAssignment>,
}

impl Directory {
    fn user_mut(&mut self, key: &str) -> Result<&mut SimUser, SimError> {
        self.users
            .iter_mut()
            .find(|u| u.is(key))
            .ok_or_else(|| not_found(key))
    }

    /// Every group `member_id` belongs to, directly or through groups.
    fn transitive_groups(&self, member_id: &str) -> HashSet<String> {
        let mut found: HashSet<String> = HashSet::new();
        let mut frontier = vec![member_id.to_ascii_lowercase()];
        while let Some(member) = frontier.pop() {
            for group in &self.groups {
                let id = group.id.to_ascii_lowercase();
                let contains = group
                    .members
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&member));
                if contains && found.insert(id.clone()) {
                    frontier.push(id);
                }
            }
        }
        found
    }
}

/// The simulated Graph; cheap to clone.
#[derive(Debug, Clone)]
pub struct GraphSim {
    inner: Arc<GraphState>,
}

#[derive(Debug)]
struct GraphState {
    directory: Mutex<Directory>,
    login: LoginSim,
    tap: Arc<Wiretap>,
}

impl GraphSim {
    pub(crate) fn new(login: LoginSim) -> Self {
        let directory = Directory {
            users: tenant::users(),
            groups: tenant::groups(),
            roles: tenant::role_assignments(),
        };
        GraphSim {
            inner: Arc::new(GraphState {
                directory: Mutex::new(directory),
                login,
                tap: Wiretap::new(Dialect::Graph),
            }),
        }
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.inner.directory.lock().expect("directory")
    }

    /// A user by object id or UPN (case-insensitive).
    pub fn user(&self, key: &str) -> Option<SimUser> {
        self.directory().users.iter().find(|u| u.is(key)).cloned()
    }

    /// Adds a user, replacing any with the same id.
    pub fn add_user(&self, user: SimUser) {
        let mut directory = self.directory();
        directory.users.retain(|u| u.id != user.id);
        directory.users.push(user);
    }

    /// Changes a user in place; false when there is no such user.
    pub fn update_user(&self, key: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let mut directory = self.directory();
        directory.user_mut(key).map(change).is_ok()
    }

    /// Adds a group, replacing any with the same id.
    pub fn add_group(&self, group: SimGroup) {
        let mut directory = self.directory();
        directory.groups.retain(|g| g.id != group.id);
        directory.groups.push(group);
    }

    /// Adds a user or group to a group; false when the group is unknown.
    pub fn add_member(&self, group_id: &str, member_id: &str) -> bool {
        let mut directory = self.directory();
        let Some(group) = directory.groups.iter_mut().find(|g| g.id == group_id) else {
            return false;
        };
        group.members.push(member_id.to_string());
        true
    }

    /// Removes a user or group from a group.
    pub fn remove_member(&self, group_id: &str, member_id: &str) {
        let mut directory = self.directory();
        for group in directory.groups.iter_mut().filter(|g| g.id == group_id) {
            group.members.retain(|m| m != member_id);
        }
    }

    pub fn add_role_assignment(&self, principal_id: &str, role_definition_id: &str) {
        let assignment = RoleAssignment::new(principal_id, role_definition_id);
        self.directory().roles.push(assignment);
    }

    /// The groups a user or group is in, transitively.
    pub fn member_of(&self, member_id: &str) -> HashSet<String> {
        self.directory().transitive_groups(member_id)
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
            .route("/users/{key}", get(get_user).patch(patch_user))
            .route("/users/{key}/checkMemberGroups", post(check_member_groups))
            .route("/users/{key}/revokeSignInSessions", post(revoke_sessions))
            .route("/users/{key}/authentication/methods", get(list_methods))
            .route(
                "/users/{key}/authentication/{kind}/{method_id}",
                delete(delete_method),
            )
            .route(
                "/roleManagement/directory/roleAssignments",
                get(role_assignments),
            )
            .fallback(unknown_segment)
            .layer(from_fn_with_state(self.clone(), require_token))
            .layer(from_fn_with_state(self.inner.tap.clone(), observe))
            .with_state(self.clone())
    }
}

type Answer = Result<Response, SimError>;

fn graph_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let odata = header::HeaderValue::from_static(ODATA_JSON);
    response.headers_mut().insert(header::CONTENT_TYPE, odata);
    response
}

fn not_found(key: &str) -> SimError {
    SimError::new(
        404,
        "Request_ResourceNotFound",
        format!(
            "Resource '{key}' does not exist or one of its queried \
             reference-property objects are not present."
        ),
    )
}

fn bad_request(message: impl Into<String>) -> SimError {
    SimError::new(400, "Request_BadRequest", message)
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(bad_request(
            "Invalid JSON in the request body; a JSON object was expected.",
        )),
    }
}

async fn require_token(State(sim): State<GraphSim>, request: Request, next: Next) -> Response {
    let message = match sim.inner.login.check(request.headers(), Audience::Graph) {
        TokenCheck::Valid => {
            let needed = permission_for(request.method(), request.uri().path());
            if let Err(refusal) = sim.permitted(request.headers(), needed) {
                return refusal.into_response();
            }
            return next.run(request).await;
        }
        TokenCheck::Missing => "Access token is empty.",
        TokenCheck::Expired => "Lifetime validation failed, the token is expired.",
        TokenCheck::Invalid => "Access token validation failure. Invalid audience.",
    };
    SimError::new(401, "InvalidAuthenticationToken", message).into_response()
}

/// The application permissions of which a call needs any one, by method
/// and path; `PATCH /users/{id}` is decided by its body, in its handler.
fn permission_for(method: &Method, path: &str) -> &'static [&'static str] {
    let user_read: &[&str] = &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"];
    if path.starts_with("/roleManagement/") {
        return &[
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "RoleManagement.ReadWrite.Directory",
            "Directory.Read.All",
        ];
    }
    if path.ends_with("/checkMemberGroups") {
        return &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ];
    }
    if path.ends_with("/revokeSignInSessions") {
        return &[
            "User.RevokeSessions.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ];
    }
    if path.contains("/authentication/") {
        return match *method {
            Method::GET => &[
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            _ => &["UserAuthenticationMethod.ReadWrite.All"],
        };
    }
    match *method {
        Method::GET => user_read,
        _ => &[],
    }
}

impl GraphSim {
    /// Refuses, as Graph does, a caller whose token holds none of
    /// `any_of`; an empty list needs nothing.
    fn permitted(&self, headers: &HeaderMap, any_of: &[&str]) -> Result<(), SimError> {
        if any_of.is_empty() {
            return Ok(());
        }
        let roles = self
            .inner
            .login
            .roles(headers, Audience::Graph)
            .unwrap_or_default();
        let held = any_of
            .iter()
            .any(|needed| roles.iter().any(|r| r.eq_ignore_ascii_case(needed)));
        if held {
            return Ok(());
        }
        Err(SimError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

async fn unknown_segment(request: Request) -> SimError {
    let segment = request.uri().path().trim_start_matches('/');
    let segment = segment.split('/').next().unwrap_or_default();
    SimError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

async fn get_user(
    State(sim): State<GraphSim>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let user = sim.user(&key).ok_or_else(|| not_found(&key))?;
    let select = query_param(query.as_deref(), "$select");
    let (names, mut body) = selected_properties(&user, select.as_deref())?;
    let context = match names {
        Some(names) => format!("{METADATA}#users({})/$entity", names.join(",")),
        None => format!("{METADATA}#users/$entity"),
    };
    body.insert("@odata.context".into(), json!(context));
    Ok(graph_json(StatusCode::OK, Value::Object(body)))
}

/// The user's properties, only the `$select`ed ones when there is a list.
fn selected_properties(
    user: &SimUser,
    select: Option<&str>,
) -> Result<(Option<Vec<&'static str>>, Map<String, Value>), SimError> {
    let all = user.properties();
    let Some(select) = select else {
        let body = all.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        return Ok((None, body));
    };
    let mut names = Vec::new();
    let mut body = Map::new();
    for wanted in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = all
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                bad_request(format!(
                    "Could not find a property named '{wanted}' on type \
                     'microsoft.graph.user'."
                ))
            })?;
        names.push(*name);
        body.insert(name.to_string(), value.clone());
    }
    Ok((Some(names), body))
}

async fn check_member_groups(
    State(sim): State<GraphSim>,
    Path(key): Path<String>,
    body: Bytes,
) -> Answer {
    let object = json_object(&body)?;
    let wanted = group_ids(&object)?;
    let user = sim.user(&key).ok_or_else(|| not_found(&key))?;
    let member_of = sim.member_of(&user.id);
    let matching: Vec<&String> = wanted
        .iter()
        .filter(|id| member_of.contains(&id.to_ascii_lowercase()))
        .collect();
    let body = json!({
        "@odata.context": format!("{METADATA}#Collection(Edm.String)"),
        "value": matching,
    });
    Ok(graph_json(StatusCode::OK, body))
}

fn group_ids(object: &Map<String, Value>) -> Result<Vec<String>, SimError> {
    let ids: Option<Vec<String>> =
        object
            .get("groupIds")
            .and_then(Value::as_array)
            .and_then(|ids| {
                ids.iter()
                    .map(|id| id.as_str().map(str::to_string))
                    .collect()
            });
    let ids = ids.ok_or_else(|| bad_request("groupIds must be an array of strings."))?;
    if ids.len() > MAX_GROUP_IDS {
        return Err(bad_request(format!(
            "The number of group ids ({}) exceeds the limit of {MAX_GROUP_IDS}.",
            ids.len()
        )));
    }
    Ok(ids)
}

async fn patch_user(
    State(sim): State<GraphSim>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let changes = UserPatch::parse(&json_object(&body)?)?;
    for needed in changes.permissions() {
        sim.permitted(&headers, needed)?;
    }
    let mut directory = sim.directory();
    let user = directory.user_mut(&key)?;
    changes.apply(user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A validated `PATCH /users/{id}` body; applied only when all of it is
/// valid, so a bad property changes nothing.
#[derive(Debug, Default)]
struct UserPatch {
    account_enabled: Option<bool>,
    force_change_password: Option<bool>,
    password_set: bool,
    department: Option<String>,
    job_title: Option<String>,
    display_name: Option<String>,
}

impl UserPatch {
    fn parse(object: &Map<String, Value>) -> Result<Self, SimError> {
        let mut patch = UserPatch::default();
        for (name, value) in object {
            match name.as_str() {
                "accountEnabled" => patch.account_enabled = Some(boolean(name, value)?),
                "passwordProfile" => patch.password_profile(value)?,
                "department" => patch.department = Some(text(name, value)?),
                "jobTitle" => patch.job_title = Some(text(name, value)?),
                "displayName" => patch.display_name = Some(text(name, value)?),
                _ => return Err(unknown_property(name)),
            }
        }
        Ok(patch)
    }

    /// Graph's least-privileged permissions for this change: each entry
    /// is a set of which one is needed.
    fn permissions(&self) -> Vec<&'static [&'static str]> {
        let mut needed: Vec<&'static [&'static str]> = Vec::new();
        if self.account_enabled.is_some() {
            needed.push(&["User.EnableDisableAccount.All", "User.ReadWrite.All"]);
            needed.push(&["User.Read.All", "User.ReadWrite.All"]);
        }
        if self.force_change_password.is_some() || self.password_set {
            needed.push(&["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"]);
        }
        let other =
            self.department.is_some() || self.job_title.is_some() || self.display_name.is_some();
        if other {
            needed.push(&["User.ReadWrite.All"]);
        }
        needed
    }

    fn password_profile(&mut self, value: &Value) -> Result<(), SimError> {
        let profile = value
            .as_object()
            .ok_or_else(|| bad_request("passwordProfile must be an object."))?;
        for (name, value) in profile {
            match name.as_str() {
                "forceChangePasswordNextSignIn" | "forceChangePasswordNextSignInWithMfa" => {
                    self.force_change_password = Some(boolean(name, value)?)
                }
                "password" => {
                    text(name, value)?;
                    self.password_set = true;
                }
                _ => return Err(unknown_property(name)),
            }
        }
        Ok(())
    }

    fn apply(self, user: &mut SimUser) {
        if let Some(enabled) = self.account_enabled {
            user.account_enabled = enabled;
        }
        if let Some(force) = self.force_change_password {
            user.force_change_password_next_sign_in = force;
        }
        if self.password_set {
            user.password_set_at = Some(Utc::now());
        }
        user.department = self.department.or(user.department.take());
        user.job_title = self.job_title.or(user.job_title.take());
        if let Some(name) = self.display_name {
            user.display_name = name;
        }
    }
}

fn boolean(name: &str, value: &Value) -> Result<bool, SimError> {
    value.as_bool().ok_or_else(|| {
        bad_request(format!(
            "Cannot convert the literal '{value}' to the expected type \
             'Edm.Boolean' of property '{name}'."
        ))
    })
}

fn text(name: &str, value: &Value) -> Result<String, SimError> {
    value.as_str().map(str::to_string).ok_or_else(|| {
        bad_request(format!(
            "Cannot convert the literal '{value}' to the expected type \
             'Edm.String' of property '{name}'."
        ))
    })
}

fn unknown_property(name: &str) -> SimError {
    bad_request(format!(
        "Property '{name}' does not exist as a declared property or \
         extension property."
    ))
}

async fn revoke_sessions(State(sim): State<GraphSim>, Path(key): Path<String>) -> Answer {
    let now = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
    let mut directory = sim.directory();
    directory.user_mut(&key)?.sign_in_sessions_valid_from = now;
    let body = json!({
        "@odata.context": format!("{METADATA}#Edm.Boolean"),
        "value": true,
    });
    Ok(graph_json(StatusCode::OK, body))
}

async fn list_methods(State(sim): State<GraphSim>, Path(key): Path<String>) -> Answer {
    let user = sim.user(&key).ok_or_else(|| not_found(&key))?;
    let methods: Vec<Value> = user.auth_methods.iter().map(AuthMethod::to_json).collect();
    let body = json!({
        "@odata.context": format!(
            "{METADATA}#users('{}')/authentication/methods",
            user.id
        ),
        "value": methods,
    });
    Ok(graph_json(StatusCode::OK, body))
}

async fn delete_method(
    State(sim): State<GraphSim>,
    Path((key, segment, method_id)): Path<(String, String, String)>,
) -> Answer {
    let kind = AuthMethodKind::from_segment(&segment).ok_or_else(|| {
        SimError::new(
            400,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    })?;
    let mut directory = sim.directory();
    let user = directory.user_mut(&key)?;
    let index = deletable_method(user, kind, &method_id)?;
    user.auth_methods.remove(index);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Where the method is in the user's list, if the rules let it go.
fn deletable_method(user: &SimUser, kind: AuthMethodKind, id: &str) -> Result<usize, SimError> {
    let index = user
        .auth_methods
        .iter()
        .position(|m| m.kind == kind && m.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            SimError::new(
                404,
                "itemNotFound",
                format!("The authentication method '{id}' was not found."),
            )
        })?;
    if kind == AuthMethodKind::Password {
        return Err(SimError::new(
            400,
            "badRequest",
            "A password authentication method cannot be deleted.",
        ));
    }
    let others = user
        .auth_methods
        .iter()
        .enumerate()
        .any(|(i, m)| i != index && m.kind != AuthMethodKind::Password);
    if user.auth_methods[index].is_default && others {
        return Err(SimError::new(
            400,
            "badRequest",
            "The default authentication method cannot be deleted while \
             other methods are registered; change the default first.",
        ));
    }
    Ok(index)
}

async fn role_assignments(State(sim): State<GraphSim>, RawQuery(query): RawQuery) -> Answer {
    let filter = query_param(query.as_deref(), "$filter").unwrap_or_default();
    let principal = principal_filter(&filter).ok_or_else(|| {
        SimError::new(
            400,
            "BadRequest",
            format!("Invalid filter clause: the sandbox serves only principalId eq '<id>', not '{filter}'."),
        )
    })?;
    let expand = query_param(query.as_deref(), "$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("roleDefinition"));
    let directory = sim.directory();
    let value: Vec<Value> = directory
        .roles
        .iter()
        .filter(|r| r.principal_id.eq_ignore_ascii_case(principal))
        .map(|r| role_assignment_json(r, expand))
        .collect();
    let body = json!({
        "@odata.context": format!("{METADATA}#roleManagement/directory/roleAssignments"),
        "value": value,
    });
    Ok(graph_json(StatusCode::OK, body))
}

/// The id in `principalId eq '<id>'`.
fn principal_filter(filter: &str) -> Option<&str> {
    let rest = filter.trim().strip_prefix("principalId")?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim_start();
    rest.strip_prefix('\'')?.strip_suffix('\'')
}

fn role_assignment_json(assignment: &RoleAssignment, expand: bool) -> Value {
    let mut body = json!({
        "id": assignment.id,
        "principalId": assignment.principal_id,
        "roleDefinitionId": assignment.role_definition_id,
        "directoryScopeId": "/",
    });
    if expand {
        let name = match assignment.role_definition_id.as_str() {
            tenant::ids::GLOBAL_ADMIN_ROLE => "Global Administrator",
            _ => "Directory role",
        };
        body["roleDefinition"] = json!({
            "id": assignment.role_definition_id,
            "templateId": assignment.role_definition_id,
            "displayName": name,
            "isBuiltIn": true,
        });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_groups_count_as_membership() {
        let sim = GraphSim::new(LoginSim::new());
        let groups = sim.member_of(tenant::ids::ADELE);
        assert!(groups.contains(tenant::ids::PRIVILEGED_GROUP));
        assert!(groups.contains(tenant::ids::TIER0_ADMINS_GROUP));
        assert!(!groups.contains(tenant::ids::APPROVERS_GROUP));
    }

    #[test]
    fn principal_filter_reads_the_quoted_id() {
        assert_eq!(principal_filter("principalId eq 'abc'"), Some("abc"));
        assert_eq!(principal_filter("displayName eq 'abc'"), None);
    }

    #[test]
    fn a_bad_property_in_a_patch_changes_nothing() {
        let body = json!({"accountEnabled": false, "favouriteColour": "red"});
        let error = UserPatch::parse(body.as_object().unwrap()).unwrap_err();
        assert_eq!(error.code, "Request_BadRequest");
        assert!(error.message.contains("favouriteColour"));
    }
}
