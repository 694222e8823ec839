//! The per-child rate limit of a real province hub over mutual TLS: a
//! district that keeps saying Hello is answered RESOURCE_EXHAUSTED with
//! `google.rpc.RetryInfo`, while another district at the same moment is
//! served as usual. Certificate renewal has a stricter bucket of its own:
//! a district's renewal beyond it is refused with `RetryInfo`, which the
//! child's renewal path reads as "later", while another district renews.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapor_shared::domain::SiteCode;
use lapor_shared::site::config::TlsFiles;
use lapor_shared::tls::renew::{RenewError, Renewed, renew_if_due};
use lapor_tests::Binary;
use lapor_tests::raw::{connect, hello};
use lapor_tests::site::{SiteProcess, bundle_tls, ca_issue, init_hub, run_command};
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_types::StatusExt as _;

/// Gayo Lues: the district that floods.
const GAYO_LUES: &str = "11.13";
/// Banda Aceh: a district minding its own business.
const BANDA_ACEH: &str = "11.71";
const ACEH: &str = "11";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_district_gets_resource_exhausted_with_retry_info_and_another_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // A bucket of 3 that refills once every ~17 minutes: the first session
    // is admitted, the next Hello is not, whatever the machine's speed.
    let (config, hub) = limited_hub(
        dir.path(),
        &[
            ("child_burst = 30", "child_burst = 3"),
            (
                "child_requests_per_second = 2.0",
                "child_requests_per_second = 0.001",
            ),
        ],
    )
    .await;
    let gayo = ca_issue(&config, GAYO_LUES, &dir.path().join("gayo"), &[])
        .await
        .unwrap();
    let banda = ca_issue(&config, BANDA_ACEH, &dir.path().join("banda"), &[])
        .await
        .unwrap();
    let mut flooder = connect(&hub, ACEH, &gayo).await.unwrap();
    let mut neighbour = connect(&hub, ACEH, &banda).await.unwrap();

    hello(&mut flooder, GAYO_LUES)
        .await
        .expect("the first session is within the limit");
    let status = hello(&mut flooder, GAYO_LUES).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("the refusal says when to retry");
    assert!(!retry.is_zero(), "{status:?}");

    // Banda Aceh has its own bucket; Gayo Lues is still limited after it.
    hello(&mut neighbour, BANDA_ACEH)
        .await
        .expect("another district is served");
    let status = hello(&mut flooder, GAYO_LUES).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "still limited: {status:?}"
    );
}

/// The Aceh hub with its CA, started after each `(from, to)` edit of its
/// `[limits]`; every `from` must be in the config it was initialised with.
async fn limited_hub(dir: &Path, edits: &[(&str, &str)]) -> (PathBuf, SiteProcess) {
    let config = init_hub(dir, "province", ACEH).await.unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "the hub config has {from:?}");
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).unwrap();
    run_command(Binary::Hub, &config, &["ca", "init"])
        .await
        .unwrap();
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
    (config, hub)
}

fn now_unix() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// A bundle for `site` whose certificate is due for renewal (two minutes
/// left), issued by the hub configured by `config`.
async fn due_bundle(config: &Path, site: &str, out: PathBuf) -> TlsFiles {
    let soon = (now_unix() + 120).to_string();
    let bundle = ca_issue(config, site, &out, &["--testing-not-after-unix", &soon])
        .await
        .unwrap();
    TlsFiles {
        ca: bundle.join("ca.pem"),
        cert: bundle.join("cert.pem"),
        key: bundle.join("cert.key"),
    }
}

/// The child's own renewal path, over a mutual-TLS connection made with
/// `files`.
async fn renew(hub: &SiteProcess, files: &TlsFiles) -> Result<Option<Renewed>, RenewError> {
    let bundle = files.cert.parent().unwrap();
    let dns = lapor_shared::tls::site_dns_name(&SiteCode::parse(ACEH).unwrap());
    let tls = bundle_tls(bundle, "cert.pem", "cert.key", &dns).unwrap();
    let channel = Endpoint::from_shared(format!("https://{}", hub.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    renew_if_due(channel, files, now_unix()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_districts_renewal_beyond_its_bucket_is_postponed_and_another_district_renews() {
    let dir = tempfile::tempdir().unwrap();
    // One renewal at once per district, the next after 20 minutes.
    let (config, hub) = limited_hub(
        dir.path(),
        &[("child_renewal_burst = 3", "child_renewal_burst = 1")],
    )
    .await;
    // Two certificates of Gayo Lues, both due: the bucket is the site's.
    let gayo = due_bundle(&config, GAYO_LUES, dir.path().join("gayo")).await;
    let gayo_again = due_bundle(&config, GAYO_LUES, dir.path().join("gayo2")).await;
    let banda = due_bundle(&config, BANDA_ACEH, dir.path().join("banda")).await;

    renew(&hub, &gayo)
        .await
        .unwrap()
        .expect("the first renewal is within the limit");
    let before = std::fs::read_to_string(&gayo_again.cert).unwrap();
    let err = renew(&hub, &gayo_again).await.unwrap_err();
    let RenewError::Later { retry_in } = err else {
        panic!("expected a postponement, got {err:?}");
    };
    // The hub's RetryInfo (a token every 20 minutes), not the child's own
    // default of an hour.
    assert!(
        !retry_in.is_zero() && retry_in <= Duration::from_secs(20 * 60 + 1),
        "{retry_in:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&gayo_again.cert).unwrap(),
        before,
        "nothing installed"
    );

    renew(&hub, &banda)
        .await
        .unwrap()
        .expect("another district renews meanwhile");
}
