//! The HTTP surface over raw TCP: slow clients are cut off, oversized and malformed requests are
//! refused with JSON, and the in-flight and body-memory limits answer 503 `overloaded`.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestServer, ADMIN_TOKEN};

/// Upper bound on any wait in this module; the timeouts under test are a few hundred ms.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(server: &TestServer) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection (bounded by [`PATIENCE`]).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open; so far: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status and JSON body of the first response in `raw`.
fn first_answer(raw: &str) -> (u16, Value) {
    let status = raw
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {raw:?}"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(rest.len());
    let body = serde_json::from_str(&rest[..length]).unwrap_or_else(|e| panic!("{e}: {rest}"));
    (status, body)
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].is_string());
    assert!(answer.1["error"]["type"].is_string());
}

/// Polls `/metrics` until `metric` reads `value`.
async fn wait_for_metric(server: &TestServer, metric: &str, value: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = server.metrics_text().await;
        let current = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{metric} ")))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if current == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{metric} stayed at {current:?}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn slow_loris_connections_are_closed_within_the_header_timeout() {
    let server = TestServer::start_with(|c| {
        c.header_read_timeout_ms = 300;
        c.keep_alive_timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut stream = connect(&server).await;
        clients.push(tokio::spawn(async move {
            stream
                .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            // One header line every 50 ms, forever: only the server can end this.
            let (mut read, mut write) = stream.into_split();
            let trickle = tokio::spawn(async move {
                for n in 0.. {
                    let line = format!("X-Slow-{i}-{n}: 1\r\n");
                    if write.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let mut out = Vec::new();
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let mut buf = [0u8; 1024];
                match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                    Err(_) => panic!("slow-loris connection {i} still open"),
                }
            }
            trickle.abort();
            String::from_utf8_lossy(&out).into_owned()
        }));
    }
    // A connection that never sends a byte is closed too.
    let mut silent = connect(&server).await;
    assert_eq!(read_to_close(&mut silent).await, "");
    for client in clients {
        let answer = first_answer(&client.await.unwrap());
        assert_error(&answer, 408, "request_timeout");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let server = TestServer::start_with(|c| {
        c.keep_alive_timeout_ms = 800;
    })
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut stream).await;
    let (status, body) = first_answer(&raw);
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    // Several requests on one connection, each within the idle timeout of the previous answer.
    let mut stream = connect(&server).await;
    let mut buf = [0u8; 4096];
    for _ in 0..3 {
        stream
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // A client pause well within the idle timeout.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_body_trickled_slower_than_the_timeout_is_answered_408() {
    let server = TestServer::start_with(|c| {
        c.body_read_timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    let mut stream = connect(&server).await;
    let head = format!("POST /api/admin/organisations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A few bytes, slower and slower, then nothing: the body never completes.
    for gap in [50, 100, 150] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        if stream.write_all(b" ").await.is_err() {
            break;
        }
    }
    let out = read_to_close(&mut stream).await;
    assert_error(&first_answer(&out), 408, "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_declared_body_above_the_limit_is_refused_before_it_is_read() {
    let server = TestServer::start().await;
    let mut stream = connect(&server).await;
    // Ten gigabytes announced, none sent: the answer must come anyway.
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk_x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut stream).await;
    assert_error(&first_answer(&raw), 413, "payload_too_large");
    assert!(
        raw.to_ascii_lowercase().contains("connection: close"),
        "{raw}"
    );
}

#[tokio::test]
async fn requests_hyper_refuses_are_answered_with_json() {
    let server = TestServer::start_with(|c| c.max_header_bytes = 16 * 1024).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Bin: a\x01b\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
            400,
            "malformed_request",
        ),
        (
            format!(
                "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20 * 1024)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let mut stream = connect(&server).await;
        stream.write_all(&request).await.unwrap();
        let raw = read_to_close(&mut stream).await;
        assert_error(&first_answer(&raw), status, code);
    }

    // A bad request after a good one on the same connection: the first answer is untouched, the
    // second is JSON.
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nBad Header: 1\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut stream).await;
    let (first, rest) = raw.split_at(raw.find("\r\n\r\n").unwrap() + 4);
    assert!(first.starts_with("HTTP/1.1 200"), "{raw}");
    let second = &rest[rest.find("HTTP/1.1").unwrap()..];
    assert_error(&first_answer(second), 400, "malformed_request");
}

/// An admin write (which reads its body after authentication) whose body is announced and only
/// partly sent: it stays in flight, holding its charge.
async fn hold_open(server: &TestServer, declared: usize) -> TcpStream {
    let mut stream = connect(server).await;
    let head = format!(
        "POST /api/admin/organisations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_503_overloaded() {
    let server = TestServer::start_with(|c| {
        c.max_in_flight_requests = 2;
    })
    .await;
    let first = hold_open(&server, 100).await;
    let _second = hold_open(&server, 100).await;
    wait_for_metric(&server, "odock_http_requests_in_flight", 2).await;

    let refused = server
        .client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(body["error"]["type"], "api_error");
    // Probes still answer.
    let health = server
        .client
        .get(server.url("/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A finished request frees its place.
    drop(first);
    wait_for_metric(&server, "odock_http_requests_in_flight", 1).await;
    let served = server
        .client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        served.status(),
        401,
        "admitted (and refused for its missing key)"
    );
    wait_for_metric(&server, "odock_http_overloaded_total", 1).await;
}

#[tokio::test]
async fn bodies_beyond_the_memory_budget_are_503_overloaded() {
    let server = TestServer::start_with(|c| {
        c.max_body_bytes = 600 * 1024;
        c.max_buffered_body_bytes = 1024 * 1024;
    })
    .await;
    let held = hold_open(&server, 500 * 1024).await;
    wait_for_metric(&server, "odock_http_buffered_body_bytes", 500 * 1024).await;

    // A declared body that does not fit beside it is refused before it is read.
    let mut stream = hold_open(&server, 600 * 1024).await;
    let raw = read_to_close(&mut stream).await;
    assert_error(&first_answer(&raw), 503, "overloaded");

    // A chunked body is charged as it arrives, and refused once it does not fit.
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("POST /api/admin/organisations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        for _ in 0..9 {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, read.read_to_end(&mut out)).await;
    writer.abort();
    assert_error(
        &first_answer(&String::from_utf8_lossy(&out)),
        503,
        "overloaded",
    );

    // Everything is given back when the requests end.
    drop(held);
    wait_for_metric(&server, "odock_http_buffered_body_bytes", 0).await;
    let small = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk_x")
        .json(&serde_json::json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        small.status(),
        401,
        "admitted (and refused for its unknown key)"
    );
}

#[tokio::test]
async fn http2_connections_are_served_through_the_guards() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = client.get(server.url("/v1/health")).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
    }
    let refused = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk_x")
        .json(&serde_json::json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

/// Signs in the bootstrap SUPER_ADMIN as a proxy would forward it: over HTTPS, for
/// `odock.example`. Returns the `Set-Cookie` header and the session token.
async fn sign_in_behind_a_proxy(server: &TestServer) -> (String, String) {
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "odock.example")
        .json(
            &serde_json::json!({"email": "root@odock.test", "password": "a long root passphrase"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    (cookie, body["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn forwarded_scheme_and_host_count_only_from_trusted_proxies() {
    let start = |trusted: bool| {
        TestServer::start_with(move |c| {
            c.bootstrap_admin_email = Some("root@odock.test".into());
            c.bootstrap_admin_password = Some(odock::core::Secret::new("a long root passphrase"));
            if trusted {
                c.trusted_proxies = vec!["127.0.0.1".into()];
            }
        })
    };
    for trusted in [true, false] {
        let server = start(trusted).await;
        let (cookie, token) = sign_in_behind_a_proxy(&server).await;
        assert_eq!(cookie.contains("; Secure"), trusted, "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        // A console on https://odock.example behind the proxy writes with its cookie.
        let write = server
            .client
            .post(server.url("/api/admin/organisations"))
            .header("cookie", format!("odock_session={token}"))
            .header("origin", "https://odock.example")
            .header("x-forwarded-host", "odock.example")
            .json(&serde_json::json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        let status = write.status().as_u16();
        let body: Value = write.json().await.unwrap();
        if trusted {
            assert_eq!(status, 201, "{body}");
        } else {
            assert_eq!(status, 403, "{body}");
            assert_eq!(body["error"]["code"], "csrf_rejected");
        }
    }
}
