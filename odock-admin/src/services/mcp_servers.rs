//! MCP servers (`/api/organisations/{organisationId}/mcp-servers`): the tool servers keys may call
//! through `/v1/mcp/{slug}`, with their transport, upstream credentials, tool rules, pricing and
//! policies.
//!
//! The auth config and the stdio environment hold secrets: they go in once (create, or a PATCH that
//! replaces them), are sealed with the master key, and never come back out of this module — the API
//! object carries previews only (`authConfigPreview`, `stdioEnvPreview`), stored beside the
//! envelopes so reads never decrypt.
//!
//! A STDIO server runs a command on the gateway's host. Whether it may start depends on who wrote
//! its launch (command, arguments, environment): the operator's writes ([`LaunchAuthor::Operator`])
//! record an approval — a fingerprint of the launch, [`stdio_fingerprint`] — and a tenant's writes
//! withdraw it. The gateway starts a command that is not on its allow-list only while the stored
//! launch still matches the approval (`stdioApproved`). Who may write which command is the admin
//! API's business; this module only records it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use odock_core::secret::preview;
use odock_core::{new_object_id, McpAuthType, McpPricing, McpTransportKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use super::organisations::ensure_exists;
use super::policies::{check_optional_policies, check_policies};
use super::{
    conflict, exists_in_org, from_json_text, nullable, parse_column, required_text, to_json_text,
    AdminError, JsonObject, Page, PageRequest, Scoped,
};
use odock_store::crypto::MasterKey;
use odock_store::db::{from_ms, now_ms, Db, DbRow};
pub use odock_store::mcp_config::{stdio_fingerprint, upstream_auth};

/// An MCP server, as returned by the API (never a secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    /// The server's id.
    pub id: String,
    /// The organisation the server belongs to.
    pub organisation_id: String,
    /// A display name.
    pub name: String,
    /// Unique in the organisation; clients call `/v1/mcp/{slug}`.
    pub slug: String,
    /// A free-text description; `null` when none.
    #[schema(required = true)]
    pub description: Option<String>,
    /// How the gateway reaches the server: `STREAMABLE_HTTP`, `SSE` or `STDIO`.
    pub transport: McpTransportKind,
    /// The upstream URL of an HTTP or SSE server; `null` when none.
    #[schema(required = true)]
    pub endpoint_url: Option<String>,
    /// The command a STDIO server runs on the gateway's host; `null` when none.
    #[schema(required = true)]
    pub stdio_command: Option<String>,
    /// The arguments of `stdioCommand`.
    pub stdio_args: Vec<String>,
    /// Variable name → preview of its value.
    pub stdio_env_preview: BTreeMap<String, String>,
    /// How the gateway authenticates to the upstream: `NONE`, `BEARER`, `BASIC` or `OAUTH2`.
    pub auth_type: McpAuthType,
    /// The auth config with every secret replaced by its preview.
    #[schema(value_type = Object)]
    pub auth_config_preview: JsonObject,
    /// Whether keys may call the server (a disabled server is kept but not served).
    pub enabled: bool,
    /// The `publicInternet` flag, stored and returned as given.
    pub public_internet: bool,
    /// The `oauthRequired` flag, stored and returned as given.
    pub oauth_required: bool,
    /// Team scope: only this team's keys may call the server.
    #[schema(required = true)]
    pub team_id: Option<String>,
    /// API-key scope: only this key may call the server.
    #[schema(required = true)]
    pub api_key_id: Option<String>,
    /// Tool names keys may call; empty: every tool not blocked.
    pub allowed_tools: Vec<String>,
    /// Tool names keys may never call.
    pub blocked_tools: Vec<String>,
    /// `{"blockedKeywords":[...]}`.
    #[schema(value_type = Object)]
    pub semantic_filter: JsonObject,
    /// Free-form JSON metadata, stored as given.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// What a call costs, in nanos USD (`{callNanosUsd, inputNanosUsdPerMillionBytes,
    /// outputNanosUsdPerMillionBytes}`).
    pub pricing: McpPricing,
    /// The server's rate-limit policy document (`{}`: no limits of its own).
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: JsonObject,
    /// True when a SUPER_ADMIN configured exactly the current stdio launch (command, arguments,
    /// environment names): the server may then run a command that is not on the allow-list.
    #[serde(default)]
    #[schema(required = true)]
    pub stdio_approved: bool,
    /// When the server was created.
    pub created_at: DateTime<Utc>,
    /// When the server was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Who writes a server's stdio launch (command, arguments, environment, or the transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchAuthor {
    /// A SUPER_ADMIN: the launch written is approved.
    Operator,
    /// Anyone else: any approval is withdrawn.
    Tenant,
}

/// `POST .../mcp-servers`. `Debug` hides the auth config and the stdio environment.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMcpServer {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Unique in the organisation: lower-case letters, digits, `-`, `_` (at most 100).
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]*$")]
    pub slug: String,
    /// How the gateway reaches the server: `STREAMABLE_HTTP`, `SSE` or `STDIO`.
    pub transport: McpTransportKind,
    /// A free-text description (trimmed).
    #[serde(default)]
    pub description: Option<String>,
    /// The upstream `http(s)` URL, without a fragment or credentials; blank means none.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The command of a STDIO server (at most 1000 characters); blank means none.
    #[serde(default)]
    pub stdio_command: Option<String>,
    /// The arguments of `stdioCommand`; default none.
    #[serde(default)]
    pub stdio_args: Option<Vec<String>>,
    /// Sealed at rest; never returned (see `stdioEnvPreview`).
    #[serde(default)]
    #[schema(write_only)]
    pub stdio_env: Option<BTreeMap<String, String>>,
    /// How the gateway authenticates to the upstream; default `NONE`.
    #[serde(default)]
    pub auth_type: Option<McpAuthType>,
    /// BEARER `{token}`; BASIC `{username, password}`; OAUTH2 `{tokenUrl, clientId, clientSecret, scope?, audience?}`. Sealed at rest; never returned (see `authConfigPreview`).
    #[serde(default)]
    #[schema(value_type = Object)]
    #[schema(write_only)]
    pub auth_config: Option<JsonObject>,
    /// Tool names keys may call (trimmed, de-duplicated); default: every tool not blocked.
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    /// Tool names keys may never call (trimmed, de-duplicated).
    #[serde(default)]
    pub blocked_tools: Option<Vec<String>>,
    /// `{"blockedKeywords":[strings]}`; any other key is refused. Default `{}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub semantic_filter: Option<JsonObject>,
    /// What a call costs, in nanos USD; default free.
    #[serde(default)]
    pub pricing: Option<McpPricing>,
    /// A rate-limit policy document (known keys only); default `{}`.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
    /// Team scope: only this team's keys may call the server (a team of this organisation).
    #[serde(default)]
    pub team_id: Option<String>,
    /// API-key scope: only this key may call the server (a key of this organisation).
    #[serde(default)]
    pub api_key_id: Option<String>,
    /// Whether keys may call the server; default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The `publicInternet` flag; default `false`.
    #[serde(default)]
    pub public_internet: Option<bool>,
    /// The `oauthRequired` flag; default `false`.
    #[serde(default)]
    pub oauth_required: Option<bool>,
    /// Free-form JSON metadata; default `{}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<JsonObject>,
}

impl fmt::Debug for NewMcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMcpServer")
            .field("name", &self.name)
            .field("slug", &self.slug)
            .field("transport", &self.transport)
            .field("auth_type", &self.auth_type)
            .finish_non_exhaustive()
    }
}

/// `PATCH .../mcp-servers/{id}`: absent fields stay. `authConfig` / `stdioEnv` replace the stored
/// secrets (changing `authType` requires a new `authConfig` unless it becomes `NONE`); `null`
/// clears the nullable fields.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServerPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new slug (lower-case letters, digits, `-`, `_`; unique in the organisation).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]*$")]
    pub slug: Option<String>,
    /// A new transport; changes the stdio launch.
    #[serde(default)]
    pub transport: Option<McpTransportKind>,
    /// A new description; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// A new upstream URL; `null` or blank clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub endpoint_url: Option<Option<String>>,
    /// A new stdio command; `null` or blank clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub stdio_command: Option<Option<String>>,
    /// New arguments of `stdioCommand`, replacing the old ones.
    #[serde(default)]
    pub stdio_args: Option<Vec<String>>,
    /// Sealed at rest; never returned (see `stdioEnvPreview`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(write_only)]
    pub stdio_env: Option<Option<BTreeMap<String, String>>>,
    /// A new auth type; unless it is `NONE`, it needs a new `authConfig`.
    #[serde(default)]
    pub auth_type: Option<McpAuthType>,
    /// BEARER `{token}`; BASIC `{username, password}`; OAUTH2 `{tokenUrl, clientId, clientSecret, scope?, audience?}`. Sealed at rest; never returned (see `authConfigPreview`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    #[schema(write_only)]
    pub auth_config: Option<Option<JsonObject>>,
    /// Replaces the allowed tool names.
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    /// Replaces the blocked tool names.
    #[serde(default)]
    pub blocked_tools: Option<Vec<String>>,
    /// Replaces the semantic filter (`{"blockedKeywords":[strings]}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub semantic_filter: Option<JsonObject>,
    /// Replaces the pricing.
    #[serde(default)]
    pub pricing: Option<McpPricing>,
    /// Replaces the policy document.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
    /// A new team scope; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub team_id: Option<Option<String>>,
    /// A new API-key scope; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub api_key_id: Option<Option<String>>,
    /// Enables or disables the server.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Sets the `publicInternet` flag.
    #[serde(default)]
    pub public_internet: Option<bool>,
    /// Sets the `oauthRequired` flag.
    #[serde(default)]
    pub oauth_required: Option<bool>,
    /// Replaces the metadata.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<JsonObject>,
}

impl McpServerPatch {
    /// True when the patch changes what a STDIO server would run: its transport, command,
    /// arguments or environment.
    pub fn touches_stdio_launch(&self) -> bool {
        self.transport.is_some()
            || self.stdio_command.is_some()
            || self.stdio_args.is_some()
            || self.stdio_env.is_some()
    }
}

impl fmt::Debug for McpServerPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServerPatch")
            .field("name", &self.name)
            .field("slug", &self.slug)
            .field("auth_type", &self.auth_type)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, organisation_id, name, slug, description, transport, endpoint_url, \
    stdio_command, stdio_args, stdio_env_preview, auth_type, auth_preview, enabled, public_internet, \
    oauth_required, team_id, api_key_id, allowed_tools, blocked_tools, semantic_filter, metadata, \
    pricing, policies, stdio_approval, created_at, updated_at";

const SERVERS: Scoped<McpServer> = Scoped {
    table: "mcp_servers",
    columns: COLUMNS,
    what: "MCP server",
    decode,
    id_of: |row| &row.id,
};

fn flag(row: &DbRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn decode(row: &DbRow) -> Result<McpServer, sqlx::Error> {
    let stdio_command: Option<String> = row.try_get("stdio_command")?;
    let stdio_args: Vec<String> = from_json_text(row.try_get("stdio_args")?)?;
    let stdio_env_preview: BTreeMap<String, String> =
        from_json_text(row.try_get("stdio_env_preview")?)?;
    let approval: Option<String> = row.try_get("stdio_approval")?;
    let stdio_approved = approval.is_some_and(|approval| {
        approval
            == stdio_fingerprint(
                stdio_command.as_deref(),
                &stdio_args,
                stdio_env_preview.keys().map(String::as_str),
            )
    });
    Ok(McpServer {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        transport: parse_column(row.try_get::<&str, _>("transport")?)?,
        endpoint_url: row.try_get("endpoint_url")?,
        stdio_command,
        stdio_args,
        stdio_env_preview,
        auth_type: parse_column(row.try_get::<&str, _>("auth_type")?)?,
        auth_config_preview: from_json_text(row.try_get("auth_preview")?)?,
        enabled: flag(row, "enabled")?,
        public_internet: flag(row, "public_internet")?,
        oauth_required: flag(row, "oauth_required")?,
        team_id: row.try_get("team_id")?,
        api_key_id: row.try_get("api_key_id")?,
        allowed_tools: from_json_text(row.try_get("allowed_tools")?)?,
        blocked_tools: from_json_text(row.try_get("blocked_tools")?)?,
        semantic_filter: from_json_text(row.try_get("semantic_filter")?)?,
        metadata: from_json_text(row.try_get("metadata")?)?,
        pricing: from_json_text(row.try_get("pricing")?)?,
        policies: from_json_text(row.try_get("policies")?)?,
        stdio_approved,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// Lower-case letters, digits, `-` and `_`, starting with a letter or digit: safe in a URL path.
fn check_slug(slug: &str) -> Result<String, AdminError> {
    let slug = required_text("slug", slug, 100)?;
    let valid = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && slug.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(AdminError::field(
            "slug",
            "slug may contain only lower-case letters, digits, `-` and `_`",
        ));
    }
    Ok(slug)
}

fn check_url(url: Option<String>) -> Result<Option<String>, AdminError> {
    let Some(url) = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    super::check_upstream_url("endpointUrl", &url)?;
    Ok(Some(url))
}

fn check_command(command: Option<String>) -> Result<Option<String>, AdminError> {
    match command.map(|c| c.trim().to_owned()) {
        Some(c) if c.is_empty() => Ok(None),
        Some(c) if c.chars().count() > 1_000 => Err(AdminError::field(
            "stdioCommand",
            "stdioCommand must be at most 1000 characters",
        )),
        other => Ok(other),
    }
}

/// Trimmed, non-empty, de-duplicated tool names.
fn check_tools(field: &str, tools: Vec<String>) -> Result<Vec<String>, AdminError> {
    let mut out: Vec<String> = Vec::with_capacity(tools.len());
    for tool in tools {
        let tool = required_text(field, &tool, 200)?;
        if !out.contains(&tool) {
            out.push(tool);
        }
    }
    Ok(out)
}

/// `{"blockedKeywords":[strings]}`; any other key is refused (a typo would silently filter nothing).
fn check_semantic_filter(filter: JsonObject) -> Result<JsonObject, AdminError> {
    for (key, value) in &filter {
        let ok = key == "blockedKeywords"
            && value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string));
        if !ok {
            return Err(AdminError::field(
                "semanticFilter",
                "semanticFilter is {\"blockedKeywords\": [strings]}",
            ));
        }
    }
    Ok(filter)
}

fn check_pricing(pricing: McpPricing) -> Result<McpPricing, AdminError> {
    pricing
        .validate()
        .map_err(|e| AdminError::field("pricing", e.to_string()))?;
    Ok(pricing)
}

fn check_env(env: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    };
    if let Some(bad) = env.keys().find(|name| !valid_name(name)) {
        return Err(AdminError::field(
            "stdioEnv",
            format!("`{bad}` is not a valid environment variable name"),
        ));
    }
    Ok(env)
}

/// The fields each auth type needs (`true` = a secret), and accepts.
fn auth_fields(auth_type: McpAuthType) -> &'static [(&'static str, bool, bool)] {
    // (name, secret, required)
    match auth_type {
        McpAuthType::None => &[],
        McpAuthType::Bearer => &[("token", true, true)],
        McpAuthType::Basic => &[("username", false, true), ("password", true, true)],
        McpAuthType::OAuth2 => &[
            ("tokenUrl", false, true),
            ("clientId", false, true),
            ("clientSecret", true, true),
            ("scope", false, false),
            ("audience", false, false),
        ],
    }
}

/// Checks `config` against `auth_type`: known string fields only, required ones present.
fn check_auth(
    auth_type: McpAuthType,
    config: Option<JsonObject>,
) -> Result<JsonObject, AdminError> {
    let config = config.unwrap_or_default();
    let fields = auth_fields(auth_type);
    for (key, value) in &config {
        if !fields.iter().any(|(name, _, _)| name == key) {
            return Err(AdminError::field(
                "authConfig",
                format!("`{key}` is not a field of {auth_type} auth"),
            ));
        }
        if !value.is_string() {
            return Err(AdminError::field(
                "authConfig",
                format!("`{key}` must be a string"),
            ));
        }
    }
    for (name, _, required) in fields {
        let present = config
            .get(*name)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.trim().is_empty());
        if *required && !present {
            return Err(AdminError::field(
                "authConfig",
                format!("{auth_type} auth needs `{name}`"),
            ));
        }
    }
    if auth_type == McpAuthType::OAuth2 {
        if let Some(url) = config.get("tokenUrl").and_then(Value::as_str) {
            super::check_upstream_url("authConfig", url).map_err(|_| {
                AdminError::field(
                    "authConfig",
                    "tokenUrl must be an http(s) URL without a fragment or credentials",
                )
            })?;
        }
    }
    Ok(config)
}

/// The config with secrets replaced by previews.
fn auth_preview(auth_type: McpAuthType, config: &JsonObject) -> JsonObject {
    config
        .iter()
        .map(|(key, value)| {
            let secret = auth_fields(auth_type)
                .iter()
                .any(|(name, secret, _)| name == key && *secret);
            let shown = match (secret, value.as_str()) {
                (true, Some(text)) => Value::String(preview(text)),
                _ => value.clone(),
            };
            (key.clone(), shown)
        })
        .collect()
}

fn seal(master_key: &MasterKey, field: &str, text: &str) -> Result<String, AdminError> {
    master_key
        .seal(text)
        .map_err(|_| AdminError::field(field, format!("{field} could not be sealed")))
}

/// Sealed envelope + preview of the auth config (`None` for an empty one).
fn sealed_auth(
    master_key: &MasterKey,
    auth_type: McpAuthType,
    config: &JsonObject,
) -> Result<(Option<String>, JsonObject), AdminError> {
    if config.is_empty() {
        return Ok((None, JsonObject::new()));
    }
    let envelope = seal(master_key, "authConfig", &to_json_text(config)?)?;
    Ok((Some(envelope), auth_preview(auth_type, config)))
}

/// Sealed envelope + previews of the stdio environment (`None` for an empty one).
fn sealed_env(
    master_key: &MasterKey,
    env: &BTreeMap<String, String>,
) -> Result<(Option<String>, BTreeMap<String, String>), AdminError> {
    if env.is_empty() {
        return Ok((None, BTreeMap::new()));
    }
    let envelope = seal(master_key, "stdioEnv", &to_json_text(env)?)?;
    let previews = env
        .iter()
        .map(|(name, value)| (name.clone(), preview(value)))
        .collect();
    Ok((Some(envelope), previews))
}

/// The team and key scopes must name objects of the organisation.
async fn check_scopes(
    pool: &Db,
    organisation_id: &str,
    team_id: Option<&str>,
    api_key_id: Option<&str>,
) -> Result<(), AdminError> {
    if let Some(team) = team_id {
        if !exists_in_org(pool, "teams", organisation_id, team).await? {
            return Err(AdminError::field(
                "teamId",
                "teamId does not name a team of this organisation",
            ));
        }
    }
    if let Some(key) = api_key_id {
        if !exists_in_org(pool, "api_keys", organisation_id, key).await? {
            return Err(AdminError::field(
                "apiKeyId",
                "apiKeyId does not name an API key of this organisation",
            ));
        }
    }
    Ok(())
}

fn duplicate_slug(slug: &str) -> String {
    format!("an MCP server with slug `{slug}` already exists in this organisation")
}

/// Creates a server whose stdio launch (if any) is not approved; see [`create_by`].
pub async fn create(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    input: NewMcpServer,
) -> Result<McpServer, AdminError> {
    create_by(
        pool,
        master_key,
        organisation_id,
        input,
        LaunchAuthor::Tenant,
    )
    .await
}

/// Creates a server; when `author` is the operator, its stdio launch is approved.
pub async fn create_by(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    input: NewMcpServer,
    author: LaunchAuthor,
) -> Result<McpServer, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let slug = check_slug(&input.slug)?;
    let endpoint_url = check_url(input.endpoint_url)?;
    let stdio_command = check_command(input.stdio_command)?;
    let auth_type = input.auth_type.unwrap_or(McpAuthType::None);
    let auth_config = check_auth(auth_type, input.auth_config)?;
    let env = check_env(input.stdio_env.unwrap_or_default())?;
    let allowed = check_tools("allowedTools", input.allowed_tools.unwrap_or_default())?;
    let blocked = check_tools("blockedTools", input.blocked_tools.unwrap_or_default())?;
    let filter = check_semantic_filter(input.semantic_filter.unwrap_or_default())?;
    let pricing = check_pricing(input.pricing.unwrap_or_default())?;
    let policies = check_optional_policies(input.policies)?;
    check_scopes(
        pool,
        organisation_id,
        input.team_id.as_deref(),
        input.api_key_id.as_deref(),
    )
    .await?;
    let (auth_envelope, auth_shown) = sealed_auth(master_key, auth_type, &auth_config)?;
    let (env_envelope, env_shown) = sealed_env(master_key, &env)?;
    let stdio_args = input.stdio_args.unwrap_or_default();
    let approval = (author == LaunchAuthor::Operator).then(|| {
        stdio_fingerprint(
            stdio_command.as_deref(),
            &stdio_args,
            env.keys().map(String::as_str),
        )
    });
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO mcp_servers (id, organisation_id, name, slug, description, transport, endpoint_url, \
         stdio_command, stdio_args, stdio_env, stdio_env_preview, auth_type, auth_config, auth_preview, \
         enabled, public_internet, oauth_required, team_id, api_key_id, allowed_tools, blocked_tools, \
         semantic_filter, metadata, pricing, policies, created_at, updated_at, stdio_approval) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         $20, $21, $22, $23, $24, $25, $26, $27, $28)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(&slug)
    .bind(input.description.as_deref().map(str::trim))
    .bind(input.transport.as_str())
    .bind(&endpoint_url)
    .bind(&stdio_command)
    .bind(to_json_text(&stdio_args)?)
    .bind(&env_envelope)
    .bind(to_json_text(&env_shown)?)
    .bind(auth_type.as_str())
    .bind(&auth_envelope)
    .bind(to_json_text(&auth_shown)?)
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(i64::from(input.public_internet.unwrap_or(false)))
    .bind(i64::from(input.oauth_required.unwrap_or(false)))
    .bind(&input.team_id)
    .bind(&input.api_key_id)
    .bind(to_json_text(&allowed)?)
    .bind(to_json_text(&blocked)?)
    .bind(to_json_text(&filter)?)
    .bind(to_json_text(&input.metadata.unwrap_or_default())?)
    .bind(to_json_text(&pricing)?)
    .bind(to_json_text(&policies)?)
    .bind(now)
    .bind(now)
    .bind(&approval)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_slug(&slug)))?;
    get(pool, organisation_id, &id).await
}

/// The server `id` of the organisation; 404 when it is not there.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<McpServer, AdminError> {
    SERVERS.get(pool, organisation_id, id).await
}

/// The organisation's MCP servers; with `organisation_id = None`, every organisation's.
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<McpServer>, AdminError> {
    SERVERS.list(pool, organisation_id, &[], page).await
}

/// Applies `patch` as a tenant would (touching the stdio launch withdraws its approval); see
/// [`update_by`].
pub async fn update(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    id: &str,
    patch: McpServerPatch,
) -> Result<McpServer, AdminError> {
    update_by(
        pool,
        master_key,
        organisation_id,
        id,
        patch,
        LaunchAuthor::Tenant,
    )
    .await
}

/// Applies `patch`. When it touches the stdio launch (transport, command, arguments or
/// environment), the resulting launch is approved if `author` is the operator, and any approval
/// is withdrawn otherwise; other patches leave the approval as it is.
pub async fn update_by(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    id: &str,
    patch: McpServerPatch,
    author: LaunchAuthor,
) -> Result<McpServer, AdminError> {
    let touches_launch = patch.touches_stdio_launch();
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(slug) = patch.slug {
        current.slug = check_slug(&slug)?;
    }
    if let Some(transport) = patch.transport {
        current.transport = transport;
    }
    if let Some(description) = patch.description {
        current.description = description.map(|d| d.trim().to_owned());
    }
    if let Some(url) = patch.endpoint_url {
        current.endpoint_url = check_url(url)?;
    }
    if let Some(command) = patch.stdio_command {
        current.stdio_command = check_command(command)?;
    }
    if let Some(args) = patch.stdio_args {
        current.stdio_args = args;
    }
    if let Some(tools) = patch.allowed_tools {
        current.allowed_tools = check_tools("allowedTools", tools)?;
    }
    if let Some(tools) = patch.blocked_tools {
        current.blocked_tools = check_tools("blockedTools", tools)?;
    }
    if let Some(filter) = patch.semantic_filter {
        current.semantic_filter = check_semantic_filter(filter)?;
    }
    if let Some(pricing) = patch.pricing {
        current.pricing = check_pricing(pricing)?;
    }
    if let Some(policies) = patch.policies {
        current.policies = check_policies(policies)?;
    }
    if let Some(team) = patch.team_id {
        current.team_id = team;
    }
    if let Some(key) = patch.api_key_id {
        current.api_key_id = key;
    }
    check_scopes(
        pool,
        organisation_id,
        current.team_id.as_deref(),
        current.api_key_id.as_deref(),
    )
    .await?;
    for (value, slot) in [
        (patch.enabled, &mut current.enabled),
        (patch.public_internet, &mut current.public_internet),
        (patch.oauth_required, &mut current.oauth_required),
    ] {
        if let Some(value) = value {
            *slot = value;
        }
    }
    if let Some(metadata) = patch.metadata {
        current.metadata = metadata;
    }

    // Secrets: replaced only when given. A new auth type needs its config (NONE needs none).
    let auth_type_changed = patch.auth_type.is_some_and(|t| t != current.auth_type);
    let new_auth = match (patch.auth_config, patch.auth_type) {
        (Some(config), auth_type) => {
            let auth_type = auth_type.unwrap_or(current.auth_type);
            Some((auth_type, check_auth(auth_type, config)?))
        }
        (None, Some(McpAuthType::None)) => Some((McpAuthType::None, JsonObject::new())),
        (None, Some(auth_type)) if auth_type_changed => {
            return Err(AdminError::field(
                "authConfig",
                format!("changing authType to {auth_type} needs its authConfig"),
            ));
        }
        (None, _) => None,
    };
    let new_env = patch
        .stdio_env
        .map(|env| check_env(env.unwrap_or_default()))
        .transpose()?;

    let mut sql = String::from(
        "UPDATE mcp_servers SET name = $1, slug = $2, description = $3, transport = $4, endpoint_url = $5, \
         stdio_command = $6, stdio_args = $7, enabled = $8, public_internet = $9, oauth_required = $10, \
         team_id = $11, api_key_id = $12, allowed_tools = $13, blocked_tools = $14, semantic_filter = $15, \
         metadata = $16, pricing = $17, policies = $18, updated_at = $19",
    );
    let mut next = 20;
    let sealed_auth = new_auth
        .map(|(auth_type, config)| {
            sealed_auth(master_key, auth_type, &config).map(|sealed| (auth_type, sealed))
        })
        .transpose()?;
    if sealed_auth.is_some() {
        sql.push_str(&format!(
            ", auth_type = ${}, auth_config = ${}, auth_preview = ${}",
            next,
            next + 1,
            next + 2
        ));
        next += 3;
    }
    let sealed_env = new_env
        .map(|env| sealed_env(master_key, &env))
        .transpose()?;
    if sealed_env.is_some() {
        sql.push_str(&format!(
            ", stdio_env = ${}, stdio_env_preview = ${}",
            next,
            next + 1
        ));
        next += 2;
    }
    let approval = touches_launch.then(|| {
        (author == LaunchAuthor::Operator).then(|| {
            let names: Vec<&str> = match &sealed_env {
                Some((_, shown)) => shown.keys().map(String::as_str).collect(),
                None => current
                    .stdio_env_preview
                    .keys()
                    .map(String::as_str)
                    .collect(),
            };
            stdio_fingerprint(current.stdio_command.as_deref(), &current.stdio_args, names)
        })
    });
    if approval.is_some() {
        sql.push_str(&format!(", stdio_approval = ${next}"));
        next += 1;
    }
    sql.push_str(&format!(
        " WHERE id = ${} AND organisation_id = ${}",
        next,
        next + 1
    ));
    let mut query = sqlx::query(&sql)
        .bind(current.name.clone())
        .bind(current.slug.clone())
        .bind(current.description.clone())
        .bind(current.transport.as_str())
        .bind(current.endpoint_url.clone())
        .bind(current.stdio_command.clone())
        .bind(to_json_text(&current.stdio_args)?)
        .bind(i64::from(current.enabled))
        .bind(i64::from(current.public_internet))
        .bind(i64::from(current.oauth_required))
        .bind(current.team_id.clone())
        .bind(current.api_key_id.clone())
        .bind(to_json_text(&current.allowed_tools)?)
        .bind(to_json_text(&current.blocked_tools)?)
        .bind(to_json_text(&current.semantic_filter)?)
        .bind(to_json_text(&current.metadata)?)
        .bind(to_json_text(&current.pricing)?)
        .bind(to_json_text(&current.policies)?)
        .bind(now_ms());
    if let Some((auth_type, (envelope, shown))) = sealed_auth {
        query = query
            .bind(auth_type.as_str())
            .bind(envelope)
            .bind(to_json_text(&shown)?);
    }
    if let Some((envelope, shown)) = sealed_env {
        query = query.bind(envelope).bind(to_json_text(&shown)?);
    }
    if let Some(approval) = approval {
        query = query.bind(approval);
    }
    let result = query
        .bind(id.to_owned())
        .bind(organisation_id.to_owned())
        .execute(pool)
        .await
        .map_err(conflict(duplicate_slug(&current.slug)))?;
    SERVERS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the server and its grants (cascade); its usage records stay.
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    SERVERS.delete(pool, organisation_id, id).await
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::services::test_support::{org, pool};
    use odock_core::{McpUpstreamAuth, Secret};

    pub(crate) fn new(slug: &str, body: Value) -> NewMcpServer {
        let mut object = json!({"name": slug, "slug": slug, "transport": "STREAMABLE_HTTP",
                                "endpointUrl": "http://127.0.0.1:1/mcp"});
        if let (Some(target), Some(extra)) = (object.as_object_mut(), body.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(object).unwrap()
    }

    async fn stored(pool: &Db, id: &str) -> (Option<String>, Option<String>) {
        let row = sqlx::query("SELECT auth_config, stdio_env FROM mcp_servers WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
        (row.try_get(0).unwrap(), row.try_get(1).unwrap())
    }

    #[tokio::test]
    async fn secrets_are_sealed_and_only_previewed() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let (master_key, _) = MasterKey::generate();
        let token = "mcp-upstream-token-0123456789";
        let server = create(
            &pool,
            &master_key,
            &a,
            new(
                "tools",
                json!({"authType": "BEARER", "authConfig": {"token": token},
                       "stdioEnv": {"API_TOKEN": "env-secret-value-987654"}}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(server.auth_type, McpAuthType::Bearer);
        assert_eq!(server.auth_config_preview["token"], "mcp…6789");
        assert_eq!(server.stdio_env_preview["API_TOKEN"], "env…7654");
        let shown = serde_json::to_string(&server).unwrap();
        assert!(!shown.contains(token) && !shown.contains("env-secret-value"));

        let (auth, env) = stored(&pool, &server.id).await;
        let (auth, env) = (auth.unwrap(), env.unwrap());
        assert!(!auth.contains(token) && auth.starts_with("v1."));
        let opened: JsonObject =
            serde_json::from_str(master_key.open(&auth).unwrap().expose()).unwrap();
        assert_eq!(
            upstream_auth(McpAuthType::Bearer, &opened).unwrap(),
            McpUpstreamAuth::Bearer {
                token: Secret::new(token)
            }
        );
        assert!(master_key
            .open(&env)
            .unwrap()
            .expose()
            .contains("env-secret-value"));

        // A PATCH without auth fields keeps the secrets; switching to NONE clears them.
        let patched = update(
            &pool,
            &master_key,
            &a,
            &server.id,
            serde_json::from_value(json!({"enabled": false})).unwrap(),
        )
        .await
        .unwrap();
        assert!(!patched.enabled);
        assert_eq!(stored(&pool, &server.id).await.0, Some(auth));
        let cleared = update(
            &pool,
            &master_key,
            &a,
            &server.id,
            serde_json::from_value(json!({"authType": "NONE", "stdioEnv": null})).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(cleared.auth_type, McpAuthType::None);
        assert!(cleared.auth_config_preview.is_empty());
        assert_eq!(stored(&pool, &server.id).await, (None, None));
    }

    #[tokio::test]
    async fn validation_scoping_and_uniqueness() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let (key, _) = MasterKey::generate();
        let server = create(&pool, &key, &a, new("tools", json!({})))
            .await
            .unwrap();
        assert!(matches!(
            create(&pool, &key, &a, new("tools", json!({}))).await,
            Err(AdminError::Conflict(_))
        ));
        create(&pool, &key, &b, new("tools", json!({})))
            .await
            .unwrap();
        assert!(matches!(
            get(&pool, &b, &server.id).await,
            Err(AdminError::NotFound(_))
        ));
        let refused = |field: &'static str, result: Result<McpServer, AdminError>| {
            assert!(
                matches!(&result, Err(AdminError::Invalid { field: Some(f), .. }) if f == field),
                "{field}: {result:?}"
            );
        };
        refused(
            "slug",
            create(&pool, &key, &a, new("Bad Slug", json!({}))).await,
        );
        refused(
            "endpointUrl",
            create(
                &pool,
                &key,
                &a,
                new("x1", json!({"endpointUrl": "ftp://x"})),
            )
            .await,
        );
        refused(
            "authConfig",
            create(
                &pool,
                &key,
                &a,
                new(
                    "x2",
                    json!({"authType": "BASIC", "authConfig": {"username": "u"}}),
                ),
            )
            .await,
        );
        refused(
            "authConfig",
            create(
                &pool,
                &key,
                &a,
                new(
                    "x3",
                    json!({"authType": "BEARER", "authConfig": {"token": "t", "extra": "y"}}),
                ),
            )
            .await,
        );
        refused(
            "semanticFilter",
            create(
                &pool,
                &key,
                &a,
                new("x4", json!({"semanticFilter": {"blockedKeyword": ["x"]}})),
            )
            .await,
        );
        refused(
            "pricing",
            create(
                &pool,
                &key,
                &a,
                new("x5", json!({"pricing": {"callNanosUsd": -1}})),
            )
            .await,
        );
        refused(
            "teamId",
            create(&pool, &key, &a, new("x6", json!({"teamId": "nope"}))).await,
        );
        refused(
            "policies",
            create(
                &pool,
                &key,
                &a,
                new("x7", json!({"policies": {"requestPerMinute": 1}})),
            )
            .await,
        );
        refused(
            "authConfig",
            update(
                &pool,
                &key,
                &a,
                &server.id,
                serde_json::from_value(json!({"authType": "OAUTH2"})).unwrap(),
            )
            .await,
        );
        let listed = list(&pool, Some(&a), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.data.len(), 1);
        delete(&pool, &a, &server.id).await.unwrap();
        assert!(matches!(
            delete(&pool, &a, &server.id).await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn only_the_operators_stdio_launch_is_approved_and_a_tenant_edit_withdraws_it() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let org_id = odock_core::OrganisationId::new(a.as_str());
        let (master_key, _) = MasterKey::generate();
        let stdio = |slug: &str| {
            new(
                slug,
                json!({"transport": "STDIO", "endpointUrl": null, "stdioCommand": "/usr/bin/server",
                       "stdioArgs": ["--port", "1"], "stdioEnv": {"TOKEN": "t"}}),
            )
        };
        let approved = |slug: &'static str| {
            let pool = pool.clone();
            let master_key = &master_key;
            let org_id = org_id.clone();
            async move {
                // What the gateway's resolution reads (a fresh store: nothing cached).
                let store = odock_store::SqlKeyStore::new(
                    pool,
                    std::sync::Arc::new(master_key.clone()),
                    odock_store::KeyStoreOptions::default(),
                );
                odock_core::KeyStore::mcp_server(&store, &org_id, slug)
                    .await
                    .unwrap()
                    .unwrap()
                    .stdio_approved
            }
        };
        let patch = |value: Value| -> McpServerPatch { serde_json::from_value(value).unwrap() };

        let by_tenant = create(&pool, &master_key, &a, stdio("tenant"))
            .await
            .unwrap();
        assert!(!by_tenant.stdio_approved);
        assert!(!approved("tenant").await);

        let by_operator = create_by(
            &pool,
            &master_key,
            &a,
            stdio("operator"),
            LaunchAuthor::Operator,
        )
        .await
        .unwrap();
        assert!(by_operator.stdio_approved);
        assert!(approved("operator").await);

        // A tenant's patch that leaves the launch alone keeps the approval...
        let renamed = update(
            &pool,
            &master_key,
            &a,
            &by_operator.id,
            patch(json!({"name": "renamed"})),
        )
        .await
        .unwrap();
        assert!(renamed.stdio_approved);
        // ...one that touches it (arguments, environment, command, transport) withdraws it.
        for change in [
            json!({"stdioArgs": ["-c", "id"]}),
            json!({"stdioEnv": {"LD_PRELOAD": "/tmp/x.so"}}),
            json!({"stdioCommand": "/bin/sh"}),
            json!({"transport": "STDIO"}),
        ] {
            update_by(
                &pool,
                &master_key,
                &a,
                &by_operator.id,
                patch(json!({"stdioArgs": ["--port", "1"]})),
                LaunchAuthor::Operator,
            )
            .await
            .unwrap();
            assert!(approved("operator").await);
            let edited = update(
                &pool,
                &master_key,
                &a,
                &by_operator.id,
                patch(change.clone()),
            )
            .await
            .unwrap();
            assert!(!edited.stdio_approved, "{change}");
            assert!(!approved("operator").await, "{change}");
        }
    }
}
