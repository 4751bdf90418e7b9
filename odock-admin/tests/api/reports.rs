//! The usage summary and invoices through the real admin router: figures checked against 100,000
//! generated usage records (computed again here in Rust), and what each role sees.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_admin::analytics::synthetic::{
    generate, insert, SyntheticKey, SyntheticRecord, SyntheticSpec,
};
use odock_admin::analytics::MCP_PROVIDER;
use odock_admin::testing::{assert_error, harness, Harness, ADMIN_TOKEN};
use odock_core::Role;
use odock_store::usage_rollups::latency_bucket;
use serde_json::{json, Value};
use tower::ServiceExt;

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_717_200_000_000; // 2024-06-01T00:00:00Z
const FROM: &str = "2024-06-01T00:00:00Z";
const TO: &str = "2024-07-01T00:00:00Z";

/// Raw bytes and headers of a download (CSV, PDF).
async fn download(h: &Harness, path: &str, bearer: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// An organisation with two teams, keys of every kind, two models and an MCP server, all created
/// through the API; then `records` generated usage records on those keys (and a quarter as many
/// in a second organisation).
struct Fixture {
    org: String,
    team_a: String,
    team_b: String,
    manager: String,
    user: String,
    org_key: String,
    records: Vec<SyntheticRecord>,
}

async fn fixture(h: &Harness, records: usize) -> Fixture {
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let other = h
        .create("/api/admin/organisations", json!({"name": "Other"}))
        .await;
    let team_a = h
        .create(
            &format!("/api/organisations/{org}/teams"),
            json!({"name": "Alpha"}),
        )
        .await;
    let team_b = h
        .create(
            &format!("/api/organisations/{org}/teams"),
            json!({"name": "Beta"}),
        )
        .await;
    let manager = h.user(Some(&org), "manager@acme.test", Role::Manager).await;
    let user = h.user(Some(&org), "user@acme.test", Role::User).await;
    let member = h
        .admin(
            Method::POST,
            &format!("/api/organisations/{org}/teams/{team_a}/members"),
            Some(&json!({"userId": manager, "role": "MANAGER"})),
        )
        .await;
    assert_eq!(member.status, StatusCode::CREATED, "{}", member.text);
    let key = |body: Value| {
        let path = format!("/api/organisations/{org}/apikeys");
        async move { h.create(&path, body).await }
    };
    let org_key = key(json!({"name": "ci", "type": "ORGANISATION"})).await;
    let a_key = key(json!({"name": "alpha", "type": "TEAM", "teamId": team_a})).await;
    let b_key = key(json!({"name": "beta", "type": "TEAM", "teamId": team_b})).await;
    let user_key = key(json!({"name": "mine", "type": "USER", "userId": user})).await;
    let manager_key = key(json!({"name": "mgr", "type": "USER", "userId": manager})).await;

    let keys = vec![
        SyntheticKey {
            id: org_key.clone(),
            team_id: None,
            user_id: None,
        },
        SyntheticKey {
            id: a_key,
            team_id: Some(team_a.clone()),
            user_id: None,
        },
        SyntheticKey {
            id: b_key,
            team_id: Some(team_b.clone()),
            user_id: None,
        },
        SyntheticKey {
            id: user_key,
            team_id: None,
            user_id: Some(user.clone()),
        },
        SyntheticKey {
            id: manager_key,
            team_id: None,
            user_id: Some(manager.clone()),
        },
    ];
    let spec = SyntheticSpec {
        organisation_id: org.clone(),
        keys,
        models: vec![
            ("model-gpt".into(), "gpt-4o".into()),
            ("model-claude".into(), "claude".into()),
        ],
        mcp_servers: vec![("server-search".into(), "search".into())],
        records,
        // 40 days from 1 June: some records fall after the June invoice period.
        start_ms: START_MS,
        span_ms: 40 * DAY_MS,
        seed: 99,
    };
    let generated = generate(&spec);
    insert(&h.pool, &generated).await.unwrap();
    let noise = generate(&SyntheticSpec {
        organisation_id: other,
        records: records / 4,
        seed: 5,
        ..spec
    });
    insert(&h.pool, &noise).await.unwrap();
    Fixture {
        org,
        team_a,
        team_b,
        manager,
        user,
        org_key,
        records: generated,
    }
}

/// The figures computed in Rust from the generated rows.
#[derive(Debug, Default, PartialEq)]
struct Sums {
    requests: i64,
    errors: i64,
    mcp_requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    billable_tokens: i64,
    cost: i64,
    mcp_cost: i64,
}

fn sums<'a>(records: impl Iterator<Item = &'a SyntheticRecord>) -> Sums {
    let mut s = Sums::default();
    for r in records {
        let mcp = r.provider == MCP_PROVIDER;
        s.requests += 1;
        s.errors += i64::from(r.http_status >= 400);
        s.mcp_requests += i64::from(mcp);
        s.input_tokens += r.input_tokens;
        s.output_tokens += r.output_tokens;
        s.billable_tokens += r.billable_tokens;
        s.cost += r.cost_nanos_usd;
        s.mcp_cost += if mcp { r.cost_nanos_usd } else { 0 };
    }
    s
}

fn stats_of(v: &Value) -> Sums {
    let int = |name: &str| v[name].as_i64().unwrap_or_else(|| panic!("{name} in {v}"));
    Sums {
        requests: int("requests"),
        errors: int("errors"),
        mcp_requests: int("mcpRequests"),
        input_tokens: int("inputTokens"),
        output_tokens: int("outputTokens"),
        billable_tokens: int("billableTokens"),
        cost: int("costNanosUsd"),
        mcp_cost: int("mcpCostNanosUsd"),
    }
}

fn sum_groups(groups: &Value) -> Sums {
    let mut total = Sums::default();
    for group in groups.as_array().unwrap() {
        let s = stats_of(group);
        total.requests += s.requests;
        total.errors += s.errors;
        total.mcp_requests += s.mcp_requests;
        total.input_tokens += s.input_tokens;
        total.output_tokens += s.output_tokens;
        total.billable_tokens += s.billable_tokens;
        total.cost += s.cost;
        total.mcp_cost += s.mcp_cost;
    }
    total
}

fn nearest_rank(mut latencies: Vec<i64>, p: usize) -> i64 {
    latencies.sort_unstable();
    latencies[(latencies.len() * p).div_ceil(100) - 1]
}

fn in_june(r: &SyntheticRecord) -> bool {
    r.created_at >= START_MS && r.created_at < START_MS + 30 * DAY_MS
}

#[tokio::test]
async fn summary_and_invoices_agree_with_100k_usage_records() {
    let h = harness().await;
    let f = fixture(&h, 100_000).await;
    let org = &f.org;
    let all = sums(f.records.iter());
    assert!(all.mcp_requests > 0 && all.errors > 0 && all.cost > all.mcp_cost);

    // Totals of the whole organisation, every grouping adding up to them.
    let base = format!("/api/organisations/{org}/usage/summary");
    let reply = h.admin(Method::GET, &base, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(stats_of(&reply.body["totals"]), all);
    // 100,000 records: over the exact limit, so the percentiles are estimated from the rollups'
    // histograms, in the bucket of the exact nearest-rank value.
    assert_eq!(reply.body["latencyPercentiles"], "estimated");
    let latencies: Vec<i64> = f.records.iter().map(|r| r.latency_ms).collect();
    let bucket = |v: &Value| v.as_i64().map(latency_bucket);
    assert_eq!(
        bucket(&reply.body["totals"]["latencyP50Ms"]),
        Some(latency_bucket(nearest_rank(latencies.clone(), 50)))
    );
    assert_eq!(
        bucket(&reply.body["totals"]["latencyP95Ms"]),
        Some(latency_bucket(nearest_rank(latencies, 95)))
    );
    for group_by in [
        "day",
        "model",
        "apiKey",
        "key",
        "team",
        "user",
        "provider",
        "mcpServer",
        "status",
    ] {
        let reply = h
            .admin(Method::GET, &format!("{base}?groupBy={group_by}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(sum_groups(&reply.body["groups"]), all, "{group_by}");
        assert_eq!(stats_of(&reply.body["totals"]), all, "{group_by}");
    }
    let by_team = h
        .admin(Method::GET, &format!("{base}?groupBy=team"), None)
        .await;
    let alpha = by_team.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == f.team_a.as_str())
        .unwrap();
    assert_eq!(alpha["label"], "Alpha");
    assert_eq!(
        stats_of(alpha),
        sums(
            f.records
                .iter()
                .filter(|r| r.team_id.as_ref() == Some(&f.team_a))
        )
    );

    // Filters: teams and keys (their union), a period.
    let reply = h
        .admin(
            Method::GET,
            &format!(
                "{base}?teamIds={},{}&apiKeyIds={}",
                f.team_a, f.team_b, f.org_key
            ),
            None,
        )
        .await;
    assert_eq!(
        stats_of(&reply.body["totals"]),
        sums(
            f.records
                .iter()
                .filter(|r| r.team_id.is_some() || r.api_key_id == f.org_key)
        )
    );
    let reply = h
        .admin(Method::GET, &format!("{base}?from={FROM}&to={TO}"), None)
        .await;
    assert_eq!(
        stats_of(&reply.body["totals"]),
        sums(f.records.iter().filter(|r| in_june(r)))
    );
    // Model, provider and status filters; hourly groups over at most 31 days.
    let reply = h
        .admin(
            Method::GET,
            &format!("{base}?from={FROM}&to={TO}&providers=mcp,openai&status=error&groupBy=hour"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let want = sums(f.records.iter().filter(|r| {
        in_june(r) && (r.provider == "mcp" || r.provider == "openai") && r.http_status >= 400
    }));
    assert!(want.requests > 0);
    assert_eq!(stats_of(&reply.body["totals"]), want);
    assert_eq!(sum_groups(&reply.body["groups"]), want);
    let model = f.records.iter().find_map(|r| r.model_id.clone()).unwrap();
    let reply = h
        .admin(
            Method::GET,
            &format!("{base}?modelIds={model}&status=success"),
            None,
        )
        .await;
    assert_eq!(
        stats_of(&reply.body["totals"]),
        sums(
            f.records.iter().filter(|r| {
                r.model_id.as_deref() == Some(model.as_str()) && r.http_status < 400
            })
        )
    );
    for (query, field) in [
        ("groupBy=hour", "groupBy"),
        (
            "groupBy=hour&from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:01Z",
            "groupBy",
        ),
        ("status=maybe", "status"),
    ] {
        let reply = h.admin(Method::GET, &format!("{base}?{query}"), None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert!(reply.text.contains(field), "{query}: {}", reply.text);
    }
    let reply = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invoices?status=error"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);

    // The June invoice: totals and every breakdown agree with the records.
    let june = sums(f.records.iter().filter(|r| in_june(r)));
    let invoice = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invoices?from={FROM}&to={TO}"),
            None,
        )
        .await;
    assert_eq!(invoice.status, StatusCode::OK, "{}", invoice.text);
    let totals = &invoice.body["totals"];
    assert_eq!(totals["requests"], june.requests);
    assert_eq!(totals["costNanosUsd"], june.cost);
    assert_eq!(totals["mcpCostNanosUsd"], june.mcp_cost);
    assert_eq!(totals["llmCostNanosUsd"], june.cost - june.mcp_cost);
    assert_eq!(totals["billableTokens"], june.billable_tokens);
    let cost = june.cost;
    assert_eq!(
        totals["costUsd"],
        format!("{}.{:09}", cost / 1_000_000_000, cost % 1_000_000_000)
    );
    let line_sum = |name: &str, field: &str| -> i64 {
        invoice.body[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line[field].as_i64().unwrap())
            .sum()
    };
    for breakdown in ["byTeam", "byApiKey"] {
        assert_eq!(
            line_sum(breakdown, "costNanosUsd"),
            june.cost,
            "{breakdown}"
        );
        assert_eq!(
            line_sum(breakdown, "requests"),
            june.requests,
            "{breakdown}"
        );
    }
    assert_eq!(
        line_sum("byModel", "costNanosUsd"),
        june.cost - june.mcp_cost
    );
    assert_eq!(line_sum("byMcpServer", "costNanosUsd"), june.mcp_cost);
    assert_eq!(line_sum("byMcpServer", "requests"), june.mcp_requests);
    let names: Vec<&str> = invoice.body["byTeam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Alpha") && names.contains(&"Direct organisation API keys"),
        "{names:?}"
    );

    // Narrowed to team B.
    let invoice_b = h
        .admin(
            Method::GET,
            &format!(
                "/api/organisations/{org}/invoices?from={FROM}&to={TO}&teamIds={}",
                f.team_b
            ),
            None,
        )
        .await;
    let b = sums(
        f.records
            .iter()
            .filter(|r| in_june(r) && r.team_id.as_ref() == Some(&f.team_b)),
    );
    assert_eq!(invoice_b.body["totals"]["costNanosUsd"], b.cost);
    assert_eq!(invoice_b.body["totals"]["requests"], b.requests);

    // CSV: one line per record of the period, costs adding up to the total.
    let (status, headers, csv) = download(
        &h,
        &format!("/api/organisations/{org}/invoices?from={FROM}&to={TO}&format=csv"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"odock-invoice-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.split("\r\n").filter(|line| !line.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cost_column = header.iter().position(|c| *c == "costNanosUsd").unwrap();
    let id_column = header.iter().position(|c| *c == "id").unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut csv_cost = 0_i64;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), header.len(), "{line}");
        csv_cost += fields[cost_column].parse::<i64>().unwrap();
        assert!(ids.insert(fields[id_column].to_owned()), "duplicate {line}");
    }
    assert_eq!(ids.len() as i64, june.requests);
    assert_eq!(csv_cost, june.cost);

    // PDF: a structurally valid document with the totals in it.
    let (status, headers, pdf) = download(
        &h,
        &format!("/api/organisations/{org}/invoices?from={FROM}&to={TO}&format=pdf"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(pdf.starts_with(b"%PDF-1.4\n") && pdf.ends_with(b"%%EOF\n"));
    let text = String::from_utf8_lossy(&pdf);
    let xref_at: usize = text[text.rfind("startxref\n").unwrap() + 10..]
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pdf[xref_at..].starts_with(b"xref\n"));
    if let Some(text) = pdftotext(&pdf) {
        let total = totals["costUsd"].as_str().unwrap();
        assert!(text.contains(&format!("${total}")), "{text}");
        assert!(text.contains("Alpha"), "{text}");
    }
}

fn pdftotext(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .ok()?;
    assert!(output.status.success());
    Some(String::from_utf8(output.stdout).unwrap())
}

#[tokio::test]
async fn reports_show_each_role_only_what_it_may_see() {
    let h = harness().await;
    let f = fixture(&h, 3_000).await;
    let org = &f.org;
    let summary = format!("/api/organisations/{org}/usage/summary");
    let invoice = format!("/api/organisations/{org}/invoices?from={FROM}&to=2024-08-01T00:00:00Z");

    // The team MANAGER of Alpha: Alpha's records and its own.
    let manager = h.session(&f.manager).await;
    let expected = sums(f.records.iter().filter(|r| {
        r.team_id.as_ref() == Some(&f.team_a) || r.user_id.as_ref() == Some(&f.manager)
    }));
    let reply = h.call(Method::GET, &summary, Some(&manager), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(stats_of(&reply.body["totals"]), expected);
    let reply = h.call(Method::GET, &invoice, Some(&manager), None).await;
    assert_eq!(reply.body["totals"]["costNanosUsd"], expected.cost);
    // Asking for another team narrows to nothing rather than widening.
    let reply = h
        .call(
            Method::GET,
            &format!("{summary}?teamIds={}", f.team_b),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(reply.body["totals"]["requests"], 0);

    // A USER: its own records only.
    let user = h.session(&f.user).await;
    let expected = sums(
        f.records
            .iter()
            .filter(|r| r.user_id.as_ref() == Some(&f.user)),
    );
    let reply = h.call(Method::GET, &summary, Some(&user), None).await;
    assert_eq!(stats_of(&reply.body["totals"]), expected);
    let (status, _, csv) = download(&h, &format!("{invoice}&format=csv"), &user).await;
    assert_eq!(status, StatusCode::OK);
    let rows = String::from_utf8(csv).unwrap().matches("\r\n").count() - 1;
    assert_eq!(rows as i64, expected.requests);

    // The ORG_ADMIN: everything; another organisation's admin: 404.
    let admin = h.user(Some(org), "admin@acme.test", Role::OrgAdmin).await;
    let admin = h.session(&admin).await;
    let reply = h.call(Method::GET, &summary, Some(&admin), None).await;
    assert_eq!(stats_of(&reply.body["totals"]), sums(f.records.iter()));
    let stranger_org = h
        .create("/api/admin/organisations", json!({"name": "Stranger"}))
        .await;
    let stranger = h
        .user(Some(&stranger_org), "admin@stranger.test", Role::OrgAdmin)
        .await;
    let stranger = h.session(&stranger).await;
    for path in [&summary, &invoice] {
        let reply = h.call(Method::GET, path, Some(&stranger), None).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }

    // Bad parameters are 400s naming the field.
    for (query, field) in [
        ("groupBy=week", "groupBy"),
        ("from=2024-07-01T00:00:00Z&to=2024-06-01T00:00:00Z", "from"),
        ("bogus=1", "bogus"),
    ] {
        let reply = h
            .admin(Method::GET, &format!("{summary}?{query}"), None)
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
    }
    let reply = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invoices?format=xml"),
            None,
        )
        .await;
    assert_eq!(reply.body["error"]["field"], "format", "{}", reply.text);
}
