//! Operational metrics in Prometheus text format, served at `GET /metrics`.
//!
//! Counters and histograms live in one registry per process, which is what
//! Prometheus scrapes: step latency and retries (recorded by the runner),
//! Graph throttling and retries (recorded by the Graph client), and the
//! time from the last approval to the end of a run. What the store knows
//! (requests by state, approvals pending) is read from it at scrape time,
//! so those numbers are the same on every replica and survive restarts.
//!
//! Recording is a few map operations under a std mutex (never held across
//! an await), cheap next to the HTTP call it measures. Labels are drawn
//! from fixed sets (step names, states, status codes), never from user
//! input, so the number of series stays small. Nothing here decides
//! anything or reads a secret.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::{LazyLock, Mutex};

use crate::containment::model::ContainmentRequest;
use crate::containment::state::RequestState;
use crate::containment::steps::StepResult;
use crate::policy::StepKind;
use crate::store::{Store, StoreError};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds, in seconds, of the step latency buckets.
const STEP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Upper bounds, in seconds, of the approval-to-contained buckets.
const RUN_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A metric family this process records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    StepDuration,
    StepRetries,
    GraphThrottled,
    GraphRetries,
    RunsFinished,
    ApprovalToContained,
}

impl Family {
    const ALL: [Family; 6] = [
        Family::StepDuration,
        Family::StepRetries,
        Family::GraphThrottled,
        Family::GraphRetries,
        Family::RunsFinished,
        Family::ApprovalToContained,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::StepDuration => "cordon_step_duration_seconds",
            Family::StepRetries => "cordon_step_retries_total",
            Family::GraphThrottled => "cordon_graph_throttled_total",
            Family::GraphRetries => "cordon_graph_retries_total",
            Family::RunsFinished => "cordon_runs_finished_total",
            Family::ApprovalToContained => "cordon_approval_to_contained_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::StepDuration => "Time one attempt of a runbook step took, by step and status.",
            Family::StepRetries => "Attempts of a runbook step after its first, by step.",
            Family::GraphThrottled => "Answers with status 429 (throttled) received from Graph.",
            Family::GraphRetries => "Graph calls repeated after a transient failure, by reason.",
            Family::RunsFinished => "Runbook runs that reached an end, by final state.",
            Family::ApprovalToContained => {
                "Time from the approval that completed the quorum to the end of \
                 the run, for runs that contained the account."
            }
        }
    }

    fn buckets(self) -> Option<&'static [f64]> {
        match self {
            Family::StepDuration => Some(STEP_BUCKETS),
            Family::ApprovalToContained => Some(RUN_BUCKETS),
            _ => None,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Series {
    Counter(u64),
    Histogram {
        /// Per bucket, not yet cumulative.
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

static REGISTRY: LazyLock<Mutex<BTreeMap<(Family, Labels), Series>>> =
    LazyLock::new(Mutex::default);

fn add(family: Family, labels: Labels, by: u64) {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let series = registry
        .entry((family, labels))
        .or_insert(Series::Counter(0));
    if let Series::Counter(n) = series {
        *n += by;
    }
}

fn observe(family: Family, labels: Labels, value: f64) {
    let buckets = family.buckets().unwrap_or(&[]);
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let series = registry
        .entry((family, labels))
        .or_insert_with(|| Series::Histogram {
            counts: vec![0; buckets.len()],
            sum: 0.0,
            count: 0,
        });
    if let Series::Histogram { counts, sum, count } = series {
        if let Some(i) = buckets.iter().position(|bound| value <= *bound) {
            counts[i] += 1;
        }
        *sum += value;
        *count += 1;
    }
}

/// Runs one attempt of a step, recording how long it took and, past the
/// first attempt, that it was a retry.
pub async fn time_step(
    step: StepKind,
    attempt: i64,
    work: impl Future<Output = StepResult>,
) -> StepResult {
    let started = tokio::time::Instant::now();
    let result = work.await;
    let seconds = started.elapsed().as_secs_f64();
    let labels = vec![
        ("step", step.as_str().to_string()),
        ("status", result.status.as_str().to_string()),
    ];
    observe(Family::StepDuration, labels, seconds);
    if attempt > 1 {
        add(Family::StepRetries, vec![("step", step.as_str().into())], 1);
    }
    result
}

/// Notes an error answer from Graph; only throttling is counted.
pub fn graph_answer(status: u16) {
    if status == 429 {
        add(Family::GraphThrottled, Vec::new(), 1);
    }
}

/// Notes that a Graph call is about to be repeated after a failure with
/// `status` (`None`: the connection failed or timed out).
pub fn graph_retry(status: Option<u16>) {
    let reason = status.map_or_else(|| "transport".to_string(), |s| s.to_string());
    add(Family::GraphRetries, vec![("reason", reason)], 1);
}

/// Notes the end of a run. For a run that contained the account, the time
/// since the approval that let it start is observed too (from the audit
/// trail, so a run resumed by another replica measures the same).
pub async fn run_finished(store: &Store, request: &ContainmentRequest, state: RequestState) {
    add(
        Family::RunsFinished,
        vec![("state", state.as_str().into())],
        1,
    );
    if !matches!(
        state,
        RequestState::Contained | RequestState::PartiallyContained
    ) {
        return;
    }
    let Ok(events) = store.audit_events(Some(&request.id)).await else {
        return;
    };
    let approved_at = events
        .iter()
        .rev()
        .find(|e| e.event == "approval_recorded" || e.event == "auto_approved")
        .map(|e| e.at);
    if let Some(at) = approved_at {
        let seconds = (crate::containment::model::now_millis() - at).max(0) as f64 / 1000.0;
        let labels = vec![("state", state.as_str().to_string())];
        observe(Family::ApprovalToContained, labels, seconds);
    }
}

/// Everything, in Prometheus text format: the recorded families, then the
/// gauges read from `store` now.
pub async fn render(store: &Store) -> Result<String, StoreError> {
    let by_state = store.count_by_state().await?;
    let mut out = String::new();
    render_recorded(&mut out);

    gauge_header(
        &mut out,
        "cordon_requests",
        "Containment requests by state.",
    );
    for state in RequestState::ALL {
        let n = count_of(&by_state, state);
        let _ = writeln!(out, "cordon_requests{{state=\"{}\"}} {n}", state.as_str());
    }
    gauge_header(
        &mut out,
        "cordon_approvals_pending",
        "Requests waiting for an approver's decision.",
    );
    let pending = count_of(&by_state, RequestState::AwaitingApproval);
    let _ = writeln!(out, "cordon_approvals_pending {pending}");
    Ok(out)
}

fn count_of(by_state: &[(RequestState, i64)], state: RequestState) -> i64 {
    by_state
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| *n)
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn render_recorded(out: &mut String) {
    let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    for family in Family::ALL {
        let name = family.name();
        let kind = if family.buckets().is_some() {
            "histogram"
        } else {
            "counter"
        };
        let _ = writeln!(out, "# HELP {name} {}", family.help());
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let mut any = false;
        for ((_, labels), series) in registry.iter().filter(|((f, _), _)| *f == family) {
            any = true;
            render_series(out, name, family, labels, series);
        }
        // A counter without labels is known before anything happened.
        if !any && family == Family::GraphThrottled {
            let _ = writeln!(out, "{name} 0");
        }
    }
}

fn render_series(out: &mut String, name: &str, family: Family, labels: &Labels, series: &Series) {
    match series {
        Series::Counter(n) => {
            let _ = writeln!(out, "{name}{} {n}", label_text(labels, None));
        }
        Series::Histogram { counts, sum, count } => {
            let bounds = family.buckets().unwrap_or(&[]);
            let mut cumulative = 0;
            for (bound, n) in bounds.iter().zip(counts) {
                cumulative += n;
                let le = bound.to_string();
                let labels = label_text(labels, Some(&le));
                let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
            }
            let all = label_text(labels, Some("+Inf"));
            let _ = writeln!(out, "{name}_bucket{all} {count}");
            let plain = label_text(labels, None);
            let _ = writeln!(out, "{name}_sum{plain} {sum}");
            let _ = writeln!(out, "{name}_count{plain} {count}");
        }
    }
}

/// `{a="1",b="2"}`, with `le` last when given; empty without labels.
fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let labels = vec![("reason", "a\"b\\c\nd".to_string())];
        assert_eq!(label_text(&labels, None), r#"{reason="a\"b\\c\nd"}"#);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let labels = vec![("step", "unit_test_step".to_string())];
        let series = Series::Histogram {
            counts: {
                let mut c = vec![0; STEP_BUCKETS.len()];
                c[0] = 1;
                c[3] = 2;
                c
            },
            sum: 0.1,
            count: 4,
        };
        let mut out = String::new();
        render_series(&mut out, "m", Family::StepDuration, &labels, &series);
        assert!(out.contains("m_bucket{step=\"unit_test_step\",le=\"0.005\"} 1\n"));
        assert!(out.contains("m_bucket{step=\"unit_test_step\",le=\"0.05\"} 3\n"));
        assert!(out.contains("m_bucket{step=\"unit_test_step\",le=\"120\"} 3\n"));
        assert!(out.contains("m_bucket{step=\"unit_test_step\",le=\"+Inf\"} 4\n"));
        assert!(out.contains("m_count{step=\"unit_test_step\"} 4\n"));
    }
}
