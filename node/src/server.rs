//! The gRPC server of a running node: which services it serves (Intake,
//! Complaints; health, reflection and the shutdown order come from
//! `lapor_shared::site::serve`) and what runs beside them (the push loop).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::proto::v1::complaints_server::ComplaintsServer;
use lapor_shared::proto::v1::intake_server::IntakeServer;
use lapor_shared::replication::client::{UpstreamConfig, spawn_push_loop};
use lapor_shared::rpc::complaints::ComplaintsService;
use lapor_shared::shutdown;
use lapor_shared::site::config::{check_plain_listen, require_insecure_flag};
use lapor_shared::site::serve::SiteServer;
use lapor_shared::store::Store;
use lapor_shared::telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Node;
use crate::cli::RunArgs;
use crate::init::load;
use lapor_shared::rpc::intake::IntakeService;

/// Largest request a client may send. An intake with every field at its
/// limit is far below this; anything larger is refused before decoding.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// `lapor-node run`: load config, init logging, bind, migrate, announce
/// readiness, serve until SIGTERM/SIGINT.
pub async fn run_from_cli(config_path: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = load(config_path)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    // The node's listener serves local staff only (intake, reads); it
    // has no certificate of its own, so it stays on loopback.
    check_plain_listen(config.server.listen)?;
    require_insecure_flag(config.upstream.as_ref(), false, args.insecure)?;
    telemetry::init(config.log.format, "info").context("initialise logging")?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("bind {}", config.server.listen))?;
    let addr = listener.local_addr().context("read the bound address")?;
    let node = Node::open(config).await?;
    let token = CancellationToken::new();
    let signals =
        shutdown::spawn_cancel_on_signal(token.clone()).context("install signal handlers")?;
    // The one readiness line: printed only once the listener is bound, the
    // store migrated and the signal handlers installed. Tests and
    // supervisors parse it to learn the port.
    println!("listening on {addr}");
    std::io::stdout().flush().context("flush stdout")?;
    tracing::info!(site = %node.site(), %addr, "node ready");
    let result = node.run(listener, token.clone()).await;
    // Ends the signal watcher, also when `run` failed before serving.
    token.cancel();
    signals.await.context("join the signal watcher")?;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Serves until `token` is cancelled, then shuts down in order and closes
/// `store`.
pub(crate) async fn serve(
    store: Store,
    listener: TcpListener,
    token: CancellationToken,
    upstream: Option<UpstreamConfig>,
    deadlines: DeadlinePolicy,
    request_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let intake = IntakeServer::new(IntakeService::new(store.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let complaints =
        ComplaintsServer::new(ComplaintsService::with_policy(store.clone(), deadlines))
            .max_decoding_message_size(MAX_REQUEST_BYTES);

    if let Some(upstream) = upstream {
        // Never awaited by a request path: intake and reads work with the
        // link down; the loop only reads the store and records link state.
        spawn_push_loop(store.clone(), upstream, &tracker, token.clone());
    }

    SiteServer::new()
        .request_timeout(request_timeout)
        .add_service(intake)
        .add_service(complaints)
        .serve(listener, token, tracker, store, "node")
        .await?;
    Ok(())
}
