//! Rolling windows over the agents' counters: the recent throughput and latency that
//! `/performance` shows, where `/metrics` leaves the arithmetic to Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::histogram::HistogramSnapshot;

/// One agent's counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct AgentSample {
    pub events_in: u64,
    pub events_out: u64,
    pub latency: HistogramSnapshot,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub agents: BTreeMap<String, AgentSample>,
}

/// What an agent did between two samples.
#[derive(Debug, Clone)]
pub struct AgentRates {
    pub seconds: f64,
    pub in_per_sec: f64,
    pub out_per_sec: f64,
    pub latency: HistogramSnapshot,
}

/// Samples of the last `keep` (plus one, so a full window can always be spanned).
#[derive(Debug)]
pub struct Window {
    keep: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

impl Window {
    pub fn new(keep: Duration) -> Self {
        Self {
            keep,
            samples: Mutex::default(),
        }
    }

    pub fn push(&self, s: Sample) {
        let mut g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let at = s.at;
        g.push_back(s);
        while g.len() > 2
            && g.get(1)
                .is_some_and(|x| at.duration_since(x.at) >= self.keep)
        {
            g.pop_front();
        }
    }

    /// Rates of every agent over (at most) the last `over`, from the oldest sample in
    /// that span to the newest; empty until two samples exist.
    pub fn rates(&self, over: Duration) -> BTreeMap<String, AgentRates> {
        let g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = g.back() else {
            return BTreeMap::new();
        };
        let Some(first) = g
            .iter()
            .find(|s| last.at.duration_since(s.at) <= over)
            .filter(|f| f.at < last.at)
        else {
            return BTreeMap::new();
        };
        let secs = last.at.duration_since(first.at).as_secs_f64();
        last.agents
            .iter()
            .map(|(name, now)| {
                let then = first.agents.get(name).cloned().unwrap_or_default();
                let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                (
                    name.clone(),
                    AgentRates {
                        seconds: secs,
                        in_per_sec: per_sec(now.events_in, then.events_in),
                        out_per_sec: per_sec(now.events_out, then.events_out),
                        latency: now.latency.since(&then.latency),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, events_in: u64) -> Sample {
        Sample {
            at,
            agents: [(
                "a".to_string(),
                AgentSample {
                    events_in,
                    ..AgentSample::default()
                },
            )]
            .into(),
        }
    }

    #[test]
    fn rates_span_the_window_and_old_samples_go() {
        let w = Window::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(w.rates(Duration::from_secs(10)).is_empty());
        for i in 0..=20u64 {
            w.push(sample(t0 + Duration::from_secs(i), i * 100));
        }
        let r = &w.rates(Duration::from_secs(10))["a"];
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.in_per_sec, 100.0);
        let short = &w.rates(Duration::from_secs(2))["a"];
        assert_eq!(short.seconds, 2.0);
        assert!(w.samples.lock().unwrap().len() <= 12);
    }

    #[test]
    fn one_sample_gives_no_rates() {
        let w = Window::new(Duration::from_secs(10));
        w.push(sample(Instant::now(), 5));
        assert!(w.rates(Duration::from_secs(10)).is_empty());
    }
}
