//! The child's side of Pull: events from the parent that concern this site
//! (complaints of its district, or its province), stored with the parent-side
//! cursor in one transaction.
//!
//! A record that fails validation, or that lies outside this site's scope
//! (a parent bug or a forged stream), is quarantined like a pushed one; it
//! never blocks the records behind it.

use super::client::SyncError;
use super::codec;
use crate::domain::{Seq, SiteCode};
use crate::proto::{convert, v1};
use crate::store::{CursorKind, CursorUpdate, CustodyTier, Incoming, QuarantineRecord, Store};

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
    let site = store.site().clone();
    let mut events = Vec::with_capacity(decoded.events.len());
    let mut quarantine = Vec::new();
    for (proto, at) in decoded.events {
        let event_id = Some(proto.event_id.clone()).filter(|s| !s.is_empty());
        let checked = convert::event_from_proto(proto)
            .map_err(|v| v.to_string())
            .and_then(|e| {
                if site.covers(&e.district) {
                    Ok(e)
                } else {
                    Err(format!(
                        "event of district {} is outside this site ({site})",
                        e.district
                    ))
                }
            });
        match checked {
            Ok(event) => events.push(event),
            Err(reason) => {
                tracing::warn!(parent = %parent, ?event_id, %reason, "quarantined a pulled record");
                quarantine.push(QuarantineRecord {
                    event_id,
                    // As it came: no copy of every event kept for this.
                    payload: decoded.raw.get(at).unwrap_or_default().to_vec(),
                    reason,
                });
            }
        }
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
