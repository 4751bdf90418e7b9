//! Upstream credentials, injected after governance: none, a static bearer token, HTTP Basic, or an
//! OAuth2 client-credentials token fetched from the server's token endpoint and cached until shortly
//! before it expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use http::HeaderValue;
use odock_core::egress::EgressPolicy;
use odock_core::{Clock, McpAuthType, McpError, Secret, SystemClock};
use serde::Deserialize;
use serde_json::Value;

use crate::egress::{check_url, read_capped, refusal};

/// The largest token endpoint answer read (a token response is a few KiB at most).
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

/// How Odock authenticates to one MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum McpAuth {
    /// No credentials: requests go upstream without an `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer {token}` on every request.
    Bearer {
        /// The bearer token, sent as configured.
        token: Secret,
    },
    /// `Authorization: Basic` from a username and password.
    Basic {
        /// The Basic username.
        username: String,
        /// The Basic password.
        password: Secret,
    },
    /// A bearer token fetched from `token_url` with the client-credentials grant and cached until
    /// it expires.
    OAuth2ClientCredentials {
        /// The token endpoint (checked against the egress policy before each fetch).
        token_url: String,
        /// Odock's client id at the token endpoint.
        client_id: String,
        /// Odock's client secret at the token endpoint.
        client_secret: Secret,
        /// The `scope` form field, sent only when set.
        scope: Option<String>,
        /// The `audience` form field, sent only when set (some providers require it).
        audience: Option<String>,
    },
}

impl McpAuth {
    /// Reads the server's decrypted auth config (`{"token"}`, `{"username","password"}`,
    /// `{"tokenUrl","clientId","clientSecret","scope"?,"audience"?}`). A missing field is
    /// [`McpError::Auth`] naming the field, never its value.
    pub fn from_config(auth_type: McpAuthType, config: &Value) -> Result<Self, McpError> {
        let field = |name: &str| -> Result<String, McpError> {
            config
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| McpError::Auth(format!("auth config is missing `{name}`")))
        };
        let optional = |name: &str| {
            config
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        Ok(match auth_type {
            McpAuthType::None => McpAuth::None,
            McpAuthType::Bearer => McpAuth::Bearer {
                token: Secret::new(field("token")?),
            },
            McpAuthType::Basic => McpAuth::Basic {
                username: field("username")?,
                password: Secret::new(field("password")?),
            },
            McpAuthType::OAuth2 => McpAuth::OAuth2ClientCredentials {
                token_url: field("tokenUrl")?,
                client_id: field("clientId")?,
                client_secret: Secret::new(field("clientSecret")?),
                scope: optional("scope"),
                audience: optional("audience"),
            },
        })
    }
}

/// Refetch this long before a token's announced expiry, so a token never expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// How long to keep a token whose endpoint did not say (`expires_in` absent).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Produces the `Authorization` header for upstream calls, caching OAuth2 tokens (one fetch at a
/// time; concurrent callers wait for it).
pub struct UpstreamAuth {
    auth: McpAuth,
    client: reqwest::Client,
    /// Checks the token URL's host before a token is fetched (the client's resolver checks names).
    egress: Arc<EgressPolicy>,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamAuth")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl UpstreamAuth {
    /// Header producer for `auth`, fetching tokens through `client` on the system clock.
    pub fn new(auth: McpAuth, client: reqwest::Client) -> Self {
        Self::with_clock(auth, client, Arc::new(SystemClock))
    }

    /// With a controllable clock, so token expiry can be tested without waiting.
    pub fn with_clock(auth: McpAuth, client: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            auth,
            client,
            egress: Arc::new(EgressPolicy::default()),
            clock,
            token: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// The egress policy the token URL is checked against (default: no private address). Pass
    /// the one the client's resolver enforces.
    pub fn with_egress(mut self, egress: Arc<EgressPolicy>) -> Self {
        self.egress = egress;
        self
    }

    /// The configured credentials.
    pub fn auth(&self) -> &McpAuth {
        &self.auth
    }

    /// How many times a token was fetched from the token endpoint.
    pub fn token_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The `Authorization` value to send upstream, if any.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, McpError> {
        match &self.auth {
            McpAuth::None => Ok(None),
            McpAuth::Bearer { token } => sensitive(&format!("Bearer {}", token.expose())).map(Some),
            McpAuth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                sensitive(&format!("Basic {encoded}")).map(Some)
            }
            McpAuth::OAuth2ClientCredentials { .. } => self.oauth2_header().await.map(Some),
        }
    }

    /// Forgets a cached token (the upstream rejected it), so the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    async fn oauth2_header(&self) -> Result<HeaderValue, McpError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = cached.as_ref().filter(|token| now < token.refresh_at) {
            return Ok(token.header.clone());
        }
        let fresh = self.fetch_token(now).await?;
        let header = fresh.header.clone();
        *cached = Some(fresh);
        Ok(header)
    }

    async fn fetch_token(&self, now: DateTime<Utc>) -> Result<CachedToken, McpError> {
        let McpAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            audience,
        } = &self.auth
        else {
            return Err(McpError::Auth("not an OAuth2 configuration".into()));
        };
        let token_url =
            check_url(token_url, &self.egress, "the token URL").map_err(|error| match error {
                McpError::Forbidden(denied) => McpError::Forbidden(denied),
                other => McpError::Auth(other.to_string()),
            })?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = audience {
            form.push(("audience", audience));
        }
        // Errors name the failure, never the request (it carries the client secret).
        let response = self
            .client
            .post(token_url)
            .header(http::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|error| match refusal(&error) {
                Some(denied) => McpError::Forbidden(denied),
                None => McpError::Auth(format!(
                    "token endpoint unreachable ({})",
                    crate::egress::reqwest_failure(&error)
                )),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(McpError::Auth(format!(
                "token endpoint answered {}",
                status.as_u16()
            )));
        }
        let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|_| McpError::Auth("token endpoint sent an unreadable answer".into()))?;
        let body: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| McpError::Auth("token endpoint sent no usable access_token".into()))?;
        if body.access_token.is_empty() {
            return Err(McpError::Auth(
                "token endpoint sent an empty access_token".into(),
            ));
        }
        let lifetime = body
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Short-lived tokens are still reused for half their life rather than refetched every call.
        let usable = lifetime
            .checked_sub(EXPIRY_MARGIN)
            .filter(|usable| *usable >= lifetime / 2)
            .unwrap_or(lifetime / 2);
        let refresh_at =
            now + chrono::Duration::from_std(usable).unwrap_or_else(|_| chrono::Duration::zero());
        Ok(CachedToken {
            header: sensitive(&format!("Bearer {}", body.access_token))?,
            refresh_at,
        })
    }
}

/// A header value marked sensitive (hyper keeps it out of its own debug output).
fn sensitive(value: &str) -> Result<HeaderValue, McpError> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| McpError::Auth("credential is not a valid header value".into()))?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_each_auth_config_shape() {
        assert_eq!(
            McpAuth::from_config(McpAuthType::None, &Value::Null).unwrap(),
            McpAuth::None
        );
        assert_eq!(
            McpAuth::from_config(McpAuthType::Bearer, &json!({"token": "t0k"})).unwrap(),
            McpAuth::Bearer {
                token: Secret::new("t0k")
            }
        );
        let oauth = McpAuth::from_config(
            McpAuthType::OAuth2,
            &json!({"tokenUrl": "http://idp/token", "clientId": "c", "clientSecret": "s", "scope": "mcp"}),
        )
        .unwrap();
        assert!(matches!(
            oauth,
            McpAuth::OAuth2ClientCredentials { scope: Some(ref s), audience: None, .. } if s == "mcp"
        ));
    }

    #[test]
    fn missing_fields_name_the_field_not_the_secret() {
        let error = McpAuth::from_config(
            McpAuthType::Basic,
            &json!({"username": "u", "passwd": "hunter2"}),
        )
        .unwrap_err();
        assert_eq!(
            error,
            McpError::Auth("auth config is missing `password`".into())
        );
        assert!(!error.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn static_credentials_become_authorization_headers() {
        let client = reqwest::Client::new();
        let basic = UpstreamAuth::new(
            McpAuth::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret"),
            },
            client.clone(),
        );
        assert_eq!(
            basic.authorization().await.unwrap().unwrap(),
            "Basic YWxpY2U6czNjcmV0"
        );
        let none = UpstreamAuth::new(McpAuth::None, client);
        assert!(none.authorization().await.unwrap().is_none());
        assert!(!format!("{basic:?}").contains("s3cret"));
    }
}
