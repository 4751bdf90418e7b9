//! STDIO transport against the fake stdio MCP server binary, as real child processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use http::StatusCode;
use odock_core::{ManualClock, McpError, McpTransport};
use odock_mcp::{StdioCommand, StdioFraming, StdioOptions, StdioTransport};
use serde_json::{json, Value};

use crate::support::*;

const FAKE: &str = env!("CARGO_BIN_EXE_odock-fake-mcp-stdio");

fn command(args: &[&str]) -> StdioCommand {
    StdioCommand {
        command: FAKE.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: BTreeMap::new(),
        organisation_id: "org_test".into(),
    }
}

fn transport(args: &[&str]) -> StdioTransport {
    StdioTransport::new(command(args), StdioOptions::default()).unwrap()
}

async fn open_session(transport: &StdioTransport) -> String {
    let reply = post(transport, None, &initialize(1), false).await;
    assert_eq!(status(&reply), StatusCode::OK);
    let session = session_of(&reply);
    let body = json_body(reply);
    assert_eq!(body["result"]["serverInfo"]["name"], "odock-fake-mcp");
    session
}

/// Live processes of ours whose command line carries `tag`, with their pids.
fn tagged_children(tag: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state, ppid, ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == me && String::from_utf8_lossy(&cmdline).contains(tag) {
            pids.push(pid);
        }
    }
    pids
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_session_runs_initialize_list_call_and_a_progress_tool() {
    let transport = transport(&[]);
    let session = open_session(&transport).await;
    assert_eq!(transport.process_count(), 1);

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = post(&transport, Some(&session), &initialized, true).await;
    assert_eq!(status(&reply), StatusCode::ACCEPTED);

    let list = json_body(
        post(
            &transport,
            Some(&session),
            &request(2, "tools/list", json!({})),
            true,
        )
        .await,
    );
    assert_eq!(list["id"], 2);
    assert_eq!(
        tool_names(&list),
        vec!["echo", "add", "secret_tool", "slow_progress", "crash"]
    );

    let echo = json_body(
        post(
            &transport,
            Some(&session),
            &call(3, "echo", json!({"text": "hi"})),
            true,
        )
        .await,
    );
    assert_eq!(tool_text(&echo), "hi");
    let add = json_body(
        post(
            &transport,
            Some(&session),
            &call(4, "add", json!({"a": 2, "b": 40})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&add), "42");

    // Progress before the result: an event stream for a client that accepts one...
    let mut progress = call(5, "slow_progress", json!({"steps": 3}));
    progress["params"]["_meta"] = json!({"progressToken": "p-5"});
    let messages = stream_messages(post(&transport, Some(&session), &progress, true).await).await;
    assert_eq!(messages.len(), 4, "{messages:?}");
    for (step, message) in messages[..3].iter().enumerate() {
        assert_eq!(message["method"], "notifications/progress");
        assert_eq!(message["params"]["progressToken"], "p-5");
        assert_eq!(message["params"]["progress"], step + 1);
    }
    assert_eq!(messages[3]["id"], 5);
    assert_eq!(tool_text(&messages[3]), "done after 3 steps");

    // ...and only the response, as JSON, for one that does not.
    progress["id"] = json!(6);
    let only = json_body(post(&transport, Some(&session), &progress, false).await);
    assert_eq!(only["id"], 6);
    assert_eq!(tool_text(&only), "done after 3 steps");

    // A batch is answered with every response.
    let batch = json!([
        request(7, "ping", json!({})),
        call(8, "echo", json!({"text": "b"}))
    ]);
    let answers = json_body(post(&transport, Some(&session), &batch, false).await);
    let mut ids: Vec<i64> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![7, 8]);

    assert_eq!(
        status(&delete(&transport, &session).await),
        StatusCode::NO_CONTENT
    );
    assert_eq!(transport.process_count(), 0);
    let after = post(
        &transport,
        Some(&session),
        &request(9, "ping", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&after), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn session_ids_are_required_and_checked() {
    let transport = transport(&[]);
    let no_session = post(
        &transport,
        None,
        &request(1, "tools/list", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&no_session), StatusCode::BAD_REQUEST);
    let unknown = post(
        &transport,
        Some("nope"),
        &request(1, "tools/list", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&unknown), StatusCode::NOT_FOUND);
    assert_eq!(json_body(unknown)["error"]["code"], -32600);
    assert_eq!(
        status(&delete(&transport, "nope").await),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        transport.process_count(),
        0,
        "no process for refused requests"
    );
}

#[tokio::test]
async fn env_and_args_reach_the_process() {
    let mut command = command(&[]);
    command
        .env
        .insert("ODOCK_FAKE_SECRET".into(), "from-stdio-env".into());
    let transport = StdioTransport::new(command, StdioOptions::default()).unwrap();
    let session = open_session(&transport).await;
    let env = json_body(
        post(
            &transport,
            Some(&session),
            &call(2, "env", json!({"name": "ODOCK_FAKE_SECRET"})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&env), "from-stdio-env");
    transport.shutdown().await;
    assert_eq!(transport.process_count(), 0);
}

/// `process_info` of the session's server: its environment, working directory and process ids.
async fn process_info(transport: &StdioTransport, session: &str) -> Value {
    let reply = json_body(
        post(
            transport,
            Some(session),
            &call(2, "process_info", json!({})),
            false,
        )
        .await,
    );
    serde_json::from_str(tool_text(&reply)).unwrap()
}

/// True while `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn children_get_a_cleared_environment_a_scratch_directory_and_their_own_group() {
    // A variable of the gateway's own environment (as ODOCK_ADMIN_TOKEN would be). Set once,
    // before any child of this test starts; nothing else in this binary reads it.
    std::env::set_var("ODOCK_TEST_GATEWAY_SECRET", "gateway-only");
    let mut command = command(&["--spawn-grandchild"]);
    command
        .env
        .insert("DECLARED_TOKEN".into(), "declared-value".into());
    let transport = StdioTransport::new(command, StdioOptions::default()).unwrap();
    let session = open_session(&transport).await;
    let info = process_info(&transport, &session).await;

    let env = info["env"].as_object().unwrap();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["DECLARED_TOKEN", "HOME", "PATH", "TMPDIR"],
        "{env:?}"
    );
    assert_eq!(env["DECLARED_TOKEN"], "declared-value");
    assert_eq!(env["PATH"], odock_mcp::stdio::CHILD_PATH);
    assert!(std::env::var("ODOCK_TEST_GATEWAY_SECRET").is_ok());

    // A fresh scratch directory is its working directory and home.
    let cwd = std::path::PathBuf::from(info["cwd"].as_str().unwrap());
    assert_eq!(env["HOME"].as_str(), cwd.to_str());
    assert!(cwd.is_dir());
    assert_ne!(cwd, std::env::current_dir().unwrap());

    // Its own process group, which its own children share.
    let pid = info["pid"].as_u64().unwrap();
    assert_eq!(info["pgid"].as_u64(), Some(pid));
    let grandchild = info["grandchild"].as_u64().unwrap();
    assert!(alive(grandchild));

    // Ending the session kills the whole group and removes the directory.
    delete(&transport, &session).await;
    assert_eq!(transport.process_count(), 0);
    assert!(!alive(pid));
    wait_until("the grandchild is killed with its group", || {
        !alive(grandchild)
    })
    .await;
    assert!(!cwd.exists(), "the scratch directory is removed");
}

#[tokio::test]
async fn the_process_caps_refuse_sessions_before_anything_starts() {
    let tag = "--tag=capped-sessions";
    let counter = odock_mcp::stdio::ProcessCounter::default();
    let limits = odock_mcp::ProcessLimits {
        max_total: 3,
        max_per_organisation: 2,
    };
    let for_org = |organisation: &str| {
        let mut command = command(&[tag]);
        command.organisation_id = organisation.into();
        StdioTransport::new(
            command,
            StdioOptions {
                processes: counter.clone(),
                limits,
                ..StdioOptions::default()
            },
        )
        .unwrap()
    };
    let (a, b) = (for_org("org_a"), for_org("org_b"));
    let first = open_session(&a).await;
    open_session(&a).await;
    let refused = a
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, McpError::StdioBusy(_)), "{refused:?}");
    assert_eq!(odock_core::GatewayError::from(refused).code(), "overloaded");
    // Another organisation still has room, up to the global cap.
    open_session(&b).await;
    let refused = b
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, McpError::StdioBusy(_)));
    assert_eq!(counter.get(), 3);
    assert_eq!(
        tagged_children(tag).len(),
        3,
        "refused sessions start nothing"
    );

    // A slot comes back when a session ends.
    delete(&a, &first).await;
    open_session(&b).await;
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(counter.get(), 0);
}

#[tokio::test]
async fn a_hundred_concurrent_sessions_leave_no_process_behind() {
    let tag = "--tag=hundred-sessions";
    // Above the default caps on purpose: this is about cleanup, not admission.
    let transport = StdioTransport::new(
        command(&[tag]),
        StdioOptions {
            limits: odock_mcp::ProcessLimits {
                max_total: 100,
                max_per_organisation: 100,
            },
            ..StdioOptions::default()
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let session = open_session(&transport).await;
            let echo = json_body(
                post(
                    &transport,
                    Some(&session),
                    &call(2, "echo", json!({"text": format!("s{n}")})),
                    false,
                )
                .await,
            );
            assert_eq!(tool_text(&echo), format!("s{n}"));
            session
        }));
    }
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.push(task.await.unwrap());
    }
    assert_eq!(transport.process_count(), 100);
    assert_eq!(transport.session_count(), 100);
    let pids = tagged_children(tag);
    assert_eq!(pids.len(), 100, "one live child process per session");

    let mut deletes = Vec::new();
    for session in sessions {
        let transport = transport.clone();
        deletes.push(tokio::spawn(async move {
            status(&delete(&transport, &session).await)
        }));
    }
    for delete in deletes {
        assert_eq!(delete.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(transport.process_count(), 0);
    assert_eq!(transport.session_count(), 0);
    // Reaped, not zombies: the pids are gone from /proc altogether.
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "processes left behind (zombies?): {left:?}"
    );
}

#[tokio::test]
async fn idle_sessions_are_reaped_on_the_injected_clock() {
    let clock = ManualClock::new(Utc::now());
    let options = StdioOptions {
        idle_timeout: Duration::from_secs(300),
        clock: Arc::new(clock.clone()),
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&[]), options).unwrap();
    let stale = open_session(&transport).await;
    let fresh = open_session(&transport).await;
    assert_eq!(transport.process_count(), 2);

    clock.advance(chrono::Duration::seconds(200));
    json_body(
        post(
            &transport,
            Some(&fresh),
            &request(2, "ping", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(
        transport.reap_idle().await,
        0,
        "nothing idle for 5 minutes yet"
    );

    clock.advance(chrono::Duration::seconds(101));
    assert_eq!(transport.reap_idle().await, 1);
    assert_eq!(transport.process_count(), 1);
    let gone = post(
        &transport,
        Some(&stale),
        &request(3, "ping", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&gone), StatusCode::NOT_FOUND);

    clock.advance(chrono::Duration::seconds(301));
    assert_eq!(transport.reap_idle().await, 1);
    assert_eq!(transport.process_count(), 0);
}

#[tokio::test]
async fn the_background_reaper_ends_idle_sessions() {
    let options = StdioOptions {
        idle_timeout: Duration::from_millis(50),
        reap_interval: Some(Duration::from_millis(10)),
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&[]), options).unwrap();
    open_session(&transport).await;
    wait_until("the idle session is reaped", || {
        transport.process_count() == 0
    })
    .await;
    assert_eq!(transport.session_count(), 0);
}

#[tokio::test]
async fn a_crash_fails_in_flight_and_later_requests_fast() {
    let transport = transport(&[]);
    let session = open_session(&transport).await;
    let started = Instant::now();
    let crashed = transport
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(Some(&session), true),
            body: call(2, "crash", json!({})).to_string().into(),
        })
        .await;
    assert!(matches!(crashed, Err(McpError::Stdio(_))), "{crashed:?}");
    let later = transport
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(Some(&session), false),
            body: request(3, "ping", json!({})).to_string().into(),
        })
        .await;
    assert!(matches!(later, Err(McpError::Stdio(_))), "{later:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast");
    wait_until("the crashed process is reaped", || {
        transport.process_count() == 0
    })
    .await;
    assert_eq!(
        odock_core::GatewayError::from(McpError::Stdio("x".into())).code(),
        "mcp_stdio_error"
    );
}

#[tokio::test]
async fn a_command_that_cannot_start_is_a_stdio_error() {
    let transport = StdioTransport::new(
        StdioCommand {
            command: "/nonexistent/odock-mcp-server".into(),
            ..StdioCommand::default()
        },
        StdioOptions::default(),
    )
    .unwrap();
    let error = transport
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Stdio(_)));
    assert_eq!(transport.process_count(), 0);
    let empty = StdioTransport::new(StdioCommand::default(), StdioOptions::default()).unwrap_err();
    assert_eq!(empty, McpError::MissingStdioCommand);
}

#[tokio::test]
async fn content_length_framing_is_spoken_when_configured() {
    let options = StdioOptions {
        framing: StdioFraming::ContentLength,
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&["--content-length"]), options).unwrap();
    let session = open_session(&transport).await;
    let list = json_body(
        post(
            &transport,
            Some(&session),
            &request(2, "tools/list", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(tool_names(&list).len(), 5);
    let messages = stream_messages(
        post(
            &transport,
            Some(&session),
            &call(3, "slow_progress", json!({"steps": 1})),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(messages.len(), 2);
    assert_eq!(tool_text(&messages[1]), "done after 1 steps");
    transport.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_json_rpc_errors_not_panics() {
    let transport = transport(&[]);
    let session = open_session(&transport).await;
    for body in [
        &b"{not json"[..],
        b"",
        b"[]",
        b"42",
        br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
        &[0xff, 0x00],
    ] {
        for session in [None, Some(session.as_str())] {
            let reply = transport
                .send(odock_core::McpMessage {
                    method: http::Method::POST,
                    headers: client_headers(session, false),
                    body: bytes::Bytes::copy_from_slice(body),
                })
                .await
                .unwrap();
            assert_eq!(status(&reply), StatusCode::BAD_REQUEST);
            let error: Value = json_body(reply);
            assert!(error["error"]["code"].as_i64().unwrap() <= -32600);
        }
    }
    // The session still works afterwards.
    let ping = json_body(
        post(
            &transport,
            Some(&session),
            &request(2, "ping", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(ping["result"], json!({}));
    transport.shutdown().await;
}

#[tokio::test]
async fn auto_framing_falls_back_to_content_length_for_a_silent_server() {
    let options = StdioOptions {
        framing: StdioFraming::Auto,
        content_length_probe: Some(Duration::from_millis(100)),
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&["--content-length"]), options).unwrap();
    let session = open_session(&transport).await;
    let list = json_body(
        post(
            &transport,
            Some(&session),
            &request(2, "tools/list", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(tool_names(&list).len(), 5);
    let echo = json_body(
        post(
            &transport,
            Some(&session),
            &call(3, "echo", json!({"text": "cl"})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&echo), "cl");
    transport.shutdown().await;
    assert_eq!(transport.process_count(), 0);
}

#[tokio::test]
async fn the_probe_does_not_break_a_slow_newline_server() {
    let options = StdioOptions {
        framing: StdioFraming::Auto,
        content_length_probe: Some(Duration::from_millis(20)),
        ..StdioOptions::default()
    };
    // The server reads nothing for 300 ms: the probe resends initialize Content-Length framed first.
    let transport = StdioTransport::new(command(&["--start-delay-ms=300"]), options).unwrap();
    let session = open_session(&transport).await;
    for id in 2..5 {
        let echo = json_body(
            post(
                &transport,
                Some(&session),
                &call(id, "echo", json!({"text": format!("n{id}")})),
                false,
            )
            .await,
        );
        assert_eq!(echo["id"], id);
        assert_eq!(tool_text(&echo), format!("n{id}"));
    }
    transport.shutdown().await;
}

#[tokio::test]
async fn server_messages_go_to_the_get_stream_when_one_is_open() {
    let transport = transport(&[]);
    let session = open_session(&transport).await;
    let logged = call(2, "echo", json!({"text": "x", "log": true}));

    // No GET stream: the log rides on the POST's event stream, before the response.
    let messages = stream_messages(post(&transport, Some(&session), &logged, true).await).await;
    assert_eq!(messages[0]["method"], "notifications/message");
    assert_eq!(messages[1]["id"], 2);

    // With a GET stream open, the POST gets only its response and the log goes to the stream.
    let reply = transport
        .send(odock_core::McpMessage {
            method: http::Method::GET,
            headers: client_headers(Some(&session), true),
            body: Default::default(),
        })
        .await
        .unwrap();
    let odock_core::McpReply::Stream { mut events, .. } = reply else {
        panic!("GET is a stream")
    };
    let mut logged = logged;
    logged["id"] = json!(3);
    let only = json_body(post(&transport, Some(&session), &logged, true).await);
    assert_eq!(only["id"], 3);
    use futures::StreamExt;
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let event = odock_mcp::framing::SseEvent::parse(&event).unwrap();
    let note: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(note["method"], "notifications/message");

    // Ending the session ends the GET stream.
    delete(&transport, &session).await;
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn a_server_that_ignores_its_closed_input_is_killed_after_the_grace_period() {
    let tag = "--tag=ignores-eof";
    let options = StdioOptions {
        shutdown_grace: Duration::from_millis(100),
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&["--ignore-eof", tag]), options).unwrap();
    let session = open_session(&transport).await;
    let pids = tagged_children(tag);
    assert_eq!(pids.len(), 1);
    let started = Instant::now();
    assert_eq!(
        status(&delete(&transport, &session).await),
        StatusCode::NO_CONTENT
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(transport.process_count(), 0);
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pids[0])).exists(),
        "killed and reaped"
    );
}

#[tokio::test]
async fn a_request_the_server_never_answers_times_out_and_the_session_survives() {
    // Long enough for the process to start and answer initialize on a loaded machine.
    let options = StdioOptions {
        request_timeout: Duration::from_secs(2),
        ..StdioOptions::default()
    };
    let transport = StdioTransport::new(command(&[]), options).unwrap();
    let session = open_session(&transport).await;
    let error = transport
        .send(odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(Some(&session), false),
            body: call(2, "never_answers", json!({})).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, McpError::Stdio(ref m) if m.contains("no response")),
        "{error:?}"
    );
    let ping = json_body(
        post(
            &transport,
            Some(&session),
            &request(3, "ping", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(ping["id"], 3);
    transport.shutdown().await;
}

/// Captures formatted log output (all levels) in memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// A current-thread runtime: the process's tasks log on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn stderr_goes_to_the_logs_and_env_secrets_do_not() {
    if odock_core::testing::run_alone("stdio::stderr_goes_to_the_logs_and_env_secrets_do_not") {
        return;
    }
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut command = command(&[]);
    command
        .env
        .insert("ODOCK_FAKE_TOKEN".into(), "hunter2-secret".into());
    let transport = StdioTransport::new(command, StdioOptions::default()).unwrap();
    let session = open_session(&transport).await;
    let env = json_body(
        post(
            &transport,
            Some(&session),
            &call(2, "env", json!({"name": "ODOCK_FAKE_TOKEN"})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&env), "hunter2-secret");
    wait_until("the server's stderr is logged", || {
        logs.text().contains("odock-fake-mcp-stdio started")
    })
    .await;
    delete(&transport, &session).await;
    let text = logs.text();
    assert!(text.contains("odock-fake-mcp-stdio"), "{text}");
    assert!(
        !text.contains("hunter2-secret"),
        "a secret reached the logs: {text}"
    );
}

#[tokio::test]
async fn a_server_writing_garbage_is_tolerated_until_it_answers() {
    // A "server" in sh: reads initialize, writes junk lines, then a real answer, then waits.
    let script = r#"read line
printf 'not json at all\n\n{"jsonrpc":"2.0"}\nContent-Length: x\n[1,2\n'
printf '{"jsonrpc":"2.0","id":1,"result":{"serverInfo":{"name":"sh-server"}}}\n'
read rest"#;
    let transport = StdioTransport::new(
        StdioCommand {
            command: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::new(),
            organisation_id: "org_test".into(),
        },
        StdioOptions {
            content_length_probe: None,
            ..StdioOptions::default()
        },
    )
    .unwrap();
    let reply = post(&transport, None, &initialize(1), false).await;
    assert_eq!(status(&reply), StatusCode::OK);
    let session = session_of(&reply);
    assert_eq!(
        json_body(reply)["result"]["serverInfo"]["name"],
        "sh-server"
    );
    assert_eq!(
        status(&delete(&transport, &session).await),
        StatusCode::NO_CONTENT
    );
    assert_eq!(transport.process_count(), 0);
}

#[tokio::test]
async fn concurrent_requests_in_one_session_each_get_their_own_response() {
    let transport = transport(&[]);
    let session = open_session(&transport).await;
    let mut calls = Vec::new();
    for id in 10..30 {
        let transport = transport.clone();
        let session = session.clone();
        calls.push(tokio::spawn(async move {
            let body = call(id, "echo", json!({"text": format!("call-{id}")}));
            let answer = json_body(post(&transport, Some(&session), &body, false).await);
            (id, answer)
        }));
    }
    for handle in calls {
        let (id, answer) = handle.await.unwrap();
        assert_eq!(answer["id"], id);
        assert_eq!(tool_text(&answer), format!("call-{id}"));
    }
    assert_eq!(
        transport.process_count(),
        1,
        "one process serves the whole session"
    );
    transport.shutdown().await;
}
