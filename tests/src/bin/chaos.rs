//! `chaos`: seeded fault schedules against a real federation (national,
//! Aceh, three districts; every link through a fault proxy), checked with
//! Jepsen's set semantics — see `docs/reliability.md`.
//!
//! ```text
//! cargo run --release -p lapor-tests --bin chaos -- --schedules 1000
//! cargo run --release -p lapor-tests --bin chaos -- --seed 17      # replay one
//! cargo run --release -p lapor-tests --bin chaos -- --slow-link
//! ```
//!
//! One line per schedule goes to stderr; a failure prints its findings, the
//! kept directory, log tails and the command that replays its seed. The
//! last line on stdout is one JSON object. Exit status 1 when anything
//! failed.
//!
//! Run as root, it first re-executes itself under `unshare -m` (a private
//! mount namespace) so the disk-full fault can mount a tmpfs on a node's
//! data directory without touching the host's mounts; otherwise that fault
//! is skipped and the reason printed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt as _;
use lapor_tests::fault::federation::{DiskMode, PRIVATE_MOUNTS_ENV, is_root};
use lapor_tests::fault::schedule::{ScheduleConfig, ScheduleReport, replay_command, run_schedule};
use lapor_tests::fault::slowlink::{self, SlowLinkConfig};
use lapor_tests::fault::workload::Tally;

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Fault-injection schedules against a local federation"
)]
struct Args {
    /// How many schedules to run (seeds first-seed, first-seed + 1, ...).
    #[arg(long, default_value_t = 20)]
    schedules: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Replay this one seed only.
    #[arg(long)]
    seed: Option<u64>,
    /// How long the workload and the faults run in each schedule, ms.
    #[arg(long, default_value_t = 4_000)]
    window_ms: u64,
    /// Most faults in one schedule (at least 2 are drawn).
    #[arg(long, default_value_t = 5)]
    max_faults: usize,
    /// Longest wait for convergence after healing, seconds.
    #[arg(long, default_value_t = 90)]
    converge_deadline_s: u64,
    /// Stop starting schedules after this many seconds (the JSON line
    /// counts the schedules that ran).
    #[arg(long)]
    time_limit_s: Option<u64>,
    /// Run the slow-link scenario instead of schedules.
    #[arg(long)]
    slow_link: bool,
    /// Backlog complaints for the slow-link scenario.
    #[arg(long, default_value_t = 420)]
    backlog: usize,
    /// Keep every federation's directory (failed ones are always kept).
    #[arg(long)]
    keep: bool,
    /// Schedules run at once, each on its own federation (more than one
    /// shortens a long run; timings are then noisier).
    #[arg(long, visible_alias = "jobs", default_value_t = 1)]
    parallel: usize,
    /// Do not enter a private mount namespace (disk-full faults skipped).
    #[arg(long)]
    no_namespace: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.no_namespace
        && is_root()
        && std::env::var_os(PRIVATE_MOUNTS_ENV).is_none()
        && let Some(code) = reexec_in_private_namespace()
    {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let work = async {
            if args.slow_link {
                slow_link(&args).await
            } else {
                schedules(&args).await
            }
        };
        // On SIGINT or SIGTERM the work is dropped, and with it every
        // federation: its processes are killed and its mounts undone.
        tokio::select! {
            code = work => code,
            signal = interrupted() => {
                eprintln!("chaos: {signal}; stopping");
                ExitCode::from(130)
            }
        }
    })
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        // Without a SIGTERM handler, still stop on Ctrl-C.
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

/// Replaces this process with itself under `unshare -m --propagation
/// private` (same pid, so signals reach the run directly); returns only
/// when `unshare` cannot make a namespace here, and the caller goes on
/// without disk-full faults.
fn reexec_in_private_namespace() -> Option<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let unshare = || {
        let mut c = std::process::Command::new("unshare");
        c.args(["-m", "--propagation", "private", "--"]);
        c
    };
    let usable = unshare()
        .arg("true")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("chaos: `unshare -m` is not usable here; going on without disk-full faults");
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let err = unshare()
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(PRIVATE_MOUNTS_ENV, "1")
        .exec();
    eprintln!("chaos: could not run under unshare ({err}); going on without disk-full faults");
    None
}

async fn schedules(args: &Args) -> ExitCode {
    let config = ScheduleConfig {
        window: Duration::from_millis(args.window_ms),
        max_faults: args.max_faults,
        converge_deadline: Duration::from_secs(args.converge_deadline_s),
        keep_dir: args.keep,
        ..ScheduleConfig::default()
    };
    if let DiskMode::Skipped(why) = &config.disk {
        eprintln!("chaos: {why}");
    }
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed + args.schedules).collect(),
    };
    let started = Instant::now();
    let limit = args.time_limit_s.map(Duration::from_secs);
    let config = &config;
    let mut runs = futures::stream::iter(seeds)
        .map(|seed| async move {
            if limit.is_some_and(|l| started.elapsed() >= l) {
                return None;
            }
            Some((seed, run_schedule(seed, config).await))
        })
        .buffer_unordered(args.parallel.max(1));
    let mut totals = Totals::default();
    let mut skipped = 0u64;
    while let Some(run) = runs.next().await {
        match run {
            None => skipped += 1,
            Some((_, Ok(report))) => {
                eprintln!("{}", report.summary());
                if !report.passed() {
                    print_failure(&report, config);
                }
                totals.add(&report);
            }
            Some((seed, Err(e))) => {
                eprintln!("seed {seed} HARNESS ERROR: {e:#}");
                eprintln!("  replay: {}", replay_command(seed, config));
                totals.schedules += 1;
                totals.harness_errors += 1;
                totals.failed_seeds.push(seed);
            }
        }
    }
    if skipped > 0 {
        eprintln!("chaos: time limit reached; {skipped} schedules not run");
    }
    let line = totals.line(&config.disk, started.elapsed());
    match serde_json::to_string(&line) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("chaos: could not serialise the summary: {e}"),
    }
    if totals.failed_seeds.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("chaos: failed seeds {:?}", totals.failed_seeds);
        ExitCode::FAILURE
    }
}

fn print_failure(report: &ScheduleReport, config: &ScheduleConfig) {
    eprintln!("--- seed {} FAILED ---", report.seed);
    for f in &report.faults {
        eprintln!("  fault {f}");
    }
    for n in &report.notes {
        eprintln!("  note {n}");
    }
    if let Some(why) = &report.not_converged {
        eprintln!("  {why}");
    }
    for line in report.findings.lines().iter().take(40) {
        eprintln!("  {line}");
    }
    for line in &report.diagnostics {
        eprintln!("  {line}");
    }
    if let Some(dir) = &report.kept_dir {
        eprintln!("  kept {}", dir.display());
    }
    for (site, log) in &report.logs {
        eprintln!("  --- log of {site} (tail) ---\n{log}");
    }
    eprintln!("  replay: {}", replay_command(report.seed, config));
}

/// Sums over schedules.
#[derive(Debug, Default)]
struct Totals {
    schedules: u64,
    tally: Tally,
    lost: u64,
    unexpected: u64,
    duplicated: u64,
    diverged: u64,
    integrity_failures: u64,
    anomalies: u64,
    not_converged: u64,
    rechecks: u64,
    harness_errors: u64,
    converge_s: Vec<f64>,
    failed_seeds: Vec<u64>,
}

impl Totals {
    fn add(&mut self, r: &ScheduleReport) {
        self.schedules += 1;
        self.tally.attempted += r.tally.attempted;
        self.tally.acknowledged += r.tally.acknowledged;
        self.tally.unknown += r.tally.unknown;
        self.tally.failed += r.tally.failed;
        self.lost += r.findings.lost.len() as u64;
        self.unexpected += r.findings.unexpected.len() as u64;
        self.duplicated += r.findings.duplicated.len() as u64;
        self.diverged += r.findings.diverged.len() as u64;
        self.integrity_failures += r.findings.integrity.len() as u64;
        self.anomalies += r.findings.anomalies.len() as u64;
        self.rechecks += u64::from(r.rechecks);
        match r.converged_in {
            Some(d) => self.converge_s.push(d.as_secs_f64()),
            None => self.not_converged += 1,
        }
        if !r.passed() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn line(&self, disk: &DiskMode, elapsed: Duration) -> ChaosLine {
        let mut sorted = self.converge_s.clone();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = |p: f64| {
            let i = ((p * sorted.len() as f64).ceil() as usize).saturating_sub(1);
            sorted.get(i).copied().unwrap_or(0.0)
        };
        let round = |x: f64| (x * 100.0).round() / 100.0;
        ChaosLine {
            bench: "chaos",
            schedules: self.schedules,
            acknowledged: self.tally.acknowledged,
            lost: self.lost,
            duplicated: self.duplicated,
            diverged: self.diverged,
            integrity_failures: self.integrity_failures,
            p99_converge_s: round(rank(0.99)),
            p50_converge_s: round(rank(0.50)),
            max_converge_s: round(sorted.last().copied().unwrap_or(0.0)),
            attempted: self.tally.attempted,
            unknown: self.tally.unknown,
            refused: self.tally.failed,
            unexpected: self.unexpected,
            anomalies: self.anomalies,
            not_converged: self.not_converged,
            rechecks: self.rechecks,
            harness_errors: self.harness_errors,
            failed_seeds: {
                let mut seeds = self.failed_seeds.clone();
                seeds.sort_unstable();
                seeds
            },
            disk_full: match disk {
                DiskMode::Available => "ran",
                DiskMode::Skipped(_) => "skipped",
            },
            elapsed_s: round(elapsed.as_secs_f64()),
        }
    }
}

/// The last line: the issue's keys first, in its order, then the rest.
#[derive(Debug, serde::Serialize)]
struct ChaosLine {
    bench: &'static str,
    schedules: u64,
    acknowledged: u64,
    lost: u64,
    duplicated: u64,
    diverged: u64,
    integrity_failures: u64,
    p99_converge_s: f64,
    p50_converge_s: f64,
    max_converge_s: f64,
    attempted: u64,
    unknown: u64,
    refused: u64,
    unexpected: u64,
    anomalies: u64,
    not_converged: u64,
    rechecks: u64,
    harness_errors: u64,
    failed_seeds: Vec<u64>,
    disk_full: &'static str,
    elapsed_s: f64,
}

async fn slow_link(args: &Args) -> ExitCode {
    let config = SlowLinkConfig {
        complaints: args.backlog,
        ..SlowLinkConfig::default()
    };
    let report = match slowlink::run(&config).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("slow link: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for f in &report.findings {
        eprintln!("  {f}");
    }
    let mut json = serde_json::to_value(&report).unwrap_or_default();
    json["bench"] = "slow_link".into();
    json["passed"] = report.passed().into();
    // What the cut cost on the wire: the same backlog without live
    // traffic, once with the cut and once without; the difference is the
    // bytes sent again (and the reconnect's own Hello).
    match cut_cost(&config).await {
        Ok((with_cut, without_cut)) => {
            json["cut_cost"] = serde_json::json!({
                "bytes_up_with_cut": with_cut,
                "bytes_up_without_cut": without_cut,
                "resent_bytes_up": with_cut.saturating_sub(without_cut),
            });
        }
        Err(e) => eprintln!("slow link: measuring the cut's cost failed: {e:#}"),
    }
    println!("{json}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Bytes up for the backlog alone, with the cut and without it.
async fn cut_cost(config: &SlowLinkConfig) -> anyhow::Result<(u64, u64)> {
    let mut bytes = Vec::new();
    for cut in [true, false] {
        let quiet = SlowLinkConfig {
            cut,
            live: false,
            ..config.clone()
        };
        let report = slowlink::run(&quiet).await?;
        eprintln!(
            "slow link without live traffic, {}: {} bytes up in {:.1}s, {} received twice{}",
            if cut { "cut mid-batch" } else { "no cut" },
            report.bytes_up,
            report.drain_s,
            report.received_duplicates,
            if report.passed() { "" } else { " (FAILED)" }
        );
        anyhow::ensure!(report.passed(), "{:?}", report.findings);
        bytes.push(report.bytes_up);
    }
    Ok((bytes[0], bytes[1]))
}
