//! node -> province -> national with the real binaries. The province hub
//! is SIGKILLed while 5,000 complaints are being submitted at the node and
//! pushed through it, then restarted on the same data and address. Every
//! complaint the node acknowledged reaches national exactly once: the hub
//! acks only what is durable with its cursor, and both links resume from
//! the parent's cursor.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use lapor_tests::site::{
    SiteProcess, init_hub, init_hub_with_upstream, init_node_with_upstream, reserve_port,
    status_json,
};
use lapor_tests::{Binary, wait_until};

const SUBMISSIONS: u64 = 5_000;
const IN_FLIGHT: usize = 64;
/// The kill lands once the province holds this many: replication is under
/// way, and most submissions are still to come.
const KILL_AT_PROVINCE: u64 = 200;
const DISTRICT: &str = "11.13";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn province_hub_sigkilled_during_5000_submissions_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let national_config = init_hub(dir.path(), "national", "00").await.unwrap();
    let national = SiteProcess::start(Binary::Hub, &national_config)
        .await
        .unwrap();
    // A fixed address, so the restarted hub is where the node looks.
    let province_addr = reserve_port().unwrap();
    let province_config =
        init_hub_with_upstream(dir.path(), "province", "11", Some(&national.endpoint()))
            .await
            .unwrap();
    let mut province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    let node_config = init_node_with_upstream(dir.path(), DISTRICT, Some(&province.endpoint()))
        .await
        .unwrap();
    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();

    // Client-minted ids, so what was acknowledged is known by id.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = node.intake().await.unwrap();
    let submitter = tokio::spawn({
        let acked = acked.clone();
        async move {
            futures::stream::iter(0..SUBMISSIONS)
                .map(|n| {
                    let mut client = client.clone();
                    let id = uuid::Uuid::now_v7().to_string();
                    let request = lapor_tests::submit_request(DISTRICT, n, &id);
                    async move { client.submit(request).await }
                })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|result| {
                    // The node stays up: every submission must succeed.
                    let resp = result
                        .expect("the node answers every submission")
                        .into_inner();
                    acked.lock().unwrap().insert(resp.complaint_id);
                    async {}
                })
                .await;
        }
    });

    wait_until(
        Duration::from_secs(60),
        &format!("{KILL_AT_PROVINCE} complaints at the province"),
        || async { Ok((province.count().await? >= KILL_AT_PROVINCE).then_some(())) },
    )
    .await
    .unwrap();
    province.sigkill().await.unwrap();
    let acked_at_kill = acked.lock().unwrap().len() as u64;
    assert!(
        acked_at_kill < SUBMISSIONS,
        "all {SUBMISSIONS} were acknowledged before the kill; nothing was in flight"
    );

    // Straight after the crash: the hub's database opens and is sound.
    let crashed = status_json(Binary::Hub, &province_config).await.unwrap();
    assert_eq!(crashed["integrity"], serde_json::json!(["ok"]), "{crashed}");

    let province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), submitter)
        .await
        .expect("the submissions finish")
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, SUBMISSIONS);

    wait_until(
        Duration::from_secs(120),
        &format!("{SUBMISSIONS} complaints at national"),
        || async { Ok((national.count().await? >= SUBMISSIONS).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n--- province log ---\n{}\n--- node log ---\n{}",
            province.log_tail(),
            node.log_tail()
        )
    });

    for (tier, site) in [("national", &national), ("province", &province)] {
        let listed = site.complaint_ids().await.unwrap();
        let ids: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            ids.len(),
            listed.len(),
            "a complaint is held twice at {tier}"
        );
        assert_eq!(site.count().await.unwrap(), SUBMISSIONS, "{tier}");
        assert!(
            ids == acked,
            "{tier} holds other ids than the node acknowledged"
        );
    }
    eprintln!(
        "province killed after {acked_at_kill} of {SUBMISSIONS} acknowledged; test took {:?}",
        started.elapsed()
    );
}
