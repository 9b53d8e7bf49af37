//! The configuration of the sandbox: every outside system is the simulated
//! tenant, the store is SQLite, and anonymous activities are accepted
//! because the server is bound to loopback.

use std::net::SocketAddr;

use crate::config::{Config, ConfigError};
use crate::sandbox::tenant::ids;
use crate::sandbox::SimulatedTenant;

/// The approvals channel of the sandbox (also in the Playground config).
pub const APPROVALS_CHANNEL: &str = "19:cordon-approvals@thread.tacv2";
/// The bearer token of the sandbox's automation API, named `sandbox-siem`.
pub const API_TOKEN: &str = "sandbox-api-token";
/// The ServiceNow webhook secret of the sandbox.
pub const WEBHOOK_SECRET: &str = "sandbox-webhook-secret";
/// The directory role that makes a user privileged in the sandbox.
pub const GLOBAL_ADMIN_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

pub fn sandbox_config(
    tenant: &SimulatedTenant,
    bind: SocketAddr,
    store_url: &str,
) -> Result<Config, ConfigError> {
    sandbox_config_with_env(tenant, bind, store_url, std::iter::empty())
}

/// As [`sandbox_config`], with `CORDON_<SECTION>__<KEY>` variables of
/// `env` layered on top, as `cordon serve` layers them on its file.
pub fn sandbox_config_with_env(
    tenant: &SimulatedTenant,
    bind: SocketAddr,
    store_url: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = sandbox_config_toml(tenant, bind, store_url);
    Config::from_toml_and_env(&text, env)
}

/// The sandbox configuration as TOML, for a `cordon serve --config` run
/// against a simulated tenant that lives in another process (the
/// durability tests kill and restart such a server).
pub fn sandbox_config_toml(tenant: &SimulatedTenant, bind: SocketAddr, store_url: &str) -> String {
    format!(
        r#"
[server]
bind = "{bind}"
public_url = "http://{bind}"

[store]
url = "{store_url}"

[bot]
app_id = "{bot_id}"
app_password = "{bot_password}"
tenant_id = "{tenant_id}"
openid_metadata_url = "{base}/login/botframework/v1/.well-known/openidconfiguration"
tenant_openid_metadata_url = "{base}/login/{tenant_id}/v2.0/.well-known/openid-configuration"
token_url = "{token_url}"
allow_anonymous = true

[teams]
approvals_service_url = "{connector}"
approvals_channel_id = "{APPROVALS_CHANNEL}"

[graph]
base_url = "{graph}"
token_url = "{token_url}"
client_id = "{graph_id}"
client_secret = "{graph_secret}"

[servicenow]
instance_url = "{servicenow}"
username = "{sn_user}"
password = "{sn_password}"
webhook_secret = "{WEBHOOK_SECRET}"

[api]
tokens = [{{ name = "sandbox-siem", token = "{API_TOKEN}" }}]

[policy]
allowed_domains = ["contoso.com"]
approver_group_ids = ["{approvers}"]
privileged_group_ids = ["{privileged}"]
privileged_role_ids = ["{GLOBAL_ADMIN_ROLE}"]
service_account_group_ids = ["{service}"]
break_glass_object_ids = ["{break_glass}"]
approval_timeout = "30m"

[runner]
lease = "15s"
poll_interval = "500ms"
"#,
        base = tenant.base_url(),
        bot_id = ids::BOT_APP_ID,
        bot_password = ids::BOT_APP_PASSWORD,
        tenant_id = ids::TENANT_ID,
        token_url = tenant.token_url(),
        connector = tenant.connector_service_url(),
        graph = tenant.graph_base_url(),
        graph_id = ids::GRAPH_CLIENT_ID,
        graph_secret = ids::GRAPH_CLIENT_SECRET,
        servicenow = tenant.servicenow_url(),
        sn_user = ids::SERVICENOW_USER,
        sn_password = ids::SERVICENOW_PASSWORD,
        approvers = ids::APPROVERS_GROUP,
        privileged = ids::PRIVILEGED_GROUP,
        service = ids::SERVICE_ACCOUNTS_GROUP,
        break_glass = ids::BREAK_GLASS,
    )
}
