//! How much memory this process may still claim, and a check that a planned allocation fits.
//!
//! Sizes that a file or a flag claims (an array's shape, a network's widths, a number of draws)
//! are checked against this budget *before* anything is allocated, so a hostile or mistaken
//! input gets one clear error instead of an out-of-memory abort minutes later. The budget is the
//! smallest of what the kernel says is available (`MemAvailable`), what this process's address
//! space limit (`ulimit -v`, `setrlimit(RLIMIT_AS)`) still allows, and the room left under its
//! control group's memory limit (a container's or a batch job's).

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
    [meminfo, address_space_room(), cgroup_room()]
        .into_iter()
        .flatten()
        .min()
}

/// Room left under this process's control-group memory limit (containers, SLURM, systemd
/// slices), which neither `MemAvailable` nor `RLIMIT_AS` shows: over it the kernel kills the
/// process without a word. The tightest limit on the way from its group up to the root counts.
fn cgroup_room() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_room_in(&groups, &|p| std::fs::read_to_string(p).ok())
}

/// [`cgroup_room`] over a `/proc/self/cgroup` text and a file reader (tests give their own).
fn cgroup_room_in(groups: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let num = |p: String| read(&p).and_then(|t| t.trim().parse::<u64>().ok());
    let mut best: Option<u64> = None;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (root, limit, usage) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let mut dir = path.trim_end_matches('/').to_string();
        loop {
            let base = format!("{root}{dir}");
            // "max" (v2) does not parse, and v1's "no limit" is a huge number: both no limit.
            if let Some(lim) = num(format!("{base}/{limit}")).filter(|&l| l < 1 << 60) {
                let used = num(format!("{base}/{usage}")).unwrap_or(0);
                let room = lim.saturating_sub(used);
                best = Some(best.map_or(room, |b| b.min(room)));
            }
            match dir.rfind('/') {
                Some(i) if !dir.is_empty() => dir.truncate(i),
                _ => break,
            }
        }
    }
    best
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
    fn cgroup_limits_v2_and_v1_tightest_ancestor_counts() {
        let files: std::collections::HashMap<&str, &str> = [
            ("/sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("/sys/fs/cgroup/a/b/memory.current", "100\n"),
            ("/sys/fs/cgroup/a/memory.max", "4096\n"),
            ("/sys/fs/cgroup/a/memory.current", "1000\n"),
            (
                "/sys/fs/cgroup/memory/job/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "5000\n"),
            ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "4000\n"),
        ]
        .into_iter()
        .collect();
        let read = |p: &str| files.get(p).map(|s| s.to_string());
        assert_eq!(cgroup_room_in("0::/a/b\n", &read), Some(3096));
        assert_eq!(cgroup_room_in("4:memory:/job\n", &read), Some(1000));
        assert_eq!(cgroup_room_in("0::/\n", &read), None);
        assert_eq!(cgroup_room_in("3:cpu:/x\n", &read), None);
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
