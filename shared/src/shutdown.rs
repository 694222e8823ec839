//! Graceful shutdown: SIGTERM and SIGINT cancel the process's root
//! [`CancellationToken`], and the helpers here bound how long a server and
//! its background tasks may take to drain once it is cancelled.
//!
//! The order a binary follows: cancel → the gRPC server stops accepting and
//! finishes in-flight requests ([`drain_server`]) → background tasks end
//! ([`wait_tasks`]) → the store is closed last, so nothing writes into a
//! closed store.
//!
//! Handlers are installed synchronously by [`spawn_cancel_on_signal`], before
//! it returns: a binary calls it before it announces readiness, so a
//! supervisor's SIGTERM can never arrive while the default disposition
//! (terminate at once, no drain) is still in force.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight requests, then background tasks, may take after
/// cancellation before they are abandoned. Well under systemd's default
/// `TimeoutStopSec` (90 s), so the store is still closed cleanly.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Installs SIGTERM and SIGINT handlers and spawns a task that cancels
/// `token` on the first of them (or ends quietly when `token` is cancelled
/// for another reason).
///
/// # Errors
/// The signal handlers could not be registered (no tokio reactor, or the OS
/// refused).
pub fn spawn_cancel_on_signal(token: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = token.cancelled() => return,
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        token.cancel();
    }))
}

/// Drives `server` (a tonic `serve_with_incoming_shutdown` future tied to
/// `token`) to completion. Once `token` is cancelled the server gets `grace`
/// to finish in-flight requests; after that it is dropped, which closes the
/// connections still open. The token is cancelled on return either way, so a
/// server that failed on its own still stops the rest of the process.
///
/// # Errors
/// The server's own error, when it failed before or while draining.
pub async fn drain_server<E>(
    server: impl Future<Output = Result<(), E>>,
    token: &CancellationToken,
    grace: Duration,
) -> Result<(), E> {
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        _ = token.cancelled() => match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(grace_s = grace.as_secs(), "in-flight requests did not finish in time; closing them");
                Ok(())
            }
        },
    };
    token.cancel();
    result
}

/// Closes `tracker` and waits up to `grace` for its tasks; returns whether
/// they all ended (a straggler is logged, not awaited).
pub async fn wait_tasks(tracker: &TaskTracker, grace: Duration) -> bool {
    tracker.close();
    let ended = tokio::time::timeout(grace, tracker.wait()).await.is_ok();
    if !ended {
        tracing::warn!(
            tasks = tracker.len(),
            grace_s = grace.as_secs(),
            "background tasks did not stop in time"
        );
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watcher_ends_when_the_token_is_cancelled_elsewhere() {
        let token = CancellationToken::new();
        let watcher = spawn_cancel_on_signal(token.clone()).unwrap();
        token.cancel();
        watcher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_ignores_cancellation_is_dropped_after_the_grace() {
        let token = CancellationToken::new();
        token.cancel();
        let stuck = std::future::pending::<Result<(), ()>>();
        let started = tokio::time::Instant::now();
        assert_eq!(
            drain_server(stuck, &token, Duration::from_secs(3)).await,
            Ok(())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_failing_server_cancels_the_token_and_reports_its_error() {
        let token = CancellationToken::new();
        let failed = async { Err::<(), &str>("bind failed") };
        assert_eq!(
            drain_server(failed, &token, DRAIN_GRACE).await,
            Err("bind failed")
        );
        assert!(token.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_tasks_gives_up_on_a_stuck_task() {
        let tracker = TaskTracker::new();
        tracker.spawn(std::future::pending::<()>());
        assert!(!wait_tasks(&tracker, Duration::from_secs(1)).await);
        let tracker = TaskTracker::new();
        tracker.spawn(async {});
        assert!(wait_tasks(&tracker, Duration::from_secs(1)).await);
    }
}
