//! The `Complaints` gRPC service (Get, List, Count): read access to the
//! complaints of one site's [`Store`]. A district node and a hub serve the
//! same code over their own stores.
//!
//! Requests are validated here, once, into store types; a malformed key or
//! filter is answered with `INVALID_ARGUMENT` and field-level
//! `google.rpc.BadRequest` details before the store is touched.
//!
//! Reporter identity is redacted (left out) unless the caller's role may
//! read it ([`super::caller`]); then Get and List put it back for
//! non-anonymous complaints, after the store has audited the read. An
//! anonymous complaint's identity is returned to no one, and Overdue never
//! returns identity. The digest is computed without identity either way, so
//! redaction never changes it.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::caller::{Caller, caller_of};
use crate::domain::{ComplaintId, SiteCode, SiteRole, TrackingNumber};
use crate::hlc::Hlc;
use crate::lifecycle::ComplaintState;
use crate::overdue::{self, DeadlinePolicy};
use crate::proto::convert::{
    Violations, complaint_to_proto, deadline_to_proto, reporter_to_proto, status_from_proto,
};
use crate::proto::limits;
use crate::proto::v1;
use crate::proto::v1::complaints_server::{Complaints, ComplaintsServer};
use crate::proto::v1::get_complaint_request::Key;
use crate::store::{
    ComplaintFilter, ComplaintKey, IdentityKey, IdentityScope, MAX_PAGE_SIZE, PageRequest, Store,
};

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

    /// The wire view with the running deadlines filled in, identity
    /// redacted.
    fn to_proto(&self, state: &ComplaintState) -> v1::Complaint {
        let mut c = complaint_to_proto(state);
        if let Some(intake) = &mut c.intake {
            intake.reporter = None;
        }
        c.deadlines = self
            .policy
            .deadlines(state)
            .all
            .iter()
            .map(deadline_to_proto)
            .collect();
        c
    }

    /// The wire views of `states` for `caller`: identity put back for
    /// non-anonymous complaints when the caller's role may read it (each
    /// read audited by the store before anything is returned).
    async fn for_caller(
        &self,
        caller: &Caller,
        states: &[ComplaintState],
    ) -> Result<Vec<v1::Complaint>, Status> {
        let mut out: Vec<v1::Complaint> = states.iter().map(|s| self.to_proto(s)).collect();
        if !caller.role.may_read_identity() {
            return Ok(out);
        }
        let keys: Vec<IdentityKey> = states
            .iter()
            .filter(|s| !s.privacy.anonymous)
            .map(IdentityKey::from)
            .collect();
        if keys.is_empty() {
            return Ok(out);
        }
        let held = self
            .store
            .read_identities(keys, &caller.audit_actor())
            .await?;
        for h in held.iter().filter(|h| h.scope == IdentityScope::Event) {
            let slot = out
                .iter_mut()
                .zip(states)
                .find(|(_, s)| s.id == h.complaint_id && !s.privacy.anonymous)
                .and_then(|(c, _)| c.intake.as_mut());
            if let Some(intake) = slot {
                intake.reporter = Some(reporter_to_proto(&h.reporter));
            }
        }
        Ok(out)
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
        let caller = caller_of(&request);
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
        let complaint = self
            .for_caller(&caller, std::slice::from_ref(&view.state))
            .await?
            .pop();
        Ok(Response::new(v1::GetComplaintResponse { complaint }))
    }

    #[tracing::instrument(skip_all)]
    async fn list(
        &self,
        request: Request<v1::ListComplaintsRequest>,
    ) -> Result<Response<v1::ListComplaintsResponse>, Status> {
        let caller = caller_of(&request);
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
            complaints: self.for_caller(&caller, &page.items).await?,
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

    mod identity {
        use super::super::*;
        use crate::domain::{
            Channel, Classification, Intake, Location, Nik, Privacy, RegionCode, Reporter,
        };
        use crate::hlc::SystemClock;
        use crate::rpc::caller::CallerRole;
        use crate::store::{NewComplaint, StoreConfig};

        fn intake(anonymous: bool) -> Intake {
            Intake {
                classification: Classification::Pengaduan,
                channel: Channel::WalkIn,
                category: String::new(),
                title: "Jalan rusak".into(),
                body: "Jalan desa rusak.".into(),
                location: Location {
                    region: RegionCode::parse("11.13.01").unwrap(),
                    description: String::new(),
                    coordinates: None,
                },
                incident_date: None,
                privacy: Privacy {
                    anonymous,
                    secret: false,
                },
                reporter: Some(Reporter {
                    name: "Teuku Umar".into(),
                    nik: Some(Nik("1113014107900001".into())),
                    phone: Some("+6281234567890".into()),
                    email: None,
                }),
            }
        }

        fn get(id: ComplaintId, role: Option<CallerRole>) -> Request<v1::GetComplaintRequest> {
            let mut request = Request::new(v1::GetComplaintRequest {
                key: Some(Key::ComplaintId(id.to_string())),
            });
            if let Some(role) = role {
                request.extensions_mut().insert(Caller {
                    role,
                    name: "test".into(),
                });
            }
            request
        }

        fn reporter_name(c: &v1::Complaint) -> Option<&str> {
            c.intake
                .as_ref()
                .and_then(|i| i.reporter.as_ref())
                .map(|r| r.name.as_str())
        }

        #[tokio::test]
        async fn identity_is_returned_only_to_a_role_that_may_read_it_and_never_when_anonymous() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(StoreConfig {
                path: dir.path().join("site.db"),
                site: SiteCode::parse("11.13").unwrap(),
                clock: SystemClock::default(),
            })
            .unwrap();
            let mut ids = Vec::new();
            for anonymous in [false, true] {
                let s = store
                    .submit(NewComplaint {
                        complaint_id: None,
                        intake: intake(anonymous),
                        actor: "petugas".into(),
                    })
                    .await
                    .unwrap();
                ids.push(s.complaint_id);
            }
            let (named, anonymous) = (ids[0], ids[1]);
            let service = ComplaintsService::new(store.clone());
            let shown = |r: Response<v1::GetComplaintResponse>| r.into_inner().complaint.unwrap();

            let c = shown(service.get(get(named, None)).await.unwrap());
            assert_eq!(reporter_name(&c), None, "no certificate, no identity");
            let digest = c.digest.clone();
            for role in [CallerRole::Operator, CallerRole::Site] {
                let c = shown(service.get(get(named, Some(role))).await.unwrap());
                assert_eq!(reporter_name(&c), None, "{role}");
            }
            assert_eq!(store.verify_audit().await.unwrap().rows, 0);

            let reader = Some(CallerRole::IdentityReader);
            let c = shown(service.get(get(named, reader)).await.unwrap());
            assert_eq!(reporter_name(&c), Some("Teuku Umar"));
            assert_eq!(c.digest, digest, "redaction does not change the digest");
            let c = shown(service.get(get(anonymous, reader)).await.unwrap());
            assert_eq!(reporter_name(&c), None, "anonymous: for no one");

            let mut list = Request::new(v1::ListComplaintsRequest::default());
            list.extensions_mut().insert(Caller {
                role: CallerRole::IdentityReader,
                name: "test".into(),
            });
            let page = service.list(list).await.unwrap().into_inner().complaints;
            let names: Vec<Option<&str>> = page.iter().map(reporter_name).collect();
            assert_eq!(names.len(), 2);
            assert!(names.contains(&Some("Teuku Umar")) && names.contains(&None));
            assert_eq!(
                store.verify_audit().await.unwrap().rows,
                2,
                "one audited read per identity returned"
            );
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
