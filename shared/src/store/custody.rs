//! Custody receipts: how far up the chain a node's events are durable.
//!
//! ```text
//! node ──push──▶ province ──push──▶ national
//!   ▲  ack(through N): custody(province, N)      │
//!   │                 ack(through P) ◀────────────┘
//!   │   province: events with own seq ≤ P, per child, max source_seq = M
//!   └── pull: Receipt{national, M}: custody(national, M)
//! ```
//!
//! Everything here is derived from durable cursors, so a hub that restarts
//! between receiving and forwarding still produces the receipts later.

use rusqlite::{Connection, OptionalExtension, params};

use super::read::now_ms;
use super::{Custody, CustodyTier, StoreError};
use crate::domain::{ComplaintId, Seq, SiteCode};

/// Records that this site's events through `through` were durable at
/// `tier` by `at_ms`. The first record of a seq wins (arrival time).
pub(super) fn record(
    conn: &Connection,
    tier: CustodyTier,
    through: Seq,
    at_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO custody (tier, through_seq, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?
    .execute(params![tier.as_sql(), through.0 as i64, at_ms])?;
    Ok(())
}

/// The newly acked range of the log, per child: the highest child seq in
/// it. Reads only that range of the primary key (a test holds the plan to
/// it), so a receipt costs what the ack covered, not the log's size.
const RECEIPT_SCAN: &str = "SELECT received_from, max(source_seq) FROM events
     WHERE received_from IS NOT NULL AND received_from != ?3 AND source_seq IS NOT NULL
       AND seq > ?1 AND seq <= ?2
     GROUP BY received_from";

/// Turns the parent's ack cursor into per-child receipts: for the events
/// this hub received from each child and has now seen durable at the
/// parent, the highest child seq. Returns whether any receipt moved.
pub(super) fn advance_receipts(
    conn: &Connection,
    parent: &SiteCode,
    acked: Seq,
) -> Result<bool, StoreError> {
    let scanned: i64 =
        conn.query_row("SELECT through FROM receipt_scan WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    let acked = acked.0 as i64;
    if acked <= scanned {
        return Ok(false);
    }
    let now = now_ms();
    let mut moved = false;
    {
        let mut stmt = conn.prepare_cached(RECEIPT_SCAN)?;
        let rows = stmt.query_map(params![scanned, acked, parent.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut upsert = conn.prepare_cached(
            "INSERT INTO receipts_out (child, through_seq, at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (child) DO UPDATE SET through_seq = excluded.through_seq, at_ms = excluded.at_ms
             WHERE excluded.through_seq > through_seq",
        )?;
        for row in rows {
            let (child, through) = row?;
            moved |= upsert.execute(params![child, through, now])? > 0;
        }
    }
    conn.prepare_cached("UPDATE receipt_scan SET through = ?1 WHERE id = 1")?
        .execute([acked])?;
    Ok(moved)
}

pub(super) fn receipt_for(
    conn: &Connection,
    child: &SiteCode,
) -> Result<Option<(Seq, i64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT through_seq, at_ms FROM receipts_out WHERE child = ?1")?
        .query_row([child.as_str()], |r| {
            Ok((Seq(r.get::<_, i64>(0)? as u64), r.get(1)?))
        })
        .optional()?)
}

/// When the complaint's created event (written here) was first durable at
/// each tier above.
pub(super) fn of_complaint(conn: &Connection, id: ComplaintId) -> Result<Vec<Custody>, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM events WHERE complaint_id = ?1 AND kind = 'created' AND received_from IS NULL")?
        .query_row([id.0.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    let Some(seq) = seq else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for tier in [CustodyTier::Province, CustodyTier::National] {
        let at: Option<i64> = conn
            .prepare_cached("SELECT min(at_ms) FROM custody WHERE tier = ?1 AND through_seq >= ?2")?
            .query_row(params![tier.as_sql(), seq], |r| r.get(0))?;
        if let Some(at_ms) = at {
            out.push(Custody { tier, at_ms });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receipt_scan_reads_only_the_acked_range_of_the_log() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {RECEIPT_SCAN}"))
            .unwrap()
            .query_map(params![0, 10, "00"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step
                .starts_with("SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")),
            "{plan:?}"
        );
    }
}
