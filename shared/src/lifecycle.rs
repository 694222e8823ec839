//! The complaint lifecycle: which transitions are legal, at which tier, and
//! the deterministic fold of a complaint's events into its current state.
//!
//! This module owns [`TRANSITIONS`], the one table that says what each event
//! kind may do, and [`fold`]. It does no I/O: the store calls `fold` inside
//! the transaction that appends events, and the edge (the `AddEvent` handler)
//! calls [`check_transition`] to refuse an illegal local write up front.
//!
//! Design constraints:
//! - Two sites holding the same *set* of events compute equal states, whatever
//!   order or multiplicity the events arrived in. `fold` sorts by
//!   (HLC, event id) and de-duplicates by id; [`ComplaintState::digest`] lets
//!   tiers compare states byte for byte.
//! - Nothing is dropped. An event that is illegal where it lands in the order
//!   (a second `verified`, a `verified` after `rejected`, a close written at a
//!   node) still counts in `event_count` and is listed in `skipped` with the
//!   reason an operator reads; it leaves the status unchanged.
//! - The `created` event is the genesis: the earliest legal one in
//!   (HLC, event id) order founds the state, later ones are skipped. Every
//!   other event is then applied in (HLC, event id) order, *including* events
//!   that sort before the genesis (possible only with badly skewed clocks):
//!   they are judged against the state as it stands at their turn, so
//!   skew never makes an event vanish and the result stays a function of the
//!   event set.
//! - Privacy is not a transition. A flag an operator set is honoured even when
//!   the event carrying it lost a conflict (a second concurrent `verified`
//!   that marked the report secret): with personal data we err towards hiding.
//!   Flags are a union, so this is order independent.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use sha2::{Digest as _, Sha256};

use self::canon::Canon;

use crate::domain::{
    ComplaintId, Event, EventBody, EventId, Intake, Privacy, SiteCode, SiteRole, Status,
    TrackingNumber,
};
use crate::hlc::Hlc;

/// The kind of an event, without its payload: the key of [`TRANSITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Created,
    Verified,
    Rejected,
    Dispositioned,
    Responded,
    ReporterReplied,
    Commented,
    Closed,
    Archived,
    Reopened,
    PrivacyTightened,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Created,
        EventKind::Verified,
        EventKind::Rejected,
        EventKind::Dispositioned,
        EventKind::Responded,
        EventKind::ReporterReplied,
        EventKind::Commented,
        EventKind::Closed,
        EventKind::Archived,
        EventKind::Reopened,
        EventKind::PrivacyTightened,
    ];

    pub fn of(body: &EventBody) -> EventKind {
        match body {
            EventBody::Created { .. } => EventKind::Created,
            EventBody::Verified { .. } => EventKind::Verified,
            EventBody::Rejected { .. } => EventKind::Rejected,
            EventBody::Dispositioned { .. } => EventKind::Dispositioned,
            EventBody::Responded { .. } => EventKind::Responded,
            EventBody::ReporterReplied { .. } => EventKind::ReporterReplied,
            EventBody::Commented { .. } => EventKind::Commented,
            EventBody::Closed { .. } => EventKind::Closed,
            EventBody::Archived { .. } => EventKind::Archived,
            EventBody::Reopened { .. } => EventKind::Reopened,
            EventBody::PrivacyTightened { .. } => EventKind::PrivacyTightened,
        }
    }

    /// The same stable name as [`EventBody::kind`].
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Verified => "verified",
            EventKind::Rejected => "rejected",
            EventKind::Dispositioned => "dispositioned",
            EventKind::Responded => "responded",
            EventKind::ReporterReplied => "reporter_replied",
            EventKind::Commented => "commented",
            EventKind::Closed => "closed",
            EventKind::Archived => "archived",
            EventKind::Reopened => "reopened",
            EventKind::PrivacyTightened => "privacy_tightened",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The statuses a row of [`TRANSITIONS`] applies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromStatus {
    /// The complaint does not exist yet.
    New,
    /// Any status.
    Any,
    OneOf(&'static [Status]),
}

impl FromStatus {
    fn admits(self, from: Option<Status>) -> bool {
        match (self, from) {
            (FromStatus::New, None) => true,
            (FromStatus::Any, Some(_)) => true,
            (FromStatus::OneOf(set), Some(s)) => set.contains(&s),
            _ => false,
        }
    }
}

/// A condition beyond the status that a row requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Always,
    /// The reporter can only reply to something: an agency response must be
    /// on record.
    AfterResponse,
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub kind: EventKind,
    pub from: FromStatus,
    /// `None`: the status is left as it is.
    pub to: Option<Status>,
    pub guard: Guard,
    /// The tiers at which the event may be written (its origin site's role).
    pub tiers: &'static [SiteRole],
}

const fn row(
    kind: EventKind,
    from: FromStatus,
    to: Option<Status>,
    guard: Guard,
    tiers: &'static [SiteRole],
) -> Transition {
    Transition {
        kind,
        from,
        to,
        guard,
        tiers,
    }
}

/// Admin Koordinator sits at a district office or at a hub.
const ANY_TIER: &[SiteRole] = &[SiteRole::Node, SiteRole::Province, SiteRole::National];
/// Intake and reporter replies come in at the district office.
const NODE: &[SiteRole] = &[SiteRole::Node];
/// Deadlines (and so closing) are judged on a hub clock, never an offline
/// node's; archiving and reopening are LAPOR admin decisions taken there.
const HUB: &[SiteRole] = &[SiteRole::Province, SiteRole::National];

/// Every legal transition. An event with no row matching its kind, the
/// complaint's status and its guard is illegal; one whose row does not list
/// its origin's tier is illegal too. See `domain.md` §3 for LAPOR's workflow.
#[rustfmt::skip] // a table reads as a table
pub const TRANSITIONS: &[Transition] = {
    use EventKind::*;
    use FromStatus::{Any, New, OneOf};
    use Guard::{AfterResponse, Always};
    use Status::*;
    &[
        //  event             legal from                                   leads to                  guard          written at
        row(Created,          New,                                         Some(BelumTerverifikasi), Always,        NODE),
        row(Verified,         OneOf(&[BelumTerverifikasi]),                Some(Terverifikasi),      Always,        ANY_TIER),
        row(Rejected,         OneOf(&[BelumTerverifikasi]),                Some(Ditolak),            Always,        ANY_TIER),
        row(Dispositioned,    OneOf(&[Terverifikasi, DalamProses]),        Some(DalamProses),        Always,        ANY_TIER),
        row(Responded,        OneOf(&[DalamProses]),                       Some(DalamProses),        Always,        ANY_TIER),
        row(ReporterReplied,  OneOf(&[DalamProses]),                       Some(DalamProses),        AfterResponse, NODE),
        row(Commented,        Any,                                         None,                     Always,        ANY_TIER),
        row(Closed,           OneOf(&[DalamProses]),                       Some(Selesai),            Always,        HUB),
        row(Archived,         OneOf(&[BelumTerverifikasi, Terverifikasi]), Some(Diarsipkan),         Always,        HUB),
        row(Reopened,         OneOf(&[Selesai]),                           Some(DalamProses),        Always,        HUB),
        row(Reopened,         OneOf(&[Ditolak, Diarsipkan]),               Some(BelumTerverifikasi), Always,        HUB),
        row(PrivacyTightened, Any,                                         None,                     Always,        ANY_TIER),
    ]
};

/// Whether an event of `kind` may be written at a site of tier `role` at all
/// (whatever the complaint's status).
pub fn legal_at(kind: EventKind, role: SiteRole) -> bool {
    TRANSITIONS
        .iter()
        .any(|t| t.kind == kind && t.tiers.contains(&role))
}

/// Why an event is not applied. The `Display` text is what operators read in
/// [`SkippedEvent::reason`] and what the edge returns to a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// An event other than `created` for a complaint that does not exist.
    #[error("{kind} for a complaint that was never created")]
    NotCreated { kind: EventKind },
    /// A second `created`: the complaint already exists.
    #[error("created again; the complaint was created by event {first}")]
    AlreadyCreated { first: EventId },
    /// The writing site's tier may not write this kind of event.
    #[error("{kind} may not be written at a {role} site ({origin})")]
    WrongTier {
        kind: EventKind,
        role: SiteRole,
        origin: SiteCode,
    },
    /// The kind is not legal from the complaint's status.
    #[error("{kind} while {from}")]
    IllegalFrom { kind: EventKind, from: Status },
    /// A reporter reply with no agency response on record.
    #[error("reporter_replied before any agency response")]
    NoResponseYet,
    /// The event names another complaint.
    #[error("event of complaint {event} is not part of complaint {complaint}")]
    OtherComplaint {
        event: ComplaintId,
        complaint: ComplaintId,
    },
    /// The event names another district than the complaint's.
    #[error("event of district {event} is not part of a complaint of district {complaint}")]
    OtherDistrict {
        event: SiteCode,
        complaint: SiteCode,
    },
}

/// Checks `event` against `state` (`None`: the complaint does not exist) and
/// returns the status it leads to.
///
/// # Errors
/// The [`TransitionError`] saying why the event may not be applied.
pub fn check_transition(
    state: Option<&ComplaintState>,
    event: &Event,
) -> Result<Status, TransitionError> {
    match state {
        Some(state) => state.check(event),
        None => check_rule(None, false, event),
    }
}

/// The edge's check of an event about to be written at this site for an
/// existing complaint. The store stamps a local event after everything the
/// complaint holds, so the event will be folded last and this verdict is the
/// one the fold reaches.
///
/// # Errors
/// The [`TransitionError`] to return to the caller; nothing is written.
pub fn check_local_write(state: &ComplaintState, event: &Event) -> Result<Status, TransitionError> {
    state.check(event)
}

/// The table lookup shared by a new and an existing complaint.
fn check_rule(
    from: Option<Status>,
    responded: bool,
    event: &Event,
) -> Result<Status, TransitionError> {
    let kind = EventKind::of(&event.body);
    let role = event.origin.role();
    if !legal_at(kind, role) {
        return Err(TransitionError::WrongTier {
            kind,
            role,
            origin: event.origin.clone(),
        });
    }
    let Some(rule) = TRANSITIONS
        .iter()
        .find(|t| t.kind == kind && t.from.admits(from))
    else {
        return Err(match from {
            None => TransitionError::NotCreated { kind },
            Some(from) => TransitionError::IllegalFrom { kind, from },
        });
    };
    if rule.guard == Guard::AfterResponse && !responded {
        return Err(TransitionError::NoResponseYet);
    }
    match (rule.to, from) {
        (Some(to), _) | (None, Some(to)) => Ok(to),
        // Only `New` admits no status, and its one row names a target.
        (None, None) => Err(TransitionError::NotCreated { kind }),
    }
}

/// One hop of a disposition chain.
#[derive(Debug, Clone, PartialEq)]
pub struct DispositionHop {
    pub from_institution: String,
    pub to_institution: String,
    pub note: String,
    pub at: Hlc,
}

/// An event the fold kept in history but did not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedEvent {
    pub event_id: EventId,
    pub kind: &'static str,
    /// Why it was not applied, for operators ("verified while Ditolak").
    pub reason: String,
}

/// A complaint's state: the deterministic fold of its events ordered by
/// (HLC, event id). Sites holding the same events compute equal states.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplaintState {
    pub id: ComplaintId,
    pub tracking_number: TrackingNumber,
    pub district: SiteCode,
    /// The site that created it.
    pub origin: SiteCode,
    pub intake: Intake,
    pub status: Status,
    /// Effective privacy: the intake's flags tightened by every later event.
    pub privacy: Privacy,
    pub dispositions: Vec<DispositionHop>,
    pub created_hlc: Hlc,
    /// The HLC of the latest event in (HLC, event id) order, applied or not.
    pub updated_hlc: Hlc,
    pub event_count: u32,
    pub skipped: Vec<SkippedEvent>,
    /// The `created` event that founded the state.
    pub created_event: EventId,
    /// The id of the latest event in (HLC, event id) order: with
    /// `updated_hlc`, the position up to which the state is folded (see
    /// [`ComplaintState::follows`]).
    pub last_event: EventId,
    /// When the complaint was verified (the start of dispositioning).
    pub verified_at: Option<Hlc>,
    /// The latest disposition hop: the follow-up deadline runs from here.
    pub dispositioned_at: Option<Hlc>,
    /// The latest agency response: the automatic-close deadline runs from here.
    pub responded_at: Option<Hlc>,
    /// The latest reporter reply.
    pub last_reply_at: Option<Hlc>,
    /// The latest close.
    pub closed_at: Option<Hlc>,
    /// The latest reopen; deadlines measured from earlier marks are void
    /// before it.
    pub reopened_at: Option<Hlc>,
}

impl ComplaintState {
    /// Founds a state from a `created` event.
    ///
    /// # Errors
    /// The event is not a `created` one, or was written at a tier that may
    /// not create complaints.
    pub fn from_created(event: &Event) -> Result<ComplaintState, TransitionError> {
        let status = created_status(event)?;
        let EventBody::Created {
            tracking_number,
            intake,
        } = &event.body
        else {
            // check_rule admits only `Created` from no state.
            return Err(TransitionError::NotCreated {
                kind: EventKind::of(&event.body),
            });
        };
        Ok(ComplaintState {
            id: event.complaint_id,
            tracking_number: tracking_number.clone(),
            district: event.district.clone(),
            origin: event.origin.clone(),
            intake: (**intake).clone(),
            status,
            privacy: intake.privacy,
            dispositions: Vec::new(),
            created_hlc: event.hlc,
            updated_hlc: event.hlc,
            event_count: 1,
            skipped: Vec::new(),
            created_event: event.id,
            last_event: event.id,
            verified_at: None,
            dispositioned_at: None,
            responded_at: None,
            last_reply_at: None,
            closed_at: None,
            reopened_at: None,
        })
    }

    /// The status `event` would lead to if applied now.
    ///
    /// # Errors
    /// The [`TransitionError`] saying why it would be skipped.
    pub fn check(&self, event: &Event) -> Result<Status, TransitionError> {
        if event.complaint_id != self.id {
            return Err(TransitionError::OtherComplaint {
                event: event.complaint_id,
                complaint: self.id,
            });
        }
        if event.district != self.district {
            return Err(TransitionError::OtherDistrict {
                event: event.district.clone(),
                complaint: self.district.clone(),
            });
        }
        if let EventBody::Created { .. } = event.body {
            // A `created` written at the wrong tier says so rather than
            // "created again": that is why it did not found the state.
            return Err(match check_rule(None, false, event) {
                Err(err) => err,
                Ok(_) => TransitionError::AlreadyCreated {
                    first: self.created_event,
                },
            });
        }
        check_rule(Some(self.status), self.responded_at.is_some(), event)
    }

    /// Whether `event` comes after every event folded so far in
    /// (HLC, event id) order, so that [`apply`](Self::apply) gives the same
    /// state as folding everything again. When it does not, refold.
    pub fn follows(&self, event: &Event) -> bool {
        (event.hlc, event.id) > (self.updated_hlc, self.last_event)
    }

    /// Applies one more event (not already folded). An illegal one is counted
    /// and recorded in `skipped`; it changes neither the status nor the
    /// milestones. Folding a history equals founding it with its `created`
    /// event and applying the rest in (HLC, event id) order.
    pub fn apply(&mut self, event: &Event) {
        self.event_count = self.event_count.saturating_add(1);
        if (event.hlc, event.id) > (self.updated_hlc, self.last_event) {
            self.updated_hlc = event.hlc;
            self.last_event = event.id;
        }
        let ours = event.complaint_id == self.id && event.district == self.district;
        if ours
            && let EventBody::Verified { privacy, .. } | EventBody::PrivacyTightened { privacy } =
                &event.body
        {
            self.privacy = self.privacy.tighten(*privacy);
        }
        match self.check(event) {
            Ok(next) => {
                self.status = next;
                self.record_milestone(event);
            }
            Err(err) => self.skipped.push(SkippedEvent {
                event_id: event.id,
                kind: event.body.kind(),
                reason: err.to_string(),
            }),
        }
    }

    fn record_milestone(&mut self, event: &Event) {
        let at = Some(event.hlc);
        match &event.body {
            EventBody::Verified { .. } => self.verified_at = at,
            EventBody::Dispositioned {
                from_institution,
                to_institution,
                note,
            } => {
                self.dispositions.push(DispositionHop {
                    from_institution: from_institution.clone(),
                    to_institution: to_institution.clone(),
                    note: note.clone(),
                    at: event.hlc,
                });
                self.dispositioned_at = at;
            }
            EventBody::Responded { .. } => self.responded_at = at,
            EventBody::ReporterReplied { .. } => self.last_reply_at = at,
            EventBody::Closed { .. } => self.closed_at = at,
            EventBody::Reopened { .. } => self.reopened_at = at,
            EventBody::Created { .. }
            | EventBody::Rejected { .. }
            | EventBody::Commented { .. }
            | EventBody::Archived { .. }
            | EventBody::PrivacyTightened { .. } => {}
        }
    }

    /// Hex SHA-256 of the canonical encoding of every field (see
    /// `lifecycle/canon.rs`). Equal states have equal digests and, short of a hash
    /// collision, unequal states unequal ones; tiers compare it.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(Canon::state(self));
        let mut hex = String::with_capacity(hash.len() * 2);
        for b in hash {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

/// Folds `events` (any order; duplicates by id are ignored) into a state.
/// `None` when no legal `created` event is among them.
/// The status a complaint starts in when `event` creates it.
///
/// # Errors
/// The [`TransitionError`] saying why `event` cannot create a complaint.
pub fn created_status(event: &Event) -> Result<Status, TransitionError> {
    check_rule(None, false, event)
}

pub fn fold(events: &[Event]) -> Option<ComplaintState> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by(|a, b| fold_order(a, b));
    let mut seen = HashSet::with_capacity(sorted.len());
    sorted.retain(|e| seen.insert(e.id));

    let (genesis, mut state) = sorted
        .iter()
        .enumerate()
        .find_map(|(i, e)| ComplaintState::from_created(e).ok().map(|s| (i, s)))?;
    for (i, event) in sorted.iter().enumerate() {
        if i != genesis {
            state.apply(event);
        }
    }
    Some(state)
}

/// (HLC, event id), and for the same id seen with different content (which
/// the store refuses, but `fold` must not depend on input order even then)
/// the canonical encoding breaks the tie.
fn fold_order(a: &Event, b: &Event) -> Ordering {
    (a.hlc, a.id)
        .cmp(&(b.hlc, b.id))
        .then_with(|| Canon::event(a).cmp(&Canon::event(b)))
}

// The canonical encoding and the tests would push this file past a
// readable size; they live beside it in `lifecycle/`.
mod canon;
#[cfg(test)]
mod tests;
