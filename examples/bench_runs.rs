//! Load script for the containment engine: how long runs take once the
//! approval click arrives, against the simulated tenant with no latency
//! injected (Graph, ServiceNow and the Bot Connector answer over loopback
//! as fast as they can).
//!
//! Teams' per-thread send limits are lifted so that the engine, not Teams'
//! quotas, is measured. Three measurements, on SQLite and, when `--postgres URL` is given, on
//! a fresh PostgreSQL database of that server:
//! - latency: `--sequential` requests approved one after another; for each,
//!   the time from sending the approval invoke to the request being
//!   contained in the store (polled every millisecond), and the time the
//!   invoke took to be answered;
//! - concurrency: `--concurrent` approvals sent at once, with as many runs
//!   allowed at once (`--slots` to change that), so that they execute
//!   together; the latency of each approval invoke, then, from the moment
//!   every approval is answered until every run has ended, of "refresh"
//!   invokes sent one after another (5 ms apart) on another card;
//! - bulk: `--bulk` requests approved at once (64 clicks in flight); the time
//!   from the first click to the last request contained, and a check that
//!   every target got exactly one block and one revoke.
//!
//! Run with `cargo run --release --example bench_runs -- [--postgres URL]`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cordon::botframework::throttle::ThreadLimits;
use cordon::config::Config;
use cordon::containment::state::RequestState;
use cordon::demo::{Sandbox, TeamsUser, API_TOKEN};
use cordon::retry::RetryPolicy;
use cordon::sandbox::graph::SimUser;
use cordon::sandbox::tenant::ids;
use cordon::startup::Timing;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

struct Options {
    sequential: usize,
    concurrent: usize,
    bulk: usize,
    /// Runs one replica executes at once in the concurrency measurement;
    /// by default as many as `concurrent`.
    slots: Option<usize>,
    postgres: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        sequential: 200,
        concurrent: 100,
        bulk: 1000,
        slots: None,
        postgres: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sequential" => options.sequential = value.parse()?,
            "--concurrent" => options.concurrent = value.parse()?,
            "--bulk" => options.bulk = value.parse()?,
            "--slots" => options.slots = Some(value.parse()?),
            "--postgres" => options.postgres = Some(value),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

/// A request waiting for approval, with the card its click must name.
#[derive(Clone)]
struct Pending {
    id: String,
    card: String,
    user_id: String,
}

/// The bench's world: a sandbox whose tenant gains a user and an
/// incident for every request the bench will make.
struct Bench {
    sandbox: Sandbox,
    http: reqwest::Client,
    oscar: TeamsUser,
    next: usize,
}

impl Bench {
    async fn start(store: Option<String>, concurrency: usize) -> anyhow::Result<Bench> {
        let adjust = |config: &mut Config| {
            config.api.rate_limit_per_minute = 1_000_000;
            config.api.rate_limit_burst = 100_000;
            config.runner.concurrency = concurrency;
        };
        // Teams' per-thread limits are lifted: they would measure Teams'
        // quotas, not the engine.
        let timing = Timing {
            retry: RetryPolicy::fast(),
            timeout: Duration::from_secs(5),
            thread_limits: ThreadLimits::new(Vec::new()),
        };
        let bind = "127.0.0.1:0".parse()?;
        let sandbox = Sandbox::start_timed(bind, store, adjust, timing).await?;
        let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
        Ok(Bench {
            sandbox,
            http: reqwest::Client::new(),
            oscar,
            next: 0,
        })
    }

    /// Adds a user and an incident about them, and proposes to contain
    /// the user through the automation API.
    async fn propose(&mut self) -> anyhow::Result<(String, String)> {
        self.next += 1;
        let n = self.next;
        let user_id = format!("b0000000-0000-4000-8000-{n:012}");
        let upn = format!("bench.user{n}@contoso.com");
        let number = format!("INC9{n:06}");
        let tenant = &self.sandbox.tenant;
        let user = SimUser::member(&user_id, &upn, &format!("Bench User {n}"));
        tenant.graph().add_user(user);
        tenant.servicenow().add_incident(json!({
            "number": number,
            "category": "security",
            "subcategory": "account_compromise",
            "short_description": format!("{upn}: token theft"),
            "caller_id": ids::SAM_UPN,
            "u_affected_user": upn,
        }));
        let answer = self
            .http
            .post(format!("{}/api/v1/containments", self.sandbox.base_url))
            .bearer_auth(API_TOKEN)
            .json(&json!({
                "number": number,
                "affected_user": upn,
                "requested_by": ids::SAM_UPN,
                "justification": "benchmark",
                "source": "manual",
            }))
            .send()
            .await?;
        if answer.status() != 202 {
            bail!("proposal {n} answered {}", answer.status());
        }
        let body: serde_json::Value = answer.json().await?;
        let id = body["request_id"]
            .as_str()
            .context("request_id")?
            .to_string();
        Ok((id, user_id))
    }

    /// Proposes `count` requests and waits until each card is posted.
    async fn pending(&mut self, count: usize) -> anyhow::Result<Vec<Pending>> {
        let mut proposed = Vec::with_capacity(count);
        for _ in 0..count {
            proposed.push(self.propose().await?);
        }
        let mut pending = Vec::with_capacity(count);
        for (id, user_id) in proposed {
            let card = self.card_of(&id).await?;
            pending.push(Pending { id, card, user_id });
        }
        Ok(pending)
    }

    async fn card_of(&self, id: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let request = self.sandbox.engine.store.load(id).await?;
            if let Some(thread) = request.and_then(|r| r.thread) {
                return Ok(thread.card_activity_id);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("the card of {id} was never posted")
    }

    /// Sends Oscar's approval; returns how long the invoke took.
    async fn approve(&self, request: &Pending) -> anyhow::Result<Duration> {
        click(&self.oscar, "approve", request).await
    }

    async fn wait_until_contained(&self, id: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let request = self.sandbox.engine.store.load(id).await?;
            match request.map(|r| r.state) {
                Some(RequestState::Contained) => return Ok(()),
                Some(RequestState::Failed | RequestState::PartiallyContained) => {
                    bail!("{id} ended without being contained")
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        bail!("{id} was not contained within {timeout:?}")
    }

    /// Block and revoke calls Graph received about `user_id`.
    fn writes_about(&self, user_id: &str) -> (usize, usize) {
        let calls = self.sandbox.tenant.graph().calls();
        let about = |suffix: &str, method: &str| {
            calls
                .iter()
                .filter(|c| c.method == method && c.status.is_some_and(|s| s < 300))
                .filter(|c| c.path.ends_with(suffix))
                .count()
        };
        (
            about(&format!("/users/{user_id}"), "PATCH"),
            about(&format!("/users/{user_id}/revokeSignInSessions"), "POST"),
        )
    }
}

async fn click(user: &TeamsUser, verb: &str, request: &Pending) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let answer = user.click(verb, &request.id, &request.card, None).await?;
    let took = start.elapsed();
    if answer.status != 200 || answer.body["statusCode"] != 200 {
        bail!("{verb} on {} answered {}", request.id, answer.body);
    }
    Ok(took)
}

/// Sends an approval for each request, at most `in_flight` at a time;
/// returns how long each invoke took.
async fn approve_all(
    bench: &Arc<Bench>,
    requests: &[Pending],
    in_flight: usize,
) -> anyhow::Result<Vec<Duration>> {
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut clicks = JoinSet::new();
    for request in requests.iter().cloned() {
        let (bench, gate) = (bench.clone(), gate.clone());
        clicks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            bench.approve(&request).await
        });
    }
    let mut took = Vec::with_capacity(requests.len());
    while let Some(click) = clicks.join_next().await {
        took.push(click??);
    }
    Ok(took)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "n={} p50 {} p90 {} p99 {} max {}",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default()),
    )
}

async fn latency(store: Option<String>, count: usize) -> anyhow::Result<()> {
    let mut bench = Bench::start(store, 16).await?;
    let pending = bench.pending(count).await?;
    let mut to_contained = Vec::with_capacity(count);
    let mut invokes = Vec::with_capacity(count);
    for request in &pending {
        let start = Instant::now();
        invokes.push(bench.approve(request).await?);
        bench
            .wait_until_contained(&request.id, Duration::from_secs(30))
            .await?;
        to_contained.push(start.elapsed());
    }
    println!(
        "  approval click to contained, one at a time: {}",
        summary(to_contained)
    );
    println!(
        "  approval invoke answered:                   {}",
        summary(invokes)
    );
    bench.sandbox.stop();
    Ok(())
}

async fn concurrency(store: Option<String>, count: usize, slots: usize) -> anyhow::Result<()> {
    let mut bench = Bench::start(store, slots).await?;
    let pending = bench.pending(count).await?;
    let watched = bench.pending(1).await?.remove(0);
    let priya = bench.sandbox.user(ids::PRIYA, "Priya Shah");
    let bench = Arc::new(bench);

    // Every approval at once; refreshes on another card until every run
    // has ended.
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (bench, done) = (bench.clone(), done.clone());
        let ids: Vec<String> = pending.iter().map(|r| r.id.clone()).collect();
        tokio::spawn(async move {
            let result = async {
                for id in &ids {
                    let timeout = Duration::from_secs(120);
                    bench.wait_until_contained(id, timeout).await?;
                }
                anyhow::Ok(start.elapsed())
            }
            .await;
            done.store(true, Ordering::SeqCst);
            result
        })
    };
    let approvals = approve_all(&bench, &pending, count).await?;
    let mut refreshes = Vec::new();
    while !done.load(Ordering::SeqCst) {
        refreshes.push(click(&priya, "refresh", &watched).await?);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_done = waiter.await??;
    println!(
        "  {count} approval invokes sent at once:     {}",
        summary(approvals)
    );
    println!(
        "  refresh invokes while those runs execute: {}",
        summary(refreshes)
    );
    println!(
        "  all {count} contained {:.2} s after the first click",
        all_done.as_secs_f64()
    );
    Ok(())
}

async fn bulk(store: Option<String>, count: usize) -> anyhow::Result<()> {
    let mut bench = Bench::start(store, 16).await?;
    let prepared = Instant::now();
    let pending = bench.pending(count).await?;
    let bench = Arc::new(bench);
    println!(
        "  {count} requests proposed and their cards posted in {:.2} s",
        prepared.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let clicks = approve_all(&bench, &pending, 64).await?;
    let clicked = start.elapsed();
    for request in &pending {
        bench
            .wait_until_contained(&request.id, Duration::from_secs(600))
            .await?;
    }
    let done = start.elapsed();
    let wrong: Vec<_> = pending
        .iter()
        .filter(|r| bench.writes_about(&r.user_id) != (1, 1))
        .map(|r| &r.id)
        .collect();
    if !wrong.is_empty() {
        bail!("not exactly one block and one revoke for {wrong:?}");
    }
    println!(
        "  approval invokes (64 in flight):          {}",
        summary(clicks)
    );
    println!(
        "  {count} approved at once: every click answered after {:.2} s, all contained \
         after {:.2} s ({:.0} containments/s); exactly one block and one revoke each",
        clicked.as_secs_f64(),
        done.as_secs_f64(),
        count as f64 / done.as_secs_f64(),
    );
    Ok(())
}

/// A new, empty database on the PostgreSQL server at `base`.
async fn fresh_postgres(base: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("cordon_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let (prefix, _) = base.rsplit_once('/').context("a database URL")?;
    Ok(format!("{prefix}/{name}"))
}

async fn store(postgres: Option<&str>) -> anyhow::Result<Option<String>> {
    match postgres {
        Some(base) => Ok(Some(fresh_postgres(base).await?)),
        None => Ok(None),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "cordon bench_runs, {cores} cores, release build: {}",
        !cfg!(debug_assertions)
    );
    let mut backends = vec![("SQLite", None)];
    if let Some(url) = options.postgres.as_deref() {
        backends.push(("PostgreSQL", Some(url)));
    }
    for (name, postgres) in backends {
        println!("{name}:");
        latency(store(postgres).await?, options.sequential).await?;
        let slots = options.slots.unwrap_or(options.concurrent);
        concurrency(store(postgres).await?, options.concurrent, slots).await?;
        bulk(store(postgres).await?, options.bulk).await?;
    }
    Ok(())
}
