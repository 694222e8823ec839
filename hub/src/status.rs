//! `lapor-hub status`: the site's health as one struct, printed as text or
//! JSON.
//!
//! [`HubStatus`] is the JSON contract operators' scripts read; it has the
//! same field names as the node's so one script reads both. Fields are only
//! ever added (replication adds per-child fields), never renamed.
//!
//! The command opens the store directly rather than asking the running hub
//! over gRPC: WAL lets a reader work beside the hub's writer, and `status`
//! must work when the hub is down.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::store::{Store, StoreStats};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::init::load;

/// What `status --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubStatus {
    /// This hub's code ("11", "00").
    pub site: String,
    /// `"province"` or `"national"`.
    pub role: &'static str,
    /// The database file.
    pub store_path: String,
    pub schema_version: u32,
    /// Highest local event sequence number.
    pub head_seq: u64,
    pub events: u64,
    pub complaints: u64,
    /// Event ids seen with two different contents (an operator must look).
    pub conflicts: u64,
    /// Records refused by validation or authorization, kept for replay.
    pub quarantined: u64,
    /// `PRAGMA integrity_check` lines (`["ok"]` when sound); present only
    /// with `--integrity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Vec<String>>,
}

impl HubStatus {
    fn new(
        role: &'static str,
        store_path: &Path,
        stats: StoreStats,
        integrity: Option<Vec<String>>,
    ) -> HubStatus {
        HubStatus {
            site: stats.site.to_string(),
            role,
            store_path: store_path.display().to_string(),
            schema_version: stats.schema_version,
            head_seq: stats.head_seq.0,
            events: stats.events,
            complaints: stats.complaints,
            conflicts: stats.conflicts,
            quarantined: stats.quarantined,
            integrity,
        }
    }

    /// Whether the integrity check (if it ran) found the database sound.
    pub fn integrity_ok(&self) -> bool {
        self.integrity.as_ref().is_none_or(|lines| lines == &["ok"])
    }
}

/// `lapor-hub status`.
pub async fn status(config_path: &Path, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let role = config.site.role.as_str();
    let store_config = config.store_config()?;
    let path = store_config.path.clone();
    anyhow::ensure!(
        path.exists(),
        "find database {}: run `lapor-hub init` first",
        path.display()
    );
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await
        .context("join the store-opening task")?
        .with_context(|| format!("open store {}", path.display()))?;
    let stats = store.stats().await.context("read store stats");
    let integrity = match (&stats, args.integrity) {
        (Ok(_), true) => Some(
            store
                .integrity_check()
                .await
                .context("run the integrity check"),
        ),
        _ => None,
    };
    store.close().await.context("close the store")?;
    let integrity = integrity.transpose()?;
    let status = HubStatus::new(role, &path, stats?, integrity);

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("serialise status")?
        );
    } else {
        println!("site            {} ({})", status.site, status.role);
        println!(
            "store           {} (schema v{})",
            status.store_path, status.schema_version
        );
        println!("head seq        {}", status.head_seq);
        println!("complaints      {}", status.complaints);
        println!("events          {}", status.events);
        println!("conflicts       {}", status.conflicts);
        println!("quarantined     {}", status.quarantined);
        if let Some(lines) = &status.integrity {
            println!("integrity       {}", lines.join("; "));
        }
    }
    Ok(if status.integrity_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
