//! Process-wide memory tuning, applied before any thread starts.
//!
//! glibc's malloc gives threads their own arenas (up to 8 per core), and each arena keeps
//! freed memory for itself. A worker runs dozens of threads — librdkafka's for every
//! client and broker, tokio's, RocksDB's — so most of its resident memory was arenas'
//! slack: the full CTA app measured 275 MB resident with the default, 168 MB with two
//! arenas, at the same throughput (docs/benchmarks.md).

/// Arenas when `MALLOC_ARENA_MAX` does not say otherwise.
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless the environment set
/// `MALLOC_ARENA_MAX` (glibc reads that itself). Elsewhere (musl, macOS) nothing to do.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
