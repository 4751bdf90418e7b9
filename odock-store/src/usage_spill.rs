//! The usage writer's overflow: an append-only file that holds usage records while the database
//! cannot keep up (slow disk, locked database, outage), so records are never dropped and memory
//! stays bounded.
//!
//! `enqueue` appends a record here when the writer's queue is full (one small write to the page
//! cache, only under overload). The writer replays the file once it has caught up: it first
//! renames the file aside (new overflow goes to a fresh file), stores the records in batches, then
//! deletes it. Storing is idempotent by record id, and ledger charges apply only to records newly
//! stored, so a file replayed twice — after a crash half-way through a replay, say — changes
//! nothing the second time. Files left by a previous process are replayed at start.
//!
//! Each line is one JSON [`SpilledRecord`]. Files are created `0600`: they hold tenants' usage.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use odock_core::{McpUsageRecord, UsageRecord, WindowCharge};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One spilled usage record, with what it carries beyond the API's record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpilledRecord {
    /// The writer's sequence number in the process that spilled it (for `flush`).
    pub seq: u64,
    /// A random id of the process that spilled it: sequence numbers of an earlier process mean
    /// nothing to this one.
    pub run: u64,
    /// The usage record as the API returns it.
    pub record: UsageRecord,
    /// The budget and quota window charges to apply when the record is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<WindowCharge>,
    /// The MCP details, for an MCP request's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpUsageRecord>,
}

/// The overflow file and what it holds.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    /// This process's run id (see [`SpilledRecord::run`]).
    run: u64,
    file: Mutex<Option<BufWriter<File>>>,
    /// Records spilled and not yet stored.
    pending: AtomicU64,
    /// Records spilled since start.
    spilled_total: AtomicU64,
    /// `createdAt` (unix ms) of the oldest record waiting in a spill file; 0 when none.
    oldest_ms: AtomicI64,
    /// Replay files renamed aside so far (their names stay unique).
    rotations: AtomicU64,
}

impl Spill {
    /// An overflow file at `path` (not created until something spills), with a fresh run id.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            run: rand::random(),
            file: Mutex::new(None),
            pending: AtomicU64::new(0),
            spilled_total: AtomicU64::new(0),
            oldest_ms: AtomicI64::new(0),
            rotations: AtomicU64::new(0),
        }
    }

    /// Where new overflow is appended.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This process's run id (see [`SpilledRecord::run`]).
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Records spilled and not yet stored.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Records spilled since start, for metrics.
    pub fn spilled_total(&self) -> u64 {
        self.spilled_total.load(Ordering::Relaxed)
    }

    /// When the oldest record waiting in a spill file was made (unix ms), if any.
    pub fn oldest_ms(&self) -> Option<i64> {
        Some(self.oldest_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// Appends one record. An error means the record could not be kept anywhere but memory.
    pub fn append(&self, entry: &SpilledRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = self.file.lock();
        if file.is_none() {
            *file = Some(BufWriter::new(open_private(&self.path)?));
        }
        if let Some(writer) = file.as_mut() {
            writer.write_all(&line)?;
            writer.flush()?;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.spilled_total.fetch_add(1, Ordering::Relaxed);
        let _ = self.oldest_ms.compare_exchange(
            0,
            entry.record.created_at.timestamp_millis().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Moves the current file aside for replay (later records go to a fresh file) and returns
    /// every file waiting for replay, oldest first: leftovers of earlier processes or replays
    /// included.
    pub fn files_to_replay(&self) -> std::io::Result<Vec<PathBuf>> {
        {
            let mut file = self.file.lock();
            if let Some(mut writer) = file.take() {
                writer.flush()?;
                drop(writer);
            }
            if self.path.exists() {
                let n = self.rotations.fetch_add(1, Ordering::Relaxed);
                let aside = self.replay_name(&format!("{}-{n}", self.run));
                std::fs::rename(&self.path, aside)?;
            }
        }
        let mut files = Vec::new();
        let (Some(dir), Some(stem)) = (self.dir(), self.path.file_name()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.replay-", stem.to_string_lossy());
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                files.push((entry.metadata()?.modified()?, entry.path()));
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, path)| path).collect())
    }

    /// Whether anything waits in a spill file (of this process or an earlier one).
    pub fn has_files(&self) -> bool {
        self.pending() > 0
            || self.path.exists()
            || self
                .files_in_dir()
                .is_some_and(|mut files| files.next().is_some())
    }

    /// Called when a replayed file was stored whole: `records` fewer wait.
    pub fn replayed(&self, records: u64) {
        let before = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(records))
            })
            .unwrap_or(0);
        if before.saturating_sub(records) == 0 {
            self.oldest_ms.store(0, Ordering::Relaxed);
        }
    }

    fn dir(&self) -> Option<&Path> {
        match self.path.parent() {
            Some(dir) if dir.as_os_str().is_empty() => Some(Path::new(".")),
            other => other,
        }
    }

    fn files_in_dir(&self) -> Option<impl Iterator<Item = PathBuf>> {
        let prefix = format!("{}.replay-", self.path.file_name()?.to_string_lossy());
        let entries = std::fs::read_dir(self.dir()?).ok()?;
        Some(
            entries
                .filter_map(Result::ok)
                .filter(move |e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path()),
        )
    }

    fn replay_name(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".replay-{suffix}"));
        PathBuf::from(name)
    }
}

/// Reads a spill file in chunks of at most `chunk` records; a line that cannot be read (a record
/// cut short by a crash) is logged and skipped.
pub struct SpillReader {
    lines: std::io::Lines<BufReader<File>>,
    path: PathBuf,
}

impl SpillReader {
    /// Opens the spill file at `path` for replay.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            lines: BufReader::new(File::open(path)?).lines(),
            path: path.to_owned(),
        })
    }

    /// The next records, at most `chunk` of them; an empty chunk means the file is done.
    pub fn next_chunk(&mut self, chunk: usize) -> std::io::Result<Vec<SpilledRecord>> {
        let mut records = Vec::with_capacity(chunk);
        while records.len() < chunk {
            let Some(line) = self.lines.next() else {
                break;
            };
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::error!(path = %self.path.display(), %error, "skipping an unreadable spilled usage record");
                }
            }
        }
        Ok(records)
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage_records::tests::record;

    #[test]
    fn spilled_records_round_trip_and_replay_files_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("usage-spill"));
        assert!(!spill.has_files());
        for i in 0..3 {
            spill
                .append(&SpilledRecord {
                    seq: i,
                    run: spill.run(),
                    record: record(&format!("r{i}"), 1_000 + i as i64),
                    charges: Vec::new(),
                    mcp: None,
                })
                .unwrap();
        }
        assert_eq!(spill.pending(), 3);
        assert_eq!(spill.oldest_ms(), Some(1_000));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spill.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let files = spill.files_to_replay().unwrap();
        assert_eq!(files.len(), 1);
        assert!(!spill.path().exists(), "new records go to a fresh file");
        let mut reader = SpillReader::open(&files[0]).unwrap();
        let first = reader.next_chunk(2).unwrap();
        let rest = reader.next_chunk(2).unwrap();
        assert_eq!((first.len(), rest.len()), (2, 1));
        assert_eq!(first[0].record, record("r0", 1_000));
        assert!(reader.next_chunk(2).unwrap().is_empty());
        spill.replayed(3);
        assert_eq!((spill.pending(), spill.oldest_ms()), (0, None));
        // A file left aside (by a crash mid-replay) is offered again.
        assert_eq!(spill.files_to_replay().unwrap(), files);
    }
}
