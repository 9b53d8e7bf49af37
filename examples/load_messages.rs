//! Load driver for `POST /api/messages`: starts a release `cordon serve`
//! as a child process, with real Bot Framework token checks against a
//! local OpenID metadata server, and sends it authenticated
//! `conversationUpdate` activities over loopback.
//!
//! Two phases, after a short warm-up:
//! - throughput: `--connections` closed loops send as fast as answers come
//!   back, for `--seconds`;
//! - fixed rate: `--rate` activities per second on a fixed schedule, for
//!   `--seconds`. Each latency is measured from the moment the request was
//!   due, not from when it was sent, so a stalled server cannot hide its
//!   queue (no coordinated omission).
//!
//! The server's resident memory is read from `/proc/PID/status` (VmRSS
//! sampled every 100 ms, and VmHWM at the end).
//!
//! Run with `scripts/bench-messages.sh`, or
//! `cargo build --release && cargo run --release --example load_messages`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cordon::botframework::auth::BOT_FRAMEWORK_ISSUER;
use cordon::sandbox::{ids, SimulatedTenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::json;

const BOT_KEY: &str = include_str!("../tests/fixtures/bot_signing_a.pem");

struct Options {
    server: PathBuf,
    seconds: u64,
    connections: usize,
    rate: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        server: PathBuf::from("target/release/cordon"),
        seconds: 10,
        connections: 32,
        rate: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => options.server = value.into(),
            "--seconds" => options.seconds = value.parse()?,
            "--connections" => options.connections = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

/// Publishes the test key as the Bot Framework's (and the tenant's) keys.
async fn start_issuer() -> anyhow::Result<String> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(BOT_KEY)?;
    let jwk = json!({
        "kty": "RSA", "use": "sig", "kid": "load-key",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        "endorsements": ["msteams"],
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let metadata = json!({ "issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": format!("{base}/keys") });
    let keys = json!({ "keys": [jwk] });
    let app = Router::new()
        .route(
            "/metadata",
            get(move || async move { Json(metadata.clone()) }),
        )
        .route("/keys", get(move || async move { Json(keys.clone()) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn token(service_url: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "iss": BOT_FRAMEWORK_ISSUER, "aud": ids::BOT_APP_ID, "serviceurl": service_url,
        "nbf": now - 60, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("load-key".into());
    let key = EncodingKey::from_rsa_pem(BOT_KEY.as_bytes())?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The activity Teams sends when a member joins: authenticated and
/// processed (serviceUrl remembered, id de-duplicated), no answer posted.
fn activity(n: u64, service_url: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "conversationUpdate",
        "id": format!("load-{n}"),
        "timestamp": "2026-01-01T00:00:00Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": { "id": "29:load-driver" },
        "recipient": { "id": format!("28:{}", ids::BOT_APP_ID) },
        "conversation": { "id": "19:load-test@thread.tacv2" },
        "membersAdded": [{ "id": "29:someone" }],
        "channelData": { "tenant": { "id": ids::TENANT_ID } },
    }))
    .expect("serialisable")
}

struct Target {
    client: reqwest::Client,
    url: String,
    authorization: String,
    service_url: String,
    next_id: AtomicU64,
    failures: AtomicU64,
}

impl Target {
    /// Sends one activity; true on a 200.
    async fn send(&self) -> bool {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .client
            .post(&self.url)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(activity(n, &self.service_url))
            .send()
            .await;
        let ok = matches!(&answer, Ok(a) if a.status().is_success());
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Samples VmRSS every 100 ms until told to stop; returns the largest.
fn sample_rss(pid: u32) -> (Arc<Mutex<bool>>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(Mutex::new(false));
    let flag = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut largest = 0;
        while !*flag.lock().unwrap() {
            largest = largest.max(rss_kb(pid, "VmRSS:"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        largest
    });
    (stop, sampler)
}

async fn closed_loop(
    target: Arc<Target>,
    connections: usize,
    span: Duration,
) -> (u64, Vec<Duration>) {
    let deadline = Instant::now() + span;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                if target.send().await {
                    latencies.push(start.elapsed());
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    all.sort();
    (all.len() as u64, all)
}

async fn fixed_rate(target: Arc<Target>, rate: u64, span: Duration) -> Vec<Duration> {
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let total = rate * span.as_secs();
    let start = tokio::time::Instant::now();
    let mut sends = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let target = target.clone();
        sends.push(tokio::spawn(async move {
            let ok = target.send().await;
            ok.then(|| due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(sends.len());
    for send in sends {
        latencies.extend(send.await.expect("send"));
    }
    latencies.sort();
    latencies
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let tenant = SimulatedTenant::start("127.0.0.1:0".parse()?).await?;
    let issuer = start_issuer().await?;
    let dir = tempfile::tempdir()?;
    let bind = free_port()?;
    let store = format!("sqlite://{}", dir.path().join("cordon.db").display());
    let config = dir.path().join("cordon.toml");
    std::fs::write(
        &config,
        cordon::demo::sandbox_config_toml(&tenant, bind, &store),
    )?;
    let mut server = tokio::process::Command::new(&options.server)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("CORDON_BOT__ALLOW_ANONYMOUS", "false")
        .env(
            "CORDON_BOT__OPENID_METADATA_URL",
            format!("{issuer}/metadata"),
        )
        .env(
            "CORDON_BOT__TENANT_OPENID_METADATA_URL",
            format!("{issuer}/metadata"),
        )
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", options.server.display()))?;
    let pid = server.id().context("server pid")?;

    let service_url = tenant.connector_service_url();
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(options.connections.max(64))
            .build()?,
        url: format!("http://{bind}/api/messages"),
        authorization: format!("Bearer {}", token(&service_url)?),
        service_url,
        next_id: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    let health = format!("http://{bind}/healthz");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(answer) = target.client.get(&health).send().await {
            ready = answer.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !ready || !target.send().await {
        let _ = server.kill().await;
        bail!("the server did not start or refused the first activity");
    }
    println!(
        "server pid {pid}, {} cores, idle VmRSS {} kB",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        rss_kb(pid, "VmRSS:")
    );

    closed_loop(target.clone(), options.connections, Duration::from_secs(2)).await;
    target.failures.store(0, Ordering::Relaxed);

    let span = Duration::from_secs(options.seconds);
    let (stop, sampler) = sample_rss(pid);
    let (count, latencies) = closed_loop(target.clone(), options.connections, span).await;
    *stop.lock().unwrap() = true;
    let throughput_rss = sampler.await?;
    println!(
        "throughput: {count} activities in {}s with {} connections = {:.0}/s \
         (p50 {}, p99 {}), failures {}, max VmRSS {} kB",
        options.seconds,
        options.connections,
        count as f64 / span.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        target.failures.swap(0, Ordering::Relaxed),
        throughput_rss,
    );

    let (stop, sampler) = sample_rss(pid);
    let latencies = fixed_rate(target.clone(), options.rate, span).await;
    *stop.lock().unwrap() = true;
    let rate_rss = sampler.await?;
    println!(
        "fixed rate {}/s for {}s: {} answered, p50 {}, p99 {}, p99.9 {}, max {}, \
         failures {}, max VmRSS {} kB",
        options.rate,
        options.seconds,
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 99.9)),
        ms(latencies.last().copied().unwrap_or_default()),
        target.failures.load(Ordering::Relaxed),
        rate_rss,
    );
    println!("server VmHWM (peak resident) {} kB", rss_kb(pid, "VmHWM:"));
    server.kill().await?;
    Ok(())
}
