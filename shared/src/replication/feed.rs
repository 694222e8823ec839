//! The parent's side of Pull: one feed per open stream, sending the events
//! that concern the child (its district, or its province) from the child's
//! cursor, then following new commits.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::codec;
use super::server::store_status;
use crate::domain::{Seq, SiteCode};
use crate::proto::v1::{self, PullBatch};
use crate::store::{EventRun, RunRequest, Store};

/// Streams the events that concern a child, then follows new commits.
pub(super) struct PullFeed {
    pub(super) store: Store,
    pub(super) child: SiteCode,
    pub(super) compression: v1::Compression,
    pub(super) after: Seq,
    pub(super) max_bytes: usize,
    pub(super) max_events: usize,
}

impl PullFeed {
    /// Sends what the child lacks, then waits for news. It reads events
    /// only when a commit touched the child's region (its district, or its
    /// province) and receipts only when they moved, so a commit at a hub
    /// with hundreds of open streams costs reads only in the feeds it
    /// concerns.
    pub(super) async fn run(
        mut self,
        tx: mpsc::Sender<Result<PullBatch, Status>>,
        token: CancellationToken,
    ) {
        // Subscribed before the first read, so nothing committed after
        // that read goes unsignalled.
        let mut news = self.store.watch_region(&self.child);
        let mut receipts = self.store.watch_receipts();
        // Both are read at the start of every stream, so a child that
        // reconnects (or a hub that restarted) still gets receipts it owed.
        let mut events_due = true;
        let mut receipts_due = true;
        let mut receipt_sent: Option<(Seq, i64)> = None;
        loop {
            let receipt = if receipts_due {
                receipts_due = false;
                match self.store.receipt_for(self.child.clone()).await {
                    Ok(r) => r.filter(|r| Some(*r) != receipt_sent),
                    Err(e) => {
                        let _ = tx.send(Err(store_status(e))).await;
                        return;
                    }
                }
            } else {
                None
            };
            let run = if events_due {
                let req = RunRequest {
                    after: self.after,
                    exclude_from: Some(self.child.clone()),
                    region: Some(self.child.clone()),
                    max_events: self.max_events,
                    max_bytes: self.max_bytes,
                    until: None,
                };
                match self.store.event_run(req).await {
                    Ok(run) => Some(run),
                    Err(e) => {
                        let _ = tx.send(Err(store_status(e))).await;
                        return;
                    }
                }
            } else {
                None
            };
            // A run cut short by the batch limits left more behind: read
            // again before waiting. A complete run brought the child up to
            // its snapshot, and anything committed since has signalled
            // `news` (which was marked seen before the read).
            let run = run.unwrap_or(EventRun {
                through: self.after,
                complete: true,
                ..EventRun::default()
            });
            let through = run.through;
            events_due = !run.complete;
            if through == self.after && receipt.is_none() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tx.closed() => return,
                    changed = news.changed() => {
                        if changed.is_err() { return }
                        events_due = true;
                    }
                    changed = receipts.changed() => {
                        if changed.is_err() { return }
                        receipts_due = true;
                    }
                }
                continue;
            }
            let payload = match codec::compress(self.compression, &run.framed) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!("compress: {e}"))))
                        .await;
                    return;
                }
            };
            let batch = PullBatch {
                after_seq: self.after.0,
                through_seq: through.0,
                compression: self.compression as i32,
                payload,
                event_count: run.len() as u32,
                receipts: receipt
                    .map(|(through, at_ms)| v1::Receipt {
                        tier: v1::Tier::National as i32,
                        through_seq: through.0,
                        at_ms,
                    })
                    .into_iter()
                    .collect(),
            };
            self.after = through;
            if receipt.is_some() {
                receipt_sent = receipt;
            }
            // A failed send means the child went away.
            if tx.send(Ok(batch)).await.is_err() {
                return;
            }
        }
    }
}
