//! The store's guarantees, on SQLite and on PostgreSQL.
//!
//! PostgreSQL tests read their server from `CORDON_TEST_POSTGRES_URL` (the
//! CI script sets it) and create a database of their own; without it they
//! print that they were skipped.

use cordon::audit::AuditEntry;
use cordon::containment::model::{
    new_request_id, now_millis, Approval, ContainmentRequest, Decision, Requester,
};
use cordon::containment::state::{RequestState, Transition};
use cordon::policy::{Classification, RequestKind, Source, StepKind};
use cordon::store::{DecisionRecorded, Inserted, Store, StoreError};
use serde_json::json;

mod support;

fn request(upn: &str, incident: &str, approvals: u32) -> ContainmentRequest {
    let now = now_millis();
    ContainmentRequest {
        id: new_request_id(),
        kind: RequestKind::Containment,
        target_upn: upn.into(),
        target_id: "obj-1".into(),
        target_name: "Alice".into(),
        target_department: None,
        incident_number: incident.into(),
        incident_sys_id: "sys-1".into(),
        justification: "token theft".into(),
        requester: Requester {
            id: "requester".into(),
            name: "Sam".into(),
        },
        source: Source::Teams,
        risk: None,
        classification: Classification::Standard,
        rule: "standard".into(),
        runbook: "standard".into(),
        steps: vec![StepKind::BlockSignIn, StepKind::RevokeSessions],
        required_approvals: approvals,
        auto_approved_by: None,
        state: RequestState::AwaitingApproval,
        outcome: None,
        origin: None,
        thread: None,
        related_request_id: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 60_000,
        run_count: 0,
    }
}

fn entry(id: &str, event: &str) -> AuditEntry {
    AuditEntry::new(id.to_string(), "tester", event, json!({ "n": 1 }))
}

fn approval(who: &str, decision: Decision) -> Approval {
    Approval {
        approver_id: who.into(),
        approver_name: who.into(),
        decision,
        reason: None,
        at: now_millis(),
    }
}

async fn one_request_per_target_and_incident(store: Store) {
    let first = request("alice@contoso.com", "INC1", 1);
    let created = store
        .insert_request(&first, &entry(&first.id, "request_received"))
        .await
        .unwrap();
    assert!(matches!(created, Inserted::New(_)));
    let second = request("alice@contoso.com", "INC1", 1);
    match store
        .insert_request(&second, &entry(&second.id, "request_received"))
        .await
        .unwrap()
    {
        Inserted::Existing(existing) => assert_eq!(existing.id, first.id),
        Inserted::New(_) => panic!("a duplicate was stored"),
    }
    assert_eq!(
        store.audit_events(None).await.unwrap().len(),
        1,
        "the duplicate left no event"
    );
    assert_eq!(store.steps(&first.id).await.unwrap().len(), 2);
}

async fn quorum_and_double_clicks(store: Store) {
    let r = request("adele@contoso.com", "INC2", 2);
    store
        .insert_request(&r, &entry(&r.id, "request_received"))
        .await
        .unwrap();
    let first = store
        .record_decision(
            &r.id,
            &approval("oscar", Decision::Approve),
            &entry(&r.id, "approval"),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        DecisionRecorded::Recorded {
            state: RequestState::AwaitingApproval,
            approvals: 1
        }
    );
    let again = store
        .record_decision(
            &r.id,
            &approval("oscar", Decision::Approve),
            &entry(&r.id, "approval"),
        )
        .await
        .unwrap();
    assert_eq!(again, DecisionRecorded::AlreadyDecided);
    let second = store
        .record_decision(
            &r.id,
            &approval("priya", Decision::Approve),
            &entry(&r.id, "approval"),
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        DecisionRecorded::Recorded {
            state: RequestState::Approved,
            approvals: 2
        }
    );
    let late = store
        .record_decision(
            &r.id,
            &approval("sam", Decision::Reject),
            &entry(&r.id, "rejection"),
        )
        .await
        .unwrap();
    assert_eq!(late, DecisionRecorded::NotAwaiting(RequestState::Approved));
}

async fn transitions_are_compare_and_set(store: Store) {
    let r = request("bob@contoso.com", "INC3", 1);
    store
        .insert_request(&r, &entry(&r.id, "request_received"))
        .await
        .unwrap();
    let illegal = store
        .transition(
            &r.id,
            RequestState::AwaitingApproval,
            Transition::Start,
            None,
            &entry(&r.id, "x"),
        )
        .await;
    assert!(
        matches!(illegal, Err(StoreError::Illegal(_))),
        "{illegal:?}"
    );
    let stale = store
        .transition(
            &r.id,
            RequestState::Approved,
            Transition::Start,
            None,
            &entry(&r.id, "x"),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    store
        .transition(
            &r.id,
            RequestState::AwaitingApproval,
            Transition::Expire,
            None,
            &entry(&r.id, "expired"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.require(&r.id).await.unwrap().state,
        RequestState::Expired
    );
    let events = store.audit_events(Some(&r.id)).await.unwrap();
    assert_eq!(events.len(), 2, "refused transitions append nothing");
}

async fn leases_are_held_by_one_owner(store: Store) {
    let r = request("carol@contoso.com", "INC4", 1);
    store
        .insert_request(&r, &entry(&r.id, "request_received"))
        .await
        .unwrap();
    store
        .transition(
            &r.id,
            RequestState::AwaitingApproval,
            Transition::Approve,
            None,
            &entry(&r.id, "ok"),
        )
        .await
        .unwrap();
    let a = store.claim_runs("replica-a", 60_000, 10).await.unwrap();
    let b = store.claim_runs("replica-b", 60_000, 10).await.unwrap();
    assert_eq!(a, vec![r.id.clone()]);
    assert!(b.is_empty(), "a held lease is not claimed twice");
    assert!(store
        .step_started(&r.id, 1, "replica-b")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.step_started(&r.id, 1, "replica-a").await.unwrap(),
        Some(1)
    );
    store.release_lease(&r.id, "replica-a").await.unwrap();
    let expired = store.claim_runs("replica-b", -1, 10).await.unwrap();
    assert_eq!(expired, vec![r.id.clone()], "a released lease is claimable");
    let taken_over = store.claim_runs("replica-c", 60_000, 10).await.unwrap();
    assert_eq!(
        taken_over,
        vec![r.id.clone()],
        "an expired lease is taken over"
    );
}

async fn the_audit_chain_verifies_and_detects_tampering(store: Store) {
    for i in 0..5 {
        let r = request(&format!("user{i}@contoso.com"), "INC5", 1);
        store
            .insert_request(&r, &entry(&r.id, "request_received"))
            .await
            .unwrap();
    }
    let events = store.audit_events(None).await.unwrap();
    let (seq, hash) = store.audit_head().await.unwrap();
    assert_eq!(cordon::audit::verify(&events, (seq, &hash)), Ok(5));
    support::allow_audit_tampering(&store).await;
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
        .execute(store.pool())
        .await
        .unwrap();
    let events = store.audit_events(None).await.unwrap();
    assert_eq!(
        cordon::audit::verify(&events, (seq, &hash)),
        Err(cordon::audit::ChainError::Altered { seq: 3 })
    );
}

/// Every (state, transition) pair the state machine refuses is refused by
/// the store too, changes nothing and appends no audit event.
async fn every_illegal_transition_is_refused_and_leaves_no_trace(store: Store) {
    const TRANSITIONS: [Transition; 8] = [
        Transition::Approve,
        Transition::Reject,
        Transition::Expire,
        Transition::Start,
        Transition::Succeed,
        Transition::SucceedPartially,
        Transition::Fail,
        Transition::Retry,
    ];
    let r = request("dave@contoso.com", "INC6", 1);
    store
        .insert_request(&r, &entry(&r.id, "request_received"))
        .await
        .unwrap();
    let mut refused = 0;
    for state in RequestState::ALL {
        sqlx::query("UPDATE requests SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(&r.id)
            .execute(store.pool())
            .await
            .unwrap();
        for transition in TRANSITIONS {
            if state.apply(RequestKind::Containment, transition).is_ok() {
                continue;
            }
            let before = store.audit_events(None).await.unwrap().len();
            let answer = store
                .transition(&r.id, state, transition, Some("x"), &entry(&r.id, "x"))
                .await;
            assert!(
                matches!(answer, Err(StoreError::Illegal(_))),
                "{state} by {transition:?}: {answer:?}"
            );
            let now = store.require(&r.id).await.unwrap();
            assert_eq!(now.state, state, "{state} by {transition:?}");
            assert_eq!(store.audit_events(None).await.unwrap().len(), before);
            refused += 1;
        }
    }
    assert_eq!(refused, 9 * 8 - 9, "all but the nine legal moves");
}

async fn resent_activities_are_seen_once(store: Store) {
    assert!(store.first_sighting("conv|1").await.unwrap());
    assert!(!store.first_sighting("conv|1").await.unwrap());
    assert!(store.first_sighting("conv|2").await.unwrap());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::support::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = super::support::postgres_store().await else {
                        return;
                    };
                    super::$name(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    one_request_per_target_and_incident,
    quorum_and_double_clicks,
    transitions_are_compare_and_set,
    leases_are_held_by_one_owner,
    the_audit_chain_verifies_and_detects_tampering,
    resent_activities_are_seen_once,
    every_illegal_transition_is_refused_and_leaves_no_trace,
);
