//! Validating conversions between the wire types (`super::v1`) and the
//! domain (`crate::domain`): the one place where protobuf becomes domain.
//!
//! `*_from_proto` checks every rule and collects *all* problems into
//! [`Violations`] (field path + description), which becomes an
//! `INVALID_ARGUMENT` status with `google.rpc.BadRequest` details. Nothing is
//! built unless everything is valid. `*_to_proto` cannot fail.
//!
//! Design constraints:
//! - `event_from_proto(event_to_proto(e)) == e` for every valid event, and
//!   `event_to_proto` is deterministic: the store compares encoded bytes to
//!   decide idempotency. So the domain holds values in the form this module
//!   produces (phone numbers as `+62…`, UUIDs as `Uuid`), and every optional
//!   proto value is written the same way each time.
//! - Event validation is independent of time and place, so a peer's event
//!   accepted at one site is accepted at every site. Only
//!   [`intake_from_submission`], used where a complaint is first entered,
//!   also refuses incident dates in the future.
//! - Identity never travels for anonymous complaints: an anonymous intake
//!   with a reporter is refused in events and on its own, not silently
//!   stripped. Only a *submission* at the node may record an anonymous
//!   reporter's identity; the store keeps it there, out of every event.
//! - A non-anonymous `Created` event may arrive without identity: the
//!   sender withheld it (the complaint became anonymous before the event
//!   left). A submission or a standalone intake still requires it.
//!
//! Single-value rules and their limits live in [`super::limits`].

mod enums;
mod violations;

pub use enums::{
    channel_from_proto, channel_to_proto, classification_from_proto, classification_to_proto,
    privacy_from_proto, privacy_to_proto, status_from_proto, status_to_proto,
};
pub use violations::{Violation, Violations};

use std::fmt;

use chrono::NaiveDate;

use super::limits::{self, FieldError};
use super::limits::{
    MAX_ACTOR_CHARS, MAX_BODY_CHARS, MAX_CATEGORY_CHARS, MAX_INSTITUTION_CHARS,
    MAX_LOCATION_DESCRIPTION_CHARS, MAX_NOTE_CHARS, MAX_REPORTER_NAME_CHARS, MAX_TITLE_CHARS,
};
use super::v1;
use super::v1::event_body::Kind;
use crate::domain::{
    ComplaintId, Event, EventBody, EventId, Intake, Location, Nik, RegionCode, Reporter, SiteCode,
    SiteRole, TrackingNumber,
};
use crate::hlc::Hlc;
use crate::lifecycle::ComplaintState;
use crate::regions;

/// The path of a field, built only when a violation is recorded: valid
/// messages (nearly all of them, on the replication hot path) allocate no
/// path strings.
///
/// Displays as the names from the root joined with `.`; a parent that
/// displays as nothing (an empty root) adds no `.`, so a child of
/// `At::root("")` displays as just its own name, as callers' empty prefixes
/// always have.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    name: &'a str,
}

impl<'a> At<'a> {
    /// A path of one name (which may itself contain dots, or be empty).
    fn root(name: &'a str) -> Self {
        Self { parent: None, name }
    }

    /// The path of field `name` inside this one.
    fn child(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            name,
        }
    }

    /// Whether this path displays as the empty string.
    fn is_empty(&self) -> bool {
        self.name.is_empty() && self.parent.is_none_or(At::is_empty)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent.filter(|p| !p.is_empty()) {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.name)
    }
}

fn text(s: String, min: usize, max: usize, at: At<'_>, v: &mut Violations) -> Option<String> {
    v.check(at, limits::check_text(&s, min, max)).map(|()| s)
}

// ---- intake ---------------------------------------------------------------

/// Validates a complaint intake; field paths start with `intake`.
///
/// Time-independent: an incident date in the future is not refused here (see
/// [`intake_from_submission`]), so the same intake inside a replicated
/// `Created` event is judged the same at every site and every time.
pub fn intake_from_proto(p: v1::ComplaintIntake) -> Result<Intake, Violations> {
    let mut v = Violations::new();
    let intake = intake_in(p, At::root("intake"), Rules::Standalone, &mut v);
    v.finish(intake)
}

/// [`intake_from_proto`] for a complaint being entered now: also refuses an
/// incident date after `today` + 1 day (`today` in the site's zone), and
/// lets an anonymous complaint record its reporter's identity, which the
/// store keeps at this node only (never in an event).
pub fn intake_from_submission(
    p: v1::ComplaintIntake,
    today: NaiveDate,
) -> Result<Intake, Violations> {
    let mut v = Violations::new();
    let intake = intake_in(p, At::root("intake"), Rules::Submission { today }, &mut v);
    v.finish(intake)
}

/// Which rules an intake is judged by; they differ only in the date bound
/// and in where reporter identity may (or must) be present.
#[derive(Debug, Clone, Copy)]
enum Rules {
    /// An intake on its own: identity required unless anonymous, refused
    /// when anonymous.
    Standalone,
    /// Entered at the node now: identity required unless anonymous; an
    /// anonymous complaint may record one (kept at the node).
    Submission { today: NaiveDate },
    /// Inside a replicated `Created` event: refused when anonymous, optional
    /// otherwise (the sender may have withheld it).
    Event,
}

fn intake_in(
    p: v1::ComplaintIntake,
    at: At<'_>,
    rules: Rules,
    v: &mut Violations,
) -> Option<Intake> {
    let today = match rules {
        Rules::Submission { today } => Some(today),
        Rules::Standalone | Rules::Event => None,
    };
    let classification = classification_from_proto(p.classification);
    if classification.is_none() {
        v.add(
            at.child("classification"),
            "must be PENGADUAN, ASPIRASI or PERMINTAAN_INFORMASI",
        );
    }
    let channel = channel_from_proto(p.channel);
    if channel.is_none() {
        v.add(
            at.child("channel"),
            "must be a known channel, not UNSPECIFIED",
        );
    }
    let category = text(p.category, 0, MAX_CATEGORY_CHARS, at.child("category"), v);
    let title = text(p.title, 1, MAX_TITLE_CHARS, at.child("title"), v);
    let body = text(p.body, 1, MAX_BODY_CHARS, at.child("body"), v);
    let location = match p.location {
        Some(l) => location_in(l, at.child("location"), v),
        None => v.missing(at.child("location")),
    };
    let incident_date = match p.incident_date {
        None => Some(None),
        Some(d) => {
            let field = at.child("incident_date");
            let date = v.check(field, limits::incident_date(d.year, d.month, d.day));
            match (date, today) {
                (Some(date), Some(today)) => v
                    .check(field, limits::check_not_after(date, today))
                    .map(|()| Some(date)),
                (date, _) => date.map(Some),
            }
        }
    };
    let privacy = privacy_from_proto(p.privacy);
    // An all-empty identity carries none, so form clients that always send
    // the message are treated as sending nothing.
    let reporter_in_msg = p.reporter.filter(|r| *r != v1::ReporterIdentity::default());
    let field = at.child("reporter");
    let reporter = match (privacy.anonymous, reporter_in_msg, rules) {
        (true, None, _) | (false, None, Rules::Event) => Some(None),
        (true, Some(r), Rules::Submission { .. }) => reporter_in(r, field, v).map(Some),
        (true, Some(_), Rules::Standalone | Rules::Event) => {
            v.add(field, "must be absent when privacy.is_anonymous is set: identity never travels for anonymous complaints");
            None
        }
        (false, None, Rules::Standalone | Rules::Submission { .. }) => {
            v.add(field, "is required unless privacy.is_anonymous is set");
            None
        }
        (false, Some(r), _) => reporter_in(r, field, v).map(Some),
    };
    Some(Intake {
        classification: classification?,
        channel: channel?,
        category: category?,
        title: title?,
        body: body?,
        location: location?,
        incident_date: incident_date?,
        privacy,
        reporter: reporter?,
    })
}

fn location_in(l: v1::Location, at: At<'_>, v: &mut Violations) -> Option<Location> {
    let field = at.child("region_code");
    let region = match RegionCode::parse(&l.region_code) {
        _ if l.region_code.is_empty() => v.missing(field),
        Ok(region) if regions::district(region.district().as_str()).is_some() => Some(region),
        Ok(region) => {
            v.add(
                field,
                format!(
                    "kabupaten/kota {} is not in the Kemendagri list",
                    region.district()
                ),
            );
            None
        }
        Err(_) => {
            v.add(
                field,
                "must be a Kemendagri code NN.NN, NN.NN.NN or NN.NN.NN.NNNN",
            );
            None
        }
    };
    let description = text(
        l.description,
        0,
        MAX_LOCATION_DESCRIPTION_CHARS,
        at.child("description"),
        v,
    );
    let coordinates = match limits::check_coordinates(l.latitude, l.longitude) {
        Ok(c) => Some(c),
        Err(e) => {
            let axis = match &e {
                FieldError::Coordinate { axis, .. } => axis,
                _ if l.latitude.is_none() => "latitude",
                _ => "longitude",
            };
            v.add(at.child(axis), e.to_string());
            None
        }
    };
    Some(Location {
        region: region?,
        description: description?,
        coordinates: coordinates?,
    })
}

fn reporter_in(r: v1::ReporterIdentity, at: At<'_>, v: &mut Violations) -> Option<Reporter> {
    let name = text(r.name, 1, MAX_REPORTER_NAME_CHARS, at.child("name"), v);
    let nik = match r.nik.as_str() {
        "" => Some(None),
        nik => v
            .check(at.child("nik"), limits::check_nik(nik))
            .map(|()| Some(Nik(r.nik))),
    };
    let phone = match r.phone.as_str() {
        "" => Some(None),
        phone => v
            .check(at.child("phone"), limits::normalize_phone(phone))
            .map(Some),
    };
    let email = match r.email.as_str() {
        "" => Some(None),
        email => v
            .check(at.child("email"), limits::check_email(email))
            .map(|()| Some(r.email)),
    };
    Some(Reporter {
        name: name?,
        nik: nik?,
        phone: phone?,
        email: email?,
    })
}

/// Validates a reporter identity on its own (as the store keeps it);
/// field paths start with `field`.
pub fn reporter_from_proto(r: v1::ReporterIdentity, field: &str) -> Result<Reporter, Violations> {
    let mut v = Violations::new();
    let reporter = reporter_in(r, At::root(field), &mut v);
    v.finish(reporter)
}

pub fn reporter_to_proto(r: &Reporter) -> v1::ReporterIdentity {
    v1::ReporterIdentity {
        name: r.name.clone(),
        nik: r.nik.as_ref().map(|n| n.0.clone()).unwrap_or_default(),
        phone: r.phone.clone().unwrap_or_default(),
        email: r.email.clone().unwrap_or_default(),
    }
}

pub fn intake_to_proto(i: &Intake) -> v1::ComplaintIntake {
    v1::ComplaintIntake {
        classification: classification_to_proto(i.classification) as i32,
        channel: channel_to_proto(i.channel) as i32,
        category: i.category.clone(),
        title: i.title.clone(),
        body: i.body.clone(),
        location: Some(v1::Location {
            region_code: i.location.region.as_str().to_owned(),
            description: i.location.description.clone(),
            latitude: i.location.coordinates.map(|(lat, _)| lat),
            longitude: i.location.coordinates.map(|(_, lon)| lon),
        }),
        incident_date: i.incident_date.map(|d| {
            use chrono::Datelike as _;
            // Month and day are at most 31, so the casts are exact.
            v1::Date {
                year: d.year(),
                month: d.month() as i32,
                day: d.day() as i32,
            }
        }),
        privacy: Some(privacy_to_proto(i.privacy)),
        reporter: i.reporter.as_ref().map(reporter_to_proto),
    }
}

// ---- events ---------------------------------------------------------------

/// Validates an event from a client or a peer; field paths are the
/// `v1::Event` field names.
///
/// `event_id` and `complaint_id` may be any UUID version (see
/// [`limits::parse_uuid`]); `origin_site` must be a listed site and
/// `district_code` a listed kabupaten/kota.
pub fn event_from_proto(p: v1::Event) -> Result<Event, Violations> {
    let mut v = Violations::new();
    let event = event_in(p, &mut v);
    v.finish(event)
}

fn event_in(p: v1::Event, v: &mut Violations) -> Option<Event> {
    let id = v
        .check("event_id", limits::parse_uuid(&p.event_id))
        .map(EventId);
    let complaint_id = v
        .check("complaint_id", limits::parse_uuid(&p.complaint_id))
        .map(ComplaintId);
    let origin = site_in(&p.origin_site, "origin_site", None, v);
    let hlc = if p.hlc == 0 {
        v.add("hlc", "must be greater than 0");
        None
    } else {
        Some(Hlc(p.hlc))
    };
    let actor = text(p.actor, 1, MAX_ACTOR_CHARS, At::root("actor"), v);
    let district = site_in(&p.district_code, "district_code", Some(SiteRole::Node), v);
    let body = event_body_in(p.body, At::root("body"), v);
    Some(Event {
        id: id?,
        complaint_id: complaint_id?,
        origin: origin?,
        hlc: hlc?,
        actor: actor?,
        district: district?,
        body: body?,
    })
}

/// A site code that is well formed, listed, and (when given) of `role`.
fn site_in(s: &str, field: &str, role: Option<SiteRole>, v: &mut Violations) -> Option<SiteCode> {
    let site = match SiteCode::parse(s) {
        _ if s.is_empty() => return v.missing(field),
        Ok(site) => site,
        Err(_) => {
            let shape = if role == Some(SiteRole::Node) {
                "NN.NN"
            } else {
                "00, NN or NN.NN"
            };
            v.add(field, format!("must be a site code of the form {shape}"));
            return None;
        }
    };
    if role.is_some_and(|r| r != site.role()) {
        v.add(
            field,
            format!(
                "{site} is a {} code; a kabupaten/kota code NN.NN is required",
                site.role()
            ),
        );
        None
    } else if !regions::is_known_site(&site) {
        v.add(field, format!("{site} is not in the Kemendagri list"));
        None
    } else {
        Some(site)
    }
}

/// Validates an event body; `field` is its path (`body` in `v1::Event` and
/// `AddEventRequest`). A missing body or one with no kind set is refused.
pub fn event_body_from_proto(
    p: Option<v1::EventBody>,
    field: &str,
) -> Result<EventBody, Violations> {
    let mut v = Violations::new();
    let body = event_body_in(p, At::root(field), &mut v);
    v.finish(body)
}

fn event_body_in(p: Option<v1::EventBody>, at: At<'_>, v: &mut Violations) -> Option<EventBody> {
    let Some(kind) = p.and_then(|b| b.kind) else {
        v.add(at, "is required: set exactly one event kind");
        return None;
    };
    let note = |s: String, field: At<'_>, v: &mut Violations| text(s, 0, MAX_NOTE_CHARS, field, v);
    let message =
        |s: String, field: At<'_>, v: &mut Violations| text(s, 1, MAX_NOTE_CHARS, field, v);
    let institution =
        |s: String, field: At<'_>, v: &mut Violations| text(s, 1, MAX_INSTITUTION_CHARS, field, v);
    Some(match kind {
        Kind::Created(c) => {
            let at = at.child("created");
            let tracking = v.check(
                at.child("tracking_number"),
                limits::check_tracking_number(&c.tracking_number),
            );
            let intake = match c.intake {
                Some(i) => intake_in(i, at.child("intake"), Rules::Event, v),
                None => v.missing(at.child("intake")),
            };
            tracking?;
            EventBody::Created {
                tracking_number: TrackingNumber(c.tracking_number),
                intake: Box::new(intake?),
            }
        }
        Kind::Verified(b) => {
            let note = note(b.note, at.child("verified.note"), v)?;
            EventBody::Verified {
                note,
                privacy: privacy_from_proto(b.privacy),
            }
        }
        Kind::Rejected(b) => EventBody::Rejected {
            reason: note(b.reason, at.child("rejected.reason"), v)?,
        },
        Kind::Dispositioned(b) => {
            let from = institution(
                b.from_institution,
                at.child("dispositioned.from_institution"),
                v,
            );
            let to = institution(
                b.to_institution,
                at.child("dispositioned.to_institution"),
                v,
            );
            let note = note(b.note, at.child("dispositioned.note"), v);
            EventBody::Dispositioned {
                from_institution: from?,
                to_institution: to?,
                note: note?,
            }
        }
        Kind::Responded(b) => {
            let inst = institution(b.institution, at.child("responded.institution"), v);
            let body = message(b.body, at.child("responded.body"), v);
            EventBody::Responded {
                institution: inst?,
                body: body?,
            }
        }
        Kind::ReporterReplied(b) => EventBody::ReporterReplied {
            body: message(b.body, at.child("reporter_replied.body"), v)?,
        },
        Kind::Commented(b) => EventBody::Commented {
            body: message(b.body, at.child("commented.body"), v)?,
        },
        Kind::Closed(b) => EventBody::Closed {
            reason: note(b.reason, at.child("closed.reason"), v)?,
        },
        Kind::Archived(b) => EventBody::Archived {
            reason: note(b.reason, at.child("archived.reason"), v)?,
        },
        Kind::Reopened(b) => EventBody::Reopened {
            reason: note(b.reason, at.child("reopened.reason"), v)?,
        },
        Kind::PrivacyTightened(b) => EventBody::PrivacyTightened {
            privacy: privacy_from_proto(b.privacy),
        },
    })
}

pub fn event_body_to_proto(b: &EventBody) -> v1::EventBody {
    let kind = match b {
        EventBody::Created {
            tracking_number,
            intake,
        } => Kind::Created(v1::Created {
            tracking_number: tracking_number.0.clone(),
            intake: Some(intake_to_proto(intake)),
        }),
        EventBody::Verified { note, privacy } => Kind::Verified(v1::Verified {
            note: note.clone(),
            privacy: Some(privacy_to_proto(*privacy)),
        }),
        EventBody::Rejected { reason } => Kind::Rejected(v1::Rejected {
            reason: reason.clone(),
        }),
        EventBody::Dispositioned {
            from_institution,
            to_institution,
            note,
        } => Kind::Dispositioned(v1::Dispositioned {
            from_institution: from_institution.clone(),
            to_institution: to_institution.clone(),
            note: note.clone(),
        }),
        EventBody::Responded { institution, body } => Kind::Responded(v1::Responded {
            institution: institution.clone(),
            body: body.clone(),
        }),
        EventBody::ReporterReplied { body } => {
            Kind::ReporterReplied(v1::ReporterReplied { body: body.clone() })
        }
        EventBody::Commented { body } => Kind::Commented(v1::Commented { body: body.clone() }),
        EventBody::Closed { reason } => Kind::Closed(v1::Closed {
            reason: reason.clone(),
        }),
        EventBody::Archived { reason } => Kind::Archived(v1::Archived {
            reason: reason.clone(),
        }),
        EventBody::Reopened { reason } => Kind::Reopened(v1::Reopened {
            reason: reason.clone(),
        }),
        EventBody::PrivacyTightened { privacy } => Kind::PrivacyTightened(v1::PrivacyTightened {
            privacy: Some(privacy_to_proto(*privacy)),
        }),
    };
    v1::EventBody { kind: Some(kind) }
}

pub fn event_to_proto(e: &Event) -> v1::Event {
    v1::Event {
        event_id: e.id.to_string(),
        complaint_id: e.complaint_id.to_string(),
        origin_site: e.origin.as_str().to_owned(),
        hlc: e.hlc.0,
        actor: e.actor.clone(),
        district_code: e.district.as_str().to_owned(),
        body: Some(event_body_to_proto(&e.body)),
    }
}

// ---- folded state ---------------------------------------------------------

/// The wire view of a folded complaint. The intake carries the *effective*
/// privacy (tightened by later events), and the reporter is left out when
/// that privacy is anonymous — a complaint made anonymous after intake shows
/// no identity either.
pub fn complaint_to_proto(state: &ComplaintState) -> v1::Complaint {
    let mut intake = intake_to_proto(&state.intake);
    intake.privacy = Some(privacy_to_proto(state.privacy));
    if state.privacy.anonymous {
        intake.reporter = None;
    }
    v1::Complaint {
        complaint_id: state.id.to_string(),
        tracking_number: state.tracking_number.0.clone(),
        district_code: state.district.as_str().to_owned(),
        origin_site: state.origin.as_str().to_owned(),
        intake: Some(intake),
        status: status_to_proto(state.status) as i32,
        dispositions: state
            .dispositions
            .iter()
            .map(|h| v1::DispositionHop {
                from_institution: h.from_institution.clone(),
                to_institution: h.to_institution.clone(),
                note: h.note.clone(),
                at_hlc: h.at.0,
            })
            .collect(),
        created_hlc: state.created_hlc.0,
        updated_hlc: state.updated_hlc.0,
        event_count: state.event_count,
        rejected_event_count: u32::try_from(state.skipped.len()).unwrap_or(u32::MAX),
        digest: state.digest(),
        // Filled by callers that know the deadline policy (`rpc::complaints`).
        deadlines: Vec::new(),
    }
}

/// A running deadline on the wire.
pub fn deadline_to_proto(d: &crate::deadline::Deadline) -> v1::Deadline {
    use crate::deadline::DeadlineKind;
    let kind = match d.kind {
        DeadlineKind::Verification => v1::DeadlineKind::Verification,
        DeadlineKind::FollowUp => v1::DeadlineKind::FollowUp,
        DeadlineKind::AutoClose => v1::DeadlineKind::AutoClose,
    };
    v1::Deadline {
        kind: kind as i32,
        since_ms: d.since.timestamp_millis(),
        due_ms: d.due.timestamp_millis(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
