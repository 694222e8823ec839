//! The child's half of replication: the push loop a district node runs
//! toward its province, and a province hub runs toward national (same code).
//!
//! Design constraints:
//! - The loop never blocks intake: it only reads the store and records link
//!   state; a dead link only grows the backlog.
//! - Several batches are in flight at once, bounded by a window in bytes,
//!   so a high-latency link stays full. Acks are recorded beside the loop,
//!   the newest first, so it never waits on its own store's commits to send.
//! - Where to resume comes from the parent (Hello's push cursor), never from
//!   local memory: a child that lost its cursor re-sends nothing the parent
//!   holds, and a parent restored from an older backup gets the gap again.
//! - Reconnects back off exponentially with full jitter, capped, and the
//!   backoff resets after a healthy period. A parent that answers with
//!   `google.rpc.RetryInfo` (its per-child rate limit) is obeyed instead:
//!   the loop waits the delay it gave, capped at `backoff_max`. On shutdown
//!   the loop stops sending and waits (bounded) for the acks of batches in
//!   flight.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder as _;
use rand::Rng as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use super::PROTOCOL_VERSION;
use super::codec;
use crate::domain::{Seq, SiteCode, SiteRole};
use crate::proto::v1::{
    self, HelloRequest, PullRequest, PushBatch, PushMessage, PushOpen, push_message,
    replication_client::ReplicationClient,
};
use crate::site::config::{SectionError, TlsFiles, UpstreamSection};
use crate::store::{
    CursorKind, CursorUpdate, CustodyTier, PeerUpdate, Relayed, RunRequest, Store, StoreError,
};
use crate::tls::link::{Bundle, BundleError};

/// How a child talks to its parent.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `http://host:port` of the parent hub.
    pub endpoint: String,
    /// Bytes of batches in flight (sent, not yet acked).
    pub window_bytes: usize,
    /// Target uncompressed size of one batch.
    pub batch_bytes: usize,
    /// Most events in one batch (also capped by the parent's limit).
    pub batch_events: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A session that lasted this long resets the backoff.
    pub healthy_after: Duration,
    /// On shutdown, how long to wait for acks of batches in flight.
    pub drain_timeout: Duration,
    /// The bundle from the parent's CA (`https://` endpoints); read on each
    /// connect, so a renewed certificate is used without a restart.
    pub tls: Option<TlsFiles>,
}

impl UpstreamConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        UpstreamConfig {
            endpoint: endpoint.into(),
            window_bytes: 8 * 1024 * 1024,
            batch_bytes: 1024 * 1024,
            batch_events: 2_000,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    /// The link a site's `[upstream]` section describes (its URL and, for
    /// https, its bundle), with the default window and backoff.
    ///
    /// # Errors
    /// Only some of the bundle's ca/cert/key are given.
    pub fn from_section(section: &UpstreamSection) -> Result<Self, SectionError> {
        let mut upstream = UpstreamConfig::new(section.url.clone());
        upstream.tls = section.tls()?;
        Ok(upstream)
    }
}

/// The link as the push loop sees it (for `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    pub connected: bool,
    pub parent: Option<String>,
    /// Own seq the parent holds durably.
    pub acked_seq: u64,
    pub last_contact_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// Why a session with the parent ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// Our bundle cannot be used (missing files, or an expired certificate
    /// — the message says how to get a new one).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("parent answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("local store")]
    Store(#[from] StoreError),
    #[error("encode batch")]
    Codec(#[from] codec::CodecError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("parent closed the push stream")]
    Closed,
}

impl SyncError {
    /// Retriable errors are link trouble; the others need an operator
    /// (wrong version, refused identity) and are retried only at the
    /// slowest pace.
    pub fn is_retriable(&self) -> bool {
        use tonic::Code;
        match self {
            SyncError::Connect { .. } | SyncError::Closed => true,
            SyncError::Status(s) => {
                matches!(
                    s.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::ResourceExhausted
                        | Code::Aborted
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::Internal
                ) || (s.code() == Code::FailedPrecondition
                    && s.message().contains("say Hello again"))
            }
            SyncError::Store(e) => e.is_retriable(),
            // Retried slowly: an operator may install a new bundle meanwhile.
            SyncError::Codec(_) | SyncError::Protocol(_) | SyncError::Bundle(_) => false,
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs the push loop until `token` is cancelled. Spawn it on the owner's
/// tracker; status is published on the returned channel.
pub fn push_loop(
    store: Store,
    config: UpstreamConfig,
    token: CancellationToken,
) -> (watch::Receiver<LinkStatus>, impl Future<Output = ()> + Send) {
    let (status_tx, status_rx) = watch::channel(LinkStatus::default());
    let status_tx = Arc::new(status_tx);
    let fut = async move {
        let mut backoff = new_backoff(&config);
        loop {
            let started = Instant::now();
            let result = session(&store, &config, &token, &status_tx).await;
            status_tx.send_modify(|s| s.connected = false);
            let err = match result {
                Ok(()) => return, // cancelled
                Err(e) => e,
            };
            let message = error_chain(&err);
            if err.is_retriable() {
                tracing::info!(error = %message, "link to parent lost");
            } else {
                tracing::warn!(error = %message, "parent refused this site; retrying slowly");
            }
            status_tx.send_modify(|s| s.last_error = Some(message.clone()));
            // Before the first Hello the parent is known only from the tree;
            // record the error against it so `status` shows it from the start.
            let parent = status_tx
                .borrow()
                .parent
                .clone()
                .and_then(|p| SiteCode::parse(&p).ok())
                .or_else(|| super::scope::parent_of(store.site()));
            if parent.is_some() {
                let _ = store
                    .record_peer(PeerUpdate {
                        peer: parent,
                        error: Some(message),
                        ..Default::default()
                    })
                    .await;
            }
            if started.elapsed() >= config.healthy_after {
                backoff = new_backoff(&config);
            }
            let delay = match parent_retry_delay(&err, config.backoff_max) {
                Some(delay) => {
                    tracing::info!(
                        delay_ms = delay.as_millis() as u64,
                        "parent asked to retry later"
                    );
                    delay
                }
                None => {
                    let ceiling = if err.is_retriable() {
                        backoff.next().unwrap_or(config.backoff_max)
                    } else {
                        config.backoff_max
                    };
                    full_jitter(ceiling)
                }
            };
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    };
    (status_rx, fut)
}

/// Spawns the push loop on `tracker`; it stops when `token` is cancelled
/// (after draining the acks of batches in flight, bounded).
pub fn spawn_push_loop(
    store: Store,
    config: UpstreamConfig,
    tracker: &tokio_util::task::TaskTracker,
    token: CancellationToken,
) -> watch::Receiver<LinkStatus> {
    if config.tls.is_some() {
        tracker.spawn(renewal_loop(
            config.clone(),
            store.site().clone(),
            token.clone(),
        ));
    }
    let (status, fut) = push_loop(store, config, token);
    tracker.spawn(fut);
    status
}

/// How often a running site looks at its certificate's expiry.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);

/// Renews the certificate while the site runs: a session can last for
/// weeks, and the check at session start alone would let the certificate
/// expire under it. Dials the parent (with the current certificate) only
/// when renewal is due; failures are logged and retried at the next check.
async fn renewal_loop(config: UpstreamConfig, site: SiteCode, token: CancellationToken) {
    let Some(files) = config.tls.clone() else {
        return;
    };
    // The session-start check covers startup; this one the long sessions.
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + RENEWAL_CHECK, RENEWAL_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp();
        let due = std::fs::read_to_string(&files.cert)
            .ok()
            .and_then(|pem| crate::tls::renew::validity(&pem, &files.cert).ok())
            .is_some_and(|(not_before, not_after)| {
                crate::tls::renew::due(not_before, not_after, now)
            });
        // Not due, or the parent's renewal limit asked us to wait.
        if !due || crate::tls::renew::deferred(&files, std::time::Instant::now()).is_some() {
            continue;
        }
        let renewed = match opening("connect", connect(&config, &site)).await {
            Ok(channel) => match crate::tls::renew::renew_if_due(channel, &files, now).await {
                Err(e) if e.is_try_later() => {
                    tracing::info!(error = %e, "certificate renewal postponed");
                    continue;
                }
                other => other.map_err(|e| e.to_string()),
            },
            Err(e) => Err(error_chain(&e)),
        };
        match renewed {
            Ok(Some(r)) => {
                tracing::info!(serial = %r.serial, not_after = r.not_after, "certificate renewed over the link")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "certificate renewal failed; retried at the next check")
            }
        }
    }
}

/// The error and its sources, as one line for status and logs.
fn error_chain(err: &SyncError) -> String {
    let chain: Vec<String> =
        std::iter::successors(Some(err as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect();
    chain.join(": ").chars().take(500).collect()
}

/// Capped exponential growth from backon; the jitter is applied by
/// [`full_jitter`] (backon's own jitter adds on top of the delay instead of
/// drawing below it, which keeps reconnect waves synchronised).
fn new_backoff(config: &UpstreamConfig) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// The delay the parent asked for in `RetryInfo` (its rate limit), capped
/// at `cap` so no answer can park the link longer than our own backoff
/// would.
fn parent_retry_delay(err: &SyncError, cap: Duration) -> Option<Duration> {
    match err {
        SyncError::Status(status) => super::limit::retry_delay(status).map(|d| d.min(cap)),
        _ => None,
    }
}

/// "Full jitter" (AWS architecture blog): uniform in [0, ceiling], so 500
/// nodes coming back after an outage spread out instead of arriving in waves.
fn full_jitter(ceiling: Duration) -> Duration {
    ceiling.mul_f64(rand::rng().random::<f64>())
}

fn role_of(site: &SiteCode) -> v1::SiteRole {
    match site.role() {
        SiteRole::Node => v1::SiteRole::Node,
        SiteRole::Province => v1::SiteRole::Province,
        SiteRole::National => v1::SiteRole::National,
    }
}

async fn connect(config: &UpstreamConfig, site: &SiteCode) -> Result<Channel, SyncError> {
    let connect_err = |source| SyncError::Connect {
        endpoint: config.endpoint.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(config.endpoint.clone()).map_err(connect_err)?;
    if let Some(files) = &config.tls {
        // A renewal a crash interrupted is finished before the pair is read.
        crate::tls::renew::recover(files).map_err(|e| SyncError::Protocol(format!("{e:#}")))?;
        let bundle = Bundle::load(files)?;
        bundle.check_not_expired(chrono::Utc::now().timestamp())?;
        let parent = super::scope::parent_of(site).ok_or_else(|| {
            SyncError::Protocol(format!("site {site} has no parent to connect to"))
        })?;
        endpoint = endpoint
            .tls_config(bundle.client_config(&parent))
            .map_err(connect_err)?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    endpoint
        .connect()
        .await
        .map_err(|source| SyncError::Connect {
            endpoint: config.endpoint.clone(),
            source,
        })
}

/// Longest wait for each step that opens a session (connect, Hello,
/// opening Push, opening Pull). A parent that accepts the connection and
/// then says nothing — a half-open link, a stalled middlebox — would
/// otherwise hold the node until HTTP/2 keep-alive gives up (30 s + 20 s),
/// with no error logged and no new dial (found by the chaos harness,
/// issue 6).
const OPENING_TIMEOUT: Duration = Duration::from_secs(10);

/// `step` of opening a session, given up after [`OPENING_TIMEOUT`] as
/// retriable link trouble.
async fn opening<T>(
    step: &str,
    fut: impl Future<Output = Result<T, SyncError>>,
) -> Result<T, SyncError> {
    match tokio::time::timeout(OPENING_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(SyncError::Status(tonic::Status::deadline_exceeded(
            format!("{step}: no answer from the parent in {OPENING_TIMEOUT:?}"),
        ))),
    }
}

/// The next batch to push: the events after `after`, as a child's batch
/// this hub stored whole and kept ([`Store::take_relayed`]), or read from
/// the log, framed and compressed (stopping where a kept batch starts);
/// `None` when there is nothing to send. Its `batch_no` is the caller's.
/// A run read from the log is framed in `spare`, which comes back emptied
/// for the next batch, so the loop frames every batch in one buffer.
async fn next_batch(
    store: &Store,
    parent: &SiteCode,
    after: Seq,
    compression: v1::Compression,
    max_events: usize,
    max_bytes: usize,
    spare: &mut Vec<u8>,
) -> Result<Option<PushBatch>, SyncError> {
    let until = match store.take_relayed(after, compression as i32, max_bytes, max_events) {
        // The events of (after, through], all of them, as the child sent them.
        Some(Relayed::Batch(b)) => {
            return Ok(Some(PushBatch {
                batch_no: 0,
                after_seq: after.0,
                through_seq: b.through.0,
                compression: compression as i32,
                payload: b.compressed,
                event_count: b.event_count as u32,
                seqs: (after.0 + 1..=b.through.0).collect(),
            }));
        }
        Some(Relayed::Until(seq)) => Some(seq),
        None => None,
    };
    let request = |until| RunRequest {
        after,
        exclude_from: Some(parent.clone()),
        region: None,
        max_events,
        max_bytes,
        until,
    };
    let mut run = store
        .event_run_into(request(until), std::mem::take(spare))
        .await?;
    if until.is_some() && run.through <= after {
        // Nothing to read before the kept batch (a gap in the seqs): read
        // on through it rather than wait on it.
        run = store
            .event_run_into(request(None), run.into_buffer())
            .await?;
    }
    if run.through <= after {
        *spare = run.into_buffer();
        return Ok(None);
    }
    let batch = PushBatch {
        batch_no: 0,
        after_seq: after.0,
        through_seq: run.through.0,
        compression: compression as i32,
        payload: codec::compress(compression, &run.framed)?,
        event_count: run.len() as u32,
        seqs: run.events.iter().map(|(seq, _)| seq.0).collect(),
    };
    *spare = run.into_buffer();
    Ok(Some(batch))
}

/// One connected session: Hello, then push until the link fails or the
/// token is cancelled (`Ok` only for cancellation).
async fn session(
    store: &Store,
    config: &UpstreamConfig,
    token: &CancellationToken,
    status: &watch::Sender<LinkStatus>,
) -> Result<(), SyncError> {
    let channel = tokio::select! {
        _ = token.cancelled() => return Ok(()),
        c = opening("connect", connect(config, store.site())) => c?,
    };
    let client_channel = channel.clone();
    let mut client = ReplicationClient::new(channel)
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024);
    let site = store.site().clone();
    let mut head = store.watch_head();
    let head_seq = head.borrow().0;
    let hello = opening("Hello", async {
        Ok(client
            .hello(HelloRequest {
                protocol_version: PROTOCOL_VERSION,
                site: site.to_string(),
                role: role_of(&site) as i32,
                compressions: codec::PREFERENCE.iter().map(|c| *c as i32).collect(),
                wall_clock_ms: store.wall_clock_ms(),
                head_seq,
                software: concat!("lapor-sync ", env!("CARGO_PKG_VERSION")).into(),
            })
            .await?
            .into_inner())
    })
    .await?;
    let parent = SiteCode::parse(&hello.site)
        .map_err(|e| SyncError::Protocol(format!("parent site: {e}")))?;
    let compression = v1::Compression::try_from(hello.compression)
        .map_err(|_| SyncError::Protocol(format!("unknown compression {}", hello.compression)))?;
    let now = now_ms();
    store
        .record_peer(PeerUpdate {
            peer: Some(parent.clone()),
            seen_at_ms: Some(now),
            clock_skew_ms: super::clock_skew(hello.wall_clock_ms, store.wall_clock_ms()),
            ..Default::default()
        })
        .await?;
    let mut acked = Seq(hello.push_cursor);
    on_acked(store, &parent, acked).await?;
    status.send_modify(|s| {
        s.connected = true;
        s.parent = Some(parent.to_string());
        s.acked_seq = acked.0;
        s.last_contact_ms = Some(now);
    });
    tracing::info!(parent = %parent, cursor = acked.0, ?compression, "connected to parent");
    if let Some(files) = &config.tls {
        // Over this link, while the certificate still opens it. A failure
        // is logged and retried at the next session; the link goes on.
        match crate::tls::renew::renew_if_due(
            client_channel.clone(),
            files,
            chrono::Utc::now().timestamp(),
        )
        .await
        {
            Ok(Some(renewed)) => {
                tracing::info!(serial = %renewed.serial, not_after = renewed.not_after, "certificate renewed over the link")
            }
            Ok(None) => {}
            // The parent's renewal limit: asked again after its delay.
            Err(e) if e.is_try_later() => {
                tracing::info!(error = %e, "certificate renewal postponed")
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "certificate renewal failed; the current certificate stays in use")
            }
        }
    }

    let batch_events = config
        .batch_events
        .min(hello.max_batch_events.max(1) as usize);
    // Leave room for framing: the parent's limit is on the compressed payload,
    // and an incompressible batch is about as large as its raw form.
    let batch_bytes = config.batch_bytes.min(
        (hello.max_batch_bytes as usize)
            .saturating_sub(64 * 1024)
            .max(1024),
    );
    let (tx, rx) = mpsc::channel::<PushMessage>(64);
    tx.send(PushMessage {
        kind: Some(push_message::Kind::Open(PushOpen {
            session_id: hello.session_id.clone(),
        })),
    })
    .await
    .map_err(|_| SyncError::Closed)?;
    let mut acks = opening("open Push", async {
        Ok(client.push(ReceiverStream::new(rx)).await?.into_inner())
    })
    .await?;
    let pulled = store.cursor(parent.clone(), CursorKind::PullIn).await?;
    let mut pull = opening("open Pull", async {
        Ok(client
            .pull(PullRequest {
                session_id: hello.session_id.clone(),
                after_seq: pulled.0,
                compressions: codec::PREFERENCE.iter().map(|c| *c as i32).collect(),
            })
            .await?
            .into_inner())
    })
    .await?;

    let mut next_after = acked;
    // Acks are recorded beside the loop, latest first (`record_acks`): the
    // loop goes on filling the window while the store commits.
    let (acked_tx, acked_rx) = watch::channel(acked);
    let recorder = record_acks(store, &parent, acked_rx);
    tokio::pin!(recorder);
    let mut in_flight: VecDeque<(u64, Seq, usize)> = VecDeque::new();
    let mut in_flight_bytes = 0usize;
    let mut batch_no = 0u64;
    let mut caught_up = false;
    // Every batch is framed in this one buffer before it is compressed.
    let mut framing = Vec::new();
    loop {
        while !caught_up && in_flight_bytes < config.window_bytes {
            let Some(mut batch) = next_batch(
                store,
                &parent,
                next_after,
                compression,
                batch_events,
                batch_bytes,
                &mut framing,
            )
            .await?
            else {
                caught_up = true;
                break;
            };
            batch_no += 1;
            batch.batch_no = batch_no;
            let size = batch.payload.len();
            let through = Seq(batch.through_seq);
            tx.send(PushMessage {
                kind: Some(push_message::Kind::Batch(batch)),
            })
            .await
            .map_err(|_| SyncError::Closed)?;
            in_flight.push_back((batch_no, through, size));
            in_flight_bytes += size;
            next_after = through;
        }
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                // What was acked is recorded before waiting for the rest.
                if let Err(e) = on_acked(store, &parent, acked).await {
                    tracing::info!(parent = %parent, error = %e, "could not record an ack while shutting down");
                }
                drain(store, &parent, &mut acks, &mut in_flight, config.drain_timeout, status).await;
                return Ok(());
            }
            failed = &mut recorder => return Err(failed),
            msg = acks.message() => {
                let ack = msg?.ok_or(SyncError::Closed)?;
                while let Some(&(n, _, size)) = in_flight.front() {
                    if n > ack.batch_no {
                        break;
                    }
                    in_flight.pop_front();
                    in_flight_bytes -= size;
                }
                acked = Seq(ack.through_seq);
                acked_tx.send_replace(acked);
                if ack.quarantined > 0 {
                    tracing::warn!(parent = %parent, batch = ack.batch_no, quarantined = ack.quarantined, "parent quarantined records");
                }
                status.send_modify(|s| {
                    s.acked_seq = acked.0;
                    s.last_contact_ms = Some(now_ms());
                    s.last_error = None;
                });
            }
            batch = pull.message() => {
                let batch = batch?.ok_or(SyncError::Closed)?;
                let quarantined = super::pull::apply_pull_batch(store, &parent, batch).await?;
                if quarantined > 0 {
                    tracing::warn!(parent = %parent, quarantined, "quarantined records pulled from the parent");
                }
                status.send_modify(|s| s.last_contact_ms = Some(now_ms()));
            }
            changed = head.changed(), if caught_up => {
                if changed.is_err() {
                    return Ok(());
                }
                caught_up = false;
            }
        }
    }
}

/// Records each ack the push loop passes on, the latest one when several
/// came while the store was committing the one before: an ack a node
/// records later is one it re-sends at most (Hello gives the parent's own
/// cursor), and recording one per batch in the loop kept the loop from
/// reading the next batch for two commits every time. Ends only with the
/// error of a failed record.
async fn record_acks(
    store: &Store,
    parent: &SiteCode,
    mut acked: watch::Receiver<Seq>,
) -> SyncError {
    loop {
        if acked.changed().await.is_err() {
            // The loop that owns the sender has ended, and with it this.
            return std::future::pending().await;
        }
        let seq = *acked.borrow_and_update();
        if let Err(e) = on_acked(store, parent, seq).await {
            return e;
        }
    }
}

/// What the parent holds durably moved to `acked`: record the cursor, the
/// custody receipt for our own events, and — at a province hub — turn it
/// into receipts for the children whose events those were.
async fn on_acked(store: &Store, parent: &SiteCode, acked: Seq) -> Result<(), SyncError> {
    let cursor = store.set_cursor(CursorUpdate {
        peer: parent.clone(),
        kind: CursorKind::PushOut,
        seq: acked,
    });
    if acked == Seq(0) {
        return Ok(cursor.await?);
    }
    let tier = match parent.role() {
        SiteRole::National => CustodyTier::National,
        _ => CustodyTier::Province,
    };
    // Queued together, so they share a group commit (none reads another's
    // writes).
    let custody = store.record_custody(tier, acked, now_ms());
    if parent.role() == SiteRole::National {
        tokio::try_join!(
            cursor,
            custody,
            store.advance_receipts(parent.clone(), acked)
        )?;
    } else {
        tokio::try_join!(cursor, custody)?;
    }
    Ok(())
}

/// On shutdown: stop sending and wait (bounded) for the acks of batches in
/// flight, so they are recorded and not re-sent after restart.
async fn drain(
    store: &Store,
    parent: &SiteCode,
    acks: &mut tonic::Streaming<v1::PushAck>,
    in_flight: &mut VecDeque<(u64, Seq, usize)>,
    timeout: Duration,
    status: &watch::Sender<LinkStatus>,
) {
    let Some(&(last, _, _)) = in_flight.back() else {
        return;
    };
    let wait = async {
        while let Ok(Some(ack)) = acks.message().await {
            if let Err(e) = on_acked(store, parent, Seq(ack.through_seq)).await {
                tracing::info!(parent = %parent, error = %e, "could not record an ack while shutting down");
                break;
            }
            status.send_modify(|s| s.acked_seq = ack.through_seq);
            if ack.batch_no >= last {
                break;
            }
        }
    };
    if tokio::time::timeout(timeout, wait).await.is_err() {
        tracing::info!(parent = %parent, "shutdown before every batch in flight was acked; they will be re-sent");
    }
    in_flight.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_secs(10)) <= Duration::from_secs(10));
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut cfg = UpstreamConfig::new("http://127.0.0.1:1");
        cfg.backoff_min = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_secs(2);
        let delays: Vec<_> = new_backoff(&cfg).take(8).collect();
        assert_eq!(delays[0].as_millis(), 100);
        assert_eq!(delays[1].as_millis(), 200);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn a_parents_retry_info_replaces_the_backoff_up_to_its_cap() {
        use super::super::limit::{RateLimit, exhausted};
        let cap = Duration::from_secs(60);
        let limited = |delay| SyncError::Status(exhausted("11.13", &RateLimit::default(), delay));
        let asked = parent_retry_delay(&limited(Duration::from_secs(2)), cap).unwrap();
        assert!(asked >= Duration::from_secs(2) && asked < Duration::from_secs(3));
        assert_eq!(
            parent_retry_delay(&limited(Duration::from_secs(3600)), cap),
            Some(cap)
        );
        assert_eq!(
            parent_retry_delay(&SyncError::Status(tonic::Status::unavailable("x")), cap),
            None
        );
        assert_eq!(parent_retry_delay(&SyncError::Closed, cap), None);
    }

    #[test]
    fn link_trouble_is_retriable_and_refusals_are_not() {
        assert!(SyncError::Status(tonic::Status::unavailable("x")).is_retriable());
        assert!(SyncError::Closed.is_retriable());
        assert!(!SyncError::Status(tonic::Status::permission_denied("x")).is_retriable());
        assert!(
            !SyncError::Status(tonic::Status::failed_precondition("protocol version 9"))
                .is_retriable()
        );
        assert!(
            SyncError::Status(tonic::Status::failed_precondition("gap; say Hello again"))
                .is_retriable()
        );
    }

    /// Regression (issue 6): a parent that never answers ends the opening
    /// of a session as retriable link trouble, so the loop dials again.
    #[tokio::test(start_paused = true)]
    async fn a_silent_parent_ends_the_session_opening_as_retriable_link_trouble() {
        let err = opening("Hello", std::future::pending::<Result<(), SyncError>>())
            .await
            .unwrap_err();
        assert!(err.is_retriable(), "{err}");
        assert!(err.to_string().contains("Hello: no answer"), "{err}");
    }
}
