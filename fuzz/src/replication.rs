//! `Replication` requests: `HelloRequest`, `PushMessage` (with the batch
//! payload it carries) and `PullRequest` (with the `PullBatch` a child reads
//! back).
//!
//! Hello goes to the real `ReplicationService` handler of a province hub,
//! a fresh service per input so sessions do not pile up; the expected
//! outcome is restated from the public rules the handler applies
//! (`SiteCode::parse`, `regions::is_known_site`, `scope::check_child`).
//! Push and Pull need a gRPC stream, so their per-message work is run from
//! the public pieces the stream readers are built from — the server's
//! `PushReader::prepare` and the child's `pull::apply_pull_batch` are
//! private: the batch limits, `codec::decode_batch` under every compression
//! and `convert::event_from_proto` plus `scope::check_event` on each event.

use lapor_shared::domain::{Event, SiteCode, SiteRole};
use lapor_shared::proto::convert::event_from_proto;
use lapor_shared::proto::v1::{
    self, event_body::Kind, push_message, replication_server::Replication as _,
};
use lapor_shared::regions;
use lapor_shared::replication::server::{ReplicationService, ServerLimits};
use lapor_shared::replication::{PROTOCOL_VERSION, codec, scope};
use lapor_shared::tls::link::InsecureLoopback;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Code, Request};

use crate::fixture::{block_on, site, store};
use crate::invariants::{Secrets, assert_event_round_trips, assert_refusal};

/// The hub the targets talk to: Aceh's province hub.
const PARENT: &str = "11";

fn service() -> ReplicationService {
    ReplicationService::new(
        store(PARENT, |_| {}),
        ServerLimits::default(),
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

/// `HelloRequest` → `Replication.Hello` at a province hub.
pub fn hello(data: &[u8]) {
    let Ok(req) = v1::HelloRequest::decode(data) else {
        return;
    };
    let child = SiteCode::parse(&req.site).ok();
    if let Some(child) = &child {
        check_site_code(&req.site, child);
    }
    check_negotiation(&req.compressions);
    let parent = site(PARENT);
    let expected = if req.protocol_version != PROTOCOL_VERSION {
        Err(Code::FailedPrecondition)
    } else {
        match child {
            None => Err(Code::InvalidArgument),
            Some(child) if !regions::is_known_site(&child) => Err(Code::PermissionDenied),
            Some(child) if scope::check_child(&parent, &child).is_err() => {
                Err(Code::PermissionDenied)
            }
            Some(child) if req.role != role_of(&child) as i32 => Err(Code::InvalidArgument),
            Some(_) => Ok(()),
        }
    };
    // The handler as a plain-text loopback site server runs it (the Hello's
    // site is taken as is); the certificate rules are unit-tested in
    // `replication::server`.
    let mut request = Request::new(req.clone());
    request.extensions_mut().insert(InsecureLoopback);
    let answer = block_on(service().hello(request));
    match (answer, expected) {
        (Ok(response), Ok(())) => {
            let r = response.into_inner();
            assert_eq!(r.protocol_version, PROTOCOL_VERSION);
            assert_eq!(r.site, PARENT);
            assert_eq!(r.role, v1::SiteRole::Province as i32);
            assert_eq!(r.compression, codec::negotiate(&req.compressions) as i32);
            assert!(uuid::Uuid::parse_str(&r.session_id).is_ok());
        }
        (Ok(_), Err(code)) => panic!("Hello accepted what should be {code:?}: {req:?}"),
        (Err(status), expected) => assert_eq!(
            Err(status.code()),
            expected,
            "Hello answered {status:?} to {req:?}"
        ),
    }
}

fn role_of(site: &SiteCode) -> v1::SiteRole {
    match site.role() {
        SiteRole::Node => v1::SiteRole::Node,
        SiteRole::Province => v1::SiteRole::Province,
        SiteRole::National => v1::SiteRole::National,
    }
}

/// A parsed site code is the text it was parsed from, names its tier by its
/// shape, and covers itself.
fn check_site_code(text: &str, site: &SiteCode) {
    assert_eq!(site.as_str(), text);
    assert_eq!(SiteCode::parse(site.as_str()).as_ref(), Ok(site));
    let role = site.role();
    assert_eq!(role == SiteRole::National, text == "00");
    assert_eq!(role == SiteRole::Node, text.contains('.'));
    assert_eq!(site.province().is_none(), role == SiteRole::National);
    if let Some(province) = site.province() {
        assert!(text.starts_with(province));
    }
    assert!(site.covers(site));
    if regions::is_known_site(site) && role == SiteRole::Node {
        assert!(regions::district(text).is_some());
    }
}

/// The parent picks a compression the child offered, its first preference.
fn check_negotiation(offered: &[i32]) {
    let chosen = codec::negotiate(offered);
    if chosen != v1::Compression::None {
        assert!(offered.contains(&(chosen as i32)));
    }
    let preferred = codec::PREFERENCE
        .into_iter()
        .find(|c| offered.contains(&(*c as i32)));
    assert_eq!(chosen, preferred.unwrap_or(v1::Compression::None));
}

/// `PushMessage` as a hub's push reader takes it; the bytes are also read as
/// a bare batch payload, so the fuzzer reaches the event decoding directly.
pub fn push_batch(data: &[u8]) {
    if let Ok(msg) = v1::PushMessage::decode(data) {
        match msg.kind {
            Some(push_message::Kind::Batch(batch)) => pushed(batch),
            // The stream's first message; its session is looked up in a map.
            Some(push_message::Kind::Open(_)) | None => {}
        }
    }
    for compression in 0..=3 {
        check_payload(compression, data, &site("11.13"));
    }
}

/// `PushReader::prepare`: the limits refuse the stream, a payload that does
/// not decode ends it, each event is validated and authorized alone.
fn pushed(batch: v1::PushBatch) {
    let limits = ServerLimits::default();
    if batch.payload.len() > limits.max_batch_bytes as usize
        || batch.event_count > limits.max_batch_events
        || batch.through_seq < batch.after_seq
    {
        return;
    }
    // The child is a node of the hub's province; each of its events is
    // judged against it as the hub would.
    let child = site("11.13");
    check_payload(batch.compression, &batch.payload, &child);
    for other in 0..=3 {
        if other != batch.compression {
            check_payload(other, &batch.payload, &child);
        }
    }
}

/// Decodes a batch payload and judges every event in it, as both the hub
/// (push) and the child (pull) do.
fn check_payload(compression: i32, payload: &[u8], child: &SiteCode) {
    let decoded = match codec::decode_batch(compression, payload) {
        Ok(decoded) => decoded,
        Err(codec::CodecError::Unsupported(n)) => {
            assert!(
                v1::Compression::try_from(n).is_err(),
                "compression {n} is known"
            );
            return;
        }
        Err(_) => return,
    };
    if let Ok(known) = v1::Compression::try_from(compression) {
        check_recompression(known, &decoded);
    }
    for proto in decoded.events {
        let created = match proto.body.as_ref().and_then(|b| b.kind.as_ref()) {
            Some(Kind::Created(c)) => c.intake.clone(),
            _ => None,
        };
        match event_from_proto(proto) {
            Ok(event) => {
                assert_event_round_trips(&event);
                check_scope(child, &event);
            }
            Err(v) => assert_refusal(v, &Secrets::of_intake(created.as_ref())),
        }
    }
}

/// Whatever decodes, re-encoded and compressed again, decodes to itself.
fn check_recompression(compression: v1::Compression, batch: &v1::EventBatch) {
    let raw = batch.encode_to_vec();
    if raw.len() > codec::MAX_INFLATED_BYTES {
        return;
    }
    let again = codec::compress(compression, &raw)
        .and_then(|payload| codec::decode_batch(compression as i32, &payload));
    match again {
        Ok(again) => assert_eq!(&again, batch, "a batch changed through {compression:?}"),
        Err(e) => panic!("a batch that decoded does not survive {compression:?}: {e}"),
    }
}

/// The push scope rule for a node and for a province sending upward.
fn check_scope(node: &SiteCode, event: &Event) {
    let sent_by_node = scope::check_event(node, event).is_ok();
    assert_eq!(
        sent_by_node,
        event.district == *node && event.origin == *node,
        "scope of {node} for an event of {} written at {}",
        event.district,
        event.origin
    );
    let province = site(PARENT);
    if scope::check_event(&province, event).is_ok() {
        assert!(province.covers(&event.district));
        assert!(event.origin == province || province.covers(&event.origin));
        assert_ne!(event.origin.role(), SiteRole::National);
    }
}

/// `PullRequest` → `Replication.Pull` (no session was opened, so it must be
/// refused); the bytes are also read as the `PullBatch` a child receives.
pub fn pull_request(data: &[u8]) {
    if let Ok(req) = v1::PullRequest::decode(data) {
        check_negotiation(&req.compressions);
        match block_on(service().pull(Request::new(req))) {
            Ok(_) => panic!("Pull streamed to a session that was never opened"),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    if let Ok(batch) = v1::PullBatch::decode(data) {
        pulled(batch);
    }
}

/// `pull::apply_pull_batch` at the node 11.13: a batch with no events only
/// carries receipts; otherwise every event is validated and must be of the
/// node's district.
fn pulled(batch: v1::PullBatch) {
    if batch.event_count == 0 && batch.through_seq == batch.after_seq {
        return;
    }
    check_payload(batch.compression, &batch.payload, &site("11.13"));
}
