//! Which complaints are overdue at a site, judged on a hub's clock.
//!
//! A hub judges with its own clock. A node judges with its clock corrected
//! by the skew it last measured to its hub at Hello, so an offline node whose
//! clock drifted still agrees with its province; it never closes anything by
//! itself (closing is a hub's event, see `lifecycle`).

use chrono::{DateTime, Utc};

use crate::calendar::{HolidayList, IndonesianZone, WorkCalendar, zone_for_province};
use crate::deadline::{Deadline, Deadlines, SlaProfile};
use crate::domain::{SiteRole, Status};
use crate::lifecycle::ComplaintState;
use crate::store::{ComplaintFilter, PageRequest, Store, StoreError};

/// The calendar inputs every tier must share for deadlines to agree: the
/// `[deadlines]` section of node and hub configs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinePolicy {
    /// National holidays and cuti bersama; when set, they replace the
    /// built-in 2026 list (a revised SKB can move dates).
    pub holidays: HolidayList,
    pub sla: SlaProfile,
}

impl DeadlinePolicy {
    /// The complaint's deadlines on its own province's calendar (never the
    /// judging site's: Aceh's complaints run on WIB wherever they are read).
    pub fn deadlines(&self, state: &ComplaintState) -> Deadlines {
        let zone = zone_for_province(state.district.as_str()).unwrap_or(IndonesianZone::Wib);
        Deadlines::of(
            state,
            &WorkCalendar::from_list(zone, &self.holidays),
            &self.sla,
        )
    }
}

/// "Now" for deadline judgments at this site.
pub async fn judging_now(store: &Store) -> Result<DateTime<Utc>, StoreError> {
    let now = DateTime::from_timestamp_millis(store.wall_clock_ms()).unwrap_or_else(Utc::now);
    if store.site().role() != SiteRole::Node {
        return Ok(now);
    }
    let skew = store
        .peers()
        .await?
        .into_iter()
        .find(|p| p.role == SiteRole::Province.to_string())
        .and_then(|p| p.clock_skew_ms)
        .unwrap_or(0);
    // The skew is clamped where it is measured; still never let a stored
    // value push the date out of range.
    Ok(now
        .checked_add_signed(chrono::Duration::milliseconds(skew))
        .unwrap_or(now))
}

/// Statuses in which a deadline can run.
const OPEN: [Status; 3] = [
    Status::BelumTerverifikasi,
    Status::Terverifikasi,
    Status::DalamProses,
];

/// Overdue complaints matching `filter` (statuses in it are ignored: only
/// open complaints can be overdue), most overdue first, at most `limit`.
pub async fn overdue(
    store: &Store,
    policy: &DeadlinePolicy,
    mut filter: ComplaintFilter,
    limit: usize,
) -> Result<(DateTime<Utc>, Vec<(ComplaintState, Deadline)>), StoreError> {
    let now = judging_now(store).await?;
    filter.statuses = OPEN.to_vec();
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(
                filter.clone(),
                PageRequest {
                    limit: crate::store::MAX_PAGE_SIZE,
                    token,
                },
            )
            .await?;
        for state in page.items {
            if let Some(next) = policy.deadlines(&state).next.filter(|d| d.overdue(now)) {
                found.push((state, next));
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    found.sort_by_key(|(s, d)| (d.due, s.id));
    found.truncate(limit);
    Ok((now, found))
}

/// One overdue complaint as the `overdue` commands print it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OverdueRow {
    pub tracking_number: String,
    pub district: String,
    pub status: String,
    /// `verification`, `follow_up` or `auto_close`.
    pub deadline: String,
    pub due: DateTime<Utc>,
    /// Whole working days past due are not tracked here: hours keep it exact.
    pub hours_late: i64,
    pub title: String,
}

/// Rows for the `overdue` commands of node and hub.
pub async fn overdue_rows(
    store: &Store,
    policy: &DeadlinePolicy,
    limit: usize,
) -> Result<(DateTime<Utc>, Vec<OverdueRow>), StoreError> {
    let (now, found) = overdue(store, policy, ComplaintFilter::default(), limit).await?;
    let rows = found
        .into_iter()
        .map(|(s, d)| OverdueRow {
            tracking_number: s.tracking_number.0.clone(),
            district: s.district.to_string(),
            status: s.status.label().to_owned(),
            deadline: d.kind.name().to_owned(),
            due: d.due,
            hours_late: (now - d.due).num_hours(),
            title: s.intake.title.clone(),
        })
        .collect();
    Ok((now, rows))
}

/// Prints rows as a table or JSON (`{"judged_at": .., "overdue": [..]}`).
pub fn print_rows(
    now: DateTime<Utc>,
    rows: &[OverdueRow],
    json: bool,
) -> Result<(), serde_json::Error> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "judged_at": now, "overdue": rows })
            )?
        );
        return Ok(());
    }
    println!(
        "judged at {}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for r in rows {
        println!(
            "{:<20} {:<6} {:<20} {:<12} due {} ({} h late)  {}",
            r.tracking_number,
            r.district,
            r.status,
            r.deadline,
            r.due.format("%Y-%m-%d %H:%M UTC"),
            r.hours_late,
            r.title
        );
    }
    println!("{} overdue", rows.len());
    Ok(())
}
