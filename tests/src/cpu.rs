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
    /// Minor page faults of the process so far: memory it touched for the
    /// first time (or again after giving it back).
    pub minor_faults: u64,
    /// Transparent huge pages the kernel has faulted in so far, machine-wide
    /// (`/proc/vmstat`'s `thp_fault_alloc`: no per-process count exists),
    /// each 2 MiB cleared; meaningful while the benchmark runs alone.
    pub huge_faults: u64,
    /// The whole machine's CPU time so far (`/proc/stat`), every process
    /// and the kernel's own threads (writeback among them) included.
    pub machine: MachineTicks,
}

/// `/proc/stat`'s summary line, in ticks, folded into what a phase's
/// report needs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineTicks {
    /// user, nice, system, irq and softirq (guest time is inside user).
    pub busy: u64,
    /// idle and iowait: a CPU with nothing to run.
    pub idle: u64,
    /// Time the hypervisor gave this machine's CPUs to someone else.
    pub steal: u64,
    /// The CPUs `/proc/stat` lists.
    pub cpus: usize,
}

impl MachineTicks {
    /// Parses `/proc/stat`; `None` without its summary line.
    fn parse(stat: &str) -> Option<MachineTicks> {
        let mut lines = stat.lines();
        let summary = lines.next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = summary
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let cpus = lines
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(MachineTicks {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3) + at(4),
            steal: at(7),
            cpus,
        })
    }

    fn now() -> MachineTicks {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| MachineTicks::parse(&s))
            .unwrap_or_default()
    }

    /// How many of the machine's CPUs were busy, idle and stolen, on
    /// average, between `earlier` and `self`; `None` if nothing was counted.
    fn cores_since(&self, earlier: &MachineTicks) -> Option<MachineCores> {
        let busy = self.busy.checked_sub(earlier.busy)? as f64;
        let idle = self.idle.checked_sub(earlier.idle)? as f64;
        let steal = self.steal.checked_sub(earlier.steal)? as f64;
        let all = busy + idle + steal;
        if all == 0.0 || self.cpus == 0 {
            return None;
        }
        let cores = |t: f64| t / all * self.cpus as f64;
        Some(MachineCores {
            busy: cores(busy),
            stolen: cores(steal),
            cpus: self.cpus,
        })
    }
}

/// The machine's CPUs over a phase, as average counts of cores: whether a
/// phase was short of CPU (nothing idle), of something else (idle cores),
/// or of a hypervisor's share (stolen).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineCores {
    pub busy: f64,
    pub stolen: f64,
    pub cpus: usize,
}

impl MachineCores {
    /// Cores with nothing to run: what neither work nor the hypervisor took.
    pub fn idle(&self) -> f64 {
        self.cpus as f64 - self.busy - self.stolen
    }
}

/// Ticks per second of `/proc`'s utime and stime (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The fields of a `stat` line after the command name, which is in
/// parentheses and may hold spaces: field 3 of the line (state) is the first.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// utime + stime from a `stat` line, in seconds (fields 14 and 15).
fn stat_cpu_s(stat: &str) -> Option<f64> {
    let fields = stat_fields(stat)?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// minflt from a `stat` line (field 10).
fn stat_minor_faults(stat: &str) -> Option<u64> {
    stat_fields(stat)?.get(7)?.parse().ok()
}

/// A counter of `/proc/vmstat`, 0 if missing.
fn vmstat(name: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|all| {
            all.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

impl CpuSnapshot {
    pub fn now() -> CpuSnapshot {
        let mut snap = CpuSnapshot {
            machine: MachineTicks::now(),
            ..CpuSnapshot::default()
        };
        let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok() else {
            return snap;
        };
        let Some(total) = stat_cpu_s(&stat) else {
            return snap;
        };
        snap.total_s = total;
        snap.minor_faults = stat_minor_faults(&stat).unwrap_or(0);
        snap.huge_faults = vmstat("thp_fault_alloc");
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
        let per_item = |n: u64| n as f64 / items.max(1) as f64;
        CpuPerItem {
            total_us: total_s * scale,
            by_thread,
            minor_faults: per_item(self.minor_faults.saturating_sub(earlier.minor_faults)),
            huge_faults: per_item(self.huge_faults.saturating_sub(earlier.huge_faults)),
            machine: self.machine.cores_since(&earlier.machine),
        }
    }
}

/// CPU per item of a phase: the whole process, and per thread name (what
/// no named thread accounts for, threads that ended, is "other").
#[derive(Debug, Clone, Default)]
pub struct CpuPerItem {
    pub total_us: f64,
    pub by_thread: Vec<(String, f64)>,
    /// Minor page faults per item.
    pub minor_faults: f64,
    /// Huge pages faulted in per item (machine-wide, see [`CpuSnapshot`]).
    pub huge_faults: f64,
    /// The whole machine's CPUs over the phase (`None` without `/proc/stat`).
    pub machine: Option<MachineCores>,
}

impl CpuPerItem {
    /// KiB of memory touched fresh per item: a 4 KiB page per minor fault,
    /// 2 MiB per huge page (which the kernel also counts as one minor
    /// fault of the process).
    pub fn fresh_kib(&self) -> f64 {
        (self.minor_faults - self.huge_faults).max(0.0) * 4.0 + self.huge_faults * 2048.0
    }
}

impl std::fmt::Display for CpuPerItem {
    /// `21.3 µs CPU (tokio-runtime-w 9.8, lapor-store-wri 9.1, …); 1.0 KiB
    /// fresh memory; machine 1.92 of 2 cores busy, 0.00 stolen`; without
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
        write!(
            f,
            "{:.1} µs CPU ({}); {:.1} KiB fresh memory",
            self.total_us,
            parts.join(", "),
            self.fresh_kib()
        )?;
        if let Some(m) = &self.machine {
            write!(
                f,
                "; machine {:.2} of {} cores busy, {:.2} stolen",
                m.busy, m.cpus, m.stolen
            )?;
        }
        Ok(())
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
        assert_eq!(stat_minor_faults(line), Some(7));
    }

    #[test]
    fn fresh_memory_counts_a_huge_page_as_two_mib_not_as_a_small_fault() {
        let phase = CpuPerItem {
            minor_faults: 3.0,
            huge_faults: 1.0,
            ..CpuPerItem::default()
        };
        assert_eq!(phase.fresh_kib(), 2.0 * 4.0 + 2048.0);
    }

    const PROC_STAT: &str = "cpu  700 10 200 1000 50 5 15 20 0 0\n\
        cpu0 350 5 100 500 25 3 7 10 0 0\n\
        cpu1 350 5 100 500 25 2 8 10 0 0\n\
        intr 12345 0 0\n\
        ctxt 999\n";

    #[test]
    fn the_machines_summary_line_is_folded_into_busy_idle_and_stolen() {
        let ticks = MachineTicks::parse(PROC_STAT).expect("summary line");
        assert_eq!(
            ticks,
            MachineTicks {
                busy: 700 + 10 + 200 + 5 + 15,
                idle: 1000 + 50,
                steal: 20,
                cpus: 2,
            }
        );
        assert_eq!(MachineTicks::parse("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_phase_reports_the_cores_busy_idle_and_stolen_out_of_all() {
        let before = MachineTicks {
            busy: 1000,
            idle: 500,
            steal: 0,
            cpus: 2,
        };
        // 100 ticks in all over the phase: 75 busy, 20 idle, 5 stolen.
        let after = MachineTicks {
            busy: 1075,
            idle: 520,
            steal: 5,
            cpus: 2,
        };
        let cores = after.cores_since(&before).expect("ticks passed");
        assert!((cores.busy - 1.5).abs() < 1e-9, "{cores:?}");
        assert!((cores.idle() - 0.4).abs() < 1e-9, "{cores:?}");
        assert!((cores.stolen - 0.1).abs() < 1e-9, "{cores:?}");
        // No ticks, or a counter that went back: nothing to report.
        assert_eq!(after.cores_since(&after), None);
        assert_eq!(before.cores_since(&after), None);
        let phase = CpuPerItem {
            total_us: 2.0,
            by_thread: vec![("w".into(), 2.0)],
            machine: Some(cores),
            ..CpuPerItem::default()
        };
        assert!(
            phase
                .to_string()
                .ends_with("; machine 1.50 of 2 cores busy, 0.10 stolen"),
            "{phase}"
        );
    }

    #[test]
    fn cpu_spent_on_this_thread_is_reported_under_its_name() {
        let before = CpuSnapshot::now();
        // The name the kernel keeps for this thread (the test harness's
        // name for it, cut to 15 bytes, or the binary's on the main thread).
        let Some(me) = std::fs::read_to_string("/proc/thread-self/comm")
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|_| !before.by_thread.is_empty())
        else {
            return; // not Linux: nothing to measure
        };
        let mine = |snap: &CpuSnapshot| snap.by_thread.get(&me).copied().unwrap_or(0.0);
        // Spin until the kernel has counted 50 ms of CPU for this thread (a
        // condition with a deadline, not a timing assumption). Other tests
        // run beside it in this process, so the process's total is no
        // measure of this thread's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while mine(&CpuSnapshot::now()) - mine(&before) < 0.05 {
            assert!(std::time::Instant::now() < deadline, "no CPU counted");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let parts = CpuSnapshot::now().per_item_us(&before, 1);
        let reported = parts
            .by_thread
            .iter()
            .find(|(name, _)| *name == me)
            .map(|(_, us)| *us);
        assert!(reported.is_some_and(|us| us >= 50_000.0), "{parts:?}");
        assert!(reported.is_some_and(|us| parts.total_us >= us), "{parts:?}");
        assert!(
            parts
                .to_string()
                .starts_with(&format!("{:.1} µs CPU (", parts.total_us))
        );
    }
}
