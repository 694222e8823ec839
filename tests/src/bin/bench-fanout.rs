//! Fan-out benchmark (issue 4, "Speed"): update latency national → district
//! with many children connected to one province hub, and that hub's
//! resident memory.
//!
//! `cargo run --release -p lapor-tests --bin bench-fanout [-- --children N --updates N]`
//!
//! ```text
//!  bench process                        real lapor-hub processes (release)
//!  ─────────────                        ──────────────────────────────────
//!  Intake.AddEvent(Commented) ───────▶  national "00"
//!                                          │ Pull (the province's own link)
//!  probe: Pull as "11" ◀───────────────────┤ (hop 1 only, for the split)
//!                                          ▼
//!  N children: Hello + Pull as ◀──────  province "11"  ([upstream] = national)
//!  the 23 Aceh districts
//! ```
//!
//! The hubs are the release binaries, built by [`lapor_tests::binary`] with
//! the profile this benchmark runs under (so `--release` builds release
//! hubs). One complaint per Aceh district is born the way a node makes it:
//! an in-process district store (`Store::submit`) pushing with the node's
//! own push loop to the province, which forwards to national; those seed
//! links are closed before the children connect. Each child is a
//! lightweight client with its own TCP connection, its own Hello (as its
//! district's node) and one Pull stream, timestamping every batch as it
//! arrives. Each round, national writes one `Commented` event on one
//! district's complaint; the latency of every child of that district is
//! from just before the AddEvent call to the arrival of the batch holding
//! that event. A round waits until every interested child has the event (or
//! a deadline) plus a short gap, so the figure is latency, not queueing.
//! A probe pulls from national under the province's site code (a second
//! session for "11" there, which national allows) so the national →
//! province hop can be told apart from the province → child hop; it also
//! refreshes national's peer row for "11", which nothing here reads.
//! The last line of output is one JSON object.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};

use lapor_shared::domain::SiteCode;
use lapor_shared::hlc::SystemClock;
use lapor_shared::proto::convert;
use lapor_shared::proto::v1::{self, replication_client::ReplicationClient};
use lapor_shared::replication::client::{UpstreamConfig, spawn_push_loop};
use lapor_shared::replication::{PROTOCOL_VERSION, codec};
use lapor_shared::store::{NewComplaint, Store, StoreConfig};
use lapor_tests::site::{SiteProcess, init_hub, init_hub_with_upstream};
use lapor_tests::{Binary, submit_request, wait_until};

#[derive(Parser)]
struct Args {
    /// Lightweight children connected to the province hub.
    #[arg(long, default_value_t = 500)]
    children: usize,
    /// Measured updates written at national (after one warm-up per district).
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// Pause after a round completes, before the next update.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
    /// A child that has not received a round's event by then counts as a
    /// miss, at this latency.
    #[arg(long, default_value_t = 5_000)]
    round_timeout_ms: u64,
}

/// The province whose hub the children connect to (Aceh, 23 districts).
const PROVINCE: &str = "11";
/// Setup steps (hub start, seeding, connecting) that take longer fail.
const SETUP_DEADLINE: Duration = Duration::from_secs(120);

/// One pulled event reaching a child (or the probe).
struct Arrival {
    /// Index of the child; [`PROBE`] for the probe at national.
    child: usize,
    event_id: String,
    at: Instant,
}

/// `Arrival::child` of the probe that pulls from national as the province.
const PROBE: usize = usize::MAX;

fn endpoint(url: &str) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true))
}

/// Hello as `site`, then Pull from the start: returns the open stream.
async fn open_pull(
    url: &str,
    site: &str,
    role: v1::SiteRole,
) -> anyhow::Result<tonic::Streaming<v1::PullBatch>> {
    tokio::time::timeout(
        Duration::from_secs(30),
        open_pull_unbounded(url, site, role),
    )
    .await
    .with_context(|| format!("Hello and Pull as {site} took over 30 s"))?
}

async fn open_pull_unbounded(
    url: &str,
    site: &str,
    role: v1::SiteRole,
) -> anyhow::Result<tonic::Streaming<v1::PullBatch>> {
    let channel: Channel = endpoint(url)?
        .connect()
        .await
        .with_context(|| format!("connect to {url}"))?;
    let mut client = ReplicationClient::new(channel);
    let compressions: Vec<i32> = codec::PREFERENCE.iter().map(|c| *c as i32).collect();
    let hello = client
        .hello(v1::HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            site: site.to_owned(),
            role: role as i32,
            compressions: compressions.clone(),
            wall_clock_ms: unix_now_ms(),
            head_seq: 0,
            software: "bench-fanout".into(),
        })
        .await
        .with_context(|| format!("Hello as {site}"))?
        .into_inner();
    let stream = client
        .pull(v1::PullRequest {
            session_id: hello.session_id,
            after_seq: 0,
            compressions,
        })
        .await
        .with_context(|| format!("Pull as {site}"))?
        .into_inner();
    Ok(stream)
}

/// `text` (the province hub's TOML) with the per-child rate limit out of
/// the way. The benchmark's children are ~22 per district code, and the
/// hub's token bucket is per site code (a real district has one node), so
/// at the default (burst 30) their Hellos would be refused at connect time.
/// The limit plays no part once the streams are open.
fn without_child_rate_limit(text: &str) -> String {
    const RATE: &str = "child_requests_per_second = 1000000.0";
    const BURST: &str = "child_burst = 1000000";
    let mut found = false;
    let mut out: Vec<&str> = text
        .lines()
        .map(|line| {
            if line.starts_with("child_requests_per_second") {
                found = true;
                RATE
            } else if line.starts_with("child_burst") {
                BURST
            } else {
                line
            }
        })
        .collect();
    if !found {
        out.extend(["", "[limits]", RATE, BURST]);
    }
    out.join("\n") + "\n"
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Drains a Pull stream until it ends or `token` is cancelled, reporting
/// every event with the instant its batch arrived (taken before decoding,
/// so the child's own decode time is not counted).
async fn drain(
    child: usize,
    mut stream: tonic::Streaming<v1::PullBatch>,
    arrivals: mpsc::UnboundedSender<Arrival>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let batch = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            batch = stream.message() => batch,
        };
        let at = Instant::now();
        let Some(batch) = batch.with_context(|| format!("child {child}: pull stream failed"))?
        else {
            anyhow::bail!("child {child}: the hub closed the pull stream");
        };
        if batch.event_count == 0 {
            continue;
        }
        let events = codec::decode_batch(batch.compression, &batch.payload)
            .with_context(|| format!("child {child}: decode batch"))?;
        for event in events.events {
            let sent = arrivals.send(Arrival {
                child,
                event_id: event.event_id,
                at,
            });
            if sent.is_err() {
                return Ok(());
            }
        }
    }
}

/// One complaint per district of [`PROVINCE`], born at an in-process
/// district store and pushed with the node's push loop to the province,
/// until national holds them all. Returns (district, complaint id) pairs.
async fn seed(
    dir: &std::path::Path,
    districts: &[String],
    province: &SiteProcess,
    national: &SiteProcess,
) -> anyhow::Result<Vec<(String, String)>> {
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let mut stores = Vec::new();
    let mut complaints = Vec::new();
    for (n, district) in districts.iter().enumerate() {
        let store = Store::open(StoreConfig {
            path: dir.join(format!("seed-{district}.db")),
            site: SiteCode::parse(district)?,
            clock: SystemClock::default(),
        })?;
        let request = submit_request(district, n as u64, "");
        let intake = convert::intake_from_proto(request.intake.unwrap_or_default())
            .map_err(|v| anyhow::anyhow!("sample intake for {district}: {v}"))?;
        let submitted = store
            .submit(NewComplaint {
                complaint_id: None,
                intake,
                actor: request.actor,
            })
            .await?;
        complaints.push((district.clone(), submitted.complaint_id.to_string()));
        spawn_push_loop(
            store.clone(),
            UpstreamConfig::new(province.endpoint()),
            &tracker,
            token.clone(),
        );
        stores.push(store);
    }
    let want = districts.len() as u64;
    wait_until(
        SETUP_DEADLINE,
        "every seed complaint at national",
        || async { Ok((national.count().await? >= want).then_some(())) },
    )
    .await?;
    token.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(30), tracker.wait())
        .await
        .context("seed push loops did not stop")?;
    for store in stores {
        store.close().await?;
    }
    Ok(complaints)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB, and its thread count.
fn memory(pid: u32) -> anyhow::Result<(f64, f64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((
        field("VmRSS:")? as f64 / 1024.0,
        field("VmHWM:")? as f64 / 1024.0,
        field("Threads:")?,
    ))
}

/// The 1-minute load average: the machine is shared, and a busy one shows
/// up directly in the tail latency.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Nearest-rank percentile of sorted latencies, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What one round measured.
struct Round {
    /// Per interested child: arrival − just before AddEvent.
    latencies: Vec<Duration>,
    /// Children that did not get the event before the deadline.
    missed: usize,
    /// AddEvent round trip at national (its durable commit included).
    add_event: Duration,
    /// Arrival at the probe pulling from national as the province.
    hop1: Option<Duration>,
}

/// Writes one Commented event on `complaint` at national and waits until
/// every child in `interested` (and the probe) has it, or `timeout`.
async fn round(
    intake: &mut v1::intake_client::IntakeClient<Channel>,
    complaint: &str,
    note: String,
    interested: &[usize],
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    timeout: Duration,
) -> anyhow::Result<Round> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let mut waiting: HashSet<usize> = interested.iter().copied().collect();
    let mut hop1 = None;
    let started = Instant::now();
    intake
        .add_event(v1::AddEventRequest {
            event_id: event_id.clone(),
            complaint_id: complaint.to_owned(),
            actor: "admin.nasional".into(),
            body: Some(v1::EventBody {
                kind: Some(v1::event_body::Kind::Commented(v1::Commented {
                    body: note,
                })),
            }),
        })
        .await
        .context("AddEvent at national")?;
    let add_event = started.elapsed();
    let mut latencies = Vec::with_capacity(waiting.len());
    let deadline = tokio::time::Instant::from_std(started + timeout);
    while !waiting.is_empty() || hop1.is_none() {
        let arrival = match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(arrival)) => arrival,
            Ok(None) => anyhow::bail!("every child task ended"),
            Err(_) => break,
        };
        // Events of earlier rounds that came after their deadline, and the
        // echo of other districts' events to the probe, are not this round's.
        if arrival.event_id != event_id {
            continue;
        }
        if arrival.child == PROBE {
            hop1 = Some(arrival.at - started);
        } else if waiting.remove(&arrival.child) {
            latencies.push(arrival.at - started);
        }
    }
    let missed = waiting.len();
    latencies.extend(std::iter::repeat_n(timeout, missed));
    Ok(Round {
        latencies,
        missed,
        add_event,
        hop1,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.children > 0 && args.updates > 0,
        "--children and --updates must be at least 1"
    );
    let started = Instant::now();
    // Before anything of ours runs: once updates flow, the province hub's
    // own blocking threads count in the load average too.
    let load_before = load_average();
    // Declared first so it is dropped last, after the hubs are killed.
    let dir = tempfile::tempdir()?;
    let districts: Vec<String> = lapor_shared::regions::districts_of(PROVINCE)
        .map(|r| r.code.to_owned())
        .collect();
    anyhow::ensure!(!districts.is_empty(), "no districts for {PROVINCE}");

    eprintln!("building and starting the hubs (national 00, province {PROVINCE})");
    lapor_tests::binary(Binary::Hub)?;
    eprintln!("lapor-hub built in {:.1}s", started.elapsed().as_secs_f64());
    let national =
        SiteProcess::start(Binary::Hub, &init_hub(dir.path(), "national", "00").await?).await?;
    let province_config =
        init_hub_with_upstream(dir.path(), "province", PROVINCE, Some(&national.endpoint()))
            .await?;
    let text = std::fs::read_to_string(&province_config)
        .with_context(|| format!("read {}", province_config.display()))?;
    std::fs::write(&province_config, without_child_rate_limit(&text))
        .with_context(|| format!("write {}", province_config.display()))?;
    let province = SiteProcess::start(Binary::Hub, &province_config).await?;

    eprintln!(
        "seeding one complaint in each of {} districts",
        districts.len()
    );
    let complaints = seed(dir.path(), &districts, &province, &national).await?;

    eprintln!("connecting {} children to the province hub", args.children);
    let token = CancellationToken::new();
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let probe = open_pull(&national.endpoint(), PROVINCE, v1::SiteRole::Province).await?;
    tasks.spawn(drain(PROBE, probe, arrivals_tx.clone(), token.clone()));
    let mut of_district: Vec<Vec<usize>> = vec![Vec::new(); districts.len()];
    let connect_started = Instant::now();
    // Connected a few dozen at a time: a reconnect storm is not what this
    // measures.
    let mut connecting = JoinSet::new();
    for child in 0..args.children {
        let d = child % districts.len();
        of_district[d].push(child);
        let url = province.endpoint();
        let site = districts[d].clone();
        connecting.spawn(async move {
            (
                child,
                open_pull(&url, &site, v1::SiteRole::Node)
                    .await
                    .with_context(|| format!("child {child} ({site})")),
            )
        });
        if connecting.len() >= 50 {
            let (child, stream) = connecting.join_next().await.context("connecting")??;
            tasks.spawn(drain(child, stream?, arrivals_tx.clone(), token.clone()));
        }
        anyhow::ensure!(
            connect_started.elapsed() < SETUP_DEADLINE,
            "connecting children took over {SETUP_DEADLINE:?}"
        );
    }
    while let Some(joined) = connecting.join_next().await {
        let (child, stream) = joined?;
        tasks.spawn(drain(child, stream?, arrivals_tx.clone(), token.clone()));
    }
    drop(arrivals_tx);
    eprintln!(
        "{} children connected in {:.1}s",
        args.children,
        connect_started.elapsed().as_secs_f64()
    );

    let (idle_rss, _, idle_threads) = memory(province.pid()?)?;
    eprintln!(
        "province hub with every child connected, before any update: VmRSS {idle_rss:.1} MiB, {idle_threads} threads"
    );

    let mut intake = national.intake().await?;
    let timeout = Duration::from_millis(args.round_timeout_ms);
    let gap = Duration::from_millis(args.gap_ms);
    // Warm-up: one update per district proves every stream live and warms
    // the hubs' caches; not counted.
    for (d, (_, complaint)) in complaints.iter().enumerate() {
        let r = round(
            &mut intake,
            complaint,
            format!("pemanasan {d}"),
            &of_district[d],
            &mut arrivals,
            SETUP_DEADLINE,
        )
        .await?;
        anyhow::ensure!(
            r.missed == 0 && r.hop1.is_some(),
            "warm-up: {} children of {} never got their update",
            r.missed,
            districts[d]
        );
        tokio::time::sleep(gap).await;
    }

    eprintln!(
        "measuring {} updates (load average {})",
        args.updates,
        load_average()
    );
    let mut latencies = Vec::new();
    let mut add_event = Vec::new();
    let mut hop1 = Vec::new();
    // Per pair: latency minus its round's hop 1, i.e. the province's own
    // share (its commit of the pulled event and the fan-out to children).
    let mut hop2 = Vec::new();
    // Per round: last interested child's arrival minus the first's, i.e.
    // the fan-out alone (no commit, no fsync in it).
    let mut spread = Vec::new();
    let mut missed = 0;
    let measure_started = Instant::now();
    for k in 0..args.updates {
        let d = k % complaints.len();
        let r = round(
            &mut intake,
            &complaints[d].1,
            format!("tindak lanjut {k}"),
            &of_district[d],
            &mut arrivals,
            timeout,
        )
        .await?;
        if let (Some(first), Some(last)) = (r.latencies.iter().min(), r.latencies.iter().max()) {
            spread.push(*last - *first);
        }
        if let Some(h) = r.hop1 {
            hop2.extend(r.latencies.iter().map(|l| l.saturating_sub(h)));
        }
        latencies.extend(r.latencies);
        add_event.push(r.add_event);
        hop1.extend(r.hop1);
        missed += r.missed;
        tokio::time::sleep(gap).await;
    }
    let measure_s = measure_started.elapsed().as_secs_f64();

    // A child whose stream ended early would have shown up as misses; say
    // why it ended.
    while let Some(ended) = tasks.try_join_next() {
        if let Err(e) = ended? {
            eprintln!("a child ended early: {e:#}");
        }
    }
    // Sampled with every remaining child still connected.
    let connected = tasks.len().saturating_sub(1);
    let (rss, hwm, threads) = memory(province.pid()?)?;
    let (n_rss, _, n_threads) = memory(national.pid()?)?;

    token.cancel();
    while tokio::time::timeout(Duration::from_secs(10), tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    tasks.abort_all();

    latencies.sort();
    add_event.sort();
    hop1.sort();
    hop2.sort();
    spread.sort();
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    eprintln!(
        "{} (update, child) pairs over {} updates in {measure_s:.1}s; missed {missed}; children still connected {}",
        latencies.len(),
        args.updates,
        connected
    );
    eprintln!(
        "national -> child: p50 {p50:.2} ms, p90 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
        percentile(&latencies, 90.0),
        percentile(&latencies, 100.0)
    );
    eprintln!(
        "national -> province-link probe (hop 1 alone): p50 {:.2} ms, p99 {:.2} ms; AddEvent round trip p50 {:.2} ms",
        percentile(&hop1, 50.0),
        percentile(&hop1, 99.0),
        percentile(&add_event, 50.0)
    );
    eprintln!(
        "province -> child (each pair minus its round's hop 1): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&hop2, 50.0),
        percentile(&hop2, 99.0)
    );
    eprintln!(
        "fan-out spread (last child of a round minus the first): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&spread, 50.0),
        percentile(&spread, 99.0),
        percentile(&spread, 100.0)
    );
    eprintln!(
        "province hub: VmRSS {rss:.1} MiB (peak {hwm:.1} MiB), {threads} threads; national hub: VmRSS {n_rss:.1} MiB, {n_threads} threads"
    );
    eprintln!(
        "load average before starting {load_before}, at the end {}",
        load_average()
    );
    eprintln!("total run time {:.1}s", started.elapsed().as_secs_f64());
    // Written out rather than with `json!`, which would sort the keys.
    println!(
        "{{\"bench\":\"fanout\",\"children\":{},\"p50_ms\":{},\"p99_ms\":{},\"hub_rss_mb\":{}}}",
        args.children,
        round2(p50),
        round2(p99),
        round2(rss)
    );
    Ok(())
}
