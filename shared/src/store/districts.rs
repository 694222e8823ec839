//! The district each known complaint belongs to, for authorization: an
//! event's `district` field is what its sender says, and a child may only
//! write events of complaints of its own district, so the parent compares
//! that field with the district the complaint was created in.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::{Store, StoreError};
use crate::domain::{ComplaintId, SiteCode};

/// Ids per query: well under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

impl Store {
    /// The district of each complaint in `ids` that this site holds (its
    /// `Created` event has arrived); ids it does not know are left out.
    ///
    /// # Errors
    /// A read failed, or a stored district is not a site code (corruption).
    pub async fn complaint_districts(
        &self,
        ids: Vec<ComplaintId>,
    ) -> Result<HashMap<ComplaintId, SiteCode>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.inner
            .readers
            .run(move |conn| complaint_districts(conn, &ids))
            .await
    }
}

/// The district of complaint `id` if this site holds it: one primary-key
/// lookup, for the writer's check inside its transaction.
pub(super) fn complaint_district(
    conn: &Connection,
    id: ComplaintId,
) -> Result<Option<SiteCode>, StoreError> {
    let district: Option<String> = conn
        .prepare_cached("SELECT district FROM complaints WHERE complaint_id = ?1")?
        .query_row([id.0.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    district
        .map(|d| {
            SiteCode::parse(&d).map_err(|_| StoreError::Corrupt {
                seq: 0,
                reason: format!("complaints.district {d:?} is not a site code"),
            })
        })
        .transpose()
}

fn complaint_districts(
    conn: &Connection,
    ids: &[ComplaintId],
) -> Result<HashMap<ComplaintId, SiteCode>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT complaint_id, district FROM complaints WHERE complaint_id IN ({marks})"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params_from_iter(chunk.iter().map(|id| id.0.as_bytes().to_vec())),
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
        )?;
        for row in rows {
            let (id, district) = row?;
            let id = uuid::Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt {
                seq: 0,
                reason: "complaints.complaint_id is not a UUID".into(),
            })?;
            let district = SiteCode::parse(&district).map_err(|_| StoreError::Corrupt {
                seq: 0,
                reason: format!("complaints.district {district:?} is not a site code"),
            })?;
            out.insert(ComplaintId(id), district);
        }
    }
    Ok(out)
}
