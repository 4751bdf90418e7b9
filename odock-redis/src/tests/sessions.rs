use std::time::Duration;

use odock_core::mcp_sessions::McpSessionDirectory;

use super::support;
use crate::RedisMcpSessionDirectory;

const TTL: Duration = Duration::from_secs(300);

/// The remaining lifetime of a session's key, in ms (-2 when it does not exist).
async fn pttl(conn: &crate::RedisConnection, session_id: &str) -> i64 {
    let mut manager = conn.manager();
    redis::cmd("PTTL")
        .arg(conn.key(&format!("mcp-session:{session_id}")))
        .query_async(&mut manager)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_sessions_claimed_on_one_replica_are_seen_by_another() {
    let Some(settings) = support::settings("redis_sessions_shared") else {
        return;
    };
    let a = RedisMcpSessionDirectory::new(support::connect_with(&settings).await);
    let b = RedisMcpSessionDirectory::new(support::connect_with(&settings).await);
    assert_eq!(b.owner("s1").await.unwrap(), None);
    a.claim("s1", "http://10.0.0.5:8080", TTL).await.unwrap();
    assert_eq!(
        b.owner("s1").await.unwrap().as_deref(),
        Some("http://10.0.0.5:8080")
    );
    b.forget("s1").await.unwrap();
    assert_eq!(a.owner("s1").await.unwrap(), None);
    // Forgetting twice, or an unknown id, is harmless.
    a.forget("s1").await.unwrap();
    a.forget("never").await.unwrap();
}

#[tokio::test]
async fn redis_session_entries_live_for_their_ttl_and_touch_extends_only_live_ones() {
    let Some(settings) = support::settings("redis_sessions_ttl") else {
        return;
    };
    let conn = support::connect_with(&settings).await;
    let directory = RedisMcpSessionDirectory::new(conn.clone());
    directory.claim("s1", "http://a", TTL).await.unwrap();
    let first = pttl(&conn, "s1").await;
    assert!(first > 290_000 && first <= 300_000, "ttl {first}");
    directory
        .touch("s1", Duration::from_secs(900))
        .await
        .unwrap();
    let touched = pttl(&conn, "s1").await;
    assert!(touched > 890_000 && touched <= 900_000, "ttl {touched}");
    // An expired (here: never claimed) session is not revived by a touch.
    directory.touch("gone", TTL).await.unwrap();
    assert_eq!(pttl(&conn, "gone").await, -2);
    assert_eq!(directory.owner("gone").await.unwrap(), None);
    // A sub-millisecond TTL still makes a key that expires (Redis refuses 0).
    directory
        .claim("short", "http://a", Duration::from_micros(10))
        .await
        .unwrap();
    assert!(pttl(&conn, "short").await <= 1);
    assert!(support::delete_prefix(&conn).await >= 1);
}

#[tokio::test]
async fn redis_sessions_are_kept_apart_by_prefix() {
    let (Some(one), Some(two)) = (
        support::settings("redis_sessions_prefix"),
        support::settings("redis_sessions_prefix"),
    ) else {
        return;
    };
    let a = RedisMcpSessionDirectory::new(support::connect_with(&one).await);
    let b = RedisMcpSessionDirectory::new(support::connect_with(&two).await);
    a.claim("same-id", "http://a", TTL).await.unwrap();
    assert_eq!(b.owner("same-id").await.unwrap(), None);
    a.forget("same-id").await.unwrap();
}
