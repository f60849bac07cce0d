//! The worker process's own resource use, read from procfs (Linux); elsewhere unknown.

/// Resident set size in bytes (`VmRSS`), or `None` where procfs is missing.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, "VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes (`VmHWM`).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, "VmHWM:").map(|k| k * 1024)
}

fn parse_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_kib(s, "VmRSS:"), Some(1024));
        assert_eq!(parse_kib(s, "VmHWM:"), Some(2048));
        assert_eq!(parse_kib(s, "VmSwap:"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_a_resident_size() {
        assert!(resident_bytes().unwrap() > 1 << 20);
    }
}
