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

/// Per provider: usage records and upstream durations.
#[derive(Default)]
struct ProviderSeries {
    records: AtomicU64,
    upstream: Histogram,
}

type GaugeFn = Box<dyn Fn() -> u64 + Send + Sync>;

pub struct Metrics {
    routes: Family<RouteSeries>,
    providers: Family<ProviderSeries>,
    /// Budget threshold crossings, by threshold (the percentages of [`THRESHOLDS`]).
    threshold_crossings: [AtomicU64; THRESHOLDS.len()],
    gauges: RwLock<Vec<(&'static str, &'static str, &'static str, GaugeFn)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            routes: Family::new(),
            providers: Family::new(),
            threshold_crossings: Default::default(),
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
        if let Some(ms) = record.metadata.upstream_latency_ms {
            series.upstream.observe(Duration::from_millis(ms));
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

/// Threshold crossings are counted by threshold and logged as warnings.
impl BudgetAlerts for Metrics {
    fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        if let Some(i) = THRESHOLDS.iter().position(|&t| t == crossing.threshold) {
            self.threshold_crossings[i].fetch_add(1, Ordering::Relaxed);
        }
        LogBudgetAlerts.threshold_crossed(crossing);
    }
}

/// Axum middleware recording every request (route label = the matched route pattern).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    // `MatchedPath` holds an `Arc<str>`: cloning it avoids copying the route per request.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let label = route.as_ref().map_or("unmatched", |p| p.as_str());
    metrics.observe_request(label, response.status().as_u16(), started.elapsed());
    response
}

/// Wraps a usage sink to count records and observe upstream latency as they pass.
pub struct ObservedUsageSink {
    inner: Arc<dyn UsageSink>,
    metrics: Arc<Metrics>,
}

impl ObservedUsageSink {
    pub fn new(inner: Arc<dyn UsageSink>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl UsageSink for ObservedUsageSink {
    fn enqueue(&self, record: UsageRecord) {
        self.metrics.observe_usage(&record);
        self.inner.enqueue(record);
    }

    fn enqueue_mcp(&self, record: UsageRecord, mcp: odock_core::McpUsageRecord) {
        self.metrics.observe_usage(&record);
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
