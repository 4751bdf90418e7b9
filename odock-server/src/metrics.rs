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
use odock_core::{UsageRecord, UsageSink, UsageSinkError};
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

/// A labelled family that creates its series on first use.
struct Family<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T: Default> Family<T> {
    fn new() -> Self {
        Self(RwLock::new(HashMap::new()))
    }

    fn get(&self, labels: &str) -> Arc<T> {
        if let Some(series) = self.0.read().get(labels) {
            return series.clone();
        }
        self.0.write().entry(labels.to_owned()).or_default().clone()
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

type GaugeFn = Box<dyn Fn() -> u64 + Send + Sync>;

pub struct Metrics {
    requests: Family<AtomicU64>,
    request_duration: Family<Histogram>,
    upstream_duration: Family<Histogram>,
    usage_records: Family<AtomicU64>,
    gauges: RwLock<Vec<(&'static str, &'static str, &'static str, GaugeFn)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::new(),
            request_duration: Family::new(),
            upstream_duration: Family::new(),
            usage_records: Family::new(),
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
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get(&format!("route=\"{route}\",status_class=\"{class}\""))
            .fetch_add(1, Ordering::Relaxed);
        self.request_duration
            .get(&format!("route=\"{route}\""))
            .observe(elapsed);
    }

    fn observe_usage(&self, record: &UsageRecord) {
        let provider = if record.provider.is_empty() {
            "none"
        } else {
            record.provider.as_str()
        };
        self.usage_records
            .get(&format!("provider=\"{provider}\""))
            .fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = record
            .metadata
            .get("upstreamLatencyMs")
            .and_then(|v| v.as_u64())
        {
            self.upstream_duration
                .get(&format!("provider=\"{provider}\""))
                .observe(Duration::from_millis(ms));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP odock_requests_total Gateway requests by route and status class.\n# TYPE odock_requests_total counter\n");
        for (labels, count) in self.requests.snapshot() {
            let _ = writeln!(
                out,
                "odock_requests_total{{{labels}}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP odock_request_duration_seconds Time to response headers, by route.\n# TYPE odock_request_duration_seconds histogram\n");
        for (labels, histogram) in self.request_duration.snapshot() {
            histogram.render(&mut out, "odock_request_duration_seconds", &labels);
        }
        out.push_str("# HELP odock_upstream_duration_seconds Upstream call duration (to the end of the response), by provider.\n# TYPE odock_upstream_duration_seconds histogram\n");
        for (labels, histogram) in self.upstream_duration.snapshot() {
            histogram.render(&mut out, "odock_upstream_duration_seconds", &labels);
        }
        out.push_str("# HELP odock_usage_records_total Usage records produced, by provider.\n# TYPE odock_usage_records_total counter\n");
        for (labels, count) in self.usage_records.snapshot() {
            let _ = writeln!(
                out,
                "odock_usage_records_total{{{labels}}} {}",
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

/// Axum middleware recording every request (route label = the matched route pattern).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(&route, response.status().as_u16(), started.elapsed());
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
