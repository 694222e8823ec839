//! The single writer: a dedicated thread that owns the write connection and
//! commits whatever is queued as one group.
//!
//! Why a thread and not a task: every statement here blocks on SQLite and the
//! commit blocks on fsync. A plain thread keeps that off the async runtime
//! without `block_in_place`, and its queue is the natural place to batch.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::Rng as _;
use rusqlite::{
    CachedStatement, Connection, OptionalExtension, Statement, TransactionBehavior, params,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::audit::{self, AuditAction, AuditEntry};
use super::checkpoint::Checkpointer;
use super::connection::open_writer;
use super::custody;
use super::districts;
use super::identity::{self, CONFLICT_AAD, QUARANTINE_AAD, StoredEvent};
use super::migrations::migrate;
use super::read::{self, decode_event, encode_event, now_ms};
use super::relay::{RelayMap, Relayable};
use super::signals::RegionSignals;
use super::{
    Appended, ApplyOutcome, ApplyReply, CursorUpdate, CustodyTier, Incoming, NewEvent, PeerUpdate,
    RefusedEvent, Reply, StoreConfig, StoreError, Submitted,
};
use crate::crypto::SiteKey;
use crate::domain::{ComplaintId, Event, EventBody, EventId, Seq, SiteCode, TrackingNumber};
use crate::hlc::{DEFAULT_MAX_FORWARD, Hlc, HlcClock};
use crate::lifecycle::{self, ComplaintState};
use crate::replication::scope;

/// Requests to the writer. Each carries the channel its answer goes back on.
pub(super) enum Command {
    Submit(Box<PreparedSubmit>, Reply<Submitted>),
    AddEvent(NewEvent, Reply<Appended>),
    /// Events in their stored forms and the quarantined records sealed
    /// (both made by the caller, off the writer thread), and the batch as
    /// received if it may be forwarded unchanged once stored.
    ApplyRemote(
        Incoming,
        Vec<StoredEvent>,
        Vec<Vec<u8>>,
        Option<Relayable>,
        ApplyReply,
    ),
    Audit(Vec<AuditEntry>, Reply<()>),
    SetCursor(CursorUpdate, Reply<()>),
    MarkReplayed(Vec<i64>, Reply<()>),
    RecordPeer(PeerUpdate, Reply<()>),
    RecordCustody(CustodyTier, Seq, i64, Reply<()>),
    AdvanceReceipts(SiteCode, Seq, Reply<bool>),
    Shutdown(oneshot::Sender<()>),
}

impl Command {
    /// Rough cost, so one group stays a bounded transaction.
    fn weight(&self) -> usize {
        match self {
            Command::ApplyRemote(inc, _, _, _, _) => 1 + inc.events.len() + inc.quarantine.len(),
            _ => 1,
        }
    }
}

/// A batch the writer is done with, going back to its caller to be freed.
pub(super) struct Spent {
    _incoming: Incoming,
    _stored: Vec<StoredEvent>,
}

impl Spent {
    fn new(incoming: Incoming, stored: Vec<StoredEvent>) -> Spent {
        Spent {
            _incoming: incoming,
            _stored: stored,
        }
    }
}

impl std::fmt::Debug for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spent")
    }
}

/// Queue depth between callers and the writer; callers wait (backpressure)
/// when it is full.
const QUEUE_DEPTH: usize = 8192;
/// Upper bound on the work in one group commit.
const MAX_GROUP_WEIGHT: usize = 8192;

pub(super) struct Started {
    pub sender: mpsc::Sender<Command>,
    pub key: Arc<SiteKey>,
    pub receipts: watch::Receiver<u64>,
    pub minter: Arc<Mutex<Minter>>,
    pub head: watch::Receiver<Seq>,
    pub signals: Arc<RegionSignals>,
    pub relay: Arc<Mutex<RelayMap>>,
    pub thread: std::thread::JoinHandle<()>,
}

/// Opens, migrates and binds the database to its site and its key (sealing
/// what an older version left in plain text), then starts the writer thread.
pub(super) fn start(config: &StoreConfig, key_path: &Path) -> Result<Started, StoreError> {
    let mut conn = open_writer(&config.path).map_err(|source| StoreError::Open {
        path: config.path.clone(),
        source,
    })?;
    migrate(&mut conn)?;
    let instance = bind_site(&conn, &config.site)?;
    let key = Arc::new(identity::bind_key(&conn, key_path)?);
    identity::seal_plaintext(&mut conn, &key, &config.site)?;
    let (hlc, tracking_next): (i64, i64) = conn.query_row(
        "SELECT hlc, tracking_next FROM writer_state WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let head: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
    let (head_tx, head_rx) = watch::channel(Seq(head as u64));
    let (receipts_tx, receipts_rx) = watch::channel(0u64);
    let signals = Arc::new(RegionSignals::default());
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let minter = Arc::new(Mutex::new(Minter {
        clock: HlcClock::new(Box::new(config.clock), Hlc(hlc as u64), DEFAULT_MAX_FORWARD),
        tracking_prefix: format!("{}-{}", config.site.as_str().replace('.', ""), instance),
        tracking_next: tracking_next as u64,
    }));
    let checkpointer = Checkpointer::start(&config.path, &mut conn);
    let relay = Arc::new(Mutex::new(RelayMap::default()));
    let writer = Writer {
        conn,
        checkpointer,
        key: key.clone(),
        site: config.site.clone(),
        minter: minter.clone(),
        head: head as u64,
        head_tx,
        receipts_tx,
        receipts_moved: false,
        signals: signals.clone(),
        touched: BTreeSet::new(),
        persisted: (hlc as u64, tracking_next as u64),
        relay: relay.clone(),
        relay_pending: Vec::new(),
        identities_changed: false,
    };
    let thread = std::thread::Builder::new()
        .name("lapor-store-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Rejected {
            reason: format!("cannot start writer thread: {e}"),
        })?;
    Ok(Started {
        sender: tx,
        key,
        receipts: receipts_rx,
        minter,
        head: head_rx,
        signals,
        relay,
        thread,
    })
}

/// Records the site on first open and refuses another site's database.
/// Returns the instance tag used in tracking numbers.
fn bind_site(conn: &Connection, site: &SiteCode) -> Result<String, StoreError> {
    let found: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'site'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match found {
        Some(found) if found != site.as_str() => {
            return Err(StoreError::WrongSite {
                found,
                expected: site.clone(),
            });
        }
        Some(_) => {}
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('site', ?1)",
                [site.as_str()],
            )?;
        }
    }
    let tag: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'instance_tag'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match tag {
        Some(tag) => Ok(tag),
        None => {
            let tag = mint_instance_tag();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('instance_tag', ?1)",
                [&tag],
            )?;
            Ok(tag)
        }
    }
}

/// Three Crockford base-32 characters (no I, L, O, U): 32,768 instances per
/// district, readable over the phone.
fn mint_instance_tag() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    (0..3)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Mints HLC timestamps and tracking numbers. Shared by callers (who stamp
/// a new complaint before queueing it, so that work runs beside the writer)
/// and the writer (remote HLCs, lifecycle events).
///
/// What it hands out may never be committed (a failed request): that leaves
/// a gap, never a repeat, because the writer persists the minter's state —
/// which is always ahead of anything committed — with every group.
pub(super) struct Minter {
    pub clock: HlcClock,
    /// `1113-K7Q`: district without the dot, instance tag.
    tracking_prefix: String,
    tracking_next: u64,
}

impl Minter {
    pub fn tracking_number(&mut self) -> TrackingNumber {
        let n = self.tracking_next;
        self.tracking_next += 1;
        TrackingNumber(format!("{}-{n:06}", self.tracking_prefix))
    }
}

/// Locks the minter. Its state stays consistent even if a holder panicked
/// (plain integer updates), so a poisoned lock is used as is.
pub(super) fn lock(minter: &Mutex<Minter>) -> MutexGuard<'_, Minter> {
    minter.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new complaint stamped, encoded and sealed by its caller.
pub(super) struct PreparedSubmit {
    /// The Created event (its intake without an anonymous reporter's
    /// identity, which is only in `stored.identity`, scope `local`).
    pub event: Event,
    pub stored: StoredEvent,
    pub row: ComplaintRow,
    /// The complaint id came from the client, so this may repeat a request.
    pub retry: bool,
}

struct Writer {
    conn: Connection,
    /// Copies the WAL back on its own thread; stopped when the writer ends.
    checkpointer: Option<Checkpointer>,
    key: Arc<SiteKey>,
    site: SiteCode,
    minter: Arc<Mutex<Minter>>,
    /// Highest seq written (committed or in the open group).
    head: u64,
    head_tx: watch::Sender<Seq>,
    receipts_tx: watch::Sender<u64>,
    /// A request of the open group moved a child's receipt.
    receipts_moved: bool,
    /// Wakes the watchers of the districts a commit touched.
    signals: Arc<RegionSignals>,
    /// Districts of the events written in the open group.
    touched: BTreeSet<SiteCode>,
    /// (hlc, tracking_next) as last written to `writer_state`.
    persisted: (u64, u64),
    /// Batches kept for forwarding unchanged (`relay`), shared with the store.
    relay: Arc<Mutex<RelayMap>>,
    /// Batches of the open group to keep once it commits: (first, last seq).
    relay_pending: Vec<(u64, u64, Relayable)>,
    /// A request of the open group may have erased or rescoped identities.
    identities_changed: bool,
}

/// An answer held back until its group commits.
enum Pending {
    Submit(Reply<Submitted>, Result<Submitted, StoreError>),
    AddEvent(Reply<Appended>, Box<Result<Appended, StoreError>>),
    Apply(ApplyReply, Result<ApplyOutcome, StoreError>, Spent),
    Unit(Reply<()>, Result<(), StoreError>),
    Flag(Reply<bool>, Result<bool, StoreError>),
    Nobody,
}

impl Pending {
    /// A request that never ran because its group was aborted; it gets the
    /// group's error.
    fn aborted(cmd: Command) -> Pending {
        match cmd {
            Command::Submit(_, reply) => Pending::Submit(reply, Err(StoreError::Closed)),
            Command::AddEvent(_, reply) => {
                Pending::AddEvent(reply, Box::new(Err(StoreError::Closed)))
            }
            Command::ApplyRemote(inc, stored, _, _, reply) => {
                Pending::Apply(reply, Err(StoreError::Closed), Spent::new(inc, stored))
            }
            Command::Audit(_, reply)
            | Command::SetCursor(_, reply)
            | Command::MarkReplayed(_, reply)
            | Command::RecordPeer(_, reply)
            | Command::RecordCustody(_, _, _, reply) => {
                Pending::Unit(reply, Err(StoreError::Closed))
            }
            Command::AdvanceReceipts(_, _, reply) => Pending::Flag(reply, Err(StoreError::Closed)),
            Command::Shutdown(tx) => {
                let _ = tx.send(());
                Pending::Nobody
            }
        }
    }

    fn send(self, commit: &Result<(), Arc<StoreError>>) {
        fn pick<T>(
            r: Result<T, StoreError>,
            c: &Result<(), Arc<StoreError>>,
        ) -> Result<T, StoreError> {
            match c {
                Ok(()) => r,
                Err(e) => Err(StoreError::GroupCommit(e.clone())),
            }
        }
        // A dropped receiver means the caller gave up; nothing to do.
        let _ = match self {
            Pending::Submit(tx, r) => tx.send(pick(r, commit)).map_err(drop),
            Pending::AddEvent(tx, r) => tx.send(pick(*r, commit)).map_err(drop),
            Pending::Apply(tx, r, spent) => tx.send((pick(r, commit), spent)).map_err(drop),
            Pending::Unit(tx, r) => tx.send(pick(r, commit)).map_err(drop),
            Pending::Flag(tx, r) => tx.send(pick(r, commit)).map_err(drop),
            Pending::Nobody => Ok(()),
        };
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        self.serve(rx);
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop(&mut self.conn);
        }
    }

    fn serve(&mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut weight = first.weight();
            let mut group = vec![first];
            while weight < MAX_GROUP_WEIGHT {
                match rx.try_recv() {
                    Ok(cmd) => {
                        weight += cmd.weight();
                        group.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            let mut shutdown = Vec::new();
            let work: Vec<Command> = group
                .into_iter()
                .filter_map(|c| match c {
                    Command::Shutdown(tx) => {
                        shutdown.push(tx);
                        None
                    }
                    other => Some(other),
                })
                .collect();
            if !work.is_empty() {
                self.commit_group(work);
            }
            if !shutdown.is_empty() {
                // Drain what was queued behind the shutdown request, then stop.
                rx.close();
                let mut rest = Vec::new();
                while let Ok(cmd) = rx.try_recv() {
                    if let Command::Shutdown(tx) = cmd {
                        shutdown.push(tx);
                    } else {
                        rest.push(cmd);
                    }
                }
                if !rest.is_empty() {
                    self.commit_group(rest);
                }
                for tx in shutdown {
                    let _ = tx.send(());
                }
                return;
            }
        }
    }

    fn commit_group(&mut self, work: Vec<Command>) {
        let head_before = self.head;
        self.receipts_moved = false;
        self.touched.clear();
        self.relay_pending.clear();
        self.identities_changed = false;
        let mut pending = Vec::with_capacity(work.len());
        let outcome = self.run_group(work, &mut pending).map_err(Arc::new);
        match &outcome {
            Ok(()) => {
                // Before the head moves: the push loop it wakes finds them.
                let mut relay = self.relay.lock().unwrap_or_else(PoisonError::into_inner);
                if self.identities_changed {
                    // What a run gives for kept ranges may have changed.
                    relay.clear();
                } else {
                    for (first, last, batch) in self.relay_pending.drain(..) {
                        relay.keep(first, last, batch);
                    }
                }
                drop(relay);
                if self.head != head_before {
                    self.head_tx.send_replace(Seq(self.head));
                }
                self.signals.publish(&self.touched, Seq(self.head));
                if self.receipts_moved {
                    self.receipts_tx.send_modify(|v| *v += 1);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&**e), "group commit failed; every request in the group gets the error");
                self.head = head_before;
            }
        }
        for p in pending {
            p.send(&outcome);
        }
    }

    /// Runs a group in one transaction. A request that fails before writing
    /// answers alone; a storage failure after a request wrote something
    /// aborts the whole group (nothing of it is committed, everyone is told).
    fn run_group(
        &mut self,
        work: Vec<Command>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ctx = Ctx {
            site: &self.site,
            key: &self.key,
            minter: &self.minter,
            head: &mut self.head,
            touched: &mut self.touched,
            identities_changed: &mut self.identities_changed,
        };
        let mut abort: Option<StoreError> = None;
        for cmd in work {
            if abort.is_some() {
                pending.push(Pending::aborted(cmd));
                continue;
            }
            match cmd {
                // The hot path runs without a savepoint (a savepoint makes
                // SQLite journal every page it touches): `submit` checks
                // everything before its first write, so its only post-write
                // failures are storage failures, which abort the group.
                Command::Submit(c, reply) => {
                    let r = ctx.submit(&tx, *c);
                    match r {
                        Err(e) if e.is_storage_failure() => {
                            abort = Some(e);
                            pending.push(Pending::Submit(reply, Err(StoreError::Closed)));
                        }
                        r => pending.push(Pending::Submit(reply, r)),
                    }
                }
                Command::AddEvent(e, reply) => {
                    let (actor, complaint) = (e.actor.clone(), e.complaint_id);
                    let r = in_savepoint(&tx, |conn| ctx.add_event(conn, e));
                    if let Err(StoreError::OutOfScope { site, district }) = &r {
                        // Recorded outside the rolled-back savepoint: the
                        // refusal is a fact even though nothing was written.
                        let entry = AuditEntry {
                            actor: format!("operator:{actor}"),
                            action: AuditAction::RefusedWrite,
                            subject: complaint.to_string(),
                            detail: format!("event of district {district} outside site {site}"),
                        };
                        if let Err(e) = audit::append(&tx, &[entry], now_ms()) {
                            abort = Some(e);
                        }
                    }
                    pending.push(Pending::AddEvent(reply, Box::new(r)));
                }
                Command::ApplyRemote(inc, stored, sealed, relayable, reply) => {
                    let r =
                        in_savepoint(&tx, |conn| ctx.apply_remote(conn, &inc, &stored, &sealed));
                    // Kept for forwarding only if every event was stored,
                    // at consecutive seqs (checked again by `keep`).
                    if let (Ok(o), Some(batch)) = (&r, relayable)
                        && let Some((first, last)) = o.stored_seqs
                        && o.accepted as usize == inc.events.len()
                        && o.quarantined == 0
                    {
                        self.relay_pending.push((first.0, last.0, batch));
                    }
                    pending.push(Pending::Apply(reply, r, Spent::new(inc, stored)));
                }
                Command::Audit(entries, reply) => {
                    let r = in_savepoint(&tx, |conn| audit::append(conn, &entries, now_ms()));
                    pending.push(Pending::Unit(reply, r));
                }
                // Single statements: SQLite rolls a failed statement back by itself.
                Command::SetCursor(update, reply) => {
                    pending.push(Pending::Unit(reply, set_cursor(&tx, &update)))
                }
                Command::MarkReplayed(ids, reply) => {
                    pending.push(Pending::Unit(reply, mark_replayed(&tx, &ids)))
                }
                Command::RecordPeer(update, reply) => {
                    pending.push(Pending::Unit(reply, record_peer(&tx, &update)))
                }
                Command::RecordCustody(tier, through, at_ms, reply) => pending.push(Pending::Unit(
                    reply,
                    custody::record(&tx, tier, through, at_ms),
                )),
                Command::AdvanceReceipts(parent, acked, reply) => {
                    let r =
                        in_savepoint(&tx, |conn| custody::advance_receipts(conn, &parent, acked));
                    if matches!(r, Ok(true)) {
                        self.receipts_moved = true;
                    }
                    pending.push(Pending::Flag(reply, r));
                }
                Command::Shutdown(_) => unreachable_shutdown(),
            }
        }
        if let Some(e) = abort {
            // Dropping `tx` rolls it back.
            return Err(e);
        }
        let state = {
            let m = lock(&self.minter);
            (m.clock.last().0, m.tracking_next)
        };
        if state != self.persisted {
            tx.execute(
                "UPDATE writer_state SET hlc = ?1, tracking_next = ?2 WHERE id = 1",
                params![state.0 as i64, state.1 as i64],
            )?;
        }
        tx.commit()?;
        self.persisted = state;
        Ok(())
    }
}

/// Shutdown commands are split off before a group runs.
fn unreachable_shutdown() {
    tracing::error!("shutdown command reached a group; ignored");
}

/// Runs one request in its own savepoint: its failure rolls back only its
/// own writes, never its neighbours' in the group.
fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    tx.prepare_cached("SAVEPOINT op")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE op")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            tx.prepare_cached("ROLLBACK TO op")?.execute([])?;
            tx.prepare_cached("RELEASE op")?.execute([])?;
            Err(e)
        }
    }
}

/// What a request may touch besides the connection.
struct Ctx<'a> {
    site: &'a SiteCode,
    key: &'a SiteKey,
    minter: &'a Mutex<Minter>,
    head: &'a mut u64,
    touched: &'a mut BTreeSet<SiteCode>,
    identities_changed: &'a mut bool,
}

impl Ctx<'_> {
    fn submit(&mut self, conn: &Connection, p: PreparedSubmit) -> Result<Submitted, StoreError> {
        let EventBody::Created {
            tracking_number,
            intake,
        } = &p.event.body
        else {
            return Err(StoreError::Rejected {
                reason: "a submission must be a created event".into(),
            });
        };
        if p.retry
            && let Some(existing) = created_event(conn, p.event.complaint_id)?
        {
            // The stored intake has no identity; compare it with the
            // identity-free intake, and identities (opened) separately.
            let mut bare = (**intake).clone();
            bare.reporter = None;
            let held = identity::held(conn, self.key, existing.id)?;
            let same_identity = match (&held, &p.stored.identity) {
                (None, None) => true,
                (Some((scope, stored)), Some(new)) => {
                    *scope == new.scope && *stored == new.reporter
                }
                _ => false,
            };
            return match &existing.body {
                EventBody::Created {
                    tracking_number,
                    intake: stored,
                } if **stored == bare && same_identity && existing.actor == p.event.actor => {
                    Ok(Submitted {
                        complaint_id: existing.complaint_id,
                        tracking_number: tracking_number.clone(),
                        event_id: existing.id,
                        hlc: existing.hlc,
                        duplicate: true,
                    })
                }
                _ => Err(StoreError::Conflict(existing.id)),
            };
        }
        let seq = self
            .insert_event(
                conn,
                &mut *conn.prepare_cached(INSERT_EVENT)?,
                &p.event,
                &p.stored,
                None,
                None,
            )?
            .ok_or(StoreError::Conflict(p.event.id))?;
        upsert_complaint(&mut *conn.prepare_cached(UPSERT_COMPLAINT)?, &p.row, seq)?;
        Ok(Submitted {
            complaint_id: p.event.complaint_id,
            tracking_number: tracking_number.clone(),
            event_id: p.event.id,
            hlc: p.event.hlc,
            duplicate: false,
        })
    }

    fn add_event(&mut self, conn: &Connection, e: NewEvent) -> Result<Appended, StoreError> {
        if matches!(e.body, EventBody::Created { .. }) {
            return Err(StoreError::Rejected {
                reason: "a complaint is created by Submit, not AddEvent".into(),
            });
        }
        let mut events = events_of(conn, e.complaint_id)?;
        let state = lifecycle::fold(&events)
            .ok_or_else(|| StoreError::NotFound(e.complaint_id.to_string()))?;
        if let Some(id) = e.event_id
            && let Some(existing) = events.iter().find(|x| x.id == id)
        {
            if existing.actor == e.actor && existing.body == e.body && existing.origin == *self.site
            {
                return Ok(Appended {
                    event_id: id,
                    hlc: existing.hlc,
                    duplicate: true,
                    state,
                });
            }
            return Err(StoreError::Conflict(id));
        }
        if let Some(id) = e.event_id
            && event_exists(conn, id)?
        {
            return Err(StoreError::Conflict(id));
        }
        if !self.site.covers(&state.district) {
            return Err(StoreError::OutOfScope {
                site: self.site.clone(),
                district: state.district.clone(),
            });
        }
        // A new event is stamped after everything the complaint already
        // holds, even when that came from a site whose clock runs ahead.
        let hlc = lock(self.minter)
            .clock
            .now()
            .max(state.updated_hlc.successor());
        let event = Event {
            id: e.event_id.unwrap_or_else(EventId::new_v7),
            complaint_id: e.complaint_id,
            origin: self.site.clone(),
            hlc,
            actor: e.actor,
            district: state.district.clone(),
            body: e.body,
        };
        lifecycle::check_local_write(&state, &event).map_err(|err| StoreError::Rejected {
            reason: err.to_string(),
        })?;
        let seq = self
            .insert_event(
                conn,
                &mut *conn.prepare_cached(INSERT_EVENT)?,
                &event,
                &StoredEvent {
                    payload: encode_event(&event),
                    identity: None,
                },
                None,
                None,
            )?
            .ok_or(StoreError::Conflict(event.id))?;
        events.push(event.clone());
        let state = lifecycle::fold(&events)
            .ok_or_else(|| StoreError::NotFound(e.complaint_id.to_string()))?;
        upsert_complaint(
            &mut *conn.prepare_cached(UPSERT_COMPLAINT)?,
            &ComplaintRow::of(&state),
            seq,
        )?;
        *self.identities_changed |= identity::on_anonymous(conn, self.site, &state)?;
        Ok(Appended {
            event_id: event.id,
            hlc: event.hlc,
            duplicate: false,
            state,
        })
    }

    fn apply_remote(
        &mut self,
        conn: &Connection,
        inc: &Incoming,
        stored: &[StoredEvent],
        sealed_quarantine: &[Vec<u8>],
    ) -> Result<ApplyOutcome, StoreError> {
        if let (Some(from), Some(cursor)) = (inc.requires, &inc.cursor) {
            let held = read::cursor(conn, &cursor.peer, cursor.kind)?;
            if held < from {
                return Err(StoreError::Gap {
                    peer: cursor.peer.clone(),
                    from,
                    held,
                });
            }
        }
        let mut out = ApplyOutcome::default();
        let now = now_ms();
        for (q, sealed) in inc.quarantine.iter().zip(sealed_quarantine) {
            insert_quarantine(
                conn,
                &inc.from,
                q.event_id.as_deref(),
                sealed,
                &q.reason,
                now,
            )?;
            out.quarantined += 1;
        }
        audit::append(
            conn,
            &inc.quarantine
                .iter()
                .map(|q| identity::quarantine_audit(&inc.from, q.event_id.as_deref(), &q.reason))
                .collect::<Vec<_>>(),
            now,
        )?;
        // Complaints whose row must be refolded: (id, seq of its last new
        // event, the index of its Created in the batch while that is the
        // only new event of the complaint here).
        let mut touched: Vec<(ComplaintId, u64, Option<usize>)> = Vec::new();
        // Where each complaint is in `touched`.
        let mut seen: HashMap<ComplaintId, usize> = HashMap::new();
        if let Some(latest) = inc.events.iter().map(|e| e.hlc).max() {
            lock(self.minter).clock.observe(latest);
        }
        // Districts of complaints created earlier in this batch (their rows
        // are written after the loop).
        let mut created_here: HashMap<ComplaintId, &SiteCode> = HashMap::new();
        let mut per_event = PerEvent::prepare(conn)?;
        for (i, (event, form)) in inc.events.iter().zip(stored).enumerate() {
            // Authorization inside the transaction: an event's district is
            // what its sender says; it must be its complaint's, or a node
            // could write on another district's complaint.
            let known = match created_here.get(&event.complaint_id) {
                Some(d) => Some((*d).clone()),
                None => {
                    districts::complaint_district_with(&mut per_event.district, event.complaint_id)?
                }
            };
            if let Err(refusal) = scope::check_complaint_district(event, known.as_ref()) {
                let reason = refusal.to_string();
                self.quarantine_event(conn, event, &inc.from, &reason, now)?;
                out.quarantined += 1;
                out.refused.push(RefusedEvent {
                    event_id: event.id,
                    reason,
                });
                continue;
            }
            if matches!(event.body, EventBody::Created { .. }) {
                created_here.insert(event.complaint_id, &event.district);
            }
            let source_seq = inc.source_seqs.get(i).copied();
            match self.insert_event(
                conn,
                &mut per_event.insert,
                event,
                form,
                Some(&inc.from),
                source_seq,
            )? {
                Some(seq) => {
                    out.accepted += 1;
                    let (first, _) = out.stored_seqs.unwrap_or((Seq(seq), Seq(seq)));
                    out.stored_seqs = Some((first, Seq(seq)));
                    let created = matches!(event.body, EventBody::Created { .. });
                    match seen.get(&event.complaint_id) {
                        Some(&at) => touched[at] = (event.complaint_id, seq, None),
                        None => {
                            seen.insert(event.complaint_id, touched.len());
                            touched.push((event.complaint_id, seq, created.then_some(i)));
                        }
                    }
                }
                None => {
                    let stored: Vec<u8> = conn
                        .prepare_cached("SELECT payload FROM events WHERE event_id = ?1")?
                        .query_row([event.id.0.as_bytes().as_slice()], |r| r.get(0))?;
                    if stored == form.payload && identity::same_identity(conn, self.key, event)? {
                        out.duplicates += 1;
                    } else {
                        record_conflict(conn, self.key, event, Some(&inc.from))?;
                        out.conflicts += 1;
                    }
                }
            }
        }
        for (complaint_id, seq, lone_created) in touched {
            let lone = match lone_created {
                Some(i) if !complaint_has_other_events(&mut per_event.count, complaint_id)? => {
                    inc.events.get(i)
                }
                _ => None,
            };
            if let Some(created) = lone {
                // The complaint's only event: its Created, just stored. Its
                // identity can only be this event's: none when the Created
                // is anonymous (never stored for one), and one that stays
                // when it is not. So `on_anonymous` has nothing to erase or
                // rescope, and the row needs no folded state (nor a copy of
                // the intake).
                if let Some(row) = ComplaintRow::of_created(created) {
                    upsert_complaint(&mut per_event.upsert, &row, seq)?;
                }
                continue;
            }
            // Events that arrive before their Created wait in the log; the
            // row appears when the Created does.
            if let Some(state) = lifecycle::fold(&events_of(conn, complaint_id)?) {
                upsert_complaint(&mut per_event.upsert, &ComplaintRow::of(&state), seq)?;
                *self.identities_changed |= identity::on_anonymous(conn, self.site, &state)?;
            }
        }
        if let Some(cursor) = &inc.cursor {
            set_cursor(conn, cursor)?;
        }
        if !inc.events.is_empty() {
            conn.prepare_cached(
                "UPDATE peers SET received_events = received_events + ?2,
                                  received_duplicates = received_duplicates + ?3 WHERE peer = ?1",
            )?
            .execute(params![inc.from.as_str(), out.accepted, out.duplicates])?;
        }
        Ok(out)
    }

    /// Quarantines `event` (sealed whole: it may carry identity) with an
    /// audit row, as the caller's own refusals are.
    fn quarantine_event(
        &self,
        conn: &Connection,
        event: &Event,
        from: &SiteCode,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        tracing::warn!(from = %from, event = %event.id, %reason, "quarantined a received event");
        let sealed = self.key.seal(QUARANTINE_AAD, &encode_event(event));
        let id = event.id.to_string();
        insert_quarantine(conn, from, Some(&id), &sealed, reason, now)?;
        audit::append(
            conn,
            &[identity::quarantine_audit(from, Some(&id), reason)],
            now,
        )
    }

    /// Inserts an event in its stored form (the sealed identity, if any, in
    /// the same row) with `insert` (an [`INSERT_EVENT`] statement of
    /// `conn`); `None` when its id is already stored (first copy wins).
    fn insert_event(
        &mut self,
        conn: &Connection,
        insert: &mut Statement<'_>,
        event: &Event,
        stored: &StoredEvent,
        from: Option<&SiteCode>,
        source_seq: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let (sealed, scope, nik_hash) = identity::columns(stored.identity.as_ref());
        let n = insert.execute(params![
            event.id.0.as_bytes().as_slice(),
            event.complaint_id.0.as_bytes().as_slice(),
            event.origin.as_str(),
            event.district.as_str(),
            event.hlc.0 as i64,
            event.body.kind(),
            stored.payload,
            from.map(SiteCode::as_str),
            now_ms(),
            source_seq.map(|s| s as i64),
            sealed,
            scope,
            nik_hash,
        ])?;
        if n == 0 {
            return Ok(None);
        }
        let seq = conn.last_insert_rowid() as u64;
        *self.head = (*self.head).max(seq);
        if !self.touched.contains(&event.district) {
            self.touched.insert(event.district.clone());
        }
        Ok(Some(seq))
    }
}

/// Stores a refused record, already sealed with `QUARANTINE_AAD`.
fn insert_quarantine(
    conn: &Connection,
    from: &SiteCode,
    event_id: Option<&str>,
    sealed: &[u8],
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO quarantine (received_from, event_id, payload, reason, recorded_at_ms, sealed) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
    )?
    .execute(params![from.as_str(), event_id, sealed, reason, now])?;
    Ok(())
}

fn event_exists(conn: &Connection, id: EventId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?
        .query_row([id.0.as_bytes().as_slice()], |_| Ok(()))
        .optional()?
        .is_some())
}

const INSERT_EVENT: &str = "INSERT INTO events (event_id, complaint_id, origin, district, hlc, kind, payload, received_from, stored_at_ms, source_seq, identity, identity_scope, nik_hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (event_id) DO NOTHING";

const COUNT_EVENTS: &str = "SELECT count(*) FROM events WHERE complaint_id = ?1";

const UPSERT_COMPLAINT: &str = "INSERT INTO complaints (complaint_id, tracking_number, district, status, created_hlc, updated_hlc, updated_seq)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (complaint_id) DO UPDATE SET
       tracking_number = excluded.tracking_number, district = excluded.district, status = excluded.status,
       created_hlc = excluded.created_hlc, updated_hlc = excluded.updated_hlc, updated_seq = excluded.updated_seq";

/// The statements a received batch runs for every event, taken from the
/// connection's statement cache once per batch: taking each from the cache
/// and handing it back once per event was 5–7 % of the writer's samples in
/// a replication burst (docs/benchmarks.md, fourth pass).
struct PerEvent<'c> {
    district: CachedStatement<'c>,
    insert: CachedStatement<'c>,
    count: CachedStatement<'c>,
    upsert: CachedStatement<'c>,
}

impl<'c> PerEvent<'c> {
    fn prepare(conn: &'c Connection) -> Result<PerEvent<'c>, StoreError> {
        Ok(PerEvent {
            district: conn.prepare_cached(districts::COMPLAINT_DISTRICT)?,
            insert: conn.prepare_cached(INSERT_EVENT)?,
            count: conn.prepare_cached(COUNT_EVENTS)?,
            upsert: conn.prepare_cached(UPSERT_COMPLAINT)?,
        })
    }
}

/// Whether complaint `id` has more events than one, with `count` (a
/// [`COUNT_EVENTS`] statement).
fn complaint_has_other_events(
    count: &mut Statement<'_>,
    id: ComplaintId,
) -> Result<bool, StoreError> {
    let n: i64 = count.query_row([id.0.as_bytes().as_slice()], |r| r.get(0))?;
    Ok(n > 1)
}

fn created_event(conn: &Connection, id: ComplaintId) -> Result<Option<Event>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, payload FROM events WHERE complaint_id = ?1 AND kind = 'created' ORDER BY seq LIMIT 1")?
        .query_row([id.0.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(seq, payload)| decode_event(seq, &payload))
        .transpose()
}

pub(super) fn events_of(conn: &Connection, id: ComplaintId) -> Result<Vec<Event>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, payload FROM events WHERE complaint_id = ?1")?;
    let rows = stmt.query_map([id.0.as_bytes().as_slice()], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, payload) = row?;
        out.push(decode_event(seq, &payload)?);
    }
    Ok(out)
}

/// What the `complaints` table keeps of a folded state: the columns lists
/// filter and sort on. Small, so a submission's fold can be dropped on the
/// caller's side rather than freed on the writer thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ComplaintRow {
    id: ComplaintId,
    tracking_number: TrackingNumber,
    district: SiteCode,
    status: crate::domain::Status,
    created_hlc: Hlc,
    updated_hlc: Hlc,
}

impl ComplaintRow {
    pub(super) fn of(state: &ComplaintState) -> ComplaintRow {
        ComplaintRow {
            id: state.id,
            tracking_number: state.tracking_number.clone(),
            district: state.district.clone(),
            status: state.status,
            created_hlc: state.created_hlc,
            updated_hlc: state.updated_hlc,
        }
    }

    /// The row of a complaint whose only event is `created`: what
    /// `of(&fold([created]))` gives (none if the fold has no state), without
    /// copying the intake into a state only to drop it.
    pub(super) fn of_created(created: &Event) -> Option<ComplaintRow> {
        let EventBody::Created {
            tracking_number, ..
        } = &created.body
        else {
            return None;
        };
        let status = lifecycle::created_status(created).ok()?;
        Some(ComplaintRow {
            id: created.complaint_id,
            tracking_number: tracking_number.clone(),
            district: created.district.clone(),
            status,
            created_hlc: created.hlc,
            updated_hlc: created.hlc,
        })
    }
}

/// Writes the row of a complaint with `upsert` (an [`UPSERT_COMPLAINT`]
/// statement).
fn upsert_complaint(
    upsert: &mut Statement<'_>,
    row: &ComplaintRow,
    seq: u64,
) -> Result<(), StoreError> {
    let mut run = |tracking: &str| {
        upsert.execute(params![
            row.id.0.as_bytes().as_slice(),
            tracking,
            row.district.as_str(),
            row.status.code(),
            row.created_hlc.0 as i64,
            row.updated_hlc.0 as i64,
            seq as i64,
        ])
    };
    match run(&row.tracking_number.0) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            // Two complaints carry one tracking number: only possible if two
            // nodes minted the same instance tag. Keep both visible (the
            // second under a disambiguated number) and leave it to an operator.
            tracing::warn!(complaint = %row.id, tracking = %row.tracking_number, "tracking number collision");
            run(&format!("{}~{}", row.tracking_number, row.id))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Keeps the refused copy, sealed whole: it may carry identity.
fn record_conflict(
    conn: &Connection,
    key: &SiteKey,
    event: &Event,
    from: Option<&SiteCode>,
) -> Result<(), StoreError> {
    tracing::warn!(event = %event.id, from = ?from.map(SiteCode::as_str), "event id stored with different content; recorded as conflict");
    let sealed = key.seal(CONFLICT_AAD, &encode_event(event));
    conn.prepare_cached("INSERT INTO conflicts (event_id, received_from, payload, recorded_at_ms, sealed) VALUES (?1, ?2, ?3, ?4, 1)")?
        .execute(params![event.id.0.as_bytes().as_slice(), from.map(SiteCode::as_str), sealed, now_ms()])?;
    Ok(())
}

fn set_cursor(conn: &Connection, update: &CursorUpdate) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO cursors (peer, kind, seq, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (peer, kind) DO UPDATE SET
           seq = CASE WHEN kind = 'push_out' THEN excluded.seq ELSE max(seq, excluded.seq) END,
           updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![
        update.peer.as_str(),
        update.kind.as_sql(),
        update.seq.0 as i64,
        now_ms()
    ])?;
    Ok(())
}

fn mark_replayed(conn: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let now = now_ms();
    let mut stmt =
        conn.prepare_cached("UPDATE quarantine SET replayed_at_ms = ?2 WHERE id = ?1")?;
    for id in ids {
        stmt.execute(params![id, now])?;
    }
    Ok(())
}

fn record_peer(conn: &Connection, u: &PeerUpdate) -> Result<(), StoreError> {
    let Some(peer) = &u.peer else {
        return Ok(());
    };
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO peers (peer, role, last_seen_ms, last_error, last_error_ms, clock_skew_ms, peer_head_seq)
         VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?5 END, ?6, ?7)
         ON CONFLICT (peer) DO UPDATE SET
           last_seen_ms = coalesce(excluded.last_seen_ms, last_seen_ms),
           last_error = coalesce(excluded.last_error, last_error),
           last_error_ms = coalesce(excluded.last_error_ms, last_error_ms),
           clock_skew_ms = coalesce(excluded.clock_skew_ms, clock_skew_ms),
           peer_head_seq = coalesce(excluded.peer_head_seq, peer_head_seq)",
    )?
    .execute(params![
        peer.as_str(),
        peer.role().to_string(),
        u.seen_at_ms,
        u.error,
        now,
        u.clock_skew_ms,
        u.head_seq.map(|s| s.0 as i64),
    ])?;
    Ok(())
}
