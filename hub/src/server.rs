//! The gRPC server of a running hub: which services it serves (Complaints,
//! Intake for lifecycle events, Replication for its children; health,
//! reflection and the shutdown order come from `lapor_shared::site::serve`)
//! and what runs beside them (the push loop to the parent).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::domain::SiteCode;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::proto::v1::certificates_server::CertificatesServer;
use lapor_shared::proto::v1::complaints_server::ComplaintsServer;
use lapor_shared::proto::v1::intake_server::IntakeServer;
use lapor_shared::proto::v1::replication_server::ReplicationServer;
use lapor_shared::replication::client::{UpstreamConfig, spawn_push_loop};
use lapor_shared::replication::server::{ReplicationService, ServerLimits, max_message_bytes};
use lapor_shared::rpc::complaints::ComplaintsService;
use lapor_shared::rpc::intake::IntakeService;
use lapor_shared::shutdown;
use lapor_shared::site::config::{TlsSection, check_plain_listen, require_insecure_flag};
use lapor_shared::site::serve::SiteServer;
use lapor_shared::store::Store;
use lapor_shared::telemetry;
use lapor_shared::tls::ca::CA_KEY_FILE;
use lapor_shared::tls::renew::CertificatesService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Hub;
use crate::cli::RunArgs;
use crate::config::LimitsSection;
use crate::init::load;

/// Largest request a client may send to the read services.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// `lapor-hub run`: load config, init logging, bind, migrate, announce
/// readiness, serve until SIGTERM/SIGINT.
pub async fn run_from_cli(config_path: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = load(config_path)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    require_insecure_flag(
        config.upstream.as_ref(),
        config.tls.is_none(),
        args.insecure,
    )?;
    if config.tls.is_none() {
        check_plain_listen(config.server.listen)?;
    }
    telemetry::init(config.log.format, "info").context("initialise logging")?;
    if let Some(not_after) = crate::ca::refresh_server_cert(&config)? {
        tracing::info!(
            not_after,
            "re-issued this hub's server certificate from its CA (the old one was near expiry)"
        );
    }
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("bind {}", config.server.listen))?;
    let addr = listener.local_addr().context("read the bound address")?;
    let role = config.site.role;
    let hub = Hub::open(config).await?;
    let token = CancellationToken::new();
    let signals =
        shutdown::spawn_cancel_on_signal(token.clone()).context("install signal handlers")?;
    // The one readiness line: printed only once the listener is bound, the
    // store migrated and the signal handlers installed.
    println!("listening on {addr}");
    std::io::stdout().flush().context("flush stdout")?;
    tracing::info!(site = %hub.site(), role = role.as_str(), %addr, "hub ready");
    let result = hub.run(listener, token.clone()).await;
    // Ends the signal watcher, also when `run` failed before serving.
    token.cancel();
    signals.await.context("join the signal watcher")?;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// What a hub serves with, from its config.
pub(crate) struct Options {
    pub site: SiteCode,
    /// This hub's CA directory (`lapor-hub ca init`).
    pub ca_dir: PathBuf,
    /// The parent, when this hub forwards upward.
    pub upstream: Option<UpstreamConfig>,
    /// Mutual TLS for children; `None` is insecure loopback mode.
    pub tls: Option<TlsSection>,
    pub deadlines: DeadlinePolicy,
    pub limits: LimitsSection,
}

/// Serves until `token` is cancelled, then shuts down in order and closes
/// `store`.
pub(crate) async fn serve(
    store: Store,
    listener: TcpListener,
    token: CancellationToken,
    options: Options,
) -> anyhow::Result<()> {
    let Options {
        site,
        ca_dir,
        upstream,
        tls,
        deadlines,
        limits: config_limits,
    } = options;
    let tracker = TaskTracker::new();
    let complaints =
        ComplaintsServer::new(ComplaintsService::with_policy(store.clone(), deadlines))
            .max_decoding_message_size(MAX_REQUEST_BYTES);

    let forwards = upstream.is_some();
    if let Some(upstream) = upstream {
        // Never awaited by a request path: reads and children's pushes work
        // with the link down; the loop only reads the store and records
        // link state.
        spawn_push_loop(store.clone(), upstream, &tracker, token.clone());
    }

    // Hubs take lifecycle events (verify, disposition, response, close) from
    // their operators; Submit is refused here — intake happens at nodes.
    let intake = IntakeServer::new(IntakeService::new(store.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let limits = ServerLimits {
        child_rate: config_limits.child_rate(),
        ..ServerLimits::default()
    };
    let mut replication = ReplicationService::new(
        store.clone(),
        limits.clone(),
        tracker.clone(),
        token.clone(),
    );
    if forwards {
        // A province forwards what its districts push: batches it stores
        // whole go up to national as they came.
        replication = replication.relaying();
    }
    let replication = ReplicationServer::new(replication)
        .max_decoding_message_size(max_message_bytes(&limits))
        .max_encoding_message_size(max_message_bytes(&limits));
    let mut server = SiteServer::new()
        .request_timeout(config_limits.request_timeout())
        .add_service(complaints)
        .add_service(intake)
        .add_service(replication);
    if let Some(tls) = tls {
        if ca_dir.join(CA_KEY_FILE).exists() {
            // Children renew their short-lived certificates over the link.
            server = server.add_service(CertificatesServer::new(CertificatesService::new(
                ca_dir,
                site,
                config_limits.child_renewal_rate(),
            )));
        }
        server = server.tls(tls.files(), tls.revoked.clone());
    }
    server.serve(listener, token, tracker, store, "hub").await?;
    Ok(())
}
