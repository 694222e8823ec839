//! Schema migrations, tracked in `PRAGMA user_version`
//! (application-services `open_database.rs`).
//!
//! Migration N takes a database at version N-1 to version N. They run in one
//! immediate transaction, so a crash leaves the old version intact. A
//! database whose version is newer than this binary knows is refused: an
//! older binary must never write a schema it does not understand.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Every migration, in order; index 0 is version 1.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("schema/0001_event_log.sql"),
    include_str!("schema/0002_replication.sql"),
    include_str!("schema/0003_custody.sql"),
    include_str!("schema/0004_identity_audit.sql"),
    include_str!("schema/0005_drop_sender_index.sql"),
    include_str!("schema/0006_nik_index_by_arrival.sql"),
    include_str!("schema/0007_identities_by_event_only.sql"),
    include_str!("schema/0008_identity_in_event_row.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings `conn` to [`SCHEMA_VERSION`]; returns the version found.
pub(super) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies migrations up to `target` (tests use this to build old schemas).
pub(super) fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::IncompatibleVersion {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= target {
        return Ok(found);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for version in found + 1..=target {
        let sql = MIGRATIONS[version as usize - 1];
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration { version, source })?;
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.commit()?;
    Ok(found)
}
