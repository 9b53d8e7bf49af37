//! Two `cordon serve` processes on one PostgreSQL database: every approved
//! request runs exactly once, and the run of a replica killed with SIGKILL
//! mid-step is taken over by the other once its lease expires.
//!
//! Reads the server from `CORDON_TEST_POSTGRES_URL`; without it the test
//! prints that it was skipped.

use std::time::Duration;

use cordon::sandbox::{Fault, FaultKind, SimUser, SimulatedTenant};
use serde_json::json;
use sqlx::Row;

#[path = "support/server.rs"]
mod server;
mod support;

use server::ServerProcess;

const USERS: usize = 6;

fn user_id(i: usize) -> String {
    format!("c0d0a000-0000-4000-8000-00000000{:04}", 7000 + i)
}

fn upn(i: usize) -> String {
    format!("replica.user{i}@contoso.com")
}

fn incident(i: usize) -> String {
    format!("INC002{:04}", i)
}

/// Adds `USERS` standard users, each with a security incident of its own.
fn seed(tenant: &SimulatedTenant) {
    for i in 0..USERS {
        let name = format!("Replica User {i}");
        tenant
            .graph()
            .add_user(SimUser::member(&user_id(i), &upn(i), &name));
        tenant.servicenow().add_incident(json!({
            "number": incident(i),
            "category": "security",
            "subcategory": "account_compromise",
            "short_description": format!("{}: token theft", upn(i)),
            "description": "Reported by the SOC.",
            "caller_id": "sam.analyst@contoso.com",
            "u_affected_user": upn(i),
        }));
    }
}

/// Graph writes per kind for one user: (PATCH, revokeSignInSessions).
fn writes(tenant: &SimulatedTenant, user: &str) -> (usize, usize) {
    let calls = tenant.graph().calls();
    let about = |c: &&cordon::sandbox::RecordedCall| c.path.contains(user) && c.method != "GET";
    let patches = calls
        .iter()
        .filter(about)
        .filter(|c| c.method == "PATCH")
        .count();
    let revokes = calls
        .iter()
        .filter(about)
        .filter(|c| c.path.ends_with("revokeSignInSessions"))
        .count();
    (patches, revokes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_run_every_request_exactly_once() {
    let Some(store) = support::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tenant = SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    seed(&tenant);

    // User 0's block sign-in lands, and its answer is held back so that
    // the replica running it can be killed before it journals the write.
    let held = format!("/users/{}", user_id(0));
    let late = FaultKind::AnswerLate(Duration::from_secs(30));
    tenant.graph().inject(Fault::new(late).on("PATCH", &held));

    let mut a = ServerProcess::start(&tenant, &store, dir.path(), "replica-a").await;
    let mut b = ServerProcess::start(&tenant, &store, dir.path(), "replica-b").await;

    // Requests and approvals arrive at both replicas in turn.
    let mut requests = Vec::new();
    for i in 0..USERS {
        let replica = if i % 2 == 0 { &a } else { &b };
        let id = replica.propose(&upn(i), &incident(i)).await;
        let card = replica.wait_for_card(&id).await;
        let approver = if i % 2 == 0 { &b } else { &a };
        approver
            .user(cordon::sandbox::ids::OSCAR, "Oscar Ruiz")
            .click("approve", &id, &card, None)
            .await
            .unwrap();
        requests.push(id);
    }

    // Kill whichever replica holds user 0's run, once its write landed.
    for _ in 0..400 {
        if !tenant.graph().user(&user_id(0)).unwrap().account_enabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let probe = a.store().await;
    let owner: String = sqlx::query("SELECT lease_owner FROM requests WHERE id = $1")
        .bind(&requests[0])
        .fetch_one(probe.pool())
        .await
        .unwrap()
        .try_get("lease_owner")
        .unwrap();
    let survivor = if owner.starts_with("replica-a") {
        a.kill();
        &b
    } else {
        b.kill();
        &a
    };

    for id in &requests {
        survivor.wait_for_state(id, "contained").await;
    }
    for i in 0..USERS {
        assert_eq!(writes(&tenant, &user_id(i)), (1, 1), "user {i}");
    }
    for (i, id) in requests.iter().enumerate() {
        let events = probe.audit_events(Some(id)).await.unwrap();
        let count = |name: &str| events.iter().filter(|e| e.event == name).count();
        assert_eq!(count("run_started"), 1, "request {i}");
        assert_eq!(count("run_finished"), 1, "request {i}");
        assert_eq!(count("step_done"), 6, "request {i}: each step done once");
    }
    let taken_over = probe.audit_events(Some(&requests[0])).await.unwrap();
    let resumed = taken_over
        .iter()
        .find(|e| e.event == "run_resumed")
        .expect("the survivor resumed the run");
    let replica = resumed.details["replica"].as_str().unwrap();
    assert!(replica.starts_with(&survivor.name), "{replica}");
    let steps = probe.steps(&requests[0]).await.unwrap();
    assert_eq!(steps[1].attempts, 2, "{steps:?}");
}
