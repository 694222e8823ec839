//! Harness for the end-to-end tests, the demo and the benchmarks: builds the
//! real `lapor-node` / `lapor-hub` binaries, starts them on ports chosen at
//! runtime, and waits for conditions without bare sleeps.
//!
//! # Layout
//!
//! - this file: building binaries ([`binary`]), [`wait_until`], and
//!   [`submit_request`] (a reproducible sample submission);
//! - [`site`]: a running site process ([`site::SiteProcess`]) — init, start,
//!   readiness, signals, and a guard that kills the process when dropped;
//! - [`sample`]: realistic sample complaints with synthetic reporters.
//! - [`local`]: the demo federation (national, Aceh, three districts) set
//!   up with the operator commands, mutual TLS by default;
//!   [`capture`]: a loopback proxy recording what crosses a link.
//! - [`cpu`]: CPU time per thread kind, for the benchmarks.
//! - [`raw`]: a raw Replication client speaking Hello and Push with a
//!   site's bundle, for the trust tests.
//! - `src/bin/`: the demo and the benchmarks.
//!
//! Processes announce readiness with one stdout line, `listening on ADDR`,
//! printed only once the listener is bound and the store migrated; the
//! harness reads it to learn the port, so no test needs a fixed port or a
//! sleep.

pub mod capture;
pub mod cpu;
pub mod local;
pub mod raw;
pub mod sample;
pub mod site;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use lapor_shared::proto::v1;
use rand::SeedableRng as _;

/// Which binary of the workspace to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    Node,
    Hub,
}

impl Binary {
    /// The package and binary name (they are the same).
    pub fn name(self) -> &'static str {
        match self {
            Binary::Node => "lapor-node",
            Binary::Hub => "lapor-hub",
        }
    }
}

/// Path of the built binary, building it on first use.
///
/// Uses escargot with the profile the caller was built with, in the
/// workspace's own target directory. The path is cached per process.
///
/// A debug caller (the tests, the demo) gets the binary built from the
/// units `cargo test --workspace` resolves, so the build reuses what the
/// test build already compiled instead of compiling tokio, hyper, tonic,
/// lapor-shared and the rest a second time (see `build_args`). A release
/// caller (the benchmarks, the long chaos run) gets the binary as shipped:
/// `cargo build --release -p <package>`.
///
/// # Errors
/// The cargo build failed (its output is in the error).
pub fn binary(which: Binary) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<Binary, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    // Held across the build on purpose: two tests asking at once must not
    // start two cargo builds of the same binary.
    let mut built = built
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = built.get(&which) {
        return Ok(path.clone());
    }
    let mut build = escargot::CargoBuild::new()
        .bin(which.name())
        .args(build_args(which, cfg!(debug_assertions)))
        .current_release();
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_for_the_running_crate) {
            build = build.env_remove(key);
        }
    }
    let run = build
        .run()
        .with_context(|| format!("build {}", which.name()))?;
    let path = run.path().to_owned();
    built.insert(which, path.clone());
    Ok(path)
}

/// What `binary` adds to `cargo build --bin <name>`.
///
/// Debug: the units `cargo test --workspace` has already built, so the
/// build compiles the binary itself and nothing else. `cargo build -p
/// lapor-node` would resolve features over lapor-node alone and without
/// dev-dependencies (no tokio `test-util`, for one), giving tokio and
/// everything above it (hyper, h2, tonic, lapor-shared, ...) other feature
/// sets: 46 crates compiled a second time in every CI run (measured in
/// `docs/testing.md`).
/// - `--workspace`: features unified over every member, as the test build;
/// - `--examples` (there are none, so it builds nothing): a target
///   selection that makes cargo resolve dev-dependencies, as `cargo test`;
/// - `--lib`: the members' libraries, which the test build holds too; they
///   keep build-script dependencies that are also runtime dependencies
///   (tempfile, under prost-build) shared with the runtime copy, as in the
///   test build, instead of a separate copy without debuginfo that would
///   make lapor-shared's build script, and so lapor-shared, differ.
///
/// Release (benchmarks, the long chaos run): the binary as it ships, from
/// its own package and without test-only features.
fn build_args(which: Binary, debug: bool) -> Vec<&'static str> {
    if debug {
        vec!["--workspace", "--examples", "--lib"]
    } else {
        vec!["--package", which.name()]
    }
}

/// Whether `key` is one of the variables `cargo test` and `cargo run` set
/// for the crate they run (its manifest, package metadata, binaries), as
/// opposed to cargo's own configuration (`CARGO_TARGET_DIR`, `CARGO_HOME`,
/// `CARGO_PROFILE_*`, ...), which the nested build must see as the outer
/// one did.
///
/// The nested `cargo build` must not inherit them: build scripts may track
/// them, and ring's does (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`,
/// `CARGO_PKG_VERSION_*`). With lapor-tests' values inherited, cargo sees
/// them changed, runs ring's build script again and recompiles ring,
/// rustls, tonic, lapor-shared and the rest in place, and the next build
/// from a shell recompiles them all back.
fn set_for_the_running_crate(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || key.starts_with("CARGO_BIN_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
        )
}

/// Sample complaint number `n` received at `district`, as a Submit request
/// with the client-minted `complaint_id`. The same `n` always yields the
/// same intake, so a retry is the same submission.
pub fn submit_request(district: &str, n: u64, complaint_id: &str) -> v1::SubmitRequest {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n);
    v1::SubmitRequest {
        complaint_id: complaint_id.to_owned(),
        intake: Some(sample::intake(&mut rng, district, 600)),
        actor: "petugas.loket".to_owned(),
    }
}

/// Polls `check` until it returns `Ok(Some(value))` or `deadline` passes.
/// `what` describes the awaited condition for the failure message, which
/// also carries the last error `check` returned.
///
/// # Errors
/// The deadline passed first.
pub async fn wait_until<T, F, Fut>(
    deadline: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if started.elapsed() >= deadline {
            match last_error {
                Some(e) => {
                    bail!("timed out after {deadline:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {deadline:?} waiting for {what}"),
            }
        }
        // Polling interval, not a wait for a condition: doubles up to 200 ms.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The middle value of `values` (the mean of the two middle ones for an
/// even count; 0 for none): what the benchmarks report of repeated runs.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn the_nested_build_drops_the_running_crates_variables_and_keeps_cargos_configuration() {
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_demo",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ] {
            assert!(set_for_the_running_crate(key), "{key} is dropped");
        }
        for key in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO_PROFILE_DEV_DEBUG",
            "CARGO_BUILD_JOBS",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_for_the_running_crate(key), "{key} is kept");
        }
    }

    #[test]
    fn median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([7.0]), 7.0);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[tokio::test]
    async fn wait_until_returns_the_first_ready_value() {
        let calls = AtomicU32::new(0);
        let got = wait_until(Duration::from_secs(5), "third call", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((n >= 3).then_some(n))
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_fails_with_the_condition_and_last_error() {
        let err = wait_until(Duration::from_secs(1), "the hub to answer", || async {
            Err::<Option<()>, _>(anyhow::anyhow!("connection refused"))
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the hub to answer") && err.contains("connection refused"),
            "{err}"
        );
    }
}
pub mod fault;
