//! CPU time of this process by thread kind, from `/proc` (Linux): what a
//! benchmark phase cost, which wall time on a shared or virtual machine
//! measures only noisily. Elsewhere the snapshot is empty and reports say so.

use std::collections::BTreeMap;

/// CPU seconds used so far: the whole process, and per thread name (as the
/// kernel keeps it: the first 15 bytes).
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub total_s: f64,
    pub by_thread: BTreeMap<String, f64>,
}

/// Ticks per second of `/proc`'s utime and stime (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime from a `stat` line, in seconds. The command name is in
/// parentheses and may hold spaces, so fields are counted after its `)`.
fn stat_cpu_s(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

impl CpuSnapshot {
    pub fn now() -> CpuSnapshot {
        let mut snap = CpuSnapshot::default();
        let Some(total) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(stat_cpu_s)
        else {
            return snap;
        };
        snap.total_s = total;
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return snap;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let (Ok(name), Ok(stat)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("stat")),
            ) else {
                continue;
            };
            if let Some(s) = stat_cpu_s(&stat) {
                *snap.by_thread.entry(name.trim().to_string()).or_default() += s;
            }
        }
        snap
    }

    /// CPU used between `earlier` and `self`, in microseconds per `items`.
    pub fn per_item_us(&self, earlier: &CpuSnapshot, items: usize) -> CpuPerItem {
        let scale = 1e6 / items.max(1) as f64;
        let total_s = self.total_s - earlier.total_s;
        let mut by_thread = Vec::new();
        let mut named = 0.0;
        for (name, s) in &self.by_thread {
            let used = s - earlier.by_thread.get(name).copied().unwrap_or(0.0);
            if used > 0.0 {
                named += used;
                by_thread.push((name.clone(), used * scale));
            }
        }
        if total_s - named > 0.0 {
            by_thread.push(("other".to_string(), (total_s - named) * scale));
        }
        CpuPerItem {
            total_us: total_s * scale,
            by_thread,
        }
    }
}

/// CPU per item of a phase: the whole process, and per thread name (what
/// no named thread accounts for, threads that ended, is "other").
#[derive(Debug, Clone, Default)]
pub struct CpuPerItem {
    pub total_us: f64,
    pub by_thread: Vec<(String, f64)>,
}

impl std::fmt::Display for CpuPerItem {
    /// `21.3 µs CPU (tokio-runtime-w 9.8, lapor-store-wri 9.1, …)`; without
    /// `/proc`, says it was not measured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.by_thread.is_empty() && self.total_us == 0.0 {
            return f.write_str("CPU not measured (no /proc)");
        }
        let parts: Vec<String> = self
            .by_thread
            .iter()
            .map(|(n, us)| format!("{n} {us:.1}"))
            .collect();
        write!(f, "{:.1} µs CPU ({})", self.total_us, parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_gives_utime_plus_stime() {
        let line = "4242 (tokio runtime w) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(stat_cpu_s(line), Some(3.0));
        assert_eq!(stat_cpu_s("garbage"), None);
    }

    #[test]
    fn cpu_spent_on_this_thread_is_reported_under_its_name() {
        let before = CpuSnapshot::now();
        if before.by_thread.is_empty() {
            return; // not Linux: nothing to measure
        }
        // Spin until the kernel has counted 50 ms of CPU for us (a
        // condition with a deadline, not a timing assumption).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while CpuSnapshot::now().total_s - before.total_s < 0.05 {
            assert!(std::time::Instant::now() < deadline, "no CPU counted");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let parts = CpuSnapshot::now().per_item_us(&before, 1);
        assert!(parts.total_us >= 50_000.0, "{parts:?}");
        let me = std::thread::current()
            .name()
            .map(|n| n.chars().take(15).collect::<String>());
        assert!(
            parts
                .by_thread
                .iter()
                .any(|(name, us)| Some(name) == me.as_ref() && *us >= 30_000.0),
            "{parts:?}"
        );
        assert!(
            parts
                .to_string()
                .starts_with(&format!("{:.1} µs CPU (", parts.total_us))
        );
    }
}
