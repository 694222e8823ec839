//! The binaries as an operator uses them: `init`, `run`, `submit`, `list`,
//! `show`, `status`, `check-config`, and a clean exit on SIGTERM.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lapor_shared::proto::v1;
use lapor_tests::Binary;
use lapor_tests::site::{SiteProcess, init_hub, init_node, run_command, status_json};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A clean shutdown is quick; this bound only catches a hang.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn node_exits_zero_on_sigterm_and_keeps_what_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "11.13").await.unwrap();
    let mut node = SiteProcess::start(Binary::Node, &config).await.unwrap();
    let mut intake = node.intake().await.unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    intake
        .submit(lapor_tests::submit_request("11.13", 0, &id))
        .await
        .unwrap();

    node.sigterm().await.unwrap();
    let exit = node.wait_exit(EXIT_DEADLINE).await.unwrap();
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", node.log_tail());
    assert!(
        node.log_tail().contains("node stopped"),
        "{}",
        node.log_tail()
    );

    let status = status_json(Binary::Node, &config).await.unwrap();
    assert_eq!(status["complaints"], 1);
    assert_eq!(status["integrity"], serde_json::json!(["ok"]));
}

#[tokio::test]
async fn hubs_serve_complaints_and_exit_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    for (role, site) in [("province", "11"), ("national", "00")] {
        let config = init_hub(dir.path(), role, site).await.unwrap();
        let mut hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
        let mut complaints = hub.complaints().await.unwrap();
        let count = complaints
            .count(v1::CountComplaintsRequest { filter: None })
            .await
            .unwrap();
        assert_eq!(count.into_inner().count, 0);
        let mut health = HealthClient::new(hub.channel().await.unwrap());
        let check = HealthCheckRequest {
            service: "lapor.sync.v1.Complaints".into(),
        };
        let serving = health.check(check).await.unwrap().into_inner().status;
        assert_eq!(serving, ServingStatus::Serving as i32, "{role}");

        hub.sigterm().await.unwrap();
        let exit = hub.wait_exit(EXIT_DEADLINE).await.unwrap();
        assert_eq!(exit.code(), Some(0), "{role}: {exit}\n{}", hub.log_tail());

        let status = status_json(Binary::Hub, &config).await.unwrap();
        assert_eq!(status["site"], site);
        assert_eq!(status["role"], role);
    }
}

#[tokio::test]
async fn staff_submit_list_and_show_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "11.13").await.unwrap();
    let check = run_command(Binary::Node, &config, &["check-config"])
        .await
        .unwrap();
    assert!(check.starts_with("config ok"), "{check}");

    // Offline, while the node is stopped.
    let offline = run_command(
        Binary::Node,
        &config,
        &[
            "submit",
            "--offline",
            "--title",
            "Jembatan gantung putus",
            "--body",
            "Jembatan gantung penghubung dua desa putus diterjang banjir.",
            "--category",
            "Infrastruktur",
            "--anonymous",
        ],
    )
    .await
    .unwrap();
    let offline_tracking = offline.trim().to_owned();
    assert!(offline_tracking.starts_with("1113-"), "{offline}");

    // Through the running node.
    let node = SiteProcess::start(Binary::Node, &config).await.unwrap();
    let endpoint = node.endpoint();
    let online = run_command(
        Binary::Node,
        &config,
        &[
            "submit",
            "--endpoint",
            &endpoint,
            "--title",
            "Air PDAM tidak mengalir",
            "--body",
            "Sudah dua minggu air tidak mengalir di lingkungan kami.",
            "--reporter-name",
            "Cut Aminah",
            "--reporter-nik",
            "1113015507900001",
            "--channel",
            "sms1708",
            "--secret",
        ],
    )
    .await
    .unwrap();
    let online_tracking = online.trim().to_owned();
    assert!(online_tracking.starts_with("1113-") && online_tracking != offline_tracking);

    // --offline refuses to write beside the running node.
    let refused = run_command(
        Binary::Node,
        &config,
        &["submit", "--offline", "--title", "x", "--body", "y"],
    )
    .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("without --offline")
    );

    let list = run_command(Binary::Node, &config, &["list", "--json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let trackings: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tracking_number"].as_str().unwrap())
        .collect();
    assert_eq!(trackings.len(), 2);
    assert!(
        trackings.contains(&offline_tracking.as_str())
            && trackings.contains(&online_tracking.as_str())
    );

    let shown = run_command(Binary::Node, &config, &["show", &online_tracking, "--json"])
        .await
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["title"], "Air PDAM tidak mengalir");
    assert_eq!(shown["secret"], true);
    assert_eq!(
        shown["reporter"]["nik"], "111301********01",
        "NIK is masked"
    );
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
    let text = run_command(Binary::Node, &config, &["show", &offline_tracking])
        .await
        .unwrap();
    assert!(
        text.contains("Jembatan gantung putus") && text.contains("(anonymous)"),
        "{text}"
    );

    let table = run_command(
        Binary::Node,
        &config,
        &["list", "--status", "belum-terverifikasi"],
    )
    .await
    .unwrap();
    assert!(
        table.contains(&online_tracking) && table.contains("2 complaint(s)"),
        "{table}"
    );
}

#[tokio::test]
async fn init_refuses_to_overwrite_a_config_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "11.71").await.unwrap();
    let before = std::fs::read_to_string(&config).unwrap();
    let again = run_command(Binary::Node, &config, &["init", "--site", "11.04"])
        .await
        .unwrap_err();
    assert!(again.to_string().contains("--force"), "{again}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    let unknown = run_command(
        Binary::Hub,
        &dir.path().join("hub.toml"),
        &["init", "--role", "national", "--site", "11"],
    )
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("does not match"), "{unknown}");
    assert!(
        !dir.path().join("hub.toml").exists(),
        "a refused init left a config behind"
    );
}

#[tokio::test]
async fn plain_text_runs_only_when_asked_for_with_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let hub = init_hub(dir.path(), "province", "11").await.unwrap();
    let node =
        lapor_tests::site::init_node_with_upstream(dir.path(), "11.13", Some("http://127.0.0.1:9"))
            .await
            .unwrap();
    for (which, config, fix) in [
        (Binary::Hub, &hub, "lapor-hub ca init"),
        (Binary::Node, &node, "lapor-hub ca issue"),
    ] {
        let out = tokio::process::Command::new(lapor_tests::binary(which).unwrap())
            .arg("--config")
            .arg(config)
            .args(["run", "--listen", "127.0.0.1:0"])
            .output()
            .await
            .unwrap();
        assert!(
            !out.status.success(),
            "{} ran plain text unasked",
            which.name()
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--insecure") && stderr.contains(fix),
            "{stderr}"
        );
    }
    // With the flag, the same configs serve (on loopback only).
    let hub = SiteProcess::start(Binary::Hub, &hub).await.unwrap();
    let node = SiteProcess::start(Binary::Node, &node).await.unwrap();
    hub.sigterm().await.unwrap();
    node.sigterm().await.unwrap();
}
