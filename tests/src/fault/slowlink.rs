//! The slow-link scenario: Gayo Lues (11.13) comes back after two weeks
//! offline over a 256 kbit/s link with a 600 ms round trip (through the
//! fault proxy), carrying its backlog — complaints with their status
//! events — while live traffic goes on: new complaints at 11.13 and at
//! 11.04, and national commenting on 11.13's complaints (which must travel
//! down the same slow link).
//!
//! It reports the time to drain the backlog (the province has acked it and
//! national holds every backlog complaint with its events), the bytes each
//! way, and what a cut in the middle of
//! a batch costs. "That batch": the node keeps up to an 8 MiB window of
//! batches (each up to 1 MiB / 2,000 events) in flight, so a cut can catch
//! several sent-but-unacked batches. On reconnect, Hello resumes from the
//! province's *durable* cursor, so a batch the province committed is not
//! sent again even if its ack was lost; what can arrive twice is only a
//! batch whose commit raced the reconnect. The check is therefore that the
//! province counts at most one batch of duplicates from 11.13
//! (`received_duplicates` ≤ 2,000 events, and ≤ the events unacked at the
//! cut), and the checker finds nothing lost, duplicated or diverged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use lapor_shared::lifecycle::EventKind;
use tokio_util::sync::CancellationToken;

use super::checker::{Findings, check};
use super::federation::{Federation, FederationOptions};
use super::observe;
use super::proxy::Direction;
use super::schedule::wait_for_convergence;
use super::workload::{Attempt, History, intake_client, record_add_event, record_submit};
use crate::site::{hub_child, status_json};
use crate::{Binary, wait_until};

/// The events of one push batch at most (the node's `batch_events`).
pub const BATCH_EVENTS: u64 = 2_000;

/// The scenario's shape.
#[derive(Debug, Clone)]
pub struct SlowLinkConfig {
    /// Backlog complaints at 11.13 (two weeks at ~30 a day).
    pub complaints: usize,
    /// Bytes per second each way.
    pub bytes_per_s: u64,
    /// One-way delay (the round trip is twice this).
    pub one_way: Duration,
    /// Cut the link in the middle of a batch.
    pub cut: bool,
    /// Live traffic alongside the backlog (off only to measure what a cut
    /// costs: with the backlog alone, two runs differ by the cut only).
    pub live: bool,
    /// Longest drain before the scenario fails.
    pub deadline: Duration,
}

impl Default for SlowLinkConfig {
    fn default() -> Self {
        SlowLinkConfig {
            complaints: 420,
            bytes_per_s: 256_000 / 8,
            one_way: Duration::from_millis(300),
            cut: true,
            live: true,
            deadline: Duration::from_secs(240),
        }
    }
}

/// What the scenario measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlowLinkReport {
    /// Seconds to start the federation and load the backlog offline.
    pub setup_s: f64,
    pub backlog_complaints: u64,
    /// Backlog events (the `created` ones included).
    pub backlog_events: u64,
    pub live_ops: u64,
    pub drain_s: f64,
    pub converge_s: f64,
    /// Bytes over the slow link, node → province and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Where the cut fell (bytes up since the link opened), if it did.
    pub cut_at_bytes_up: Option<u64>,
    /// Events unacked at the node right after the cut.
    pub unacked_at_cut: Option<u64>,
    /// `received_duplicates` of 11.13 at the province.
    pub received_duplicates: u64,
    /// The checker's findings, one per line (empty when clean).
    pub findings: Vec<String>,
}

impl SlowLinkReport {
    /// Nothing lost, duplicated or diverged, and the re-send bounded by one
    /// batch (and by what was unacked at the cut).
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
            && self.received_duplicates <= BATCH_EVENTS
            && self
                .unacked_at_cut
                .is_none_or(|u| self.received_duplicates <= u)
    }
}

const NODE: usize = 2;
const OTHER_NODE: usize = 3;

/// The status events a district office writes on a complaint it handled
/// in its two weeks offline (with the `created` one, six per complaint, so
/// the backlog spans more than one 2,000-event batch).
const BACKLOG_STATUS: [EventKind; 5] = [
    EventKind::Verified,
    EventKind::Dispositioned,
    EventKind::Responded,
    EventKind::ReporterReplied,
    EventKind::Commented,
];

/// Runs the scenario.
///
/// # Errors
/// The harness failed, or the backlog did not drain by the deadline.
pub async fn run(config: &SlowLinkConfig) -> anyhow::Result<SlowLinkReport> {
    let started = Instant::now();
    let fed = Federation::start(&FederationOptions::default()).await?;
    let node = fed.info(NODE);
    let link = fed.uplink(NODE).context("11.13 has an uplink")?;
    // Offline: nothing gets through, and the session it had is gone.
    link.set_refusing(true);
    link.cut();
    let history = Mutex::new(History::default());
    let client = intake_client(node.addr, Duration::from_secs(10))?;
    let ids: Vec<String> = futures::stream::iter(0..config.complaints as u64)
        .map(|n| {
            let (client, history) = (&client, &history);
            async move {
                let (id, attempt) = record_submit(client, node.code, n, history).await;
                if attempt != Attempt::Ok {
                    return Err(anyhow::anyhow!("backlog submit {n}: {attempt:?}"));
                }
                for kind in BACKLOG_STATUS {
                    let (attempt, _) =
                        record_add_event(client, node.code, &id, node.code, kind, history).await;
                    if attempt != Attempt::Ok {
                        bail!("backlog {kind} on {id}: {attempt:?}");
                    }
                }
                Ok(id)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let node_status = status_json(Binary::Node, fed.config(NODE)).await?;
    let backlog_events = node_status["events"].as_u64().unwrap_or(0);
    let backlog_head = node_status["head_seq"]
        .as_u64()
        .context("the node's status has a head_seq")?;

    let before = link.counters();
    link.set_latency(config.one_way, config.one_way);
    link.set_bandwidth(Some(config.bytes_per_s), Some(config.bytes_per_s));
    link.set_refusing(false);
    let opened = Instant::now();

    let stop = CancellationToken::new();
    let live = async {
        if config.live {
            live_traffic(&fed, &ids, &history, stop.clone()).await
        } else {
            0
        }
    };
    let watch = async {
        let mut cut = None;
        if config.cut {
            cut = Some(cut_mid_batch(&fed, before.bytes_up).await?);
        }
        let drained = drain(&fed, &ids, backlog_head, config.deadline).await;
        stop.cancel();
        drained.map(|()| (opened.elapsed(), cut))
    };
    let (live_ops, watched) = tokio::join!(live, watch);
    let (drain_time, cut) = watched?;

    let after = link.counters();
    let history = history
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let converge_started = Instant::now();
    let converged = wait_for_convergence(&fed, &history, config.deadline).await;
    let converge_s = converge_started.elapsed().as_secs_f64();
    let views = observe::views(&fed).await?;
    let mut findings: Findings = check(&history, &views);
    if let Err(why) = converged {
        findings.diverged.push(why);
    }
    let child = hub_child(fed.config(1), node.code)
        .await?
        .context("11.13 is a child of the province")?;
    Ok(SlowLinkReport {
        setup_s: (opened - started).as_secs_f64(),
        backlog_complaints: ids.len() as u64,
        backlog_events,
        live_ops,
        drain_s: drain_time.as_secs_f64(),
        converge_s,
        bytes_up: after.bytes_up - before.bytes_up,
        bytes_down: after.bytes_down - before.bytes_down,
        cut_at_bytes_up: cut.map(|(at, _)| at),
        unacked_at_cut: cut.map(|(_, unacked)| unacked),
        received_duplicates: child["received_duplicates"].as_u64().unwrap_or(u64::MAX),
        findings: findings.lines(),
    })
}

/// Once the province has acked the node's first batch, cuts the link
/// 16 kB into what follows (the middle of the next batch); returns the
/// bytes up at the cut and the events the node had unacked right after.
async fn cut_mid_batch(fed: &Federation, base_up: u64) -> anyhow::Result<(u64, u64)> {
    let config = fed.config(NODE);
    wait_until(
        Duration::from_secs(120),
        "the first batch acked",
        || async {
            let s = status_json(Binary::Node, config).await?;
            Ok((s["upstream"]["acked_seq"].as_u64().unwrap_or(0) > 0).then_some(()))
        },
    )
    .await?;
    let link = fed.uplink(NODE).context("11.13 has an uplink")?;
    let cuts = link.counters().cuts;
    link.cut_after(Direction::Up, 16 * 1024);
    wait_until(Duration::from_secs(60), "the cut mid-batch", || async {
        Ok((link.counters().cuts > cuts).then_some(()))
    })
    .await?;
    let at = link.counters().bytes_up - base_up;
    let s = status_json(Binary::Node, config).await?;
    let unacked = s["upstream"]["queued_events"].as_u64().unwrap_or(u64::MAX);
    Ok((at, unacked))
}

/// Waits until the province has acked the node's backlog (its seqs
/// through `backlog_head`) and national holds every backlog complaint with
/// all its status events. Live traffic keeps the node's queue from ever
/// being empty, so the backlog's own seqs are the measure.
async fn drain(
    fed: &Federation,
    ids: &[String],
    backlog_head: u64,
    deadline: Duration,
) -> anyhow::Result<()> {
    let national = fed.info(0).addr;
    let config = fed.config(NODE);
    let events_each = 1 + BACKLOG_STATUS.len() as u32;
    wait_until(deadline, "the backlog to drain to national", || async {
        let s = status_json(Binary::Node, config).await?;
        if s["upstream"]["acked_seq"].as_u64().unwrap_or(0) < backlog_head {
            return Ok(None);
        }
        let held = observe::holdings(national).await?;
        Ok(ids
            .iter()
            .all(|id| {
                held.complaints
                    .get(id)
                    .is_some_and(|c| c.event_count >= events_each)
            })
            .then_some(()))
    })
    .await
}

/// Live traffic until `stop`: a complaint at 11.13 and one at 11.04 every
/// 400 ms, and national commenting on a backlog complaint every second.
/// Returns the operations sent.
async fn live_traffic(
    fed: &Federation,
    backlog: &[String],
    history: &Mutex<History>,
    stop: CancellationToken,
) -> u64 {
    let timeout = Duration::from_secs(5);
    let node = fed.info(NODE);
    let other = fed.info(OTHER_NODE);
    let national = fed.info(0);
    let (Ok(at_node), Ok(at_other), Ok(at_national)) = (
        intake_client(node.addr, timeout),
        intake_client(other.addr, timeout),
        intake_client(national.addr, timeout),
    ) else {
        return 0;
    };
    let mut ops = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(400));
    // Bounded by `stop`, which the drain's deadline always fires.
    for n in 1_000_000u64.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        record_submit(&at_node, node.code, n, history).await;
        record_submit(&at_other, other.code, n, history).await;
        ops += 2;
        if n % 3 == 0
            && let Some(id) = backlog.get((n as usize * 7) % backlog.len().max(1))
        {
            record_add_event(
                &at_national,
                national.code,
                id,
                node.code,
                EventKind::Commented,
                history,
            )
            .await;
            ops += 1;
        }
    }
    ops
}
