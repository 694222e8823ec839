//! Operator commands about a hub's children: `nodes` (each child's health)
//! and `quarantine` (refused records: list, replay).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::replication::report::children_status;
use lapor_shared::replication::server::replay_quarantine;

use crate::cli::{NodesArgs, QuarantineArgs, QuarantineCommand};
use crate::status::open_existing;

/// `lapor-hub nodes`: last seen, cursor, lag, skew and quarantined count per
/// child.
pub async fn nodes(config_path: &Path, args: NodesArgs) -> anyhow::Result<ExitCode> {
    let (store, _) = open_existing(config_path).await?;
    let children = children_status(&store)
        .await
        .context("read the children's state");
    store.close().await.context("close the store")?;
    let children = children?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&children).context("serialise nodes")?
        );
    } else {
        println!(
            "{:<8} {:>10} {:>10} {:>8} {:>10} {:>6}  last seen (ms)",
            "site", "cursor", "head", "lag", "skew ms", "quar."
        );
        for c in &children {
            println!(
                "{:<8} {:>10} {:>10} {:>8} {:>10} {:>6}  {}",
                c.site,
                c.cursor,
                c.reported_head.map_or("-".into(), |h| h.to_string()),
                c.lag_events,
                c.clock_skew_ms.map_or("-".into(), |s| if c.clock_warning {
                    format!("!{s}")
                } else {
                    s.to_string()
                }),
                c.quarantined,
                c.last_seen_ms.map_or("never".into(), |t| t.to_string()),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lapor-hub quarantine list|replay`.
pub async fn quarantine(config_path: &Path, args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    let (store, _) = open_existing(config_path).await?;
    let result = match args.command {
        QuarantineCommand::List { json } => list(&store, json).await,
        QuarantineCommand::Replay { id } => {
            let (replayed, refused) = replay_quarantine(&store, (!id.is_empty()).then_some(id))
                .await
                .context("replay quarantined records")?;
            println!("replayed {replayed}, still refused {refused}");
            Ok(())
        }
    };
    store.close().await.context("close the store")?;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &lapor_shared::store::Store, json: bool) -> anyhow::Result<()> {
    let entries = store
        .quarantined(None)
        .await
        .context("read the quarantine")?;
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "from": e.received_from, "event_id": e.event_id,
                    "reason": e.reason, "recorded_at_ms": e.recorded_at_ms,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).context("serialise quarantine")?
        );
    } else {
        for e in &entries {
            println!(
                "#{} from {} event {}: {}",
                e.id,
                e.received_from,
                e.event_id.as_deref().unwrap_or("?"),
                e.reason
            );
        }
        println!("{} quarantined", entries.len());
    }
    Ok(())
}
