//! Reporter identity at rest: how name, NIK, phone and e-mail are kept out
//! of every plaintext byte of the database, and how they come back for the
//! readers and peers entitled to them.
//!
//! # Threat model
//!
//! Protects against: a copied database file, backup or disk (a district PC
//! carried off, a backup on a shared drive, a database attached to a support
//! ticket) and an operator browsing it with `sqlite3` learning who
//! complained; the identity of an anonymous complaint reaching any other
//! site. Does not protect against: someone holding both the database and
//! the site key (`crate::crypto`), the memory of the running process, or a
//! site that is entitled to identity misusing it. The network is protected
//! by mutual TLS (a separate concern): the wire carries a non-anonymous
//! complaint's identity in plain protobuf inside it, and each site seals
//! what it receives with its *own* key. No key is shared between sites, so a
//! leaked node key exposes that node's data only.
//!
//! # Layout on disk
//!
//! ```text
//! events.payload      the canonical lapor.sync.v1.Event with
//!                     created.intake.reporter removed: never identity
//! events.identity     on a Created event's row with an identity (schema
//!                     0008; NULL on every other row):
//!                       seal(AAD = "lapor.identity.v1" || event_id (16 bytes),
//!                            ReporterIdentity protobuf)
//! events.identity_scope  'event' | 'local'
//! events.nik_hash     HMAC-SHA256(nik key, NIK) or NULL; never the NIK.
//!                     Indexed on (seq >> 12, nik_hash): each commit's
//!                     hashes go into one or two partitions of 4,096
//!                     events, not all over one random tree
//! conflicts.payload   seal(AAD = "lapor.conflict.v1", the Event as received)
//! quarantine.payload  seal(AAD = "lapor.quarantine.v1", the record as received)
//!                     (`sealed` = 1; 0 only in databases from before v4,
//!                     sealed at their first open with a key)
//! ```
//!
//! # Rules
//!
//! - Scope `event`: a non-anonymous complaint's identity. It is put back
//!   into the Created event whenever the event is read for replication, so
//!   every peer receives the canonical event.
//! - Scope `local`: held at the complaint's own node only, never put into
//!   any event, never sent, no hash of it leaves. An anonymous complaint's
//!   identity, when staff record it at submission, is `local` from the
//!   start.
//! - Privacy only tightens. When a complaint becomes anonymous (Verified or
//!   PrivacyTightened with `anonymous`), its origin node turns `event` into
//!   `local` (nothing more is sent), and every other site *erases* it —
//!   ciphertext and NIK hash — with an `erase_identity` audit row. Erasing
//!   rather than only redacting: a hub has no use for an anonymous
//!   reporter's identity, and data it does not hold cannot leak. (Copies in
//!   older WAL frames and backups remain ciphertext under the site key.)
//!   API output never shows an anonymous complaint's identity to anyone.
//! - A Created event sent after that carries no identity ("withheld");
//!   receivers accept that for a non-anonymous Created (`proto::convert`).
//! - Idempotency compares the canonical forms: two copies of an event are
//!   the same when their identity-free payloads are byte-equal and, if both
//!   carry identity, the identities are equal (this site decrypts its copy
//!   to compare). A copy without identity duplicates one with it; a site
//!   never adds identity to an event it already holds.
//! - The AEAD's associated data binds each blob to its purpose (and an
//!   identity to its event), so a blob moved to another row does not open.

use prost::Message as _;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use zeroize::Zeroize as _;

use super::StoreError;
use super::audit::{self, AuditAction, AuditEntry};
use super::read::{decode_event, encode_event, now_ms};
use super::writer::events_of;
use crate::crypto::{KeyError, SiteKey};
use crate::domain::{ComplaintId, Event, EventBody, EventId, Reporter, SiteCode};
use crate::lifecycle::{self, ComplaintState};
use crate::proto::{convert, v1, wire};

const IDENTITY_AAD: &[u8] = b"lapor.identity.v1";
/// Associated data of sealed conflict copies.
pub(super) const CONFLICT_AAD: &[u8] = b"lapor.conflict.v1";
/// Associated data of sealed quarantine records.
pub(super) const QUARANTINE_AAD: &[u8] = b"lapor.quarantine.v1";

/// Width of a NIK-index partition, in bits of the event's seq at this site:
/// 4,096 events, so a group commit's identities land in one or two
/// partitions of a few dozen pages, and a look-up at a national hub holding
/// ten million events probes ~2,500 partitions. The index (schema 0008) and
/// the queries below spell it as `seq >> 12`; a test holds them to this.
#[cfg(test)]
const NIK_PART_BITS: u32 = 12;

/// Where an identity held at this site may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityScope {
    /// Part of a non-anonymous complaint's Created event; travels with it
    /// to the sites above.
    Event,
    /// An anonymous complaint's identity, kept at its own node only.
    Local,
}

impl IdentityScope {
    fn as_sql(self) -> &'static str {
        match self {
            IdentityScope::Event => "event",
            IdentityScope::Local => "local",
        }
    }

    fn from_sql(s: &str) -> Option<IdentityScope> {
        match s {
            "event" => Some(IdentityScope::Event),
            "local" => Some(IdentityScope::Local),
            _ => None,
        }
    }
}

impl std::fmt::Display for IdentityScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// Which complaint's identity to read: the complaint and the Created event
/// that founded it (`ComplaintState::created_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    pub complaint_id: ComplaintId,
    pub created_event: EventId,
}

impl From<&ComplaintState> for IdentityKey {
    fn from(state: &ComplaintState) -> IdentityKey {
        IdentityKey {
            complaint_id: state.id,
            created_event: state.created_event,
        }
    }
}

/// A reporter identity held at this site, opened for an entitled reader.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldIdentity {
    pub complaint_id: ComplaintId,
    pub created_event: EventId,
    pub scope: IdentityScope,
    pub reporter: Reporter,
}

/// An identity sealed for storage. The plaintext stays in memory only, for
/// the writer's duplicate comparisons.
pub(super) struct SealedIdentity {
    pub scope: IdentityScope,
    pub sealed: Vec<u8>,
    pub nik_hash: Option<[u8; 32]>,
    pub reporter: Reporter,
}

/// The `events` columns that hold an identity (`identity`, `identity_scope`,
/// `nik_hash`), as bound for `identity`: all NULL without one.
pub(super) fn columns(
    identity: Option<&SealedIdentity>,
) -> (Option<&[u8]>, Option<&'static str>, Option<&[u8]>) {
    (
        identity.map(|i| i.sealed.as_slice()),
        identity.map(|i| i.scope.as_sql()),
        identity
            .and_then(|i| i.nik_hash.as_ref())
            .map(|h| h.as_slice()),
    )
}

/// An event in the form the store writes it: the identity-free payload and
/// the identity beside it.
pub(super) struct StoredEvent {
    pub payload: Vec<u8>,
    pub identity: Option<SealedIdentity>,
}

fn identity_aad(event: EventId) -> Vec<u8> {
    [IDENTITY_AAD, event.0.as_bytes().as_slice()].concat()
}

/// Seals `reporter` as the identity of the Created event `event`.
pub(super) fn seal(
    key: &SiteKey,
    event: EventId,
    scope: IdentityScope,
    reporter: Reporter,
) -> SealedIdentity {
    let encoded = convert::reporter_to_proto(&reporter);
    seal_encoded(key, event, scope, &encoded, reporter)
}

/// [`seal`] with the reporter already in its wire form, `encoded`.
fn seal_encoded(
    key: &SiteKey,
    event: EventId,
    scope: IdentityScope,
    encoded: &v1::ReporterIdentity,
    reporter: Reporter,
) -> SealedIdentity {
    let mut plain = encoded.encode_to_vec();
    let sealed = key.seal(&identity_aad(event), &plain);
    plain.zeroize();
    SealedIdentity {
        scope,
        sealed,
        nik_hash: reporter.nik.as_ref().map(|n| key.nik_hash(n)),
        reporter,
    }
}

/// The plaintext of the identity sealed for `event`: its canonical
/// `ReporterIdentity` encoding (the caller zeroizes it).
fn open_identity(key: &SiteKey, event: EventId, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    key.open(&identity_aad(event), sealed)
        .map_err(|source| StoreError::Unseal {
            record: format!("identity of event {event}"),
            source,
        })
}

fn unseal(key: &SiteKey, event: EventId, sealed: &[u8]) -> Result<Reporter, StoreError> {
    let mut plain = open_identity(key, event, sealed)?;
    let decoded = v1::ReporterIdentity::decode(plain.as_slice());
    plain.zeroize();
    let corrupt = |reason: String| StoreError::CorruptIdentity { event, reason };
    let proto = decoded.map_err(|e| corrupt(e.to_string()))?;
    convert::reporter_from_proto(proto, "reporter").map_err(|v| corrupt(v.to_string()))
}

/// Splits an event into its stored form. Only a non-anonymous Created
/// event's identity is kept (scope `event`); an anonymous Created never
/// carries one (validation refuses it), and should one reach the store
/// anyway it is dropped, never stored.
pub(super) fn stored_form(key: &SiteKey, event: &Event) -> StoredEvent {
    let (reporter, anonymous) = match &event.body {
        EventBody::Created { intake, .. } => (intake.reporter.as_ref(), intake.privacy.anonymous),
        _ => (None, false),
    };
    let Some(reporter) = reporter else {
        return StoredEvent {
            payload: encode_event(event),
            identity: None,
        };
    };
    // The reporter is taken out of the encoded form, not out of a copy of
    // the event (and its ~1 KiB body), and sealed as it was encoded there.
    let mut proto = convert::event_to_proto(event);
    let encoded = match proto.body.as_mut().and_then(|b| b.kind.as_mut()) {
        Some(v1::event_body::Kind::Created(created)) => {
            created.intake.as_mut().and_then(|i| i.reporter.take())
        }
        _ => None,
    };
    StoredEvent {
        payload: proto.encode_to_vec(),
        identity: encoded.filter(|_| !anonymous).map(|encoded| {
            seal_encoded(
                key,
                event.id,
                IdentityScope::Event,
                &encoded,
                reporter.clone(),
            )
        }),
    }
}

/// The identity held for the Created event `event`, opened.
pub(super) fn held(
    conn: &Connection,
    key: &SiteKey,
    event: EventId,
) -> Result<Option<(IdentityScope, Reporter)>, StoreError> {
    let row: Option<(String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT identity_scope, identity FROM events WHERE event_id = ?1 AND identity IS NOT NULL",
        )?
        .query_row([event.0.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(scope, sealed)| {
        let scope = IdentityScope::from_sql(&scope).ok_or_else(|| StoreError::CorruptIdentity {
            event,
            reason: format!("unknown scope {scope:?}"),
        })?;
        Ok((scope, unseal(key, event, &sealed)?))
    })
    .transpose()
}

/// The identities held for `keys`, opened, in the order asked (complaints
/// without one are left out).
pub(super) fn fetch(
    conn: &Connection,
    key: &SiteKey,
    keys: &[IdentityKey],
) -> Result<Vec<HeldIdentity>, StoreError> {
    let mut out = Vec::new();
    for k in keys {
        if let Some((scope, reporter)) = held(conn, key, k.created_event)? {
            out.push(HeldIdentity {
                complaint_id: k.complaint_id,
                created_event: k.created_event,
                scope,
                reporter,
            });
        }
    }
    Ok(out)
}

/// Complaints whose reporter gave the NIK with this keyed hash, in id order.
/// The index is partitioned by arrival (schema 0006), so this is one probe
/// per partition, from the first partition holding any hash to the last.
pub(super) fn complaints_by_nik(
    conn: &Connection,
    nik_hash: &[u8; 32],
) -> Result<Vec<ComplaintId>, StoreError> {
    let (first, last): (Option<i64>, Option<i64>) = conn
        .prepare_cached(NIK_PARTS)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(NIK_PROBE)?;
    let mut out = Vec::new();
    for part in first..=last {
        let rows = stmt.query_map(params![part, nik_hash.as_slice()], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        for row in rows {
            let bytes = row?;
            let id = uuid::Uuid::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                seq: 0,
                reason: format!("events.complaint_id: {e}"),
            })?;
            out.push(ComplaintId(id));
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The first and last NIK-index partitions, each read from one end of the
/// index (a single `min(), max()` query would scan it).
const NIK_PARTS: &str = "SELECT (SELECT min(seq >> 12) FROM events WHERE nik_hash IS NOT NULL),
        (SELECT max(seq >> 12) FROM events WHERE nik_hash IS NOT NULL)";

/// One partition's complaints with a given NIK hash.
const NIK_PROBE: &str = "SELECT complaint_id FROM events WHERE (seq >> 12) = ?1 AND nik_hash = ?2 AND nik_hash IS NOT NULL";

/// A complaint's identities: its own node keeps them, local.
const MAKE_LOCAL: &str = "UPDATE events SET identity_scope = 'local'
     WHERE complaint_id = ?1 AND identity_scope = 'event'";

/// [`MAKE_LOCAL`]'s identities, erased (every other site): the row is
/// written again without the sealed blob and the NIK hash (and
/// `secure_delete` zeroes any space that frees in its page).
const ERASE: &str = "UPDATE events SET identity = NULL, identity_scope = NULL, nik_hash = NULL
     WHERE complaint_id = ?1 AND identity IS NOT NULL";

/// Applies the tightening rule to a complaint that is now anonymous: at its
/// origin node the identity becomes `local`; elsewhere it is erased, with an
/// audit row. A no-op for complaints that are not anonymous. True when an
/// identity was changed (what a run sends for the complaint changed too).
pub(super) fn on_anonymous(
    conn: &Connection,
    site: &SiteCode,
    state: &ComplaintState,
) -> Result<bool, StoreError> {
    if !state.privacy.anonymous {
        return Ok(false);
    }
    let id = state.id.0.as_bytes();
    if state.origin == *site {
        let made_local = conn.prepare_cached(MAKE_LOCAL)?.execute([id.as_slice()])?;
        return Ok(made_local > 0);
    }
    let erased = conn.prepare_cached(ERASE)?.execute([id.as_slice()])?;
    if erased > 0 {
        audit::append(
            conn,
            &[AuditEntry {
                actor: format!("site:{site}"),
                action: AuditAction::EraseIdentity,
                subject: state.id.to_string(),
                detail: "the complaint became anonymous".into(),
            }],
            now_ms(),
        )?;
    }
    Ok(erased > 0)
}

/// Puts the identity sealed for the Created event `event_id` back into its
/// stored `payload` and appends the whole, canonical event to `out` as one
/// `EventBatch` record (key, length, bytes: a run is read into one framed
/// buffer, `read::event_run`); returns where the event's bytes lie in
/// `out`. The sealed plaintext is the canonical `ReporterIdentity` that
/// [`seal`] encoded, so it is appended to the stored bytes as the intake's
/// last field (`proto::wire`), which gives the bytes encoding the whole
/// event would; a payload not shaped as prost writes it is decoded and
/// encoded.
pub(super) fn attach_framed(
    key: &SiteKey,
    seq: i64,
    event_id: EventId,
    payload: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<std::ops::Range<usize>, StoreError> {
    let mut plain = open_identity(key, event_id, sealed)?;
    let spliced = wire::Splice::plan(payload, REPORTER_PATH, REPORTER_FIELD, &plain)
        .map(|splice| splice.write_event_record(out));
    plain.zeroize();
    match spliced {
        Some(at) => Ok(at),
        None => {
            let mut whole = attach_by_decoding(key, seq, event_id, payload, sealed)?;
            let at = wire::put_event_record(out, &whole);
            whole.zeroize();
            Ok(at)
        }
    }
}

/// `Event.body` (10) → `EventBody.created` (1) → `Created.intake` (2): each
/// the last field of its message in the canonical encoding.
pub(super) const REPORTER_PATH: &[u32] = &[10, 1, 2];
/// `ComplaintIntake.reporter`, the highest-numbered field of the intake.
pub(super) const REPORTER_FIELD: u32 = 9;

/// [`attach`] the long way: decode, put the reporter in, encode.
fn attach_by_decoding(
    key: &SiteKey,
    seq: i64,
    event_id: EventId,
    payload: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut event = decode_event(seq, payload)?;
    let reporter = unseal(key, event_id, sealed)?;
    if let EventBody::Created { intake, .. } = &mut event.body {
        intake.reporter = Some(reporter);
    }
    Ok(encode_event(&event))
}

/// Opens a sealed conflict or quarantine record.
pub(super) fn open_record(
    key: &SiteKey,
    aad: &[u8],
    what: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, StoreError> {
    key.open(aad, sealed).map_err(|source| StoreError::Unseal {
        record: what.to_owned(),
        source,
    })
}

/// Resolves the site key for this database: loads it, or creates it when
/// the database was never sealed with one (a new database, or one from
/// before schema 4), then records or checks its fingerprint.
///
/// # Errors
/// A missing key for a database that was sealed with one, a key file with
/// loose permissions, or another site's key.
pub(super) fn bind_key(conn: &Connection, path: &std::path::Path) -> Result<SiteKey, StoreError> {
    let recorded: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let key = match (SiteKey::load(path), &recorded) {
        (Ok(key), _) => key,
        (Err(KeyError::Missing { .. }), None) => {
            SiteKey::load_or_create(path).map_err(StoreError::Key)?.0
        }
        (Err(source), _) => return Err(StoreError::Key(source)),
    };
    match recorded {
        Some(check) if check != key.check_value() => Err(StoreError::WrongKey {
            path: path.to_owned(),
        }),
        Some(_) => Ok(key),
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                [key.check_value()],
            )?;
            Ok(key)
        }
    }
}

/// Seals what a database from before schema 4 kept in plain text: the
/// identity inside Created payloads, conflict and quarantine copies. Runs
/// once (a `meta` flag), in one transaction, with `secure_delete` on so the
/// old bytes are overwritten, then truncates the WAL that held them.
pub(super) fn seal_plaintext(
    conn: &mut Connection,
    key: &SiteKey,
    site: &SiteCode,
) -> Result<(), StoreError> {
    let done: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'identity_at_rest'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if done.is_some() {
        return Ok(());
    }
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let created: Vec<(i64, Vec<u8>)> = tx
        .prepare("SELECT seq, payload FROM events WHERE kind = 'created'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut touched = Vec::new();
    for (seq, payload) in created {
        let event = decode_event(seq, &payload)?;
        let has_identity =
            matches!(&event.body, EventBody::Created { intake, .. } if intake.reporter.is_some());
        if !has_identity {
            continue;
        }
        let form = stored_form(key, &event);
        let (sealed, scope, nik_hash) = columns(form.identity.as_ref());
        tx.execute(
            "UPDATE events SET payload = ?2, identity = ?3, identity_scope = ?4, nik_hash = ?5
              WHERE seq = ?1",
            params![seq, form.payload, sealed, scope, nik_hash],
        )?;
        touched.push(event.complaint_id);
    }
    for id in &touched {
        if let Some(state) = lifecycle::fold(&events_of(&tx, *id)?) {
            on_anonymous(&tx, site, &state)?;
        }
    }
    let mut sealed_rows = touched.len();
    for (table, aad) in [("conflicts", CONFLICT_AAD), ("quarantine", QUARANTINE_AAD)] {
        let rows: Vec<(i64, Vec<u8>)> = tx
            .prepare(&format!("SELECT id, payload FROM {table} WHERE sealed = 0"))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        sealed_rows += rows.len();
        for (id, payload) in rows {
            tx.execute(
                &format!("UPDATE {table} SET payload = ?2, sealed = 1 WHERE id = ?1"),
                params![id, key.seal(aad, &payload)],
            )?;
        }
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('identity_at_rest', 'sealed')",
        [],
    )?;
    tx.commit()?;
    // FAST: deleted content is zeroed where that costs no extra I/O (the
    // small identity rows erased at hubs live inside their pages).
    conn.pragma_update(None, "secure_delete", "FAST")?;
    if sealed_rows > 0 {
        tracing::info!(
            rows = sealed_rows,
            "sealed reporter identity kept in plain text by an older version"
        );
        // The WAL frames still hold the old pages; copy them home and cut
        // the file to zero length.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// The audit row appended when a record from `from` is quarantined.
pub(super) fn quarantine_audit(
    from: &SiteCode,
    event_id: Option<&str>,
    reason: &str,
) -> AuditEntry {
    AuditEntry {
        actor: format!("site:{from}"),
        action: AuditAction::RefusedWrite,
        subject: event_id.unwrap_or("-").to_owned(),
        detail: format!("quarantined: {reason}"),
    }
}

/// Identity of a Created event being compared with its stored copy: the
/// copies differ only when both carry identity and the identities differ.
pub(super) fn same_identity(
    conn: &Connection,
    key: &SiteKey,
    event: &Event,
) -> Result<bool, StoreError> {
    let incoming = match &event.body {
        EventBody::Created { intake, .. } => intake.reporter.as_ref(),
        _ => None,
    };
    let Some(incoming) = incoming else {
        return Ok(true);
    };
    Ok(match held(conn, key, event.id)? {
        Some((IdentityScope::Event, stored)) => stored == *incoming,
        // Local identities are never part of an event; none held means this
        // site holds the event without identity (withheld or erased).
        Some((IdentityScope::Local, _)) | None => true,
    })
}

#[cfg(test)]
mod tests;
