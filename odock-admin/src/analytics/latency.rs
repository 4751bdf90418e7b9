//! Latency percentiles: exact nearest-rank values from a per-latency histogram of the records, or
//! estimates from the rollups' bucketed histogram when a report covers too many records to count
//! each latency.

use odock_store::usage_rollups::{latency_bucket, LATENCY_BOUNDS_MS, LATENCY_BUCKETS};

/// A bucketed latency histogram (buckets of [`LATENCY_BOUNDS_MS`]) and the largest latency seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Buckets {
    pub counts: [i64; LATENCY_BUCKETS],
    pub max_ms: i64,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            counts: [0; LATENCY_BUCKETS],
            max_ms: 0,
        }
    }
}

impl Buckets {
    /// Counts `count` records of latency `latency_ms`.
    pub fn record(&mut self, latency_ms: i64, count: i64) {
        self.counts[latency_bucket(latency_ms)] += count;
        self.max_ms = self.max_ms.max(latency_ms);
    }

    pub fn add(&mut self, other: &Buckets) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The `p`th percentile, estimated: the bucket holding the nearest-rank record is exact
    /// (so the estimate is never further off than that bucket's width, ≤ ~30 %), and the value
    /// is interpolated linearly inside it — the way Prometheus' `histogram_quantile` does — and
    /// never above the largest latency seen.
    pub fn percentile(&self, p: i64) -> Option<i64> {
        let n: i64 = self.counts.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (n * p + 99) / 100;
        let mut before = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            if count == 0 || before + count < rank {
                before += count;
                continue;
            }
            let lower = match index {
                0 => LATENCY_BOUNDS_MS[0],
                _ => LATENCY_BOUNDS_MS[index - 1],
            };
            let upper = LATENCY_BOUNDS_MS
                .get(index)
                .copied()
                .unwrap_or(self.max_ms)
                .min(self.max_ms);
            let within = rank - before;
            let span = (upper - lower).max(0);
            let value = lower + (span * within + count - 1) / count;
            return Some(value.min(upper));
        }
        Some(self.max_ms)
    }
}

/// The nearest-rank `p`th percentile of a histogram of `(latency, count)` sorted by latency: the
/// latency of the record at rank `ceil(p · n / 100)`.
pub(crate) fn exact_percentile(histogram: &[(i64, i64)], p: i64) -> Option<i64> {
    let n: i64 = histogram.iter().map(|(_, count)| count).sum();
    if n == 0 {
        return None;
    }
    let rank = (n * p + 99) / 100;
    let mut seen = 0;
    for (latency, count) in histogram {
        seen += count;
        if seen >= rank {
            return Some(*latency);
        }
    }
    histogram.last().map(|(latency, _)| *latency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearest_rank(sorted: &[i64], p: usize) -> i64 {
        sorted[(sorted.len() * p).div_ceil(100) - 1]
    }

    /// The estimate lands in the same bucket as the exact nearest-rank latency, for many shapes.
    #[test]
    fn estimates_fall_in_the_exact_values_bucket() {
        let shapes: [&dyn Fn(i64) -> i64; 4] = [
            &|i| i % 97,
            &|i| (i * 7919) % 5_000,
            &|i| 20 + (i * i) % 1_300,
            &|i| if i % 10 == 0 { 90_000 + i } else { 150 },
        ];
        for shape in shapes {
            for n in [1_i64, 2, 7, 100, 1_001] {
                let mut latencies: Vec<i64> = (0..n).map(shape).collect();
                latencies.sort_unstable();
                let mut buckets = Buckets::default();
                for &latency in &latencies {
                    buckets.record(latency, 1);
                }
                for p in [50, 95, 99] {
                    let exact = nearest_rank(&latencies, p as usize);
                    let estimate = buckets.percentile(p).unwrap();
                    assert_eq!(
                        latency_bucket(estimate),
                        latency_bucket(exact),
                        "n={n} p{p}: exact {exact}, estimate {estimate}"
                    );
                    assert!(estimate <= *latencies.last().unwrap());
                }
            }
        }
        assert_eq!(Buckets::default().percentile(50), None);
    }

    #[test]
    fn exact_buckets_below_eight_ms_give_exact_values() {
        let mut buckets = Buckets::default();
        for latency in [0, 1, 2, 3, 4, 5, 6, 7] {
            buckets.record(latency, 1);
        }
        assert_eq!(buckets.percentile(50), Some(3));
        assert_eq!(buckets.percentile(100), Some(7));
    }
}
