//! A misbehaving child, played by the generated Replication client against
//! a real province hub (Aceh, 11): each refusal has a precise status, what
//! was committed before it stays committed, and a bad record is quarantined
//! without holding up the records around it.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use lapor_shared::proto::v1;
use lapor_shared::proto::v1::get_complaint_request::Key;
use lapor_shared::proto::v1::replication_client::ReplicationClient;
use lapor_shared::replication::PROTOCOL_VERSION;
use lapor_shared::replication::codec::{compress, frame_events};
use lapor_shared::replication::server::ServerLimits;
use lapor_tests::Binary;
use lapor_tests::raw::{hello_request, now_ms};
use lapor_tests::site::{SiteProcess, hub_child, init_hub, run_command};
use prost::Message as _;
use rand::SeedableRng as _;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

/// The child this test plays: Gayo Lues, a district of Aceh.
const CHILD: &str = "11.13";

struct Province {
    _dir: TempDir,
    config: PathBuf,
    hub: SiteProcess,
}

async fn start_province() -> Province {
    let dir = tempfile::tempdir().unwrap();
    let config = init_hub(dir.path(), "province", "11").await.unwrap();
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
    Province {
        _dir: dir,
        config,
        hub,
    }
}

impl Province {
    async fn replication(&self) -> ReplicationClient<Channel> {
        // Room for the oversized batch: the test must reach the hub's own
        // check, not stop at the client's.
        ReplicationClient::new(self.hub.channel().await.unwrap())
            .max_encoding_message_size(16 * 1024 * 1024)
    }

    async fn get(&self, complaint_id: &str) -> Result<v1::Complaint, tonic::Status> {
        let mut complaints = self.hub.complaints().await.unwrap();
        let resp = complaints
            .get(v1::GetComplaintRequest {
                key: Some(Key::ComplaintId(complaint_id.to_owned())),
            })
            .await?;
        Ok(resp
            .into_inner()
            .complaint
            .expect("Get returns a complaint"))
    }

    /// The hub's durable cursor for [`CHILD`], from `lapor-hub nodes`.
    async fn cursor(&self) -> u64 {
        let child = hub_child(&self.config, CHILD).await.unwrap();
        let child = child.unwrap_or_else(|| panic!("{CHILD} missing from `nodes`"));
        child["cursor"].as_u64().unwrap()
    }
}

/// A Created event for a new complaint of `district`, written at [`CHILD`]
/// (the origin a node may send), as a node would have stored it.
fn created(district: &str, n: u64) -> v1::Event {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n);
    let intake = lapor_tests::sample::intake(&mut rng, district, 600);
    let district_digits = district.replace('.', "");
    v1::Event {
        event_id: uuid::Uuid::now_v7().to_string(),
        complaint_id: uuid::Uuid::now_v7().to_string(),
        origin_site: CHILD.to_owned(),
        // HLC: Unix ms in the high 48 bits, logical counter below.
        hlc: ((now_ms() as u64) << 16) + n,
        actor: "petugas.loket".to_owned(),
        district_code: district.to_owned(),
        body: Some(v1::EventBody {
            kind: Some(v1::event_body::Kind::Created(v1::Created {
                tracking_number: format!("{district_digits}-TST-{n:06}"),
                intake: Some(intake),
            })),
        }),
    }
}

/// A batch carrying `events` as the child's seqs `after+1 ..= after+len`.
fn batch(batch_no: u64, after: u64, events: &[v1::Event]) -> v1::PushMessage {
    let encoded: Vec<Vec<u8>> = events.iter().map(|e| e.encode_to_vec()).collect();
    let raw = frame_events(encoded.iter().map(Vec::as_slice));
    let through = after + events.len() as u64;
    v1::PushMessage {
        kind: Some(v1::push_message::Kind::Batch(v1::PushBatch {
            batch_no,
            after_seq: after,
            through_seq: through,
            compression: v1::Compression::Zstd as i32,
            payload: compress(v1::Compression::Zstd, &raw).unwrap(),
            event_count: events.len() as u32,
            seqs: (after + 1..=through).collect(),
        })),
    }
}

/// An open Push stream: messages go in through `tx`, acks come out.
struct PushStream {
    tx: mpsc::Sender<v1::PushMessage>,
    acks: tonic::Streaming<v1::PushAck>,
}

/// Hello as [`CHILD`], then open a Push stream on the session.
async fn open_push(client: &mut ReplicationClient<Channel>) -> (v1::HelloResponse, PushStream) {
    let hello = client
        .hello(hello_request(CHILD, PROTOCOL_VERSION))
        .await
        .unwrap()
        .into_inner();
    let (tx, rx) = mpsc::channel(8);
    // The hub answers the Push call once it has read PushOpen, so it goes
    // in before the call.
    let open = v1::PushMessage {
        kind: Some(v1::push_message::Kind::Open(v1::PushOpen {
            session_id: hello.session_id.clone(),
        })),
    };
    tx.send(open).await.unwrap();
    let acks = client
        .push(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (hello, PushStream { tx, acks })
}

impl PushStream {
    async fn send(&self, msg: v1::PushMessage) {
        self.tx.send(msg).await.unwrap();
    }

    async fn ack(&mut self) -> v1::PushAck {
        self.acks
            .message()
            .await
            .unwrap()
            .expect("the hub acks before it closes the stream")
    }
}

#[tokio::test]
async fn an_unknown_protocol_version_is_refused_naming_the_supported_one() {
    let province = start_province().await;
    let mut client = province.replication().await;
    let err = client.hello(hello_request(CHILD, 99)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let message = err.message();
    assert!(
        message.contains("99") && message.contains(&format!("version {PROTOCOL_VERSION}")),
        "the refusal names both versions: {message}"
    );
}

#[tokio::test]
async fn a_district_of_another_province_is_permission_denied() {
    let province = start_province().await;
    let mut client = province.replication().await;
    // Kota Medan (Sumatera Utara) dialling Aceh's hub.
    let err = client
        .hello(hello_request("12.71", PROTOCOL_VERSION))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("12.71"), "{}", err.message());
    assert!(
        hub_child(&province.config, "12.71")
            .await
            .unwrap()
            .is_none(),
        "a refused site is not listed as a child"
    );
}

#[tokio::test]
async fn an_oversized_batch_is_refused_and_the_batch_before_it_stays_committed() {
    let province = start_province().await;
    let limit = ServerLimits::default().max_batch_bytes as usize;
    let mut client = province.replication().await;
    let (hello, mut push) = open_push(&mut client).await;
    assert_eq!(hello.push_cursor, 0);
    assert_eq!(hello.max_batch_bytes as usize, limit);

    let first = [created(CHILD, 1), created(CHILD, 2)];
    push.send(batch(1, 0, &first)).await;
    let ack = push.ack().await;
    assert_eq!((ack.batch_no, ack.through_seq, ack.accepted), (1, 2, 2));

    // One byte over the limit; its content never matters, the size is
    // checked first.
    let oversized = v1::PushMessage {
        kind: Some(v1::push_message::Kind::Batch(v1::PushBatch {
            batch_no: 2,
            after_seq: 2,
            through_seq: 3,
            compression: v1::Compression::None as i32,
            payload: vec![0x0a; limit + 1],
            event_count: 1,
            seqs: vec![3],
        })),
    };
    push.send(oversized).await;
    let err = push.acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains(&(limit + 1).to_string())
            && err.message().contains(&limit.to_string()),
        "the refusal names the size and the limit: {}",
        err.message()
    );

    // Batch 1 is durable and the cursor covers it: a new session resumes
    // after it.
    assert_eq!(province.cursor().await, 2);
    let again = client
        .hello(hello_request(CHILD, PROTOCOL_VERSION))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.push_cursor, 2);
    for event in &first {
        let got = province.get(&event.complaint_id).await.unwrap();
        assert_eq!(got.complaint_id, event.complaint_id);
    }
}

#[tokio::test]
async fn an_event_of_another_province_is_quarantined_and_the_records_around_it_flow() {
    let province = start_province().await;
    let mut client = province.replication().await;
    let (_, mut push) = open_push(&mut client).await;

    let before = created(CHILD, 1);
    let foreign = created("12.71", 2);
    let after = created(CHILD, 3);
    push.send(batch(
        1,
        0,
        &[before.clone(), foreign.clone(), after.clone()],
    ))
    .await;
    let ack = push.ack().await;
    assert_eq!(ack.through_seq, 3, "{ack:?}");
    assert_eq!((ack.accepted, ack.quarantined), (2, 1), "{ack:?}");
    assert_eq!(ack.rejections.len(), 1, "{ack:?}");
    let rejection = &ack.rejections[0];
    assert_eq!(rejection.event_id, foreign.event_id);
    assert_eq!(
        rejection.code,
        Code::PermissionDenied as i32,
        "{rejection:?}"
    );
    assert!(rejection.reason.contains("12.71"), "{rejection:?}");

    // The stream is still good: the next batch flows.
    let next = created(CHILD, 4);
    push.send(batch(2, 3, std::slice::from_ref(&next))).await;
    let ack = push.ack().await;
    assert_eq!((ack.through_seq, ack.accepted, ack.quarantined), (4, 1, 0));

    for event in [&before, &after, &next] {
        province.get(&event.complaint_id).await.unwrap();
    }
    let err = province.get(&foreign.complaint_id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let out = run_command(
        Binary::Hub,
        &province.config,
        &["quarantine", "list", "--json"],
    )
    .await
    .unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["event_id"], foreign.event_id.as_str(), "{out}");
    assert_eq!(listed[0]["from"], CHILD, "{out}");
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("12.71"),
        "{out}"
    );
    let child = hub_child(&province.config, CHILD).await.unwrap().unwrap();
    assert_eq!(child["quarantined"], 1, "{child}");
    assert_eq!(child["cursor"], 4, "{child}");
}
