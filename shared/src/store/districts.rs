//! The district each known complaint belongs to, for authorization: an
//! event's `district` field is what its sender says, and a child may only
//! write events of complaints of its own district, so the parent compares
//! that field with the district the complaint was created in.

use rusqlite::{Connection, OptionalExtension, Statement};

use super::{Store, StoreError};
use crate::domain::{ComplaintId, SiteCode};

impl Store {
    /// The district of complaint `id` if this site holds it (its `Created`
    /// event has arrived).
    ///
    /// # Errors
    /// A read failed, or the stored district is not a site code (corruption).
    pub async fn complaint_district(
        &self,
        id: ComplaintId,
    ) -> Result<Option<SiteCode>, StoreError> {
        self.inner
            .readers
            .run(move |conn| complaint_district(conn, id))
            .await
    }
}

/// One primary-key lookup: the district of a complaint.
pub(super) const COMPLAINT_DISTRICT: &str =
    "SELECT district FROM complaints WHERE complaint_id = ?1";

/// The district of complaint `id` if this site holds it.
pub(super) fn complaint_district(
    conn: &Connection,
    id: ComplaintId,
) -> Result<Option<SiteCode>, StoreError> {
    complaint_district_with(&mut *conn.prepare_cached(COMPLAINT_DISTRICT)?, id)
}

/// [`complaint_district`] with `lookup`, a [`COMPLAINT_DISTRICT`] statement
/// (the writer's check keeps one for a whole batch, inside its transaction).
pub(super) fn complaint_district_with(
    lookup: &mut Statement<'_>,
    id: ComplaintId,
) -> Result<Option<SiteCode>, StoreError> {
    let district: Option<String> = lookup
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
