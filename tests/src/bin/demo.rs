//! The README's first command: a whole local federation on loopback.
//!
//! `cargo run -p lapor-tests --bin demo [-- --data-dir DIR --per-node N --keep-running --insecure]`
//!
//! Starts, as real processes on ports chosen at runtime, the national hub
//! (00), the Aceh provincial hub (11) forwarding to national, and three
//! district nodes pushing to the Aceh hub — Gayo Lues (11.13), Aceh Tengah
//! (11.04), Kota Banda Aceh (11.71) — each with its own SQLite database
//! under a fresh data directory. Every link is mutual TLS, set up with
//! the operator commands (`lapor-hub ca init`, `ca issue`); `--insecure`
//! runs them in plain text on loopback instead. It submits sample complaints (synthetic
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
use lapor_tests::local::{LocalFederation, Security};
use lapor_tests::site::{SiteProcess, status_json};
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
    /// Plain text between the sites instead of mutual TLS (loopback only).
    #[arg(long)]
    insecure: bool,
}

/// How long national may take to hold every submitted complaint. On
/// loopback it takes well under a second; the bound only catches a
/// federation that does not replicate.
const REPLICATION_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_dir = prepare_data_dir(args.data_dir)?;
    println!("demo: data directory {}", data_dir.display());

    let security = if args.insecure {
        Security::Insecure
    } else {
        Security::MutualTls
    };
    println!("demo: building and starting the sites (first run compiles the binaries)");
    let fed = LocalFederation::start(&data_dir, security, false).await?;
    match security {
        Security::MutualTls => println!(
            "demo: every link is mutual TLS: a CA at national and at the Aceh hub (`lapor-hub ca init`), a bundle per site (`lapor-hub ca issue`)"
        ),
        Security::Insecure => println!("demo: links in plain text on loopback (--insecure)"),
    }
    println!("  national hub 00                  {}", fed.national.addr());
    println!(
        "  Aceh hub 11                      {}  -> national",
        fed.province.addr()
    );
    for node in &fed.nodes {
        println!(
            "  node {} {:<22}  {}  -> Aceh hub",
            node.code,
            node.name,
            node.site.addr()
        );
    }

    println!(
        "demo: submitting {} sample complaints at each node",
        args.per_node
    );
    let started = Instant::now();
    let mut submitted = 0u64;
    let mut tracking: Vec<Vec<String>> = Vec::new();
    for node in &fed.nodes {
        let mut intake = node.site.intake().await?;
        let mut minted = Vec::new();
        for n in 0..args.per_node {
            let id = uuid::Uuid::now_v7().to_string();
            // Distinct samples per district: offset the sample number.
            let sample = n + submitted * 1_000;
            let resp = intake
                .submit(lapor_tests::submit_request(node.code, sample, &id))
                .await
                .with_context(|| format!("submit a sample complaint at {}", node.code))?
                .into_inner();
            minted.push(resp.tracking_number);
        }
        submitted += args.per_node;
        println!("  {}: {}", node.code, minted.join(" "));
        tracking.push(minted);
    }

    let national = &fed.national;
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
    for node in &fed.nodes {
        println!("  node {:<8}     {}", node.code, node.site.count().await?);
    }
    println!("  Aceh hub 11       {}", fed.province.count().await?);
    let at_national = national.count().await?;
    println!("  national 00       {at_national}");

    if let Err(e) = caught_up {
        println!("demo: {submitted} submitted, {at_national} at national");
        bail!(
            "national did not catch up: {e:#}\n--- Aceh hub log ---\n{}\n--- national log ---\n{}",
            fed.province.log_tail(),
            national.log_tail()
        );
    }

    println!("demo: the same complaint at its node and at national");
    for (node, minted) in fed.nodes.iter().zip(&tracking).take(2) {
        if let Some(tracking) = minted.first() {
            let here = get(&node.site, tracking).await?;
            let there = get(national, tracking).await?;
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
    for node in &fed.nodes {
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
    fed.stop().await
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
