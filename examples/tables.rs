//! Tables of the example agents (see examples/agents.rs).

use cta_stream::register_table;

// Records per key, written by the `count_keys` agent.
register_table!(pub KeyCounts = "key_counts", String => u64);
// The same counts, held whole by every worker (a global table following the changelog).
register_table!(pub KeyCountsAll = "key_counts_all", String => u64);
// Times each job id was processed, written by the `jobs` agent when configured.
register_table!(pub JobsSeen = "jobs_seen", u64 => u64);
// Sentences' words counted by the `word_count` agent.
register_table!(pub WordCounts = "word_counts", String => u64);
// Records per value, written by the `count_values` agent (re-keyed with `group_by`).
register_table!(pub ValueCounts = "value_counts", String => u64);
// Records per key and time window (the window is a setting of the table), written by the
// `count_windows` agent.
register_table!(pub WindowCounts = "window_counts", String => u64);
