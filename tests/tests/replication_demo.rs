//! The README's first command keeps working: the demo starts the whole
//! federation, every submitted complaint reaches national, and it exits 0
//! by itself with the promised last line.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::process::Command;

#[tokio::test]
async fn demo_delivers_every_complaint_to_national_and_exits_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("federation");
    let run = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--per-node", "4"])
        .kill_on_drop(true)
        .output();
    // Bounds a hang only: a cold build of the binaries happens inside.
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the demo exits by itself")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().last(),
        Some("demo: 12 submitted, 12 at national"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("demo: data directory {}", data_dir.display())),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("queued 0").count(),
        3,
        "every node's queue is empty: {stdout}"
    );
    assert!(
        data_dir.join("hub-00.toml").exists(),
        "the sites live in the given directory"
    );
}
