//! The audit log: an append-only, hash-chained record of every read of
//! reporter identity, every NIK look-up, every erasure and every refused
//! write at this site. UU 27/2022 gives 3×24 hours to tell data subjects
//! what leaked; this table is how a site answers "who saw whose identity".
//!
//! Design constraints:
//! - Rows are appended by the writer thread, inside the transaction of the
//!   request they describe when there is one (a quarantined record and its
//!   audit row commit together), so the log never misses a committed act.
//! - Triggers refuse UPDATE and DELETE; the chain detects whoever drops them.
//! - Rows never hold personal data: subjects are complaint or event ids,
//!   details are reasons and counts.
//!
//! ```text
//! row      seq, at_ms, actor, action, subject, detail, prev_hash, hash
//! hash   = SHA-256( prev_hash || "lapor.audit.v1"
//!                   || u64 seq || i64 at_ms             (big-endian)
//!                   || str actor || str action || str subject || str detail )
//! str    = u32 big-endian byte length || UTF-8 bytes
//! seq 1 has prev_hash = 32 zero bytes; seq n+1 follows seq n, no gaps
//! ```
//!
//! What the chain proves: an edit, deletion or insertion anywhere changes a
//! hash that every later row commits to, so [`verify`] names the first row
//! that no longer fits. What it cannot prove alone: that the newest rows
//! were not cut off, or that someone did not rewrite the whole table and
//! recompute every hash. For that, compare the head `audit verify` prints
//! with a copy kept elsewhere (the parent hub's operator, a ticket, paper).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest as _, Sha256};

use super::StoreError;

/// What an audit row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Reporter identity was decrypted for a reader (API or CLI).
    ReadIdentity,
    /// Complaints were looked up by a reporter's NIK.
    LookupNik,
    /// A site erased the identity it held because the complaint became
    /// anonymous.
    EraseIdentity,
    /// A write was refused: a quarantined record, a peer refused with
    /// PERMISSION_DENIED, an event outside this site's scope.
    RefusedWrite,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ReadIdentity => "read_identity",
            AuditAction::LookupNik => "lookup_nik",
            AuditAction::EraseIdentity => "erase_identity",
            AuditAction::RefusedWrite => "refused_write",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact to append. Never put personal data in any field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who acted: `grpc:operator@127.0.0.1:50012`, `node-cli:siti`,
    /// `site:11.13` (a peer), `site:11` (this site itself).
    pub actor: String,
    pub action: AuditAction,
    /// What it concerned: a complaint id, an event id, a peer's site code.
    pub subject: String,
    /// Why or how much: a refusal reason, a count, a scope.
    pub detail: String,
}

/// The last row of the chain; an operator can keep a copy elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditHead {
    pub seq: u64,
    /// Hex SHA-256.
    pub hash: String,
}

/// Why a row does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum LinkFault {
    /// A row is missing before this one (or the numbering was changed).
    #[error("expected seq {expected}: a row is missing or was renumbered")]
    Gap { expected: u64 },
    /// `prev_hash` is not the previous row's hash.
    #[error("prev_hash does not match the hash of the row before")]
    PrevHash,
    /// The row's content no longer matches its hash: it was edited.
    #[error("the row's content does not match its hash (edited)")]
    Hash,
}

/// The first row where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokenLink {
    pub seq: u64,
    pub fault: LinkFault,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerdict {
    /// Rows checked (up to and including a broken one).
    pub rows: u64,
    /// The last row, when the chain is intact and not empty.
    pub head: Option<AuditHead>,
    pub broken: Option<BrokenLink>,
}

impl AuditVerdict {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The one-paragraph answer `audit verify` prints.
impl std::fmt::Display for AuditVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.broken, &self.head) {
            (Some(b), _) => write!(
                f,
                "audit log BROKEN at seq {}: {}; rows from seq {} on cannot be trusted",
                b.seq, b.fault, b.seq
            ),
            (None, Some(head)) => write!(
                f,
                "audit log ok: {} row(s), head seq {} hash {} (compare with a copy kept elsewhere)",
                self.rows, head.seq, head.hash
            ),
            (None, None) => f.write_str("audit log ok: empty"),
        }
    }
}

const GENESIS: [u8; 32] = [0; 32];

/// The hash of one row (see the module doc for the encoding).
fn row_hash(prev: &[u8], seq: u64, at_ms: i64, fields: [&str; 4]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(b"lapor.audit.v1");
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for field in fields {
        // Fields are far below 4 GiB (bounded by the callers' limits).
        h.update((field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// Appends `entries` in order after the current head.
pub(super) fn append(
    conn: &Connection,
    entries: &[AuditEntry],
    at_ms: i64,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut seq, mut prev) = match head {
        Some((seq, hash)) => (seq as u64, hash),
        None => (0, GENESIS.to_vec()),
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit (seq, at_ms, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for e in entries {
        seq += 1;
        let action = e.action.as_str();
        let hash = row_hash(&prev, seq, at_ms, [&e.actor, action, &e.subject, &e.detail]);
        insert.execute(params![
            seq as i64,
            at_ms,
            e.actor,
            action,
            e.subject,
            e.detail,
            prev,
            hash.as_slice()
        ])?;
        prev = hash.to_vec();
    }
    Ok(())
}

/// Walks the chain from the first row and reports the first broken link.
pub(super) fn verify(conn: &Connection) -> Result<AuditVerdict, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected_prev = GENESIS.to_vec();
    let mut expected_seq = 1u64;
    let mut checked = 0u64;
    let mut head = None;
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let at_ms: i64 = row.get(1)?;
        let fields: [String; 4] = [row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?];
        let prev: Vec<u8> = row.get(6)?;
        let hash: Vec<u8> = row.get(7)?;
        checked += 1;
        let fault = if seq != expected_seq {
            Some(LinkFault::Gap {
                expected: expected_seq,
            })
        } else if prev != expected_prev {
            Some(LinkFault::PrevHash)
        } else if row_hash(&prev, seq, at_ms, fields.each_ref().map(String::as_str)) != *hash {
            Some(LinkFault::Hash)
        } else {
            None
        };
        if let Some(fault) = fault {
            return Ok(AuditVerdict {
                rows: checked,
                head: None,
                broken: Some(BrokenLink { seq, fault }),
            });
        }
        head = Some(AuditHead {
            seq,
            hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
        });
        expected_prev = hash;
        expected_seq = seq + 1;
    }
    Ok(AuditVerdict {
        rows: checked,
        head,
        broken: None,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use tempfile::TempDir;

    use super::super::{Store, StoreConfig};
    use super::*;
    use crate::domain::SiteCode;
    use crate::hlc::SystemClock;

    fn open(dir: &TempDir) -> Store {
        Store::open(StoreConfig {
            path: dir.path().join("site.db"),
            site: SiteCode::parse("11").unwrap(),
            clock: SystemClock::default(),
        })
        .unwrap()
    }

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            actor: format!("grpc:reader-{n}"),
            action: AuditAction::ReadIdentity,
            subject: format!("complaint-{n}"),
            detail: "scope event".into(),
        }
    }

    /// A store with `n` audit rows, closed; returns its directory.
    async fn with_rows(n: u32) -> TempDir {
        let dir = TempDir::new().unwrap();
        let store = open(&dir);
        for i in 1..=n {
            store.audit(vec![entry(i)]).await.unwrap();
        }
        store.close().await.unwrap();
        dir
    }

    async fn verdict(dir: &TempDir) -> AuditVerdict {
        let store = open(dir);
        let v = store.verify_audit().await.unwrap();
        store.close().await.unwrap();
        v
    }

    fn raw(dir: &TempDir, sql: &str) -> rusqlite::Result<usize> {
        Connection::open(dir.path().join("site.db"))
            .unwrap()
            .execute(sql, [])
    }

    #[tokio::test]
    async fn an_empty_log_and_an_intact_chain_verify() {
        let empty = with_rows(0).await;
        let v = verdict(&empty).await;
        assert!(v.is_intact());
        assert_eq!((v.rows, v.head), (0, None));

        let dir = with_rows(5).await;
        let store = open(&dir);
        // Several entries in one append chain like single ones.
        store.audit(vec![entry(6), entry(7)]).await.unwrap();
        let v = store.verify_audit().await.unwrap();
        store.close().await.unwrap();
        assert!(v.is_intact(), "{v:?}");
        assert_eq!(v.rows, 7);
        assert_eq!(v.head.as_ref().map(|h| h.seq), Some(7));
        assert_eq!(v.head.map(|h| h.hash.len()), Some(64));
    }

    #[tokio::test]
    async fn the_triggers_refuse_updates_and_deletes() {
        let dir = with_rows(2).await;
        for sql in [
            "UPDATE audit SET detail = 'x' WHERE seq = 1",
            "DELETE FROM audit WHERE seq = 2",
        ] {
            let err = raw(&dir, sql).unwrap_err().to_string();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
        assert!(verdict(&dir).await.is_intact());
    }

    #[tokio::test]
    async fn a_row_edited_with_raw_sql_breaks_verification_at_that_row() {
        let dir = with_rows(4).await;
        raw(&dir, "DROP TRIGGER audit_no_update").unwrap();
        raw(
            &dir,
            "UPDATE audit SET actor = 'someone else' WHERE seq = 2",
        )
        .unwrap();
        let v = verdict(&dir).await;
        assert_eq!(
            v.broken,
            Some(BrokenLink {
                seq: 2,
                fault: LinkFault::Hash
            })
        );
        assert_eq!(v.rows, 2, "the walk stops at the first broken link");
    }

    #[tokio::test]
    async fn a_rehashed_row_breaks_the_next_link_and_a_deleted_row_leaves_a_gap() {
        let dir = with_rows(4).await;
        raw(&dir, "DROP TRIGGER audit_no_update").unwrap();
        // An editor who also recomputes the edited row's own hash.
        let conn = Connection::open(dir.path().join("site.db")).unwrap();
        let prev: Vec<u8> = conn
            .query_row("SELECT prev_hash FROM audit WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        let forged = row_hash(
            &prev,
            2,
            0,
            [
                "grpc:reader-2",
                "read_identity",
                "complaint-2",
                "nothing here",
            ],
        );
        conn.execute(
            "UPDATE audit SET at_ms = 0, detail = 'nothing here', hash = ?1 WHERE seq = 2",
            [forged.as_slice()],
        )
        .unwrap();
        drop(conn);
        assert_eq!(
            verdict(&dir).await.broken,
            Some(BrokenLink {
                seq: 3,
                fault: LinkFault::PrevHash
            })
        );

        let dir = with_rows(4).await;
        raw(&dir, "DROP TRIGGER audit_no_delete").unwrap();
        raw(&dir, "DELETE FROM audit WHERE seq = 3").unwrap();
        assert_eq!(
            verdict(&dir).await.broken,
            Some(BrokenLink {
                seq: 4,
                fault: LinkFault::Gap { expected: 3 }
            })
        );
    }
}
