//! Mutual TLS between real binaries: a province hub with its own CA
//! (`lapor-hub ca init`) refuses a client without a certificate, with one
//! from a foreign CA, with an expired one and with a revoked one; a district
//! that installs the bundle from `lapor-hub ca issue` as it is replicates
//! over mTLS; a node whose certificate expired says how to get back in.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapor_shared::proto::v1;
use lapor_shared::proto::v1::intake_client::IntakeClient;
use lapor_shared::proto::v1::replication_client::ReplicationClient;
use lapor_shared::replication::PROTOCOL_VERSION;
use lapor_tests::site::{
    SiteProcess, ca_issue, hub_child, init_hub, reserve_port, run_command, status_json,
};
use lapor_tests::{Binary, wait_until};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Gayo Lues, a district of Aceh (11).
const DISTRICT: &str = "11.13";
/// The name the province hub's server certificate carries.
const PROVINCE_DNS: &str = "site-11.lapor.internal";

/// A province hub with mTLS on, and the directory its bundles go to.
async fn tls_province(dir: &Path) -> (PathBuf, SiteProcess) {
    let config = init_hub(dir, "province", "11").await.unwrap();
    run_command(Binary::Hub, &config, &["ca", "init"])
        .await
        .unwrap();
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
    (config, hub)
}

/// Hello as `site` over a channel presenting the bundle in `bundle` (none:
/// TLS without a client certificate); the CA that verifies the hub is
/// always the real one, so only the client side varies.
async fn hello(
    hub: &SiteProcess,
    ca: &Path,
    bundle: Option<&Path>,
    site: &str,
) -> Result<(), tonic::Status> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name(PROVINCE_DNS);
    if let Some(bundle) = bundle {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(bundle.join("cert.pem")).unwrap(),
            std::fs::read(bundle.join("cert.key")).unwrap(),
        ));
    }
    let endpoint = Endpoint::from_shared(format!("https://{}", hub.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect: {e:?}")))?;
    call_hello(channel, site).await
}

async fn call_hello(channel: Channel, site: &str) -> Result<(), tonic::Status> {
    let request = v1::HelloRequest {
        protocol_version: PROTOCOL_VERSION,
        site: site.to_owned(),
        role: v1::SiteRole::Node as i32,
        compressions: vec![v1::Compression::Zstd as i32],
        wall_clock_ms: now_unix() * 1000,
        head_seq: 0,
        software: "trust test".to_owned(),
    };
    ReplicationClient::new(channel)
        .hello(request)
        .await
        .map(|_| ())
}

fn now_unix() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_no_certificate_a_foreign_ca_an_expired_and_a_revoked_one() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hub) = tls_province(dir.path()).await;
    let ca = dir.path().join("hub-11/ca/ca.pem");

    let good = ca_issue(&config, DISTRICT, &dir.path().join("good"), &[])
        .await
        .unwrap();
    hello(&hub, &ca, Some(&good), DISTRICT)
        .await
        .expect("a valid bundle is accepted");

    // Plain text to a TLS hub.
    let plain = Endpoint::from_shared(format!("http://{}", hub.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(
        call_hello(plain, DISTRICT).await.is_err(),
        "plain text is refused"
    );

    // TLS, but no client certificate.
    assert!(
        hello(&hub, &ca, None, DISTRICT).await.is_err(),
        "no certificate is refused"
    );

    // A certificate from another CA (another hub "11" made its own).
    let foreign_dir = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign_dir).unwrap();
    let foreign_config = init_hub(&foreign_dir, "province", "11").await.unwrap();
    run_command(Binary::Hub, &foreign_config, &["ca", "init"])
        .await
        .unwrap();
    let foreign = ca_issue(
        &foreign_config,
        DISTRICT,
        &dir.path().join("foreign-bundle"),
        &[],
    )
    .await
    .unwrap();
    assert!(
        hello(&hub, &ca, Some(&foreign), DISTRICT).await.is_err(),
        "a foreign CA's certificate is refused"
    );

    // Expired an hour ago.
    let past = (now_unix() - 3600).to_string();
    let expired = ca_issue(
        &config,
        DISTRICT,
        &dir.path().join("expired"),
        &["--testing-not-after-unix", &past],
    )
    .await
    .unwrap();
    assert!(
        hello(&hub, &ca, Some(&expired), DISTRICT).await.is_err(),
        "an expired certificate is refused"
    );

    // Revoked while the hub runs: refused from the next request on.
    let revoked = ca_issue(&config, "11.14", &dir.path().join("revoked"), &[])
        .await
        .unwrap();
    hello(&hub, &ca, Some(&revoked), "11.14").await.unwrap();
    run_command(Binary::Hub, &config, &["ca", "revoke", "--site", "11.14"])
        .await
        .unwrap();
    let status = hello(&hub, &ca, Some(&revoked), "11.14").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    // The other district is unaffected.
    hello(&hub, &ca, Some(&good), DISTRICT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_installs_its_bundle_as_it_is_and_replicates_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hub) = tls_province(dir.path()).await;
    let url = format!("https://{}", hub.addr());
    let bundle = ca_issue(
        &config,
        DISTRICT,
        &dir.path().join("bundle"),
        &["--url", &url],
    )
    .await
    .unwrap();
    let node_config = bundle.join("lapor-node.toml");
    let node = SiteProcess::start_at(Binary::Node, &node_config, reserve_port().unwrap())
        .await
        .unwrap();
    let mut intake = IntakeClient::new(node.channel().await.unwrap());
    let id = uuid::Uuid::now_v7().to_string();
    intake
        .submit(lapor_tests::submit_request(DISTRICT, 1, &id))
        .await
        .unwrap();
    let child = wait_until(
        Duration::from_secs(30),
        "the hub to hear from 11.13",
        || async {
            let child = hub_child(&config, DISTRICT).await?;
            Ok(child.filter(|c| c["received_events"].as_u64().unwrap_or(0) >= 1))
        },
    )
    .await
    .unwrap();
    assert_eq!(child["site"], DISTRICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_expired_certificate_says_how_to_get_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hub) = tls_province(dir.path()).await;
    let url = format!("https://{}", hub.addr());
    let past = (now_unix() - 60).to_string();
    let bundle = ca_issue(
        &config,
        DISTRICT,
        &dir.path().join("bundle"),
        &["--url", &url, "--testing-not-after-unix", &past],
    )
    .await
    .unwrap();
    let node_config = bundle.join("lapor-node.toml");
    let _node = SiteProcess::start_at(Binary::Node, &node_config, reserve_port().unwrap())
        .await
        .unwrap();
    let error = wait_until(
        Duration::from_secs(30),
        "the node to report its expired certificate",
        || async {
            let status = status_json(Binary::Node, &node_config).await?;
            Ok(status["upstream"]["last_error"].as_str().map(str::to_owned))
        },
    )
    .await
    .unwrap();
    assert!(error.contains("certificate expired on"), "{error}");
    assert!(error.contains("lapor-hub ca issue --site 11.13"), "{error}");
}

/// The serial and expiry of the certificate in `cert.pem` of `bundle`.
fn cert_of(bundle: &Path) -> (String, i64) {
    cert_file(&bundle.join("cert.pem"))
}

/// The serial and expiry of the certificate in the PEM file `path`.
fn cert_file(path: &Path) -> (String, i64) {
    let pem = std::fs::read_to_string(path).unwrap();
    let der = lapor_shared::tls::link::first_cert_der(&pem, path).unwrap();
    let peer = lapor_shared::tls::peer::PeerIdentity::from_der(&der).unwrap();
    (peer.serial, peer.not_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificate_over_the_link_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hub) = tls_province(dir.path()).await;
    let url = format!("https://{}", hub.addr());
    // Two minutes left of a twelve-minute life (certificates start ten
    // minutes back): well inside its last third.
    let soon = (now_unix() + 120).to_string();
    let bundle = ca_issue(
        &config,
        DISTRICT,
        &dir.path().join("bundle"),
        &["--url", &url, "--testing-not-after-unix", &soon],
    )
    .await
    .unwrap();
    let (old_serial, _) = cert_of(&bundle);
    let node_config = bundle.join("lapor-node.toml");
    let listen = reserve_port().unwrap();
    let mut node = SiteProcess::start_at(Binary::Node, &node_config, listen)
        .await
        .unwrap();

    let (serial, not_after) = wait_until(
        Duration::from_secs(30),
        "the node to install a renewed certificate",
        || async {
            let (serial, not_after) = cert_of(&bundle);
            Ok((serial != old_serial).then_some((serial, not_after)))
        },
    )
    .await
    .unwrap();
    assert!(
        not_after > now_unix() + 20 * 24 * 3600,
        "a full new lifetime"
    );
    // The hub's CA logged it, so `ca revoke --site 11.13` would find it.
    let issued = std::fs::read_to_string(dir.path().join("hub-11/ca/issued.jsonl")).unwrap();
    assert!(issued.contains(&serial), "{issued}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(bundle.join("cert.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the new key is private");
    }

    // After a restart the node connects with the new pair and replicates.
    node.sigterm().await.unwrap();
    node.wait_exit(Duration::from_secs(20)).await.unwrap();
    let node = SiteProcess::start_at(Binary::Node, &node_config, listen)
        .await
        .unwrap();
    let mut intake = IntakeClient::new(node.channel().await.unwrap());
    let id = uuid::Uuid::now_v7().to_string();
    intake
        .submit(lapor_tests::submit_request(DISTRICT, 7, &id))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the hub to receive the event over the renewed certificate",
        || async {
            let child = hub_child(&config, DISTRICT).await?;
            Ok(child.filter(|c| c["received_events"].as_u64().unwrap_or(0) >= 1))
        },
    )
    .await
    .unwrap();
    assert_eq!(cert_of(&bundle).0, serial, "not renewed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_reissues_its_own_expiring_server_certificate_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_hub(dir.path(), "province", "11").await.unwrap();
    // A server certificate with no life left.
    run_command(Binary::Hub, &config, &["ca", "init", "--days", "0"])
        .await
        .unwrap();
    let ca_dir = dir.path().join("hub-11/ca");
    let server_cert = |dir: &Path| cert_file(&dir.join("server.pem")).1;
    assert!(server_cert(&ca_dir) <= now_unix());
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
    assert!(server_cert(&ca_dir) > now_unix() + 300 * 24 * 3600);
    // Children verify the new one.
    let good = ca_issue(&config, DISTRICT, &dir.path().join("good"), &[])
        .await
        .unwrap();
    hello(&hub, &ca_dir.join("ca.pem"), Some(&good), DISTRICT)
        .await
        .expect("served with the re-issued certificate");
}
