//! [`SqlUsageSink`]: the batched background writer behind [`UsageSink`].
//!
//! `enqueue` is called on the request path and must neither block nor lose a record. Records go
//! into a bounded channel; when it is full (the database cannot keep up: slow disk, locked database,
//! outage), they are appended to a spill file instead ([`crate::usage_spill`]), so memory stays
//! bounded and nothing is dropped. One writer task collects up to `batch_size` records or waits at
//! most `flush_interval`, then stores the batch with [`usage_records::insert_batch`] in one
//! transaction — records, daily rollup and ledger window charges together. A failed write is logged
//! and retried with a capped backoff until it succeeds. Once the writer has caught up, it replays
//! the spill file (idempotently); at shutdown, what cannot be stored is spilled for the next start.
//!
//! `flush` sends a marker through the same channel (so the writer stores its partial batch at
//! once) and waits until every record enqueued before the call is stored. Each record carries a
//! sequence number and the writer publishes the low watermark below which all are stored, so
//! spilled records are waited for too.
//!
//! [`SqlUsageSink::backlog_age`] says how long the oldest record not yet stored has waited: the
//! readiness check reports a writer that cannot write.
//!
//! ```no_run
//! # async fn demo(pool: odock_store::db::Db) -> Result<(), odock_core::UsageSinkError> {
//! use odock_core::UsageSink;
//! use odock_store::{SqlUsageSink, UsageWriterOptions};
//!
//! let sink = SqlUsageSink::start(pool, UsageWriterOptions::default());
//! // sink.enqueue(record) on every request ...
//! sink.shutdown().await?; // graceful shutdown: everything enqueued is stored
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use async_trait::async_trait;
use odock_core::{McpUsageRecord, UsageRecord, UsageSink, UsageSinkError};
use parking_lot::Mutex;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::usage_records;
use crate::usage_spill::{Spill, SpillReader, SpilledRecord};

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct UsageWriterOptions {
    /// Most records per write transaction.
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before it is written anyway.
    pub flush_interval: Duration,
    /// Records held in memory before `enqueue` spills to the file (bounds the writer's memory).
    pub channel_capacity: usize,
    /// The spill file; `None`: a file of its own in the system's temporary directory.
    pub spill_path: Option<PathBuf>,
}

impl Default for UsageWriterOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            flush_interval: Duration::from_millis(100),
            channel_capacity: 4_096,
            spill_path: None,
        }
    }
}

/// First and largest pause between retries of a failed write.
const RETRY_BACKOFF_START: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

enum Message {
    /// A usage record, with its MCP usage record when it has one (written in the same batch).
    Record(u64, Box<UsageRecord>, Option<Box<McpUsageRecord>>),
    /// Someone waits until every record numbered below this is stored.
    Flush(u64),
    Shutdown,
}

#[derive(Default)]
struct Counters {
    next_seq: AtomicU64,
    depth: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    batches: AtomicU64,
    overflows: AtomicU64,
    dropped: AtomicU64,
    /// `createdAt` (unix ms) of the oldest record of the batch being written; 0 when idle.
    writing_since_ms: AtomicI64,
}

/// Set when the process must stop although the database cannot take the last records: the writer
/// stops retrying and spills everything it holds for the next start.
#[derive(Default)]
struct Abandon {
    set: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Abandon {
    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }
}

/// A [`UsageSink`] that stores records in the SQL database in batches, off the request path.
pub struct SqlUsageSink {
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    spill: Arc<Spill>,
    abandon: Arc<Abandon>,
    /// All records with a sequence number below this value are stored.
    stored_below: watch::Receiver<u64>,
    runtime: tokio::runtime::Handle,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SqlUsageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlUsageSink")
            .field("queue_depth", &self.queue_depth())
            .field("written_total", &self.written_total())
            .field("write_errors_total", &self.write_errors_total())
            .finish_non_exhaustive()
    }
}

impl SqlUsageSink {
    /// Spawns the writer task. Must be called within a Tokio runtime.
    pub fn start(pool: Db, options: UsageWriterOptions) -> Self {
        let spill_path = options.spill_path.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "odock-usage-spill-{}-{}",
                std::process::id(),
                odock_core::ids::random_hex(6)
            ))
        });
        let options = UsageWriterOptions {
            batch_size: options.batch_size.max(1),
            channel_capacity: options.channel_capacity.max(1),
            ..options
        };
        let (tx, rx) = mpsc::channel(options.channel_capacity);
        let (stored_tx, stored_below) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let spill = Arc::new(Spill::new(spill_path));
        let abandon = Arc::new(Abandon::default());
        let writer = Writer {
            pool,
            rx,
            options,
            counters: counters.clone(),
            spill: spill.clone(),
            abandon: abandon.clone(),
            stored: SeqTracker::default(),
            stored_tx,
            flush_target: 0,
        };
        let task = tokio::spawn(writer.run());
        Self {
            tx,
            counters,
            spill,
            abandon,
            stored_below,
            runtime: tokio::runtime::Handle::current(),
            task: Mutex::new(Some(task)),
        }
    }

    /// Records enqueued but not yet stored (including those waiting on the overflow path).
    pub fn queue_depth(&self) -> u64 {
        self.counters.depth.load(Ordering::Relaxed)
    }

    /// Records stored since start.
    pub fn written_total(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Failed write attempts since start (each is retried).
    pub fn write_errors_total(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Write transactions committed since start.
    pub fn batches_total(&self) -> u64 {
        self.counters.batches.load(Ordering::Relaxed)
    }

    /// Records that found the queue full and were spilled to the file.
    pub fn overflow_total(&self) -> u64 {
        self.counters.overflows.load(Ordering::Relaxed)
    }

    /// Records waiting in the spill file.
    pub fn spilled_pending(&self) -> u64 {
        self.spill.pending()
    }

    /// How long the oldest record not yet stored has waited (zero when the writer is up to date):
    /// the batch being written, or the oldest spilled record.
    pub fn backlog_age(&self) -> Duration {
        let writing = self.counters.writing_since_ms.load(Ordering::Relaxed);
        let oldest = [Some(writing).filter(|ms| *ms > 0), self.spill.oldest_ms()]
            .into_iter()
            .flatten()
            .min();
        oldest.map_or(Duration::ZERO, |ms| {
            Duration::from_millis(u64::try_from(crate::db::now_ms() - ms).unwrap_or(0))
        })
    }

    /// Records lost because they were enqueued after the writer stopped (after [`shutdown`]).
    ///
    /// [`shutdown`]: SqlUsageSink::shutdown
    pub fn dropped_total(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Stores everything enqueued so far, then stops the writer. Records enqueued afterwards are
    /// dropped (and counted). If the database stays unreachable this waits for it, like `flush`;
    /// bound it with a timeout at the call site if shutdown must finish regardless.
    pub async fn shutdown(&self) -> Result<(), UsageSinkError> {
        let flushed = self.flush().await;
        // The writer drains whatever is still queued before it exits.
        let _ = self.tx.send(Message::Shutdown).await;
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.await
                .map_err(|error| UsageSinkError(format!("usage writer task failed: {error}")))?;
        }
        flushed
    }

    /// Stops the writer now, whether or not the database takes the last records: what it holds is
    /// spilled to the file (replayed at the next start). For a shutdown whose [`shutdown`] did not
    /// finish in time (the database is down). Returns how many records were left to the file.
    ///
    /// [`shutdown`]: SqlUsageSink::shutdown
    pub async fn abandon_to_spill(&self, wait: Duration) -> u64 {
        self.abandon.set.store(true, Ordering::SeqCst);
        self.abandon.notify.notify_one();
        let _ = self.tx.try_send(Message::Shutdown);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(wait, task).await;
        }
        self.spill.pending()
    }
}

impl SqlUsageSink {
    /// Queues a record (and its MCP record) without blocking; see the module docs.
    fn send(&self, record: UsageRecord, mcp: Option<Box<McpUsageRecord>>) {
        let seq = self.counters.next_seq.fetch_add(1, Ordering::SeqCst);
        self.counters.depth.fetch_add(1, Ordering::Relaxed);
        match self
            .tx
            .try_send(Message::Record(seq, Box::new(record), mcp))
        {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Record(seq, mut record, mcp))) => {
                self.counters.overflows.fetch_add(1, Ordering::Relaxed);
                let entry = SpilledRecord {
                    seq,
                    run: self.spill.run(),
                    charges: std::mem::take(&mut record.ledger_charges),
                    record: *record,
                    mcp: mcp.map(|mcp| *mcp),
                };
                if let Err(error) = self.spill.append(&entry) {
                    // Nowhere on disk to put it: keep it in memory rather than lose it.
                    tracing::error!(%error, path = %self.spill.path().display(), "usage record not spilled; waiting in memory");
                    self.wait_in_memory(entry);
                }
            }
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Closed(_)) => self.counters.record_dropped(),
        }
    }

    /// The last resort when the spill file cannot be written: a task waits for room in the queue.
    fn wait_in_memory(&self, entry: SpilledRecord) {
        let SpilledRecord {
            seq,
            mut record,
            charges,
            mcp,
            ..
        } = entry;
        record.ledger_charges = charges;
        let message = Message::Record(seq, Box::new(record), mcp.map(Box::new));
        let tx = self.tx.clone();
        let counters = self.counters.clone();
        self.runtime.spawn(async move {
            if tx.send(message).await.is_err() {
                counters.record_dropped();
            }
        });
    }
}

#[async_trait]
impl UsageSink for SqlUsageSink {
    fn enqueue(&self, record: UsageRecord) {
        self.send(record, None);
    }

    fn enqueue_mcp(&self, record: UsageRecord, mcp: McpUsageRecord) {
        self.send(record, Some(Box::new(mcp)));
    }

    async fn flush(&self) -> Result<(), UsageSinkError> {
        let target = self.counters.next_seq.load(Ordering::SeqCst);
        let mut stored_below = self.stored_below.clone();
        if *stored_below.borrow() >= target {
            return Ok(());
        }
        let stopped = || UsageSinkError("usage writer has stopped".to_owned());
        self.tx
            .send(Message::Flush(target))
            .await
            .map_err(|_| stopped())?;
        stored_below
            .wait_for(|stored| *stored >= target)
            .await
            .map_err(|_| stopped())?;
        Ok(())
    }
}

impl Counters {
    fn record_dropped(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::error!("usage record dropped: the usage writer has stopped");
    }
}

/// Tracks which sequence numbers are stored; records can arrive out of order via the overflow path.
#[derive(Default)]
struct SeqTracker {
    /// Every sequence number below this is stored.
    low: u64,
    /// Stored numbers above `low`.
    above: BTreeSet<u64>,
}

impl SeqTracker {
    fn mark(&mut self, seq: u64) {
        if seq == self.low {
            self.low += 1;
            while self.above.remove(&self.low) {
                self.low += 1;
            }
        } else if seq > self.low {
            self.above.insert(seq);
        }
    }
}

struct Writer {
    pool: Db,
    rx: mpsc::Receiver<Message>,
    options: UsageWriterOptions,
    counters: Arc<Counters>,
    spill: Arc<Spill>,
    abandon: Arc<Abandon>,
    stored: SeqTracker,
    stored_tx: watch::Sender<u64>,
    /// The highest flush target received; while it is not reached the writer does not wait for
    /// batches to fill (records on the overflow path can arrive after the flush marker).
    flush_target: u64,
}

/// Records being collected, each with its sequence number when this process enqueued it (records
/// replayed from an earlier process's spill file have none).
struct Batch {
    seqs: Vec<Option<u64>>,
    /// How many of this process's records came back from the spill file (accounted as stored
    /// before anyone waiting on a flush is told).
    from_spill: u64,
    records: Vec<UsageRecord>,
    /// The MCP usage records of some of `records`.
    mcp: Vec<McpUsageRecord>,
}

impl Batch {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            seqs: Vec::with_capacity(capacity),
            from_spill: 0,
            records: Vec::with_capacity(capacity),
            mcp: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What the collector should do after a message.
#[derive(PartialEq)]
enum Next {
    Collect,
    WriteNow,
    Stop,
}

impl Writer {
    async fn run(mut self) {
        let mut batch = Batch::with_capacity(self.options.batch_size);
        // What an earlier process left in its spill files.
        if self.spill.has_files() {
            self.replay_spill(&mut batch).await;
        }
        loop {
            let Some(first) = self.rx.recv().await else {
                break;
            };
            let mut next = self.take(first, &mut batch);
            let deadline = Instant::now() + self.options.flush_interval;
            while next == Next::Collect && batch.len() < self.options.batch_size {
                if self.stored.low < self.flush_target {
                    // A flush is waiting: take what is already queued, then write.
                    next = match self.rx.try_recv() {
                        Ok(message) => self.take(message, &mut batch),
                        Err(TryRecvError::Empty) => Next::WriteNow,
                        Err(TryRecvError::Disconnected) => Next::Stop,
                    };
                    continue;
                }
                tokio::select! {
                    biased;
                    message = self.rx.recv() => {
                        next = message.map_or(Next::Stop, |m| self.take(m, &mut batch));
                    }
                    () = tokio::time::sleep_until(deadline) => next = Next::WriteNow,
                }
            }
            self.write(&mut batch).await;
            if next == Next::Stop || self.abandon.is_set() {
                break;
            }
            // Caught up (or someone waits for everything): store what was spilled meanwhile.
            let caught_up = self.rx.is_empty() || self.stored.low < self.flush_target;
            if caught_up && self.spill.pending() > 0 {
                self.replay_spill(&mut batch).await;
            }
        }
        // Stopping: store what is still queued and spilled. Senders waiting on the last-resort
        // path now fail and count their record as dropped.
        self.rx.close();
        while let Some(message) = self.rx.recv().await {
            self.take(message, &mut batch);
            if self.abandon.is_set() {
                self.spill_batch(&mut batch);
            } else if batch.len() >= self.options.batch_size {
                self.write(&mut batch).await;
            }
        }
        self.write(&mut batch).await;
        if self.spill.pending() > 0 && !self.abandon.is_set() {
            self.replay_spill(&mut batch).await;
        }
    }

    /// Stores every spill file's records (idempotently), then deletes the file. Waits out a
    /// database outage like any batch.
    async fn replay_spill(&mut self, batch: &mut Batch) {
        let files = match self.spill.files_to_replay() {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(%error, "usage spill files cannot be listed; retrying later");
                return;
            }
        };
        let chunk = self.options.batch_size;
        for file in files {
            let opened = SpillReader::open(&file);
            let Ok(mut reader) = opened else {
                tracing::error!(path = %file.display(), "usage spill file cannot be opened; retrying later");
                return;
            };
            loop {
                let read = tokio::task::spawn_blocking(move || {
                    let records = reader.next_chunk(chunk);
                    (reader, records)
                })
                .await;
                let Ok((returned, records)) = read else {
                    return;
                };
                reader = returned;
                let records = match records {
                    Ok(records) if records.is_empty() => break,
                    Ok(records) => records,
                    Err(error) => {
                        tracing::error!(%error, path = %file.display(), "usage spill file unreadable; retrying later");
                        return;
                    }
                };
                for entry in records {
                    self.take_spilled(entry, batch);
                }
                self.write(batch).await;
            }
            if let Err(error) = std::fs::remove_file(&file) {
                tracing::error!(%error, path = %file.display(), "replayed usage spill file not removed; it will be replayed again (harmlessly)");
            }
            tracing::info!(path = %file.display(), "usage records replayed from the spill file");
        }
    }

    fn take_spilled(&self, entry: SpilledRecord, batch: &mut Batch) {
        let SpilledRecord {
            seq,
            run,
            mut record,
            charges,
            mcp,
        } = entry;
        record.ledger_charges = charges;
        let ours = run == self.spill.run();
        batch.seqs.push(ours.then_some(seq));
        batch.from_spill += u64::from(ours);
        batch.records.push(record);
        batch.mcp.extend(mcp);
    }

    fn take(&mut self, message: Message, batch: &mut Batch) -> Next {
        match message {
            Message::Record(seq, record, mcp) => {
                batch.seqs.push(Some(seq));
                batch.records.push(*record);
                batch.mcp.extend(mcp.map(|mcp| *mcp));
                Next::Collect
            }
            Message::Flush(target) => {
                self.flush_target = self.flush_target.max(target);
                Next::WriteNow
            }
            Message::Shutdown => Next::Stop,
        }
    }

    /// Stores `batch` (retrying until it succeeds) and empties it.
    async fn write(&mut self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let records = &batch.records;
        let oldest = records
            .iter()
            .map(|r| r.created_at.timestamp_millis())
            .min();
        self.counters
            .writing_since_ms
            .store(oldest.unwrap_or(0).max(1), Ordering::Relaxed);
        let mut backoff = RETRY_BACKOFF_START;
        loop {
            match self.write_once(records, &batch.mcp).await {
                Ok(()) => break,
                Err(error) => {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        %error,
                        records = records.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "writing usage records failed; retrying"
                    );
                    if self.abandon.is_set() {
                        self.spill_batch(batch);
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.abandon.notify.notified() => {}
                    }
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
        self.counters.writing_since_ms.store(0, Ordering::Relaxed);
        self.counters
            .written
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        // Only records of this process were counted in when enqueued.
        let ours = batch.seqs.iter().flatten().count() as u64;
        self.counters.depth.fetch_sub(ours, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.spill.replayed(std::mem::take(&mut batch.from_spill));
        for seq in batch.seqs.drain(..).flatten() {
            self.stored.mark(seq);
        }
        batch.records.clear();
        batch.mcp.clear();
        self.stored_tx.send_replace(self.stored.low);
    }

    /// Leaves the batch to the spill file (the writer is abandoned: the database cannot take it).
    fn spill_batch(&mut self, batch: &mut Batch) {
        // Records that came from the spill file go back to it: count them out first.
        self.spill.replayed(std::mem::take(&mut batch.from_spill));
        let mut mcp: std::collections::HashMap<String, McpUsageRecord> = batch
            .mcp
            .drain(..)
            .map(|m| (m.usage_record_id.as_str().to_owned(), m))
            .collect();
        for (seq, mut record) in batch.seqs.drain(..).zip(batch.records.drain(..)) {
            let entry = SpilledRecord {
                seq: seq.unwrap_or(0),
                run: self.spill.run(),
                charges: std::mem::take(&mut record.ledger_charges),
                mcp: mcp.remove(record.id.as_str()),
                record,
            };
            if let Err(error) = self.spill.append(&entry) {
                self.counters.record_dropped();
                tracing::error!(%error, "usage record lost: neither stored nor spilled");
            }
        }
        self.counters.writing_since_ms.store(0, Ordering::Relaxed);
    }

    async fn write_once(
        &self,
        records: &[UsageRecord],
        mcp: &[McpUsageRecord],
    ) -> Result<(), sqlx::Error> {
        // MCP usage records are committed with their usage records (and rollups), or not at all.
        let mut conn = self.pool.acquire().await?;
        usage_records::insert_batch(&mut conn, records, mcp).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage_records::tests::record;
    use crate::usage_records::{list, UsageFilter};

    async fn stored_count(pool: &Db) -> i64 {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM usage_records")
            .fetch_one(pool)
            .await
            .unwrap();
        count
    }

    fn options(batch_size: usize, channel_capacity: usize) -> UsageWriterOptions {
        UsageWriterOptions {
            batch_size,
            channel_capacity,
            // Long enough that only size and flushes trigger writes in these tests.
            flush_interval: Duration::from_secs(3_600),
            spill_path: None,
        }
    }

    #[tokio::test]
    async fn flushed_records_are_readable() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), UsageWriterOptions::default());
        for i in 0..600 {
            sink.enqueue(record(&format!("r{i:04}"), 1_000 + i));
        }
        sink.flush().await.unwrap();
        assert_eq!(sink.queue_depth(), 0);
        assert_eq!(sink.written_total(), 600);
        assert_eq!(sink.write_errors_total(), 0);

        let (page, _) = list(&pool, &UsageFilter::default(), None, 1_000)
            .await
            .unwrap();
        assert_eq!(page.len(), 600);
        assert_eq!(page[0], record("r0599", 1_599));
    }

    #[tokio::test]
    async fn batches_never_exceed_batch_size() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), options(3, 1_024));
        for i in 0..10 {
            sink.enqueue(record(&format!("r{i}"), i));
        }
        sink.flush().await.unwrap();
        assert_eq!(stored_count(&pool).await, 10);
        assert!(
            sink.batches_total() >= 4,
            "10 records in batches of ≤ 3: {}",
            sink.batches_total()
        );
    }

    #[tokio::test]
    async fn flush_with_nothing_pending_returns() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), options(256, 16));
        sink.flush().await.unwrap();
        sink.enqueue(record("r1", 1));
        sink.flush().await.unwrap();
        sink.flush().await.unwrap();
        assert_eq!(stored_count(&pool).await, 1);
        assert_eq!(sink.batches_total(), 1);
    }

    #[tokio::test]
    async fn the_interval_writes_a_partial_batch_without_a_flush() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(
            pool.clone(),
            UsageWriterOptions {
                flush_interval: Duration::from_millis(10),
                ..UsageWriterOptions::default()
            },
        );
        sink.enqueue(record("r1", 1));
        let mut stored = sink.stored_below.clone();
        stored.wait_for(|n| *n >= 1).await.unwrap();
        assert_eq!(stored_count(&pool).await, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_channel_overflows_without_losing_records() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), options(8, 4));
        // Nothing yields between these calls, so the writer cannot drain the channel meanwhile.
        for i in 0..100 {
            sink.enqueue(record(&format!("r{i:03}"), i));
        }
        assert_eq!(sink.overflow_total(), 96);
        assert_eq!(sink.spilled_pending(), 96);
        assert_eq!(sink.queue_depth(), 100);
        sink.flush().await.unwrap();
        assert_eq!(stored_count(&pool).await, 100);
        assert_eq!(sink.queue_depth(), 0);
        assert_eq!(sink.spilled_pending(), 0);
        assert!(!sink.spill.has_files(), "the replayed spill file is gone");
    }

    #[tokio::test]
    async fn a_database_that_cannot_write_spills_to_disk_reports_its_age_and_catches_up() {
        let pool = crate::testing::database().await;
        let dir = tempfile::tempdir().unwrap();
        let sink = SqlUsageSink::start(
            pool.clone(),
            UsageWriterOptions {
                spill_path: Some(dir.path().join("spill")),
                ..options(16, 8)
            },
        );
        sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_away")
            .execute(&pool)
            .await
            .unwrap();
        // Records made a minute ago, so the backlog has an age to report.
        let old = crate::db::now_ms() - 60_000;
        for i in 0..500 {
            sink.enqueue(record(&format!("r{i:03}"), old + i));
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        while sink.write_errors_total() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Memory holds at most the queue and one batch; the rest waits on disk.
        assert!(
            sink.spilled_pending() >= 500 - 8 - 16,
            "{}",
            sink.spilled_pending()
        );
        assert!(
            sink.backlog_age() >= Duration::from_secs(59),
            "{:?}",
            sink.backlog_age()
        );
        sqlx::query("ALTER TABLE usage_records_away RENAME TO usage_records")
            .execute(&pool)
            .await
            .unwrap();
        sink.flush().await.unwrap();
        assert_eq!(stored_count(&pool).await, 500);
        assert_eq!(sink.backlog_age(), Duration::ZERO);
        assert_eq!((sink.spilled_pending(), sink.queue_depth()), (0, 0));
    }

    #[tokio::test]
    async fn an_abandoned_writer_spills_what_it_holds_and_the_next_start_stores_it_once() {
        let pool = crate::testing::database().await;
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        let sink = SqlUsageSink::start(
            pool.clone(),
            UsageWriterOptions {
                spill_path: Some(spill.clone()),
                ..options(4, 64)
            },
        );
        sink.enqueue(record("stored", 1));
        sink.flush().await.unwrap();
        sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_away")
            .execute(&pool)
            .await
            .unwrap();
        for i in 0..10 {
            sink.enqueue(record(&format!("r{i}"), 10 + i));
        }
        while sink.write_errors_total() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Shutting down with the database away: nothing is lost, it waits on disk.
        assert_eq!(sink.abandon_to_spill(Duration::from_secs(5)).await, 10);
        sqlx::query("ALTER TABLE usage_records_away RENAME TO usage_records")
            .execute(&pool)
            .await
            .unwrap();
        // The next process replays it; one record of it was already stored — counted once.
        let line = std::fs::read_to_string(&spill).unwrap();
        let mut again: SpilledRecord = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        again.record = record("stored", 1);
        std::fs::write(
            spill.with_extension("replay-leftover"),
            format!("{}\n", serde_json::to_string(&again).unwrap()),
        )
        .unwrap();
        let next = SqlUsageSink::start(
            pool.clone(),
            UsageWriterOptions {
                spill_path: Some(spill.clone()),
                ..options(4, 64)
            },
        );
        next.enqueue(record("new", 100));
        next.flush().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stored_count(&pool).await < 12 {
            assert!(std::time::Instant::now() < deadline, "spill never replayed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stored_count(&pool).await, 12);
        assert!(!next.spill.has_files());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_producers_all_land() {
        let pool = crate::testing::database().await;
        let sink = Arc::new(SqlUsageSink::start(pool.clone(), options(64, 32)));
        let producers: Vec<_> = (0..16)
            .map(|task| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        sink.enqueue(record(&format!("t{task:02}-{i:03}"), i));
                        if i % 10 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        sink.flush().await.unwrap();
        assert_eq!(stored_count(&pool).await, 1_600);
        assert_eq!(sink.written_total(), 1_600);
        let (requests,): (i64,) = sqlx::query_as(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE grain = 'h'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(requests, 1_600);
    }

    #[tokio::test]
    async fn failed_writes_are_retried_until_they_succeed() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), options(256, 16));
        sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_away")
            .execute(&pool)
            .await
            .unwrap();
        sink.enqueue(record("r1", 1));
        let flush = sink.flush();
        tokio::pin!(flush);
        // Wait (by condition) for the first failure while the flush is pending.
        while sink.write_errors_total() == 0 {
            tokio::select! {
                _ = &mut flush => panic!("flush finished while the table is missing"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        assert_eq!(sink.queue_depth(), 1);
        sqlx::query("ALTER TABLE usage_records_away RENAME TO usage_records")
            .execute(&pool)
            .await
            .unwrap();
        flush.await.unwrap();
        assert_eq!(stored_count(&pool).await, 1);
        assert_eq!(sink.written_total(), 1);
    }

    #[tokio::test]
    async fn shutdown_stores_everything_and_stops() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), options(256, 16));
        for i in 0..5 {
            sink.enqueue(record(&format!("r{i}"), i));
        }
        sink.shutdown().await.unwrap();
        assert_eq!(stored_count(&pool).await, 5);

        sink.enqueue(record("late", 9));
        assert_eq!(sink.dropped_total(), 1);
        assert_eq!(sink.queue_depth(), 0);
        assert!(sink.flush().await.is_err());
        // A second shutdown is harmless.
        assert!(sink.shutdown().await.is_err());
    }

    #[test]
    fn the_tracker_advances_over_out_of_order_marks() {
        let mut tracker = SeqTracker::default();
        tracker.mark(1);
        tracker.mark(2);
        assert_eq!(tracker.low, 0);
        tracker.mark(0);
        assert_eq!(tracker.low, 3);
        assert!(tracker.above.is_empty());
        tracker.mark(5);
        tracker.mark(3);
        assert_eq!(tracker.low, 4);
    }
}
