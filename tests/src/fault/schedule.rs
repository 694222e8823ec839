//! One chaos schedule end to end: a fresh federation, the workload and the
//! nemesis together for the plan's window, then heal (every link clean,
//! every disk freed, every process up), retry some unknown operations,
//! wait for convergence with a deadline, and check.
//!
//! A fresh federation per schedule costs a second or two, and buys what
//! matters: a schedule depends on its seed alone, so `--seed N` replays it,
//! and no schedule inherits another's backoff state or data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::checker::{Findings, check, converged};
use super::federation::{DiskMode, Federation, FederationOptions, NODES, SiteInfo};
use super::nemesis::{self, FIRST_NODE, Plan, PlanOptions};
use super::observe::{self, Holdings};
use super::workload::{History, Tally, Workload, WorkloadConfig};

/// How schedules run.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// How long the workload and the nemesis run.
    pub window: Duration,
    pub max_faults: usize,
    /// Longest wait for convergence after healing; past it the schedule
    /// fails.
    pub converge_deadline: Duration,
    pub workload: WorkloadConfig,
    /// Share of unknown operations retried after healing.
    pub retry_fraction: f64,
    pub disk: DiskMode,
    /// Keep the federation's directory even when the schedule passes.
    pub keep_dir: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            window: Duration::from_secs(4),
            max_faults: 5,
            converge_deadline: Duration::from_secs(90),
            workload: WorkloadConfig::default(),
            retry_fraction: 0.5,
            disk: DiskMode::probe(),
            keep_dir: false,
        }
    }
}

/// What one schedule did and what the checker found.
#[derive(Debug, Clone)]
pub struct ScheduleReport {
    pub seed: u64,
    /// The faults, as planned.
    pub faults: Vec<String>,
    /// Actions that could not run as planned (retried by the heal).
    pub notes: Vec<String>,
    pub tally: Tally,
    pub findings: Findings,
    /// From the end of the heal to convergence; `None` if the deadline
    /// passed (then `not_converged` says why).
    pub converged_in: Option<Duration>,
    pub not_converged: Option<String>,
    /// Times the check found only lost or diverged records and was made
    /// again after the federation converged once more (see
    /// [`Findings::only_unsettled`]).
    pub rechecks: u32,
    /// Wall time of the whole schedule.
    pub elapsed: Duration,
    /// Wall time of each phase (start, faults, heal, converge, check).
    pub phases: Vec<(&'static str, Duration)>,
    /// The federation's directory, kept when the schedule failed.
    pub kept_dir: Option<PathBuf>,
    /// Log tails of every site, when the schedule failed.
    pub logs: Vec<(String, String)>,
    /// When it did not converge: each link's proxy counters and journal,
    /// each site's link status, and the loopback sockets of the run.
    pub diagnostics: Vec<String>,
}

impl ScheduleReport {
    pub fn passed(&self) -> bool {
        self.findings.is_clean() && self.converged_in.is_some()
    }

    /// One line for the operator.
    pub fn summary(&self) -> String {
        let t = &self.tally;
        format!(
            "seed {} {} in {:.1}s ({}): {} ops, {} acked, {} unknown, {} refused; converged in {}{}; {} faults: {}",
            self.seed,
            if self.passed() { "ok" } else { "FAILED" },
            self.elapsed.as_secs_f64(),
            self.phases
                .iter()
                .map(|(p, d)| format!("{p} {:.1}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            t.attempted,
            t.acknowledged,
            t.unknown,
            t.failed,
            self.converged_in
                .map_or("never".into(), |d| format!("{:.2}s", d.as_secs_f64())),
            if self.rechecks > 0 {
                format!(" after {} recheck(s)", self.rechecks)
            } else {
                String::new()
            },
            self.faults.len(),
            self.faults.join("; ")
        )
    }
}

/// The command that replays the schedule of `seed` under `config` (the
/// plan depends on the window and the fault count as well as the seed).
pub fn replay_command(seed: u64, config: &ScheduleConfig) -> String {
    let default = ScheduleConfig::default();
    let mut out = format!("cargo run --release -p lapor-tests --bin chaos -- --seed {seed}");
    if config.window != default.window {
        out += &format!(" --window-ms {}", config.window.as_millis());
    }
    if config.max_faults != default.max_faults {
        out += &format!(" --max-faults {}", config.max_faults);
    }
    out
}

/// Runs the schedule of `seed`.
///
/// # Errors
/// The harness itself failed (a build, a spawn, a listing); faults the
/// federation does not survive are findings in the report, not errors.
pub async fn run_schedule(seed: u64, config: &ScheduleConfig) -> anyhow::Result<ScheduleReport> {
    let plan = nemesis::plan(
        seed,
        &PlanOptions {
            window: config.window,
            max_faults: config.max_faults,
            disk: config.disk == DiskMode::Available,
        },
    );
    run_plan(&plan, config).await
}

/// Runs `plan` (its window overrides `config.window`); the workload's
/// choices are seeded with the plan's seed.
///
/// # Errors
/// As [`run_schedule`].
pub async fn run_plan(plan: &Plan, config: &ScheduleConfig) -> anyhow::Result<ScheduleReport> {
    let started = Instant::now();
    let seed = plan.seed;
    if plan.disk_site().is_some() && config.disk != DiskMode::Available {
        anyhow::bail!("the plan fills a disk, but {:?}", config.disk);
    }
    let mut fed = Federation::start(&FederationOptions {
        disk_node: plan.disk_site().map(|s| NODES[s - FIRST_NODE]),
        keep_dir: config.keep_dir,
    })
    .await
    .context("start the federation")?;
    let mut phases = vec![("start", started.elapsed())];
    let mut mark = Instant::now();
    let mut phase = |name: &'static str| {
        phases.push((name, mark.elapsed()));
        mark = Instant::now();
    };
    let workload = Workload::new(&fed.infos(), config.workload.clone())?;
    let stop = CancellationToken::new();
    let ((), notes) = tokio::join!(workload.run(seed, stop.clone()), async {
        let notes = nemesis::execute(plan, &mut fed).await;
        stop.cancel();
        notes
    });
    phase("faults");
    let mut report = ScheduleReport {
        seed,
        faults: plan.describe(),
        notes,
        tally: Tally::default(),
        findings: Findings::default(),
        converged_in: None,
        not_converged: None,
        rechecks: 0,
        elapsed: Duration::ZERO,
        phases: Vec::new(),
        kept_dir: None,
        logs: Vec::new(),
        diagnostics: Vec::new(),
    };
    if let Err(e) = fed.heal().await {
        report.tally = workload.history().tally();
        report
            .findings
            .integrity
            .push(format!("a site did not come back after healing: {e:#}"));
        return Ok(finish(report, fed, started));
    }
    phase("heal");
    let healed = Instant::now();
    workload.retry_unknown(seed, config.retry_fraction).await;
    let history = workload.history();
    report.tally = history.tally();
    let deadline = healed + config.converge_deadline;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_for_convergence(&fed, &history, left).await {
            Ok(()) => report.converged_in = Some(healed.elapsed()),
            Err(why) => {
                report.converged_in = None;
                report.not_converged = Some(why);
                report.diagnostics = diagnose(&fed).await;
            }
        }
        let views = observe::views(&fed).await.context("observe the sites")?;
        report.findings = check(&history, &views);
        if report.converged_in.is_some()
            && report.findings.only_unsettled()
            && Instant::now() < deadline
        {
            report.rechecks += 1;
            continue;
        }
        break;
    }
    phase("converge");
    report.phases = phases;
    Ok(finish(report, fed, started))
}

fn finish(mut report: ScheduleReport, mut fed: Federation, started: Instant) -> ScheduleReport {
    if !report.passed() {
        report.logs = (0..fed.len())
            .map(|i| (fed.info(i).code.to_owned(), fed.log_tail(i)))
            .collect();
        report.kept_dir = Some(fed.keep_dir());
    }
    drop(fed);
    report.elapsed = started.elapsed();
    report
}

/// Polls every site's listing until [`converged`] holds or `deadline`
/// passes.
///
/// # Errors
/// The deadline passed; the error is the last reason it had not converged.
pub async fn wait_for_convergence(
    fed: &Federation,
    history: &History,
    deadline: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut why = String::from("not polled yet");
    loop {
        let mut tiers: Vec<(SiteInfo, Holdings)> = Vec::new();
        for info in fed.infos() {
            match observe::holdings(info.addr).await {
                Ok(h) => tiers.push((info, h)),
                Err(e) => {
                    why = format!("{}: {e:#}", info.code);
                    break;
                }
            }
        }
        if tiers.len() == fed.len() {
            match converged(history, &tiers) {
                Ok(()) => return Ok(()),
                Err(w) => why = w,
            }
        }
        if started.elapsed() >= deadline {
            return Err(format!("not converged after {deadline:?}: {why}"));
        }
        // A polling interval, not a wait for a condition.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// What the links and sites look like when a schedule did not converge.
pub async fn diagnose(fed: &Federation) -> Vec<String> {
    let mut out = Vec::new();
    let mut ports = Vec::new();
    for site in 0..fed.len() {
        let info = fed.info(site);
        ports.push(info.addr.port());
        match fed.status(site).await {
            Ok(status) => out.push(format!("{} link: {}", info.code, status["upstream"])),
            Err(e) => out.push(format!("{} status failed: {e:#}", info.code)),
        }
        if let Some(proxy) = fed.uplink(site) {
            ports.push(proxy.addr().port());
            out.push(format!(
                "{} proxy {} -> {}: {:?}, {} open",
                info.code,
                proxy.addr(),
                proxy.target(),
                proxy.counters(),
                proxy.open_connections()
            ));
            let journal = proxy.journal();
            let skip = journal.len().saturating_sub(40);
            out.extend(journal.into_iter().skip(skip).map(|l| format!("  {l}")));
        }
    }
    if let Ok(ss) = tokio::process::Command::new("ss")
        .args(["-tnpo"])
        .output()
        .await
    {
        let text = String::from_utf8_lossy(&ss.stdout);
        out.extend(
            text.lines()
                .filter(|l| ports.iter().any(|p| l.contains(&format!(":{p} "))))
                .map(|l| format!("socket {l}")),
        );
    }
    out
}
