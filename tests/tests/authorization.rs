//! Authorization between real binaries over mutual TLS. A province hub
//! (Aceh, 11) holds a Banda Aceh (11.71) complaint, replicated by a real
//! 11.71 node; then a raw gRPC client holding Gayo Lues's (11.13) genuine
//! bundle speaks Replication directly and tries what a compromised node
//! could: write events of the Banda Aceh complaint (naming the complaint's
//! district, or lying that it is its own), forge another origin, say Hello
//! as 11.71, and push on 11.71's session. Each is refused with
//! PERMISSION_DENIED — per record in the push ack, or for the whole call —
//! quarantined or audited, and nothing of it reaches the hub's events.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use lapor_shared::proto::v1;
use lapor_tests::raw::{comment, connect, hello, push};
use lapor_tests::site::{
    SiteProcess, ca_issue, hub_child, init_hub, reserve_port, run_command, status_json,
};
use lapor_tests::{Binary, wait_until};
use tonic::Code;

/// Gayo Lues: the district whose node is compromised.
const GAYO_LUES: &str = "11.13";
/// Banda Aceh: the district whose complaint it goes after.
const BANDA_ACEH: &str = "11.71";
/// Their province, Aceh.
const ACEH: &str = "11";

/// What the hub holds: (events, complaints, quarantined, audit rows).
async fn holdings(config: &Path) -> (u64, u64, u64, u64) {
    let status = status_json(Binary::Hub, config).await.unwrap();
    let audit = run_command(Binary::Hub, config, &["audit", "verify", "--json"])
        .await
        .unwrap();
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    (
        status["events"].as_u64().unwrap(),
        status["complaints"].as_u64().unwrap(),
        status["quarantined"].as_u64().unwrap(),
        audit["rows"].as_u64().unwrap(),
    )
}

/// The hub's quarantine entries from `site`: (event id, reason).
async fn quarantined_from(config: &Path, site: &str) -> Vec<(String, String)> {
    let out = run_command(Binary::Hub, config, &["quarantine", "list", "--json"])
        .await
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .filter(|r| r["from"] == site)
        .map(|r| {
            (
                r["event_id"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gayo_lues_node_cannot_write_banda_aceh_complaints_forge_origins_or_speak_as_another_site()
 {
    let dir = tempfile::tempdir().unwrap();
    let config = init_hub(dir.path(), "province", ACEH).await.unwrap();
    run_command(Binary::Hub, &config, &["ca", "init"])
        .await
        .unwrap();
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
    let url = format!("https://{}", hub.addr());

    // A genuine Banda Aceh complaint reaches the province from a real node.
    let banda_aceh = ca_issue(
        &config,
        BANDA_ACEH,
        &dir.path().join("banda-aceh"),
        &["--url", &url],
    )
    .await
    .unwrap();
    let node_config = banda_aceh.join("lapor-node.toml");
    let node = SiteProcess::start_at(Binary::Node, &node_config, reserve_port().unwrap())
        .await
        .unwrap();
    let complaint_id = uuid::Uuid::now_v7().to_string();
    node.intake()
        .await
        .unwrap()
        .submit(lapor_tests::submit_request(BANDA_ACEH, 1, &complaint_id))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the hub to hold the Banda Aceh complaint",
        || async {
            let child = hub_child(&config, BANDA_ACEH).await?;
            Ok(child.filter(|c| c["received_events"].as_u64().unwrap_or(0) >= 1))
        },
    )
    .await
    .unwrap();

    // Gayo Lues's genuine bundle, in the hands of a raw client.
    let gayo = ca_issue(&config, GAYO_LUES, &dir.path().join("gayo-lues"), &[])
        .await
        .unwrap();
    let mut attacker = connect(&hub, ACEH, &gayo).await.unwrap();
    let session = hello(&mut attacker, GAYO_LUES).await.unwrap();
    let before = holdings(&config).await;

    // (a) events of the Banda Aceh complaint: naming its district, and
    // naming Gayo Lues's own district for it; (b) forged origins: another
    // district, and the province itself. One honest event rides along.
    let foreign_district = comment(&complaint_id, GAYO_LUES, BANDA_ACEH, 1);
    let lied_district = comment(&complaint_id, GAYO_LUES, GAYO_LUES, 2);
    let own_complaint = uuid::Uuid::now_v7().to_string();
    let other_origin = comment(&own_complaint, "11.14", GAYO_LUES, 3);
    let province_origin = comment(&own_complaint, ACEH, GAYO_LUES, 4);
    let honest = comment(&own_complaint, GAYO_LUES, GAYO_LUES, 5);
    let forged = [
        &foreign_district,
        &lied_district,
        &other_origin,
        &province_origin,
    ];
    let batch: Vec<v1::Event> = forged
        .iter()
        .map(|e| (*e).clone())
        .chain([honest.clone()])
        .collect();
    let ack = push(
        &mut attacker,
        &session.session_id,
        session.push_cursor,
        &batch,
    )
    .await
    .unwrap();
    assert_eq!(ack.accepted, 1, "only the honest event is taken: {ack:?}");
    assert_eq!(ack.quarantined, 4, "{ack:?}");
    let refused: Vec<&str> = ack.rejections.iter().map(|r| r.event_id.as_str()).collect();
    for event in forged {
        assert!(
            refused.contains(&event.event_id.as_str()),
            "{} not refused: {ack:?}",
            event.event_id
        );
    }
    for rejection in &ack.rejections {
        assert_eq!(
            rejection.code,
            Code::PermissionDenied as i32,
            "a scope violation is PERMISSION_DENIED: {rejection:?}"
        );
    }
    let after_push = holdings(&config).await;
    assert_eq!(
        after_push.0,
        before.0 + 1,
        "only the honest event is written"
    );
    assert_eq!(
        after_push.1, before.1,
        "no complaint appears or changes hands"
    );
    assert_eq!(
        after_push.2,
        before.2 + 4,
        "the forged events are quarantined"
    );
    assert_eq!(after_push.3, before.3 + 4, "each refused write is audited");
    let quarantine = quarantined_from(&config, GAYO_LUES).await;
    assert_eq!(quarantine.len(), 4, "{quarantine:?}");
    let reason_of = |id: &str| {
        quarantine
            .iter()
            .find(|(event, _)| event == id)
            .map(|(_, reason)| reason.clone())
            .unwrap_or_else(|| panic!("{id} not quarantined: {quarantine:?}"))
    };
    assert!(reason_of(&foreign_district.event_id).contains(BANDA_ACEH));
    assert!(reason_of(&lied_district.event_id).contains(&complaint_id));
    assert!(reason_of(&other_origin.event_id).contains("11.14"));

    // (c) Gayo Lues's certificate saying Hello as Banda Aceh.
    let status = hello(&mut attacker, BANDA_ACEH).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(GAYO_LUES), "{status:?}");
    let after_hello = holdings(&config).await;
    assert_eq!(
        after_hello.3,
        after_push.3 + 1,
        "the forged Hello is audited"
    );

    // (d) Banda Aceh's session id, used with Gayo Lues's certificate.
    let mut banda_aceh_client = connect(&hub, ACEH, &banda_aceh).await.unwrap();
    let their_session = hello(&mut banda_aceh_client, BANDA_ACEH).await.unwrap();
    let borrowed = comment(&complaint_id, BANDA_ACEH, BANDA_ACEH, 6);
    let status = push(
        &mut attacker,
        &their_session.session_id,
        their_session.push_cursor,
        &[borrowed],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let after_borrow = holdings(&config).await;
    assert_eq!(after_borrow.0, after_push.0, "nothing written");
    assert_eq!(
        after_borrow.3,
        after_hello.3 + 1,
        "the borrowed session is audited"
    );

    // The audit chain is intact (`audit verify` exits 0), and the honest
    // node is still served.
    run_command(Binary::Hub, &config, &["audit", "verify"])
        .await
        .expect("the audit chain is intact");
    hello(&mut banda_aceh_client, BANDA_ACEH).await.unwrap();
}
