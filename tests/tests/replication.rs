//! Replication end to end with the real binaries: a district node pushes to
//! its province hub, which forwards to national. Complaints submitted while
//! the province hub is down — before it ever ran, and again after it was
//! stopped — all reach national, and every tier holds the same ids, none
//! twice. Intake never waits on the link, and `status --json` shows the
//! queue and the link error while the hub is away.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use lapor_shared::proto::v1::intake_client::IntakeClient;
use lapor_tests::site::{
    SiteProcess, init_hub, init_hub_with_upstream, init_node_with_upstream, reserve_port,
    status_json,
};
use lapor_tests::{Binary, wait_until};
use tonic::transport::Channel;

const DISTRICT: &str = "11.13";
/// Complaints taken in before the province hub ever ran.
const BEFORE_FIRST_START: u64 = 120;
/// Complaints taken in while the province hub is stopped again.
const WHILE_STOPPED: u64 = 60;
/// One Submit answered from the node's own disk takes milliseconds; a node
/// waiting on the dead link would sit in the 10 s connect timeout or hang.
const SUBMIT_DEADLINE: Duration = Duration::from_secs(5);
/// Generous: after the hub comes back the node's reconnect waits a jittered
/// backoff (its ceiling grows while the hub is away), then the push itself
/// takes well under a second.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(90);
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// Submits samples `from..to` at the node, each within [`SUBMIT_DEADLINE`];
/// returns their complaint ids.
async fn submit_range(intake: &mut IntakeClient<Channel>, from: u64, to: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for n in from..to {
        let id = uuid::Uuid::now_v7().to_string();
        let request = lapor_tests::submit_request(DISTRICT, n, &id);
        let resp = tokio::time::timeout(SUBMIT_DEADLINE, intake.submit(request))
            .await
            .unwrap_or_else(|_| panic!("submit {n} waited more than {SUBMIT_DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("submit {n} refused: {e:?}"))
            .into_inner();
        assert!(!resp.duplicate);
        ids.push(resp.complaint_id);
    }
    ids
}

/// The node's `upstream` object once it matches `queued` un-acked events
/// and carries a last error.
async fn wait_for_queue_and_error(config: &Path, queued: u64) -> serde_json::Value {
    wait_until(
        Duration::from_secs(30),
        &format!("node status to show {queued} queued and a last_error"),
        || async {
            let status = status_json(Binary::Node, config).await?;
            let upstream = status["upstream"].clone();
            let ready = upstream["queued_events"] == queued && upstream["last_error"].is_string();
            Ok(ready.then_some(upstream))
        },
    )
    .await
    .unwrap()
}

/// The node's `upstream` object once nothing is queued: national holding
/// everything means the acks were sent, and the node records each one a
/// moment after it arrives.
async fn wait_until_drained(config: &Path) -> serde_json::Value {
    wait_until(
        Duration::from_secs(30),
        "node status to show an empty queue",
        || async {
            let upstream = status_json(Binary::Node, config).await?["upstream"].clone();
            Ok((upstream["queued_events"] == 0).then_some(upstream))
        },
    )
    .await
    .unwrap()
}

/// The ids a site lists, checked to be distinct.
async fn distinct_ids(site: &SiteProcess, tier: &str) -> HashSet<String> {
    let listed = site.complaint_ids().await.unwrap();
    let ids: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        ids.len(),
        listed.len(),
        "a complaint is listed twice at {tier}"
    );
    assert_eq!(site.count().await.unwrap(), listed.len() as u64, "{tier}");
    ids
}

async fn wait_for_count(site: &SiteProcess, tier: &str, want: u64) {
    wait_until(
        DELIVERY_DEADLINE,
        &format!("{want} complaints at {tier}"),
        || async { Ok((site.count().await? == want).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n--- {tier} log ---\n{}", site.log_tail()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_submitted_while_the_hub_is_down_all_reach_national() {
    let dir = tempfile::tempdir().unwrap();
    let national_config = init_hub(dir.path(), "national", "00").await.unwrap();
    let national = SiteProcess::start(Binary::Hub, &national_config)
        .await
        .unwrap();
    // The province's address is fixed now and the hub started later, so
    // the node's config names a hub that does not exist yet.
    let province_addr = reserve_port().unwrap();
    let province_config =
        init_hub_with_upstream(dir.path(), "province", "11", Some(&national.endpoint()))
            .await
            .unwrap();
    let node_config = init_node_with_upstream(
        dir.path(),
        DISTRICT,
        Some(&format!("http://{province_addr}")),
    )
    .await
    .unwrap();
    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();
    let mut intake = node.intake().await.unwrap();

    let mut submitted = submit_range(&mut intake, 0, BEFORE_FIRST_START).await;
    assert_eq!(node.count().await.unwrap(), BEFORE_FIRST_START);

    let mut province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    wait_for_count(&national, "national", BEFORE_FIRST_START).await;
    let upstream = wait_until_drained(&node_config).await;
    assert_eq!(upstream["parent"], "11", "{upstream}");
    assert_eq!(upstream["acked_seq"], BEFORE_FIRST_START, "{upstream}");

    // Down again, now that the node knows its parent: the queue and the
    // link error show in `status`, and intake goes on regardless.
    province.sigterm().await.unwrap();
    let exit = province.wait_exit(EXIT_DEADLINE).await.unwrap();
    assert!(exit.success(), "{exit}\n{}", province.log_tail());
    let total = BEFORE_FIRST_START + WHILE_STOPPED;
    submitted.extend(submit_range(&mut intake, BEFORE_FIRST_START, total).await);
    let upstream = wait_for_queue_and_error(&node_config, WHILE_STOPPED).await;
    assert_eq!(upstream["acked_seq"], BEFORE_FIRST_START, "{upstream}");
    assert!(
        upstream["oldest_queued_age_s"].as_f64().is_some(),
        "{upstream}"
    );

    let province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    wait_for_count(&national, "national", total).await;

    let submitted: HashSet<String> = submitted.into_iter().collect();
    assert_eq!(submitted.len() as u64, total);
    assert_eq!(distinct_ids(&node, "node").await, submitted);
    assert_eq!(distinct_ids(&province, "province").await, submitted);
    assert_eq!(distinct_ids(&national, "national").await, submitted);
    let upstream = wait_until_drained(&node_config).await;
    assert_eq!(upstream["acked_seq"], total, "{upstream}");
}

/// The issue: "`lapor-node status --json` reports queued (un-acked)
/// events, the age of the oldest, last successful contact, last error" —
/// a node whose hub has never answered (a new install, a link down since
/// day one) is the case an operator most needs it for.
#[tokio::test]
async fn node_status_reports_queue_and_error_before_the_hub_ever_answered() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = reserve_port().unwrap();
    let config = init_node_with_upstream(dir.path(), DISTRICT, Some(&format!("http://{nowhere}")))
        .await
        .unwrap();
    let node = SiteProcess::start(Binary::Node, &config).await.unwrap();
    let mut intake = node.intake().await.unwrap();
    submit_range(&mut intake, 0, 3).await;
    let upstream = wait_for_queue_and_error(&config, 3).await;
    assert_eq!(upstream["parent"], "11", "{upstream}");
    assert_eq!(upstream["acked_seq"], 0, "{upstream}");
}
