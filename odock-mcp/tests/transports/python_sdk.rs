//! Every transport against a real MCP server built with the official Python SDK. Skipped (with a
//! message) when `python3` with the `mcp` package is missing, unless `ODOCK_REQUIRE_SDK_TESTS=1`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use odock_core::{McpReply, McpTransport};
use odock_mcp::{
    McpAuth, SseTransport, StdioCommand, StdioOptions, StdioTransport, StreamableHttpTransport,
};
use serde_json::{json, Value};

use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/transports/python_mcp_server.py"
);

fn python_sdk_available() -> bool {
    let available = std::process::Command::new("python3")
        .args(["-c", "import mcp.server.mcpserver"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        assert!(
            std::env::var("ODOCK_REQUIRE_SDK_TESTS").as_deref() != Ok("1"),
            "ODOCK_REQUIRE_SDK_TESTS=1 but python3 with the `mcp` package is missing"
        );
        eprintln!("skipping: python3 with the `mcp` (>= 2) package is not installed");
    }
    available
}

/// Every JSON-RPC message of a reply, JSON or stream (priming events without data skipped).
async fn messages(reply: McpReply) -> Vec<Value> {
    match reply {
        McpReply::Json { body, .. } => match serde_json::from_slice(&body).unwrap() {
            Value::Array(items) => items,
            one => vec![one],
        },
        McpReply::Stream { events, .. } => {
            let events: Vec<_> = events.collect().await;
            events
                .into_iter()
                .filter_map(|event| {
                    let event = odock_mcp::framing::SseEvent::parse(&event.unwrap())?;
                    serde_json::from_str(&event.data).ok()
                })
                .collect()
        }
    }
}

/// initialize → initialized → tools/list → echo → progress, as an SDK client would.
async fn exercise(transport: &dyn McpTransport) {
    let reply = post(transport, None, &initialize(1), true).await;
    assert_eq!(status(&reply), http::StatusCode::OK);
    let session = session_of(&reply);
    let init = messages(reply).await;
    assert_eq!(
        init.last().unwrap()["result"]["serverInfo"]["name"],
        "odock-python-sdk-server"
    );

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        status(&post(transport, Some(&session), &initialized, true).await),
        http::StatusCode::ACCEPTED
    );

    let list = messages(
        post(
            transport,
            Some(&session),
            &request(2, "tools/list", json!({})),
            true,
        )
        .await,
    )
    .await;
    let names = tool_names(list.last().unwrap());
    assert!(
        names.contains(&"echo".to_owned()) && names.contains(&"progress".to_owned()),
        "{names:?}"
    );

    let echo = messages(
        post(
            transport,
            Some(&session),
            &call(3, "echo", json!({"text": "real"})),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(tool_text(echo.last().unwrap()), "real");

    let mut progress = call(4, "progress", json!({"steps": 3}));
    progress["params"]["_meta"] = json!({"progressToken": "tok-4"});
    let streamed = messages(post(transport, Some(&session), &progress, true).await).await;
    let notes: Vec<&Value> = streamed
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(notes.len(), 3, "{streamed:?}");
    assert_eq!(notes[2]["params"]["progressToken"], "tok-4");
    let last = streamed.last().unwrap();
    assert_eq!(last["id"], 4);
    assert_eq!(tool_text(last), "done after 3 steps");

    let ended = delete(transport, &session).await;
    assert!(
        status(&ended).is_success(),
        "DELETE answered {}",
        status(&ended)
    );
}

/// A Python SDK server on a free loopback port, killed when dropped.
struct PythonServer(tokio::process::Child);

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn start_http_server(transport: &str) -> (PythonServer, u16) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new("python3")
        .args([SCRIPT, transport, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Python MCP server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (PythonServer(child), port)
}

#[tokio::test]
async fn stdio_against_the_python_sdk_server() {
    if !python_sdk_available() {
        return;
    }
    let transport = StdioTransport::new(
        StdioCommand {
            command: "python3".into(),
            args: vec![SCRIPT.into(), "stdio".into()],
            // Children start with a cleared environment: keep the SDK findable when it was
            // installed in the user's site-packages.
            env: std::env::var("HOME")
                .map(|home| std::collections::BTreeMap::from([("HOME".to_owned(), home)]))
                .unwrap_or_default(),
            ..Default::default()
        },
        StdioOptions::default(),
    )
    .unwrap();
    exercise(&transport).await;
    assert_eq!(transport.process_count(), 0);
}

#[tokio::test]
async fn streamable_http_against_the_python_sdk_server() {
    if !python_sdk_available() {
        return;
    }
    let (_server, port) = start_http_server("streamable-http").await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let transport = StreamableHttpTransport::new(&url, McpAuth::None, http_options()).unwrap();
    exercise(&transport).await;
}

#[tokio::test]
async fn sse_against_the_python_sdk_server() {
    if !python_sdk_available() {
        return;
    }
    let (_server, port) = start_http_server("sse").await;
    let url = format!("http://127.0.0.1:{port}/sse");
    let transport = SseTransport::new(&url, McpAuth::None, sse_options()).unwrap();
    exercise(&transport).await;
}
