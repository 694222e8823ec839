//! In-process Intake and Complaints round trips: `lapor_node::run` on a
//! listener bound to `127.0.0.1:0`, a fresh database in a `TempDir`, and the
//! generated gRPC clients.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use lapor_node::config::{NodeConfig, render_template};
use lapor_shared::domain::SiteCode;
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::complaints_client::ComplaintsClient;
use lapor_shared::proto::v1::get_complaint_request::Key;
use lapor_shared::proto::v1::intake_client::IntakeClient;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

/// A node served in-process; cancel and join with [`TestNode::stop`].
struct TestNode {
    _dir: TempDir,
    token: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    intake: IntakeClient<Channel>,
    complaints: ComplaintsClient<Channel>,
    addr: SocketAddr,
}

fn node_config(dir: &Path, site: &str) -> NodeConfig {
    let site = SiteCode::parse(site).unwrap();
    let text =
        render_template(&site, &dir.join("node.db"), "127.0.0.1:0".parse().unwrap()).unwrap();
    NodeConfig::parse(&text).unwrap()
}

async fn start_node() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path(), "11.13");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(lapor_node::run(config, listener, token.clone()));
    // No sleep: the listener is bound, so connecting succeeds at once and
    // the first call waits for the server to start serving.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestNode {
        _dir: dir,
        token,
        server,
        intake: IntakeClient::new(channel.clone()),
        complaints: ComplaintsClient::new(channel),
        addr,
    }
}

impl TestNode {
    async fn stop(self) {
        self.token.cancel();
        self.server.await.unwrap().unwrap();
    }

    async fn count(&mut self, filter: v1::ComplaintFilter) -> u64 {
        let req = v1::CountComplaintsRequest {
            filter: Some(filter),
        };
        self.complaints.count(req).await.unwrap().into_inner().count
    }

    async fn submit(&mut self, n: u64) -> v1::SubmitResponse {
        let id = uuid::Uuid::now_v7().to_string();
        self.intake
            .submit(lapor_tests::submit_request("11.13", n, &id))
            .await
            .unwrap()
            .into_inner()
    }

    async fn get(&mut self, key: Key) -> Result<v1::Complaint, tonic::Status> {
        let resp = self
            .complaints
            .get(v1::GetComplaintRequest { key: Some(key) })
            .await?;
        Ok(resp
            .into_inner()
            .complaint
            .expect("Get returns a complaint"))
    }
}

fn all() -> v1::ComplaintFilter {
    v1::ComplaintFilter::default()
}

fn bad_request_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    bad.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

#[tokio::test]
async fn submit_then_get_list_and_count() {
    let mut node = start_node().await;
    let mut submitted = Vec::new();
    for n in 0..3 {
        let resp = node.submit(n).await;
        assert!(!resp.duplicate);
        assert!(
            resp.tracking_number.starts_with("1113-"),
            "{}",
            resp.tracking_number
        );
        submitted.push(resp);
    }

    let first = &submitted[0];
    let by_id = node
        .get(Key::ComplaintId(first.complaint_id.clone()))
        .await
        .unwrap();
    let by_tracking = node
        .get(Key::TrackingNumber(first.tracking_number.clone()))
        .await
        .unwrap();
    assert_eq!(by_id, by_tracking);
    assert_eq!(by_id.complaint_id, first.complaint_id);
    assert_eq!(by_id.tracking_number, first.tracking_number);
    assert_eq!(by_id.district_code, "11.13");
    assert_eq!(by_id.origin_site, "11.13");
    assert_eq!(by_id.status, v1::Status::BelumTerverifikasi as i32);
    assert_eq!(by_id.event_count, 1);
    let intake = by_id.intake.as_ref().unwrap();
    let sent = lapor_tests::submit_request("11.13", 0, "").intake.unwrap();
    assert_eq!(intake.title, sent.title);
    assert_eq!(intake.body, sent.body);

    let listed = node
        .complaints
        .list(v1::ListComplaintsRequest {
            filter: Some(all()),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let listed_ids: HashSet<_> = listed
        .complaints
        .iter()
        .map(|c| c.complaint_id.clone())
        .collect();
    let submitted_ids: HashSet<_> = submitted.iter().map(|s| s.complaint_id.clone()).collect();
    assert_eq!(listed_ids, submitted_ids);
    assert!(listed.next_page_token.is_empty());

    assert_eq!(node.count(all()).await, 3);
    let district = |code: &str| v1::ComplaintFilter {
        region_code: code.into(),
        ..all()
    };
    assert_eq!(node.count(district("11.13")).await, 3);
    assert_eq!(node.count(district("11")).await, 3);
    assert_eq!(node.count(district("11.04")).await, 0);
    let by_status = |s: v1::Status| v1::ComplaintFilter {
        statuses: vec![s as i32],
        ..all()
    };
    assert_eq!(
        node.count(by_status(v1::Status::BelumTerverifikasi)).await,
        3
    );
    assert_eq!(node.count(by_status(v1::Status::Selesai)).await, 0);
    node.stop().await;
}

#[tokio::test]
async fn list_pages_cover_every_complaint_once() {
    let mut node = start_node().await;
    for n in 0..7 {
        node.submit(n).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let req = v1::ListComplaintsRequest {
            filter: Some(all()),
            page_size: 3,
            page_token: token,
        };
        let page = node.complaints.list(req).await.unwrap().into_inner();
        assert!(page.complaints.len() <= 3);
        seen.extend(page.complaints.into_iter().map(|c| c.complaint_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 7);
    assert_eq!(unique.len(), 7);
    node.stop().await;
}

#[tokio::test]
async fn a_retried_submit_is_a_duplicate_with_the_same_tracking_number() {
    let mut node = start_node().await;
    let id = uuid::Uuid::now_v7().to_string();
    let first = node
        .intake
        .submit(lapor_tests::submit_request("11.13", 1, &id))
        .await
        .unwrap()
        .into_inner();
    let again = node
        .intake
        .submit(lapor_tests::submit_request("11.13", 1, &id))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.complaint_id, first.complaint_id);
    assert_eq!(again.tracking_number, first.tracking_number);
    assert_eq!(node.count(all()).await, 1);
    node.stop().await;
}

#[tokio::test]
async fn invalid_submissions_get_field_details_and_write_nothing() {
    let mut node = start_node().await;
    node.submit(0).await;
    let valid = || lapor_tests::submit_request("11.13", 3, &uuid::Uuid::now_v7().to_string());

    let mut no_intake = valid();
    no_intake.intake = None;
    let mut bad_nik = valid();
    let intake = bad_nik.intake.as_mut().unwrap();
    intake.privacy = Some(v1::Privacy {
        is_anonymous: false,
        is_secret: false,
    });
    intake.reporter = Some(v1::ReporterIdentity {
        name: "Siti Rahmah".into(),
        nik: "1113017207900001".into(), // day of birth 72: neither 01-31 nor 41-71
        ..Default::default()
    });
    let mut unknown_region = valid();
    unknown_region
        .intake
        .as_mut()
        .unwrap()
        .location
        .as_mut()
        .unwrap()
        .region_code = "11.99".into();
    let mut empty_title = valid();
    empty_title.intake.as_mut().unwrap().title = String::new();
    let mut bad_id = valid();
    bad_id.complaint_id = "not-a-uuid".into();
    let mut no_classification = valid();
    no_classification.intake.as_mut().unwrap().classification =
        v1::Classification::Unspecified as i32;

    for (name, request, field) in [
        ("no intake", no_intake, "intake"),
        ("NIK day 72", bad_nik, "nik"),
        ("unknown region", unknown_region, "region_code"),
        ("empty title", empty_title, "title"),
        ("bad complaint id", bad_id, "complaint_id"),
        ("no classification", no_classification, "classification"),
    ] {
        let status = node.intake.submit(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        let fields = bad_request_fields(&status);
        assert!(
            fields.iter().any(|f| f.ends_with(field)),
            "{name}: fields {fields:?} lack {field}"
        );
    }
    assert_eq!(
        node.count(all()).await,
        1,
        "a refused submission wrote something"
    );
    node.stop().await;
}

#[tokio::test]
async fn lifecycle_events_move_the_status_and_bad_ones_are_refused() {
    let mut node = start_node().await;
    let created = node.submit(2).await;
    let verify = v1::AddEventRequest {
        event_id: uuid::Uuid::now_v7().to_string(),
        complaint_id: created.complaint_id.clone(),
        actor: "verifikator".into(),
        body: Some(v1::EventBody {
            kind: Some(v1::event_body::Kind::Verified(v1::Verified {
                note: "lengkap".into(),
                privacy: None,
            })),
        }),
    };
    let added = node
        .intake
        .add_event(verify.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!added.duplicate);
    assert_eq!(
        added.complaint.unwrap().status,
        v1::Status::Terverifikasi as i32
    );
    let retried = node
        .intake
        .add_event(verify.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(retried.duplicate);
    assert_eq!(retried.event_id, added.event_id);

    let mut created_again = verify.clone();
    created_again.event_id = uuid::Uuid::now_v7().to_string();
    created_again.body = Some(v1::EventBody {
        kind: Some(v1::event_body::Kind::Created(v1::Created {
            tracking_number: created.tracking_number.clone(),
            intake: lapor_tests::submit_request("11.13", 2, "").intake,
        })),
    });
    let status = node.intake.add_event(created_again).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let mut unknown = verify.clone();
    unknown.event_id = uuid::Uuid::now_v7().to_string();
    unknown.complaint_id = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        node.intake.add_event(unknown).await.unwrap_err().code(),
        Code::NotFound
    );

    let got = node
        .get(Key::ComplaintId(created.complaint_id.clone()))
        .await
        .unwrap();
    assert_eq!(got.status, v1::Status::Terverifikasi as i32);
    assert_eq!(got.event_count, 2);
    node.stop().await;
}

#[tokio::test]
async fn unknown_complaints_are_not_found_and_bad_keys_invalid() {
    let mut node = start_node().await;
    let missing = node
        .get(Key::TrackingNumber("1113-XXX-000001".into()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = node.get(Key::ComplaintId("42".into())).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_request_fields(&bad), ["complaint_id"]);
    node.stop().await;
}

#[tokio::test]
async fn health_reports_serving_for_intake_and_complaints() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let node = start_node().await;
    let channel = Channel::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["lapor.sync.v1.Intake", "lapor.sync.v1.Complaints"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service}");
    }
    node.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_served_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let node = start_node().await;
    let channel = Channel::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected reflection answer {first:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "lapor.sync.v1.Intake",
        "lapor.sync.v1.Complaints",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service} not in {names:?}");
    }
    node.stop().await;
}
