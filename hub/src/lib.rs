//! lapor-hub: the provincial or national hub of lapor-sync.
//!
//! A hub keeps its own SQLite store of the complaints of its children (the
//! districts of its province, or every province for national) and serves
//! them to operators. Accepting children's pushes and forwarding upward is
//! added by the replication issue, with the same store and server.
//!
//! # Layout
//!
//! - [`ca`]: `ca init|issue|revoke`, the hub's certificate authority.
//! - [`children`]: `nodes` and `quarantine`, about the hub's children.
//! - [`cli`]: argument parsing and dispatch, nothing else.
//! - [`config`]: `HubConfig` (TOML), role/code validation, the template.
//! - [`server`]: the gRPC server and the shutdown order.
//! - [`init`]: `init`, `print-config`, `check-config`.
//! - [`status`]: `status` output (a struct, so fields can be added) and
//!   `audit verify`.
//!
//! The node crate mirrors this layout file for file; it adds `intake`,
//! `submit` and `view`, which only a district has.

pub mod ca;
pub mod children;
pub mod cli;
pub mod config;
pub mod init;
pub mod server;
pub mod status;

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context as _;
use lapor_shared::domain::SiteCode;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::replication::client::UpstreamConfig;
use lapor_shared::site::config::TlsSection;
use lapor_shared::site::lock::lock_store;
use lapor_shared::store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{HubConfig, LimitsSection};

/// A hub whose store is open and migrated, ready to serve.
#[derive(Debug)]
pub struct Hub {
    /// This hub's code.
    site: SiteCode,
    /// The site's store; closed by [`Hub::run`] after the server drained.
    store: Store,
    /// The parent's gRPC URL, when this site forwards upward.
    upstream: Option<UpstreamConfig>,
    /// Mutual TLS for children: our certificate, our CA, the deny-list.
    tls: Option<TlsSection>,
    /// Holidays and SLA days for the deadlines this site serves.
    deadlines: DeadlinePolicy,
    /// Per-child rate limit and request timeout.
    limits: LimitsSection,
    /// Exclusive lock on `<db>.lock`, held while this process may write:
    /// a second hub on the same database is refused.
    _lock: File,
    /// Where `lapor-hub ca init` keeps this hub's CA (it renews children's
    /// certificates over their links when it is there).
    ca_dir: PathBuf,
}

impl Hub {
    /// Opens (creating and migrating as needed) the hub's store.
    ///
    /// # Errors
    /// An invalid role/code, or a store that cannot be opened.
    pub async fn open(config: HubConfig) -> anyhow::Result<Hub> {
        let site = config.site_code()?;
        let lock = lock_store(&config.store.path, "lapor-hub")?;
        let store = open_store(&config).await?;
        let upstream = config
            .upstream
            .as_ref()
            .map(UpstreamConfig::from_section)
            .transpose()?;
        let deadlines = config.deadlines.clone();
        let ca_dir = ca::ca_dir(&config);
        Ok(Hub {
            site,
            store,
            upstream,
            ca_dir,
            tls: config.tls.clone(),
            deadlines,
            limits: config.limits.clone(),
            _lock: lock,
        })
    }

    pub fn site(&self) -> &SiteCode {
        &self.site
    }

    /// A handle to the hub's store (for in-process tests and tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves gRPC on `listener` until `token` is cancelled, then drains and
    /// closes the store.
    pub async fn run(self, listener: TcpListener, token: CancellationToken) -> anyhow::Result<()> {
        let Hub {
            store,
            site,
            upstream,
            ca_dir,
            tls,
            deadlines,
            limits,
            _lock: lock,
        } = self;
        let result = server::serve(
            store,
            listener,
            token,
            server::Options {
                site,
                upstream,
                ca_dir,
                tls,
                deadlines,
                limits,
            },
        )
        .await;
        // Released only now that the store is closed.
        drop(lock);
        result
    }
}

/// Opens the store of `config` with its site key (`store.key_path`).
///
/// The key is created, mode 0600, only with a new database; for an existing
/// one a missing key, or one readable beyond its owner, stops here with an
/// error naming the file and the fix. Opening migrates the schema: blocking
/// SQLite work, kept off the async workers.
pub async fn open_store(config: &HubConfig) -> anyhow::Result<Store> {
    let store_config = config.store_config()?;
    let path = store_config.path.clone();
    let key_path = config.key_path();
    tokio::task::spawn_blocking(move || Store::open_with_key_file(store_config, &key_path))
        .await
        .context("join the store-opening task")?
        .with_context(|| format!("open store {}", path.display()))
}

/// Opens the hub described by `config` and serves on `listener` until
/// `token` is cancelled.
pub async fn run(
    config: HubConfig,
    listener: TcpListener,
    token: CancellationToken,
) -> anyhow::Result<()> {
    Hub::open(config).await?.run(listener, token).await
}
