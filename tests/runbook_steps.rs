//! The Graph steps a runbook can name, run for real against the simulated
//! Graph: resetting authentication methods, requiring a password change,
//! the verification read-back, the service-account runbook that keeps
//! sign-in enabled, and revoke-only containments.

use std::time::Duration;

use cordon::config::Config;
use cordon::demo::Sandbox;
use cordon::sandbox::tenant::ids;
use cordon::sandbox::{Fault, FaultKind};
use serde_json::Value;
use support::graph_writes;

mod support;

const EVERY_GRAPH_STEP: [&str; 8] = [
    "servicenow_start",
    "block_sign_in",
    "revoke_sessions",
    "reset_auth_methods",
    "require_password_change",
    "verify",
    "teams_notice",
    "servicenow_summary",
];

async fn sandbox(adjust: impl FnOnce(&mut Config)) -> Sandbox {
    Sandbox::start_with("127.0.0.1:0".parse().unwrap(), None, adjust)
        .await
        .expect("sandbox starts")
}

fn every_graph_step(config: &mut Config) {
    config.policy.runbooks.standard = EVERY_GRAPH_STEP.map(String::from).to_vec();
}

/// Sam asks for `upn`, Oscar approves; returns the request as the API
/// shows it once it has ended.
async fn approved_run(sandbox: &Sandbox, upn: &str, incident: &str) -> Value {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let text = format!("contain {upn} {incident} token theft");
    sam.say_in_channel(&text).await.unwrap();
    let id = sandbox.wait_for_request(upn, incident).await.unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let ended = ["contained", "partially_contained", "failed"];
    sandbox.wait_for_state(&id, &ended).await.unwrap()
}

fn summary_note(sandbox: &Sandbox, incident: &str) -> String {
    let notes = sandbox.tenant.servicenow().work_notes(incident);
    notes
        .iter()
        .find(|n| n.contains("Summary of the containment"))
        .cloned()
        .unwrap_or_else(|| panic!("no summary in {notes:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_methods_and_password_change_run_in_order_and_leave_only_the_password() {
    let sandbox = sandbox(every_graph_step).await;

    let done = approved_run(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;

    assert_eq!(done["request"]["state"], "contained", "{done:#}");
    let alice_path = format!("/users/{}", ids::ALICE);
    let writes = graph_writes(&sandbox.tenant, ids::ALICE);
    let expected = [
        format!("PATCH {alice_path}"),
        format!("POST {alice_path}/revokeSignInSessions"),
        format!(
            "DELETE {alice_path}/authentication/phoneMethods/{}",
            ids::ALICE_PHONE
        ),
        format!(
            "DELETE {alice_path}/authentication/microsoftAuthenticatorMethods/{}",
            ids::ALICE_AUTHENTICATOR
        ),
        format!("PATCH {alice_path}"),
    ];
    assert_eq!(writes, expected);
    let alice = sandbox.tenant.graph().user(ids::ALICE).unwrap();
    assert!(!alice.account_enabled);
    assert!(alice.force_change_password_next_sign_in);
    let left: Vec<_> = alice.auth_methods.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(left, [ids::ALICE_PASSWORD], "only the password stays");

    // The ticket keeps every request-id Graph gave the deletes.
    let summary = summary_note(&sandbox, ids::INC_ALICE);
    let deletes: Vec<_> = sandbox
        .tenant
        .graph()
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2);
    for call in deletes {
        assert!(summary.contains(&call.request_id), "{summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_answer_was_lost_is_found_gone_and_not_a_failure() {
    let sandbox = sandbox(every_graph_step).await;
    // The phone method is deleted, but the answer never arrives; the retry
    // then finds it gone (404).
    let lost = FaultKind::AfterEffect { status: 504 };
    let phone = Fault::new(lost).on("DELETE", "phoneMethods");
    sandbox.tenant.graph().inject(phone);

    let done = approved_run(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;

    assert_eq!(done["request"]["state"], "contained", "{done:#}");
    let statuses: Vec<_> = sandbox
        .tenant
        .graph()
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.path.contains("phoneMethods"))
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [Some(504), Some(404)]);
    let alice = sandbox.tenant.graph().user(ids::ALICE).unwrap();
    let left: Vec<_> = alice.auth_methods.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(left, [ids::ALICE_PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_enabled_again_before_the_read_back_is_a_partial_containment() {
    let sandbox = sandbox(|_| {}).await;
    // Hold the revoke long enough for someone to re-enable the account
    // after the block, as an administrator racing the bot might.
    let held = FaultKind::Slow(Duration::from_millis(800));
    let revoke = Fault::new(held).on("POST", "revokeSignInSessions");
    sandbox.tenant.graph().inject(revoke);
    let graph = sandbox.tenant.graph().clone();
    let racer = tokio::spawn(async move {
        for _ in 0..400 {
            if !graph.user(ids::ALICE).unwrap().account_enabled {
                graph.update_user(ids::ALICE, |u| u.account_enabled = true);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    });

    let done = approved_run(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;

    assert!(racer.await.unwrap(), "the block never landed");
    assert_eq!(done["request"]["state"], "partially_contained", "{done:#}");
    let steps = done["steps"].as_array().unwrap();
    let verify = steps.iter().find(|s| s["name"] == "verify").unwrap();
    assert_eq!(verify["status"], "failed", "{verify:#}");
    let error = verify["error"].as_str().unwrap_or_default();
    assert!(error.contains("accountEnabled is still true"), "{verify:#}");
    let summary = summary_note(&sandbox, ids::INC_ALICE);
    assert!(
        summary.contains("accountEnabled is still true"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_has_its_sessions_revoked_and_stays_enabled() {
    let sandbox = sandbox(|_| {}).await;

    let done = approved_run(&sandbox, ids::SVC_BACKUP_UPN, ids::INC_SVC_BACKUP).await;

    assert_eq!(done["request"]["state"], "contained", "{done:#}");
    let writes = graph_writes(&sandbox.tenant, ids::SVC_BACKUP);
    let revoke = format!("POST /users/{}/revokeSignInSessions", ids::SVC_BACKUP);
    assert_eq!(writes, [revoke]);
    let account = sandbox.tenant.graph().user(ids::SVC_BACKUP).unwrap();
    assert!(account.account_enabled, "automations keep signing in");
    let steps: Vec<_> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(steps.contains(&"notify_owner".to_string()), "{steps:?}");
    assert!(!steps.contains(&"block_sign_in".to_string()), "{steps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_blocked_already_is_offered_and_gets_a_revoke_only_containment() {
    let sandbox = sandbox(|_| {}).await;
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let before = sandbox.tenant.connector().messages().len();
    let text = format!("contain {} {} sessions live", ids::DAVE_UPN, ids::INC_DAVE);
    sam.say_in_channel(&text).await.unwrap();
    let refusal = next_message(&sandbox, before).await;
    assert!(refusal.contains("already blocked"), "{refusal}");
    assert!(refusal.contains("revoke <upn> <incident>"), "{refusal}");

    let sam_revokes = format!("revoke {} {} sessions live", ids::DAVE_UPN, ids::INC_DAVE);
    sam.say_in_channel(&sam_revokes).await.unwrap();
    let id = sandbox
        .wait_for_request(ids::DAVE_UPN, ids::INC_DAVE)
        .await
        .unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let ended = ["contained", "partially_contained", "failed"];
    let done = sandbox.wait_for_state(&id, &ended).await.unwrap();

    assert_eq!(done["request"]["state"], "contained", "{done:#}");
    let revoke = format!("POST /users/{}/revokeSignInSessions", ids::DAVE);
    assert_eq!(graph_writes(&sandbox.tenant, ids::DAVE), [revoke]);
    assert!(!step_names(&done).contains(&"block_sign_in".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_asking_to_revoke_sessions_leaves_sign_in_enabled() {
    let sandbox = sandbox(|_| {}).await;
    let body = serde_json::json!({
        "number": ids::INC_ALICE,
        "affected_user": ids::ALICE_UPN,
        "requested_by": ids::SAM_UPN,
        "justification": "suspicious session from a new device",
        "security_action": "revoke_sessions",
    });
    let status = cordon::demo::send_webhook(&sandbox, &body.to_string())
        .await
        .unwrap();
    assert_eq!(status, 202);
    let id = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let done = sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    let revoke = format!("POST /users/{}/revokeSignInSessions", ids::ALICE);
    assert_eq!(graph_writes(&sandbox.tenant, ids::ALICE), [revoke]);
    assert!(
        sandbox
            .tenant
            .graph()
            .user(ids::ALICE)
            .unwrap()
            .account_enabled
    );
    assert!(!step_names(&done).contains(&"block_sign_in".to_string()));
}

fn step_names(request: &Value) -> Vec<String> {
    request["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// The text of the message the bot posted after the first `before`.
async fn next_message(sandbox: &Sandbox, before: usize) -> String {
    for _ in 0..400 {
        let messages = sandbox.tenant.connector().messages();
        if let Some(message) = messages.get(before) {
            return cordon::sandbox::render_text(&message.activity);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the bot never answered");
}
