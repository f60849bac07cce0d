//! The app's agents under the test driver: the shipped `settings.toml` with only the
//! agents under test enabled, in memory (topics, tables, schema registry), on a paused
//! clock. The agents' own tests use it.

use std::path::Path;

use cta_stream::testing::TestDriver;

use super::records::{EventKey, SimTick};

/// A driver running `agents` of `settings.toml` (the others disabled).
pub async fn start(agents: &[&str]) -> TestDriver {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
    let mut settings = cta_stream::settings::load(&path).expect("settings.toml loads");
    for (name, a) in settings.agents.iter_mut() {
        a.enabled = agents.contains(&name.as_str());
    }
    TestDriver::builder(settings)
        .registered_agents()
        .start()
        .await
        .expect("the driver starts")
}

pub const CLOCK: &str = "org.chicago.cta.simulation.clock";

/// Step `step` of a clock starting at `start_ms` with 5-minute steps, emitted now.
pub fn tick(step: u64, start_ms: i64) -> SimTick {
    SimTick {
        step,
        sim_time_ms: start_ms + step as i64 * 300_000,
        step_ms: 300_000,
        emitted_ms: chrono::Utc::now().timestamp_millis(),
    }
}

/// Sends clock ticks `steps` and settles.
pub async fn run_clock(t: &mut TestDriver, start_ms: i64, steps: std::ops::Range<u64>) {
    for n in steps {
        t.send(CLOCK, Some("clock"), &tick(n, start_ms))
            .await
            .unwrap();
        t.settle().await.unwrap();
    }
}

/// An event key at `ms`.
pub fn key_at(ms: i64) -> EventKey {
    EventKey { timestamp: ms }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::agents::cta::records::StationCount;
    use crate::tables::cta::{Trains, TurnstileCounts, TurnstileSummary};

    /// The app as `settings.toml` registers it — clock, trains, turnstiles, their
    /// summary, train positions, station transform, and the weather station posting to
    /// the REST Proxy the driver serves — in memory for half a simulated hour.
    #[tokio::test]
    async fn the_whole_app_runs_in_memory() {
        let mut t = super::start(&[
            "cta_clock",
            "cta_trains",
            "cta_turnstiles",
            "cta_turnstile_summary",
            "cta_train_positions",
            "cta_station_transform",
            "cta_weather",
        ])
        .await;
        t.advance(Duration::from_millis(30_010)).await.unwrap();
        assert_eq!(t.records(super::CLOCK).len(), 6);
        let trains = t.table::<Trains>().await.unwrap();
        assert_eq!(trains.len(), 30, "ten trains on each of three lines");
        let entries = t.records("org.chicago.cta.turnstile.v1").len() as i64;
        let counted: i64 = t
            .table::<TurnstileCounts>()
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, entries, "every entry counted once");
        let summary: Vec<(String, StationCount)> = t.table::<TurnstileSummary>().await.unwrap();
        assert_eq!(summary.iter().map(|(_, c)| c.COUNT).sum::<i64>(), entries);
        assert!(
            !t.records("org.chicago.cta.weather.v1").is_empty(),
            "midnight's reading"
        );
        for a in [
            "cta_trains",
            "cta_turnstiles",
            "cta_turnstile_summary",
            "cta_train_positions",
            "cta_weather",
        ] {
            let s = t.status(a).unwrap();
            assert_eq!((s.restarts, s.dead_lettered), (0, 0), "{a}");
        }
    }
}
