//! [`Background`]: one handle for the work a gateway runs beside its requests, so that an embedder
//! (and the reference server) starts it in one place and stops it with one `shutdown().await`.
//!
//! Why a handle and not `Drop`: stopping has to *wait* — the last usage records must reach their
//! sink and background writers must finish their final flush — and a destructor cannot await.
//!
//! Two kinds of work go in: **tasks** (`JoinHandle`s of loops that only stop when told: sweepers,
//! scans, delivery loops), aborted first and awaited until they are gone; then **drains**, async
//! steps run one after another in the order they were added (flush the usage writer, write the
//! last ledger totals, export the last spans). `odock-core` itself runs no long-lived task: its
//! rule cache loads in short tasks it awaits (or, for the once-a-minute refresh, one reload that
//! ends by itself), so [`GatewayBuilder::background`](crate::GatewayBuilder::background) holds only
//! the usage sink's flush.

use std::future::Future;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

type Drain = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// Background work started with a gateway; [`shutdown`](Self::shutdown) stops and drains it.
#[derive(Default)]
pub struct Background {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    drains: Vec<(&'static str, Drain)>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field(
                "tasks",
                &self.tasks.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field(
                "drains",
                &self.drains.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Background {
    /// An empty handle: no task, no drain.
    pub fn new() -> Self {
        Self::default()
    }

    /// A loop that runs until shutdown (aborted then, before the drains run).
    pub fn task(&mut self, name: &'static str, handle: JoinHandle<()>) -> &mut Self {
        self.tasks.push((name, handle));
        self
    }

    /// A step of shutdown, run after every task has stopped and after the drains added before it.
    pub fn drain<F, Fut>(&mut self, name: &'static str, drain: F) -> &mut Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.drains.push((
            name,
            Box::new(move || Box::pin(drain()) as BoxFuture<'static, ()>),
        ));
        self
    }

    /// Takes over `other`'s tasks and drains (its drains run after this one's).
    pub fn extend(&mut self, other: Background) -> &mut Self {
        self.tasks.extend(other.tasks);
        self.drains.extend(other.drains);
        self
    }

    /// Tasks still running (0 once [`shutdown`](Self::shutdown) returned).
    pub fn running_tasks(&self) -> usize {
        self.tasks.iter().filter(|(_, t)| !t.is_finished()).count()
    }

    /// Stops every task (and waits until each is gone), then runs the drains in order.
    pub async fn shutdown(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
        for (name, task) in &mut self.tasks {
            if let Err(error) = task.await {
                if error.is_panic() {
                    tracing::error!(task = *name, "background task panicked");
                }
            }
        }
        for (name, drain) in self.drains.drain(..) {
            tracing::debug!(drain = name, "draining");
            drain().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    #[tokio::test]
    async fn shutdown_stops_every_task_then_runs_the_drains_in_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut background = Background::new();
        background.task("forever", tokio::spawn(std::future::pending()));
        let (first, second) = (order.clone(), order.clone());
        background.drain("first", move || async move { first.lock().push("first") });
        let mut other = Background::new();
        other.task("also forever", tokio::spawn(std::future::pending()));
        other.drain(
            "second",
            move || async move { second.lock().push("second") },
        );
        background.extend(other);
        assert_eq!(background.running_tasks(), 2);

        background.shutdown().await;

        assert_eq!(background.running_tasks(), 0);
        assert_eq!(*order.lock(), ["first", "second"]);
    }
}
