//! The README's first command: a whole local federation on loopback.
//!
//! `cargo run -p lapor-tests --bin demo [-- --data-dir DIR --per-node N --keep-running]`
//!
//! Starts, as real processes on ports chosen at runtime, the national hub
//! (00), the Aceh provincial hub (11) forwarding to national, and three
//! district nodes pushing to the Aceh hub — Gayo Lues (11.13), Aceh Tengah
//! (11.04), Kota Banda Aceh (11.71) — each with its own SQLite database
//! under a fresh data directory. It submits sample complaints (synthetic
//! reporters) at every node, waits (bounded) until national holds them
//! all, reports what each tier holds and each node's link, and ends with
//! `demo: N submitted, N at national`. It exits non-zero when national has
//! not caught up by the deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::get_complaint_request::Key;
use lapor_tests::site::{
    SiteProcess, init_hub, init_hub_with_upstream, init_node_with_upstream, status_json,
};
use lapor_tests::{Binary, wait_until};

/// Start a local lapor-sync federation, submit sample complaints, and show
/// them reaching the national hub.
#[derive(Debug, Parser)]
struct Args {
    /// Where the sites' configs and databases go (must not exist yet or be
    /// empty); default: a fresh directory under the system temp dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Sample complaints to submit at each district node.
    #[arg(long, default_value_t = 5)]
    per_node: u64,
    /// Keep the federation running after the report, until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
}

/// The districts of the demo, with their names for the report.
const NODES: &[(&str, &str)] = &[
    ("11.13", "Kabupaten Gayo Lues"),
    ("11.04", "Kabupaten Aceh Tengah"),
    ("11.71", "Kota Banda Aceh"),
];

/// How long national may take to hold every submitted complaint. On
/// loopback it takes well under a second; the bound only catches a
/// federation that does not replicate.
const REPLICATION_DEADLINE: Duration = Duration::from_secs(60);

/// How long a site may take to stop after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A running district node of the demo.
struct DemoNode {
    code: &'static str,
    config: PathBuf,
    site: SiteProcess,
    /// Tracking numbers minted at this node, in submission order.
    tracking: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_dir = prepare_data_dir(args.data_dir)?;
    println!("demo: data directory {}", data_dir.display());

    println!("demo: building and starting the sites (first run compiles the binaries)");
    let national_config = init_hub(&data_dir, "national", "00").await?;
    let national = SiteProcess::start(Binary::Hub, &national_config).await?;
    println!("  national hub 00                  {}", national.endpoint());
    let province_config =
        init_hub_with_upstream(&data_dir, "province", "11", Some(&national.endpoint())).await?;
    let province = SiteProcess::start(Binary::Hub, &province_config).await?;
    println!(
        "  Aceh hub 11                      {}  -> national",
        province.endpoint()
    );
    let mut nodes = Vec::new();
    for (code, name) in NODES {
        let config = init_node_with_upstream(&data_dir, code, Some(&province.endpoint())).await?;
        let site = SiteProcess::start(Binary::Node, &config).await?;
        println!("  node {code} {name:<22}  {}  -> Aceh hub", site.endpoint());
        nodes.push(DemoNode {
            code,
            config,
            site,
            tracking: Vec::new(),
        });
    }

    println!(
        "demo: submitting {} sample complaints at each node",
        args.per_node
    );
    let started = Instant::now();
    let mut submitted = 0u64;
    for node in &mut nodes {
        let mut intake = node.site.intake().await?;
        for n in 0..args.per_node {
            let id = uuid::Uuid::now_v7().to_string();
            // Distinct samples per district: offset the sample number.
            let sample = n + submitted * 1_000;
            let resp = intake
                .submit(lapor_tests::submit_request(node.code, sample, &id))
                .await
                .with_context(|| format!("submit a sample complaint at {}", node.code))?
                .into_inner();
            node.tracking.push(resp.tracking_number);
        }
        submitted += args.per_node;
        println!("  {}: {}", node.code, node.tracking.join(" "));
    }

    let caught_up = wait_until(
        REPLICATION_DEADLINE,
        &format!("{submitted} complaints at national"),
        || async { Ok((national.count().await? == submitted).then_some(())) },
    )
    .await;
    if caught_up.is_ok() {
        println!(
            "demo: national holds all {submitted} after {} ms",
            started.elapsed().as_millis()
        );
    }

    println!("demo: complaints held at each site");
    for node in &nodes {
        println!("  node {:<8}     {}", node.code, node.site.count().await?);
    }
    println!("  Aceh hub 11       {}", province.count().await?);
    let at_national = national.count().await?;
    println!("  national 00       {at_national}");

    if let Err(e) = caught_up {
        println!("demo: {submitted} submitted, {at_national} at national");
        bail!(
            "national did not catch up: {e:#}\n--- Aceh hub log ---\n{}\n--- national log ---\n{}",
            province.log_tail(),
            national.log_tail()
        );
    }

    println!("demo: the same complaint at its node and at national");
    for node in nodes.iter().take(2) {
        if let Some(tracking) = node.tracking.first() {
            let here = get(&node.site, tracking).await?;
            let there = get(&national, tracking).await?;
            let title = there.intake.as_ref().map_or("", |i| i.title.as_str());
            let same = if here.digest == there.digest {
                "same state digest"
            } else {
                "DIFFERENT state digest"
            };
            println!("  {tracking}  \"{title}\"  ({same})");
        }
    }

    println!("demo: each node's link to the Aceh hub");
    for node in &nodes {
        let upstream = node_upstream(&node.config).await?;
        println!(
            "  node {}: parent {}, acked seq {}, queued {}",
            node.code,
            upstream["parent"].as_str().unwrap_or("?"),
            upstream["acked_seq"],
            upstream["queued_events"]
        );
    }

    println!("demo: {submitted} submitted, {at_national} at national");

    if args.keep_running {
        println!("demo: running; press Ctrl-C to stop");
        tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    }
    let mut sites: Vec<SiteProcess> = nodes.into_iter().map(|n| n.site).collect();
    sites.push(province);
    sites.push(national);
    for site in &mut sites {
        // Fails only for a site already gone: Ctrl-C in a terminal reaches
        // the whole process group, so the sites may be stopping already.
        let _ = site.sigterm().await;
        let status = site.wait_exit(STOP_DEADLINE).await?;
        if !status.success() {
            bail!("a site exited with {status}:\n{}", site.log_tail());
        }
    }
    Ok(())
}

async fn get(site: &SiteProcess, tracking: &str) -> anyhow::Result<v1::Complaint> {
    let resp = site
        .complaints()
        .await?
        .get(v1::GetComplaintRequest {
            key: Some(Key::TrackingNumber(tracking.to_owned())),
        })
        .await
        .with_context(|| format!("get complaint {tracking}"))?;
    resp.into_inner()
        .complaint
        .with_context(|| format!("complaint {tracking} came back empty"))
}

/// The node's `upstream` status once it has recorded the parent's last ack
/// (national holding everything means the acks were sent; the node writes
/// them down a moment later).
async fn node_upstream(config: &Path) -> anyhow::Result<serde_json::Value> {
    wait_until(
        REPLICATION_DEADLINE,
        "the node to record its last ack",
        || async {
            let status = status_json(Binary::Node, config).await?;
            let upstream = &status["upstream"];
            Ok((upstream["queued_events"] == 0).then(|| upstream.clone()))
        },
    )
    .await
}

/// The given directory (created; refused when it already has files), or a
/// fresh one under the temp dir that is kept for inspection.
fn prepare_data_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let mut entries =
                std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "use data directory {}: it is not empty (choose a new one)",
                    dir.display()
                );
            }
            std::path::absolute(&dir).with_context(|| format!("resolve {}", dir.display()))
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("lapor-demo-")
                .tempdir()
                .context("create a temp dir")?;
            Ok(dir.keep())
        }
    }
}
