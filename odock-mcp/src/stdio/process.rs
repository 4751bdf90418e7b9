//! One MCP server child process: spawned with its command, args and env, fed JSON-RPC on stdin,
//! read on stdout (newline-delimited, or `Content-Length:` framed when the server speaks that),
//! stderr logged, killed **and reaped** when its session ends.
//!
//! The child is confined as far as a process can be without a sandbox:
//! - a **cleared environment**: only a minimal `PATH`, `HOME` and `TMPDIR` (its scratch directory)
//!   and the server's declared `stdioEnv` — never the gateway's own variables (admin token, master
//!   key, database URL…);
//! - its **own process group**, killed as a whole when the session ends, so what a launcher like
//!   `npx` started goes too;
//! - a fresh **scratch working directory**, removed once the process is reaped;
//! - a slot under the global and per-organisation caps ([`ProcessLimits`]), taken before the
//!   process starts: beyond them, nothing is spawned.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use odock_core::McpError;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::policy::ProcessLimits;
use super::StdioOptions;
use crate::session::Inbox;

/// The largest message read from a server (bounds memory against a runaway process).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Longest stderr line logged; the rest is cut.
const MAX_LOG_LINE: usize = 2_000;

/// The `PATH` a child starts with (its `stdioEnv` may set another).
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What to run: `stdioCommand`, `stdioArgs`, `stdioEnv` (the child's whole environment besides
/// `PATH`, `HOME` and `TMPDIR`), and the organisation whose process share it counts against.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StdioCommand {
    /// The program to run (`stdioCommand`), checked against the allow-list unless approved.
    pub command: String,
    /// Its arguments (`stdioArgs`), passed without a shell.
    pub args: Vec<String>,
    /// Its environment (`stdioEnv`); may hold credentials, so only the names are ever printed.
    pub env: BTreeMap<String, String>,
    /// The organisation whose process share this child counts against.
    pub organisation_id: String,
}

impl std::fmt::Debug for StdioCommand {
    // Env values are often credentials: only their names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioCommand")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("organisation_id", &self.organisation_id)
            .finish()
    }
}

/// How messages are framed on the pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdioFraming {
    /// Newline-delimited JSON (the MCP stdio transport) until the server is seen to use
    /// `Content-Length:` framing; then that.
    #[default]
    Auto,
    /// Newline-delimited JSON only, as the MCP stdio transport specifies.
    NewlineDelimited,
    /// `Content-Length: N\r\n\r\n` + body, as some older servers speak.
    ContentLength,
}

const NEWLINE: u8 = 0;
const CONTENT_LENGTH: u8 = 1;

/// Live (spawned and not yet reaped) child processes, in total and per organisation; shared by
/// every transport that should count against the same caps.
#[derive(Debug, Clone, Default)]
pub struct ProcessCounter(Arc<parking_lot::Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_organisation: HashMap<String, usize>,
}

impl ProcessCounter {
    /// Live processes.
    pub fn get(&self) -> usize {
        self.0.lock().total
    }

    /// Live processes of `organisation_id`.
    pub fn of_organisation(&self, organisation_id: &str) -> usize {
        self.0
            .lock()
            .per_organisation
            .get(organisation_id)
            .copied()
            .unwrap_or(0)
    }

    /// A slot for one more process of `organisation_id`, unless that would exceed `limits`
    /// ([`McpError::StdioBusy`], 503 `overloaded`).
    fn acquire(
        &self,
        organisation_id: &str,
        limits: ProcessLimits,
    ) -> Result<ProcessSlot, McpError> {
        let mut counts = self.0.lock();
        if counts.total >= limits.max_total {
            return Err(McpError::StdioBusy(format!(
                "the gateway runs its maximum of {} stdio MCP server processes; retry later",
                limits.max_total
            )));
        }
        let mine = counts
            .per_organisation
            .entry(organisation_id.to_owned())
            .or_insert(0);
        if *mine >= limits.max_per_organisation {
            return Err(McpError::StdioBusy(format!(
                "this organisation runs its maximum of {} stdio MCP server processes; end a \
                 session or retry later",
                limits.max_per_organisation
            )));
        }
        *mine += 1;
        counts.total += 1;
        Ok(ProcessSlot {
            counts: self.0.clone(),
            organisation_id: organisation_id.to_owned(),
        })
    }
}

/// Counts one process while alive; released when the process has been reaped (or dropped).
struct ProcessSlot {
    counts: Arc<parking_lot::Mutex<Counts>>,
    organisation_id: String,
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_organisation.get_mut(&self.organisation_id) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.per_organisation.remove(&self.organisation_id);
            }
        }
    }
}

/// A spawned child and what lives exactly as long as it.
struct Running {
    child: Child,
    /// The child's process group (its pid: it leads its own group).
    group: Option<u32>,
    /// Removed (with everything the server wrote) once the child is reaped.
    scratch: tempfile::TempDir,
    slot: ProcessSlot,
}

type ChildCell = Arc<Mutex<Option<Running>>>;

pub(crate) struct StdioProcess {
    pub(crate) inbox: Arc<Inbox>,
    writer: Arc<Writer>,
    child: ChildCell,
    shutdown_grace: Duration,
    tasks: Vec<JoinHandle<()>>,
}

/// The child's stdin, framed the way the server reads.
struct Writer {
    stdin: Mutex<Option<ChildStdin>>,
    framing: AtomicU8,
    /// Auto framing, before the server has said anything: what was written meanwhile, to resend
    /// with `Content-Length:` framing if the server stays silent (it may only read that framing).
    unheard: parking_lot::Mutex<Option<Vec<Value>>>,
}

impl Writer {
    async fn write(&self, message: &Value) -> Result<(), McpError> {
        if let Some(unheard) = self.unheard.lock().as_mut() {
            unheard.push(message.clone());
        }
        let framing = self.framing.load(Ordering::SeqCst);
        self.write_frame(&frame(message, framing, false)).await
    }

    async fn write_frame(&self, frame: &[u8]) -> Result<(), McpError> {
        let mut stdin = self.stdin.lock().await;
        let pipe = stdin
            .as_mut()
            .ok_or_else(|| McpError::Stdio("MCP server process has ended".into()))?;
        let written = async {
            pipe.write_all(frame).await?;
            pipe.flush().await
        };
        written
            .await
            .map_err(|_| McpError::Stdio("MCP server process is not accepting input".into()))
    }

    /// The server spoke, in `framing`: answer in kind (auto mode) and stop probing.
    fn heard(&self, framing: u8, auto: bool) {
        self.unheard.lock().take();
        if auto {
            self.framing.store(framing, Ordering::SeqCst);
        }
    }

    /// The server has said nothing since its first messages: resend them `Content-Length:` framed
    /// and keep writing that way (until the server is heard speaking newline-delimited JSON).
    async fn probe(&self) {
        let Some(pending) = self.unheard.lock().take() else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        tracing::debug!("MCP stdio server silent; retrying with Content-Length framing");
        self.framing.store(CONTENT_LENGTH, Ordering::SeqCst);
        for message in &pending {
            if self
                .write_frame(&frame(message, CONTENT_LENGTH, true))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One message framed for the pipe. A probe's `Content-Length` frame ends with a line break so a
/// newline-delimited server that reads it anyway keeps its next line intact.
fn frame(message: &Value, framing: u8, probe: bool) -> Vec<u8> {
    let body = message.to_string();
    let mut frame = Vec::with_capacity(body.len() + 32);
    if framing == CONTENT_LENGTH {
        frame.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        frame.extend_from_slice(body.as_bytes());
        if probe {
            frame.extend_from_slice(b"\r\n");
        }
    } else {
        frame.extend_from_slice(body.as_bytes());
        frame.push(b'\n');
    }
    frame
}

impl StdioProcess {
    pub(crate) fn spawn(command: &StdioCommand, options: &StdioOptions) -> Result<Self, McpError> {
        let framing = options.framing;
        let content_length_probe = options.content_length_probe;
        // The slot first: beyond the caps, nothing starts.
        let slot = options
            .processes
            .acquire(&command.organisation_id, options.limits)?;
        let program = program_path(&command.command)?;
        let scratch = tempfile::Builder::new()
            .prefix("odock-mcp-")
            .tempdir()
            .map_err(|error| {
                McpError::Stdio(format!("could not create a working directory: {error}"))
            })?;
        let mut process = Command::new(&program);
        process
            .args(&command.args)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .env("HOME", scratch.path())
            .env("TMPDIR", scratch.path())
            .envs(&command.env)
            .current_dir(scratch.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        process.process_group(0);
        let mut child = process.spawn().map_err(|error| {
            McpError::Stdio(format!("could not start `{}`: {error}", command.command))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(McpError::Stdio("child pipes are missing".into()));
        };
        let pid = child.id().unwrap_or(0);
        let inbox = Arc::new(Inbox::default());
        let child: ChildCell = Arc::new(Mutex::new(Some(Running {
            group: child.id(),
            child,
            scratch,
            slot,
        })));
        let auto = framing == StdioFraming::Auto;
        let writer = Arc::new(Writer {
            stdin: Mutex::new(Some(stdin)),
            framing: AtomicU8::new(match framing {
                StdioFraming::ContentLength => CONTENT_LENGTH,
                StdioFraming::Auto | StdioFraming::NewlineDelimited => NEWLINE,
            }),
            unheard: parking_lot::Mutex::new(
                (auto && content_length_probe.is_some()).then(Vec::new),
            ),
        });
        let program = program_name(&command.command);
        let reader = tokio::spawn(read_stdout(
            stdout,
            inbox.clone(),
            child.clone(),
            writer.clone(),
            auto,
            pid,
        ));
        let logger = tokio::spawn(log_stderr(stderr, program, pid));
        let mut tasks = vec![reader, logger];
        if let (true, Some(after)) = (auto, content_length_probe) {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                writer.probe().await;
            }));
        }
        Ok(Self {
            inbox,
            writer,
            child,
            shutdown_grace: options.shutdown_grace,
            tasks,
        })
    }

    /// Writes one message in the framing the server speaks.
    pub(crate) async fn write(&self, message: &Value) -> Result<(), McpError> {
        if let Some(reason) = self.inbox.closed_reason() {
            return Err(McpError::Stdio(reason));
        }
        self.writer.write(message).await
    }

    /// Ends the process: waiters fail, stdin is closed (a well-behaved server exits on that, and so
    /// do the grandchildren of launchers like `npx`), then after the grace period the child is killed;
    /// either way it is reaped before this returns.
    pub(crate) async fn shutdown(&self, reason: &str) {
        self.inbox.close(reason);
        self.writer.stdin.lock().await.take();
        reap(&self.child, self.shutdown_grace).await;
    }
}

impl Drop for StdioProcess {
    fn drop(&mut self) {
        // The reader holds the child too; stop it so `kill_on_drop` fires when we go.
        for task in &self.tasks {
            task.abort();
        }
        // `kill_on_drop` kills only the child: its group goes too, while the (unreaped) child
        // still pins the group id.
        if let Ok(cell) = self.child.try_lock() {
            if let Some(running) = cell.as_ref() {
                kill_group(running.group);
            }
        }
        self.inbox.close("MCP session ended");
    }
}

/// Waits up to `grace` for the child to exit, kills its process group if it has not, and reaps
/// it; then kills what is left of the group (a launcher's children) and removes the scratch
/// directory. The cell stays locked throughout, so a concurrent caller returns only once the
/// process is gone.
async fn reap(child: &ChildCell, grace: Duration) {
    let mut cell = child.lock().await;
    let Some(Running {
        mut child,
        group,
        scratch,
        slot,
    }) = cell.take()
    else {
        return;
    };
    let exited = match tokio::time::timeout(grace, child.wait()).await {
        Ok(exited) => exited,
        Err(_still_running) => {
            kill_group(group);
            let _ = child.start_kill();
            child.wait().await
        }
    };
    match exited {
        Ok(status) => tracing::debug!(%status, "MCP stdio process reaped"),
        Err(error) => tracing::warn!(%error, "could not reap MCP stdio process"),
    }
    // The group id stays reserved while any member lives, so this reaches only our processes.
    kill_group(group);
    if let Err(error) = scratch.close() {
        tracing::warn!(%error, "could not remove an MCP stdio working directory");
    }
    drop(slot);
}

/// SIGKILL to every process of the group led by `group` (nothing when it is already empty).
fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = group
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        // ESRCH (the group is empty) is the usual, expected answer.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = group;
}

/// Where the program is: an absolute path as is; a relative path (with a `/`) from the gateway's
/// working directory (the child's is its scratch directory); a bare name looked up on the
/// gateway's own `PATH` — the one the operator's allow-list was written against — never on a
/// `PATH` from the server's `stdioEnv`.
fn program_path(command: &str) -> Result<PathBuf, McpError> {
    let command = command.trim();
    let path = Path::new(command);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    if command.contains('/') {
        let cwd = std::env::current_dir()
            .map_err(|error| McpError::Stdio(format!("no working directory: {error}")))?;
        return Ok(cwd.join(path));
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| CHILD_PATH.into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| McpError::Stdio(format!("`{command}` was not found on the gateway's PATH")))
}

fn is_executable(path: &Path) -> bool {
    let Ok(metadata) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    metadata.is_file()
}

async fn read_stdout(
    stdout: ChildStdout,
    inbox: Arc<Inbox>,
    child: ChildCell,
    writer: Arc<Writer>,
    auto: bool,
    pid: u32,
) {
    let mut reader = BufReader::new(stdout);
    let reason = loop {
        match read_message(&mut reader).await {
            Ok(Some((bytes, framing))) => {
                writer.heard(framing, auto);
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Array(batch)) => batch.into_iter().for_each(|m| inbox.deliver(m)),
                    Ok(message) => inbox.deliver(message),
                    Err(error) => {
                        tracing::warn!(pid, %error, "MCP stdio server wrote a line that is not JSON")
                    }
                }
            }
            Ok(None) => break "MCP server process exited".to_owned(),
            Err(error) => break format!("MCP server output unusable: {error}"),
        }
    };
    tracing::debug!(pid, reason, "MCP stdio process output ended");
    inbox.close(&reason);
    // A server that closed its output is of no more use: no grace.
    reap(&child, Duration::ZERO).await;
}

/// Reads one message: a `Content-Length:` framed body or one non-empty line. `None` at EOF.
async fn read_message(
    reader: &mut BufReader<ChildStdout>,
) -> std::io::Result<Option<(Vec<u8>, u8)>> {
    loop {
        let mut line = Vec::new();
        let read = (&mut *reader)
            .take(MAX_MESSAGE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        if read >= MAX_MESSAGE_BYTES && !line.ends_with(b"\n") {
            return Err(std::io::Error::other("message exceeds the size limit"));
        }
        let text = String::from_utf8_lossy(&line);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(length) = content_length(trimmed) {
            // Skip further header lines up to the blank line, then read the body.
            loop {
                let mut header = Vec::new();
                if reader.read_until(b'\n', &mut header).await? == 0 {
                    return Ok(None);
                }
                if header.iter().all(u8::is_ascii_whitespace) {
                    break;
                }
            }
            if length > MAX_MESSAGE_BYTES {
                return Err(std::io::Error::other("message exceeds the size limit"));
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await?;
            return Ok(Some((body, CONTENT_LENGTH)));
        }
        return Ok(Some((trimmed.as_bytes().to_vec(), NEWLINE)));
    }
}

fn content_length(line: &str) -> Option<usize> {
    let (name, value) = line.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("content-length") {
        return None;
    }
    value.trim().parse().ok()
}

async fn log_stderr(stderr: tokio::process::ChildStderr, program: String, pid: u32) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(MAX_LOG_LINE).collect();
        tracing::info!(target: "odock_mcp::stdio", program = %program, pid, "{line}");
    }
}

/// The command's file name, for logs (never its arguments or environment).
fn program_name(command: &str) -> String {
    std::path::Path::new(command)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| command.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_headers_case_insensitively() {
        assert_eq!(content_length("Content-Length: 12"), Some(12));
        assert_eq!(content_length("content-length:3"), Some(3));
        assert_eq!(content_length("{\"jsonrpc\":\"2.0\"}"), None);
        assert_eq!(content_length("Content-Type: x"), None);
    }

    #[test]
    fn debug_never_prints_env_values() {
        let command = StdioCommand {
            command: "server".into(),
            args: vec![],
            env: BTreeMap::from([("API_TOKEN".to_owned(), "hunter2".to_owned())]),
            organisation_id: "org".into(),
        };
        let printed = format!("{command:?}");
        assert!(printed.contains("API_TOKEN"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn the_caps_hold_globally_and_per_organisation() {
        let counter = ProcessCounter::default();
        let limits = ProcessLimits {
            max_total: 3,
            max_per_organisation: 2,
        };
        let a1 = counter.acquire("a", limits).unwrap();
        let _a2 = counter.acquire("a", limits).unwrap();
        assert!(matches!(
            counter.acquire("a", limits),
            Err(McpError::StdioBusy(_))
        ));
        let _b1 = counter.acquire("b", limits).unwrap();
        assert!(matches!(
            counter.acquire("c", limits),
            Err(McpError::StdioBusy(_))
        ));
        assert_eq!(counter.get(), 3);
        drop(a1);
        assert_eq!(counter.of_organisation("a"), 1);
        assert!(counter.acquire("c", limits).is_ok());
    }

    #[test]
    fn bare_programs_are_found_on_the_gateways_path() {
        assert_eq!(program_path("/opt/x").unwrap(), PathBuf::from("/opt/x"));
        let sh = program_path("sh").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert!(program_path("odock-no-such-program").is_err());
    }
}
