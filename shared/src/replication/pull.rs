//! The child's side of Pull: events from the parent that concern this site
//! (complaints of its district, or its province), stored with the parent-side
//! cursor in one transaction.
//!
//! A record that fails validation, or that lies outside this site's scope
//! (a parent bug or a forged stream), is quarantined like a pushed one; it
//! never blocks the records behind it.

use super::client::SyncError;
use super::{codec, screen};
use crate::domain::{Seq, SiteCode};
use crate::proto::v1;
use crate::store::{CursorKind, CursorUpdate, CustodyTier, Incoming, Store};

/// Validates and stores one pulled batch; returns how many records were
/// quarantined.
pub(super) async fn apply_pull_batch(
    store: &Store,
    parent: &SiteCode,
    batch: v1::PullBatch,
) -> Result<u32, SyncError> {
    if batch.event_count == 0 && batch.through_seq == batch.after_seq {
        record_receipts(store, &batch.receipts).await?;
        return Ok(0);
    }
    let decoded = codec::decode_events(batch.compression, &batch.payload)?;
    let site = store.site();
    let screened = screen::screen(decoded.events, &decoded.raw, |e| {
        if site.covers(&e.district) {
            Ok(())
        } else {
            Err((
                tonic::Code::PermissionDenied,
                format!(
                    "event of district {} is outside this site ({site})",
                    e.district
                ),
            ))
        }
    });
    let events = screened.accepted.into_iter().map(|(_, e)| e).collect();
    let mut quarantine = Vec::with_capacity(screened.refused.len());
    for screen::Refused { record, .. } in screened.refused {
        tracing::warn!(parent = %parent, event_id = ?record.event_id, reason = %record.reason, "quarantined a pulled record");
        quarantine.push(record);
    }
    let cursor = CursorUpdate {
        peer: parent.clone(),
        kind: CursorKind::PullIn,
        seq: Seq(batch.through_seq),
    };
    let outcome = store
        .apply_remote(Incoming {
            from: parent.clone(),
            events,
            quarantine,
            cursor: Some(cursor),
            source_seqs: vec![],
            requires: None,
        })
        .await?;
    record_receipts(store, &batch.receipts).await?;
    Ok(outcome.quarantined)
}

/// National receipts for this site's own events (the province receipt
/// comes with each push ack instead).
async fn record_receipts(store: &Store, receipts: &[v1::Receipt]) -> Result<(), SyncError> {
    for r in receipts
        .iter()
        .filter(|r| r.tier == v1::Tier::National as i32)
    {
        store
            .record_custody(CustodyTier::National, Seq(r.through_seq), r.at_ms)
            .await?;
    }
    Ok(())
}
