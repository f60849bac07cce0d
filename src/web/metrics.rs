//! `GET /metrics`: the worker's counters and gauges in Prometheus' text format (0.0.4),
//! for a scraper; `/health` stays the view for people.

use std::fmt::Write as _;

use crate::worker::WorkerState;

/// One metric family: its help, type and samples (what follows the name — a suffix such
/// as `_bucket` and the labels —, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

/// Formats a bucket bound the way Prometheus clients do (`0.005`, `1.0`, `+Inf`).
fn le(bound: f64) -> String {
    if bound.is_infinite() {
        "+Inf".into()
    } else if bound.fract() == 0.0 {
        format!("{bound:.1}")
    } else {
        format!("{bound}")
    }
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

pub fn render(s: &WorkerState) -> String {
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
        name: "cta_stream_agent_leader",
        help: "An on_leader timer agent: 1 while this worker is the app's leader (its timer fires here), else 0.",
        kind: "gauge",
        samples: s
            .agents
            .iter()
            .filter_map(|(a, st)| {
                let l = st.leadership()?;
                Some((labels(&[("agent", a)]), f64::from(u8::from(l.leader))))
            })
            .collect(),
    });
    families.push(agent_counter(
        "cta_stream_agent_commits_total",
        "Offset commits sent to the broker (at-least-once; under exactly-once offsets go with the transactions).",
        |x| x.commits,
    ));
    families.push(agent_counter(
        "cta_stream_agent_commit_failures_total",
        "Offset commits that failed.",
        |x| x.commit_failures,
    ));
    families.push(agent_counter(
        "cta_stream_agent_partition_assignments_total",
        "Rebalances that assigned partitions to the agent.",
        |x| x.assignments,
    ));
    families.push(agent_counter(
        "cta_stream_agent_partition_revocations_total",
        "Rebalances that took partitions from the agent.",
        |x| x.revocations,
    ));
    let mut latency = Vec::new();
    for (a, st) in &s.agents {
        let h = st.latency.snapshot();
        for (bound, n) in h.cumulative() {
            latency.push((
                format!("_bucket{}", labels(&[("agent", a), ("le", &le(bound))])),
                n as f64,
            ));
        }
        latency.push((format!("_sum{}", labels(&[("agent", a)])), h.sum_secs));
        latency.push((
            format!("_count{}", labels(&[("agent", a)])),
            h.count() as f64,
        ));
    }
    families.push(Family {
        name: "cta_stream_agent_processing_seconds",
        help: "Time from the consumer handing an event to the agent to its ack (processed, produced records delivered).",
        kind: "histogram",
        samples: latency,
    });
    let mut lag = Vec::new();
    let mut ends = Vec::new();
    let mut committed = Vec::new();
    for (a, st) in &s.agents {
        for l in st.lag() {
            let p = l.partition.to_string();
            let lbl = labels(&[("agent", a), ("topic", &l.topic), ("partition", &p)]);
            lag.push((lbl.clone(), l.lag as f64));
            ends.push((lbl.clone(), l.end_offset as f64));
            if l.committed_offset >= 0 {
                committed.push((lbl, l.committed_offset as f64));
            }
        }
    }
    families.push(Family {
        name: "cta_stream_consumer_lag",
        help: "Events of a source partition not yet processed by the agent (end offset minus acked position).",
        kind: "gauge",
        samples: lag,
    });
    families.push(Family {
        name: "cta_stream_consumer_end_offset",
        help: "End offset of a source partition (last stable offset under exactly-once).",
        kind: "gauge",
        samples: ends,
    });
    families.push(Family {
        name: "cta_stream_consumer_committed_offset",
        help: "Offset of a source partition the broker confirmed as committed by the agent's consumer (at-least-once).",
        kind: "gauge",
        samples: committed,
    });
    if let Some(t) = &s.transactions {
        use std::sync::atomic::Ordering::Relaxed;
        families.push(Family {
            name: "cta_stream_transactions_committed_total",
            help: "Transactions committed (exactly-once).",
            kind: "counter",
            samples: vec![(String::new(), t.committed.load(Relaxed) as f64)],
        });
        families.push(Family {
            name: "cta_stream_transactions_aborted_total",
            help: "Transactions aborted (exactly-once).",
            kind: "counter",
            samples: vec![(String::new(), t.aborted.load(Relaxed) as f64)],
        });
    }
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
            let estimate = part
                .store()
                .map(|st| st.stats().estimated_keys)
                .unwrap_or(0);
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
    let mem = s.tables.memory();
    families.push(Family {
        name: "cta_stream_rocksdb_memory_bytes",
        help: "RocksDB memory: the shared block cache (memtables are charged to it), its memtables, and SST readers outside it.",
        kind: "gauge",
        samples: vec![
            (labels(&[("kind", "block_cache")]), mem.cache_bytes as f64),
            (labels(&[("kind", "block_cache_pinned")]), mem.cache_pinned_bytes as f64),
            (labels(&[("kind", "memtables")]), mem.memtable_bytes as f64),
            (labels(&[("kind", "table_readers")]), mem.table_reader_bytes as f64),
        ],
    });
    families.push(Family {
        name: "cta_stream_rocksdb_block_cache_capacity_bytes",
        help: "Capacity of the shared block cache (store.block_cache_mb).",
        kind: "gauge",
        samples: vec![(String::new(), mem.cache_capacity_bytes as f64)],
    });
    if let Some(rss) = crate::metrics::process::resident_bytes() {
        families.push(Family {
            name: "process_resident_memory_bytes",
            help: "Resident memory size in bytes.",
            kind: "gauge",
            samples: vec![(String::new(), rss as f64)],
        });
    }
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
    fn bucket_bounds_are_formatted_as_prometheus_clients_do() {
        assert_eq!(le(0.005), "0.005");
        assert_eq!(le(1.0), "1.0");
        assert_eq!(le(f64::INFINITY), "+Inf");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("a", "x"), ("b", "q\"\\\n")]),
            r#"{a="x",b="q\"\\\n"}"#
        );
    }
}
