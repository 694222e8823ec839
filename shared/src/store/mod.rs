//! The site store: one SQLite database per site. This module is the only
//! place in the workspace that speaks SQL (`node` and `hub` do not even
//! depend on rusqlite).
//!
//! # Design constraints
//!
//! - The event log is append-only; complaint rows are derived from it (the
//!   fold in `crate::lifecycle`) in the same transaction as the events.
//! - Storing is idempotent by event id: same id and same bytes is a no-op,
//!   same id with other bytes is a [`StoreError::Conflict`], recorded and
//!   never overwritten.
//! - One writer thread owns the write connection and commits in groups:
//!   whatever is queued when a transaction starts goes into it, and each
//!   caller's future resolves only after the commit that holds its data
//!   (`synchronous=FULL`). One failing request rolls back only its own
//!   savepoint, not its neighbours in the group.
//! - Readers use their own connections (WAL snapshots) and never wait behind
//!   the writer.
//! - Reporter identity never reaches the database in plain text: event
//!   payloads are stored without it and it is sealed beside them with the
//!   site key (`identity`: threat model, disk format, rules). Reads return
//!   complaints without identity; [`Store::read_identities`] opens it for
//!   an entitled reader and appends to the audit log first (`audit`).
//!
//! ```text
//!  callers ──mpsc (bounded)──▶ writer thread: BEGIN IMMEDIATE
//!                                 SAVEPOINT op1 … RELEASE
//!                                 SAVEPOINT op2 … RELEASE   (group)
//!                               COMMIT (one fsync) ──▶ oneshot replies
//!  readers ──spawn_blocking──▶ read pool (query_only connections)
//! ```

mod audit;
mod checkpoint;
mod connection;
mod custody;
mod districts;
mod error;
mod identity;
mod migrations;
mod read;
mod relay;
mod signals;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use audit::{AuditAction, AuditEntry, AuditHead, AuditVerdict, BrokenLink, LinkFault};
pub use error::StoreError;
pub use identity::{HeldIdentity, IdentityKey, IdentityScope};
pub use migrations::SCHEMA_VERSION;
pub use relay::{RelayCandidate, Relayed, RelayedBatch};

use crate::crypto::SiteKey;
use crate::domain::{
    ComplaintId, Event, EventBody, EventId, Intake, Nik, Seq, SiteCode, SiteRole, Status,
    TrackingNumber,
};
use crate::hlc::{Hlc, SystemClock};
use crate::lifecycle::ComplaintState;

/// Where the database lives and whose it is.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// This site's code ("11.13", "11", "00"). A database is bound to one
    /// site for life; opening it as another is refused.
    pub site: SiteCode,
    /// Wall clock for the HLC (shifted only by the test-only offset).
    pub clock: SystemClock,
}

/// A new complaint received at this node.
#[derive(Debug, Clone)]
pub struct NewComplaint {
    /// Client-minted id for safe retries; minted here when `None`.
    pub complaint_id: Option<ComplaintId>,
    /// For an anonymous complaint, `intake.reporter` (when staff recorded
    /// it) is kept at this node only: it never enters the Created event.
    pub intake: Intake,
    pub actor: String,
}

/// What [`Store::submit`] recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub complaint_id: ComplaintId,
    pub tracking_number: TrackingNumber,
    pub event_id: EventId,
    pub hlc: Hlc,
    /// The complaint id was already stored with the same intake.
    pub duplicate: bool,
}

/// A lifecycle event written at this site.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Client-minted id for safe retries; minted here when `None`.
    pub event_id: Option<EventId>,
    pub complaint_id: ComplaintId,
    pub actor: String,
    pub body: EventBody,
}

/// What [`Store::add_event`] recorded.
#[derive(Debug, Clone)]
pub struct Appended {
    pub event_id: EventId,
    pub hlc: Hlc,
    pub duplicate: bool,
    pub state: ComplaintState,
}

/// How a complaint is looked up.
#[derive(Debug, Clone)]
pub enum ComplaintKey {
    Id(ComplaintId),
    Tracking(TrackingNumber),
}

/// A complaint with its full history, in fold order.
#[derive(Debug, Clone)]
pub struct ComplaintView {
    pub state: ComplaintState,
    pub history: Vec<Event>,
    /// At the complaint's own node: when it was durable at each tier above
    /// (from custody receipts); empty elsewhere or before any receipt.
    pub custody: Vec<Custody>,
}

/// Which complaints a list or count covers.
#[derive(Debug, Clone, Default)]
pub struct ComplaintFilter {
    /// A province ("11") or district ("11.13"); `None` = every complaint.
    pub region: Option<String>,
    /// Empty = any status.
    pub statuses: Vec<Status>,
    /// Only complaints whose last event is later than this.
    pub updated_since: Option<Hlc>,
}

/// One page of a list, newest complaint first.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Clamped to 1..=[`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// From a previous [`Page::next_token`].
    pub token: Option<String>,
}

/// The largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<ComplaintState>,
    pub next_token: Option<String>,
}

/// Counters for `status` commands and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    pub site: SiteCode,
    pub head_seq: Seq,
    pub events: u64,
    pub complaints: u64,
    pub conflicts: u64,
    pub quarantined: u64,
    pub schema_version: u32,
}

/// The kinds of replication cursor a site keeps per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CursorKind {
    /// At a parent: the highest seq of the child held durably here.
    PushIn,
    /// At a child: the highest seq of the parent held here.
    PullIn,
    /// At a child: the highest own seq the parent acknowledged.
    PushOut,
}

impl CursorKind {
    fn as_sql(self) -> &'static str {
        match self {
            CursorKind::PushIn => "push_in",
            CursorKind::PullIn => "pull_in",
            CursorKind::PushOut => "push_out",
        }
    }
}

/// A cursor to advance in the same transaction as the data it covers.
/// `PushIn` and `PullIn` never move backwards (they cover data held here);
/// `PushOut` mirrors what the parent says it holds, so it follows the
/// parent even backwards (a parent restored from an older backup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorUpdate {
    pub peer: SiteCode,
    pub kind: CursorKind,
    pub seq: Seq,
}

/// A record refused by validation or authorization, kept for an operator
/// (sealed at rest: it may hold identity) and recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub event_id: Option<String>,
    /// The bytes as received (an encoded `lapor.sync.v1.Event`).
    pub payload: Vec<u8>,
    pub reason: String,
}

/// Events received from a peer, stored in one transaction.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub from: SiteCode,
    pub events: Vec<Event>,
    /// The sender's own seq of each event, in order (empty when the sender
    /// is a parent: receipts flow only upward-pushed events).
    pub source_seqs: Vec<u64>,
    /// Refused records; each also gets a `refused_write` audit row.
    pub quarantine: Vec<QuarantineRecord>,
    pub cursor: Option<CursorUpdate>,
    /// The seq of the sender's log this batch continues from: it is applied
    /// only if `cursor`'s stored value has reached it, i.e. the batch before
    /// it committed. A caller that queues several batches before their
    /// answers ([`Store::queue_apply_remote`]) sets it, so a batch that
    /// failed can never leave a gap behind a later one that committed.
    pub requires: Option<Seq>,
}

/// The answer to a batch queued with [`Store::queue_apply_remote`].
#[derive(Debug)]
pub struct AppliedLater(oneshot::Receiver<(Result<ApplyOutcome, StoreError>, writer::Spent)>);

impl std::future::Future for AppliedLater {
    type Output = Result<ApplyOutcome, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| match answer {
                Ok((outcome, spent)) => {
                    drop(spent);
                    outcome
                }
                Err(_) => Err(StoreError::Closed),
            })
    }
}

/// What [`Store::apply_remote`] did with each event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub accepted: u32,
    pub duplicates: u32,
    pub conflicts: u32,
    /// Records quarantined: those the caller refused plus [`Self::refused`].
    pub quarantined: u32,
    /// Events the store itself refused and quarantined, inside the same
    /// transaction: each names another district than the one its complaint
    /// was created in (as held here, or created earlier in the batch).
    pub refused: Vec<RefusedEvent>,
    /// The seqs this site gave the first and the last event it stored.
    pub stored_seqs: Option<(Seq, Seq)>,
}

/// An event [`Store::apply_remote`] quarantined instead of storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEvent {
    pub event_id: EventId,
    pub reason: String,
}

/// A run of stored events for replication: encoded `lapor.sync.v1.Event`s
/// with their local seqs, covering the seq range `(after, through]`. A
/// non-anonymous complaint's Created event carries its identity again
/// (the canonical event); `local` identities are never in a run.
///
/// The events are read from their rows straight into one buffer, already
/// framed as an `EventBatch` (`replication::codec::frame_events`' layout),
/// so a sender compresses `framed` as it is: no buffer per event, and no
/// second copy to frame them.
#[derive(Debug, Clone, Default)]
pub struct EventRun {
    pub through: Seq,
    /// The events as an `EventBatch` encoding, one `events` record each.
    pub framed: Vec<u8>,
    /// Each event's seq and where its encoding lies in `framed`.
    pub events: Vec<(Seq, std::ops::Range<usize>)>,
    /// The run reached the end of the log as of its snapshot; `false` when
    /// it stopped at `max_events` or `max_bytes` with more left to read.
    pub complete: bool,
}

impl EventRun {
    /// Each event's seq and canonical encoding, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = (Seq, &[u8])> + Clone + '_ {
        self.events
            .iter()
            .map(|(seq, at)| (*seq, &self.framed[at.clone()]))
    }

    /// Events in the run.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The run's buffer, emptied, for the next run to fill
    /// ([`Store::event_run_into`]) without growing a new one.
    pub fn into_buffer(self) -> Vec<u8> {
        let mut framed = self.framed;
        framed.clear();
        framed
    }
}

/// Which events a replication reader wants.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub after: Seq,
    /// Leave out events that arrived from this peer (no echo).
    pub exclude_from: Option<SiteCode>,
    /// Only events of complaints in this region ("11", "11.13").
    pub region: Option<SiteCode>,
    pub max_events: usize,
    pub max_bytes: usize,
    /// Stop at this seq even if more would fit.
    pub until: Option<Seq>,
}

/// A quarantined record as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_from: String,
    pub event_id: Option<String>,
    pub reason: String,
    pub recorded_at_ms: i64,
    /// The record as received (opened: it is sealed at rest).
    pub payload: Vec<u8>,
}

/// What a site learned about a peer (a child's parent, or a parent's child).
/// `None` fields leave the stored value as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerUpdate {
    pub peer: Option<SiteCode>,
    pub seen_at_ms: Option<i64>,
    /// `Some(msg)` records an error at `now`.
    pub error: Option<String>,
    pub clock_skew_ms: Option<i64>,
    pub head_seq: Option<Seq>,
}

/// A peer as recorded in the `peers` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    pub peer: String,
    pub role: String,
    pub last_seen_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    pub clock_skew_ms: Option<i64>,
    pub peer_head_seq: Option<u64>,
    /// Events received from this peer and stored.
    pub received_events: u64,
    /// Events received from this peer that were already held (re-sends).
    pub received_duplicates: u64,
}

/// A tier above a node where its events become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CustodyTier {
    Province,
    National,
}

impl CustodyTier {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            CustodyTier::Province => "province",
            CustodyTier::National => "national",
        }
    }
}

/// When a complaint was first durable at a tier above its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Custody {
    pub tier: CustodyTier,
    pub at_ms: i64,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// The answer to a batch, with the batch itself handed back: its events
/// are freed by the caller, not on the writer's thread, where every
/// microsecond is one the next group waits for.
type ApplyReply = oneshot::Sender<(Result<ApplyOutcome, StoreError>, writer::Spent)>;

/// A handle to a site's store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    site: SiteCode,
    /// Seals and opens identities; shared with the writer thread.
    key: Arc<SiteKey>,
    writer: mpsc::Sender<writer::Command>,
    minter: Arc<std::sync::Mutex<writer::Minter>>,
    readers: read::ReadPool,
    head: watch::Receiver<Seq>,
    /// Per-region commit signals, published by the writer.
    signals: Arc<signals::RegionSignals>,
    receipts: watch::Receiver<u64>,
    /// Pushed batches kept for forwarding unchanged; filled by the writer.
    relay: Arc<std::sync::Mutex<relay::RelayMap>>,
    /// Joined by `close`; `None` once taken.
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("site", &self.inner.site)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// [`Store::open_with_key_file`] with the key at its default place,
    /// `site.key` beside the database.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let key_path = crate::crypto::key_path_beside(&config.path);
        Store::open_with_key_file(config, &key_path)
    }

    /// Opens the database (creating and migrating it as needed), binds it
    /// to the site key at `key_path`, and starts the writer thread.
    ///
    /// The key is created (mode 0600) only for a database that was never
    /// sealed with one: a new database, or one from before identities were
    /// sealed (whose plain-text identities are sealed now, once).
    ///
    /// # Errors
    /// [`StoreError::IncompatibleVersion`] for a database from a newer
    /// binary, [`StoreError::WrongSite`] for another site's database,
    /// [`StoreError::Key`] for a missing or too-open key file,
    /// [`StoreError::WrongKey`] for another site's key.
    pub fn open_with_key_file(config: StoreConfig, key_path: &Path) -> Result<Store, StoreError> {
        let started = writer::start(&config, key_path)?;
        let readers = read::ReadPool::new(config.path.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                site: config.site,
                key: started.key,
                writer: started.sender,
                minter: started.minter,
                readers,
                head: started.head,
                signals: started.signals,
                relay: started.relay,
                receipts: started.receipts,
                thread: std::sync::Mutex::new(Some(started.thread)),
            }),
        })
    }

    /// This site's wall clock, Unix ms: the clock its HLC follows (shifted
    /// by the test-only offset). Anything that tells a peer "my time" uses
    /// this, so skew measurements see what the HLC sees.
    pub fn wall_clock_ms(&self) -> i64 {
        writer::lock(&self.inner.minter).clock.wall_ms() as i64
    }

    /// This store's site.
    pub fn site(&self) -> &SiteCode {
        &self.inner.site
    }

    /// The highest committed seq; changes are signalled after each commit
    /// (Pull streams wait on it).
    pub fn watch_head(&self) -> watch::Receiver<Seq> {
        self.inner.head.clone()
    }

    /// Changes after each commit that stored events of `region` — a
    /// district, a province (any of its districts) or national (any event);
    /// the value is the head seq after that commit. Commits before the call
    /// are not signalled, so read from your cursor after subscribing.
    /// Pull feeds wait on this, so a commit wakes only the feeds it
    /// concerns.
    pub fn watch_region(&self, region: &SiteCode) -> watch::Receiver<Seq> {
        self.inner.signals.subscribe(region)
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> writer::Command,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Records a new complaint at this node: mints its HLC, event id and
    /// tracking number, and resolves once it is durable.
    pub async fn submit(&self, c: NewComplaint) -> Result<Submitted, StoreError> {
        let site = &self.inner.site;
        if site.role() != SiteRole::Node {
            return Err(StoreError::Rejected {
                reason: format!("site {site} is a hub; intake happens at district nodes"),
            });
        }
        // Stamp, encode and fold here, on the caller's task: that work then
        // runs beside the writer instead of on its thread.
        let (hlc, tracking_number) = {
            let mut m = writer::lock(&self.inner.minter);
            (m.clock.now(), m.tracking_number())
        };
        let mut intake = c.intake;
        // An anonymous complaint's identity stays here: out of the event.
        let local = if intake.privacy.anonymous {
            intake.reporter.take()
        } else {
            None
        };
        let event = Event {
            id: EventId::new_v7(),
            complaint_id: c.complaint_id.unwrap_or_else(ComplaintId::new_v7),
            origin: site.clone(),
            hlc,
            actor: c.actor,
            district: site.clone(),
            body: EventBody::Created {
                tracking_number,
                intake: Box::new(intake),
            },
        };
        let mut stored = identity::stored_form(&self.inner.key, &event);
        if let Some(reporter) = local {
            stored.identity = Some(identity::seal(
                &self.inner.key,
                event.id,
                IdentityScope::Local,
                reporter,
            ));
        }
        let state = crate::lifecycle::fold(std::slice::from_ref(&event)).ok_or_else(|| {
            StoreError::Rejected {
                reason: "the intake does not make a complaint".into(),
            }
        })?;
        let prepared = writer::PreparedSubmit {
            event,
            stored,
            row: writer::ComplaintRow::of(&state),
            retry: c.complaint_id.is_some(),
        };
        self.call(|reply| writer::Command::Submit(Box::new(prepared), reply))
            .await
    }

    /// Appends a lifecycle event written at this site.
    pub async fn add_event(&self, e: NewEvent) -> Result<Appended, StoreError> {
        self.call(|reply| writer::Command::AddEvent(e, reply)).await
    }

    /// Stores events received from a peer, the quarantined records and the
    /// peer's cursor in one transaction.
    pub async fn apply_remote(&self, incoming: Incoming) -> Result<ApplyOutcome, StoreError> {
        self.queue_apply_remote(incoming).await?.await
    }

    /// Queues `incoming` for the writer and returns once it is queued; the
    /// returned future resolves when it is committed (or refused). Batches
    /// one caller queues one after another are applied in that order, and
    /// several may share one group commit: a push stream keeps the writer
    /// busy through the fsync of the batch before instead of waiting for it.
    pub async fn queue_apply_remote(&self, incoming: Incoming) -> Result<AppliedLater, StoreError> {
        self.queue_apply(incoming, None).await
    }

    /// [`Store::queue_apply_remote`] for a pushed batch a hub will send on
    /// upward: if every event of it is stored, at consecutive seqs, and
    /// reads back as the bytes received, the batch is kept, compressed as
    /// it came, for [`Store::take_relayed`] (bounded memory, dropped when
    /// any identity here is erased; a cache, never needed).
    pub async fn queue_apply_remote_relaying(
        &self,
        incoming: Incoming,
        candidate: RelayCandidate,
    ) -> Result<AppliedLater, StoreError> {
        self.queue_apply(incoming, Some(candidate)).await
    }

    async fn queue_apply(
        &self,
        incoming: Incoming,
        candidate: Option<RelayCandidate>,
    ) -> Result<AppliedLater, StoreError> {
        // Encoding and sealing run here, beside the writer, not on its thread.
        let key = &self.inner.key;
        let stored: Vec<_> = incoming
            .events
            .iter()
            .map(|e| identity::stored_form(key, e))
            .collect();
        let sealed = incoming
            .quarantine
            .iter()
            .map(|q| key.seal(identity::QUARANTINE_AAD, &q.payload))
            .collect();
        // A candidate with a refused record has more events than `stored`,
        // and `verify` turns it down.
        let relayable = candidate.and_then(|c| relay::verify(c, &stored));
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(writer::Command::ApplyRemote(
                incoming, stored, sealed, relayable, tx,
            ))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(AppliedLater(rx))
    }

    /// The batch kept for forwarding that holds exactly the events after
    /// `after` (see [`Store::queue_apply_remote_relaying`]), if it was
    /// compressed with `encoding` and fits a link's `max_raw` bytes and
    /// `max_events`; or where the next kept batch starts, so a run can stop
    /// before it. Kept batches at or before `after` are dropped.
    pub fn take_relayed(
        &self,
        after: Seq,
        encoding: i32,
        max_raw: usize,
        max_events: usize,
    ) -> Option<Relayed> {
        self.inner
            .relay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(after.0, encoding, max_raw, max_events)
    }

    /// Opens the reporter identity of each complaint in `keys` that has
    /// one here, for `reader` (who is entitled: the caller decided), after
    /// appending one `read_identity` audit row per complaint. No audit row
    /// committed, no identity returned.
    pub async fn read_identities(
        &self,
        keys: Vec<IdentityKey>,
        reader: &str,
    ) -> Result<Vec<HeldIdentity>, StoreError> {
        let key = self.inner.key.clone();
        let found = self
            .inner
            .readers
            .run(move |conn| identity::fetch(conn, &key, &keys))
            .await?;
        if !found.is_empty() {
            let entries = found
                .iter()
                .map(|h| AuditEntry {
                    actor: reader.to_owned(),
                    action: AuditAction::ReadIdentity,
                    subject: h.complaint_id.to_string(),
                    detail: format!("scope {}", h.scope),
                })
                .collect();
            self.audit(entries).await?;
        }
        Ok(found)
    }

    /// Complaints whose reporter gave `nik`, found by its keyed hash (the
    /// NIK itself is stored nowhere); audited as `lookup_nik` for `reader`.
    pub async fn find_by_nik(
        &self,
        nik: &Nik,
        reader: &str,
    ) -> Result<Vec<ComplaintId>, StoreError> {
        let hash = self.inner.key.nik_hash(nik);
        let found = self
            .inner
            .readers
            .run(move |conn| identity::complaints_by_nik(conn, &hash))
            .await?;
        self.audit(vec![AuditEntry {
            actor: reader.to_owned(),
            action: AuditAction::LookupNik,
            subject: "-".into(),
            detail: format!("{} complaint(s) matched", found.len()),
        }])
        .await?;
        Ok(found)
    }

    /// Appends `entries` to the audit log; resolves once they are durable.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::Audit(entries, reply))
            .await
    }

    /// Walks the audit log's hash chain; see [`AuditVerdict`].
    pub async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        self.inner.readers.run(audit::verify).await
    }

    /// Sets a cursor (see [`CursorUpdate`] for which kinds may go back).
    pub async fn set_cursor(&self, update: CursorUpdate) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::SetCursor(update, reply))
            .await
    }

    /// Marks quarantined records replayed (after they were re-applied).
    pub async fn mark_replayed(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::MarkReplayed(ids, reply))
            .await
    }

    /// Records what was learned about a peer.
    pub async fn record_peer(&self, update: PeerUpdate) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::RecordPeer(update, reply))
            .await
    }

    /// Records that this site's events through `through` were durable at
    /// `tier` by `at_ms` (idempotent).
    pub async fn record_custody(
        &self,
        tier: CustodyTier,
        through: Seq,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.call(|reply| writer::Command::RecordCustody(tier, through, at_ms, reply))
            .await
    }

    /// At a province hub: turns the parent's ack cursor into per-child
    /// receipts ("your events through N are durable at national"). Returns
    /// whether any child's receipt moved; receipt watchers are woken then.
    pub async fn advance_receipts(&self, parent: SiteCode, acked: Seq) -> Result<bool, StoreError> {
        self.call(|reply| writer::Command::AdvanceReceipts(parent, acked, reply))
            .await
    }

    /// The national receipt for `child`, if any: (through child seq, at_ms).
    pub async fn receipt_for(&self, child: SiteCode) -> Result<Option<(Seq, i64)>, StoreError> {
        self.inner
            .readers
            .run(move |conn| custody::receipt_for(conn, &child))
            .await
    }

    /// Signalled whenever receipts for children move.
    pub fn watch_receipts(&self) -> watch::Receiver<u64> {
        self.inner.receipts.clone()
    }

    /// Every peer this site has spoken with.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, StoreError> {
        self.inner.readers.run(read::peers).await
    }

    pub async fn get(&self, key: ComplaintKey) -> Result<Option<ComplaintView>, StoreError> {
        self.inner
            .readers
            .run(move |conn| read::get(conn, &key))
            .await
    }

    pub async fn list(
        &self,
        filter: ComplaintFilter,
        page: PageRequest,
    ) -> Result<Page, StoreError> {
        self.inner
            .readers
            .run(move |conn| read::list(conn, &filter, &page))
            .await
    }

    pub async fn count(&self, filter: ComplaintFilter) -> Result<u64, StoreError> {
        self.inner
            .readers
            .run(move |conn| read::count(conn, &filter))
            .await
    }

    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let site = self.inner.site.clone();
        self.inner
            .readers
            .run(move |conn| read::stats(conn, site))
            .await
    }

    /// A cursor's value (`Seq(0)` when never set).
    pub async fn cursor(&self, peer: SiteCode, kind: CursorKind) -> Result<Seq, StoreError> {
        self.inner
            .readers
            .run(move |conn| read::cursor(conn, &peer, kind))
            .await
    }

    /// Every cursor this site keeps: (peer, kind, seq, updated_at_ms).
    pub async fn cursors(&self) -> Result<Vec<(String, CursorKind, Seq, i64)>, StoreError> {
        self.inner.readers.run(read::cursors).await
    }

    /// Stored events after a seq, for replication.
    pub async fn event_run(&self, req: RunRequest) -> Result<EventRun, StoreError> {
        self.event_run_into(req, Vec::new()).await
    }

    /// [`Store::event_run`] framed into `buffer` (cleared first): a sender
    /// that hands back each run's buffer ([`EventRun::into_buffer`]) reads
    /// batch after batch into memory it already holds.
    pub async fn event_run_into(
        &self,
        req: RunRequest,
        buffer: Vec<u8>,
    ) -> Result<EventRun, StoreError> {
        let key = self.inner.key.clone();
        self.inner
            .readers
            .run(move |conn| read::event_run(conn, &key, &req, buffer))
            .await
    }

    /// Count of events after `after` not received from `exclude_from`, and
    /// the local time (ms) the oldest of them was stored.
    pub async fn backlog(
        &self,
        after: Seq,
        exclude_from: Option<SiteCode>,
    ) -> Result<(u64, Option<i64>), StoreError> {
        self.inner
            .readers
            .run(move |conn| read::backlog(conn, after, exclude_from.as_ref()))
            .await
    }

    /// Quarantined records not yet replayed (all when `peer` is `None`).
    pub async fn quarantined(
        &self,
        peer: Option<String>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        let key = self.inner.key.clone();
        self.inner
            .readers
            .run(move |conn| read::quarantined(conn, &key, peer.as_deref()))
            .await
    }

    /// `PRAGMA integrity_check`: `["ok"]` when the database is sound.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        self.inner.readers.run(read::integrity_check).await
    }

    /// Drains queued writes, stops the writer thread and waits for it.
    pub async fn close(self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .writer
            .send(writer::Command::Shutdown(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        let handle = self
            .inner
            .thread
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || {
                let _ = handle.join();
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
