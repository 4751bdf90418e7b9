//! Prometheus metrics at `GET /metrics`: request counts by route and status class, request and
//! upstream latency histograms, usage records and queue depth, key-store cache hits.
//!
//! Counters are plain atomics behind a read-mostly map, so recording costs no allocation once a
//! route has been seen.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use odock_core::{
    BudgetAlerts, LogBudgetAlerts, ThresholdCrossing, UsageRecord, UsageSink, UsageSinkError,
};
use parking_lot::RwLock;

use crate::access_log::AccessLog;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Series keyed by one label value (a route, a provider), created on first use. A hit is a read
/// lock and a hash lookup by `&str`: no allocation on the request path.
struct Family<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T: Default> Family<T> {
    fn new() -> Self {
        Self(RwLock::new(HashMap::new()))
    }

    fn get(&self, label: &str) -> Arc<T> {
        if let Some(series) = self.0.read().get(label) {
            return series.clone();
        }
        self.0.write().entry(label.to_owned()).or_default().clone()
    }

    fn snapshot(&self) -> Vec<(String, Arc<T>)> {
        let mut all: Vec<_> = self
            .0
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The budget warning thresholds budgets may set (percent).
const THRESHOLDS: [u32; 4] = [50, 80, 90, 100];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Per route: requests by status class and the time to response headers.
#[derive(Default)]
struct RouteSeries {
    by_class: [AtomicU64; 5],
    duration: Histogram,
}

/// Per provider: usage records, upstream durations, errors, tokens, streams, cost.
#[derive(Default)]
struct ProviderSeries {
    records: AtomicU64,
    upstream: Histogram,
    /// Records whose upstream answered ≥ 500 or failed (`upstream_*` / `mcp_*` error codes).
    errors: AtomicU64,
    /// Tokens by [`TOKEN_CLASSES`].
    tokens: [AtomicU64; TOKEN_CLASSES.len()],
    streams: AtomicU64,
    stream_duration: Histogram,
    cost_nanos: AtomicU64,
}

/// Token classes of `odock_tokens_total{class}`.
const TOKEN_CLASSES: [&str; 5] = ["input", "output", "cached", "reasoning", "billable"];

/// Admission outcomes of `odock_admission_decisions_total{decision}`, read off usage records: a
/// request that reached the upstream was admitted; the others are the refusal's code.
const DECISIONS: [&str; 4] = [
    "admitted",
    "rate_limited",
    "quota_exceeded",
    "budget_exceeded",
];

/// Notification outcomes by channel kind.
const CHANNELS: [&str; 3] = ["webhook", "email", "deleted"];
const OUTCOMES: [&str; 3] = ["delivered", "retried", "failed"];
/// Alert events of `odock_alerts_raised_total{event}`.
const EVENTS: [&str; 5] = [
    "budget.threshold",
    "quota.threshold",
    "apikey.expiring",
    "provider.unhealthy",
    "notification.test",
];

/// Routing strategies of `odock_routing_decisions_total{strategy,rerouted}`.
const STRATEGIES: [&str; 4] = ["failover", "priority", "round_robin", "weighted"];
/// Upper bounds of `odock_routing_attempts` (attempts per routed request; at most 11).
const ATTEMPT_BOUNDS: [u64; 5] = [1, 2, 3, 5, 11];
/// Why a routed attempt failed, `odock_routing_attempt_failures_total{reason}`.
/// `model_rate_limit`: skipped by the candidate model's own rate limit (no upstream call).
const ATTEMPT_FAILURES: [&str; 6] = [
    "5xx",
    "timeout",
    "rate_limit",
    "circuit_open",
    "other",
    "model_rate_limit",
];

/// Routing facts read off usage records (low cardinality: no model or key labels).
#[derive(Default)]
struct RoutingSeries {
    /// By strategy, then `rerouted` (false, true).
    decisions: [[AtomicU64; 2]; STRATEGIES.len()],
    attempts: [AtomicU64; ATTEMPT_BOUNDS.len()],
    attempts_count: AtomicU64,
    attempts_sum: AtomicU64,
    failures: [AtomicU64; ATTEMPT_FAILURES.len()],
}

impl RoutingSeries {
    fn observe(&self, routing: &serde_json::Value) {
        let strategy = routing["strategy"].as_str().unwrap_or_default();
        let Some(s) = STRATEGIES.iter().position(|n| *n == strategy) else {
            return;
        };
        let rerouted = routing["rerouted"].as_bool().unwrap_or(false);
        self.decisions[s][usize::from(rerouted)].fetch_add(1, Ordering::Relaxed);
        let attempts = routing["attempts"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let n = attempts.len() as u64;
        for (bound, bucket) in ATTEMPT_BOUNDS.iter().zip(&self.attempts) {
            if n <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.attempts_count.fetch_add(1, Ordering::Relaxed);
        self.attempts_sum.fetch_add(n, Ordering::Relaxed);
        for attempt in attempts {
            if attempt["outcome"] == "success" {
                continue;
            }
            let status = attempt["status"].as_u64().unwrap_or(0);
            let error = attempt["error"].as_str().unwrap_or_default();
            let reason = if error == "circuit_open" {
                3
            } else if error == "model_rate_limited" {
                5
            } else if error == "upstream_timeout" {
                1
            } else if status == 429 {
                2
            } else if status >= 500 {
                0
            } else {
                4
            };
            self.failures[reason].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP odock_routing_decisions_total Routed requests by strategy and whether another candidate than the first answered.\n# TYPE odock_routing_decisions_total counter\n");
        for (strategy, by_rerouted) in STRATEGIES.iter().zip(&self.decisions) {
            for (rerouted, count) in ["false", "true"].iter().zip(by_rerouted) {
                let _ = writeln!(
                    out,
                    "odock_routing_decisions_total{{strategy=\"{strategy}\",rerouted=\"{rerouted}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP odock_routing_attempts Upstream attempts per routed request.\n# TYPE odock_routing_attempts histogram\n");
        for (bound, bucket) in ATTEMPT_BOUNDS.iter().zip(&self.attempts) {
            let _ = writeln!(
                out,
                "odock_routing_attempts_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.attempts_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "odock_routing_attempts_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "odock_routing_attempts_sum {}",
            self.attempts_sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "odock_routing_attempts_count {count}");
        out.push_str("# HELP odock_routing_attempt_failures_total Failed routed attempts by reason (5xx, timeout, rate_limit, circuit_open, model_rate_limit, other).\n# TYPE odock_routing_attempt_failures_total counter\n");
        for (reason, count) in ATTEMPT_FAILURES.iter().zip(&self.failures) {
            let _ = writeln!(
                out,
                "odock_routing_attempt_failures_total{{reason=\"{reason}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }
}

type GaugeFn = Box<dyn Fn() -> u64 + Send + Sync>;

/// The Prometheus registry: every counter and histogram served at `GET /metrics`.
pub struct Metrics {
    routes: Family<RouteSeries>,
    providers: Family<ProviderSeries>,
    /// Budget threshold crossings, by threshold (the percentages of [`THRESHOLDS`]).
    threshold_crossings: [AtomicU64; THRESHOLDS.len()],
    /// Quota threshold crossings, by [`odock_core::QUOTA_THRESHOLDS`].
    quota_crossings: [AtomicU64; odock_core::QUOTA_THRESHOLDS.len()],
    decisions: [AtomicU64; DECISIONS.len()],
    notifications: [[AtomicU64; OUTCOMES.len()]; CHANNELS.len()],
    alerts: [AtomicU64; EVENTS.len()],
    routing: RoutingSeries,
    started: std::time::SystemTime,
    gauges: RwLock<Vec<(&'static str, &'static str, &'static str, GaugeFn)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            routes: Family::new(),
            providers: Family::new(),
            threshold_crossings: Default::default(),
            quota_crossings: Default::default(),
            decisions: Default::default(),
            notifications: Default::default(),
            alerts: Default::default(),
            routing: RoutingSeries::default(),
            started: std::time::SystemTime::now(),
            gauges: RwLock::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// An empty registry, shared.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a value read at scrape time. `kind` is `gauge` or `counter`.
    pub fn register(
        &self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        read: GaugeFn,
    ) {
        self.gauges.write().push((name, kind, help, read));
    }

    /// Records a request: `route` pattern, response `status`, and time to the response head.
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        let series = self.routes.get(route);
        series.by_class[class].fetch_add(1, Ordering::Relaxed);
        series.duration.observe(elapsed);
    }

    fn observe_usage(&self, record: &UsageRecord) {
        let provider = if record.provider.is_empty() {
            "none"
        } else {
            record.provider.as_str()
        };
        let series = self.providers.get(provider);
        series.records.fetch_add(1, Ordering::Relaxed);
        let reached_upstream = record.metadata.upstream_latency_ms.is_some();
        if let Some(ms) = record.metadata.upstream_latency_ms {
            series.upstream.observe(Duration::from_millis(ms));
        }
        let code = record.error_code.as_deref().unwrap_or("");
        if reached_upstream
            && (record.http_status >= 500
                || code.starts_with("upstream_")
                || code.starts_with("mcp_"))
        {
            series.errors.fetch_add(1, Ordering::Relaxed);
        }
        let t = &record.tokens;
        for (slot, n) in series.tokens.iter().zip([
            t.input,
            t.output,
            t.cached_input,
            t.reasoning,
            record.billable_tokens,
        ]) {
            if n > 0 {
                slot.fetch_add(n, Ordering::Relaxed);
            }
        }
        if record.stream {
            series.streams.fetch_add(1, Ordering::Relaxed);
            series
                .stream_duration
                .observe(Duration::from_millis(record.latency_ms));
        }
        if record.cost_nanos_usd > 0 {
            series
                .cost_nanos
                .fetch_add(record.cost_nanos_usd as u64, Ordering::Relaxed);
        }
        let decision = match code {
            "rate_limit_exceeded" => Some(1),
            "quota_exceeded" => Some(2),
            "budget_exceeded" => Some(3),
            _ if reached_upstream => Some(0),
            _ => None,
        };
        if let Some(i) = decision {
            self.decisions[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(routing) = &record.routing {
            self.routing.observe(routing);
        }
    }

    /// Counts a budget or quota threshold crossing.
    pub fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        let (thresholds, counters): (&[u32], &[AtomicU64]) = match crossing.quota_metric {
            None => (&THRESHOLDS, &self.threshold_crossings),
            Some(_) => (&odock_core::QUOTA_THRESHOLDS, &self.quota_crossings),
        };
        if let Some(i) = thresholds.iter().position(|&t| t == crossing.threshold) {
            counters[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an alert stored for delivery.
    pub fn alert_raised(&self, event: &str) {
        if let Some(i) = EVENTS.iter().position(|&e| e == event) {
            self.alerts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one delivery attempt's outcome.
    pub fn notification(&self, channel: &str, outcome: &str) {
        let c = CHANNELS.iter().position(|&x| x == channel);
        let o = OUTCOMES.iter().position(|&x| x == outcome);
        if let (Some(c), Some(o)) = (c, o) {
            self.notifications[c][o].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let routes = self.routes.snapshot();
        let providers = self.providers.snapshot();
        out.push_str("# HELP odock_requests_total Gateway requests by route and status class.\n# TYPE odock_requests_total counter\n");
        for (route, series) in &routes {
            for (class, count) in STATUS_CLASSES.iter().zip(&series.by_class) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "odock_requests_total{{route=\"{route}\",status_class=\"{class}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP odock_request_duration_seconds Time to response headers, by route.\n# TYPE odock_request_duration_seconds histogram\n");
        for (route, series) in &routes {
            series.duration.render(
                &mut out,
                "odock_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP odock_upstream_duration_seconds Upstream call duration (to the end of the response), by provider.\n# TYPE odock_upstream_duration_seconds histogram\n");
        for (provider, series) in &providers {
            series.upstream.render(
                &mut out,
                "odock_upstream_duration_seconds",
                &format!("provider=\"{provider}\""),
            );
        }
        out.push_str("# HELP odock_usage_records_total Usage records produced, by provider.\n# TYPE odock_usage_records_total counter\n");
        for (provider, series) in &providers {
            let _ = writeln!(
                out,
                "odock_usage_records_total{{provider=\"{provider}\"}} {}",
                series.records.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_budget_threshold_crossings_total Budget windows whose spend crossed a warning threshold (percent of the amount).\n# TYPE odock_budget_threshold_crossings_total counter\n");
        for (threshold, count) in THRESHOLDS.iter().zip(&self.threshold_crossings) {
            let _ = writeln!(
                out,
                "odock_budget_threshold_crossings_total{{threshold=\"{threshold}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_quota_threshold_crossings_total Quota windows whose use crossed a warning threshold (percent of the limit).\n# TYPE odock_quota_threshold_crossings_total counter\n");
        for (threshold, count) in odock_core::QUOTA_THRESHOLDS
            .iter()
            .zip(&self.quota_crossings)
        {
            let _ = writeln!(
                out,
                "odock_quota_threshold_crossings_total{{threshold=\"{threshold}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        self.render_usage_families(&mut out, &providers);
        self.render_notifications(&mut out);
        self.routing.render(&mut out);
        render_process(&mut out, self.started);
        for (name, kind, help, read) in self.gauges.read().iter() {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                read()
            );
        }
        out
    }
}

impl Metrics {
    fn render_usage_families(&self, out: &mut String, providers: &[(String, Arc<ProviderSeries>)]) {
        out.push_str("# HELP odock_provider_errors_total Upstream calls that failed or answered 5xx, by provider.\n# TYPE odock_provider_errors_total counter\n");
        for (provider, series) in providers {
            let _ = writeln!(
                out,
                "odock_provider_errors_total{{provider=\"{provider}\"}} {}",
                series.errors.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_tokens_total Tokens by provider and class (input, output, cached, reasoning, billable).\n# TYPE odock_tokens_total counter\n");
        for (provider, series) in providers {
            for (class, count) in TOKEN_CLASSES.iter().zip(&series.tokens) {
                let _ = writeln!(
                    out,
                    "odock_tokens_total{{provider=\"{provider}\",class=\"{class}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP odock_cost_nanos_usd_total Cost charged, in nanos USD, by provider.\n# TYPE odock_cost_nanos_usd_total counter\n");
        for (provider, series) in providers {
            let _ = writeln!(
                out,
                "odock_cost_nanos_usd_total{{provider=\"{provider}\"}} {}",
                series.cost_nanos.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_stream_sessions_total Streamed responses, by provider.\n# TYPE odock_stream_sessions_total counter\n");
        for (provider, series) in providers {
            let _ = writeln!(
                out,
                "odock_stream_sessions_total{{provider=\"{provider}\"}} {}",
                series.streams.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_stream_duration_seconds Duration of streamed responses (to the last byte), by provider.\n# TYPE odock_stream_duration_seconds histogram\n");
        for (provider, series) in providers {
            series.stream_duration.render(
                out,
                "odock_stream_duration_seconds",
                &format!("provider=\"{provider}\""),
            );
        }
        out.push_str("# HELP odock_admission_decisions_total Governed requests by admission outcome (admitted, rate_limited, quota_exceeded, budget_exceeded).\n# TYPE odock_admission_decisions_total counter\n");
        for (decision, count) in DECISIONS.iter().zip(&self.decisions) {
            let _ = writeln!(
                out,
                "odock_admission_decisions_total{{decision=\"{decision}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }

    fn render_notifications(&self, out: &mut String) {
        out.push_str("# HELP odock_alerts_raised_total Alerts stored for delivery, by event.\n# TYPE odock_alerts_raised_total counter\n");
        for (event, count) in EVENTS.iter().zip(&self.alerts) {
            let _ = writeln!(
                out,
                "odock_alerts_raised_total{{event=\"{event}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_notifications_total Notification delivery attempts, by channel kind and outcome.\n# TYPE odock_notifications_total counter\n");
        for (channel, row) in CHANNELS.iter().zip(&self.notifications) {
            for (outcome, count) in OUTCOMES.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "odock_notifications_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
    }
}

/// Process metrics in the Prometheus client conventions (Linux `/proc`; elsewhere only the
/// start time and uptime).
fn render_process(out: &mut String, started: std::time::SystemTime) {
    let start = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let uptime = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since the epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}");
    let _ = writeln!(out, "# HELP odock_uptime_seconds Seconds since the server started.\n# TYPE odock_uptime_seconds gauge\nodock_uptime_seconds {uptime}");
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command (which may contain spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the command and
        // state; rss (pages) is field 24; threads field 20.
        let ticks = 100.0; // USER_HZ on Linux.
        let cpu = fields
            .get(11)
            .zip(fields.get(12))
            .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
            .map(|t| t / ticks);
        if let Some(cpu) = cpu {
            let _ = writeln!(out, "# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}");
        }
        if let Some(rss) = fields.get(21).and_then(|v| v.parse::<u64>().ok()) {
            let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", rss * 4096);
        }
        if let Some(threads) = fields.get(17).and_then(|v| v.parse::<u64>().ok()) {
            let _ = writeln!(out, "# HELP process_threads OS threads of the process.\n# TYPE process_threads gauge\nprocess_threads {threads}");
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
    }
}

/// Threshold crossings are counted by threshold and logged as warnings (the server itself uses
/// [`crate::notify::ServerAlerts`], which also raises the alert).
impl BudgetAlerts for Metrics {
    fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        Metrics::threshold_crossed(self, crossing);
        LogBudgetAlerts.threshold_crossed(crossing);
    }
}

/// What the metrics middleware needs: the registry and the access log.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// The registry requests are recorded in.
    pub metrics: Arc<Metrics>,
    /// Where the access lines of requests without a usage record go.
    pub access_log: AccessLog,
}

/// Axum middleware recording every request (route label = the matched route pattern), and writing
/// the access line of requests no usage record describes.
pub async fn track(State(tracked): State<Tracked>, request: Request, next: Next) -> Response {
    // `MatchedPath` holds an `Arc<str>`: cloning it avoids copying the route per request.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let access = tracked.access_log.enabled().then(|| {
        (
            request.method().clone(),
            request.extensions().get::<odock_core::RequestId>().cloned(),
        )
    });
    let started = Instant::now();
    let response = next.run(request).await;
    let label = route.as_ref().map_or("unmatched", |p| p.as_str());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    tracked.metrics.observe_request(label, status, elapsed);
    if let Some((method, request_id)) = access {
        if !crate::access_log::metered(label, status) {
            let id = request_id.as_ref().map_or("", |id| id.as_str());
            tracked
                .access_log
                .request(&method, label, status, id, elapsed);
        }
    }
    response
}

/// Wraps a usage sink to count records, observe upstream latency and tokens, and write the access
/// line of each governed request as its record passes.
pub struct ObservedUsageSink {
    inner: Arc<dyn UsageSink>,
    metrics: Arc<Metrics>,
    access_log: AccessLog,
}

impl ObservedUsageSink {
    /// Wraps `inner`, recording into `metrics` and `access_log`.
    pub fn new(inner: Arc<dyn UsageSink>, metrics: Arc<Metrics>, access_log: AccessLog) -> Self {
        Self {
            inner,
            metrics,
            access_log,
        }
    }
}

#[async_trait]
impl UsageSink for ObservedUsageSink {
    fn enqueue(&self, record: UsageRecord) {
        self.metrics.observe_usage(&record);
        self.access_log.record(&record);
        self.inner.enqueue(record);
    }

    fn enqueue_mcp(&self, record: UsageRecord, mcp: odock_core::McpUsageRecord) {
        self.metrics.observe_usage(&record);
        self.access_log.record(&record);
        self.inner.enqueue_mcp(record, mcp);
    }

    async fn flush(&self) -> Result<(), UsageSinkError> {
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::new();
        metrics.observe_request("/v1/chat/completions", 200, Duration::from_millis(3));
        metrics.observe_request("/v1/chat/completions", 401, Duration::from_micros(300));
        metrics.register(
            "odock_usage_queue_depth",
            "gauge",
            "Queued usage records.",
            Box::new(|| 7),
        );
        let text = metrics.render();
        assert!(text.contains(
            "odock_requests_total{route=\"/v1/chat/completions\",status_class=\"2xx\"} 1"
        ));
        assert!(text.contains(
            "odock_requests_total{route=\"/v1/chat/completions\",status_class=\"4xx\"} 1"
        ));
        assert!(text.contains(
            "odock_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=\"0.0005\"} 1"
        ));
        assert!(
            text.contains("odock_request_duration_seconds_count{route=\"/v1/chat/completions\"} 2")
        );
        assert!(text.contains("odock_usage_queue_depth 7"));
    }
}
