//! From an MCP server's configuration to a live transport: [`McpUpstream`] is what the gateway knows
//! about the server, [`McpTransports`] keeps one transport per server (so stdio processes, SSE
//! streams and OAuth2 tokens live across requests) and replaces it when the configuration changes.
//!
//! The pool is where the host policy is enforced at run time: a STDIO server starts only when its
//! command was approved by the operator (a SUPER_ADMIN configured exactly this launch) or is on
//! the operator's allow-list ([`McpTransportOptions::stdio_allow`]); HTTP transports connect only
//! where the egress policy allows ([`McpTransportOptions::with_egress`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use odock_core::egress::EgressPolicy;
use odock_core::{McpError, McpTransport, McpTransportKind};
use parking_lot::Mutex;

use crate::auth::McpAuth;
use crate::sse::{SseOptions, SseTransport};
use crate::stdio::policy::STDIO_ALLOW_SETTING;
use crate::stdio::{StdioAllowList, StdioCommand, StdioOptions, StdioTransport};
use crate::streamable_http::{HttpOptions, StreamableHttpTransport};

/// An MCP server's transport configuration, with its auth config already decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct McpUpstream {
    /// Which transport reaches the server (`transportType`).
    pub transport: McpTransportKind,
    /// `endpointUrl`: the MCP endpoint (STREAMABLE_HTTP) or the event-stream URL (SSE).
    pub endpoint_url: Option<String>,
    /// For STDIO: the program to run (`stdioCommand`).
    pub stdio_command: Option<String>,
    /// For STDIO: its arguments (`stdioArgs`).
    pub stdio_args: Vec<String>,
    /// The child's environment besides `PATH`, `HOME` and `TMPDIR` (may hold credentials; never
    /// printed).
    pub stdio_env: BTreeMap<String, String>,
    /// True when the operator vouches for exactly this stdio launch (a SUPER_ADMIN configured
    /// it); otherwise the command must be on the pool's allow-list to start.
    pub stdio_approved: bool,
    /// The organisation whose stdio process share a session counts against.
    pub organisation_id: String,
    /// The server's credentials, already decrypted.
    pub auth: McpAuth,
}

impl std::fmt::Debug for McpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpUpstream")
            .field("transport", &self.transport)
            .field("endpoint_url", &self.endpoint_url)
            .field("stdio_command", &self.stdio_command)
            .field("stdio_args", &self.stdio_args)
            .field("stdio_env", &self.stdio_env.keys().collect::<Vec<_>>())
            .field("stdio_approved", &self.stdio_approved)
            .field("organisation_id", &self.organisation_id)
            .field("auth", &self.auth)
            .finish()
    }
}

impl McpUpstream {
    /// A STREAMABLE_HTTP or SSE upstream without auth.
    pub fn http(transport: McpTransportKind, endpoint_url: impl Into<String>) -> Self {
        Self {
            transport,
            endpoint_url: Some(endpoint_url.into()),
            stdio_command: None,
            stdio_args: Vec::new(),
            stdio_env: BTreeMap::new(),
            stdio_approved: false,
            organisation_id: String::new(),
            auth: McpAuth::None,
        }
    }

    /// A STDIO upstream the caller vouches for (`stdio_approved`: whoever builds it directly is
    /// the operator).
    pub fn stdio(command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            transport: McpTransportKind::Stdio,
            endpoint_url: None,
            stdio_command: Some(command.into()),
            stdio_args: args,
            stdio_env: BTreeMap::new(),
            stdio_approved: true,
            organisation_id: String::new(),
            auth: McpAuth::None,
        }
    }

    /// The configuration checks of the access flow: an HTTP/SSE server needs an endpoint URL
    /// ([`McpError::MissingEndpoint`]), a STDIO server a command
    /// ([`McpError::MissingStdioCommand`]).
    pub fn validate(&self) -> Result<(), McpError> {
        let present =
            |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        match self.transport {
            McpTransportKind::StreamableHttp | McpTransportKind::Sse => {
                if !present(&self.endpoint_url) {
                    return Err(McpError::MissingEndpoint);
                }
            }
            McpTransportKind::Stdio => {
                if !present(&self.stdio_command) {
                    return Err(McpError::MissingStdioCommand);
                }
            }
        }
        Ok(())
    }
}

/// Settings for every transport the pool builds.
#[derive(Debug, Clone, Default)]
pub struct McpTransportOptions {
    /// Settings for streamable-HTTP transports.
    pub http: HttpOptions,
    /// Settings for SSE transports.
    pub sse: SseOptions,
    /// Its `processes` counter (and `limits`) is shared by every stdio transport of the pool.
    pub stdio: StdioOptions,
    /// Commands that may start without the operator's approval (`ODOCK_MCP_STDIO_ALLOW`).
    pub stdio_allow: StdioAllowList,
}

impl McpTransportOptions {
    /// Sets the egress policy of the streamable-HTTP and SSE transports (and their token fetches).
    pub fn with_egress(mut self, egress: EgressPolicy) -> Self {
        let egress = Arc::new(egress);
        self.http.egress = egress.clone();
        self.sse.http.egress = egress;
        self
    }

    /// Sets the largest JSON reply read from HTTP and SSE upstreams.
    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.http.max_response_bytes = limit;
        self.sse.http.max_response_bytes = limit;
        self
    }
}

enum Built {
    Http,
    Sse(SseTransport),
    Stdio(StdioTransport),
}

struct PoolEntry {
    upstream: McpUpstream,
    transport: Arc<dyn McpTransport>,
    built: Built,
}

/// One transport per MCP server, keyed by the server's id. Cheap to clone; clones share the pool.
#[derive(Clone, Default)]
pub struct McpTransports {
    options: McpTransportOptions,
    entries: Arc<Mutex<HashMap<String, PoolEntry>>>,
}

impl std::fmt::Debug for McpTransports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTransports")
            .field("servers", &self.entries.lock().len())
            .field("stdio_processes", &self.stdio_process_count())
            .finish()
    }
}

impl McpTransports {
    /// An empty pool building transports with `options`.
    pub fn new(options: McpTransportOptions) -> Self {
        Self {
            options,
            entries: Arc::default(),
        }
    }

    /// The transport for server `server_id`, built on first use and rebuilt when `upstream`
    /// differs from the configuration it was built with (the old one's sessions end).
    pub fn transport(
        &self,
        server_id: &str,
        upstream: &McpUpstream,
    ) -> Result<Arc<dyn McpTransport>, McpError> {
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.get(server_id) {
            if entry.upstream == *upstream {
                return Ok(entry.transport.clone());
            }
        }
        upstream.validate()?;
        let (transport, built) = self.build(upstream)?;
        let replaced = entries.insert(
            server_id.to_owned(),
            PoolEntry {
                upstream: upstream.clone(),
                transport: transport.clone(),
                built,
            },
        );
        drop(entries);
        if let Some(old) = replaced {
            retire(old);
        }
        Ok(transport)
    }

    /// Forgets a server's transport (server deleted or disabled); its sessions end.
    pub fn remove(&self, server_id: &str) {
        let removed = self.entries.lock().remove(server_id);
        if let Some(old) = removed {
            retire(old);
        }
    }

    /// Ends every server's sessions (graceful shutdown): stdio processes are killed and reaped
    /// before this returns.
    pub async fn shutdown(&self) {
        let entries: Vec<PoolEntry> = self.entries.lock().drain().map(|(_, e)| e).collect();
        for entry in entries {
            match entry.built {
                Built::Http => {}
                Built::Sse(transport) => transport.shutdown(),
                Built::Stdio(transport) => transport.shutdown().await,
            }
        }
    }

    /// True when this replica holds `session_id` of server `server_id` in memory (a STDIO process or
    /// an SSE upstream stream it minted). Always false for STREAMABLE_HTTP, whose sessions live
    /// upstream and can be forwarded from any replica. For routing a session's requests to the
    /// replica that owns it.
    pub fn has_session(&self, server_id: &str, session_id: &str) -> bool {
        let entries = self.entries.lock();
        match entries.get(server_id).map(|entry| &entry.built) {
            Some(Built::Stdio(transport)) => transport.has_session(session_id),
            Some(Built::Sse(transport)) => transport.has_session(session_id),
            Some(Built::Http) | None => false,
        }
    }

    /// Live stdio child processes across the pool.
    pub fn stdio_process_count(&self) -> usize {
        self.options.stdio.processes.get()
    }

    fn build(&self, upstream: &McpUpstream) -> Result<(Arc<dyn McpTransport>, Built), McpError> {
        let endpoint = upstream.endpoint_url.as_deref().unwrap_or_default();
        match upstream.transport {
            McpTransportKind::StreamableHttp => {
                let client = self.options.http.client()?;
                let auth = Arc::new(
                    self.options
                        .http
                        .auth(upstream.auth.clone(), client.clone()),
                );
                let transport = StreamableHttpTransport::with_client(
                    endpoint,
                    client,
                    auth,
                    self.options.http.clone(),
                )?;
                Ok((Arc::new(transport), Built::Http))
            }
            McpTransportKind::Sse => {
                let client = self.options.sse.http.client()?;
                let auth = Arc::new(
                    self.options
                        .sse
                        .http
                        .auth(upstream.auth.clone(), client.clone()),
                );
                let transport =
                    SseTransport::with_client(endpoint, client, auth, self.options.sse.clone())?;
                Ok((Arc::new(transport.clone()), Built::Sse(transport)))
            }
            McpTransportKind::Stdio => {
                let command = upstream.stdio_command.clone().unwrap_or_default();
                // Checked again here, at run time: a server stored before the allow-list shrank
                // (or before this check existed) does not start on an ORG_ADMIN's say-so.
                if !upstream.stdio_approved && !self.options.stdio_allow.allows(&command) {
                    return Err(McpError::StdioNotAllowed(format!(
                        "this MCP server's stdio command is not allowed: a SUPER_ADMIN must \
                         configure it, or the operator must list it in {STDIO_ALLOW_SETTING}"
                    )));
                }
                let command = StdioCommand {
                    command,
                    args: upstream.stdio_args.clone(),
                    env: upstream.stdio_env.clone(),
                    organisation_id: upstream.organisation_id.clone(),
                };
                let transport = StdioTransport::new(command, self.options.stdio.clone())?;
                Ok((Arc::new(transport.clone()), Built::Stdio(transport)))
            }
        }
    }
}

/// Ends a replaced transport's sessions (processes are killed and reaped in the background).
fn retire(entry: PoolEntry) {
    match entry.built {
        Built::Http => {}
        Built::Sse(transport) => transport.shutdown(),
        Built::Stdio(transport) => {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { transport.shutdown().await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_missing_piece() {
        let mut http = McpUpstream::http(McpTransportKind::StreamableHttp, " ");
        assert_eq!(http.validate(), Err(McpError::MissingEndpoint));
        http.transport = McpTransportKind::Sse;
        http.endpoint_url = None;
        assert_eq!(http.validate(), Err(McpError::MissingEndpoint));
        let stdio = McpUpstream::stdio("", vec![]);
        assert_eq!(stdio.validate(), Err(McpError::MissingStdioCommand));
        assert!(McpUpstream::stdio("server", vec![]).validate().is_ok());
    }

    #[test]
    fn stdio_commands_need_the_operators_approval_or_the_allow_list() {
        let pool = McpTransports::new(McpTransportOptions::default());
        let mut upstream = McpUpstream::stdio("/bin/sh", vec!["-c".into(), "id".into()]);
        upstream.stdio_approved = false;
        assert!(matches!(
            pool.transport("srv", &upstream),
            Err(McpError::StdioNotAllowed(_))
        ));
        upstream.stdio_approved = true;
        assert!(pool.transport("srv", &upstream).is_ok());

        let allowing = McpTransports::new(McpTransportOptions {
            stdio_allow: StdioAllowList::parse("/bin/sh").unwrap(),
            ..McpTransportOptions::default()
        });
        upstream.stdio_approved = false;
        assert!(allowing.transport("srv", &upstream).is_ok());
    }

    #[tokio::test]
    async fn the_pool_reuses_a_transport_until_its_config_changes() {
        let loopback = EgressPolicy::parse("127.0.0.0/8").unwrap();
        let pool = McpTransports::new(McpTransportOptions::default().with_egress(loopback));
        let upstream =
            McpUpstream::http(McpTransportKind::StreamableHttp, "http://127.0.0.1:9/mcp");
        let first = pool.transport("srv", &upstream).unwrap();
        let again = pool.transport("srv", &upstream).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let changed =
            McpUpstream::http(McpTransportKind::StreamableHttp, "http://127.0.0.1:9/other");
        let rebuilt = pool.transport("srv", &changed).unwrap();
        assert!(!Arc::ptr_eq(&first, &rebuilt));
        let broken = McpUpstream::http(McpTransportKind::Sse, "");
        assert_eq!(
            pool.transport("srv2", &broken).err(),
            Some(McpError::MissingEndpoint)
        );
    }
}
