//! The sandbox and the demo: Cordon against a simulated tenant, with no
//! Microsoft tenant needed.
//!
//! [`Sandbox::start`] brings up the simulated tenant and the real server on
//! loopback. [`TeamsUser`] sends what Teams would send: typed commands and
//! card clicks, as HTTP activities to `/api/messages`. [`run_demo`] drives
//! whole scenarios with them and checks each one ends as it should; the
//! integration tests use the same pieces.

mod config;
mod scenarios;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::containment::Engine;
use crate::sandbox::tenant::ids;
use crate::sandbox::SimulatedTenant;
use crate::startup::{Application, Timing};

pub use config::{
    sandbox_config, sandbox_config_toml, sandbox_config_with_env, API_TOKEN, APPROVALS_CHANNEL,
    WEBHOOK_SECRET,
};
pub use scenarios::run_demo;

/// The channel analysts type in, in the sandbox.
pub const SOC_CHANNEL: &str = "19:soc-analysts@thread.tacv2";

/// A running sandbox: simulated tenant plus the real server.
pub struct Sandbox {
    pub tenant: SimulatedTenant,
    pub base_url: String,
    pub engine: Arc<Engine>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Sandbox {
    /// Starts on `bind` with the store at `store_url`, or in a fresh
    /// temporary SQLite file when none is given.
    pub async fn start(bind: SocketAddr, store_url: Option<String>) -> anyhow::Result<Sandbox> {
        Self::start_with(bind, store_url, |_| {}).await
    }

    /// As [`Sandbox::start`], with the configuration adjusted by `adjust`
    /// first (tests shorten timeouts and leases this way).
    pub async fn start_with(
        bind: SocketAddr,
        store_url: Option<String>,
        adjust: impl FnOnce(&mut crate::config::Config),
    ) -> anyhow::Result<Sandbox> {
        Self::start_timed(bind, store_url, adjust, sandbox_timing()).await
    }

    /// As [`Sandbox::start`], with the process's `CORDON_<SECTION>__<KEY>`
    /// variables layered on the sandbox configuration, as `cordon serve`
    /// layers them on its file: what `cordon sandbox` runs.
    pub async fn start_with_environment(
        bind: SocketAddr,
        store_url: Option<String>,
    ) -> anyhow::Result<Sandbox> {
        let env: Vec<_> = std::env::vars().collect();
        Self::launch(bind, store_url, env, |_| {}, sandbox_timing()).await
    }

    /// As [`Sandbox::start_with`], with the given timing knobs; benchmarks
    /// of the engine lift Teams' per-thread limits this way.
    pub async fn start_timed(
        bind: SocketAddr,
        store_url: Option<String>,
        adjust: impl FnOnce(&mut crate::config::Config),
        timing: Timing,
    ) -> anyhow::Result<Sandbox> {
        Self::launch(bind, store_url, Vec::new(), adjust, timing).await
    }

    async fn launch(
        bind: SocketAddr,
        store_url: Option<String>,
        env: Vec<(String, String)>,
        adjust: impl FnOnce(&mut crate::config::Config),
        timing: Timing,
    ) -> anyhow::Result<Sandbox> {
        let tenant = SimulatedTenant::start("127.0.0.1:0".parse()?).await?;
        let (store_url, dir) = match store_url {
            Some(url) => (url, None),
            None => {
                let dir = tempfile::tempdir()?;
                (
                    format!("sqlite://{}", dir.path().join("cordon.db").display()),
                    Some(dir),
                )
            }
        };
        let mut config = sandbox_config_with_env(&tenant, bind, &store_url, env)?;
        adjust(&mut config);
        config.validate()?;
        let app = Application::build_with(config, timing).await?;
        let base_url = format!("http://{}", app.local_addr());
        let engine = app.engine();
        let server = tokio::spawn(app.run_until_stopped());
        Ok(Sandbox {
            tenant,
            base_url,
            engine,
            server,
            _dir: dir,
        })
    }

    pub fn messages_url(&self) -> String {
        format!("{}/api/messages", self.base_url)
    }

    /// A Teams user of the simulated tenant.
    pub fn user(&self, object_id: &str, name: &str) -> TeamsUser {
        TeamsUser::new(
            &self.messages_url(),
            &self.tenant.connector_service_url(),
            object_id,
            name,
        )
    }

    /// Reads a request through the automation API.
    pub async fn request(&self, id: &str) -> anyhow::Result<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/containments/{id}", self.base_url))
            .bearer_auth(API_TOKEN)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("reading {id} answered {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Finds requests through the automation API.
    pub async fn find(&self, upn: &str, incident: &str) -> anyhow::Result<Vec<Value>> {
        let response: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/containments", self.base_url))
            .query(&[("upn", upn), ("incident", incident)])
            .bearer_auth(API_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        Ok(response["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until a request with this target and incident exists.
    pub async fn wait_for_request(&self, upn: &str, incident: &str) -> anyhow::Result<String> {
        for _ in 0..200 {
            if let Some(found) = self.find(upn, incident).await?.first() {
                return Ok(found["id"].as_str().unwrap_or_default().to_string());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("no request for {upn} and {incident} appeared")
    }

    /// Waits until request `id` is in one of `states`, and returns it.
    pub async fn wait_for_state(&self, id: &str, states: &[&str]) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        for _ in 0..400 {
            last = self.request(id).await?;
            let state = last["request"]["state"].as_str().unwrap_or_default();
            if states.contains(&state) {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "{id} is {} and never reached {states:?}",
            last["request"]["state"]
        )
    }

    /// Waits until the thread of request `id` has its card, and returns
    /// the card's activity id.
    pub async fn wait_for_card(&self, id: &str) -> anyhow::Result<String> {
        for _ in 0..200 {
            let request = self.request(id).await?;
            if let Some(card) = request["request"]["thread"]["card_activity_id"].as_str() {
                return Ok(card.to_string());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("the approval card of {id} was never posted")
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

/// Someone in Teams, as the Bot Connector presents them to the bot.
pub struct TeamsUser {
    http: reqwest::Client,
    messages_url: String,
    service_url: String,
    pub object_id: String,
    pub name: String,
}

/// The bot's answer to one activity.
pub struct BotAnswer {
    pub status: u16,
    pub body: Value,
}

impl TeamsUser {
    /// A user who talks to the bot at `messages_url` through the Bot
    /// Connector at `service_url` (a server in another process, say).
    pub fn new(messages_url: &str, service_url: &str, object_id: &str, name: &str) -> TeamsUser {
        TeamsUser {
            http: reqwest::Client::new(),
            messages_url: messages_url.to_string(),
            service_url: service_url.to_string(),
            object_id: object_id.to_string(),
            name: name.to_string(),
        }
    }

    /// Types `text` (after an @mention of the bot) in the SOC channel.
    pub async fn say_in_channel(&self, text: &str) -> anyhow::Result<BotAnswer> {
        let root = uuid::Uuid::new_v4().as_u128() % 10_000_000_000_000;
        let activity = json!({
            "type": "message",
            "id": uuid::Uuid::new_v4().to_string(),
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": self.account(),
            "conversation": {
                "id": format!("{SOC_CHANNEL};messageid={root}"),
                "conversationType": "channel",
                "isGroup": true,
                "tenantId": ids::TENANT_ID,
            },
            "recipient": { "id": format!("28:{}", ids::BOT_APP_ID), "name": "Cordon" },
            "text": format!("<at>Cordon</at> {text}"),
            "entities": [{
                "type": "mention",
                "text": "<at>Cordon</at>",
                "mentioned": { "id": format!("28:{}", ids::BOT_APP_ID), "name": "Cordon" },
            }],
            "channelData": {
                "tenant": { "id": ids::TENANT_ID },
                "team": { "id": SOC_CHANNEL },
                "channel": { "id": SOC_CHANNEL },
            },
        });
        self.send(&activity).await
    }

    /// Clicks a button (`approve`, `reject`, `retry`) on a request's card.
    pub async fn click(
        &self,
        verb: &str,
        request_id: &str,
        card_activity_id: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<BotAnswer> {
        let mut data = json!({ "request_id": request_id });
        if let Some(reason) = reason {
            data["reason"] = json!(reason);
        }
        let activity = json!({
            "type": "invoke",
            "name": "adaptiveCard/action",
            "id": uuid::Uuid::new_v4().to_string(),
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": self.account(),
            "conversation": {
                "id": format!("{APPROVALS_CHANNEL};messageid={card_activity_id}"),
                "conversationType": "channel",
                "tenantId": ids::TENANT_ID,
            },
            "recipient": { "id": format!("28:{}", ids::BOT_APP_ID), "name": "Cordon" },
            "replyToId": card_activity_id,
            "value": {
                "action": { "type": "Action.Execute", "verb": verb, "data": data },
                "trigger": "manual",
            },
            "channelData": {
                "tenant": { "id": ids::TENANT_ID },
                "channel": { "id": APPROVALS_CHANNEL },
                "source": { "name": "message" },
            },
        });
        self.send(&activity).await
    }

    fn account(&self) -> Value {
        json!({
            "id": format!("29:{}", self.object_id),
            "name": self.name,
            "aadObjectId": self.object_id,
        })
    }

    async fn send(&self, activity: &Value) -> anyhow::Result<BotAnswer> {
        let response = self
            .http
            .post(&self.messages_url)
            .json(activity)
            .send()
            .await
            .context("sending an activity to the bot")?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(BotAnswer { status, body })
    }
}

/// Sends `body` to the webhook, signed as a ServiceNow business rule
/// would sign it, and returns the status.
pub async fn send_webhook(sandbox: &Sandbox, body: &str) -> anyhow::Result<u16> {
    send_webhook_at(sandbox, body, chrono::Utc::now().timestamp()).await
}

/// As [`send_webhook`], signed with the given unix timestamp: a
/// redelivery is signed anew, so its signature differs.
pub async fn send_webhook_at(sandbox: &Sandbox, body: &str, timestamp: i64) -> anyhow::Result<u16> {
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    let signature = crate::servicenow::webhook::sign(&secret, timestamp, body.as_bytes());
    let response = reqwest::Client::new()
        .post(format!("{}/api/servicenow/webhook", sandbox.base_url))
        .header("content-type", "application/json")
        .header("x-cordon-timestamp", timestamp.to_string())
        .header("x-cordon-signature", signature)
        .body(body.to_string())
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// What `cordon sandbox` prints at start: where things are and what to type.
pub fn sandbox_banner(sandbox: &Sandbox) -> String {
    format!(
        "Cordon sandbox\n\
         \x20 bot endpoint     {}/api/messages (anonymous activities accepted on loopback)\n\
         \x20 simulated tenant {} (Graph, ServiceNow, Bot Connector)\n\
         \x20 automation API   {}/api/v1/containments (bearer {API_TOKEN})\n\
         \x20 approvals channel {APPROVALS_CHANNEL}\n\n\
         Try, as an analyst: contain alice@contoso.com INC0010001 token theft suspected\n\
         Press Ctrl-C to stop.",
        sandbox.base_url,
        sandbox.tenant.base_url(),
        sandbox.base_url,
    )
}

/// Quick retries and timeouts: the simulated tenant answers at once.
fn sandbox_timing() -> Timing {
    Timing {
        retry: crate::retry::RetryPolicy::fast(),
        timeout: Duration::from_secs(5),
        ..Timing::default()
    }
}
