//! `lapor-node status`: the site's health as one struct, printed as text or
//! JSON.
//!
//! [`NodeStatus`] is the JSON contract that operators' scripts and the tests
//! read. Fields are only ever added (replication adds queue and contact
//! fields), never renamed or removed.
//!
//! The command opens the store directly rather than asking the running node
//! over gRPC: SQLite's WAL mode lets a reader work beside the node's writer,
//! and an operator needs `status` most when the node is *not* running.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::replication::report::{UpstreamStatus, upstream_status};
use lapor_shared::store::{Store, StoreStats};
use serde::Serialize;

use crate::cli::{AuditArgs, AuditCommand, StatusArgs};
use crate::config::NodeConfig;
use crate::init::load;

/// What `status --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// This district's code.
    pub site: String,
    /// Always `"node"`; lets one script read node and hub output alike.
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
    /// `PRAGMA integrity_check` lines (`["ok"]` when sound); present only
    /// with `--integrity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Vec<String>>,
}

impl NodeStatus {
    fn new(store_path: &Path, stats: StoreStats, integrity: Option<Vec<String>>) -> NodeStatus {
        NodeStatus {
            site: stats.site.to_string(),
            role: "node",
            store_path: store_path.display().to_string(),
            schema_version: stats.schema_version,
            head_seq: stats.head_seq.0,
            events: stats.events,
            complaints: stats.complaints,
            conflicts: stats.conflicts,
            quarantined: stats.quarantined,
            upstream: None,
            integrity,
        }
    }

    /// Whether the integrity check (if it ran) found the database sound.
    pub fn integrity_ok(&self) -> bool {
        self.integrity.as_ref().is_none_or(|lines| lines == &["ok"])
    }
}

/// `lapor-node status`.
pub async fn status(config_path: &Path, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let path = config.store.path.clone();
    let store = open_existing(&config).await?;
    let stats = store.stats().await.context("read store stats");
    let upstream = upstream_status(&store, config.upstream.is_some())
        .await
        .context("read the upstream link state");
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
    let mut status = NodeStatus::new(&path, stats?, integrity);
    status.upstream = upstream?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("serialise status")?
        );
    } else {
        print_text(&status);
    }
    Ok(if status.integrity_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `lapor-node audit verify`: walks the audit log's hash chain (it works
/// beside a running node) and exits 1 at the first broken link.
pub async fn audit(config_path: &Path, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { json } = args.command;
    let store = open_existing(&load(config_path)?).await?;
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

/// Opens the store of an initialised node (never creates one).
async fn open_existing(config: &NodeConfig) -> anyhow::Result<Store> {
    let path = &config.store.path;
    anyhow::ensure!(
        path.exists(),
        "find database {}: run `lapor-node init` first",
        path.display()
    );
    crate::open_store(config).await
}

fn print_text(s: &NodeStatus) {
    println!("site            {} ({})", s.site, s.role);
    println!(
        "store           {} (schema v{})",
        s.store_path, s.schema_version
    );
    println!("head seq        {}", s.head_seq);
    println!("complaints      {}", s.complaints);
    println!("events          {}", s.events);
    println!("conflicts       {}", s.conflicts);
    println!("quarantined     {}", s.quarantined);
    if let Some(lines) = &s.integrity {
        println!("integrity       {}", lines.join("; "));
    }
    match &s.upstream {
        Some(up) => print!("{up}"),
        None => println!("parent          not reached yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(integrity: Option<Vec<String>>) -> NodeStatus {
        NodeStatus {
            site: "11.13".into(),
            role: "node",
            store_path: "/x/node.db".into(),
            schema_version: 2,
            head_seq: 5,
            events: 5,
            complaints: 3,
            conflicts: 0,
            quarantined: 0,
            upstream: None,
            integrity,
        }
    }

    #[test]
    fn integrity_is_reported_only_when_checked() {
        let json = serde_json::to_value(status(None)).unwrap();
        assert!(json.get("integrity").is_none());
        assert_eq!(json["site"], "11.13");
        assert_eq!(json["head_seq"], 5);
        let json = serde_json::to_value(status(Some(vec!["ok".into()]))).unwrap();
        assert_eq!(json["integrity"], serde_json::json!(["ok"]));
    }

    #[test]
    fn integrity_ok_means_exactly_ok() {
        assert!(status(None).integrity_ok());
        assert!(status(Some(vec!["ok".into()])).integrity_ok());
        assert!(!status(Some(vec!["row 3 missing from index".into()])).integrity_ok());
    }
}
