//! The cards Cordon sends in Teams, as Teams would receive them: every card
//! of real runs held to the rules Teams applies, typed text that cannot
//! turn into links or template expressions, and the approval card that
//! shows working buttons only to the approver who may use them.

use cordon::demo::{BotAnswer, Sandbox};
use cordon::sandbox::tenant::ids;
use cordon::sandbox::transcript::adaptive_cards;
use cordon::teams::cards::check_teams_rules;
use serde_json::Value;
use support::{eventually, graph_writes};

mod support;

async fn sandbox() -> Sandbox {
    Sandbox::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("sandbox starts")
}

/// Sam Lee asks for `upn` to be contained; returns the request id and the
/// approval card's activity id.
async fn sam_asks(sandbox: &Sandbox, upn: &str, incident: &str, why: &str) -> (String, String) {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let answer = sam
        .say_in_channel(&format!("contain {upn} {incident} {why}"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let id = sandbox.wait_for_request(upn, incident).await.unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    (id, card)
}

/// The card an invoke was answered with, if it was answered with one.
fn answered_card(answer: &BotAnswer) -> Option<&Value> {
    (answer.body["type"] == "application/vnd.microsoft.card.adaptive")
        .then(|| &answer.body["value"])
}

/// Every card the simulated connector received: each posted activity and
/// each version it was updated to.
fn sent_cards(sandbox: &Sandbox) -> Vec<Value> {
    let mut cards = Vec::new();
    for message in sandbox.tenant.connector().messages() {
        let versions = std::iter::once(&message.activity).chain(&message.versions);
        for activity in versions {
            cards.extend(adaptive_cards(activity).cloned());
        }
    }
    cards
}

/// Every text and card text the simulated connector received.
fn everything_shown(sandbox: &Sandbox) -> String {
    let mut shown = String::new();
    for message in sandbox.tenant.connector().messages() {
        shown.push_str(message.text().unwrap_or_default());
        shown.push('\n');
    }
    for card in sent_cards(sandbox) {
        shown.push_str(&card_text(&card));
    }
    shown
}

/// The card of activity `card_id` as everyone sees it now.
fn shared_card(sandbox: &Sandbox, card_id: &str) -> Value {
    let message = sandbox.tenant.connector().message(card_id).unwrap();
    let latest = message.versions.last().unwrap_or(&message.activity);
    let card = adaptive_cards(latest).next().cloned();
    card.expect("a card")
}

/// The verbs of the card's `Action.Execute` buttons, in order.
fn verbs(card: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_verbs(card.get("actions"), &mut found);
    collect_verbs(card.get("body"), &mut found);
    found
}

fn collect_verbs(value: Option<&Value>, found: &mut Vec<String>) {
    match value {
        Some(Value::Array(items)) => items.iter().for_each(|i| collect_verbs(Some(i), found)),
        Some(Value::Object(map)) => {
            if map.get("type").and_then(Value::as_str) == Some("Action.Execute") {
                found.push(map["verb"].as_str().unwrap_or_default().to_string());
            }
            for (key, item) in map {
                if key != "refresh" {
                    collect_verbs(Some(item), found);
                }
            }
        }
        _ => {}
    }
}

/// Every text a card shows, joined with new lines.
fn card_text(card: &Value) -> String {
    let mut texts = Vec::new();
    collect_texts(card, &mut texts);
    texts.join("\n")
}

fn collect_texts(value: &Value, texts: &mut Vec<String>) {
    match value {
        Value::String(text) => texts.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_texts(i, texts)),
        Value::Object(map) => map.values().for_each(|v| collect_texts(v, texts)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_card_of_real_runs_meets_the_rules_teams_applies() {
    let sandbox = sandbox().await;
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    let mut answers = Vec::new();

    // A standard user contained, a privileged one with two approvals, a
    // rejection with a reason, a partial containment retried.
    let (alice, alice_card) =
        sam_asks(&sandbox, ids::ALICE_UPN, ids::INC_ALICE, "token theft").await;
    answers.push(
        oscar
            .click("refresh", &alice, &alice_card, None)
            .await
            .unwrap(),
    );
    answers.push(
        oscar
            .click("approve", &alice, &alice_card, None)
            .await
            .unwrap(),
    );
    sandbox
        .wait_for_state(&alice, &["contained"])
        .await
        .unwrap();

    let (adele, adele_card) =
        sam_asks(&sandbox, ids::ADELE_UPN, ids::INC_ADELE, "risky sign-in").await;
    answers.push(
        oscar
            .click("approve", &adele, &adele_card, None)
            .await
            .unwrap(),
    );
    answers.push(
        priya
            .click("approve", &adele, &adele_card, None)
            .await
            .unwrap(),
    );
    sandbox
        .wait_for_state(&adele, &["contained"])
        .await
        .unwrap();

    let (svc, svc_card) = sam_asks(
        &sandbox,
        ids::SVC_BACKUP_UPN,
        ids::INC_SVC_BACKUP,
        "leaked key",
    )
    .await;
    let reason = Some("the key was rotated already");
    answers.push(
        priya
            .click("reject", &svc, &svc_card, reason)
            .await
            .unwrap(),
    );
    sandbox.wait_for_state(&svc, &["rejected"]).await.unwrap();

    // Refusals, answers to other commands, and a refused click.
    for text in [
        "contain nobody@contoso.com INC0010001 typo",
        "contain breakglass@contoso.com INC0010005 test",
        "status INC0010001",
        "policy adele.admin@contoso.com",
        "help",
        "contian alice@contoso.com INC0010001 typo",
    ] {
        answers.push(sam.say_in_channel(text).await.unwrap());
    }
    answers.push(
        sam.click("approve", &alice, &alice_card, None)
            .await
            .unwrap(),
    );
    for (card_id, last) in [
        (&alice_card, "Contained"),
        (&adele_card, "Contained"),
        (&svc_card, "Rejected"),
    ] {
        eventually(last, || {
            card_text(&shared_card(&sandbox, card_id)).contains(last)
        })
        .await;
    }

    for shown in [
        "Cordon commands",
        "did you mean",
        "break-glass",
        "Privileged",
    ] {
        eventually(shown, || everything_shown(&sandbox).contains(shown)).await;
    }

    let mut cards = sent_cards(&sandbox);
    cards.extend(answers.iter().filter_map(answered_card).cloned());
    assert!(cards.len() >= 15, "only {} cards seen", cards.len());
    for card in &cards {
        if let Err(problems) = check_teams_rules(card) {
            panic!("{problems:#?}\nin {card:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_text_cannot_add_links_markup_or_template_expressions() {
    let sandbox = sandbox().await;
    let hostile = "see [the report](https://evil.example/x) **now** ${request_id} \
                   <img src=x onerror=alert(1)> \"}]} ![img](https://evil.example/p.png)";
    let (id, card_id) = sam_asks(&sandbox, ids::ALICE_UPN, ids::INC_ALICE, hostile).await;

    let card = shared_card(&sandbox, &card_id);
    check_teams_rules(&card).unwrap_or_else(|p| panic!("{p:#?}"));
    let text = card_text(&card);
    let shown = text
        .lines()
        .find(|line| line.contains("the report"))
        .unwrap_or_else(|| panic!("justification not shown in {text}"));
    assert!(
        shown.contains(r"\[the report\]\(https://evil.example/x\)"),
        "{shown}"
    );
    assert!(shown.contains(r"\*\*now\*\*"), "{shown}");
    assert!(
        shown.contains(r"\<img src=x onerror=alert\(1\)\>"),
        "{shown}"
    );
    assert!(!shown.contains("${"), "{shown}");
    assert!(!shown.contains(&id), "the expression was expanded: {shown}");
    let urls: Vec<&str> = text.lines().filter(|l| l.starts_with("http")).collect();
    assert!(
        urls.iter().all(|url| !url.contains("evil.example")),
        "a typed URL became a card link: {urls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approver_who_may_decide_gets_working_buttons() {
    let sandbox = sandbox().await;
    let (id, card_id) = sam_asks(&sandbox, ids::ALICE_UPN, ids::INC_ALICE, "token theft").await;

    // The card everyone sees asks viewers to open their own view.
    let shared = shared_card(&sandbox, &card_id);
    assert_eq!(verbs(&shared), ["refresh"], "{shared:#}");
    assert_eq!(shared["refresh"]["action"]["verb"], "refresh");
    assert!(
        shared["refresh"].get("userIds").is_none(),
        "no approver is known yet, so every viewer refreshes: {shared:#}"
    );

    // An approver who may decide gets Approve and Reject, for them alone.
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let answer = oscar.click("refresh", &id, &card_id, None).await.unwrap();
    let own = answered_card(&answer).expect("a card for Oscar");
    assert_eq!(verbs(own), ["approve", "reject"], "{own:#}");

    // The requester, though an approver elsewhere, sees why they cannot.
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let answer = sam.click("refresh", &id, &card_id, None).await.unwrap();
    let own = answered_card(&answer).expect("a card for Sam");
    assert!(verbs(own).is_empty(), "{own:#}");
    assert!(card_text(own).contains("You cannot decide"), "{own:#}");

    // Someone outside the approver group sees the same.
    let alice = sandbox.user(ids::ALICE, "Alice Wong");
    let answer = alice.click("refresh", &id, &card_id, None).await.unwrap();
    let own = answered_card(&answer).expect("a card for Alice");
    assert!(verbs(own).is_empty(), "{own:#}");
    assert!(card_text(own).contains("You cannot decide"), "{own:#}");

    // Nothing of this was a decision.
    let request = sandbox.request(&id).await.unwrap();
    assert_eq!(request["request"]["state"], "awaiting_approval");
    assert!(graph_writes(&sandbox.tenant, ids::ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_seen_once_is_refreshed_automatically_on_later_cards() {
    let sandbox = sandbox().await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let (first, first_card) =
        sam_asks(&sandbox, ids::ALICE_UPN, ids::INC_ALICE, "token theft").await;
    oscar
        .click("approve", &first, &first_card, None)
        .await
        .unwrap();
    sandbox
        .wait_for_state(&first, &["contained"])
        .await
        .unwrap();

    let (_, card_id) = sam_asks(&sandbox, ids::ADELE_UPN, ids::INC_ADELE, "risky sign-in").await;

    let oscar_mri = format!("29:{}", ids::OSCAR);
    eventually("Oscar's MRI in refresh.userIds", || {
        let card = shared_card(&sandbox, &card_id);
        card["refresh"]["userIds"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|id| id == &oscar_mri))
    })
    .await;
    let card = shared_card(&sandbox, &card_id);
    assert_eq!(verbs(&card), ["refresh"], "still no buttons for everyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_request_gives_every_viewer_the_same_card_without_buttons() {
    let sandbox = sandbox().await;
    let (id, card_id) = sam_asks(&sandbox, ids::ALICE_UPN, ids::INC_ALICE, "token theft").await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card_id, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    let answer = priya.click("refresh", &id, &card_id, None).await.unwrap();
    let own = answered_card(&answer).expect("a card for Priya");

    assert!(verbs(own).is_empty(), "{own:#}");
    assert!(card_text(own).contains("Contained"), "{own:#}");
    let shared = shared_card(&sandbox, &card_id);
    assert!(verbs(&shared).is_empty(), "{shared:#}");
}
