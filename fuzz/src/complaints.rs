//! `Complaints` requests: Get, List, Count and Overdue.
//!
//! The same input is decoded as each of the four messages (their fields
//! overlap, so one mutation explores all four) and each decoded request goes
//! to the real `ComplaintsService` handler over a node's store holding a few
//! complaints. The handler's own key and page-size rules are private, so the
//! expected outcome is restated from the public rules they compose
//! (`limits::parse_uuid`, `limits::check_tracking_number`,
//! `rpc::complaints::filter_from_proto`, `store::MAX_PAGE_SIZE`) and the
//! handler must agree with it. What a successful answer holds is checked
//! against the request: only complaints matching the filter, never more than
//! the page, and Count equal to what List finds.

use lapor_shared::domain::{ComplaintId, Status};
use lapor_shared::proto::convert::{Violations, status_to_proto};
use lapor_shared::proto::limits;
use lapor_shared::proto::v1::{
    self, complaints_server::Complaints as _, get_complaint_request::Key,
};
use lapor_shared::proto::{convert::intake_from_proto, convert::status_from_proto};
use lapor_shared::rpc::complaints::{ComplaintsService, DEFAULT_PAGE_SIZE, filter_from_proto};
use lapor_shared::store::{ComplaintFilter, MAX_PAGE_SIZE, NewComplaint, NewEvent, Store};
use prost::Message as _;
use tonic::{Code, Request};

use crate::fixture::{block_on, store};
use crate::invariants::{Secrets, assert_status_refusal};
use crate::seeds::valid_intake;

/// `rpc::complaints::MAX_TOKEN_LEN`.
const MAX_TOKEN_LEN: usize = 512;

fn service() -> ComplaintsService {
    ComplaintsService::new(store("11.13", seed_complaints))
}

/// Three complaints, one of them verified, so filters have rows to match.
fn seed_complaints(store: &Store) {
    let intake = match intake_from_proto(valid_intake()) {
        Ok(intake) => intake,
        Err(v) => panic!("seed intake refused: {v}"),
    };
    block_on(async {
        for n in 0..3 {
            let submitted = store
                .submit(NewComplaint {
                    complaint_id: None,
                    intake: intake.clone(),
                    actor: format!("petugas.{n}"),
                })
                .await
                .unwrap_or_else(|e| panic!("seed complaint: {e}"));
            if n == 0 {
                store
                    .add_event(NewEvent {
                        event_id: None,
                        complaint_id: submitted.complaint_id,
                        actor: "admin".into(),
                        body: lapor_shared::domain::EventBody::Verified {
                            note: String::new(),
                            privacy: Default::default(),
                        },
                    })
                    .await
                    .unwrap_or_else(|e| panic!("seed event: {e}"));
            }
        }
    });
}

/// Every complaints request the bytes decode as.
pub fn complaints_requests(data: &[u8]) {
    let service = service();
    if let Ok(req) = v1::GetComplaintRequest::decode(data) {
        get(&service, req);
    }
    if let Ok(req) = v1::ListComplaintsRequest::decode(data) {
        list(&service, req);
    }
    if let Ok(req) = v1::CountComplaintsRequest::decode(data) {
        count(&service, req);
    }
    if let Ok(req) = v1::OverdueRequest::decode(data) {
        overdue(&service, req);
    }
}

fn get(service: &ComplaintsService, req: v1::GetComplaintRequest) {
    let key_ok = match &req.key {
        None => false,
        Some(Key::ComplaintId(id)) => limits::parse_uuid(id).is_ok(),
        Some(Key::TrackingNumber(t)) => limits::check_tracking_number(t).is_ok(),
    };
    let answer = block_on(service.get(Request::new(req.clone())));
    match answer {
        Ok(response) => {
            assert!(key_ok, "Get answered for an invalid key {req:?}");
            let Some(c) = response.into_inner().complaint else {
                panic!("Get answered without a complaint");
            };
            match req.key {
                Some(Key::ComplaintId(id)) => assert_eq!(
                    ComplaintId::parse(&c.complaint_id).ok(),
                    limits::parse_uuid(&id).ok().map(ComplaintId),
                    "Get returned another complaint"
                ),
                Some(Key::TrackingNumber(t)) => assert_eq!(c.tracking_number, t),
                None => unreachable!("checked by key_ok"),
            }
        }
        Err(status) if status.code() == Code::NotFound => {
            assert!(key_ok, "an invalid key was looked up: {status:?}");
        }
        Err(status) => {
            assert!(!key_ok, "a valid key was refused: {status:?}");
            assert_status_refusal(&status, &Secrets::default());
        }
    }
}

/// The filter as the handler reads it: the store's filter, or `None` when
/// the handler must refuse it.
fn filter(f: Option<v1::ComplaintFilter>) -> Option<ComplaintFilter> {
    let wire = f.unwrap_or_default();
    let mut v = Violations::new();
    let bad_statuses = wire
        .statuses
        .iter()
        .filter(|s| status_from_proto(**s).is_none())
        .count();
    let region_given = !wire.region_code.is_empty();
    let filter = filter_from_proto(wire.clone(), "filter", &mut v);
    // One violation per unknown status, one for a bad region, no other.
    let bad_region = v.len().checked_sub(bad_statuses);
    assert!(
        matches!(bad_region, Some(0 | 1)),
        "filter violations {v} for {wire:?}"
    );
    if bad_region == Some(1) {
        assert!(region_given && filter.region.is_none());
    }
    if !v.is_empty() {
        return None;
    }
    assert_eq!(filter.statuses.len(), wire.statuses.len());
    match filter.region.as_deref() {
        None => assert!(matches!(wire.region_code.as_str(), "" | "00")),
        Some(region) => assert_eq!(region, wire.region_code),
    }
    Some(filter)
}

/// `rpc::complaints::page_size`: 0 is the default, larger is clamped.
fn page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE as usize,
        n => n.min(MAX_PAGE_SIZE) as usize,
    }
}

fn matches(f: &ComplaintFilter, c: &v1::Complaint) -> bool {
    let region = f.region.as_deref().is_none_or(|r| {
        c.district_code == r
            || c.district_code
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('.'))
    });
    let status = f.statuses.is_empty()
        || f.statuses
            .iter()
            .any(|s: &Status| status_to_proto(*s) as i32 == c.status);
    let since = f.updated_since.is_none_or(|h| c.updated_hlc > h.0);
    region && status && since
}

fn list(service: &ComplaintsService, req: v1::ListComplaintsRequest) {
    let token_ok = req.page_token.len() <= MAX_TOKEN_LEN
        && (req.page_token.is_empty() || uuid::Uuid::parse_str(&req.page_token).is_ok());
    let expected = filter(req.filter.clone()).filter(|_| token_ok);
    let answer = block_on(service.list(Request::new(req.clone())));
    match (answer, expected) {
        (Ok(response), Some(f)) => {
            let page = response.into_inner();
            assert!(page.complaints.len() <= page_size(req.page_size));
            for c in &page.complaints {
                assert!(matches(&f, c), "List returned {c:?} outside {f:?}");
            }
        }
        (Ok(_), None) => panic!("List answered an invalid request {req:?}"),
        (Err(status), Some(_)) => panic!("List refused a valid request: {status:?}"),
        (Err(status), None) => assert_status_refusal(&status, &Secrets::default()),
    }
}

fn count(service: &ComplaintsService, req: v1::CountComplaintsRequest) {
    let expected = filter(req.filter.clone());
    let answer = block_on(service.count(Request::new(req.clone())));
    match (answer, expected) {
        (Ok(response), Some(_)) => {
            let listed = block_on(service.list(Request::new(v1::ListComplaintsRequest {
                filter: req.filter,
                page_size: MAX_PAGE_SIZE,
                page_token: String::new(),
            })))
            .unwrap_or_else(|status| panic!("List refused a filter Count took: {status:?}"));
            assert_eq!(
                response.into_inner().count,
                listed.into_inner().complaints.len() as u64,
                "Count and List disagree"
            );
        }
        (Ok(_), None) => panic!("Count answered an invalid request {req:?}"),
        (Err(status), Some(_)) => panic!("Count refused a valid request: {status:?}"),
        (Err(status), None) => assert_status_refusal(&status, &Secrets::default()),
    }
}

fn overdue(service: &ComplaintsService, req: v1::OverdueRequest) {
    let expected = filter(req.filter.clone());
    let answer = block_on(service.overdue(Request::new(req.clone())));
    match (answer, expected) {
        (Ok(response), Some(f)) => {
            let found = response.into_inner().complaints;
            assert!(found.len() <= page_size(req.limit));
            for o in &found {
                let Some(c) = &o.complaint else {
                    panic!("an overdue entry without its complaint");
                };
                assert!(matches(&f, c), "Overdue returned {c:?} outside {f:?}");
                assert!(
                    o.deadline.is_some(),
                    "an overdue entry without its deadline"
                );
            }
        }
        (Ok(_), None) => panic!("Overdue answered an invalid request {req:?}"),
        (Err(status), Some(_)) => panic!("Overdue refused a valid request: {status:?}"),
        (Err(status), None) => assert_status_refusal(&status, &Secrets::default()),
    }
}
