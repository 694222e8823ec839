//! [`StoreError`]: everything that can go wrong in the store, and how a
//! caller classifies it (storage failure or refusal, retriable or not).

use std::path::PathBuf;
use std::sync::Arc;

use crate::crypto::{KeyError, SealError};
use crate::domain::{EventId, Seq, SiteCode};

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
    /// site (illegal transition, `Created` via `add_event`).
    #[error("refused: {reason}")]
    Rejected { reason: String },
    /// An event for a complaint outside this site's scope (a district
    /// node's own district, a province hub's province); audited.
    #[error("complaint of district {district} is outside site {site}")]
    OutOfScope { site: SiteCode, district: SiteCode },
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
    /// The site key cannot be used (missing for a sealed database, loose
    /// permissions, not a key file); the message says what to do.
    #[error(transparent)]
    Key(KeyError),
    /// The key file holds another key than the one this database was
    /// sealed with.
    #[error(
        "site key {path} is not the key this database was sealed with: restore this site's own key file"
    )]
    WrongKey { path: PathBuf },
    /// A sealed record did not open with the site key (tampered, or moved
    /// from another row).
    #[error("open sealed {record}")]
    Unseal {
        record: String,
        #[source]
        source: SealError,
    },
    /// A sealed identity opened but no longer decodes (a bug).
    #[error("decode the sealed identity of event {event}: {reason}")]
    CorruptIdentity { event: EventId, reason: String },
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
    /// A batch from `peer` continues from seq `from`, but only `held` of
    /// its log is stored here: the batch before it was not committed, and
    /// storing this one would leave a gap. The sender resumes from `held`.
    #[error("batch from {peer} continues from seq {from} but only seq {held} is held")]
    Gap {
        peer: SiteCode,
        from: Seq,
        held: Seq,
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
                | StoreError::Unseal { .. }
                | StoreError::CorruptIdentity { .. }
        )
    }

    /// True for errors that a caller may retry unchanged: a busy or locked
    /// database, and a full disk — the same write succeeds once space
    /// returns, so a sync session that ended on it must come back at the
    /// link's pace, not the minute-long pace of a refusal (found by the
    /// chaos harness's disk-full fault, issue 6).
    pub fn is_retriable(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                )
            ),
            StoreError::GroupCommit(inner) => inner.is_retriable(),
            StoreError::Closed | StoreError::Join(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn a_full_disk_is_retriable_so_sync_resumes_promptly_once_space_returns() {
        assert!(sqlite(rusqlite::ffi::SQLITE_FULL).is_retriable());
        assert!(
            StoreError::GroupCommit(Arc::new(sqlite(rusqlite::ffi::SQLITE_FULL))).is_retriable()
        );
    }

    #[test]
    fn busy_is_retriable_and_corruption_is_not() {
        assert!(sqlite(rusqlite::ffi::SQLITE_BUSY).is_retriable());
        assert!(!sqlite(rusqlite::ffi::SQLITE_CORRUPT).is_retriable());
        assert!(
            !StoreError::GroupCommit(Arc::new(sqlite(rusqlite::ffi::SQLITE_CORRUPT)))
                .is_retriable()
        );
    }
}
