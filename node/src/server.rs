//! The gRPC server of a running node: which services it serves (Intake,
//! Complaints, health, reflection) and the shutdown order — stop accepting,
//! drain in-flight requests, stop background tasks, close the store last.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::proto::FILE_DESCRIPTOR_SET;
use lapor_shared::proto::v1::complaints_server::ComplaintsServer;
use lapor_shared::proto::v1::intake_server::IntakeServer;
use lapor_shared::replication::client::{UpstreamConfig, spawn_push_loop};
use lapor_shared::rpc::complaints::ComplaintsService;
use lapor_shared::shutdown::{self, DRAIN_GRACE};
use lapor_shared::store::Store;
use lapor_shared::telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::Node;
use crate::cli::RunArgs;
use crate::init::load;
use lapor_shared::rpc::intake::IntakeService;

/// TCP keepalive on accepted connections, so a peer that vanished (a
/// district link that dropped) is noticed and its connection freed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

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
    upstream: Option<String>,
    deadlines: DeadlinePolicy,
) -> anyhow::Result<()> {
    // Built first: the one step that can fail before anything is running.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("build the reflection service")?;
    let tracker = TaskTracker::new();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IntakeServer<IntakeService>>().await;
    health
        .set_serving::<ComplaintsServer<ComplaintsService>>()
        .await;
    tracker.spawn({
        // Health watchers see NOT_SERVING as soon as shutdown starts.
        let token = token.clone();
        async move {
            token.cancelled().await;
            health
                .set_not_serving::<IntakeServer<IntakeService>>()
                .await;
            health
                .set_not_serving::<ComplaintsServer<ComplaintsService>>()
                .await;
        }
    });
    let intake = IntakeServer::new(IntakeService::new(store.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let complaints =
        ComplaintsServer::new(ComplaintsService::with_policy(store.clone(), deadlines))
            .max_decoding_message_size(MAX_REQUEST_BYTES);

    if let Some(url) = upstream {
        // Never awaited by a request path: intake and reads work with the
        // link down; the loop only reads the store and records link state.
        spawn_push_loop(
            store.clone(),
            UpstreamConfig::new(url),
            &tracker,
            token.clone(),
        );
    }

    // `Server::tcp_nodelay` applies only when tonic binds the socket itself;
    // with our own listener the accepted sockets need it set here, or every
    // small unary reply waits out Nagle + delayed ACK (~40 ms).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE));
    let server = Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(intake)
        .add_service(complaints)
        .serve_with_incoming_shutdown(incoming, token.clone().cancelled_owned());
    let served = shutdown::drain_server(server, &token, DRAIN_GRACE).await;
    shutdown::wait_tasks(&tracker, DRAIN_GRACE).await;
    let closed = store.close().await;
    served.context("serve gRPC")?;
    closed.context("close the store")?;
    tracing::info!("node stopped");
    Ok(())
}
