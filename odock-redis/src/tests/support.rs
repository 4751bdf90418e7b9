use std::time::Duration;

use crate::{RedisConnection, RedisSettings};

/// Settings under a fresh random prefix, or `None` when no test Redis is configured.
pub(super) fn settings(test: &str) -> Option<RedisSettings> {
    let Ok(url) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped {test}: ODOCK_TEST_REDIS_URL is not set");
        return None;
    };
    let mut settings = RedisSettings::new(url);
    settings.prefix = format!("odock-test:{}:", odock_core::ids::random_hex(8));
    settings.response_timeout = Duration::from_secs(2);
    Some(settings)
}

pub(super) async fn connect_with(settings: &RedisSettings) -> RedisConnection {
    RedisConnection::connect(settings)
        .await
        .unwrap_or_else(|error| {
            panic!("ODOCK_TEST_REDIS_URL is set but Redis is unreachable: {error}")
        })
}

/// Deletes every key under the connection's prefix (what a Redis restart without persistence
/// does to us); returns how many.
pub(super) async fn delete_prefix(conn: &RedisConnection) -> usize {
    let mut manager = conn.manager();
    let pattern = format!("{}*", conn.prefix());
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut manager)
            .await
            .unwrap();
        if !keys.is_empty() {
            deleted += keys.len();
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut manager)
                .await
                .unwrap();
        }
        if next == 0 {
            return deleted;
        }
        cursor = next;
    }
}

/// A TCP proxy in front of the test Redis that can be cut and restored: a Redis outage (and its
/// end) for one test only, without touching the Redis other tests share.
pub(super) struct Proxy {
    pub addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies to the host and port of `redis_url`.
    pub(super) async fn start(redis_url: &str) -> Self {
        let target = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (accept_up, accept_links) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is reset
                }
                let target = target.clone();
                accept_links.lock().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            addr,
            up,
            links,
            accept,
        }
    }

    /// The URL clients use to reach Redis through the proxy.
    pub(super) fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Redis goes away: open connections are cut and new ones refused.
    pub(super) fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().drain(..) {
            link.abort();
        }
    }

    /// Redis is back.
    pub(super) fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().drain(..) {
            link.abort();
        }
    }
}

/// Polls `check` every 10 ms until it holds (for something that is about to happen), failing
/// after 10 s.
pub(super) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
