//! `Intake` requests: `SubmitRequest` and `AddEventRequest`.
//!
//! Each input goes to the real `IntakeService` handler, on a province hub's
//! store: a hub validates a submission fully and only then refuses it with
//! `FAILED_PRECONDITION` (intake happens at nodes), and an event for a
//! complaint it does not hold ends in `NOT_FOUND`, so nothing is written and
//! every accepted request is seen as that one status.
//!
//! The handler returns no domain value to check, so the request is also
//! validated here by the same public rules (`proto::convert`, and for the
//! handler's private glue — the optional client id and the actor — the
//! `proto::limits` rules that glue applies), and both must agree. The domain
//! value then carries the invariants: it re-encodes and re-validates to
//! itself, and the event the store would write from it round-trips.

use chrono::NaiveDate;
use lapor_shared::domain::{ComplaintId, Event, EventBody, EventId, Intake, TrackingNumber};
use lapor_shared::hlc::Hlc;
use lapor_shared::proto::convert::{
    Violations, event_body_from_proto, event_body_to_proto, event_from_proto, event_to_proto,
    intake_from_proto, intake_from_submission, intake_to_proto,
};
use lapor_shared::proto::limits::{self, MAX_ACTOR_CHARS};
use lapor_shared::proto::v1::{self, event_body::Kind, intake_server::Intake as _};
use lapor_shared::rpc::intake::IntakeService;
use lapor_shared::store::Store;
use prost::Message as _;
use tonic::{Code, Request};

use crate::fixture::{block_on, site, store};
use crate::invariants::{Secrets, assert_event_round_trips, assert_refusal, assert_status_refusal};

/// A tracking number of the shape the store mints, for the Created event.
const TRACKING: &str = "1113-K7Q-000001";

fn hub() -> Store {
    store("11", |_| {})
}

fn today() -> NaiveDate {
    // What the handler uses: UTC is within the rule's day of slack.
    chrono::Utc::now().date_naive()
}

/// `SubmitRequest` → `Intake.Submit`.
pub fn intake_submit(data: &[u8]) {
    let Ok(req) = v1::SubmitRequest::decode(data) else {
        return;
    };
    let secrets = Secrets::of_intake(req.intake.as_ref());
    let before = today();
    let answer = block_on(IntakeService::new(hub()).submit(Request::new(req.clone())));
    // Around midnight the handler's date may differ from ours; then only the
    // handler's answer is checked.
    let checked = (today() == before).then(|| submission(req.clone(), before));
    match answer {
        Ok(_) => panic!("a province hub recorded a submission"),
        Err(status) if status.code() == Code::FailedPrecondition => match checked {
            Some(Ok(accepted)) => check_submission(&req, before, accepted),
            Some(Err(v)) => panic!("the handler accepted a request the rules refuse: {v}"),
            None => {}
        },
        Err(status) => {
            assert_status_refusal(&status, &secrets);
            match checked {
                Some(Ok(_)) => panic!("the handler refused a valid request: {status:?}"),
                Some(Err(v)) => assert_refusal(v, &secrets),
                None => {}
            }
        }
    }
}

struct Submission {
    complaint_id: Option<ComplaintId>,
    actor: String,
    intake: Intake,
}

/// The handler's validation of a submission, from the public rules.
fn submission(req: v1::SubmitRequest, today: NaiveDate) -> Result<Submission, Violations> {
    let mut v = Violations::new();
    let complaint_id = optional_uuid(&req.complaint_id, "complaint_id", &mut v).map(ComplaintId);
    let actor = actor(req.actor, &mut v);
    let intake = match req.intake {
        Some(intake) => intake_from_submission(intake, today)
            .map_err(|e| v.extend(e))
            .ok(),
        None => {
            v.add("intake", "is required");
            None
        }
    };
    v.finish_with(|| {
        Some(Submission {
            complaint_id,
            actor: actor?,
            intake: intake?,
        })
    })
}

fn check_submission(req: &v1::SubmitRequest, today: NaiveDate, s: Submission) {
    let Some(sent) = req.intake.clone() else {
        panic!("a submission without an intake was accepted");
    };
    let intake = s.intake;
    let again = v1::ComplaintIntake::decode(intake_to_proto(&intake).encode_to_vec().as_slice())
        .unwrap_or_else(|e| panic!("our own intake encoding does not decode: {e}"));
    assert_eq!(
        intake_from_submission(again, today),
        Ok(intake.clone()),
        "an accepted intake does not re-validate to itself"
    );
    let anonymous = intake.privacy.anonymous;
    assert!(
        anonymous || intake.reporter.is_some(),
        "a named complaint was accepted without its reporter"
    );
    // Judged without a clock, the same intake differs only in that an
    // anonymous one may not carry identity (only a node's own submission
    // records it, and keeps it there).
    let standalone = intake_from_proto(sent);
    if anonymous && intake.reporter.is_some() {
        let refused = standalone.err().map(|v| v.fields().join(","));
        assert_eq!(refused.as_deref(), Some("intake.reporter"));
    } else {
        assert_eq!(
            standalone,
            Ok(intake.clone()),
            "an intake valid at submission is judged otherwise without a clock"
        );
    }
    // The Created event a node writes for it is one every peer accepts; the
    // store leaves an anonymous reporter out of it, and must: with it the
    // event is refused.
    let district = intake.location.region.district();
    let created = |intake: Intake| Event {
        id: EventId(uuid::Uuid::from_u128(1)),
        complaint_id: s
            .complaint_id
            .unwrap_or(ComplaintId(uuid::Uuid::from_u128(2))),
        origin: district.clone(),
        hlc: Hlc(1),
        actor: s.actor.clone(),
        district: district.clone(),
        body: EventBody::Created {
            tracking_number: TrackingNumber(TRACKING.into()),
            intake: Box::new(intake),
        },
    };
    if anonymous && intake.reporter.is_some() {
        let leaked = event_from_proto(event_to_proto(&created(intake.clone())));
        let refused = leaked.err().map(|v| v.fields().join(","));
        assert_eq!(refused.as_deref(), Some("body.created.intake.reporter"));
    }
    let mut stored = intake;
    if anonymous {
        stored.reporter = None;
    }
    assert_event_round_trips(&created(stored));
}

/// `AddEventRequest` → `Intake.AddEvent`.
pub fn add_event(data: &[u8]) {
    let Ok(req) = v1::AddEventRequest::decode(data) else {
        return;
    };
    let created = match req.body.as_ref().and_then(|b| b.kind.as_ref()) {
        Some(Kind::Created(c)) => c.intake.as_ref(),
        _ => None,
    };
    let secrets = Secrets::of_intake(created);
    let answer = block_on(IntakeService::new(hub()).add_event(Request::new(req.clone())));
    let checked = lifecycle_event(req);
    match answer {
        Ok(_) => panic!("an event was added to a complaint the hub does not hold"),
        Err(status) if status.code() == Code::NotFound => match checked {
            Ok(accepted) => check_lifecycle_event(accepted),
            Err(v) => panic!("the handler accepted a request the rules refuse: {v}"),
        },
        Err(status) => {
            assert_status_refusal(&status, &secrets);
            match checked {
                Ok(_) => panic!("the handler refused a valid request: {status:?}"),
                Err(v) => assert_refusal(v, &secrets),
            }
        }
    }
}

struct LifecycleEvent {
    event_id: Option<EventId>,
    complaint_id: ComplaintId,
    actor: String,
    body: EventBody,
}

/// The handler's validation of an added event, from the public rules.
fn lifecycle_event(req: v1::AddEventRequest) -> Result<LifecycleEvent, Violations> {
    let mut v = Violations::new();
    let event_id = optional_uuid(&req.event_id, "event_id", &mut v).map(EventId);
    let complaint_id = if req.complaint_id.is_empty() {
        v.add("complaint_id", "is required");
        None
    } else {
        optional_uuid(&req.complaint_id, "complaint_id", &mut v).map(ComplaintId)
    };
    let actor = actor(req.actor, &mut v);
    let body = event_body_from_proto(req.body, "body")
        .map_err(|e| v.extend(e))
        .ok();
    if let Some(EventBody::Created { .. }) = body {
        v.add("body.created", "a complaint is created with Submit");
    }
    v.finish_with(|| {
        Some(LifecycleEvent {
            event_id,
            complaint_id: complaint_id?,
            actor: actor?,
            body: body?,
        })
    })
}

fn check_lifecycle_event(e: LifecycleEvent) {
    let wire = event_body_to_proto(&e.body);
    assert_eq!(
        event_body_from_proto(Some(wire), "body"),
        Ok(e.body.clone()),
        "an accepted body does not re-validate to itself"
    );
    // The event as a node would stamp it, and as a province hub would.
    for origin in ["11.13", "11"] {
        assert_event_round_trips(&Event {
            id: e.event_id.unwrap_or(EventId(uuid::Uuid::from_u128(1))),
            complaint_id: e.complaint_id,
            origin: site(origin),
            hlc: Hlc(u64::MAX),
            actor: e.actor.clone(),
            district: site("11.13"),
            body: e.body.clone(),
        });
    }
}

/// `rpc::intake::optional_uuid`: empty means "mint one at the store".
fn optional_uuid(s: &str, field: &str, v: &mut Violations) -> Option<uuid::Uuid> {
    if s.is_empty() {
        return None;
    }
    limits::parse_uuid(s)
        .map_err(|e| v.add(field, e.to_string()))
        .ok()
}

/// `rpc::intake::actor`: required, bounded, printable.
fn actor(s: String, v: &mut Violations) -> Option<String> {
    limits::check_text(&s, 1, MAX_ACTOR_CHARS)
        .map(|()| s)
        .map_err(|e| v.add("actor", e.to_string()))
        .ok()
}

/// `Violations::finish` for a value built only when nothing was violated.
trait FinishWith {
    fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Violations>;
}

impl FinishWith for Violations {
    fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Violations> {
        if !self.is_empty() {
            return Err(self);
        }
        match build() {
            Some(value) => Ok(value),
            None => panic!("no violation recorded, yet a part of the request is missing"),
        }
    }
}
