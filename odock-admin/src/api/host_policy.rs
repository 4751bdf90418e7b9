//! What tenants may make the gateway reach on their behalf, checked when they configure it.
//!
//! - **Network:** provider base URLs, MCP endpoint URLs and OAuth2 token URLs whose host is a
//!   literal address the egress policy refuses (`ODOCK_EGRESS_ALLOW`) are refused at create and
//!   update time with 400 `invalid_request` naming the field. Names are resolved only at connect
//!   time (that is where the policy is enforced for every role: see `odock_core::egress`).
//! - **Host processes:** a SUPER_ADMIN may configure any stdio command. Anyone else (an ORG_ADMIN)
//!   only a command on `ODOCK_MCP_STDIO_ALLOW`, and no `PATH` or dynamic-loader variable in its
//!   environment: 403 `stdio_not_allowed` on create and on PATCH — setting `stdioCommand`, or
//!   touching the launch (transport, command, arguments, environment) of a server that is or
//!   becomes STDIO. Writes by a SUPER_ADMIN approve the launch they leave
//!   ([`LaunchAuthor::Operator`]), which the gateway checks again before starting a process.

use std::sync::Arc;

use crate::services::mcp_servers::{LaunchAuthor, McpServer, McpServerPatch, NewMcpServer};
use odock_core::egress::EgressPolicy;
use odock_core::McpTransportKind;
use odock_mcp::stdio::policy::STDIO_ALLOW_SETTING;
use odock_mcp::StdioAllowList;
use serde_json::Value;

use super::authz::AdminPrincipal;
use super::error::ApiError;

/// The operator's policy on upstreams and host processes, as the admin API applies it.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// `ODOCK_EGRESS_ALLOW` (default: no loopback, private or link-local address).
    pub egress: Arc<EgressPolicy>,
    /// `ODOCK_MCP_STDIO_ALLOW` (default: none).
    pub stdio_allow: StdioAllowList,
}

impl HostPolicy {
    /// 400 naming `field` when `url`'s host is an IP literal the egress policy refuses. URLs that do
    /// not parse are left to the repositories' own validation.
    pub fn check_url(&self, field: &str, url: &str) -> Result<(), ApiError> {
        let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
            return Ok(());
        };
        let Some(host) = parsed.host_str() else {
            return Ok(());
        };
        self.egress
            .check_host(host)
            .map_err(|denied| ApiError::invalid(Some(field), format!("{field}: {denied}")))
    }

    /// Who the write's author is, for the stdio launch approval.
    pub fn author(principal: &AdminPrincipal) -> LaunchAuthor {
        if principal.is_super_admin() {
            LaunchAuthor::Operator
        } else {
            LaunchAuthor::Tenant
        }
    }

    /// The checks of `POST .../mcp-servers`.
    pub fn check_new_mcp_server(
        &self,
        principal: &AdminPrincipal,
        input: &NewMcpServer,
    ) -> Result<(), ApiError> {
        if let Some(url) = &input.endpoint_url {
            self.check_url("endpointUrl", url)?;
        }
        if let Some(config) = &input.auth_config {
            self.check_token_url(config)?;
        }
        if principal.is_super_admin() {
            return Ok(());
        }
        if let Some(command) = non_empty(input.stdio_command.as_deref()) {
            self.check_command(command)?;
        }
        if let Some(env) = &input.stdio_env {
            check_env_names(env.keys())?;
        }
        Ok(())
    }

    /// The checks of `PATCH .../mcp-servers/{id}` against the server as stored.
    pub fn check_mcp_patch(
        &self,
        principal: &AdminPrincipal,
        current: &McpServer,
        patch: &McpServerPatch,
    ) -> Result<(), ApiError> {
        if let Some(Some(url)) = &patch.endpoint_url {
            self.check_url("endpointUrl", url)?;
        }
        if let Some(Some(config)) = &patch.auth_config {
            self.check_token_url(config)?;
        }
        if principal.is_super_admin() {
            return Ok(());
        }
        let new_command = match &patch.stdio_command {
            Some(command) => non_empty(command.as_deref()),
            None => None,
        };
        if let Some(command) = new_command {
            self.check_command(command)?;
        }
        if let Some(Some(env)) = &patch.stdio_env {
            check_env_names(env.keys())?;
        }
        // Arguments, environment or transport changed on a server that is (or becomes) STDIO: the
        // command it would then run must be one a tenant may run.
        let transport = patch.transport.unwrap_or(current.transport);
        if patch.touches_stdio_launch() && transport == McpTransportKind::Stdio {
            let command = match &patch.stdio_command {
                Some(command) => non_empty(command.as_deref()),
                None => non_empty(current.stdio_command.as_deref()),
            };
            if let Some(command) = command {
                self.check_command(command)?;
            }
        }
        Ok(())
    }

    fn check_command(&self, command: &str) -> Result<(), ApiError> {
        if self.stdio_allow.allows(command) {
            return Ok(());
        }
        Err(ApiError::StdioNotAllowed(format!(
            "only a SUPER_ADMIN may configure the stdio command `{command}`; the operator can \
             allow it for organisation administrators with {STDIO_ALLOW_SETTING}"
        )))
    }

    /// An OAuth2 `tokenUrl` in an auth config (other shapes are the repository's to refuse).
    fn check_token_url(&self, config: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
        match config.get("tokenUrl").and_then(Value::as_str) {
            Some(url) => self.check_url("authConfig", url),
            None => Ok(()),
        }
    }
}

fn non_empty(command: Option<&str>) -> Option<&str> {
    command.map(str::trim).filter(|command| !command.is_empty())
}

fn check_env_names<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), ApiError> {
    match names
        .into_iter()
        .find(|name| StdioAllowList::forbidden_env(name))
    {
        Some(name) => Err(ApiError::StdioNotAllowed(format!(
            "only a SUPER_ADMIN may set `{name}` in stdioEnv (PATH and dynamic-loader variables \
             decide what code a command runs)"
        ))),
        None => Ok(()),
    }
}
