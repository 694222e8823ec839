//! lapor-node: the district (kabupaten/kota) node of lapor-sync.
//!
//! A node takes in SP4N-LAPOR! complaints at the district office, keeps them
//! in its own SQLite store and works fully offline; replication to the
//! provincial hub is added on top of this.
//!
//! # Layout
//!
//! - [`cli`]: argument parsing and dispatch, nothing else.
//! - [`config`]: `NodeConfig` (TOML), its validation and the shipped template.
//! - [`server`]: the gRPC server and the shutdown order.
//! - [`init`]: `init`, `print-config`, `check-config`.
//! - [`submit`]: the staff-facing `submit` command.
//! - [`view`]: `list` and `show` output.
//! - [`status`]: `status` output (a struct, so fields can be added) and
//!   `audit verify`.
//!
//! Tests and `main` both enter through [`Node::open`] + [`Node::run`] (or
//! [`run`]), which take an already bound listener and a cancellation token.

pub mod cli;
pub mod config;
pub mod init;
pub mod server;
pub mod status;
pub mod submit;
pub mod view;

use std::fs::File;

use anyhow::Context as _;
use lapor_shared::domain::SiteCode;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::replication::client::UpstreamConfig;
use lapor_shared::site::lock::lock_store;
use lapor_shared::store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;

/// A node whose store is open and migrated, ready to serve.
#[derive(Debug)]
pub struct Node {
    /// This district.
    site: SiteCode,
    /// The site's store; closed by [`Node::run`] after the server drained.
    store: Store,
    /// The parent's gRPC URL, when this site forwards upward.
    upstream: Option<UpstreamConfig>,
    /// Holidays and SLA days for the deadlines this site serves.
    deadlines: DeadlinePolicy,
    /// Request timeout of the node's server.
    request_timeout: std::time::Duration,
    /// Exclusive lock on `<db>.lock`, held while this process may write:
    /// a second `run`, or `submit --offline` beside a running node, is
    /// refused instead of becoming a second writer.
    _lock: File,
}

impl Node {
    /// Opens (creating and migrating as needed) the node's store.
    ///
    /// # Errors
    /// An invalid site code, or a store that cannot be opened (see
    /// `StoreError`: a newer schema, another site's database, I/O).
    pub async fn open(config: NodeConfig) -> anyhow::Result<Node> {
        let site = config.site_code()?;
        let lock = lock_store(&config.store.path, "lapor-node")?;
        let store = open_store(&config).await?;
        let upstream = config
            .upstream
            .as_ref()
            .map(UpstreamConfig::from_section)
            .transpose()?;
        let deadlines = config.deadlines.clone();
        Ok(Node {
            site,
            store,
            upstream,
            deadlines,
            request_timeout: config.limits.request_timeout(),
            _lock: lock,
        })
    }

    pub fn site(&self) -> &SiteCode {
        &self.site
    }

    /// A handle to the node's store (for in-process tests and tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves gRPC on `listener` until `token` is cancelled, then drains and
    /// closes the store.
    pub async fn run(self, listener: TcpListener, token: CancellationToken) -> anyhow::Result<()> {
        let Node {
            store,
            upstream,
            deadlines,
            request_timeout,
            _lock: lock,
            ..
        } = self;
        let result =
            server::serve(store, listener, token, upstream, deadlines, request_timeout).await;
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
pub async fn open_store(config: &NodeConfig) -> anyhow::Result<Store> {
    let store_config = config.store_config()?;
    let path = store_config.path.clone();
    let key_path = config.key_path();
    tokio::task::spawn_blocking(move || Store::open_with_key_file(store_config, &key_path))
        .await
        .context("join the store-opening task")?
        .with_context(|| format!("open store {}", path.display()))
}

/// Opens the node described by `config` and serves on `listener` until
/// `token` is cancelled.
pub async fn run(
    config: NodeConfig,
    listener: TcpListener,
    token: CancellationToken,
) -> anyhow::Result<()> {
    Node::open(config).await?.run(listener, token).await
}
