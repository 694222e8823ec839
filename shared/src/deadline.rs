//! A complaint's LAPOR service-level deadlines (domain.md §3, §9 items
//! 11–12), computed from its folded state and a working-day calendar.
//!
//! This module owns the rule for which clock runs in which status and from
//! which milestone. It reads no clock and writes nothing: "is it overdue?"
//! takes `now` as a parameter, and acting on an overdue complaint (closing
//! it, escalating) belongs to the caller.
//!
//! The rule, with the day counts of an [`SlaProfile`] (LAPOR: 3, 5, 10):
//!
//! | status | deadline | runs from |
//! |---|---|---|
//! | Belum Terverifikasi, Terverifikasi | [`Verification`](DeadlineKind::Verification) | submission (or the reopen that sent it back) |
//! | Dalam Proses, no response since the latest request | [`FollowUp`](DeadlineKind::FollowUp) | the latest disposition hop, reopen or reporter reply |
//! | Dalam Proses, a response after all of those | [`AutoClose`](DeadlineKind::AutoClose) | that response |
//! | Selesai, Ditolak, Diarsipkan | none | — |
//!
//! - Verification covers *Terverifikasi* too: LAPOR's step is "verifikasi &
//!   disposisi" within 3 working days, done only when the report is
//!   forwarded to an agency. A verified report nobody dispositioned would
//!   otherwise never show as overdue.
//! - A reporter reply after the agency's response cancels the automatic
//!   close ("no reply from the reporter") and hands the thread back to the
//!   agency, so a follow-up runs from the reply. LAPOR documents no deadline
//!   for answering a reply; using the follow-up days for it is our choice, so
//!   that a replied complaint cannot sit with no clock at all.
//! - A reopen voids every milestone before it and is itself a request to the
//!   agency (from Selesai) or a new submission (from Ditolak/Diarsipkan).
//!
//! Design constraints:
//! - Deadlines are judged on a hub's clock, never an offline node's
//!   (domain.md §9.11). A node may *show* deadlines, but a caller at a node
//!   must never auto-close: the lifecycle table refuses a `closed` written at
//!   a node anyway, and a node whose clock runs days fast would otherwise
//!   close cases early.
//! - [`Deadlines::of`] is a pure function of (state, calendar, profile), so
//!   every tier holding the same events shows the same deadlines — provided
//!   all tiers pass the calendar of the *complaint's* province
//!   (`calendar::zone_for_province(state.district.as_str())`), not of the
//!   site computing it, and configure the same holiday list.
//! - Milestones are HLC physical times, stamped by the site that wrote the
//!   event. A complaint taken in at a node whose clock is wrong starts its
//!   verification clock at that wrong time; domain.md §9.4/§9.12 suggest the
//!   hub's receive time as well, which the state does not carry yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkCalendar;
use crate::domain::Status;
use crate::hlc::Hlc;
use crate::lifecycle::ComplaintState;

/// The working-day counts of one agency's service levels. LAPOR's national
/// values are the [`Default`]; local SOPs differ (2/5/14/60 days in Paria,
/// 10 in Malinau — domain.md §3), so hubs may configure a profile per agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaProfile {
    /// Verification and disposition after submission.
    pub verify_days: u16,
    /// The agency's follow-up (*tindak lanjut*) after a disposition.
    pub follow_up_days: u16,
    /// Automatic close after a response the reporter did not reply to.
    pub auto_close_days: u16,
}

impl Default for SlaProfile {
    fn default() -> Self {
        SlaProfile {
            verify_days: 3,
            follow_up_days: 5,
            auto_close_days: 10,
        }
    }
}

/// Which service level a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// The LAPOR admin verifies and dispositions the report.
    Verification,
    /// The agency posts its follow-up.
    FollowUp,
    /// The complaint closes (*Selesai*) unless the reporter replies.
    AutoClose,
}

impl DeadlineKind {
    /// Stable name for logs, metrics and the wire.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Verification => "verification",
            DeadlineKind::FollowUp => "follow_up",
            DeadlineKind::AutoClose => "auto_close",
        }
    }

    /// The Bahasa Indonesia label consoles show first.
    pub fn label_id(self) -> &'static str {
        match self {
            DeadlineKind::Verification => "Verifikasi dan disposisi",
            DeadlineKind::FollowUp => "Tindak lanjut",
            DeadlineKind::AutoClose => "Penutupan otomatis",
        }
    }
}

impl std::fmt::Display for DeadlineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One running deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub kind: DeadlineKind,
    /// The milestone the clock runs from.
    pub since: DateTime<Utc>,
    /// The last instant that is still in time: the end (23:59:59.999 local)
    /// of the last working day allowed.
    pub due: DateTime<Utc>,
}

impl Deadline {
    /// Whether `now` is past `due`. Pass a hub's clock (see the module docs).
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        now > self.due
    }
}

/// The deadlines running for a complaint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deadlines {
    /// The running deadline due first; `None` when no clock runs (the
    /// complaint is closed, rejected or archived).
    pub next: Option<Deadline>,
    /// Every running deadline, earliest due first. Today's rules run at most
    /// one clock at a time; the list keeps the API stable for profiles that
    /// add concurrent ones (Perpres 76/2013's 60-day outer bound).
    pub all: Vec<Deadline>,
}

impl Deadlines {
    /// The deadlines of `state`, counted in `calendar` (that of the
    /// complaint's province) with the day counts of `profile`.
    pub fn of(state: &ComplaintState, calendar: &WorkCalendar, profile: &SlaProfile) -> Deadlines {
        let mut all: Vec<Deadline> = running(state)
            .into_iter()
            .map(|(kind, since)| {
                let days = match kind {
                    DeadlineKind::Verification => profile.verify_days,
                    DeadlineKind::FollowUp => profile.follow_up_days,
                    DeadlineKind::AutoClose => profile.auto_close_days,
                };
                let since = since.to_utc();
                Deadline {
                    kind,
                    since,
                    due: calendar.add_working_days(since, days),
                }
            })
            .collect();
        all.sort_by_key(|d| (d.due, d.kind));
        Deadlines {
            next: all.first().copied(),
            all,
        }
    }

    /// Whether any running deadline is past at `now` (a hub's clock).
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.all.iter().any(|d| d.overdue(now))
    }
}

/// The clocks that run in `state`'s status, with the HLC each runs from.
fn running(state: &ComplaintState) -> Option<(DeadlineKind, Hlc)> {
    let reopened = state.reopened_at;
    // A milestone before the latest reopen belongs to a finished round.
    let current = |mark: Option<Hlc>| mark.filter(|m| reopened.is_none_or(|r| *m >= r));
    match state.status {
        Status::BelumTerverifikasi | Status::Terverifikasi => {
            // `max`, not `or`: with a badly skewed node clock the created
            // stamp can even sort after the reopen.
            let since = reopened.map_or(state.created_hlc, |r| r.max(state.created_hlc));
            Some((DeadlineKind::Verification, since))
        }
        Status::DalamProses => {
            let asked = [
                current(state.dispositioned_at),
                reopened,
                current(state.last_reply_at),
            ]
            .into_iter()
            .flatten()
            .max()?;
            match current(state.responded_at) {
                Some(response) if response > asked => Some((DeadlineKind::AutoClose, response)),
                _ => Some((DeadlineKind::FollowUp, asked)),
            }
        }
        Status::Selesai | Status::Ditolak | Status::Diarsipkan => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};
    use uuid::Uuid;

    use super::*;
    use crate::calendar::{HolidayList, IndonesianZone};
    use crate::domain::{
        Channel, Classification, ComplaintId, Event, EventBody, EventId, Intake, Location, Privacy,
        RegionCode, SiteCode, TrackingNumber,
    };
    use crate::lifecycle::fold;

    const GAYO: &str = "11.13";
    const ACEH: &str = "11";
    const NATIONAL: &str = "00";

    /// 09:00 WIB on a day of 2026.
    fn wib(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
        IndonesianZone::Wib
            .offset()
            .with_ymd_and_hms(2026, month, day, hour, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn end_of_wib(month: u32, day: u32) -> DateTime<Utc> {
        wib(month, day, 23) + Duration::minutes(59) + Duration::milliseconds(59_999)
    }

    fn aceh() -> WorkCalendar {
        WorkCalendar::from_list(IndonesianZone::Wib, &HolidayList::builtin())
    }

    fn intake() -> Intake {
        Intake {
            classification: Classification::Pengaduan,
            channel: Channel::WalkIn,
            category: "infrastruktur".into(),
            title: "Jembatan rusak".into(),
            body: "Jembatan di desa kami rusak sejak banjir.".into(),
            location: Location {
                region: RegionCode::parse("11.13.01").unwrap(),
                description: String::new(),
                coordinates: None,
            },
            incident_date: None,
            privacy: Privacy::default(),
            reporter: None,
        }
    }

    /// A history of one Gayo Lues complaint, built event by event; ids
    /// increase so events written at the same instant keep their order.
    struct History(Vec<Event>);

    impl History {
        fn created(at: DateTime<Utc>) -> History {
            let mut h = History(Vec::new());
            h.push(
                at,
                GAYO,
                EventBody::Created {
                    tracking_number: TrackingNumber("1113-K7Q-000001".into()),
                    intake: Box::new(intake()),
                },
            );
            h
        }

        fn push(&mut self, at: DateTime<Utc>, origin: &str, body: EventBody) -> &mut Self {
            let id = self.0.len() as u128 + 1;
            self.0.push(Event {
                id: EventId(Uuid::from_u128(id)),
                complaint_id: ComplaintId(Uuid::from_u128(0xC0)),
                origin: SiteCode::parse(origin).unwrap(),
                hlc: Hlc::from_parts(at.timestamp_millis() as u64, 0),
                actor: "operator".into(),
                district: SiteCode::parse(GAYO).unwrap(),
                body,
            });
            self
        }

        fn verified(&mut self, at: DateTime<Utc>) -> &mut Self {
            let body = EventBody::Verified {
                note: String::new(),
                privacy: Privacy::default(),
            };
            self.push(at, ACEH, body)
        }

        fn hop(&mut self, at: DateTime<Utc>, to: &str) -> &mut Self {
            let body = EventBody::Dispositioned {
                from_institution: "LAPOR".into(),
                to_institution: to.into(),
                note: String::new(),
            };
            self.push(at, NATIONAL, body)
        }

        fn responded(&mut self, at: DateTime<Utc>) -> &mut Self {
            let body = EventBody::Responded {
                institution: "Dinas PUPR".into(),
                body: "Sedang diperbaiki.".into(),
            };
            self.push(at, ACEH, body)
        }

        fn replied(&mut self, at: DateTime<Utc>) -> &mut Self {
            let body = EventBody::ReporterReplied {
                body: "Belum ada perbaikan.".into(),
            };
            self.push(at, GAYO, body)
        }

        fn deadlines(&self) -> Deadlines {
            let state = fold(&self.0).unwrap();
            assert!(state.skipped.is_empty(), "{:?}", state.skipped);
            Deadlines::of(&state, &aceh(), &SlaProfile::default())
        }
    }

    fn only(deadlines: &Deadlines) -> Deadline {
        assert_eq!(deadlines.all.len(), 1, "{deadlines:?}");
        assert_eq!(deadlines.next, deadlines.all.first().copied());
        deadlines.all[0]
    }

    #[test]
    fn verification_is_due_three_working_days_after_submission() {
        // Thursday 8 January: Fri 9, Mon 12, Tue 13.
        let d = only(&History::created(wib(1, 8, 9)).deadlines());
        assert_eq!(d.kind, DeadlineKind::Verification);
        assert_eq!(d.since, wib(1, 8, 9));
        assert_eq!(d.due, end_of_wib(1, 13));
    }

    #[test]
    fn verification_spans_the_lebaran_cuti_bersama() {
        // Tuesday 17 March; 18–24 March are Nyepi, Idul Fitri and cuti
        // bersama, so the three working days are 25, 26 and 27 March.
        let d = only(&History::created(wib(3, 17, 10)).deadlines());
        assert_eq!(d.due, end_of_wib(3, 27));
    }

    #[test]
    fn verification_keeps_running_until_the_first_disposition() {
        let mut h = History::created(wib(1, 8, 9));
        h.verified(wib(1, 9, 9));
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::Verification);
        assert_eq!(d.since, wib(1, 8, 9));
    }

    #[test]
    fn follow_up_runs_from_the_last_disposition_hop() {
        let mut h = History::created(wib(1, 5, 9));
        h.verified(wib(1, 6, 9))
            .hop(wib(1, 6, 10), "Pemkab Gayo Lues")
            .hop(wib(1, 20, 10), "Dinas PUPR Aceh");
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::FollowUp);
        assert_eq!(d.since, wib(1, 20, 10));
        // Tuesday 20 January + 5: 21, 22, 23, 26, 27.
        assert_eq!(d.due, end_of_wib(1, 27));
    }

    #[test]
    fn a_response_starts_the_auto_close_clock() {
        let mut h = History::created(wib(1, 5, 9));
        h.verified(wib(1, 6, 9))
            .hop(wib(1, 6, 10), "Dinas PUPR")
            .responded(wib(1, 8, 14));
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::AutoClose);
        assert_eq!(d.since, wib(1, 8, 14));
        // Thursday 8 January + 10, Isra Mikraj (16th) skipped: 9, 12, 13,
        // 14, 15, 19, 20, 21, 22, 23.
        assert_eq!(d.due, end_of_wib(1, 23));
    }

    #[test]
    fn a_reporter_reply_after_the_response_cancels_auto_close() {
        let mut h = History::created(wib(1, 5, 9));
        h.verified(wib(1, 6, 9))
            .hop(wib(1, 6, 10), "Dinas PUPR")
            .responded(wib(1, 8, 14))
            .replied(wib(1, 12, 9));
        let deadlines = h.deadlines();
        assert!(
            deadlines
                .all
                .iter()
                .all(|d| d.kind != DeadlineKind::AutoClose)
        );
        // The thread is back with the agency.
        let d = only(&deadlines);
        assert_eq!(d.kind, DeadlineKind::FollowUp);
        assert_eq!(d.since, wib(1, 12, 9));

        // A new response after the reply starts auto-close again.
        h.responded(wib(1, 13, 9));
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::AutoClose);
        assert_eq!(d.since, wib(1, 13, 9));
    }

    #[test]
    fn a_hop_after_the_response_waits_for_the_new_agency() {
        let mut h = History::created(wib(1, 5, 9));
        h.verified(wib(1, 6, 9))
            .hop(wib(1, 6, 10), "Pemkab Gayo Lues")
            .responded(wib(1, 7, 9))
            .hop(wib(1, 8, 9), "Dinas PUPR Aceh");
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::FollowUp);
        assert_eq!(d.since, wib(1, 8, 9));
    }

    #[test]
    fn a_reopen_voids_earlier_marks() {
        let mut h = History::created(wib(1, 5, 9));
        h.verified(wib(1, 6, 9))
            .hop(wib(1, 6, 10), "Dinas PUPR")
            .responded(wib(1, 7, 9))
            .push(
                wib(1, 26, 9),
                ACEH,
                EventBody::Closed {
                    reason: "tidak ada tanggapan".into(),
                },
            );
        assert_eq!(h.deadlines(), Deadlines::default(), "Selesai runs no clock");

        h.push(
            wib(2, 2, 9),
            ACEH,
            EventBody::Reopened {
                reason: "belum selesai".into(),
            },
        );
        // The old response no longer starts auto-close; the agency owes a
        // new follow-up from the reopen.
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::FollowUp);
        assert_eq!(d.since, wib(2, 2, 9));
    }

    #[test]
    fn a_rejected_complaint_reopened_is_verified_again_from_the_reopen() {
        let mut h = History::created(wib(1, 5, 9));
        h.push(
            wib(1, 6, 9),
            ACEH,
            EventBody::Rejected {
                reason: "tidak jelas".into(),
            },
        );
        assert_eq!(h.deadlines().next, None);
        h.push(
            wib(1, 12, 9),
            ACEH,
            EventBody::Reopened {
                reason: "dilengkapi".into(),
            },
        );
        let d = only(&h.deadlines());
        assert_eq!(d.kind, DeadlineKind::Verification);
        assert_eq!(d.since, wib(1, 12, 9));
    }

    #[test]
    fn overdue_is_strictly_after_the_end_of_the_due_day() {
        let d = only(&History::created(wib(1, 8, 9)).deadlines());
        assert!(!d.overdue(d.due));
        assert!(d.overdue(d.due + Duration::milliseconds(1)));
        let deadlines = History::created(wib(1, 8, 9)).deadlines();
        assert!(!deadlines.overdue(d.due));
        assert!(deadlines.overdue(d.due + Duration::milliseconds(1)));
        assert!(!Deadlines::default().overdue(d.due));
    }

    #[test]
    fn a_profile_changes_the_day_counts() {
        let state = fold(&History::created(wib(1, 8, 9)).0).unwrap();
        let quick = SlaProfile {
            verify_days: 1,
            ..SlaProfile::default()
        };
        let d = only(&Deadlines::of(&state, &aceh(), &quick));
        assert_eq!(d.due, end_of_wib(1, 9));
    }

    #[test]
    fn the_complaints_zone_decides_the_due_instant() {
        let state = fold(&History::created(wib(1, 8, 9)).0).unwrap();
        let wit = WorkCalendar::from_list(IndonesianZone::Wit, &HolidayList::builtin());
        let in_wib = only(&Deadlines::of(&state, &aceh(), &SlaProfile::default()));
        let in_wit = only(&Deadlines::of(&state, &wit, &SlaProfile::default()));
        // Same local day, two hours apart in absolute time.
        assert_eq!(in_wib.due - in_wit.due, Duration::hours(2));
    }

    #[test]
    fn sla_profile_reads_partial_config_with_defaults() {
        let p: SlaProfile = serde_json::from_str(r#"{"follow_up_days": 14}"#).unwrap();
        assert_eq!(
            p,
            SlaProfile {
                follow_up_days: 14,
                ..SlaProfile::default()
            }
        );
        assert!(serde_json::from_str::<SlaProfile>(r#"{"verify": 2}"#).is_err());
    }
}
