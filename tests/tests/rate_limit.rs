//! The per-child rate limit of a real province hub over mutual TLS: a
//! district that keeps saying Hello is answered RESOURCE_EXHAUSTED with
//! `google.rpc.RetryInfo`, while another district at the same moment is
//! served as usual.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lapor_tests::Binary;
use lapor_tests::raw::{connect, hello};
use lapor_tests::site::{SiteProcess, ca_issue, init_hub, run_command};
use tonic::Code;
use tonic_types::StatusExt as _;

/// Gayo Lues: the district that floods.
const GAYO_LUES: &str = "11.13";
/// Banda Aceh: a district minding its own business.
const BANDA_ACEH: &str = "11.71";
const ACEH: &str = "11";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_district_gets_resource_exhausted_with_retry_info_and_another_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_hub(dir.path(), "province", ACEH).await.unwrap();
    // A bucket of 3 that refills once every ~17 minutes: the first session
    // is admitted, the next Hello is not, whatever the machine's speed.
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text.replace("child_burst = 30", "child_burst = 3").replace(
        "child_requests_per_second = 2.0",
        "child_requests_per_second = 0.001",
    );
    assert_ne!(limited, text, "the hub config has [limits]");
    std::fs::write(&config, limited).unwrap();
    run_command(Binary::Hub, &config, &["ca", "init"])
        .await
        .unwrap();
    let hub = SiteProcess::start(Binary::Hub, &config).await.unwrap();
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
