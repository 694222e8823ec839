//! The `Complaints` gRPC service (Get, List, Count): read access to the
//! complaints of one site's [`Store`]. A district node and a hub serve the
//! same code over their own stores.
//!
//! Requests are validated here, once, into store types; a malformed key or
//! filter is answered with `INVALID_ARGUMENT` and field-level
//! `google.rpc.BadRequest` details before the store is touched.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::domain::{ComplaintId, SiteCode, SiteRole, TrackingNumber};
use crate::hlc::Hlc;
use crate::lifecycle::ComplaintState;
use crate::overdue::{self, DeadlinePolicy};
use crate::proto::convert::{Violations, complaint_to_proto, deadline_to_proto, status_from_proto};
use crate::proto::limits;
use crate::proto::v1;
use crate::proto::v1::complaints_server::{Complaints, ComplaintsServer};
use crate::proto::v1::get_complaint_request::Key;
use crate::store::{ComplaintFilter, ComplaintKey, MAX_PAGE_SIZE, PageRequest, Store};

/// Page size when a List request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Longest page token accepted; the store's tokens are far shorter.
const MAX_TOKEN_LEN: usize = 512;

/// The service; cheap to clone (it holds a [`Store`] handle).
#[derive(Debug, Clone)]
pub struct ComplaintsService {
    store: Store,
    /// Holidays and SLA days: the same at every tier, so deadlines agree.
    policy: Arc<DeadlinePolicy>,
}

impl ComplaintsService {
    /// With the built-in 2026 holidays and LAPOR's 3/5/10 working days.
    pub fn new(store: Store) -> Self {
        Self::with_policy(store, DeadlinePolicy::default())
    }

    pub fn with_policy(store: Store, policy: DeadlinePolicy) -> Self {
        ComplaintsService {
            store,
            policy: Arc::new(policy),
        }
    }

    /// The wire view with the running deadlines filled in.
    fn to_proto(&self, state: &ComplaintState) -> v1::Complaint {
        let mut c = complaint_to_proto(state);
        c.deadlines = self
            .policy
            .deadlines(state)
            .all
            .iter()
            .map(deadline_to_proto)
            .collect();
        c
    }

    /// Wraps the service for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> ComplaintsServer<Self> {
        ComplaintsServer::new(self)
    }
}

#[tonic::async_trait]
impl Complaints for ComplaintsService {
    #[tracing::instrument(skip_all)]
    async fn get(
        &self,
        request: Request<v1::GetComplaintRequest>,
    ) -> Result<Response<v1::GetComplaintResponse>, Status> {
        let key = key_from_proto(request.into_inner().key)?;
        let view = self
            .store
            .get(key.clone())
            .await?
            .ok_or_else(|| match &key {
                ComplaintKey::Id(id) => Status::not_found(format!("complaint {id} not found")),
                ComplaintKey::Tracking(t) => {
                    Status::not_found(format!("tracking number {t} not found"))
                }
            })?;
        Ok(Response::new(v1::GetComplaintResponse {
            complaint: Some(self.to_proto(&view.state)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list(
        &self,
        request: Request<v1::ListComplaintsRequest>,
    ) -> Result<Response<v1::ListComplaintsResponse>, Status> {
        let req = request.into_inner();
        let mut violations = Violations::new();
        let filter = filter_from_proto(req.filter.unwrap_or_default(), "filter", &mut violations);
        if req.page_token.len() > MAX_TOKEN_LEN {
            violations.add("page_token", format!("longer than {MAX_TOKEN_LEN} bytes"));
        }
        violations.into_result()?;
        let page = PageRequest {
            limit: page_size(req.page_size),
            token: non_empty(req.page_token),
        };
        let page = self.store.list(filter, page).await?;
        Ok(Response::new(v1::ListComplaintsResponse {
            complaints: page.items.iter().map(|s| self.to_proto(s)).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn count(
        &self,
        request: Request<v1::CountComplaintsRequest>,
    ) -> Result<Response<v1::CountComplaintsResponse>, Status> {
        let mut violations = Violations::new();
        let filter = filter_from_proto(
            request.into_inner().filter.unwrap_or_default(),
            "filter",
            &mut violations,
        );
        violations.into_result()?;
        let count = self.store.count(filter).await?;
        Ok(Response::new(v1::CountComplaintsResponse { count }))
    }

    #[tracing::instrument(skip_all)]
    async fn overdue(
        &self,
        request: Request<v1::OverdueRequest>,
    ) -> Result<Response<v1::OverdueResponse>, Status> {
        let req = request.into_inner();
        let mut violations = Violations::new();
        let filter = filter_from_proto(req.filter.unwrap_or_default(), "filter", &mut violations);
        violations.into_result()?;
        let limit = page_size(req.limit) as usize;
        let (now, found) = overdue::overdue(&self.store, &self.policy, filter, limit).await?;
        Ok(Response::new(v1::OverdueResponse {
            complaints: found
                .iter()
                .map(|(state, deadline)| v1::OverdueComplaint {
                    complaint: Some(self.to_proto(state)),
                    deadline: Some(deadline_to_proto(deadline)),
                })
                .collect(),
            judged_at_ms: now.timestamp_millis(),
        }))
    }
}

/// 0 means the default; anything above the store's maximum is clamped, as the
/// proto documents ("at most 500"), rather than refused.
fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn key_from_proto(key: Option<Key>) -> Result<ComplaintKey, Status> {
    let mut violations = Violations::new();
    let key = match key {
        Some(Key::ComplaintId(id)) => limits::parse_uuid(&id)
            .map(|id| ComplaintKey::Id(ComplaintId(id)))
            .map_err(|e| violations.add("complaint_id", e.to_string()))
            .ok(),
        Some(Key::TrackingNumber(t)) => limits::check_tracking_number(&t)
            .map(|()| ComplaintKey::Tracking(TrackingNumber(t)))
            .map_err(|e| violations.add("tracking_number", e.to_string()))
            .ok(),
        None => {
            violations.add("key", "set complaint_id or tracking_number");
            None
        }
    };
    violations.into_result()?;
    // `into_result` is Ok only when nothing was added, and every `None` arm
    // above adds a violation.
    key.ok_or_else(|| Status::invalid_argument("key"))
}

/// Validates a wire filter into the store's; problems are added to
/// `violations` under `prefix.field`.
pub fn filter_from_proto(
    filter: v1::ComplaintFilter,
    prefix: &str,
    violations: &mut Violations,
) -> ComplaintFilter {
    let region = match filter.region_code.as_str() {
        "" => None,
        code => match SiteCode::parse(code) {
            // The national code covers everything: no region restriction.
            Ok(site) if site.role() == SiteRole::National => None,
            Ok(site) => Some(site.as_str().to_owned()),
            Err(_) => {
                violations.add(
                    format!("{prefix}.region_code"),
                    format!("{code:?} is not a province (NN) or district (NN.NN) code"),
                );
                None
            }
        },
    };
    let mut statuses = Vec::with_capacity(filter.statuses.len());
    for (i, raw) in filter.statuses.iter().enumerate() {
        match status_from_proto(*raw) {
            Some(s) => statuses.push(s),
            None => violations.add(
                format!("{prefix}.statuses[{i}]"),
                format!("{raw} is not a known status"),
            ),
        }
    }
    let updated_since = (filter.updated_since_hlc > 0).then_some(Hlc(filter.updated_since_hlc));
    ComplaintFilter {
        region,
        statuses,
        updated_since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(region: &str, statuses: Vec<i32>, since: u64) -> v1::ComplaintFilter {
        v1::ComplaintFilter {
            region_code: region.into(),
            statuses,
            updated_since_hlc: since,
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        let mut v = Violations::new();
        let f = filter_from_proto(v1::ComplaintFilter::default(), "filter", &mut v);
        assert!(v.into_result().is_ok());
        assert_eq!(f.region, None);
        assert!(f.statuses.is_empty());
        assert_eq!(f.updated_since, None);
    }

    #[test]
    fn province_district_and_national_region_filters_are_accepted() {
        for (code, expect) in [("11", Some("11")), ("11.13", Some("11.13")), ("00", None)] {
            let mut v = Violations::new();
            let f = filter_from_proto(filter(code, vec![], 0), "filter", &mut v);
            assert!(v.into_result().is_ok(), "{code} refused");
            assert_eq!(f.region.as_deref(), expect);
        }
    }

    #[test]
    fn malformed_region_and_unknown_status_are_refused_per_field() {
        let mut v = Violations::new();
        filter_from_proto(
            filter("11.13.01", vec![v1::Status::Selesai as i32, 0, 99], 5),
            "filter",
            &mut v,
        );
        let status = v.into_result().unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let fields = bad_request_fields(&status);
        assert_eq!(
            fields,
            [
                "filter.region_code",
                "filter.statuses[1]",
                "filter.statuses[2]"
            ]
        );
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(10_000), MAX_PAGE_SIZE);
    }

    #[test]
    fn lookup_keys_are_validated() {
        assert!(matches!(
            key_from_proto(Some(Key::TrackingNumber("1113-K7Q-000001".into()))),
            Ok(ComplaintKey::Tracking(_))
        ));
        let id = ComplaintId::new_v7();
        assert!(
            matches!(key_from_proto(Some(Key::ComplaintId(id.to_string()))), Ok(ComplaintKey::Id(got)) if got == id)
        );
        for (key, field) in [
            (None, "key"),
            (Some(Key::ComplaintId("not-a-uuid".into())), "complaint_id"),
            (Some(Key::TrackingNumber(String::new())), "tracking_number"),
        ] {
            let status = key_from_proto(key).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(bad_request_fields(&status), [field]);
        }
    }

    fn bad_request_fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt as _;
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest details");
        bad.field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }
}
