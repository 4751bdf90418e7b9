use std::collections::BTreeMap;

use super::synthetic::{generate, insert, SyntheticKey, SyntheticRecord, SyntheticSpec};
use super::*;
use odock_store::testing::database;

const DAY0: i64 = 1_717_200_000_000; // 2024-06-01T00:00:00Z

fn key(id: &str, team: Option<&str>, user: Option<&str>) -> SyntheticKey {
    SyntheticKey {
        id: id.into(),
        team_id: team.map(Into::into),
        user_id: user.map(Into::into),
    }
}

fn spec(org: &str, records: usize, seed: u64) -> SyntheticSpec {
    SyntheticSpec {
        organisation_id: org.into(),
        keys: vec![
            key("k-org", None, None),
            key("k-a1", Some("team-a"), None),
            key("k-a2", Some("team-a"), Some("user-1")),
            key("k-b", Some("team-b"), None),
            key("k-u2", None, Some("user-2")),
        ],
        models: vec![
            ("m-1".into(), "gpt".into()),
            ("m-2".into(), "claude".into()),
        ],
        mcp_servers: vec![
            ("s-1".into(), "search".into()),
            ("s-2".into(), "files".into()),
        ],
        records,
        start_ms: DAY0,
        span_ms: 5 * DAY_MS,
        seed,
    }
}

/// The reference: the same counters computed in Rust from the generated rows.
fn expected<'a>(records: impl Iterator<Item = &'a SyntheticRecord>) -> UsageStats {
    let records: Vec<_> = records.collect();
    let mut stats = UsageStats::default();
    let mut latencies: Vec<i64> = Vec::new();
    for r in &records {
        let mcp = r.provider == MCP_PROVIDER;
        stats.requests += 1;
        stats.successes += i64::from(r.http_status < 400);
        stats.errors += i64::from(r.http_status >= 400);
        stats.mcp_requests += i64::from(mcp);
        stats.llm_requests += i64::from(!mcp);
        stats.input_tokens += r.input_tokens;
        stats.output_tokens += r.output_tokens;
        stats.cached_tokens += r.cached_tokens;
        stats.reasoning_tokens += r.reasoning_tokens;
        stats.total_tokens += r.input_tokens + r.output_tokens;
        stats.billable_tokens += r.billable_tokens;
        stats.cost_nanos_usd += r.cost_nanos_usd;
        if mcp {
            stats.mcp_cost_nanos_usd += r.cost_nanos_usd;
        } else {
            stats.llm_cost_nanos_usd += r.cost_nanos_usd;
        }
        latencies.push(r.latency_ms);
    }
    latencies.sort_unstable();
    let rank = |p: usize| {
        let n = latencies.len();
        (n > 0).then(|| latencies[(n * p).div_ceil(100) - 1])
    };
    stats.latency_p50_ms = rank(50);
    stats.latency_p95_ms = rank(95);
    stats.success_rate =
        (stats.requests > 0).then(|| stats.successes as f64 / stats.requests as f64);
    stats
}

async fn loaded(records: usize) -> (Db, Vec<SyntheticRecord>) {
    let pool = database().await;
    let mine = generate(&spec("org-1", records, 7));
    let theirs = generate(&spec("org-2", records / 4, 11));
    insert(&pool, &mine).await.unwrap();
    insert(&pool, &theirs).await.unwrap();
    (pool, mine)
}

fn add(into: &mut UsageStats, group: &UsageStats) {
    into.requests += group.requests;
    into.successes += group.successes;
    into.errors += group.errors;
    into.llm_requests += group.llm_requests;
    into.mcp_requests += group.mcp_requests;
    into.input_tokens += group.input_tokens;
    into.output_tokens += group.output_tokens;
    into.cached_tokens += group.cached_tokens;
    into.reasoning_tokens += group.reasoning_tokens;
    into.total_tokens += group.total_tokens;
    into.billable_tokens += group.billable_tokens;
    into.cost_nanos_usd += group.cost_nanos_usd;
    into.llm_cost_nanos_usd += group.llm_cost_nanos_usd;
    into.mcp_cost_nanos_usd += group.mcp_cost_nanos_usd;
}

fn additive(stats: &UsageStats) -> UsageStats {
    UsageStats {
        success_rate: None,
        latency_p50_ms: None,
        latency_p95_ms: None,
        ..stats.clone()
    }
}

#[tokio::test]
async fn totals_and_every_grouping_match_the_records() {
    let (pool, records) = loaded(6_000).await;
    let scope = UsageScope::organisation("org-1");
    let want = expected(records.iter());
    assert!(want.mcp_requests > 0 && want.errors > 0 && want.cost_nanos_usd > 0);

    for group_by in GroupBy::ALL {
        let report = summary(&pool, &scope, Some(group_by)).await.unwrap();
        assert_eq!(report.totals, want, "{group_by:?}");

        // Groups add up to the totals, and each group matches its records.
        let mut sum = UsageStats::default();
        for group in &report.groups {
            add(&mut sum, &group.stats);
            let members = records.iter().filter(|r| {
                let key = match group_by {
                    GroupBy::Day => Some(from_ms(r.created_at).format("%Y-%m-%d").to_string()),
                    GroupBy::Hour => Some(
                        from_ms(r.created_at)
                            .format("%Y-%m-%dT%H:00:00Z")
                            .to_string(),
                    ),
                    GroupBy::Status => Some(format!("{}xx", r.http_status / 100)),
                    GroupBy::Model => r.model_id.clone(),
                    GroupBy::ApiKey => Some(r.api_key_id.clone()),
                    GroupBy::Team => r.team_id.clone(),
                    GroupBy::User => r.user_id.clone(),
                    GroupBy::Provider => Some(r.provider.clone()),
                    GroupBy::McpServer => r.mcp_server_id.clone(),
                };
                key == group.key
            });
            assert_eq!(
                group.stats,
                expected(members),
                "{group_by:?} {:?}",
                group.key
            );
        }
        assert_eq!(sum, additive(&want), "{group_by:?}");
    }

    let days = summary(&pool, &scope, Some(GroupBy::Day)).await.unwrap();
    let keys: Vec<_> = days.groups.iter().map(|g| g.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "2024-06-01",
            "2024-06-02",
            "2024-06-03",
            "2024-06-04",
            "2024-06-05"
        ]
    );
    let teams = summary(&pool, &scope, Some(GroupBy::Team)).await.unwrap();
    let direct = teams.groups.iter().find(|g| g.key.is_none()).unwrap();
    assert_eq!(direct.label, "Direct organisation API keys");
    let models = summary(&pool, &scope, Some(GroupBy::Model)).await.unwrap();
    let labels: BTreeMap<_, _> = models
        .groups
        .iter()
        .map(|g| (g.key.clone(), g.label.clone()))
        .collect();
    assert_eq!(labels[&Some("m-1".to_owned())], "gpt");
    let keys = summary(&pool, &scope, Some(GroupBy::ApiKey)).await.unwrap();
    assert!(keys.groups.iter().any(|g| g.label == "API Key k-a1"));
}

#[tokio::test]
async fn filters_periods_and_visibility_narrow_the_records() {
    let (pool, records) = loaded(3_000).await;
    let check = |scope: UsageScope, keep: fn(&SyntheticRecord) -> bool| {
        let pool = pool.clone();
        let want = expected(records.iter().filter(|r| keep(r)));
        async move {
            let report = summary(&pool, &scope, Some(GroupBy::Team)).await.unwrap();
            assert_eq!(report.totals, want, "{scope:?}");
        }
    };
    let org = || UsageScope::organisation("org-1");
    check(
        UsageScope {
            team_ids: vec!["team-a".into()],
            ..org()
        },
        |r| r.team_id.as_deref() == Some("team-a"),
    )
    .await;
    check(
        UsageScope {
            api_key_ids: vec!["k-org".into(), "k-b".into()],
            ..org()
        },
        |r| r.api_key_id == "k-org" || r.api_key_id == "k-b",
    )
    .await;
    // Teams and keys together: the union.
    check(
        UsageScope {
            team_ids: vec!["team-b".into()],
            api_key_ids: vec!["k-org".into()],
            ..org()
        },
        |r| r.team_id.as_deref() == Some("team-b") || r.api_key_id == "k-org",
    )
    .await;
    check(
        UsageScope {
            from_ms: Some(DAY0 + DAY_MS),
            to_ms: Some(DAY0 + 3 * DAY_MS),
            ..org()
        },
        |r| r.created_at >= DAY0 + DAY_MS && r.created_at < DAY0 + 3 * DAY_MS,
    )
    .await;
    check(
        UsageScope {
            traffic: Traffic::Mcp,
            ..org()
        },
        |r| r.provider == MCP_PROVIDER,
    )
    .await;
    check(
        UsageScope {
            traffic: Traffic::Llm,
            ..org()
        },
        |r| r.provider != MCP_PROVIDER,
    )
    .await;
    // A team manager who is also user-1; a user who sees only their own; nobody.
    check(
        UsageScope {
            visible: Some(Visibility {
                team_ids: vec!["team-b".into()],
                user_id: Some("user-1".into()),
            }),
            ..org()
        },
        |r| r.team_id.as_deref() == Some("team-b") || r.user_id.as_deref() == Some("user-1"),
    )
    .await;
    check(
        UsageScope {
            visible: Some(Visibility {
                team_ids: vec![],
                user_id: Some("user-2".into()),
            }),
            ..org()
        },
        |r| r.user_id.as_deref() == Some("user-2"),
    )
    .await;
    check(
        UsageScope {
            visible: Some(Visibility::default()),
            ..org()
        },
        |_| false,
    )
    .await;
    // Visibility intersects the requested filter.
    check(
        UsageScope {
            team_ids: vec!["team-a".into()],
            visible: Some(Visibility {
                team_ids: vec!["team-b".into()],
                user_id: None,
            }),
            ..org()
        },
        |_| false,
    )
    .await;
}

#[tokio::test]
async fn an_empty_scope_has_zero_totals_and_no_groups() {
    let pool = database().await;
    let report = summary(
        &pool,
        &UsageScope::organisation("nobody"),
        Some(GroupBy::Day),
    )
    .await
    .unwrap();
    assert_eq!(report.totals, UsageStats::default());
    assert!(report.groups.is_empty());
}

#[tokio::test]
async fn percentiles_use_the_nearest_rank() {
    let pool = database().await;
    let mut records = generate(&SyntheticSpec {
        mcp_servers: vec![],
        ..spec("org-1", 20, 3)
    });
    for (i, r) in records.iter_mut().enumerate() {
        r.latency_ms = (20 - i as i64) * 10; // 200, 190, …, 10
    }
    insert(&pool, &records).await.unwrap();
    let report = summary(&pool, &UsageScope::organisation("org-1"), None)
        .await
        .unwrap();
    // n = 20: p50 is the 10th smallest (100), p95 the 19th (190).
    assert_eq!(report.totals.latency_p50_ms, Some(100));
    assert_eq!(report.totals.latency_p95_ms, Some(190));
}

#[tokio::test]
async fn the_one_pass_breakdown_folds_into_the_same_groups() {
    let (pool, _) = loaded(4_000).await;
    let scope = UsageScope::organisation("org-1");
    let rows = breakdown(&pool, &scope).await.unwrap();
    for group_by in [GroupBy::Team, GroupBy::ApiKey] {
        assert_eq!(
            fold(&rows, group_by),
            groups(&pool, &scope, group_by).await.unwrap(),
            "{group_by:?}"
        );
    }
    let llm = UsageScope {
        traffic: Traffic::Llm,
        ..scope.clone()
    };
    assert_eq!(
        fold(rows.iter().filter(|r| !r.mcp), GroupBy::Model),
        groups(&pool, &llm, GroupBy::Model).await.unwrap()
    );
    let mcp = UsageScope {
        traffic: Traffic::Mcp,
        ..scope.clone()
    };
    assert_eq!(
        fold(rows.iter().filter(|r| r.mcp), GroupBy::McpServer),
        groups(&pool, &mcp, GroupBy::McpServer).await.unwrap()
    );
    assert!(fold(&rows, GroupBy::Day).is_empty());
}

/// Periods that start and end inside hours and days read whole days and hours from the rollups
/// and the edges from the records, and still count exactly the records of the period.
#[tokio::test]
async fn ragged_periods_and_new_filters_count_exactly_the_records() {
    let (pool, records) = loaded(4_000).await;
    const MINUTE: i64 = 60_000;
    let periods = [
        // Inside one hour; across one day boundary; over several days with ragged edges.
        (DAY0 + 61 * MINUTE + 17, DAY0 + 119 * MINUTE),
        (
            DAY0 + DAY_MS - 90 * MINUTE - 3,
            DAY0 + DAY_MS + 150 * MINUTE + 11,
        ),
        (
            DAY0 + 90 * MINUTE + 17_000,
            DAY0 + 3 * DAY_MS + 303 * MINUTE,
        ),
        (DAY0 + 2 * DAY_MS, DAY0 + 4 * DAY_MS),
    ];
    for (from, to) in periods {
        let scope = UsageScope {
            from_ms: Some(from),
            to_ms: Some(to),
            ..UsageScope::organisation("org-1")
        };
        let inside = |r: &&SyntheticRecord| r.created_at >= from && r.created_at < to;
        for group_by in [
            None,
            Some(GroupBy::Day),
            Some(GroupBy::Hour),
            Some(GroupBy::Model),
        ] {
            let report = summary(&pool, &scope, group_by).await.unwrap();
            assert_eq!(
                report.totals,
                expected(records.iter().filter(inside)),
                "{from}..{to} {group_by:?}"
            );
        }
        let filtered = UsageScope {
            model_ids: vec!["m-2".into()],
            status: Some(StatusFilter::Success),
            ..scope.clone()
        };
        let report = summary(&pool, &filtered, Some(GroupBy::Team))
            .await
            .unwrap();
        assert_eq!(
            report.totals,
            expected(
                records
                    .iter()
                    .filter(inside)
                    .filter(|r| { r.model_id.as_deref() == Some("m-2") && r.http_status < 400 })
            )
        );
    }
    let check = |scope: UsageScope, keep: fn(&SyntheticRecord) -> bool| {
        let pool = pool.clone();
        let want = expected(records.iter().filter(|r| keep(r)));
        async move {
            let report = summary(&pool, &scope, Some(GroupBy::Status)).await.unwrap();
            assert_eq!(report.totals, want, "{scope:?}");
        }
    };
    let org = || UsageScope::organisation("org-1");
    check(
        UsageScope {
            providers: vec![MCP_PROVIDER.into()],
            ..org()
        },
        |r| r.provider == MCP_PROVIDER,
    )
    .await;
    check(
        UsageScope {
            user_ids: vec!["user-1".into(), "user-2".into()],
            ..org()
        },
        |r| r.user_id.is_some(),
    )
    .await;
    check(
        UsageScope {
            status: Some(StatusFilter::Error),
            ..org()
        },
        |r| r.http_status >= 400,
    )
    .await;
}

/// Over more records than the exact limit, percentiles come from the rollups' histograms: every
/// counter stays exact, and each percentile falls in the bucket of the exact value.
#[tokio::test]
async fn estimated_percentiles_fall_in_the_bucket_of_the_exact_value() {
    use odock_store::usage_rollups::latency_bucket;
    let (pool, records) = loaded(3_000).await;
    let scope = UsageScope {
        from_ms: Some(DAY0 + 1_234_567),
        ..UsageScope::organisation("org-1")
    };
    let inside = |r: &&SyntheticRecord| r.created_at >= DAY0 + 1_234_567;
    let same_bucket = |estimate: Option<i64>, exact: Option<i64>| {
        estimate.map(latency_bucket) == exact.map(latency_bucket)
    };
    for group_by in [None, Some(GroupBy::Model), Some(GroupBy::Day)] {
        let exact = summary(&pool, &scope, group_by).await.unwrap();
        assert_eq!(exact.latency_percentiles, Percentiles::Exact);
        assert_eq!(exact.totals, expected(records.iter().filter(inside)));
        let estimated = summary_with(&pool, &scope, group_by, 0).await.unwrap();
        assert_eq!(estimated.latency_percentiles, Percentiles::Estimated);
        assert_eq!(additive(&estimated.totals), additive(&exact.totals));
        assert!(same_bucket(
            estimated.totals.latency_p50_ms,
            exact.totals.latency_p50_ms
        ));
        assert!(same_bucket(
            estimated.totals.latency_p95_ms,
            exact.totals.latency_p95_ms
        ));
        assert_eq!(estimated.groups.len(), exact.groups.len());
        for (estimate, exact) in estimated.groups.iter().zip(&exact.groups) {
            assert_eq!(estimate.key, exact.key);
            assert_eq!(additive(&estimate.stats), additive(&exact.stats));
            assert!(
                same_bucket(estimate.stats.latency_p95_ms, exact.stats.latency_p95_ms),
                "{group_by:?} {:?}: {:?} vs {:?}",
                exact.key,
                estimate.stats.latency_p95_ms,
                exact.stats.latency_p95_ms
            );
        }
    }
}
