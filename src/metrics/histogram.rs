//! A latency histogram with fixed buckets, updated lock-free from any thread: cheap
//! enough to record every event, and what Prometheus' `histogram_quantile` expects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last, +Inf, is implicit): 100 µs to 30 s,
/// about three per decade, so that quantiles are estimated within a factor of ~2.5.
pub const BOUNDS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A copy of a histogram's counts, to subtract (a window) and to read quantiles from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum_secs: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_secs: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_secs: (self.sum_secs - earlier.sum_secs).max(0.0),
        }
    }

    /// Cumulative counts per upper bound (`f64::INFINITY` last), as Prometheus exposes them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                (BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), total)
            })
            .collect()
    }

    /// The `q` quantile (0..=1) in seconds, interpolated linearly inside its bucket the way
    /// `histogram_quantile` does; `None` without observations. Observations above the last
    /// bound are reported as that bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            let upto = below + n;
            if *n > 0 && upto as f64 >= rank {
                let Some(&hi) = BOUNDS.get(i) else {
                    return Some(BOUNDS[BOUNDS.len() - 1]);
                };
                let lo = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                let within = (rank - below as f64) / *n as f64;
                return Some(lo + (hi - lo) * within.clamp(0.0, 1.0));
            }
            below = upto;
        }
        Some(BOUNDS[BOUNDS.len() - 1])
    }

    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_secs / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_of_their_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // on a bound: that bucket (le="0.0001")
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[5], 1, "3 ms is in (2.5 ms, 5 ms]");
        assert_eq!(s.buckets[BOUNDS.len()], 1, "+Inf");
        let c = s.cumulative();
        assert_eq!(c.last(), Some(&(f64::INFINITY, 3)));
        assert!((s.sum_secs - 60.0031).abs() < 1e-9);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.observe(Duration::from_millis(7)); // (5 ms, 10 ms]
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 0.0075).abs() < 1e-9, "{p50}");
        assert!((s.quantile(1.0).unwrap() - 0.01).abs() < 1e-9);
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let h = Histogram::default();
        h.observe(Duration::from_secs(2));
        let before = h.snapshot();
        h.observe(Duration::from_micros(50));
        let w = h.snapshot().since(&before);
        assert_eq!(w.count(), 1);
        assert!(w.quantile(0.99).unwrap() <= 0.0001);
        assert!(w.since(&HistogramSnapshot::default()) == w);
    }
}
