//! The real `lapor-node` binary is SIGKILLed while 2,000 submissions are in
//! flight. After a restart on the same data directory, every submission that
//! received its OK must be present, none twice, and SQLite's
//! `integrity_check` must be clean.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::get_complaint_request::Key;
use lapor_tests::Binary;
use lapor_tests::site::{SiteProcess, init_node, status_json};
use tokio::sync::watch;

const SUBMISSIONS: u64 = 2_000;
const IN_FLIGHT: usize = 64;
/// The kill lands once this many OKs came back: well inside the run.
const KILL_AFTER_OKS: usize = 500;
const DISTRICT: &str = "11.13";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_survives_sigkill_during_2000_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), DISTRICT).await.unwrap();
    let mut node = SiteProcess::start(Binary::Node, &config).await.unwrap();

    // Client-minted ids: a retry after the crash is the same submission.
    let ids: Vec<String> = (0..SUBMISSIONS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (ok_count_tx, mut ok_count) = watch::channel(0usize);

    let client = node.intake().await.unwrap();
    let submitter = tokio::spawn({
        let ids = ids.clone();
        let acked = acked.clone();
        async move {
            futures::stream::iter(0..SUBMISSIONS)
                .map(|n| {
                    let mut client = client.clone();
                    let request = lapor_tests::submit_request(DISTRICT, n, &ids[n as usize]);
                    async move { client.submit(request).await }
                })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|result| {
                    if let Ok(resp) = result {
                        let resp = resp.into_inner();
                        let mut acked = acked.lock().unwrap();
                        acked.insert(resp.complaint_id, resp.tracking_number);
                        ok_count_tx.send_replace(acked.len());
                    }
                    async {}
                })
                .await;
        }
    });

    // Kill exactly when the condition holds (no polling interval in which
    // the run could finish).
    tokio::time::timeout(
        Duration::from_secs(120),
        ok_count.wait_for(|n| *n >= KILL_AFTER_OKS),
    )
    .await
    .expect("500 submissions acknowledged within 120 s")
    .expect("submitter alive");
    node.sigkill().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), submitter)
        .await
        .expect("in-flight calls fail promptly once the node is gone")
        .unwrap();

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER_OKS);
    assert!(
        (acked.len() as u64) < SUBMISSIONS,
        "all {SUBMISSIONS} submissions finished before the kill; nothing was in flight"
    );

    // Straight after the crash, before any restart: the database opens
    // (WAL recovery) and is sound.
    let status = status_json(Binary::Node, &config).await.unwrap();
    assert_eq!(status["integrity"], serde_json::json!(["ok"]), "{status}");
    let stored = status["complaints"].as_u64().unwrap();
    assert!(
        stored >= acked.len() as u64,
        "{stored} stored < {} acknowledged",
        acked.len()
    );

    let node = SiteProcess::start(Binary::Node, &config).await.unwrap();
    let mut complaints = node.complaints().await.unwrap();

    for (id, tracking) in &acked {
        let got = complaints
            .get(v1::GetComplaintRequest {
                key: Some(Key::ComplaintId(id.clone())),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged complaint {id} lost: {e:?}"))
            .into_inner()
            .complaint
            .unwrap();
        assert_eq!(
            &got.tracking_number, tracking,
            "tracking number of {id} changed"
        );
    }

    let listed = list_all(&mut complaints).await;
    let count = complaints
        .count(v1::CountComplaintsRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(listed.len() as u64, count);
    assert_eq!(count, stored);
    let listed_ids: HashSet<&str> = listed.iter().map(|c| c.complaint_id.as_str()).collect();
    let trackings: HashSet<&str> = listed.iter().map(|c| c.tracking_number.as_str()).collect();
    assert_eq!(
        listed_ids.len(),
        listed.len(),
        "a complaint is stored twice"
    );
    assert_eq!(
        trackings.len(),
        listed.len(),
        "a tracking number was minted twice"
    );
    let submitted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(
        listed_ids.is_subset(&submitted),
        "a complaint nobody submitted appeared"
    );

    // Retrying everything is safe: the acknowledged ones come back as
    // duplicates with their original tracking number, the rest are stored
    // now, and the total is exactly the number of distinct submissions.
    let intake = node.intake().await.unwrap();
    let retried: Vec<v1::SubmitResponse> = futures::stream::iter(ids.iter().enumerate())
        .map(|(n, id)| {
            let mut intake = intake.clone();
            let request = lapor_tests::submit_request(DISTRICT, n as u64, id);
            async move { intake.submit(request).await.unwrap().into_inner() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for resp in &retried {
        if let Some(tracking) = acked.get(&resp.complaint_id) {
            assert!(
                resp.duplicate,
                "retry of acknowledged {} was stored again",
                resp.complaint_id
            );
            assert_eq!(&resp.tracking_number, tracking);
        }
    }
    let count = complaints
        .count(v1::CountComplaintsRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, SUBMISSIONS);

    let mut node = node;
    node.sigterm().await.unwrap();
    let exit = node.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(exit.success(), "{exit}\n{}", node.log_tail());
    let status = status_json(Binary::Node, &config).await.unwrap();
    assert_eq!(status["integrity"], serde_json::json!(["ok"]));
    assert_eq!(status["complaints"], SUBMISSIONS);
}

async fn list_all(
    client: &mut lapor_shared::proto::v1::complaints_client::ComplaintsClient<
        tonic::transport::Channel,
    >,
) -> Vec<v1::Complaint> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let req = v1::ListComplaintsRequest {
            filter: None,
            page_size: 500,
            page_token: token,
        };
        let page = client.list(req).await.unwrap().into_inner();
        out.extend(page.complaints);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}
