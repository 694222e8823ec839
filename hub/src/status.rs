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
use lapor_shared::replication::report::{
    ChildStatus, UpstreamStatus, children_status, upstream_status,
};
use lapor_shared::store::{Store, StoreStats};
use serde::Serialize;

use crate::cli::{AuditArgs, AuditCommand, StatusArgs};
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
    /// The link to the parent hub: queued (un-acked) events, the age of the
    /// oldest, last successful contact, last error. `null` until the site
    /// has reached its parent once.
    pub upstream: Option<UpstreamStatus>,
    /// Every child that has said Hello: last seen, its cursor here, its lag,
    /// clock skew, quarantined records (`lapor-hub nodes` prints only this).
    pub children: Vec<ChildStatus>,
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
            upstream: None,
            children: Vec::new(),
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
    let configured = load(config_path)?.upstream.is_some();
    let (store, path) = open_existing(config_path).await?;
    let role = match store.site().role() {
        lapor_shared::domain::SiteRole::National => "national",
        _ => "province",
    };
    let stats = store.stats().await.context("read store stats");
    let upstream = upstream_status(&store, configured)
        .await
        .context("read the upstream link state");
    let children = children_status(&store)
        .await
        .context("read the children's state");
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
    let mut status = HubStatus::new(role, &path, stats?, integrity);
    status.upstream = upstream?;
    status.children = children?;

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
        if let Some(up) = &status.upstream {
            print!("{up}");
        }
        println!(
            "children        {} (see `lapor-hub nodes`)",
            status.children.len()
        );
    }
    Ok(if status.integrity_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Opens the store of an initialised hub for an operator command (WAL lets
/// it read beside a running hub). Returns the store and its path.
pub(crate) async fn open_existing(
    config_path: &Path,
) -> anyhow::Result<(Store, std::path::PathBuf)> {
    let config = load(config_path)?;
    let path = config.store.path.clone();
    anyhow::ensure!(
        path.exists(),
        "find database {}: run `lapor-hub init` first",
        path.display()
    );
    let store = crate::open_store(&config).await?;
    Ok((store, path))
}

/// `lapor-hub audit verify`: walks the audit log's hash chain (it works
/// beside a running hub) and exits 1 at the first broken link.
pub async fn audit(config_path: &Path, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { json } = args.command;
    let (store, _) = open_existing(config_path).await?;
    let verdict = store.verify_audit().await;
    store.close().await.context("close the store")?;
    let verdict = verdict.context("verify the audit log")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).context("serialise the verdict")?
        );
    } else {
        println!("{verdict}");
    }
    Ok(if verdict.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `lapor-hub overdue`: complaints past their LAPOR deadline on this hub's
/// clock, most overdue first.
pub async fn overdue(
    config_path: &Path,
    args: crate::cli::OverdueArgs,
) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let (store, _) = open_existing(config_path).await?;
    let rows = lapor_shared::overdue::overdue_rows(&store, &config.deadlines, args.limit).await;
    store.close().await.context("close the store")?;
    let (now, rows) = rows.context("list overdue complaints")?;
    lapor_shared::overdue::print_rows(now, &rows, args.json).context("print overdue complaints")?;
    Ok(ExitCode::SUCCESS)
}
