//! MCP session ownership shared by every replica: one key per session,
//! `{prefix}mcp-session:{id}` → the owner's advertised URL, expiring with the session's idle
//! timeout (refreshed while the session is used).

use std::time::Duration;

use async_trait::async_trait;
use odock_core::mcp_sessions::{McpSessionDirectory, SessionDirectoryError};

use super::connection::{RedisConnection, RedisStoreError};

/// [`McpSessionDirectory`] on Redis.
#[derive(Debug, Clone)]
pub struct RedisMcpSessionDirectory {
    conn: RedisConnection,
}

impl RedisMcpSessionDirectory {
    /// A session directory on `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }

    fn key(&self, session_id: &str) -> String {
        self.conn.key(&format!("mcp-session:{session_id}"))
    }
}

/// Redis counts TTLs in whole milliseconds and refuses 0.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(error: RedisStoreError) -> SessionDirectoryError {
    SessionDirectoryError::Unavailable(error.to_string())
}

#[async_trait]
impl McpSessionDirectory for RedisMcpSessionDirectory {
    async fn claim(
        &self,
        session_id: &str,
        owner_url: &str,
        ttl: Duration,
    ) -> Result<(), SessionDirectoryError> {
        let mut conn = self.conn.manager();
        let () = self
            .conn
            .bounded(
                redis::cmd("SET")
                    .arg(self.key(session_id))
                    .arg(owner_url)
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async(&mut conn),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn owner(&self, session_id: &str) -> Result<Option<String>, SessionDirectoryError> {
        let mut conn = self.conn.manager();
        self.conn
            .bounded(
                redis::cmd("GET")
                    .arg(self.key(session_id))
                    .query_async(&mut conn),
            )
            .await
            .map_err(unavailable)
    }

    async fn touch(&self, session_id: &str, ttl: Duration) -> Result<(), SessionDirectoryError> {
        let mut conn = self.conn.manager();
        // PEXPIRE on a missing key is a no-op: an expired session is not revived.
        let _: i64 = self
            .conn
            .bounded(
                redis::cmd("PEXPIRE")
                    .arg(self.key(session_id))
                    .arg(ttl_ms(ttl))
                    .query_async(&mut conn),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn forget(&self, session_id: &str) -> Result<(), SessionDirectoryError> {
        let mut conn = self.conn.manager();
        let _: i64 = self
            .conn
            .bounded(
                redis::cmd("DEL")
                    .arg(self.key(session_id))
                    .query_async(&mut conn),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
