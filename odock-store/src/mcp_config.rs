//! What both the admin services and the gateway's MCP resolution must agree on about a stored MCP
//! server: the JSON object columns, the fingerprint of an approved stdio launch, and how a stored
//! (decrypted) auth config becomes upstream credentials.

use odock_core::{McpAuthType, McpUpstreamAuth, Secret};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A JSON object column (`config`, `policies`).
pub type JsonObject = Map<String, Value>;

/// The fingerprint of a stdio launch an approval is bound to: command, arguments and the names
/// of the environment variables (values are secrets, and a tenant cannot change them without
/// withdrawing the approval anyway).
pub fn stdio_fingerprint<'a>(
    command: Option<&str>,
    args: &[String],
    env_names: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut names: Vec<&str> = env_names.into_iter().collect();
    names.sort_unstable();
    let launch = serde_json::json!(["v1", command.map(str::trim), args, names]);
    hex::encode(Sha256::digest(launch.to_string().as_bytes()))
}

/// The upstream credentials of a stored (decrypted) auth config.
pub fn upstream_auth(
    auth_type: McpAuthType,
    config: &JsonObject,
) -> Result<McpUpstreamAuth, String> {
    let text = |name: &str| -> Result<String, String> {
        config
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{auth_type} auth config lacks `{name}`"))
    };
    let optional = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(match auth_type {
        McpAuthType::None => McpUpstreamAuth::None,
        McpAuthType::Bearer => McpUpstreamAuth::Bearer {
            token: Secret::new(text("token")?),
        },
        McpAuthType::Basic => McpUpstreamAuth::Basic {
            username: text("username")?,
            password: Secret::new(text("password")?),
        },
        McpAuthType::OAuth2 => McpUpstreamAuth::OAuth2 {
            token_url: text("tokenUrl")?,
            client_id: text("clientId")?,
            client_secret: Secret::new(text("clientSecret")?),
            scope: optional("scope"),
            audience: optional("audience"),
        },
    })
}
