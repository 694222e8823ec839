//! Reads, on a small bounded pool of `query_only` connections run in
//! `spawn_blocking`. WAL gives each read a consistent snapshot and never
//! makes it wait behind the writer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value};
use tokio::sync::Semaphore;

use super::connection::open_reader;
use super::identity::{self, QUARANTINE_AAD};
use super::migrations::SCHEMA_VERSION;
use super::writer::events_of;
use super::{
    ComplaintFilter, ComplaintKey, ComplaintView, CursorKind, EventRun, MAX_PAGE_SIZE, Page,
    PageRequest, PeerInfo, QuarantineEntry, RunRequest, StoreError, StoreStats,
};
use crate::crypto::SiteKey;
use crate::domain::{ComplaintId, Event, EventId, Seq, SiteCode, SiteRole};
use crate::proto::{convert, v1, wire};

/// Reads running at once, and so reader connections open at once. Beyond
/// this a read waits for a turn instead of opening one more connection on
/// one more blocking thread: a hub with hundreds of Pull streams once woke
/// them all per commit and spent most of its time opening and closing
/// connections on ~500 threads. Two cores are busy well before 8 reads.
const MAX_READERS: usize = 8;

#[derive(Clone)]
pub(super) struct ReadPool {
    path: PathBuf,
    /// One permit per read in flight; at most [`MAX_READERS`].
    turns: Arc<Semaphore>,
    // std Mutex: held only to push/pop, never across an await. Never holds
    // more than MAX_READERS connections, since only permit holders use it.
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            turns: Arc::new(Semaphore::new(MAX_READERS)),
            idle: Arc::new(Mutex::new(Vec::with_capacity(MAX_READERS))),
        }
    }

    /// Runs `f` on a reader connection off the async runtime, after waiting
    /// for a free turn (fair: first come, first served).
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The semaphore is never closed; an error would mean it was.
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            // Held until the read is done, even if the caller stopped
            // waiting for it.
            let _turn = turn;
            let conn = match pool.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(conn) => conn,
                None => open_reader(&pool.path).map_err(|source| StoreError::Open {
                    path: pool.path.clone(),
                    source,
                })?,
            };
            let out = f(&conn);
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            out
        })
        .await?
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The canonical encoding of an event: its protobuf encoding. Encoding a
/// domain value is deterministic, so equal events give equal bytes. (The
/// store keeps Created events without identity: `identity::stored_form`.)
pub(super) fn encode_event(event: &Event) -> Vec<u8> {
    convert::event_to_proto(event).encode_to_vec()
}

pub(super) fn decode_event(seq: i64, payload: &[u8]) -> Result<Event, StoreError> {
    let proto = v1::Event::decode(payload).map_err(|e| StoreError::Corrupt {
        seq,
        reason: e.to_string(),
    })?;
    convert::event_from_proto(proto).map_err(|v| StoreError::Corrupt {
        seq,
        reason: v.to_string(),
    })
}

pub(super) fn get(
    conn: &Connection,
    key: &ComplaintKey,
) -> Result<Option<ComplaintView>, StoreError> {
    let id = match key {
        ComplaintKey::Id(id) => *id,
        ComplaintKey::Tracking(tn) => {
            let found: Option<Vec<u8>> = conn
                .prepare_cached("SELECT complaint_id FROM complaints WHERE tracking_number = ?1")?
                .query_row([tn.0.as_str()], |r| r.get(0))
                .optional()?;
            match found {
                Some(bytes) => complaint_id_from(&bytes)?,
                None => return Ok(None),
            }
        }
    };
    let mut history = events_of(conn, id)?;
    let Some(state) = crate::lifecycle::fold(&history) else {
        return Ok(None);
    };
    history.sort_by_key(|e| (e.hlc, e.id));
    let custody = super::custody::of_complaint(conn, id)?;
    Ok(Some(ComplaintView {
        state,
        history,
        custody,
    }))
}

fn complaint_id_from(bytes: &[u8]) -> Result<ComplaintId, StoreError> {
    uuid::Uuid::from_slice(bytes)
        .map(ComplaintId)
        .map_err(|e| StoreError::Corrupt {
            seq: 0,
            reason: format!("complaint id: {e}"),
        })
}

/// The WHERE clause and parameters of a filter.
fn filter_sql(filter: &ComplaintFilter) -> Result<(String, Vec<Value>), StoreError> {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(region) = &filter.region {
        let site = SiteCode::parse(region).map_err(|e| StoreError::BadFilter(e.to_string()))?;
        match site.role() {
            SiteRole::National => {}
            SiteRole::Province => {
                // District codes are NN.NN, so a range on the text is exact
                // and can use the index.
                clauses.push("district >= ? AND district < ?".to_owned());
                params.push(Value::Text(format!("{region}.")));
                params.push(Value::Text(format!("{region}/")));
            }
            SiteRole::Node => {
                clauses.push("district = ?".to_owned());
                params.push(Value::Text(region.clone()));
            }
        }
    }
    if !filter.statuses.is_empty() {
        let marks = vec!["?"; filter.statuses.len()].join(", ");
        clauses.push(format!("status IN ({marks})"));
        params.extend(filter.statuses.iter().map(|s| Value::Integer(s.code())));
    }
    if let Some(since) = filter.updated_since {
        clauses.push("updated_hlc > ?".to_owned());
        params.push(Value::Integer(since.0 as i64));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    Ok((sql, params))
}

pub(super) fn list(
    conn: &Connection,
    filter: &ComplaintFilter,
    page: &PageRequest,
) -> Result<Page, StoreError> {
    let limit = page.limit.clamp(1, MAX_PAGE_SIZE) as usize;
    let (mut sql, mut params) = filter_sql(filter)?;
    if let Some(token) = &page.token {
        let after =
            uuid::Uuid::parse_str(token).map_err(|_| StoreError::BadPageToken(token.clone()))?;
        sql.push_str(if sql.is_empty() { " WHERE " } else { " AND " });
        sql.push_str("complaint_id < ?");
        params.push(Value::Blob(after.as_bytes().to_vec()));
    }
    let query = format!(
        "SELECT complaint_id FROM complaints{sql} ORDER BY complaint_id DESC LIMIT {}",
        limit + 1
    );
    let mut stmt = conn.prepare_cached(&query)?;
    let ids: Vec<Vec<u8>> = stmt
        .query_map(params_from_iter(params), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let more = ids.len() > limit;
    let mut items = Vec::with_capacity(limit);
    for bytes in ids.iter().take(limit) {
        let id = complaint_id_from(bytes)?;
        if let Some(state) = crate::lifecycle::fold(&events_of(conn, id)?) {
            items.push(state);
        }
    }
    let next_token = if more {
        items.last().map(|s| s.id.0.hyphenated().to_string())
    } else {
        None
    };
    Ok(Page { items, next_token })
}

pub(super) fn count(conn: &Connection, filter: &ComplaintFilter) -> Result<u64, StoreError> {
    let (sql, params) = filter_sql(filter)?;
    let n: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM complaints{sql}"))?
        .query_row(params_from_iter(params), |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn stats(conn: &Connection, site: SiteCode) -> Result<StoreStats, StoreError> {
    let one = |sql: &str| -> Result<i64, StoreError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    Ok(StoreStats {
        site,
        head_seq: Seq(one("SELECT coalesce(max(seq), 0) FROM events")? as u64),
        events: one("SELECT count(*) FROM events")? as u64,
        complaints: one("SELECT count(*) FROM complaints")? as u64,
        conflicts: one("SELECT count(*) FROM conflicts")? as u64,
        quarantined: one("SELECT count(*) FROM quarantine WHERE replayed_at_ms IS NULL")? as u64,
        schema_version: SCHEMA_VERSION,
    })
}

pub(super) fn cursor(
    conn: &Connection,
    peer: &SiteCode,
    kind: CursorKind,
) -> Result<Seq, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM cursors WHERE peer = ?1 AND kind = ?2")?
        .query_row([peer.as_str(), kind.as_sql()], |r| r.get(0))
        .optional()?;
    Ok(Seq(seq.unwrap_or(0) as u64))
}

pub(super) fn cursors(
    conn: &Connection,
) -> Result<Vec<(String, CursorKind, Seq, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT peer, kind, seq, updated_at_ms FROM cursors ORDER BY peer, kind")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (peer, kind, seq, at) = row?;
        let kind = match kind.as_str() {
            "push_in" => CursorKind::PushIn,
            "pull_in" => CursorKind::PullIn,
            _ => CursorKind::PushOut,
        };
        out.push((peer, kind, Seq(seq as u64), at));
    }
    Ok(out)
}

/// Turns a column of row `seq` that did not read as its type into
/// [`StoreError::Corrupt`], naming the column.
fn corrupt_column<E: std::fmt::Display>(seq: Seq, name: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Corrupt {
        seq: seq.0 as i64,
        reason: format!("{name}: {e}"),
    }
}

pub(super) fn event_run(
    conn: &Connection,
    key: &SiteKey,
    req: &RunRequest,
    mut framed: Vec<u8>,
) -> Result<EventRun, StoreError> {
    // The identity of a non-anonymous Created event goes back into it: a
    // peer receives the canonical event. `local` identities never do.
    let mut sql = String::from(
        "SELECT e.seq, e.payload, e.received_from, e.event_id,
                CASE WHEN e.identity_scope = 'event' THEN e.identity END
         FROM events e WHERE e.seq > ?",
    );
    let mut params = vec![Value::Integer(req.after.0 as i64)];
    if let Some(until) = req.until {
        sql.push_str(" AND e.seq <= ?");
        params.push(Value::Integer(until.0 as i64));
    }
    if let Some(region) = &req.region {
        match region.role() {
            SiteRole::National => {}
            SiteRole::Province => {
                sql.push_str(" AND e.district >= ? AND e.district < ?");
                params.push(Value::Text(format!("{region}.")));
                params.push(Value::Text(format!("{region}/")));
            }
            SiteRole::Node => {
                sql.push_str(" AND e.district = ?");
                params.push(Value::Text(region.to_string()));
            }
        }
    }
    sql.push_str(" ORDER BY e.seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    framed.clear();
    let mut run = EventRun {
        through: req.after,
        framed,
        events: Vec::new(),
        complete: true,
    };
    let mut bytes = 0usize;
    let exclude = req.exclude_from.as_ref().map(SiteCode::as_str);
    while let Some(row) = rows.next()? {
        let seq = Seq(row.get::<_, i64>(0)? as u64);
        let from = row
            .get_ref(2)?
            .as_str_or_null()
            .map_err(corrupt_column(seq, "received_from"))?;
        if from.is_some() && from == exclude {
            // Skipped events still advance the run, so the cursor moves past them.
            run.through = seq;
            continue;
        }
        // Framed where it is read, from SQLite's own copy of the row: one
        // buffer for the run, not one per event.
        let mark = run.framed.len();
        let payload = row
            .get_ref(1)?
            .as_blob()
            .map_err(corrupt_column(seq, "payload"))?;
        let identity = row
            .get_ref(4)?
            .as_blob_or_null()
            .map_err(corrupt_column(seq, "identity"))?;
        let at = match identity {
            Some(sealed) => {
                let id = row
                    .get_ref(3)?
                    .as_blob()
                    .map_err(corrupt_column(seq, "event id"))?;
                let id = uuid::Uuid::from_slice(id).map_err(corrupt_column(seq, "event id"))?;
                identity::attach_framed(
                    key,
                    seq.0 as i64,
                    EventId(id),
                    payload,
                    sealed,
                    &mut run.framed,
                )?
            }
            None => wire::put_event_record(&mut run.framed, payload),
        };
        if !run.events.is_empty()
            && (run.events.len() >= req.max_events || bytes + at.len() > req.max_bytes)
        {
            // Left for the next run.
            run.framed.truncate(mark);
            run.complete = false;
            break;
        }
        bytes += at.len();
        run.through = seq;
        run.events.push((seq, at));
    }
    Ok(run)
}

pub(super) fn backlog(
    conn: &Connection,
    after: Seq,
    exclude: Option<&SiteCode>,
) -> Result<(u64, Option<i64>), StoreError> {
    let (n, oldest): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT count(*), min(stored_at_ms) FROM events WHERE seq > ?1 AND (received_from IS NULL OR received_from IS NOT ?2)",
        )?
        .query_row(rusqlite::params![after.0 as i64, exclude.map(SiteCode::as_str)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((n as u64, oldest))
}

pub(super) fn quarantined(
    conn: &Connection,
    key: &SiteKey,
    peer: Option<&str>,
) -> Result<Vec<QuarantineEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_from, event_id, reason, recorded_at_ms, payload, sealed FROM quarantine
         WHERE replayed_at_ms IS NULL AND (?1 IS NULL OR received_from = ?1) ORDER BY id",
    )?;
    let rows = stmt.query_map([peer], |r| {
        Ok((
            QuarantineEntry {
                id: r.get(0)?,
                received_from: r.get(1)?,
                event_id: r.get(2)?,
                reason: r.get(3)?,
                recorded_at_ms: r.get(4)?,
                payload: r.get(5)?,
            },
            r.get::<_, i64>(6)? != 0,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut entry, sealed) = row?;
        if sealed {
            let what = format!("quarantine record {}", entry.id);
            entry.payload = identity::open_record(key, QUARANTINE_AAD, &what, &entry.payload)?;
        }
        out.push(entry);
    }
    Ok(out)
}

pub(super) fn integrity_check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn peers(conn: &Connection) -> Result<Vec<PeerInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT peer, role, last_seen_ms, last_error, last_error_ms, clock_skew_ms, peer_head_seq,
                received_events, received_duplicates FROM peers ORDER BY peer",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PeerInfo {
            peer: r.get(0)?,
            role: r.get(1)?,
            last_seen_ms: r.get(2)?,
            last_error: r.get(3)?,
            last_error_ms: r.get(4)?,
            clock_skew_ms: r.get(5)?,
            peer_head_seq: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
            received_events: r.get::<_, i64>(7)? as u64,
            received_duplicates: r.get::<_, i64>(8)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
