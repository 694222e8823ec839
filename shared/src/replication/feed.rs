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
use crate::store::{RunRequest, Store};

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
    pub(super) async fn run(
        mut self,
        tx: mpsc::Sender<Result<PullBatch, Status>>,
        token: CancellationToken,
    ) {
        let mut head = self.store.watch_head();
        let mut receipts = self.store.watch_receipts();
        // Sent at the start of every stream, so a child that reconnects (or
        // a hub that restarted) still delivers receipts it owed.
        let mut receipt_sent: Option<(Seq, i64)> = None;
        loop {
            let receipt = match self.store.receipt_for(self.child.clone()).await {
                Ok(r) => r.filter(|r| Some(*r) != receipt_sent),
                Err(e) => {
                    let _ = tx.send(Err(store_status(e))).await;
                    return;
                }
            };
            let req = RunRequest {
                after: self.after,
                exclude_from: Some(self.child.clone()),
                region: Some(self.child.clone()),
                max_events: self.max_events,
                max_bytes: self.max_bytes,
            };
            let run = match self.store.event_run(req).await {
                Ok(run) => run,
                Err(e) => {
                    let _ = tx.send(Err(store_status(e))).await;
                    return;
                }
            };
            if run.through > self.after || receipt.is_some() {
                let raw = codec::frame_events(run.events.iter().map(|(_, p)| p.as_slice()));
                let payload = match codec::compress(self.compression, &raw) {
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
                    through_seq: run.through.0,
                    compression: self.compression as i32,
                    payload,
                    event_count: run.events.len() as u32,
                    receipts: receipt
                        .map(|(through, at_ms)| v1::Receipt {
                            tier: v1::Tier::National as i32,
                            through_seq: through.0,
                            at_ms,
                        })
                        .into_iter()
                        .collect(),
                };
                self.after = run.through;
                if receipt.is_some() {
                    receipt_sent = receipt;
                }
                // A failed send means the child went away.
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tx.closed() => return,
                changed = head.changed() => if changed.is_err() { return },
                changed = receipts.changed() => if changed.is_err() { return },
            }
        }
    }
}
