//! The `Intake` gRPC service: `Submit` records a new complaint (district
//! nodes only — a hub answers `FAILED_PRECONDITION`), `AddEvent` appends a
//! lifecycle event written at this site (any tier, within its scope and the
//! transition table).
//!
//! Each request is validated once, here, through `proto::convert`; every
//! problem is collected and returned together as `INVALID_ARGUMENT` with
//! `google.rpc.BadRequest` field details, and nothing is written. Valid
//! requests go to the store, whose refusals map to statuses in one place
//! (`crate::rpc::status`): an unknown complaint is `NOT_FOUND`, an
//! illegal transition `FAILED_PRECONDITION`, an id reused with other content
//! `ALREADY_EXISTS`, a complaint outside this site's scope
//! `PERMISSION_DENIED`.
//!
//! `Submit` may carry the reporter's identity for an anonymous complaint:
//! the store keeps it at this node only. Answers never carry identity (the
//! complaint in `AddEventResponse` is redacted).

use crate::domain::{ComplaintId, EventBody, EventId};
use crate::proto::convert::{
    Violations, complaint_to_proto, event_body_from_proto, intake_from_submission,
};
use crate::proto::limits::{self, MAX_ACTOR_CHARS};
use crate::proto::v1;
use crate::proto::v1::intake_server::Intake;
use crate::store::{NewComplaint, NewEvent, Store};
use tonic::{Request, Response, Status};

/// The service; cheap to clone (it holds a [`Store`] handle).
#[derive(Debug, Clone)]
pub struct IntakeService {
    store: Store,
}

impl IntakeService {
    pub fn new(store: Store) -> Self {
        IntakeService { store }
    }
}

#[tonic::async_trait]
impl Intake for IntakeService {
    #[tracing::instrument(skip_all, fields(complaint = tracing::field::Empty))]
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let req = request.into_inner();
        let mut violations = Violations::new();
        let complaint_id =
            optional_uuid(&req.complaint_id, "complaint_id", &mut violations).map(ComplaintId);
        let actor = actor(req.actor, &mut violations);
        let intake = match req.intake {
            // The wall date bounds the incident date; the check allows a day
            // of slack for time zones, so UTC is precise enough here.
            Some(intake) => intake_from_submission(intake, chrono::Utc::now().date_naive())
                .map_err(|e| violations.extend(e))
                .ok(),
            None => {
                violations.add("intake", "is required");
                None
            }
        };
        violations.into_result()?;
        let (Some(intake), Some(actor)) = (intake, actor) else {
            // Unreachable: each `None` above recorded a violation.
            return Err(Status::invalid_argument("invalid request"));
        };
        let submitted = self
            .store
            .submit(NewComplaint {
                complaint_id,
                intake,
                actor,
            })
            .await?;
        tracing::Span::current().record(
            "complaint",
            tracing::field::display(&submitted.complaint_id),
        );
        tracing::info!(
            tracking = %submitted.tracking_number,
            duplicate = submitted.duplicate,
            "complaint submitted"
        );
        Ok(Response::new(v1::SubmitResponse {
            complaint_id: submitted.complaint_id.to_string(),
            tracking_number: submitted.tracking_number.to_string(),
            event_id: submitted.event_id.to_string(),
            duplicate: submitted.duplicate,
        }))
    }

    #[tracing::instrument(skip_all, fields(complaint = %request.get_ref().complaint_id))]
    async fn add_event(
        &self,
        request: Request<v1::AddEventRequest>,
    ) -> Result<Response<v1::AddEventResponse>, Status> {
        let req = request.into_inner();
        let mut violations = Violations::new();
        let event_id = optional_uuid(&req.event_id, "event_id", &mut violations).map(EventId);
        let complaint_id = match req.complaint_id.as_str() {
            "" => {
                violations.add("complaint_id", "is required");
                None
            }
            id => optional_uuid(id, "complaint_id", &mut violations).map(ComplaintId),
        };
        let actor = actor(req.actor, &mut violations);
        let body = event_body_from_proto(req.body, "body")
            .map_err(|e| violations.extend(e))
            .ok();
        if let Some(EventBody::Created { .. }) = body {
            violations.add(
                "body.created",
                "a complaint is created with Submit, not AddEvent",
            );
        }
        violations.into_result()?;
        let (Some(complaint_id), Some(actor), Some(body)) = (complaint_id, actor, body) else {
            // Unreachable: each `None` above recorded a violation.
            return Err(Status::invalid_argument("invalid request"));
        };
        let kind = body.kind();
        let appended = self
            .store
            .add_event(NewEvent {
                event_id,
                complaint_id,
                actor,
                body,
            })
            .await?;
        tracing::info!(event = %appended.event_id, kind, duplicate = appended.duplicate, "event added");
        Ok(Response::new(v1::AddEventResponse {
            event_id: appended.event_id.to_string(),
            hlc: appended.hlc.0,
            duplicate: appended.duplicate,
            complaint: Some(complaint_to_proto(&appended.state)),
        }))
    }
}

/// An optional client-minted UUID: empty means "mint one here".
fn optional_uuid(s: &str, field: &str, violations: &mut Violations) -> Option<uuid::Uuid> {
    if s.is_empty() {
        return None;
    }
    limits::parse_uuid(s)
        .map_err(|e| violations.add(field, e.to_string()))
        .ok()
}

/// The operator account: required, bounded, printable.
fn actor(s: String, violations: &mut Violations) -> Option<String> {
    limits::check_text(&s, 1, MAX_ACTOR_CHARS)
        .map(|()| s)
        .map_err(|e| violations.add("actor", e.to_string()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ids_are_minted_later_and_bad_ones_refused() {
        let mut v = Violations::new();
        assert_eq!(optional_uuid("", "event_id", &mut v), None);
        assert!(v.is_empty());
        let id = uuid::Uuid::now_v7();
        assert_eq!(optional_uuid(&id.to_string(), "event_id", &mut v), Some(id));
        assert!(v.is_empty());
        assert_eq!(optional_uuid("nope", "event_id", &mut v), None);
        assert_eq!(v.fields(), ["event_id"]);
    }

    #[test]
    fn actor_is_required_and_bounded() {
        let mut v = Violations::new();
        assert_eq!(
            actor("petugas.loket".into(), &mut v).as_deref(),
            Some("petugas.loket")
        );
        assert!(actor(String::new(), &mut v).is_none());
        assert!(actor("x".repeat(MAX_ACTOR_CHARS + 1), &mut v).is_none());
        assert_eq!(v.fields(), ["actor", "actor"]);
    }
}
