//! A real `cordon serve` child process against a simulated tenant that
//! lives in the test process, for tests that kill servers with SIGKILL or
//! run several replicas on one database.
//!
//! The child gets the sandbox configuration as a TOML file, with a short
//! lease and poll interval set through `CORDON_RUNNER__*` variables, and
//! `HOSTNAME` set to the replica's name, which starts its lease owner id.
//! It binds port 0 and the port is read from its "cordon serving" log line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cordon::demo::{TeamsUser, API_TOKEN};
use cordon::sandbox::SimulatedTenant;
use cordon::store::Store;
use serde_json::{json, Value};

pub struct ServerProcess {
    child: Child,
    pub name: String,
    pub base_url: String,
    service_url: String,
    store_url: String,
    http: reqwest::Client,
}

impl ServerProcess {
    /// Starts `cordon serve` on `store_url`, its log in `dir/<name>.log`.
    pub async fn start(
        tenant: &SimulatedTenant,
        store_url: &str,
        dir: &Path,
        name: &str,
    ) -> ServerProcess {
        Self::start_with_env(tenant, store_url, dir, name, &[]).await
    }

    /// As [`ServerProcess::start`], with `env` set last, so that it can
    /// change the log format and level or any configuration key.
    pub async fn start_with_env(
        tenant: &SimulatedTenant,
        store_url: &str,
        dir: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let bind = "127.0.0.1:0".parse().unwrap();
        let config = cordon::demo::sandbox_config_toml(tenant, bind, store_url);
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("HOSTNAME", name)
            .env("CORDON_RUNNER__LEASE", "1s")
            .env("CORDON_RUNNER__POLL_INTERVAL", "100ms")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cordon starts");
        let port = read_port(&mut child, &dir.join(format!("{name}.log")));
        ServerProcess {
            child,
            name: name.to_string(),
            base_url: format!("http://127.0.0.1:{port}"),
            service_url: tenant.connector_service_url(),
            store_url: store_url.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A Teams user talking to this server.
    pub fn user(&self, object_id: &str, name: &str) -> TeamsUser {
        let messages = format!("{}/api/messages", self.base_url);
        TeamsUser::new(&messages, &self.service_url, object_id, name)
    }

    /// The store the server runs on, opened by the test.
    pub async fn store(&self) -> Store {
        Store::connect(&self.store_url).await.unwrap()
    }

    /// Asks for a containment through the automation API.
    pub async fn propose(&self, upn: &str, incident: &str) -> String {
        let body = json!({
            "number": incident, "affected_user": upn,
            "requested_by": "sam.analyst@contoso.com", "justification": "EDR alert",
        });
        let answer = self
            .http
            .post(format!("{}/api/v1/containments", self.base_url))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202, "{upn} {incident}");
        let answer: Value = answer.json().await.unwrap();
        answer["request_id"].as_str().unwrap().to_string()
    }

    pub async fn request(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/containments/{id}", self.base_url))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The activity id of the request's approval card, once posted.
    pub async fn wait_for_card(&self, id: &str) -> String {
        for _ in 0..400 {
            let request = self.request(id).await;
            if let Some(card) = request["request"]["thread"]["card_activity_id"].as_str() {
                return card.to_string();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the approval card of {id} was never posted");
    }

    /// Waits (up to about 20 s) until request `id` is in `state`.
    pub async fn wait_for_state(&self, id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..800 {
            last = self.request(id).await;
            if last["request"]["state"] == state {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{id} never became {state}: {}", last["request"]);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the child's log until it names its port, then keeps copying the
/// log to `log_path` so that the pipe never fills.
fn read_port(child: &mut Child, log_path: &Path) -> u16 {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, port) = mpsc::channel();
    let mut log = std::fs::File::create(log_path).unwrap();
    let mut err_log = log.try_clone().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = without_escapes(&line);
            let _ = writeln!(log, "{line}");
            if let Some(port) = serving_port(&line) {
                let _ = found.send(port);
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(err_log, "{line}");
        }
    });
    match port.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => port,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("cordon serve never said which port it serves:\n{log}");
        }
    }
}

/// The port of the "cordon serving" line, as text (`port=N`) or JSON
/// (`"port":N`) logs write it.
fn serving_port(line: &str) -> Option<u16> {
    if !line.contains("cordon serving") {
        return None;
    }
    let (at, key) = ["port=", "\"port\":"]
        .iter()
        .find_map(|key| Some((line.find(key)?, key.len())))?;
    let rest = &line[at + key..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The line without terminal colour sequences (`ESC [ ... m`).
fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
