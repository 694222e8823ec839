//! A raw Replication client for the trust tests: it speaks Hello and Push
//! directly with a site's bundle (from `lapor-hub ca issue`), so a test can
//! send what a compromised or misbehaving child would — messages the real
//! push loop never builds.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::replication_client::ReplicationClient;
use lapor_shared::replication::{PROTOCOL_VERSION, codec};
use prost::Message as _;
use tonic::transport::{Channel, Endpoint};

use crate::site::{SiteProcess, bundle_tls};

/// Connects to `hub` (province `province`) over mutual TLS, presenting the
/// certificate of the bundle directory `bundle` (`ca.pem`, `cert.pem`,
/// `cert.key`).
///
/// # Errors
/// A bundle file is missing, or the connection failed.
pub async fn connect(
    hub: &SiteProcess,
    province: &str,
    bundle: &Path,
) -> anyhow::Result<ReplicationClient<Channel>> {
    let province_code = lapor_shared::domain::SiteCode::parse(province)
        .with_context(|| format!("province code {province}"))?;
    let tls = bundle_tls(
        bundle,
        "cert.pem",
        "cert.key",
        &lapor_shared::tls::site_dns_name(&province_code),
    )?;
    let channel = Endpoint::from_shared(format!("https://{}", hub.addr()))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connect to the hub at {}", hub.addr()))?;
    Ok(ReplicationClient::new(channel))
}

/// Hello as district node `site`.
///
/// # Errors
/// The hub's refusal.
pub async fn hello(
    client: &mut ReplicationClient<Channel>,
    site: &str,
) -> Result<v1::HelloResponse, tonic::Status> {
    client
        .hello(hello_request(site, PROTOCOL_VERSION))
        .await
        .map(tonic::Response::into_inner)
}

/// A district node's Hello as `site`, speaking `protocol_version`, with
/// the wall clock of now.
pub fn hello_request(site: &str, protocol_version: u32) -> v1::HelloRequest {
    v1::HelloRequest {
        protocol_version,
        site: site.to_owned(),
        role: v1::SiteRole::Node as i32,
        compressions: vec![v1::Compression::None as i32],
        wall_clock_ms: now_ms(),
        head_seq: 0,
        software: "lapor-tests raw client".to_owned(),
    }
}

/// Pushes `events` as one uncompressed batch after `after` on `session_id`
/// and returns the parent's ack.
///
/// # Errors
/// The hub refused the stream, or closed it without an ack.
pub async fn push(
    client: &mut ReplicationClient<Channel>,
    session_id: &str,
    after: u64,
    events: &[v1::Event],
) -> Result<v1::PushAck, tonic::Status> {
    let encoded: Vec<Vec<u8>> = events.iter().map(|e| e.encode_to_vec()).collect();
    let raw = codec::frame_events(encoded.iter().map(Vec::as_slice));
    let payload = codec::compress(v1::Compression::None, &raw)
        .map_err(|e| tonic::Status::internal(format!("frame the batch: {e}")))?;
    let n = events.len() as u64;
    let messages = vec![
        v1::PushMessage {
            kind: Some(v1::push_message::Kind::Open(v1::PushOpen {
                session_id: session_id.to_owned(),
            })),
        },
        v1::PushMessage {
            kind: Some(v1::push_message::Kind::Batch(v1::PushBatch {
                batch_no: 1,
                after_seq: after,
                through_seq: after + n,
                compression: v1::Compression::None as i32,
                payload,
                event_count: events.len() as u32,
                seqs: (after + 1..=after + n).collect(),
            })),
        },
    ];
    let mut acks = client
        .push(tokio_stream::iter(messages))
        .await?
        .into_inner();
    acks.message()
        .await?
        .ok_or_else(|| tonic::Status::aborted("the push stream ended without an ack"))
}

/// A comment event on `complaint_id`, written at `origin`, naming
/// `district`; `n` makes its HLC and text unique.
pub fn comment(complaint_id: &str, origin: &str, district: &str, n: u16) -> v1::Event {
    v1::Event {
        event_id: uuid::Uuid::now_v7().to_string(),
        complaint_id: complaint_id.to_owned(),
        origin_site: origin.to_owned(),
        hlc: ((now_ms().max(0) as u64) << 16) | u64::from(n),
        actor: "petugas.uji".to_owned(),
        district_code: district.to_owned(),
        body: Some(v1::EventBody {
            kind: Some(v1::event_body::Kind::Commented(v1::Commented {
                body: format!("komentar {n}"),
            })),
        }),
    }
}

/// Unix time in ms, as peers exchange it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
