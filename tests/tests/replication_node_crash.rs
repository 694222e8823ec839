//! A district node is SIGKILLed in the middle of pushing a large backlog
//! to its province hub, then restarted. It resumes from the hub's durable
//! cursor (learnt at Hello), so the hub sees at most one window of re-sent
//! events, and holds every complaint exactly once.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use lapor_node::config::NodeConfig;
use lapor_shared::domain::{Seq, SiteCode};
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::intake_server::Intake as _;
use lapor_shared::replication::client::UpstreamConfig;
use lapor_shared::replication::codec::{compress, negotiate};
use lapor_shared::rpc::intake::IntakeService;
use lapor_shared::store::{RunRequest, Store};
use lapor_tests::site::{SiteProcess, hub_child, init_hub, init_node_with_upstream, reserve_port};
use lapor_tests::{Binary, wait_until};
use rand::SeedableRng as _;

const DISTRICT: &str = "11.13";
/// Complaints waiting at the node when the link comes up: about two
/// windows' worth (see [`window_bound`]), so the kill can land after the
/// first window was acked and before the end.
const BACKLOG: u64 = 16_000;
/// ~4 KiB bodies (a transcribed letter): realistic prose compresses about
/// 4:1, so an 8 MiB window of compressed bytes is ~8,000 of these; with
/// 1 KiB bodies a window would be ~25,000 complaints and the backlog would
/// have to be 50,000+ to fill two.
const BODY_BYTES: usize = 4_000;

/// Writes `BACKLOG` sample complaints straight into the stopped node's
/// database (what `lapor-node submit --offline` does, in bulk); returns
/// their ids.
async fn preload(store: &Store) -> HashSet<String> {
    let intake = IntakeService::new(store.clone());
    // Concurrent, so the store's writer commits them in groups.
    futures::stream::iter(0..BACKLOG)
        .map(|n| {
            let intake = intake.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(n);
            let request = v1::SubmitRequest {
                complaint_id: uuid::Uuid::now_v7().to_string(),
                intake: Some(lapor_tests::sample::intake(&mut rng, DISTRICT, BODY_BYTES)),
                actor: "petugas.loket".to_owned(),
            };
            async move {
                let resp = intake.submit(tonic::Request::new(request)).await.unwrap();
                resp.into_inner().complaint_id
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// The most events the node can have sent but not yet seen acked — "one
/// window" — computed from the batches it will actually send.
///
/// The push loop cuts batches exactly as done here (`event_run` with the
/// node's event and byte limits), compresses each with the codec the hub
/// picks, and keeps sending while the compressed bytes in flight are below
/// `window_bytes`. So the in-flight batches are some run whose bytes,
/// all but the last, sum to less than the window: at most
/// `window_bytes / (fewest compressed bytes per event of any batch)`
/// events, plus one more batch. Only events in flight at the kill can be
/// re-sent after a restart that resumes from the hub's cursor (the hub
/// commits events and cursor together); a node restarting from anywhere
/// earlier would re-send everything the hub had acked.
async fn window_bound(store: &Store) -> u64 {
    let config = UpstreamConfig::new("http://unused");
    let codec = negotiate(
        &lapor_shared::replication::codec::PREFERENCE
            .iter()
            .map(|c| *c as i32)
            .collect::<Vec<_>>(),
    );
    let parent = SiteCode::parse("11").unwrap();
    let mut after = Seq(0);
    let mut fewest_bytes_per_event = f64::MAX;
    let mut largest_batch = 0usize;
    loop {
        let run = store
            .event_run(RunRequest {
                after,
                exclude_from: Some(parent.clone()),
                region: None,
                max_events: config.batch_events,
                max_bytes: config.batch_bytes,
                until: None,
            })
            .await
            .unwrap();
        if run.through <= after {
            break;
        }
        let compressed = compress(codec, &run.framed).unwrap().len();
        fewest_bytes_per_event = fewest_bytes_per_event.min(compressed as f64 / run.len() as f64);
        largest_batch = largest_batch.max(run.len());
        after = run.through;
    }
    (config.window_bytes as f64 / fewest_bytes_per_event).ceil() as u64 + largest_batch as u64
}

async fn child_field(province_config: &Path, field: &str) -> anyhow::Result<Option<u64>> {
    Ok(hub_child(province_config, DISTRICT)
        .await?
        .and_then(|c| c[field].as_u64()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sigkilled_mid_push_resumes_from_the_hub_cursor() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let province_addr = reserve_port().unwrap();
    let province_config = init_hub(dir.path(), "province", "11").await.unwrap();
    let node_config = init_node_with_upstream(
        dir.path(),
        DISTRICT,
        Some(&format!("http://{province_addr}")),
    )
    .await
    .unwrap();

    let node = lapor_node::Node::open(NodeConfig::load(&node_config).unwrap())
        .await
        .unwrap();
    let submitted = preload(node.store()).await;
    assert_eq!(submitted.len() as u64, BACKLOG);
    let bound = window_bound(node.store()).await;
    node.store().clone().close().await.unwrap();
    drop(node);
    assert!(
        bound * 3 / 2 < BACKLOG,
        "one window ({bound} events) must be well below the backlog ({BACKLOG}) for the kill to land between them"
    );
    let preloaded = started.elapsed();

    let province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    let mut node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();
    // Past one window: a node that ignored the hub's cursor and started
    // over would now re-send more than the bound allows.
    let cursor_at_kill = wait_until(
        Duration::from_secs(120),
        &format!("the province cursor for {DISTRICT} to pass {bound}"),
        || async {
            Ok(child_field(&province_config, "cursor")
                .await?
                .filter(|c| *c > bound))
        },
    )
    .await
    .unwrap();
    node.sigkill().await.unwrap();
    assert!(
        cursor_at_kill < BACKLOG,
        "the push finished before the kill ({cursor_at_kill} of {BACKLOG})"
    );

    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        &format!("cursor {BACKLOG} at the province"),
        || async {
            let cursor = child_field(&province_config, "cursor").await?;
            Ok((cursor == Some(BACKLOG)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n--- node log ---\n{}", node.log_tail()));

    let child = hub_child(&province_config, DISTRICT)
        .await
        .unwrap()
        .unwrap();
    let duplicates = child["received_duplicates"].as_u64().unwrap();
    assert!(
        duplicates <= bound,
        "{duplicates} events re-sent, more than one window ({bound}): {child}"
    );
    assert_eq!(child["received_events"], BACKLOG, "{child}");
    let listed = province.complaint_ids().await.unwrap();
    let ids: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(ids.len(), listed.len(), "a complaint is held twice");
    assert!(
        ids == submitted,
        "the province holds other ids than submitted"
    );
    assert_eq!(province.count().await.unwrap(), BACKLOG);
    eprintln!(
        "killed at cursor {cursor_at_kill} of {BACKLOG}; window bound {bound}; {duplicates} re-sent; \
         preload {preloaded:?}, total {:?}",
        started.elapsed()
    );
}
