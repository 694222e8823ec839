//! The workload: clients that submit complaints at the district nodes and
//! add lifecycle events at every tier while the nemesis works, and the
//! [`History`] of what each operation got back.
//!
//! Every operation carries a client-minted id (the complaint id of a
//! Submit, the event id of an AddEvent), so sending it again is the same
//! operation, never a second one. Outcomes follow Jepsen: an OK is
//! *acknowledged*; a precise refusal (`FAILED_PRECONDITION`, `NOT_FOUND`,
//! `INVALID_ARGUMENT`, ...) means nothing was written; anything else — a
//! timeout, a dropped connection, `UNAVAILABLE`, `INTERNAL` — is *unknown*:
//! it may or may not have been written, and may be retried later or not.
//! An operation is acknowledged if any attempt was, failed only if every
//! attempt was refused, and unknown otherwise.
//!
//! Lifecycle events are chosen from the one transition table
//! (`lapor_shared::lifecycle::TRANSITIONS`) against the status the client
//! last saw, so most are legal where they are written; a few are picked
//! blindly to exercise refusals, and two tiers acting on one complaint
//! during a partition produce the concurrent conflicts the fold must settle.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lapor_shared::domain::Status;
use lapor_shared::lifecycle::EventKind;
use lapor_shared::proto::v1::{self, intake_client::IntakeClient};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use super::federation::{SiteInfo, Tier};
use super::transitions::{body_of, legal_kinds, role_of, status_of, writable_kinds};

/// How the workload runs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub workers: usize,
    /// Pause between one client's operations, drawn uniformly.
    pub pause: (Duration, Duration),
    /// Client-side deadline of one call; past it the outcome is unknown.
    pub op_timeout: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            workers: 3,
            pause: (Duration::from_millis(5), Duration::from_millis(40)),
            op_timeout: Duration::from_secs(2),
        }
    }
}

/// One attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Ok,
    /// A precise refusal: nothing was written by this attempt.
    Refused(tonic::Code),
    /// Timeout, lost connection, or a status that does not say.
    Unknown(String),
}

/// An operation's outcome over all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Acknowledged,
    Failed,
    Unknown,
}

/// The verdict of a run of attempts.
pub fn verdict(attempts: &[Attempt]) -> Verdict {
    if attempts.contains(&Attempt::Ok) {
        Verdict::Acknowledged
    } else if attempts.iter().any(|a| matches!(a, Attempt::Unknown(_))) {
        Verdict::Unknown
    } else {
        Verdict::Failed
    }
}

/// A status code that proves the request wrote nothing.
fn is_definite_refusal(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated
    )
}

/// The request an operation sends (the same bytes on every attempt).
#[derive(Debug, Clone)]
pub enum Request {
    Submit(v1::SubmitRequest),
    AddEvent(v1::AddEventRequest),
}

/// One operation and its attempts.
#[derive(Debug, Clone)]
pub struct Op {
    /// Code of the site it is sent to (retries go to the same site).
    pub site: &'static str,
    pub complaint_id: String,
    /// The complaint's district.
    pub district: String,
    pub kind: EventKind,
    pub request: Request,
    pub attempts: Vec<Attempt>,
}

impl Op {
    pub fn verdict(&self) -> Verdict {
        verdict(&self.attempts)
    }
}

/// Everything the workload attempted.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Submissions, by complaint id.
    pub complaints: BTreeMap<String, Op>,
    /// AddEvents, by event id.
    pub events: BTreeMap<String, Op>,
}

/// Operation counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub attempted: u64,
    pub acknowledged: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Attempts answered `ALREADY_EXISTS`: an id reused with other content,
    /// which this workload never does — a retry judged as a conflict.
    pub conflicts: u64,
}

impl History {
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.complaints.values().chain(self.events.values())
    }

    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for op in self.ops() {
            t.attempted += 1;
            match op.verdict() {
                Verdict::Acknowledged => t.acknowledged += 1,
                Verdict::Failed => t.failed += 1,
                Verdict::Unknown => t.unknown += 1,
            }
            t.conflicts += op
                .attempts
                .iter()
                .filter(|a| **a == Attempt::Refused(tonic::Code::AlreadyExists))
                .count() as u64;
        }
        t
    }
}

/// What a client last saw of a complaint.
#[derive(Debug, Clone)]
struct Belief {
    district: String,
    status: Status,
    responded: bool,
}

/// The workload's shared state.
struct Shared {
    sites: Vec<(SiteInfo, IntakeClient<Channel>)>,
    // std Mutex: held for bookkeeping only, never across a call.
    history: Mutex<History>,
    beliefs: Mutex<BTreeMap<String, Belief>>,
    config: WorkloadConfig,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker leaves consistent bookkeeping behind (each update
    // is one insert); keep recording rather than losing the history.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A lazily connected Intake client of `addr`: it reconnects by itself
/// after the site restarts on the same address.
pub fn intake_client(addr: SocketAddr, timeout: Duration) -> anyhow::Result<IntakeClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .connect_lazy();
    Ok(IntakeClient::new(channel))
}

/// The running workload: its clients, and what they recorded.
pub struct Workload {
    shared: Arc<Shared>,
}

impl Workload {
    /// Clients for every site in `sites` (national, province, nodes).
    ///
    /// # Errors
    /// An address could not be made into an endpoint.
    pub fn new(sites: &[SiteInfo], config: WorkloadConfig) -> anyhow::Result<Workload> {
        let sites = sites
            .iter()
            .map(|s| Ok((*s, intake_client(s.addr, config.op_timeout)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Workload {
            shared: Arc::new(Shared {
                sites,
                history: Mutex::default(),
                beliefs: Mutex::default(),
                config,
            }),
        })
    }

    /// Runs `config.workers` clients until `stop` is cancelled; each draws
    /// its choices from its own generator seeded from `seed`.
    pub async fn run(&self, seed: u64, stop: CancellationToken) {
        let workers = (0..self.shared.config.workers).map(|w| {
            let shared = self.shared.clone();
            let stop = stop.clone();
            let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(w as u64));
            async move { worker(shared, rng, w as u64, stop).await }
        });
        futures::future::join_all(workers).await;
    }

    /// Sends each operation still unknown again with probability
    /// `fraction` (once), as a client that reconnects later would.
    /// Returns how many were retried.
    pub async fn retry_unknown(&self, seed: u64, fraction: f64) -> usize {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_7e72_u64);
        let unknown: Vec<(bool, String)> = {
            let h = lock(&self.shared.history);
            h.complaints
                .iter()
                .map(|(id, op)| (false, id, op))
                .chain(h.events.iter().map(|(id, op)| (true, id, op)))
                .filter(|(_, _, op)| op.verdict() == Verdict::Unknown)
                .map(|(event, id, _)| (event, id.clone()))
                .collect()
        };
        let mut retried = 0;
        for (event, id) in unknown {
            if rng.random_bool(fraction) {
                retry(&self.shared, event, &id).await;
                retried += 1;
            }
        }
        retried
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        lock(&self.shared.history).clone()
    }
}

/// What one worker does next.
enum Next {
    Submit {
        site: usize,
    },
    AddEvent {
        site: usize,
        complaint: String,
    },
    Retry {
        event: bool,
        id: String,
    },
    /// Nothing to do (a federation without nodes).
    Idle,
}

async fn worker(shared: Arc<Shared>, mut rng: StdRng, worker: u64, stop: CancellationToken) {
    let mut n = 0u64;
    while !stop.is_cancelled() {
        match choose(&shared, &mut rng) {
            Next::Submit { site } => {
                n += 1;
                submit(&shared, site, worker * 1_000_000 + n).await;
            }
            Next::AddEvent { site, complaint } => {
                add_event(&shared, &mut rng, site, complaint).await;
            }
            Next::Retry { event, id } => retry(&shared, event, &id).await,
            Next::Idle => {}
        }
        let (lo, hi) = shared.config.pause;
        let pause = rng.random_range(lo..=hi);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn choose(shared: &Shared, rng: &mut StdRng) -> Next {
    let roll = rng.random_range(0..100);
    if roll < 10 {
        let h = lock(&shared.history);
        let unknown: Vec<(bool, &String)> = h
            .complaints
            .iter()
            .map(|(id, op)| (false, id, op))
            .chain(h.events.iter().map(|(id, op)| (true, id, op)))
            .filter(|(_, _, op)| op.verdict() == Verdict::Unknown)
            .map(|(event, id, _)| (event, id))
            .collect();
        if let Some((event, id)) = unknown.choose(rng) {
            return Next::Retry {
                event: *event,
                id: (*id).clone(),
            };
        }
    }
    let nodes: Vec<usize> = (0..shared.sites.len())
        .filter(|&i| shared.sites[i].0.tier == Tier::Node)
        .collect();
    if roll < 45
        && let Some(&site) = nodes.choose(rng)
    {
        return Next::Submit { site };
    }
    let site = rng.random_range(0..shared.sites.len());
    let info = shared.sites[site].0;
    let beliefs = lock(&shared.beliefs);
    let candidates: Vec<&String> = beliefs
        .iter()
        .filter(|(_, b)| info.tier != Tier::Node || b.district == info.code)
        .map(|(id, _)| id)
        .collect();
    match candidates.choose(rng) {
        Some(id) => Next::AddEvent {
            site,
            complaint: (*id).clone(),
        },
        None => match nodes.choose(rng) {
            Some(&site) => Next::Submit { site },
            None => Next::Idle,
        },
    }
}

async fn submit(shared: &Shared, site: usize, n: u64) {
    let (info, client) = &shared.sites[site];
    let (complaint_id, attempt) = record_submit(client, info.code, n, &shared.history).await;
    if attempt == Attempt::Ok {
        lock(&shared.beliefs).insert(
            complaint_id,
            Belief {
                district: info.code.to_owned(),
                status: Status::BelumTerverifikasi,
                responded: false,
            },
        );
    }
}

async fn add_event(shared: &Shared, rng: &mut StdRng, site: usize, complaint_id: String) {
    let (info, client) = &shared.sites[site];
    let Some(belief) = lock(&shared.beliefs).get(&complaint_id).cloned() else {
        return;
    };
    let role = role_of(info.tier);
    // Mostly what the table allows from the status last seen; sometimes
    // anything this tier may write, to exercise refusals.
    let kinds = if rng.random_bool(0.9) {
        legal_kinds(role, belief.status, belief.responded)
    } else {
        writable_kinds(role)
    };
    let Some(&kind) = kinds.choose(rng) else {
        return;
    };
    let (_, seen) = record_add_event(
        client,
        info.code,
        &complaint_id,
        &belief.district,
        kind,
        &shared.history,
    )
    .await;
    if let Some(status) = seen.and_then(|c| status_of(c.status)) {
        let mut beliefs = lock(&shared.beliefs);
        if let Some(b) = beliefs.get_mut(&complaint_id) {
            b.status = status;
            b.responded |= kind == EventKind::Responded;
        }
    }
}

/// Submits sample complaint `n` at node `site` under a fresh client-minted
/// id, recording the operation and its attempt in `history`. Returns the
/// complaint id and the attempt.
pub async fn record_submit(
    client: &IntakeClient<Channel>,
    site: &'static str,
    n: u64,
    history: &Mutex<History>,
) -> (String, Attempt) {
    let complaint_id = uuid::Uuid::now_v7().to_string();
    let request = crate::submit_request(site, n, &complaint_id);
    lock(history).complaints.insert(
        complaint_id.clone(),
        Op {
            site,
            complaint_id: complaint_id.clone(),
            district: site.to_owned(),
            kind: EventKind::Created,
            request: Request::Submit(request.clone()),
            attempts: Vec::new(),
        },
    );
    let attempt = outcome(client.clone().submit(request).await.map(|_| ()));
    record(history, false, &complaint_id, attempt.clone());
    (complaint_id, attempt)
}

/// Adds an event of `kind` (with a fresh client-minted event id) to
/// `complaint_id` of `district` at `site`, recording the operation and its
/// attempt in `history`. Returns the attempt and the complaint as the site
/// folded it after an acknowledged write.
pub async fn record_add_event(
    client: &IntakeClient<Channel>,
    site: &'static str,
    complaint_id: &str,
    district: &str,
    kind: EventKind,
    history: &Mutex<History>,
) -> (Attempt, Option<v1::Complaint>) {
    let event_id = uuid::Uuid::now_v7().to_string();
    let request = v1::AddEventRequest {
        event_id: event_id.clone(),
        complaint_id: complaint_id.to_owned(),
        actor: format!("petugas.{site}"),
        body: Some(v1::EventBody {
            kind: Some(body_of(kind, site)),
        }),
    };
    lock(history).events.insert(
        event_id.clone(),
        Op {
            site,
            complaint_id: complaint_id.to_owned(),
            district: district.to_owned(),
            kind,
            request: Request::AddEvent(request.clone()),
            attempts: Vec::new(),
        },
    );
    let answer = client.clone().add_event(request).await;
    let (attempt, complaint) = match answer {
        Ok(r) => (Attempt::Ok, r.into_inner().complaint),
        Err(s) => (outcome(Err(s)), None),
    };
    record(history, true, &event_id, attempt.clone());
    (attempt, complaint)
}

/// Sends operation `id` again, to the site it was first sent to.
async fn retry(shared: &Shared, event: bool, id: &str) {
    let op = {
        let h = lock(&shared.history);
        let ops = if event { &h.events } else { &h.complaints };
        ops.get(id).cloned()
    };
    let Some(op) = op else { return };
    let Some((_, client)) = shared.sites.iter().find(|(s, _)| s.code == op.site) else {
        return;
    };
    let mut client = client.clone();
    let attempt = match op.request {
        Request::Submit(r) => outcome(client.submit(r).await.map(|_| ())),
        Request::AddEvent(r) => outcome(client.add_event(r).await.map(|_| ())),
    };
    record(&shared.history, event, id, attempt.clone());
    if !event && attempt == Attempt::Ok {
        lock(&shared.beliefs)
            .entry(id.to_owned())
            .or_insert_with(|| Belief {
                district: op.district.clone(),
                status: Status::BelumTerverifikasi,
                responded: false,
            });
    }
}

fn record(history: &Mutex<History>, event: bool, id: &str, attempt: Attempt) {
    let mut h = lock(history);
    let ops = if event {
        &mut h.events
    } else {
        &mut h.complaints
    };
    if let Some(op) = ops.get_mut(id) {
        op.attempts.push(attempt);
    }
}

fn outcome(result: Result<(), tonic::Status>) -> Attempt {
    match result {
        Ok(()) => Attempt::Ok,
        Err(s) if is_definite_refusal(s.code()) => Attempt::Refused(s.code()),
        Err(s) => Attempt::Unknown(format!("{:?}: {}", s.code(), s.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_acknowledged_attempt_makes_the_operation_acknowledged() {
        let unknown = Attempt::Unknown("deadline".into());
        let refused = Attempt::Refused(tonic::Code::FailedPrecondition);
        assert_eq!(
            verdict(&[unknown.clone(), Attempt::Ok]),
            Verdict::Acknowledged
        );
        assert_eq!(
            verdict(&[unknown.clone(), refused.clone()]),
            Verdict::Unknown
        );
        assert_eq!(verdict(&[refused.clone(), refused]), Verdict::Failed);
        assert_eq!(verdict(&[]), Verdict::Failed);
    }

    #[test]
    fn only_precise_refusals_are_definite() {
        assert_eq!(
            outcome(Err(tonic::Status::failed_precondition(
                "verified while selesai"
            ))),
            Attempt::Refused(tonic::Code::FailedPrecondition)
        );
        assert!(matches!(
            outcome(Err(tonic::Status::unavailable("connection reset"))),
            Attempt::Unknown(_)
        ));
        assert!(matches!(
            outcome(Err(tonic::Status::internal("storage failure"))),
            Attempt::Unknown(_)
        ));
    }
}
