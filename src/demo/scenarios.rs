//! The demo's scenarios. Each drives the sandbox over HTTP as Teams would,
//! then checks what the simulated tenant received; a scenario that ends
//! differently than expected makes the demo fail.

use std::time::Duration;

use anyhow::{bail, ensure, Context};

use crate::sandbox::tenant::ids;

use super::Sandbox;

/// Runs every scenario, prints the channel and the audit trail, and fails
/// if any scenario ended wrong.
pub async fn run_demo() -> anyhow::Result<()> {
    let sandbox = Sandbox::start("127.0.0.1:0".parse()?, None).await?;
    println!("Cordon demo: sandbox at {}\n", sandbox.base_url);
    let scenarios: [(&str, ScenarioResult); 4] = [
        (
            "standard user contained after one approval",
            standard_containment(&sandbox).await,
        ),
        (
            "self-approval refused",
            self_approval_refused(&sandbox).await,
        ),
        ("unknown user refused", unknown_user_refused(&sandbox).await),
        (
            "ServiceNow webhook, service account",
            webhook_service_account(&sandbox).await,
        ),
    ];

    sandbox.engine.teams.settled().await;
    println!("=== What the channels show ===\n");
    println!("{}", sandbox.tenant.connector().transcript());
    println!("=== Audit trail ===\n");
    for event in sandbox.engine.store.audit_events(None).await? {
        println!(
            "#{:<3} {} {:<20} {:<24} {}",
            event.seq,
            crate::teams::view::format_time(event.at),
            event.request_id.as_deref().unwrap_or("-"),
            event.event,
            event.actor
        );
    }
    let (head_seq, head_hash) = sandbox.engine.store.audit_head().await?;
    let events = sandbox.engine.store.audit_events(None).await?;
    let chain = crate::audit::verify(&events, (head_seq, &head_hash));
    println!(
        "\nAudit chain: {}\n",
        match &chain {
            Ok(n) => format!("{n} events, intact"),
            Err(e) => format!("BROKEN: {e}"),
        }
    );

    println!("=== Scenarios ===\n");
    let mut failed = 0;
    for (name, result) in &scenarios {
        match result {
            Ok(summary) => println!("PASS  {name}: {summary}"),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e:#}");
            }
        }
    }
    sandbox.stop();
    if failed > 0 || chain.is_err() {
        bail!("{failed} scenario(s) ended differently than expected");
    }
    Ok(())
}

type ScenarioResult = anyhow::Result<String>;

/// Sam asks to contain Alice; Oscar approves; the runbook runs.
async fn standard_containment(sandbox: &Sandbox) -> ScenarioResult {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    sam.say_in_channel(
        "contain alice@contoso.com INC0010001 token theft: sign-in from an \
         unfamiliar ASN right after an MFA prompt flood",
    )
    .await?;
    let id = sandbox
        .wait_for_request("alice@contoso.com", "INC0010001")
        .await?;
    let card = sandbox.wait_for_card(&id).await?;
    ensure!(
        graph_writes(sandbox, ids::ALICE) == 0,
        "Graph was written to before the approval"
    );
    let answer = oscar.click("approve", &id, &card, None).await?;
    ensure!(
        answer.body["type"] == "application/vnd.microsoft.card.adaptive",
        "the click was not answered with a card: {}",
        answer.body
    );
    sandbox.wait_for_state(&id, &["contained"]).await?;
    let user = sandbox
        .tenant
        .graph()
        .user(ids::ALICE)
        .context("Alice vanished from the simulated Graph")?;
    ensure!(!user.account_enabled, "Alice can still sign in");
    ensure!(
        graph_writes(sandbox, ids::ALICE) == 2,
        "expected one block and one revoke, saw {} writes",
        graph_writes(sandbox, ids::ALICE)
    );
    let notes = sandbox.tenant.servicenow().work_notes("INC0010001");
    ensure!(
        notes.iter().any(|n| n.contains("request-id")),
        "the ServiceNow summary lacks the Graph request ids"
    );
    Ok(format!(
        "{id} contained; sign-in blocked, sessions revoked, ticket noted"
    ))
}

/// Oscar asks to contain Adele and tries to approve his own request.
async fn self_approval_refused(sandbox: &Sandbox) -> ScenarioResult {
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar
        .say_in_channel("contain adele.admin@contoso.com INC0010002 impossible travel on an admin")
        .await?;
    let id = sandbox
        .wait_for_request("adele.admin@contoso.com", "INC0010002")
        .await?;
    let card = sandbox.wait_for_card(&id).await?;
    let answer = oscar.click("approve", &id, &card, None).await?;
    let message = answer.body["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        ["own request", "yourself", "requester"]
            .iter()
            .any(|word| message.to_lowercase().contains(word)),
        "the self-approval was not refused: {}",
        answer.body
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = sandbox.request(&id).await?;
    ensure!(
        request["request"]["state"] == "awaiting_approval",
        "the request moved on: {}",
        request["request"]["state"]
    );
    ensure!(
        graph_writes(sandbox, ids::ADELE) == 0,
        "Adele's account was changed"
    );
    Ok(format!(
        "{id} still awaits two other approvers; refused with: {message}"
    ))
}

/// Sam asks to contain someone who does not exist.
async fn unknown_user_refused(sandbox: &Sandbox) -> ScenarioResult {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let before = sandbox.tenant.connector().messages().len();
    sam.say_in_channel("contain nobody@contoso.com INC0010001 typo in the name")
        .await?;
    let answer = wait_for_new_message(sandbox, before).await?;
    ensure!(
        answer.to_lowercase().contains("nobody@contoso.com")
            || answer.to_lowercase().contains("does not exist"),
        "the refusal does not say what is wrong: {answer}"
    );
    ensure!(
        sandbox
            .find("nobody@contoso.com", "INC0010001")
            .await?
            .is_empty(),
        "a request was stored for an unknown user"
    );
    Ok(format!(
        "answered: {}",
        answer.lines().next().unwrap_or_default()
    ))
}

/// ServiceNow asks, by signed webhook, to contain a service account.
async fn webhook_service_account(sandbox: &Sandbox) -> ScenarioResult {
    let body = serde_json::json!({
        "number": "INC0010003",
        "affected_user": "svc-backup@contoso.com",
        "requested_by": "sam.analyst@contoso.com",
        "justification": "service principal secret found in a public repository",
        "source": "servicenow",
        "risk": "high",
    })
    .to_string();
    let sent_at = chrono::Utc::now().timestamp();
    let status = super::send_webhook_at(sandbox, &body, sent_at).await?;
    ensure!(status == 202, "the webhook was answered {status}");
    // ServiceNow signs a redelivery anew: another timestamp, another
    // signature, the same request.
    let again = super::send_webhook_at(sandbox, &body, sent_at + 1).await?;
    ensure!(
        again == 200,
        "a second delivery was answered {again}, not 200"
    );
    let id = sandbox
        .wait_for_request("svc-backup@contoso.com", "INC0010003")
        .await?;
    let card = sandbox.wait_for_card(&id).await?;
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    priya.click("approve", &id, &card, None).await?;
    sandbox.wait_for_state(&id, &["contained"]).await?;
    let user = sandbox
        .tenant
        .graph()
        .user(ids::SVC_BACKUP)
        .context("no svc-backup")?;
    ensure!(
        user.account_enabled,
        "the service account was blocked; its runbook only revokes sessions"
    );
    Ok(format!(
        "{id} contained with the service-account runbook (sessions revoked, sign-in kept)"
    ))
}

/// Identity writes (PATCH and POST) Graph received for one user.
fn graph_writes(sandbox: &Sandbox, user_id: &str) -> usize {
    sandbox
        .tenant
        .graph()
        .calls()
        .iter()
        .filter(|call| call.method != "GET" && call.path.contains(user_id))
        .filter(|call| !call.path.ends_with("checkMemberGroups"))
        .count()
}

async fn wait_for_new_message(sandbox: &Sandbox, before: usize) -> anyhow::Result<String> {
    for _ in 0..200 {
        let messages = sandbox.tenant.connector().messages();
        if messages.len() > before {
            return Ok(crate::sandbox::render_text(&messages[before].activity));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the bot never answered")
}
