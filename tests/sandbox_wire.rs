//! The simulated tenant over real HTTP: what a production client sees on
//! the wire from each simulator, and what each injected fault does.

use std::time::Duration;

use cordon::sandbox::{ids, Fault, FaultKind, SimulatedTenant};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn tenant() -> SimulatedTenant {
    SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulated tenant starts")
}

async fn token(
    sandbox: &SimulatedTenant,
    id: &str,
    secret: &str,
    scope: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", scope),
    ];
    Client::new()
        .post(sandbox.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn graph_token(sandbox: &SimulatedTenant) -> String {
    let answer = token(
        sandbox,
        ids::GRAPH_CLIENT_ID,
        ids::GRAPH_CLIENT_SECRET,
        ids::GRAPH_SCOPE,
    )
    .await;
    let body: Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn bot_token(sandbox: &SimulatedTenant) -> String {
    let answer = token(
        sandbox,
        ids::BOT_APP_ID,
        ids::BOT_APP_PASSWORD,
        ids::BOTFRAMEWORK_SCOPE,
    )
    .await;
    let body: Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// A Graph client with its token, for one sandbox.
struct Graph {
    base: String,
    token: String,
    http: Client,
}

impl Graph {
    async fn new(sandbox: &SimulatedTenant) -> Self {
        Graph {
            base: sandbox.graph_base_url(),
            token: graph_token(sandbox).await,
            http: Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }
}

fn servicenow(
    sandbox: &SimulatedTenant,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    Client::new()
        .request(method, format!("{}{path}", sandbox.servicenow_url()))
        .basic_auth(ids::SERVICENOW_USER, Some(ids::SERVICENOW_PASSWORD))
}

async fn connector_post(
    sandbox: &SimulatedTenant,
    token: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    Client::new()
        .post(format!("{}{path}", sandbox.connector_service_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn approval_card() -> Value {
    json!({"type": "message", "from": {"id": "28:bot", "name": "Cordon"}, "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.5", "body": [
            {"type": "TextBlock", "text": "Contain alice@contoso.com?"},
            {"type": "FactSet", "facts": [{"title": "Incident", "value": "INC0010001"}]}
        ], "actions": [{"type": "Action.Execute", "title": "Approve", "verb": "approve"}]}
    }]})
}

async fn start_thread(sandbox: &SimulatedTenant, token: &str) -> (String, String) {
    let params = json!({
        "isGroup": true,
        "channelData": {"channel": {"id": ids::APPROVALS_CHANNEL_ID}, "tenant": {"id": ids::TENANT_ID}},
        "activity": approval_card(),
        "tenantId": ids::TENANT_ID,
    });
    let answer = connector_post(sandbox, token, "v3/conversations", params).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let body: Value = answer.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    let root = body["activityId"].as_str().unwrap().to_string();
    (id, root)
}

// ---- login ----

#[tokio::test]
async fn tokens_are_issued_for_the_right_credentials_like_entra_answers() {
    let sandbox = tenant().await;
    let answer = token(
        &sandbox,
        ids::GRAPH_CLIENT_ID,
        ids::GRAPH_CLIENT_SECRET,
        ids::GRAPH_SCOPE,
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(sandbox.login().issued_count(ids::GRAPH_SCOPE), 1);
    assert_eq!(sandbox.login().issued_count(ids::BOTFRAMEWORK_SCOPE), 0);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_invalid_client_and_not_recorded() {
    let sandbox = tenant().await;
    let answer = token(&sandbox, ids::BOT_APP_ID, "guess", ids::BOTFRAMEWORK_SCOPE).await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215"));
    assert_eq!(body["error_codes"], json!([7000215]));

    let recorded = &sandbox.login().calls()[0];
    assert_eq!(
        recorded.body.as_ref().unwrap()["client_secret"],
        "[redacted]"
    );
    assert!(!format!("{:?}", sandbox.login().calls()).contains("guess"));
}

#[tokio::test]
async fn an_unknown_scope_is_refused_with_invalid_scope() {
    let sandbox = tenant().await;
    let scope = "https://vault.azure.net/.default";
    let answer = token(
        &sandbox,
        ids::GRAPH_CLIENT_ID,
        ids::GRAPH_CLIENT_SECRET,
        scope,
    )
    .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn tokens_are_bound_to_their_audience() {
    let sandbox = tenant().await;
    let graph = graph_token(&sandbox).await;
    let bot = bot_token(&sandbox).await;

    let (_, root) = start_thread(&sandbox, &bot).await;
    assert!(!root.is_empty());
    let refused = connector_post(
        &sandbox,
        &graph,
        "v3/conversations/x/activities",
        json!({"type": "message"}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let url = format!("{}/users/{}", sandbox.graph_base_url(), ids::ALICE);
    let answer = Client::new()
        .get(&url)
        .bearer_auth(&bot)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn expired_tokens_are_refused_until_a_new_one_is_fetched() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    sandbox.login().expire_all();

    let answer = graph.get(&format!("/users/{}", ids::ALICE)).await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let fresh = Graph::new(&sandbox).await;
    assert_eq!(
        fresh.get(&format!("/users/{}", ids::ALICE)).await.status(),
        StatusCode::OK
    );
    assert_eq!(sandbox.login().issued_count(ids::GRAPH_SCOPE), 2);
}

// ---- graph ----

#[tokio::test]
async fn a_user_is_found_by_upn_in_any_case_with_graph_headers() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let answer = graph
        .request(reqwest::Method::GET, "/users/ALICE@Contoso.com")
        .header("client-request-id", "6a3b0c44-0000-4000-8000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let headers = answer.headers().clone();
    assert!(headers.contains_key("request-id"));
    assert!(headers.contains_key("date"));
    assert_eq!(
        headers["client-request-id"],
        "6a3b0c44-0000-4000-8000-000000000001"
    );

    let user: Value = answer.json().await.unwrap();
    assert_eq!(user["id"], ids::ALICE);
    assert_eq!(user["displayName"], "Alice Bennett");
    assert_eq!(user["department"], "Finance");
    assert_eq!(user["accountEnabled"], true);
    assert_eq!(user["userType"], "Member");
    assert!(user["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("#users/$entity"));

    let recorded = sandbox.graph().calls().pop().unwrap();
    assert_eq!(recorded.request_id, headers["request-id"].to_str().unwrap());
    assert_eq!(recorded.status, Some(200));
}

#[tokio::test]
async fn select_returns_only_the_named_properties() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let path = format!("/users/{}?$select=id,accountEnabled,userType", ids::GINA);
    let user: Value = graph.get(&path).await.json().await.unwrap();
    let object = user.as_object().unwrap();
    assert_eq!(object.len(), 4, "{user}");
    assert_eq!(user["userType"], "Guest");
    assert!(user["@odata.context"]
        .as_str()
        .unwrap()
        .contains("users(id,accountEnabled,userType)"));

    let bad = graph
        .get(&format!("/users/{}?$select=shoeSize", ids::ALICE))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_guest_upn_with_ext_marker_is_found_when_percent_encoded() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let answer = graph
        .get("/users/gina_fabrikam.com%23EXT%23@contoso.com")
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let user: Value = answer.json().await.unwrap();
    assert_eq!(user["id"], ids::GINA);
}

#[tokio::test]
async fn an_unknown_user_gets_graphs_404_error_json_with_its_ids() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let answer = graph.get("/users/nobody@contoso.com").await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let request_id = answer.headers()["request-id"].to_str().unwrap().to_string();
    let client_id = answer.headers()["client-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        client_id.as_str()
    );
    assert!(body["error"]["innerError"]["date"].is_string());
}

#[tokio::test]
async fn check_member_groups_follows_nested_groups() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let groups = json!({"groupIds": [ids::APPROVERS_GROUP, ids::PRIVILEGED_GROUP, ids::SERVICE_ACCOUNTS_GROUP]});
    let path = format!("/users/{}/checkMemberGroups", ids::ADELE_UPN);
    let answer = graph
        .send(reqwest::Method::POST, &path, groups.clone())
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["value"], json!([ids::PRIVILEGED_GROUP]));
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)"
    );

    let path = format!("/users/{}/checkMemberGroups", ids::ALICE);
    let body: Value = graph
        .send(reqwest::Method::POST, &path, groups)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["value"], json!([]));
}

#[tokio::test]
async fn check_member_groups_refuses_more_than_twenty_ids() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let many: Vec<String> = (0..21)
        .map(|i| format!("c0d0a000-0000-4000-8000-0000000{i:05}"))
        .collect();
    let path = format!("/users/{}/checkMemberGroups", ids::ALICE);
    let answer = graph
        .send(reqwest::Method::POST, &path, json!({"groupIds": many}))
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn disabling_and_revoking_change_the_user() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let before = sandbox.graph().user(ids::ALICE).unwrap();

    let path = format!("/users/{}", ids::ALICE);
    let body = json!({"accountEnabled": false, "passwordProfile": {"forceChangePasswordNextSignIn": true}});
    let answer = graph.send(reqwest::Method::PATCH, &path, body).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert!(answer.bytes().await.unwrap().is_empty());

    let path = format!("/users/{}/revokeSignInSessions", ids::ALICE);
    let answer = graph
        .request(reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["value"], true);
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean"
    );

    let after = sandbox.graph().user(ids::ALICE_UPN).unwrap();
    assert!(!after.account_enabled);
    assert!(after.force_change_password_next_sign_in);
    assert!(after.sign_in_sessions_valid_from > before.sign_in_sessions_valid_from);
    let seen = sandbox.graph().calls();
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].body.as_ref().unwrap()["accountEnabled"], false);
}

#[tokio::test]
async fn a_patch_with_an_unknown_property_or_bad_json_changes_nothing() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let path = format!("/users/{}", ids::ALICE);
    let answer = graph
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"accountEnabled": false, "mood": "calm"}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_BadRequest");

    let broken = graph
        .request(reqwest::Method::PATCH, &path)
        .header("content-type", "application/json")
        .body("{\"accountEnabled\": fal")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    assert!(sandbox.graph().user(ids::ALICE).unwrap().account_enabled);
}

#[tokio::test]
async fn the_default_auth_method_goes_only_after_the_others() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let list: Value = graph
        .get(&format!("/users/{}/authentication/methods", ids::ALICE))
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"));
    assert!(types.contains(&"#microsoft.graph.phoneAuthenticationMethod"));
    assert!(types.contains(&"#microsoft.graph.passwordAuthenticationMethod"));

    let authenticator = format!(
        "/users/{}/authentication/microsoftAuthenticatorMethods/{}",
        ids::ALICE,
        ids::ALICE_AUTHENTICATOR
    );
    let phone = format!(
        "/users/{}/authentication/phoneMethods/{}",
        ids::ALICE,
        ids::ALICE_PHONE
    );
    let delete = |path: String| graph.request(reqwest::Method::DELETE, &path).send();

    assert_eq!(
        delete(authenticator.clone()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        delete(phone.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(delete(phone).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        delete(authenticator).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let left = sandbox.graph().user(ids::ALICE).unwrap().auth_methods;
    assert_eq!(left.len(), 1, "only the password is left");
}

#[tokio::test]
async fn role_assignments_are_filtered_by_principal() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    let path = format!(
        "/roleManagement/directory/roleAssignments?$filter=principalId%20eq%20'{}'&$expand=roleDefinition",
        ids::ADELE
    );
    let body: Value = graph.get(&path).await.json().await.unwrap();
    let assignments = body["value"].as_array().unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["roleDefinitionId"], ids::GLOBAL_ADMIN_ROLE);
    assert_eq!(
        assignments[0]["roleDefinition"]["displayName"],
        "Global Administrator"
    );

    let path = format!(
        "/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'",
        ids::ALICE
    );
    let body: Value = graph.get(&path).await.json().await.unwrap();
    assert_eq!(body["value"], json!([]));
}

#[tokio::test]
async fn graph_refuses_calls_without_a_token() {
    let sandbox = tenant().await;
    let url = format!("{}/users/{}", sandbox.graph_base_url(), ids::ALICE);
    let answer = Client::new().get(url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(answer.headers().contains_key("request-id"));
}

// ---- servicenow ----

#[tokio::test]
async fn an_incident_is_found_by_number_with_a_total_count() {
    let sandbox = tenant().await;
    let path = "/api/now/table/incident?sysparm_query=number%3DINC0010001&sysparm_limit=1&sysparm_fields=sys_id,number,state,u_affected_user";
    let answer = servicenow(&sandbox, reqwest::Method::GET, path)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["x-total-count"], "1");
    let body: Value = answer.json().await.unwrap();
    let record = &body["result"][0];
    assert_eq!(record["sys_id"], ids::INC_ALICE_SYS_ID);
    assert_eq!(record["u_affected_user"], ids::ALICE_UPN);
    assert_eq!(record.as_object().unwrap().len(), 4);

    let path = "/api/now/table/incident?sysparm_query=number=INC9999999&sysparm_limit=1";
    let body: Value = servicenow(&sandbox, reqwest::Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"result": []}));
}

#[tokio::test]
async fn work_notes_are_a_journal_and_state_is_a_column() {
    let sandbox = tenant().await;
    let path = format!("/api/now/table/incident/{}", ids::INC_ALICE_SYS_ID);
    for note in ["Sign-in blocked.", "Sessions revoked."] {
        let answer = servicenow(&sandbox, reqwest::Method::PATCH, &path)
            .json(&json!({"work_notes": note, "state": "2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["result"]["work_notes"], "");
        assert_eq!(body["result"]["state"], "2");
    }
    assert_eq!(
        sandbox.servicenow().work_notes(ids::INC_ALICE),
        vec!["Sign-in blocked.", "Sessions revoked."]
    );
    let incident = sandbox.servicenow().incident(ids::INC_ALICE).unwrap();
    assert_eq!(incident["state"], "2");
    assert_eq!(incident["sys_mod_count"], "2");
    let journal = sandbox.servicenow().journal(ids::INC_ALICE);
    assert_eq!(journal[0].created_by, ids::SERVICENOW_USER);
}

#[tokio::test]
async fn servicenow_answers_404_and_400_in_its_own_shape() {
    let sandbox = tenant().await;
    let missing = "/api/now/table/incident/00000000000000000000000000000000";
    let answer = servicenow(&sandbox, reqwest::Method::GET, missing)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["message"], "No Record found");
    assert_eq!(body["status"], "failure");

    let path = format!("/api/now/table/incident/{}", ids::INC_ALICE_SYS_ID);
    let answer = servicenow(&sandbox, reqwest::Method::PATCH, &path)
        .header("content-type", "application/json")
        .body("{\"work_notes\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(sandbox.servicenow().work_notes(ids::INC_ALICE).is_empty());
}

#[tokio::test]
async fn servicenow_refuses_calls_without_valid_auth() {
    let sandbox = tenant().await;
    let url = format!(
        "{}/api/now/table/incident/{}",
        sandbox.servicenow_url(),
        ids::INC_ALICE_SYS_ID
    );
    for request in [
        Client::new().get(&url),
        Client::new()
            .get(&url)
            .basic_auth(ids::SERVICENOW_USER, Some("wrong")),
        Client::new().get(&url).bearer_auth("made-up"),
    ] {
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"})
        );
    }
}

#[tokio::test]
async fn servicenow_oauth_tokens_open_the_table_api() {
    let sandbox = tenant().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", ids::SERVICENOW_CLIENT_ID),
        ("client_secret", ids::SERVICENOW_CLIENT_SECRET),
    ];
    let url = format!("{}/oauth_token.do", sandbox.servicenow_url());
    let answer = Client::new().post(&url).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1799);
    let token = body["access_token"].as_str().unwrap();

    let record = format!(
        "{}/api/now/table/incident/{}",
        sandbox.servicenow_url(),
        ids::INC_ADELE_SYS_ID
    );
    let answer = Client::new()
        .get(&record)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    sandbox.servicenow().expire_tokens();
    let answer = Client::new()
        .get(&record)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

// ---- connector ----

#[tokio::test]
async fn a_channel_thread_is_started_replied_to_and_updated() {
    let sandbox = tenant().await;
    let bot = bot_token(&sandbox).await;
    let (conversation, root) = start_thread(&sandbox, &bot).await;
    assert_eq!(
        conversation,
        format!("{};messageid={root}", ids::APPROVALS_CHANNEL_ID)
    );
    assert!(root.len() >= 13 && root.chars().all(|c| c.is_ascii_digit()));

    // A reply in the thread, addressed with a percent-encoded id.
    let encoded = conversation
        .replace(':', "%3A")
        .replace(';', "%3B")
        .replace('=', "%3D")
        .replace('@', "%40");
    let reply = json!({"type": "message", "text": "Approved by Oscar Ruiz."});
    let answer = connector_post(
        &sandbox,
        &bot,
        &format!("v3/conversations/{encoded}/activities/{root}"),
        reply,
    )
    .await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let reply_id = answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reply_id.parse::<u64>().unwrap() > root.parse::<u64>().unwrap());

    // A plain post to the thread's conversation also lands in the thread.
    let note = json!({"type": "message", "text": "Sign-in blocked."});
    let path = format!("v3/conversations/{conversation}/activities");
    assert_eq!(
        connector_post(&sandbox, &bot, &path, note).await.status(),
        StatusCode::CREATED
    );

    // The card is updated in place.
    let mut updated = approval_card();
    updated["attachments"][0]["content"]["body"][0]["text"] = json!("Approved");
    let url = format!(
        "{}v3/conversations/{conversation}/activities/{root}",
        sandbox.connector_service_url()
    );
    let answer = Client::new()
        .put(&url)
        .bearer_auth(&bot)
        .json(&updated)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap()["id"], root.as_str());

    let thread = sandbox.connector().thread(&root);
    assert_eq!(thread.len(), 3);
    assert_eq!(thread[0].versions.len(), 2);
    assert_eq!(thread[1].reply_to.as_deref(), Some(root.as_str()));
    assert_eq!(thread[1].conversation_id, conversation);
    assert_eq!(
        sandbox
            .connector()
            .conversation(ids::APPROVALS_CHANNEL_ID)
            .len(),
        3
    );

    let transcript = sandbox.connector().transcript();
    assert!(
        transcript.contains(ids::APPROVALS_CHANNEL_ID),
        "{transcript}"
    );
    assert!(transcript.contains("    Approved\n"), "{transcript}");
    assert!(transcript.contains("Incident: INC0010001"), "{transcript}");
    assert!(
        transcript.contains("        Sign-in blocked."),
        "{transcript}"
    );
    assert!(
        !transcript.contains("Contain alice"),
        "only the latest version shows"
    );
}

#[tokio::test]
async fn updating_an_unknown_activity_is_a_404() {
    let sandbox = tenant().await;
    let bot = bot_token(&sandbox).await;
    let url = format!(
        "{}v3/conversations/{}/activities/123",
        sandbox.connector_service_url(),
        ids::APPROVALS_CHANNEL_ID
    );
    let answer = Client::new()
        .put(&url)
        .bearer_auth(&bot)
        .json(&json!({"type": "message", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_connector_refuses_calls_without_a_token() {
    let sandbox = tenant().await;
    let url = format!("{}v3/conversations", sandbox.connector_service_url());
    let answer = Client::new()
        .post(&url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(sandbox.connector().messages().is_empty());
}

// ---- faults ----

#[tokio::test]
async fn a_status_fault_answers_instead_and_the_write_does_not_happen() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    sandbox.graph().inject(Fault {
        method: Some(reqwest::Method::PATCH),
        path_contains: ids::ALICE.to_string(),
        times: 1,
        kind: FaultKind::Status {
            status: 429,
            retry_after: Some(7),
            code: "TooManyRequests".into(),
        },
    });
    let path = format!("/users/{}", ids::ALICE);
    let answer = graph
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"accountEnabled": false}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["retry-after"], "7");
    assert!(answer.headers().contains_key("request-id"));
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert!(sandbox.graph().user(ids::ALICE).unwrap().account_enabled);

    let again = graph
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"accountEnabled": false}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert!(!sandbox.graph().user(ids::ALICE).unwrap().account_enabled);
    let statuses: Vec<_> = sandbox.graph().calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(204)]);
}

#[tokio::test]
async fn a_malformed_json_fault_gives_a_200_that_does_not_parse() {
    let sandbox = tenant().await;
    sandbox
        .servicenow()
        .inject(Fault::new(FaultKind::MalformedJson).on("PATCH", "/incident/"));
    let path = format!("/api/now/table/incident/{}", ids::INC_ALICE_SYS_ID);
    let answer = servicenow(&sandbox, reqwest::Method::PATCH, &path)
        .json(&json!({"work_notes": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.json::<Value>().await.is_err());
    assert!(sandbox.servicenow().work_notes(ids::INC_ALICE).is_empty());
    assert_eq!(
        sandbox.servicenow().calls()[0].fault.as_deref(),
        Some("malformed json")
    );
}

#[tokio::test]
async fn a_delay_fault_makes_a_client_time_out_without_effect() {
    let sandbox = tenant().await;
    let bot = bot_token(&sandbox).await;
    sandbox
        .connector()
        .inject(Fault::new(FaultKind::Delay(Duration::from_secs(5))).on("POST", "/activities"));
    let url = format!(
        "{}v3/conversations/a:1x/activities",
        sandbox.connector_service_url()
    );
    let client = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client
        .post(&url)
        .bearer_auth(&bot)
        .json(&json!({"type": "message", "text": "late"}))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(sandbox.connector().messages().is_empty());
}

#[tokio::test]
async fn a_reset_fault_gives_a_connection_error_and_is_recorded() {
    let sandbox = tenant().await;
    let graph = Graph::new(&sandbox).await;
    sandbox
        .graph()
        .inject(Fault::new(FaultKind::Reset).on("POST", "revokeSignInSessions"));
    let path = format!("/users/{}/revokeSignInSessions", ids::ALICE);
    let result = graph.request(reqwest::Method::POST, &path).send().await;
    let error = result.expect_err("no HTTP answer after a reset");
    assert!(!error.is_timeout() && error.status().is_none(), "{error}");

    let before = sandbox
        .graph()
        .user(ids::ALICE)
        .unwrap()
        .sign_in_sessions_valid_from;
    assert_eq!(before, cordon::sandbox::tenant::seed_time());
    let recorded = sandbox.graph().calls().pop().unwrap();
    assert_eq!(recorded.status, None);
    assert_eq!(recorded.fault.as_deref(), Some("reset"));

    // The next call, on a new connection, goes through.
    let answer = graph
        .request(reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_after_effect_fault_applies_the_write_then_answers_an_error() {
    let sandbox = tenant().await;
    let bot = bot_token(&sandbox).await;
    sandbox
        .connector()
        .inject(Fault::new(FaultKind::AfterEffect { status: 502 }).path("/activities"));
    let path = "v3/conversations/a:1chat/activities";
    let answer = connector_post(
        &sandbox,
        &bot,
        path,
        json!({"type": "message", "text": "hi"}),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    assert!(answer.headers().contains_key("x-correlating-operationid"));
    assert_eq!(sandbox.connector().messages().len(), 1);
}

#[tokio::test]
async fn a_slow_fault_still_serves_the_call() {
    let sandbox = tenant().await;
    sandbox
        .servicenow()
        .inject(Fault::new(FaultKind::Slow(Duration::from_millis(50))).times(2));
    let path = format!("/api/now/table/incident/{}", ids::INC_DAVE_SYS_ID);
    for _ in 0..2 {
        let answer = servicenow(&sandbox, reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_eq!(sandbox.servicenow().pending_faults(), 0);
    assert!(sandbox
        .servicenow()
        .calls()
        .iter()
        .all(|c| c.fault.is_some()));
}

#[tokio::test]
async fn a_servicenow_status_fault_uses_servicenows_error_shape() {
    let sandbox = tenant().await;
    sandbox
        .servicenow()
        .inject(Fault::new(FaultKind::status(503)).on("GET", "sysparm_query"));
    let path = "/api/now/table/incident?sysparm_query=number=INC0010001";
    let answer = servicenow(&sandbox, reqwest::Method::GET, path)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "failure");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let sandbox = tenant().await;
    let url = sandbox.token_url();
    sandbox.shutdown().await;
    let result = Client::new().post(url).form(&[("a", "b")]).send().await;
    assert!(result.is_err());
}
