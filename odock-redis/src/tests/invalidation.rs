use std::sync::Arc;

use odock_core::{CacheInvalidator, CacheKind, InvalidationCommand};
use parking_lot::Mutex;

use super::support;
use crate::RedisInvalidator;

/// A cache that remembers what it was told to evict.
#[derive(Default)]
struct Recorder(Mutex<Vec<InvalidationCommand>>);

impl CacheInvalidator for Recorder {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.0.lock().push(command.clone());
    }
}

impl Recorder {
    fn seen(&self) -> Vec<InvalidationCommand> {
        self.0.lock().clone()
    }
}

/// Fails the test instead of hanging when a subscription never happens.
async fn within(wait: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
        .await
        .expect("subscribed within 10 s");
}

#[tokio::test]
async fn redis_invalidation_published_by_one_replica_is_applied_by_the_other() {
    let Some(settings) = support::settings("redis_invalidation") else {
        return;
    };
    let (cache_a, cache_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = RedisInvalidator::new(support::connect_with(&settings).await, cache_a.clone());
    let b = RedisInvalidator::new(support::connect_with(&settings).await, cache_b.clone());
    let (sub_a, sub_b) = (a.spawn_subscriber(), b.spawn_subscriber());
    within(sub_a.subscribed(1)).await;
    within(sub_b.subscribed(1)).await;

    let revoked = InvalidationCommand::new(CacheKind::ApiKey, "key_1");
    a.invalidate(&revoked);
    // Applied locally before `invalidate` returns, then on B through Redis.
    assert_eq!(cache_a.seen(), vec![revoked.clone()]);
    support::eventually("B applies A's command", || async {
        cache_b.seen() == vec![revoked.clone()]
    })
    .await;

    // B's answer reaches A after A's own echo would have (one connection delivers in order):
    // A applied its own command once, not twice.
    let model = InvalidationCommand::new(CacheKind::Model, "m_1");
    b.invalidate(&model);
    support::eventually("A applies B's command", || async {
        cache_a.seen().len() == 2
    })
    .await;
    assert_eq!(cache_a.seen(), vec![revoked, model]);
}

#[tokio::test]
async fn redis_invalidation_subscriber_resubscribes_after_an_outage() {
    let Some(settings) = support::settings("redis_invalidation_outage") else {
        return;
    };
    let proxy = support::Proxy::start(settings.url.expose()).await;
    let mut behind_proxy = settings.clone();
    behind_proxy.url = odock_core::Secret::new(proxy.url());
    let (cache_a, cache_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = RedisInvalidator::new(support::connect_with(&settings).await, cache_a);
    let b = RedisInvalidator::new(support::connect_with(&behind_proxy).await, cache_b.clone());
    let sub_b = b.spawn_subscriber();
    within(sub_b.subscribed(1)).await;

    proxy.cut();
    proxy.restore();
    // The subscriber notices, reconnects and subscribes again; later commands reach it.
    within(sub_b.subscribed(2)).await;
    let command = InvalidationCommand::new(CacheKind::Team, "t_1");
    a.invalidate(&command);
    support::eventually("B applies commands after the outage", || async {
        cache_b.seen() == vec![command.clone()]
    })
    .await;
}
