//! `GET /metrics`: the worker's counters and gauges in Prometheus' text format (0.0.4),
//! for a scraper; `/health` stays the view for people.

use std::fmt::Write as _;

use crate::app::AppShared;

/// One metric family: its help, type and samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

/// A label value escaped as the text format wants (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

pub fn render(s: &AppShared) -> String {
    let mut families = Vec::new();
    let agent_counter =
        |name, help, get: fn(&crate::agent::status::StatusSnapshot) -> u64| Family {
            name,
            help,
            kind: "counter",
            samples: s
                .agents
                .iter()
                .map(|(a, st)| (labels(&[("agent", a)]), get(&st.snapshot()) as f64))
                .collect(),
        };
    families.push(agent_counter(
        "cta_stream_agent_events_in_total",
        "Events handed to the agent.",
        |x| x.events_in,
    ));
    families.push(agent_counter(
        "cta_stream_agent_events_out_total",
        "Records the agent produced.",
        |x| x.events_out,
    ));
    families.push(agent_counter(
        "cta_stream_agent_skipped_total",
        "Events skipped by the skip policy.",
        |x| x.skipped,
    ));
    families.push(agent_counter(
        "cta_stream_agent_filtered_total",
        "Events the agent left out on purpose.",
        |x| x.filtered,
    ));
    families.push(agent_counter(
        "cta_stream_agent_dead_lettered_total",
        "Events written to the dead-letter topic.",
        |x| x.dead_lettered,
    ));
    families.push(agent_counter(
        "cta_stream_agent_failures_total",
        "Errors and panics of the agent.",
        |x| x.failures,
    ));
    families.push(agent_counter(
        "cta_stream_agent_restarts_total",
        "Restarts after a failure.",
        |x| x.restarts,
    ));
    families.push(agent_counter(
        "cta_stream_agent_rewinds_total",
        "Partitions rewound to reprocess an event.",
        |x| x.rewinds,
    ));
    families.push(agent_counter(
        "cta_stream_agent_delivery_errors_total",
        "Produced records the broker refused.",
        |x| x.delivery_errors,
    ));
    families.push(Family {
        name: "cta_stream_agent_healthy",
        help: "1 while the agent runs (or is disabled), 0 while it is failing or stopped.",
        kind: "gauge",
        samples: s
            .agents
            .iter()
            .map(|(a, st)| {
                (
                    labels(&[("agent", a)]),
                    f64::from(u8::from(st.is_healthy())),
                )
            })
            .collect(),
    });
    families.push(Family {
        name: "cta_stream_producer_in_flight",
        help: "Records handed to the producer and not yet acknowledged.",
        kind: "gauge",
        samples: vec![(String::new(), f64::from(s.producer.in_flight()))],
    });
    let broker = s.broker.snapshot();
    families.push(Family {
        name: "cta_stream_broker_reachable",
        help: "1 when the last probe of the broker succeeded.",
        kind: "gauge",
        samples: vec![(
            labels(&[("bootstrap", &broker.bootstrap)]),
            f64::from(u8::from(broker.reachable)),
        )],
    });
    let mut keys = Vec::new();
    let mut recovered = Vec::new();
    let mut to_recover = Vec::new();
    for t in s.tables.all() {
        for part in t.held() {
            let p = if part.partition < 0 {
                "global".to_string()
            } else {
                part.partition.to_string()
            };
            let l = labels(&[("table", &t.name), ("partition", &p)]);
            let estimate = part.store().map(|st| st.estimated_keys()).unwrap_or(0);
            keys.push((l.clone(), estimate as f64));
            let progress = part.progress();
            recovered.push((l.clone(), progress.records as f64));
            to_recover.push((
                l,
                (progress.end_offset - progress.from_offset).max(0) as f64,
            ));
        }
    }
    families.push(Family {
        name: "cta_stream_table_keys",
        help: "Keys in a table partition held here (RocksDB's estimate).",
        kind: "gauge",
        samples: keys,
    });
    families.push(Family {
        name: "cta_stream_table_recovery_records",
        help: "Changelog records read by the last recovery of a table partition.",
        kind: "gauge",
        samples: recovered,
    });
    families.push(Family {
        name: "cta_stream_table_recovery_records_to_do",
        help: "Changelog records the last recovery of a table partition had to read.",
        kind: "gauge",
        samples: to_recover,
    });
    families.push(Family {
        name: "cta_stream_uptime_seconds",
        help: "Seconds since the worker started.",
        kind: "gauge",
        samples: vec![(String::new(), s.started.elapsed().as_secs_f64())],
    });

    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (l, v) in f.samples {
            let _ = writeln!(out, "{}{l} {v}", f.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("a", "x"), ("b", "q\"\\\n")]),
            r#"{a="x",b="q\"\\\n"}"#
        );
    }
}
