//! The parent's half of replication: Hello, Push and Pull.
//!
//! Design constraints:
//! - Nothing is acked before it is durable: a batch's events and the child's
//!   new cursor commit in one transaction, then the ack is sent.
//! - Who the child is comes from its verified client certificate (mutual
//!   TLS), never from a message field: a Hello whose `site` is not the
//!   certificate's, and a Push or Pull on a session opened by another
//!   certificate, are refused with `PERMISSION_DENIED` and audited. Only a
//!   server in insecure loopback mode (plain text, tests and demo; see
//!   `tls::link`) takes the site a Hello names.
//! - A bad record (fails validation: `INVALID_ARGUMENT`; outside the child's
//!   scope: `PERMISSION_DENIED`) is quarantined with its reason in that same
//!   transaction and never blocks the records behind it; the store appends
//!   a `refused_write` audit row for each. A site refused at Hello with
//!   `PERMISSION_DENIED` is audited here.
//! - Each child has its own rate limit (`limit`): over it, its requests are
//!   answered `RESOURCE_EXHAUSTED` with `RetryInfo`; other children are not
//!   affected.
//! - A bad *stream* (unknown protocol version, oversized batch, a gap in the
//!   seq range, an undecodable payload) ends with a precise status; batches
//!   before it stay committed.
//! - Decoding and validation of batch N+1 overlaps the commit of batch N
//!   (two stages joined by a bounded channel), so one child's stream keeps
//!   the disk busy.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use super::codec::{self, negotiate};
use super::limit::{ChildBuckets, RateLimit, SESSION_COST};
use super::{PROTOCOL_VERSION, scope, screen};
use crate::domain::{Seq, SiteCode, SiteRole};
use crate::proto::convert;
use crate::proto::v1::{
    self, HelloRequest, HelloResponse, PullBatch, PullRequest, PushAck, PushBatch, PushMessage,
    push_message, replication_server::Replication,
};
use crate::store::{
    AppliedLater, AuditAction, AuditEntry, CursorKind, CursorUpdate, Incoming, PeerUpdate,
    RelayCandidate, Store,
};
use crate::tls::link::{PeerAuth, peer_auth};
use crate::tls::peer::Subject;

/// Limits a parent enforces on its children.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest compressed batch payload accepted.
    pub max_batch_bytes: u32,
    /// Most events in one batch.
    pub max_batch_events: u32,
    /// Clock skew above which a child is logged as a warning.
    pub skew_warning: Duration,
    /// Requests each child may make (a token bucket per child).
    pub child_rate: RateLimit,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_batch_bytes: 4 * 1024 * 1024,
            max_batch_events: 10_000,
            skew_warning: Duration::from_secs(300),
            child_rate: RateLimit::default(),
        }
    }
}

/// The largest gRPC message the replication service decodes: a full batch
/// plus framing.
pub fn max_message_bytes(limits: &ServerLimits) -> usize {
    limits.max_batch_bytes as usize + 64 * 1024
}

/// Sessions older than this are forgotten (a child says Hello again on each
/// reconnect).
const SESSION_TTL: Duration = Duration::from_secs(6 * 3600);

struct Session {
    child: SiteCode,
    compression: v1::Compression,
    created: Instant,
}

/// The Replication service of a hub.
#[derive(Clone)]
pub struct ReplicationService {
    store: Store,
    limits: ServerLimits,
    // std Mutex: held for map look-ups only, never across an await.
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    rate: Arc<ChildBuckets>,
    tracker: TaskTracker,
    token: CancellationToken,
    /// This hub sends what it stores on to its own parent: pushed batches
    /// are offered to the store for forwarding unchanged
    /// ([`Store::queue_apply_remote_relaying`]).
    relaying: bool,
}

impl ReplicationService {
    /// Stream tasks are spawned on `tracker` and stop when `token` is cancelled.
    pub fn new(
        store: Store,
        limits: ServerLimits,
        tracker: TaskTracker,
        token: CancellationToken,
    ) -> Self {
        ReplicationService {
            store,
            rate: Arc::new(ChildBuckets::new(limits.child_rate)),
            limits,
            sessions: Arc::default(),
            tracker,
            token,
            relaying: false,
        }
    }

    /// For a hub with a parent: batches its children push that it stores
    /// whole are kept to be forwarded as they came (a province hub then
    /// neither reads them back nor compresses them again).
    #[must_use]
    pub fn relaying(mut self) -> Self {
        self.relaying = true;
        self
    }

    fn site(&self) -> &SiteCode {
        self.store.site()
    }

    fn session(&self, id: &str) -> Result<(SiteCode, v1::Compression), Status> {
        let sessions = self
            .sessions
            .lock()
            .map_err(|_| Status::internal("session table poisoned"))?;
        sessions
            .get(id)
            .map(|s| (s.child.clone(), s.compression))
            .ok_or_else(|| {
                Status::failed_precondition(format!("unknown session {id:?}: call Hello first"))
            })
    }

    /// The child a Hello comes from: the site its certificate names (the
    /// Hello must name the same), or in insecure loopback mode the site the
    /// Hello names; either way a known site that is our child.
    #[allow(clippy::result_large_err)]
    fn hello_child(&self, auth: &PeerAuth, claimed: &str) -> Result<SiteCode, Status> {
        let child = match auth {
            PeerAuth::Certificate(peer) => {
                let Subject::Site(cert_site) = &peer.subject else {
                    return Err(Status::permission_denied(format!(
                        "{} holds an operator certificate: only sites replicate",
                        peer.subject.name()
                    )));
                };
                if claimed != cert_site.as_str() {
                    return Err(Status::permission_denied(format!(
                        "the client certificate names site {cert_site} but Hello says {:?}: a site speaks only as itself",
                        shown(claimed)
                    )));
                }
                cert_site.clone()
            }
            PeerAuth::InsecureLoopback => SiteCode::parse(claimed)
                .map_err(|e| Status::invalid_argument(format!("site: {e}")))?,
            PeerAuth::Unauthenticated => return Err(unauthenticated()),
        };
        if !crate::regions::is_known_site(&child) {
            return Err(Status::permission_denied(format!(
                "site {child} is not in the Kemendagri region list"
            )));
        }
        scope::check_child(self.site(), &child)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        Ok(child)
    }

    /// A Push or Pull on `session_child`'s session must come from that
    /// child's certificate: a session id is not a credential.
    async fn check_session_owner(
        &self,
        auth: &PeerAuth,
        remote: Option<std::net::SocketAddr>,
        session_child: &SiteCode,
        call: &str,
    ) -> Result<(), Status> {
        match auth {
            PeerAuth::Certificate(peer) => {
                if peer.subject == Subject::Site(session_child.clone()) {
                    return Ok(());
                }
                let status = Status::permission_denied(format!(
                    "this session belongs to site {session_child}, not to the certificate of {}",
                    peer.subject.name()
                ));
                self.audit_refusal(auth, remote, session_child.as_str(), call, status.message())
                    .await;
                Err(status)
            }
            PeerAuth::InsecureLoopback => Ok(()),
            PeerAuth::Unauthenticated => Err(unauthenticated()),
        }
    }

    /// Records a refused peer in the audit log. The refusal stands whether
    /// or not the row could be written.
    async fn audit_refusal(
        &self,
        auth: &PeerAuth,
        remote: Option<std::net::SocketAddr>,
        claimed: &str,
        call: &str,
        why: &str,
    ) {
        let from = remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let actor = match auth {
            PeerAuth::Certificate(peer) => {
                format!("cert:{}:{}@{from}", peer.subject.name(), peer.serial)
            }
            _ => format!("peer:{from}"),
        };
        tracing::warn!(%actor, claimed = %shown(claimed), call, why, "refused a peer");
        let entry = AuditEntry {
            actor,
            action: AuditAction::RefusedWrite,
            subject: shown(claimed),
            detail: format!("{call} refused: {why}"),
        };
        if let Err(e) = self.store.audit(vec![entry]).await {
            tracing::error!(error = %e, "could not audit a refused peer");
        }
    }
}

/// A peer's claim as quoted in statuses, logs and audit rows: bounded, so
/// a Hello with a megabyte-long site cannot fill the audit log.
fn shown(claimed: &str) -> String {
    claimed.chars().take(32).collect()
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "the peer is not authenticated: Replication is served with mutual TLS, or in insecure loopback mode for tests",
    )
}

/// A store error as the replication peer sees it: the shared mapping
/// ([`crate::rpc::status::to_status`]), except that a busy or full store is
/// UNAVAILABLE, so the child comes back at the link's pace.
pub(super) fn store_status(e: crate::store::StoreError) -> Status {
    if e.is_retriable() {
        tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "store busy during replication");
        Status::unavailable("storage busy, retry")
    } else {
        crate::rpc::status::to_status(e)
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<PushAck, Status>> + Send>>;
type PullStream = Pin<Box<dyn Stream<Item = Result<PullBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for ReplicationService {
    #[tracing::instrument(skip_all, fields(claimed = %shown(&req.get_ref().site)))]
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        let remote = req.remote_addr();
        let auth = peer_auth(req.extensions());
        let req = req.into_inner();
        if let PeerAuth::Certificate(peer) = &auth {
            // Before any other work, refusals included: a flood of bad
            // Hellos must not fill the audit log either.
            self.rate.admit(peer.subject.name(), SESSION_COST)?;
        }
        if req.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "protocol version {} is not supported: hub {} speaks version {PROTOCOL_VERSION}",
                req.protocol_version,
                self.site()
            )));
        }
        let child = match self.hello_child(&auth, &req.site) {
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                self.audit_refusal(&auth, remote, &req.site, "hello", status.message())
                    .await;
                return Err(status);
            }
            other => other?,
        };
        if auth == PeerAuth::InsecureLoopback {
            self.rate.admit(child.as_str(), SESSION_COST)?;
        }
        let expected_role = match child.role() {
            SiteRole::Node => v1::SiteRole::Node,
            SiteRole::Province => v1::SiteRole::Province,
            SiteRole::National => v1::SiteRole::National,
        };
        if req.role != expected_role as i32 {
            return Err(Status::invalid_argument(format!(
                "role {} does not match site {child}",
                req.role
            )));
        }
        let now = self.store.wall_clock_ms();
        let skew = super::clock_skew(req.wall_clock_ms, now);
        if let Some(skew) = skew
            && skew.unsigned_abs() > self.limits.skew_warning.as_millis() as u64
        {
            tracing::warn!(child = %child, skew_ms = skew, "child clock is off");
        }
        let cursor = self
            .store
            .cursor(child.clone(), CursorKind::PushIn)
            .await
            .map_err(store_status)?;
        self.store
            .record_peer(PeerUpdate {
                peer: Some(child.clone()),
                seen_at_ms: Some(now),
                error: None,
                clock_skew_ms: skew,
                head_seq: Some(Seq(req.head_seq)),
            })
            .await
            .map_err(store_status)?;
        let compression = negotiate(&req.compressions);
        let session_id = uuid::Uuid::now_v7().to_string();
        {
            let mut sessions = self
                .sessions
                .lock()
                .map_err(|_| Status::internal("session table poisoned"))?;
            sessions.retain(|_, s| s.created.elapsed() < SESSION_TTL);
            sessions.insert(
                session_id.clone(),
                Session {
                    child: child.clone(),
                    compression,
                    created: Instant::now(),
                },
            );
        }
        tracing::info!(cursor = cursor.0, ?compression, "child said hello");
        let role = match self.site().role() {
            SiteRole::National => v1::SiteRole::National,
            _ => v1::SiteRole::Province,
        };
        Ok(Response::new(HelloResponse {
            protocol_version: PROTOCOL_VERSION,
            site: self.site().to_string(),
            role: role as i32,
            push_cursor: cursor.0,
            compression: compression as i32,
            max_batch_bytes: self.limits.max_batch_bytes,
            max_batch_events: self.limits.max_batch_events,
            wall_clock_ms: now,
            session_id,
        }))
    }

    type PushStream = AckStream;

    async fn push(
        &self,
        req: Request<Streaming<PushMessage>>,
    ) -> Result<Response<AckStream>, Status> {
        let remote = req.remote_addr();
        let auth = peer_auth(req.extensions());
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty push stream"))?;
        let Some(push_message::Kind::Open(open)) = first.kind else {
            return Err(Status::invalid_argument(
                "the first push message must be PushOpen",
            ));
        };
        let (child, _) = self.session(&open.session_id)?;
        self.check_session_owner(&auth, remote, &child, "push")
            .await?;
        self.rate.admit(child.as_str(), 1.0)?;
        let cursor = self
            .store
            .cursor(child.clone(), CursorKind::PushIn)
            .await
            .map_err(store_status)?;
        let (ack_tx, ack_rx) = mpsc::channel(64);
        let (work_tx, work_rx) = mpsc::channel(4);
        let reader = PushReader {
            child: child.clone(),
            limits: self.limits.clone(),
            inflated: Vec::new(),
            expected: cursor,
            relaying: self.relaying,
        };
        let token = self.token.clone();
        self.tracker
            .spawn(reader.run(inbound, work_tx, token.clone()));
        self.tracker
            .spawn(apply_batches(self.store.clone(), child, work_rx, ack_tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(ack_rx))))
    }

    type PullStream = PullStream;

    async fn pull(&self, req: Request<PullRequest>) -> Result<Response<PullStream>, Status> {
        let remote = req.remote_addr();
        let auth = peer_auth(req.extensions());
        let req = req.into_inner();
        let (child, compression) = self.session(&req.session_id)?;
        self.check_session_owner(&auth, remote, &child, "pull")
            .await?;
        self.rate.admit(child.as_str(), 1.0)?;
        let (tx, rx) = mpsc::channel(8);
        let feed = super::feed::PullFeed {
            store: self.store.clone(),
            child,
            compression,
            after: Seq(req.after_seq),
            max_bytes: self.limits.max_batch_bytes as usize / 2,
            max_events: self.limits.max_batch_events as usize,
        };
        self.tracker.spawn(feed.run(tx, self.token.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Work handed from the reader stage to the apply stage, in stream order.
enum Work {
    Apply {
        batch_no: u64,
        incoming: Incoming,
        /// Why each quarantined record was refused, for the ack.
        rejections: Vec<v1::RecordRejection>,
        /// The batch as received, to forward unchanged once stored.
        relay: Option<Box<RelayCandidate>>,
    },
    /// The batch was already held (a resend after reconnect): ack only.
    AlreadyHeld { batch_no: u64, through: Seq },
    /// The stream must end with this status, after everything before it.
    Fail(Status),
}

struct PushReader {
    child: SiteCode,
    limits: ServerLimits,
    /// Each batch is inflated here, one buffer for the whole stream.
    inflated: Vec<u8>,
    /// The child's seq that the next batch must start at or before.
    expected: Seq,
    /// Offer whole batches for forwarding unchanged.
    relaying: bool,
}

/// Inflate buffer a push stream keeps between batches: a batch of the
/// default size (1 MiB of events, client.rs) fits; an outsized one's buffer
/// is let go, so an idle stream never holds more (a hub has a stream per
/// child).
const KEEP_INFLATED_BYTES: usize = 4 << 20;

impl PushReader {
    /// Drops the inflate buffer if an outsized batch grew it.
    fn trim_inflated(&mut self) {
        if self.inflated.capacity() > KEEP_INFLATED_BYTES {
            self.inflated = Vec::new();
        }
    }

    async fn run(
        mut self,
        mut inbound: Streaming<PushMessage>,
        out: mpsc::Sender<Work>,
        token: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = token.cancelled() => return,
                msg = inbound.message() => msg,
            };
            let work = match msg {
                Ok(Some(PushMessage {
                    kind: Some(push_message::Kind::Batch(batch)),
                })) => {
                    let work = self.prepare(batch);
                    self.trim_inflated();
                    work
                }
                Ok(Some(_)) => {
                    Work::Fail(Status::invalid_argument("only batches may follow PushOpen"))
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(child = %self.child, %status, "push stream ended");
                    return;
                }
            };
            let stop = matches!(work, Work::Fail(_));
            if out.send(work).await.is_err() || stop {
                return;
            }
        }
    }

    fn prepare(&mut self, batch: PushBatch) -> Work {
        let n = batch.batch_no;
        if batch.payload.len() > self.limits.max_batch_bytes as usize {
            return Work::Fail(Status::invalid_argument(format!(
                "batch {n}: payload of {} bytes exceeds the limit of {} bytes",
                batch.payload.len(),
                self.limits.max_batch_bytes
            )));
        }
        if batch.event_count > self.limits.max_batch_events {
            return Work::Fail(Status::invalid_argument(format!(
                "batch {n}: {} events exceed the limit of {}",
                batch.event_count, self.limits.max_batch_events
            )));
        }
        if batch.through_seq < batch.after_seq {
            return Work::Fail(Status::invalid_argument(format!(
                "batch {n}: through_seq is before after_seq"
            )));
        }
        if batch.after_seq > self.expected.0 {
            return Work::Fail(Status::failed_precondition(format!(
                "batch {n}: starts after seq {} but this hub holds only up to {}; say Hello again",
                batch.after_seq, self.expected
            )));
        }
        if batch.through_seq <= self.expected.0 {
            return Work::AlreadyHeld {
                batch_no: n,
                through: self.expected,
            };
        }
        let decoded = match codec::decode_events_into(
            batch.compression,
            &batch.payload,
            &mut self.inflated,
            batch.event_count as usize,
        ) {
            Ok(decoded) => decoded,
            Err(e) => return Work::Fail(Status::invalid_argument(format!("batch {n}: {e}"))),
        };
        if decoded.len() > self.limits.max_batch_events as usize {
            return Work::Fail(Status::invalid_argument(format!(
                "batch {n}: more events than the limit"
            )));
        }
        // The child's seq of each event, when it sent them (and they line up).
        let seqs = (batch.seqs.len() == decoded.len()).then_some(batch.seqs);
        let ranges: Option<Vec<_>> = self
            .relaying
            .then(|| decoded.iter().map(|(_, at)| at.clone()).collect());
        let child = &self.child;
        let screened = screen::screen(decoded, &self.inflated, |e| {
            scope::check_event(child, e).map_err(|s| (tonic::Code::PermissionDenied, s.to_string()))
        });
        let source_seqs = match &seqs {
            Some(seqs) => screened.accepted.iter().map(|(i, _)| seqs[*i]).collect(),
            None => Vec::new(),
        };
        let events = screened.accepted.into_iter().map(|(_, e)| e).collect();
        let mut rejections = Vec::with_capacity(screened.refused.len());
        let mut quarantine = Vec::with_capacity(screened.refused.len());
        for screen::Refused { code, record } in screened.refused {
            tracing::warn!(child = %self.child, event_id = ?record.event_id, reason = %record.reason, "quarantined a pushed record");
            rejections.push(v1::RecordRejection {
                event_id: record.event_id.clone().unwrap_or_default(),
                code: code as i32,
                reason: record.reason.clone(),
            });
            quarantine.push(record);
        }
        self.expected = Seq(batch.through_seq);
        let cursor = CursorUpdate {
            peer: self.child.clone(),
            kind: CursorKind::PushIn,
            seq: self.expected,
        };
        // A batch with no refusals may go up as it came; the store decides
        // once it knows how each event was stored. The candidate takes the
        // inflated bytes themselves: the next batch needs a buffer of its
        // own either way, and a copy would cost one more pass over them.
        let relay = ranges.filter(|_| rejections.is_empty()).map(|ranges| {
            Box::new(RelayCandidate {
                encoding: batch.compression,
                compressed: batch.payload,
                frame: std::mem::take(&mut self.inflated),
                ranges,
            })
        });
        Work::Apply {
            batch_no: n,
            relay,
            incoming: Incoming {
                from: self.child.clone(),
                events,
                quarantine,
                cursor: Some(cursor),
                source_seqs,
                requires: Some(Seq(batch.after_seq)),
            },
            rejections,
        }
    }
}

/// Batches of one push stream handed to the writer and not yet answered.
/// The writer applies them in the order queued, several in one group commit
/// when they are there together, so it goes on with the next batch while
/// the one before is being fsynced. Each batch requires the one before it
/// to have committed (`Incoming::requires`, checked in the transaction), so
/// a batch that fails can never leave a gap behind a later one.
const APPLY_DEPTH: usize = 4;

/// An ack owed to the child, in stream order.
enum Owed {
    Applying {
        batch_no: u64,
        through: u64,
        rejections: Vec<v1::RecordRejection>,
        outcome: AppliedLater,
    },
    Ready(Result<PushAck, Status>),
}

/// Waits for the ack owed first. Cancel-safe: an unfinished apply stays
/// queued and its answer is kept for the next call.
async fn first_owed(owed: &mut VecDeque<Owed>) -> Result<PushAck, Status> {
    match owed.front_mut() {
        Some(Owed::Ready(answer)) => answer.clone(),
        Some(Owed::Applying {
            batch_no,
            through,
            rejections,
            outcome,
        }) => match outcome.await {
            Ok(o) => {
                // The store's own refusals: events naming another district
                // than their complaint's (checked inside its transaction).
                let mut rejections = std::mem::take(rejections);
                rejections.extend(o.refused.into_iter().map(|r| v1::RecordRejection {
                    event_id: r.event_id.to_string(),
                    code: tonic::Code::PermissionDenied as i32,
                    reason: r.reason,
                }));
                Ok(PushAck {
                    batch_no: *batch_no,
                    through_seq: *through,
                    accepted: o.accepted,
                    duplicates: o.duplicates + o.conflicts,
                    quarantined: o.quarantined,
                    rejections,
                })
            }
            Err(e) => Err(store_status(e)),
        },
        None => std::future::pending().await,
    }
}

/// Commits prepared batches in order, up to [`APPLY_DEPTH`] queued at the
/// writer at once, and acks each after its commit, in order. The first
/// failure ends the stream; nothing after it is acked.
async fn apply_batches(
    store: Store,
    child: SiteCode,
    mut work: mpsc::Receiver<Work>,
    acks: mpsc::Sender<Result<PushAck, Status>>,
) {
    let mut owed: VecDeque<Owed> = VecDeque::new();
    let mut open = true;
    while open || !owed.is_empty() {
        tokio::select! {
            biased;
            answer = first_owed(&mut owed), if !owed.is_empty() => {
                owed.pop_front();
                let failed = answer.is_err();
                if let Err(status) = &answer {
                    tracing::info!(child = %child, %status, "ended a push stream");
                }
                if acks.send(answer).await.is_err() || failed {
                    return;
                }
            }
            item = work.recv(), if open && owed.len() < APPLY_DEPTH => {
                let Some(item) = item else {
                    open = false;
                    continue;
                };
                owed.push_back(match item {
                    // Stops taking work; the acks owed before it go first.
                    Work::Fail(status) => {
                        open = false;
                        Owed::Ready(Err(status))
                    }
                    Work::AlreadyHeld { batch_no, through } => Owed::Ready(Ok(PushAck {
                        batch_no,
                        through_seq: through.0,
                        ..Default::default()
                    })),
                    Work::Apply {
                        batch_no,
                        incoming,
                        rejections,
                        relay,
                    } => {
                        let through = incoming.cursor.as_ref().map(|c| c.seq.0).unwrap_or_default();
                        let queued = match relay {
                            Some(relay) => store.queue_apply_remote_relaying(incoming, *relay).await,
                            None => store.queue_apply_remote(incoming).await,
                        };
                        match queued {
                            Ok(outcome) => Owed::Applying {
                                batch_no,
                                through,
                                rejections,
                                outcome,
                            },
                            Err(e) => {
                                open = false;
                                Owed::Ready(Err(store_status(e)))
                            }
                        }
                    }
                });
            }
        }
    }
}

/// Re-validates quarantined records (after an operator fixed the cause, e.g.
/// an updated region list) and stores those that now pass. Returns
/// (replayed, still refused).
pub async fn replay_quarantine(
    store: &Store,
    ids: Option<Vec<i64>>,
) -> Result<(u32, u32), crate::store::StoreError> {
    let entries = store.quarantined(None).await?;
    let mut replayed = 0;
    let mut refused = 0;
    for entry in entries
        .into_iter()
        .filter(|e| ids.as_ref().is_none_or(|ids| ids.contains(&e.id)))
    {
        let from = SiteCode::parse(&entry.received_from).ok();
        let event = v1::Event::decode(entry.payload.as_slice())
            .ok()
            .and_then(|p| convert::event_from_proto(p).ok())
            .filter(|e| {
                from.as_ref()
                    .is_some_and(|f| scope::check_event(f, e).is_ok())
            });
        let event = match event {
            Some(event) => {
                let known = store.complaint_district(event.complaint_id).await?;
                scope::check_complaint_district(&event, known.as_ref())
                    .is_ok()
                    .then_some(event)
            }
            None => None,
        };
        match (event, from) {
            (Some(event), Some(from)) => {
                let outcome = store
                    .apply_remote(Incoming {
                        from,
                        events: vec![event],
                        quarantine: vec![],
                        cursor: None,
                        source_seqs: vec![],
                        requires: None,
                    })
                    .await?;
                // The old entry is settled either way; a complaint created
                // meanwhile in another district makes the store refuse it
                // again, as a new entry with the reason of now.
                store.mark_replayed(vec![entry.id]).await?;
                if outcome.refused.is_empty() {
                    replayed += 1;
                } else {
                    refused += 1;
                }
            }
            _ => refused += 1,
        }
    }
    Ok((replayed, refused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::SystemClock;
    use crate::store::StoreConfig;
    use crate::tls::link::InsecureLoopback;
    use crate::tls::peer::PeerIdentity;

    fn hub(limits: ServerLimits) -> (tempfile::TempDir, Store, ReplicationService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            path: dir.path().join("hub.db"),
            site: SiteCode::parse("11").unwrap(),
            clock: SystemClock::default(),
        })
        .unwrap();
        let service = ReplicationService::new(
            store.clone(),
            limits,
            TaskTracker::new(),
            CancellationToken::new(),
        );
        (dir, store, service)
    }

    fn hello_from(site: &str) -> HelloRequest {
        HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            site: site.into(),
            role: v1::SiteRole::Node as i32,
            ..Default::default()
        }
    }

    /// A request as the TLS interceptor hands it on for `subject`'s
    /// verified certificate.
    fn with_cert<T>(subject: Subject, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.extensions_mut().insert(PeerIdentity {
            subject,
            serial: "0a".into(),
            not_after: i64::MAX,
        });
        request
    }

    fn site_cert<T>(site: &str, message: T) -> Request<T> {
        with_cert(Subject::Site(SiteCode::parse(site).unwrap()), message)
    }

    fn insecure<T>(message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.extensions_mut().insert(InsecureLoopback);
        request
    }

    async fn audit_rows(store: &Store) -> u64 {
        store.verify_audit().await.unwrap().rows
    }

    #[test]
    fn a_push_stream_keeps_its_inflate_buffer_for_usual_batches_not_for_an_outsized_one() {
        let mut reader = PushReader {
            child: SiteCode::parse("11.13").unwrap(),
            limits: ServerLimits::default(),
            inflated: Vec::new(),
            expected: Seq(0),
            relaying: false,
        };
        // One (invalid, so quarantined) event of `bytes` bytes per batch.
        let batch = |no: u64, bytes: usize| {
            let event = v1::Event {
                actor: "a".repeat(bytes),
                ..Default::default()
            }
            .encode_to_vec();
            let raw = codec::frame_events([event.as_slice()]);
            PushBatch {
                batch_no: no,
                after_seq: no - 1,
                through_seq: no,
                compression: v1::Compression::Zstd as i32,
                payload: codec::compress(v1::Compression::Zstd, &raw).unwrap(),
                event_count: 1,
                seqs: vec![no],
            }
        };
        assert!(matches!(
            reader.prepare(batch(1, 100_000)),
            Work::Apply { .. }
        ));
        reader.trim_inflated();
        assert!(
            reader.inflated.capacity() >= 100_000,
            "kept for the next batch"
        );
        assert!(matches!(
            reader.prepare(batch(2, 6 << 20)),
            Work::Apply { .. }
        ));
        assert!(reader.inflated.capacity() > KEEP_INFLATED_BYTES);
        reader.trim_inflated();
        assert_eq!(
            reader.inflated.capacity(),
            0,
            "let go after an outsized batch"
        );
    }

    /// Found by the fuzz_hello target (seed `clock_min`, docs/security.md).
    #[tokio::test]
    async fn a_hello_with_an_extreme_child_clock_is_answered_not_a_panic() {
        let (_dir, _store, service) = hub(ServerLimits::default());
        for wall_clock_ms in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let hello = HelloRequest {
                wall_clock_ms,
                ..hello_from("11.13")
            };
            let answer = service.hello(insecure(hello)).await;
            assert!(answer.is_ok(), "clock {wall_clock_ms}: {answer:?}");
        }
    }

    #[tokio::test]
    async fn with_a_certificate_the_child_is_the_certificates_site_not_the_hellos() {
        let (_dir, store, service) = hub(ServerLimits::default());
        let status = service
            .hello(site_cert("11.13", hello_from("11.71")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("11.13"), "{status:?}");
        assert_eq!(audit_rows(&store).await, 1, "the refusal is audited");
        service
            .hello(site_cert("11.13", hello_from("11.13")))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_huge_claimed_site_is_quoted_bounded() {
        let (_dir, store, service) = hub(ServerLimits::default());
        let status = service
            .hello(site_cert("11.13", hello_from(&"1".repeat(1 << 20))))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().len() < 256, "{}", status.message().len());
        assert_eq!(audit_rows(&store).await, 1);
    }

    #[tokio::test]
    async fn an_operator_certificate_does_not_replicate() {
        let (_dir, store, service) = hub(ServerLimits::default());
        let operator = Subject::Operator {
            name: "admin".into(),
            role: crate::rpc::caller::CallerRole::IdentityReader,
        };
        let status = service
            .hello(with_cert(operator, hello_from("11.13")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(audit_rows(&store).await, 1);
    }

    #[tokio::test]
    async fn a_request_with_neither_certificate_nor_insecure_mode_is_unauthenticated() {
        let (_dir, _store, service) = hub(ServerLimits::default());
        let status = service
            .hello(Request::new(hello_from("11.13")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_session_cannot_be_borrowed_by_another_certificate() {
        let (_dir, store, service) = hub(ServerLimits::default());
        let session_id = service
            .hello(site_cert("11.13", hello_from("11.13")))
            .await
            .unwrap()
            .into_inner()
            .session_id;
        let pull = || PullRequest {
            session_id: session_id.clone(),
            ..Default::default()
        };
        let status = match service.pull(site_cert("11.71", pull())).await {
            Err(status) => status,
            Ok(_) => panic!("another certificate pulled on 11.13's session"),
        };
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert_eq!(audit_rows(&store).await, 1);
        assert!(service.pull(site_cert("11.13", pull())).await.is_ok());
    }

    #[tokio::test]
    async fn a_flooding_child_gets_resource_exhausted_with_retry_info_and_another_is_served() {
        let limits = ServerLimits {
            child_rate: RateLimit {
                per_second: 0.001,
                burst: 3,
            },
            ..ServerLimits::default()
        };
        let (_dir, _store, service) = hub(limits);
        service
            .hello(site_cert("11.13", hello_from("11.13")))
            .await
            .unwrap();
        let status = service
            .hello(site_cert("11.13", hello_from("11.13")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        let delay = super::super::limit::retry_delay(&status);
        assert!(delay.is_some_and(|d| !d.is_zero()), "{status:?}");
        // Another district at the same moment is served.
        service
            .hello(site_cert("11.71", hello_from("11.71")))
            .await
            .unwrap();
    }
}
