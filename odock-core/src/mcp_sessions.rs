//! Which replica owns an MCP session.
//!
//! STDIO and legacy-SSE MCP sessions live in one replica's memory (a child process or an upstream
//! event stream per session, under an `Mcp-Session-Id` that replica minted). When several replicas
//! run behind a load balancer, a session's next request may land anywhere, so the replica that
//! minted a session records itself as its owner in an [`McpSessionDirectory`], and the others look
//! the owner up and forward the request to it. Entries expire (`ttl`), so a session whose owner
//! died or reaped it does not point anywhere for long.
//!
//! [`InMemoryMcpSessionDirectory`] serves one replica (embedded mode: every session is local);
//! `odock_redis::RedisMcpSessionDirectory` is the shared one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};

/// The directory could not be asked (its backend is unreachable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionDirectoryError {
    /// The backend's error, without secrets.
    #[error("MCP session directory unavailable: {0}")]
    Unavailable(String),
}

/// Session id → the URL of the replica that owns it.
#[async_trait]
pub trait McpSessionDirectory: Send + Sync + 'static {
    /// Records `owner_url` as the owner of `session_id` for `ttl`.
    async fn claim(
        &self,
        session_id: &str,
        owner_url: &str,
        ttl: Duration,
    ) -> Result<(), SessionDirectoryError>;

    /// The owner of `session_id`, while its entry lives.
    async fn owner(&self, session_id: &str) -> Result<Option<String>, SessionDirectoryError>;

    /// Extends a live entry to `ttl` from now (the session was used); nothing for unknown ids.
    async fn touch(&self, session_id: &str, ttl: Duration) -> Result<(), SessionDirectoryError>;

    /// Drops the entry (session ended, or its owner is gone).
    async fn forget(&self, session_id: &str) -> Result<(), SessionDirectoryError>;
}

/// Marker a transport may leave in a response's extensions: the session lives upstream (streamable
/// HTTP relays the upstream server's own session id), so any replica can serve it and no ownership
/// is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamHeldSession;

/// Whether `id` can be an `Mcp-Session-Id`: 1–256 visible ASCII characters (the MCP spec allows
/// 0x21–0x7E). Anything else is never looked up or recorded.
pub fn is_valid_session_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The directory of a single replica, with expiry on an injectable clock.
pub struct InMemoryMcpSessionDirectory {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    owner: String,
    expires_at: DateTime<Utc>,
}

impl Default for InMemoryMcpSessionDirectory {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for InMemoryMcpSessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryMcpSessionDirectory")
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

impl InMemoryMcpSessionDirectory {
    /// An empty directory whose entries expire on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        self.entries
            .lock()
            .values()
            .filter(|entry| entry.expires_at > now)
            .count()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn deadline(&self, ttl: Duration) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.clock
            .now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[async_trait]
impl McpSessionDirectory for InMemoryMcpSessionDirectory {
    async fn claim(
        &self,
        session_id: &str,
        owner_url: &str,
        ttl: Duration,
    ) -> Result<(), SessionDirectoryError> {
        let expires_at = self.deadline(ttl);
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        // Expired entries go when new ones come, so the map stays as large as the live sessions.
        entries.retain(|_, entry| entry.expires_at > now);
        entries.insert(
            session_id.to_owned(),
            Entry {
                owner: owner_url.to_owned(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn owner(&self, session_id: &str) -> Result<Option<String>, SessionDirectoryError> {
        let now = self.clock.now();
        Ok(self
            .entries
            .lock()
            .get(session_id)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.owner.clone()))
    }

    async fn touch(&self, session_id: &str, ttl: Duration) -> Result<(), SessionDirectoryError> {
        let expires_at = self.deadline(ttl);
        let now = self.clock.now();
        if let Some(entry) = self.entries.lock().get_mut(session_id) {
            if entry.expires_at > now {
                entry.expires_at = expires_at;
            }
        }
        Ok(())
    }

    async fn forget(&self, session_id: &str) -> Result<(), SessionDirectoryError> {
        self.entries.lock().remove(session_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TTL: Duration = Duration::from_secs(300);

    fn directory() -> (ManualClock, InMemoryMcpSessionDirectory) {
        let clock = ManualClock::new(Utc::now());
        let directory = InMemoryMcpSessionDirectory::new(Arc::new(clock.clone()));
        (clock, directory)
    }

    #[tokio::test]
    async fn a_claimed_session_has_its_owner_until_forgotten() {
        let (_, directory) = directory();
        assert_eq!(directory.owner("s1").await.unwrap(), None);
        directory.claim("s1", "http://a:8080", TTL).await.unwrap();
        directory.claim("s2", "http://b:8080", TTL).await.unwrap();
        assert_eq!(
            directory.owner("s1").await.unwrap().as_deref(),
            Some("http://a:8080")
        );
        assert_eq!(
            directory.owner("s2").await.unwrap().as_deref(),
            Some("http://b:8080")
        );
        directory.forget("s1").await.unwrap();
        assert_eq!(directory.owner("s1").await.unwrap(), None);
        assert_eq!(directory.len(), 1);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl_unless_touched() {
        let (clock, directory) = directory();
        directory.claim("idle", "http://a", TTL).await.unwrap();
        directory.claim("busy", "http://a", TTL).await.unwrap();
        clock.advance(chrono::Duration::seconds(200));
        directory.touch("busy", TTL).await.unwrap();
        clock.advance(chrono::Duration::seconds(101));
        assert_eq!(directory.owner("idle").await.unwrap(), None);
        assert_eq!(
            directory.owner("busy").await.unwrap().as_deref(),
            Some("http://a")
        );
        // Touching an expired or unknown entry does not bring it back.
        directory.touch("idle", TTL).await.unwrap();
        directory.touch("never", TTL).await.unwrap();
        assert_eq!(directory.owner("idle").await.unwrap(), None);
        assert_eq!(directory.owner("never").await.unwrap(), None);
        clock.advance(chrono::Duration::seconds(200));
        assert_eq!(directory.owner("busy").await.unwrap(), None);
        assert!(directory.is_empty());
    }

    #[tokio::test]
    async fn expired_entries_are_dropped_when_new_sessions_are_claimed() {
        let (clock, directory) = directory();
        for i in 0..10 {
            directory
                .claim(&format!("s{i}"), "http://a", TTL)
                .await
                .unwrap();
        }
        clock.advance(chrono::Duration::seconds(301));
        directory.claim("fresh", "http://a", TTL).await.unwrap();
        assert_eq!(directory.entries.lock().len(), 1);
    }

    #[test]
    fn session_ids_are_visible_ascii_of_bounded_length() {
        assert!(is_valid_session_id("0f3a9c-session_ID.1"));
        assert!(!is_valid_session_id(""));
        assert!(!is_valid_session_id("has space"));
        assert!(!is_valid_session_id("é"));
        assert!(!is_valid_session_id(&"a".repeat(257)));
        assert!(is_valid_session_id(&"a".repeat(256)));
    }
}
