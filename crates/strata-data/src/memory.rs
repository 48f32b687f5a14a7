//! How much memory this process may still claim, and a check that a planned allocation fits.
//!
//! Sizes that a file or a flag claims (an array's shape, a network's widths, a number of draws)
//! are checked against this budget *before* anything is allocated, so a hostile or mistaken
//! input gets one clear error instead of an out-of-memory abort minutes later. The budget is the
//! smaller of what the kernel says is available (`MemAvailable`) and what this process's address
//! space limit (`ulimit -v`, `setrlimit(RLIMIT_AS)`) still allows.

/// A planned allocation that would not fit in the memory this process may still claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs {} of memory but only {} is available", human_bytes(*.need), human_bytes(*.available))]
pub struct MemoryError {
    /// What would have been allocated, in the user's terms ("hidden widths [60000, 60000]").
    pub what: String,
    /// Bytes it needs.
    pub need: u64,
    /// Bytes this process may still claim.
    pub available: u64,
}

/// Bytes this process may still claim: the smaller of the kernel's `MemAvailable` and the room
/// left under the address-space limit. `None` where neither can be read (not Linux): callers
/// then skip the machine check and rely on their hard caps alone.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| field_kib(&s, "MemAvailable:"))
        .map(|kb| kb.saturating_mul(1024));
    let as_room = address_space_room();
    match (meminfo, as_room) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Room left under `RLIMIT_AS`, if one is set: the soft limit minus the current virtual size.
fn address_space_room() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return None;
    }
    let limit: u64 = soft.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = field_kib(&status, "VmSize:")?.saturating_mul(1024);
    Some(limit.saturating_sub(used))
}

fn field_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Refuse a planned allocation of `need` bytes that would not fit; `what` names it for the
/// message. Allows up to 90% of what is available (the rest is headroom for everything else).
pub fn check_fits(need: u64, what: impl Into<String>) -> Result<(), MemoryError> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    if need > available / 10 * 9 {
        return Err(MemoryError {
            what: what.into(),
            need,
            available,
        });
    }
    Ok(())
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_positive_and_refuses_an_exabyte() {
        let a = available_bytes().expect("Linux test machines expose /proc/meminfo");
        assert!(a > 0);
        let e = check_fits(u64::MAX / 2, "a test array").unwrap_err();
        assert!(e.available > 0 && e.need == u64::MAX / 2);
        let msg = e.to_string();
        assert!(
            msg.starts_with("a test array needs ") && msg.contains("EiB"),
            "{msg}"
        );
        check_fits(1024, "a kibibyte").unwrap();
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn reads_kib_fields() {
        let s = "MemTotal:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(field_kib(s, "MemAvailable:"), Some(2048));
        assert_eq!(field_kib(s, "Nope:"), None);
    }
}
