//! **Test fixture, not a product:** a fake MCP server speaking JSON-RPC over stdin/stdout, used by
//! odock-mcp's and the gateway's tests as a real child process.
//!
//! Tools are those of `odock_mcp::testing` (`echo`, `add`, `secret_tool`, `slow_progress`, `crash`),
//! plus unlisted ones: `env {name}` returns an environment variable (to test `stdioEnv`),
//! `process_info` returns (as JSON text) its whole environment, working directory, pid, process
//! group and the pid of the child `--spawn-grandchild` started, and `never_answers` gets no
//! response. Flags:
//! - `--content-length`: `Content-Length:` header framing both ways (input not framed that way is
//!   ignored), instead of newline-delimited JSON (the MCP stdio transport);
//! - `--start-delay-ms=N`: reads nothing for N ms after starting;
//! - `--ignore-eof`: keeps running after stdin closes (only a kill ends it);
//! - `--spawn-grandchild`: starts a child of its own (this binary with `--ignore-eof`) that
//!   outlives it unless its process group is killed.
//!
//! Unknown arguments are ignored (tests tag processes with them).

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

#[path = "../testing/fake_tools.rs"]
mod fake_tools;

fn main() {
    let content_length = std::env::args().any(|arg| arg == "--content-length");
    // `--start-delay-ms=N`: a server slow to start (it reads nothing for N ms).
    let start_delay = std::env::args()
        .find_map(|arg| {
            arg.strip_prefix("--start-delay-ms=")
                .and_then(|ms| ms.parse().ok())
        })
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(start_delay));
    let ignore_eof = std::env::args().any(|arg| arg == "--ignore-eof");
    let grandchild = std::env::args()
        .any(|arg| arg == "--spawn-grandchild")
        .then(spawn_grandchild)
        .flatten();
    eprintln!("odock-fake-mcp-stdio started (content-length framing: {content_length})");
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut output = stdout.lock();
    loop {
        let message = if content_length {
            read_framed(&mut input)
        } else {
            read_line(&mut input)
        };
        let Some(message) = message else {
            if ignore_eof {
                // A server that does not notice its input closing: only a kill ends it.
                loop {
                    std::thread::park();
                }
            }
            return;
        };
        let Ok(value) = serde_json::from_slice::<Value>(&message) else {
            let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}});
            if write(&mut output, &error, content_length).is_err() {
                return;
            }
            continue;
        };
        if is_call_of(&value, "never_answers") {
            continue;
        }
        let reply = match env_tool(&value).or_else(|| process_info(&value, grandchild)) {
            Some(response) => fake_tools::FakeReply {
                messages: vec![response],
                crash: false,
            },
            None => fake_tools::handle(&value),
        };
        if reply.crash {
            eprintln!("odock-fake-mcp-stdio: crash tool called, exiting");
            std::process::exit(3);
        }
        for message in &reply.messages {
            if write(&mut output, message, content_length).is_err() {
                return;
            }
        }
    }
}

fn is_call_of(message: &Value, tool: &str) -> bool {
    message.get("method").and_then(Value::as_str) == Some("tools/call")
        && message.pointer("/params/name").and_then(Value::as_str) == Some(tool)
}

/// `tools/call` of `env {name}`: the variable's value (or null).
fn env_tool(message: &Value) -> Option<Value> {
    let params = message.get("params")?;
    if message.get("method")?.as_str()? != "tools/call" || params.get("name")?.as_str()? != "env" {
        return None;
    }
    let name = params.get("arguments")?.get("name")?.as_str()?;
    let value = std::env::var(name).ok();
    let text = value.unwrap_or_default();
    Some(
        json!({"jsonrpc": "2.0", "id": message.get("id")?, "result": {"content": [{"type": "text", "text": text}]}}),
    )
}

/// `tools/call` of `process_info`: what this process runs with, as JSON text.
fn process_info(message: &Value, grandchild: Option<u32>) -> Option<Value> {
    if !is_call_of(message, "process_info") {
        return None;
    }
    let env: serde_json::Map<String, Value> = std::env::vars()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    // /proc/self/stat: `pid (comm) state ppid pgrp …`.
    let pgid = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let (_, after) = stat.rsplit_once(')')?;
            after.split_whitespace().nth(2)?.parse::<u32>().ok()
        });
    let info = json!({
        "env": env,
        "cwd": cwd,
        "pid": std::process::id(),
        "pgid": pgid,
        "grandchild": grandchild,
    });
    Some(
        json!({"jsonrpc": "2.0", "id": message.get("id")?, "result": {"content": [{"type": "text", "text": info.to_string()}]}}),
    )
}

/// A child of this process that ignores its (closed) input and so runs until killed.
fn spawn_grandchild() -> Option<u32> {
    let exe = std::env::current_exe().ok()?;
    let child = std::process::Command::new(exe)
        .args(["--ignore-eof", "--grandchild"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    Some(child.id())
}

fn read_line(input: &mut impl BufRead) -> Option<Vec<u8>> {
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            return Some(line.into_bytes());
        }
    }
}

fn read_framed(input: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim();
        if line.is_empty() {
            if let Some(length) = length {
                let mut body = vec![0; length];
                input.read_exact(&mut body).ok()?;
                return Some(body);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
    }
}

fn write(output: &mut impl Write, message: &Value, content_length: bool) -> io::Result<()> {
    let body = message.to_string();
    if content_length {
        write!(output, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    } else {
        writeln!(output, "{body}")?;
    }
    output.flush()
}
