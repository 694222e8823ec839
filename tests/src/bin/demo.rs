//! The README's first command: a whole local federation on loopback.
//!
//! `cargo run -p lapor-tests --bin demo [-- --data-dir DIR --per-node N --keep-running]`
//!
//! Starts, as real processes on ports chosen at runtime, the national hub
//! (00), the Aceh provincial hub (11) and three district nodes — Gayo Lues
//! (11.13), Aceh Tengah (11.04), Kota Banda Aceh (11.71) — each with its own
//! SQLite database under a fresh data directory; submits sample complaints
//! (synthetic reporters) at every node; reports what each tier holds; and
//! ends with `demo: N submitted, M at national`.
//!
//! Today the sites do not replicate yet (that is the replication issue), so
//! the hubs hold nothing and M is 0; the demo says so rather than pretend.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use lapor_shared::proto::v1;
use lapor_tests::Binary;
use lapor_tests::site::{SiteProcess, init_hub, init_node};

/// Start a local lapor-sync federation, submit sample complaints, report.
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

/// How long a site may take to stop after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_dir = prepare_data_dir(args.data_dir)?;
    println!("demo: data directory {}", data_dir.display());

    println!("demo: building and starting the sites (first run compiles the binaries)");
    let national_config = init_hub(&data_dir, "national", "00").await?;
    let national = SiteProcess::start(Binary::Hub, &national_config).await?;
    println!("  national hub 00          {}", national.endpoint());
    let province_config = init_hub(&data_dir, "province", "11").await?;
    let province = SiteProcess::start(Binary::Hub, &province_config).await?;
    println!("  Aceh hub 11              {}", province.endpoint());
    let mut nodes = Vec::new();
    for (code, name) in NODES {
        let config = init_node(&data_dir, code).await?;
        let node = SiteProcess::start(Binary::Node, &config).await?;
        println!("  node {code} {name:<22} {}", node.endpoint());
        nodes.push((*code, node));
    }

    let mut submitted = 0u64;
    for (code, node) in &nodes {
        let mut intake = node.intake().await?;
        for n in 0..args.per_node {
            let id = uuid::Uuid::now_v7().to_string();
            // Distinct samples per district: offset the sample number.
            let sample = n + submitted * 1_000;
            let resp = intake
                .submit(lapor_tests::submit_request(code, sample, &id))
                .await
                .with_context(|| format!("submit a sample complaint at {code}"))?
                .into_inner();
            println!("  submitted at {code}: {}", resp.tracking_number);
        }
        submitted += args.per_node;
    }

    println!("demo: complaints held at each site");
    for (code, node) in &nodes {
        println!("  node {code:<8} {}", count(node).await?);
    }
    println!("  hub 11        {}", count(&province).await?);
    let at_national = count(&national).await?;
    println!("  national 00   {at_national}");
    if at_national < submitted {
        println!("demo: replication to the hubs is not implemented yet, so the hubs hold nothing");
    }
    println!("demo: {submitted} submitted, {at_national} at national");

    if args.keep_running {
        println!("demo: running; press Ctrl-C to stop");
        tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    }
    let mut sites: Vec<SiteProcess> = nodes.into_iter().map(|(_, node)| node).collect();
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

async fn count(site: &SiteProcess) -> anyhow::Result<u64> {
    let mut client = site.complaints().await?;
    let resp = client
        .count(v1::CountComplaintsRequest { filter: None })
        .await
        .context("count complaints")?;
    Ok(resp.into_inner().count)
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
