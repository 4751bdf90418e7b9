//! An MCP server resolved for one request: everything governance, the transport and billing need.
//! Inserted into request extensions (as `Arc<ResolvedMcpServer>`) by the MCP resolution layer.

use std::collections::BTreeMap;

use crate::domain::McpTransportKind;
use crate::ids::{ApiKeyId, McpServerId, OrganisationId, TeamId};
use crate::pricing::McpPricing;
use crate::principal::Principal;
use crate::secret::Secret;

/// The credentials Odock presents to the MCP server (never the caller's), decrypted in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpUpstreamAuth {
    /// No credentials are sent.
    None,
    /// `Authorization: Bearer {token}`.
    Bearer {
        /// The bearer token.
        token: Secret,
    },
    /// `Authorization: Basic` from a username and password.
    Basic {
        /// The Basic username.
        username: String,
        /// The Basic password.
        password: Secret,
    },
    /// OAuth 2.0 client credentials; the transport fetches and caches the access token.
    OAuth2 {
        /// The token endpoint.
        token_url: String,
        /// Odock's client id at the token endpoint.
        client_id: String,
        /// Odock's client secret at the token endpoint.
        client_secret: Secret,
        /// The `scope` requested, when set.
        scope: Option<String>,
        /// The `audience` requested, when set (some providers require it).
        audience: Option<String>,
    },
}

/// Which `tools/call` requests may pass: a non-empty allow list admits only its tools, the block list
/// always denies (block wins), and a request body containing a blocked keyword is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolRules {
    /// When non-empty, the only tools that may be called.
    pub allowed_tools: Vec<String>,
    /// Tools that may never be called, whatever the allow list says.
    pub blocked_tools: Vec<String>,
    /// From the semantic filter `{"blockedKeywords":[...]}`; matched case-insensitively.
    pub blocked_keywords: Vec<String>,
}

impl ToolRules {
    /// Whether a key may call (and see, in `tools/list`) the tool `name`.
    pub fn tool_allowed(&self, name: &str) -> bool {
        if self.blocked_tools.iter().any(|t| t == name) {
            return false;
        }
        self.allowed_tools.is_empty() || self.allowed_tools.iter().any(|t| t == name)
    }

    /// The first blocked keyword found in `body` (case-insensitive), if any.
    pub fn blocked_keyword(&self, body: &[u8]) -> Option<&str> {
        if self.blocked_keywords.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(body).to_lowercase();
        self.blocked_keywords
            .iter()
            .map(String::as_str)
            .find(|k| !k.is_empty() && text.contains(&k.to_lowercase()))
    }
}

/// An enabled MCP server of an organisation, with its decrypted upstream credentials.
#[derive(Debug, Clone)]
pub struct ResolvedMcpServer {
    /// The server's id.
    pub id: McpServerId,
    /// The organisation the server belongs to.
    pub organisation_id: OrganisationId,
    /// The server's display name.
    pub name: String,
    /// Unique in the organisation; what clients put in `/v1/mcp/{slug}` and what usage records name.
    pub slug: String,
    /// How Odock reaches the server.
    pub transport: McpTransportKind,
    /// The MCP endpoint (streamable HTTP) or event-stream URL (SSE).
    pub endpoint_url: Option<String>,
    /// The program to run, for STDIO.
    pub stdio_command: Option<String>,
    /// Its arguments, for STDIO.
    pub stdio_args: Vec<String>,
    /// Decrypted environment of the stdio child process.
    pub stdio_env: BTreeMap<String, Secret>,
    /// True when the operator (a SUPER_ADMIN) configured exactly this stdio launch; otherwise the
    /// command starts only if it is on the gateway's stdio allow-list.
    pub stdio_approved: bool,
    /// `Err` (a reason without secrets) when the stored auth config cannot be opened or read: the
    /// request then fails with `mcp_auth_error` before reaching the upstream.
    pub auth: Result<McpUpstreamAuth, String>,
    /// Team scope: only keys of this team may use the server.
    pub team_id: Option<TeamId>,
    /// API-key scope: only this key may use the server.
    pub api_key_id: Option<ApiKeyId>,
    /// Which tools may be called and which keywords block a call.
    pub tool_rules: ToolRules,
    /// What calls to the server cost.
    pub pricing: McpPricing,
    /// Changes whenever the server's configuration does (its `updatedAt`), so transports built
    /// for an older configuration (endpoint, credentials, command) are rebuilt.
    pub config_version: i64,
}

impl ResolvedMcpServer {
    /// The team and API-key scopes: a scoped server serves only that team's or that key's calls.
    pub fn in_scope(&self, principal: &Principal) -> bool {
        let team_ok = self
            .team_id
            .as_ref()
            .is_none_or(|team| principal.team_id.as_ref() == Some(team));
        let key_ok = self
            .api_key_id
            .as_ref()
            .is_none_or(|key| *key == principal.api_key_id);
        team_ok && key_ok
    }

    /// A server with no configuration beyond its identity (tests, in-memory stores).
    pub fn new(
        id: impl Into<McpServerId>,
        organisation_id: impl Into<OrganisationId>,
        slug: impl Into<String>,
        transport: McpTransportKind,
    ) -> Self {
        let slug = slug.into();
        Self {
            id: id.into(),
            organisation_id: organisation_id.into(),
            name: slug.clone(),
            slug,
            transport,
            endpoint_url: None,
            stdio_command: None,
            stdio_args: Vec::new(),
            stdio_env: BTreeMap::new(),
            stdio_approved: false,
            auth: Ok(McpUpstreamAuth::None),
            team_id: None,
            api_key_id: None,
            tool_rules: ToolRules::default(),
            pricing: McpPricing::default(),
            config_version: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ApiKeyType;

    fn principal(key: &str, team: Option<&str>) -> Principal {
        Principal {
            api_key_id: key.into(),
            organisation_id: "org".into(),
            key_type: ApiKeyType::Team,
            team_id: team.map(TeamId::from),
            user_id: None,
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn block_list_wins_and_allow_list_restricts() {
        let rules = ToolRules {
            allowed_tools: vec!["echo".into(), "add".into()],
            blocked_tools: vec!["add".into()],
            blocked_keywords: vec!["DROP TABLE".into()],
        };
        assert!(rules.tool_allowed("echo"));
        assert!(!rules.tool_allowed("add"));
        assert!(!rules.tool_allowed("other"));
        assert!(ToolRules::default().tool_allowed("anything"));
        assert_eq!(
            rules.blocked_keyword(br#"{"q":"please drop table users"}"#),
            Some("DROP TABLE")
        );
        assert_eq!(rules.blocked_keyword(b"harmless"), None);
    }

    #[test]
    fn scopes_restrict_to_a_team_or_a_key() {
        let mut server = ResolvedMcpServer::new("s", "org", "tools", McpTransportKind::Stdio);
        assert!(server.in_scope(&principal("k1", None)));
        server.team_id = Some("t1".into());
        assert!(server.in_scope(&principal("k1", Some("t1"))));
        assert!(!server.in_scope(&principal("k1", Some("t2"))));
        assert!(!server.in_scope(&principal("k1", None)));
        server.team_id = None;
        server.api_key_id = Some("k2".into());
        assert!(!server.in_scope(&principal("k1", None)));
        assert!(server.in_scope(&principal("k2", None)));
    }
}
