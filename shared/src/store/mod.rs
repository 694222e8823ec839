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
//!
//! ```text
//!  callers ──mpsc (bounded)──▶ writer thread: BEGIN IMMEDIATE
//!                                 SAVEPOINT op1 … RELEASE
//!                                 SAVEPOINT op2 … RELEASE   (group)
//!                               COMMIT (one fsync) ──▶ oneshot replies
//!  readers ──spawn_blocking──▶ read pool (query_only connections)
//! ```

mod connection;
mod custody;
mod migrations;
mod read;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use migrations::SCHEMA_VERSION;

use crate::domain::{
    ComplaintId, Event, EventBody, EventId, Intake, Seq, SiteCode, SiteRole, Status, TrackingNumber,
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

/// A record refused by validation or authorization, kept for an operator.
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
    pub quarantine: Vec<QuarantineRecord>,
    pub cursor: Option<CursorUpdate>,
}

/// What [`Store::apply_remote`] did with each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub accepted: u32,
    pub duplicates: u32,
    pub conflicts: u32,
    pub quarantined: u32,
}

/// A run of stored events for replication: encoded `lapor.sync.v1.Event`s
/// with their local seqs, covering the seq range `(after, through]`.
#[derive(Debug, Clone, Default)]
pub struct EventRun {
    pub through: Seq,
    pub events: Vec<(Seq, Vec<u8>)>,
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
}

/// A quarantined record as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_from: String,
    pub event_id: Option<String>,
    pub reason: String,
    pub recorded_at_ms: i64,
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

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No complaint with that id (or tracking number) is stored.
    #[error("complaint {0} not found")]
    NotFound(String),
    /// The event id is stored with different content; the new copy was
    /// recorded in `conflicts` and not applied.
    #[error("event {0} is already stored with different content")]
    Conflict(EventId),
    /// The write is not allowed in the complaint's current state or at this
    /// site (illegal transition, `Created` via `add_event`, out of scope).
    #[error("refused: {reason}")]
    Rejected { reason: String },
    /// A list page token that this store did not issue.
    #[error("bad page token {0:?}")]
    BadPageToken(String),
    /// A filter that names no region this store can match.
    #[error("bad filter: {0}")]
    BadFilter(String),
    /// The database was written by a newer binary.
    #[error("database schema version {found} is newer than this binary supports ({supported})")]
    IncompatibleVersion { found: u32, supported: u32 },
    /// The database belongs to another site.
    #[error("database belongs to site {found}, not {expected}")]
    WrongSite { found: String, expected: SiteCode },
    /// The store was closed (shutdown in progress).
    #[error("store is closed")]
    Closed,
    /// A migration failed; the database keeps its previous version.
    #[error("apply migration {version}")]
    Migration {
        version: u32,
        #[source]
        source: rusqlite::Error,
    },
    /// The group commit holding this request failed; nothing of the group
    /// was written.
    #[error("commit group")]
    GroupCommit(#[source] Arc<StoreError>),
    /// SQLite failed.
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored event no longer decodes (corruption or a bug).
    #[error("decode stored event at seq {seq}: {reason}")]
    Corrupt { seq: i64, reason: String },
    /// Opening the database file failed.
    #[error("open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A blocking task could not be run (runtime shutting down).
    #[error("run blocking store task")]
    Join(#[from] tokio::task::JoinError),
}

impl StoreError {
    /// Failures of the storage itself (as opposed to a refused request).
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(_)
                | StoreError::Corrupt { .. }
                | StoreError::Open { .. }
                | StoreError::GroupCommit(_)
                | StoreError::Migration { .. }
        )
    }

    /// True for errors that a caller may retry unchanged.
    pub fn is_retriable(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Closed | StoreError::Join(_) => true,
            _ => false,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A handle to a site's store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    site: SiteCode,
    writer: mpsc::Sender<writer::Command>,
    minter: Arc<std::sync::Mutex<writer::Minter>>,
    readers: read::ReadPool,
    head: watch::Receiver<Seq>,
    receipts: watch::Receiver<u64>,
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
    /// Opens the database (creating and migrating it as needed) and starts
    /// the writer thread.
    ///
    /// # Errors
    /// [`StoreError::IncompatibleVersion`] for a database from a newer
    /// binary, [`StoreError::WrongSite`] for another site's database.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let started = writer::start(&config)?;
        let readers = read::ReadPool::new(config.path.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                site: config.site,
                writer: started.sender,
                minter: started.minter,
                readers,
                head: started.head,
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
        let event = Event {
            id: EventId::new_v7(),
            complaint_id: c.complaint_id.unwrap_or_else(ComplaintId::new_v7),
            origin: site.clone(),
            hlc,
            actor: c.actor,
            district: site.clone(),
            body: EventBody::Created {
                tracking_number,
                intake: Box::new(c.intake),
            },
        };
        let payload = read::encode_event(&event);
        let state = crate::lifecycle::fold(std::slice::from_ref(&event)).ok_or_else(|| {
            StoreError::Rejected {
                reason: "the intake does not make a complaint".into(),
            }
        })?;
        let prepared = writer::PreparedSubmit {
            event,
            payload,
            state,
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
        let payloads = incoming.events.iter().map(read::encode_event).collect();
        self.call(|reply| writer::Command::ApplyRemote(incoming, payloads, reply))
            .await
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
        self.inner
            .readers
            .run(move |conn| read::event_run(conn, &req))
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
        self.inner
            .readers
            .run(move |conn| read::quarantined(conn, peer.as_deref()))
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
