//! The nemesis: a schedule of faults drawn from a seed ([`plan`]), and its
//! execution against a running [`Federation`] ([`execute`]).
//!
//! The plan is a pure function of the seed and the options, so a failing
//! schedule is replayed by its seed alone (the outcomes of the workload's
//! calls still depend on timing, as in any test of real processes).
//!
//! Faults (site indices as in [`Federation`]: 0 national, 1 province,
//! 2.. nodes; a link is named by its child site):
//! - SIGKILL a process, restart it on the same address after a while;
//! - on a link: stall, refuse, cut, reset, cut mid-stream after N bytes,
//!   added latency, a bandwidth limit;
//! - skew a node's clock by days (rewrite `[testing] clock_offset_ms`,
//!   restart it);
//! - fill a node's disk for a while (only for the node the federation gave
//!   a tmpfs, see [`DiskMode`](super::federation::DiskMode)).

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::federation::{Federation, NODES};
use super::proxy::{Direction, FaultProxy};

/// Index of the first node in a federation's sites.
pub const FIRST_NODE: usize = 2;
/// Sites in a federation: national, province, the nodes.
pub const SITES: usize = FIRST_NODE + NODES.len();
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One fault of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, restart after `down`.
    Kill {
        site: usize,
        down: Duration,
    },
    Stall {
        link: usize,
        span: Duration,
    },
    Refuse {
        link: usize,
        span: Duration,
    },
    Cut {
        link: usize,
    },
    Reset {
        link: usize,
    },
    /// Cut every connection of the link after `after` more bytes in `dir`.
    CutMidStream {
        link: usize,
        dir: Direction,
        after: u64,
    },
    Latency {
        link: usize,
        up: Duration,
        down: Duration,
        span: Duration,
    },
    Bandwidth {
        link: usize,
        bytes_per_s: u64,
        span: Duration,
    },
    /// Restart the node with its wall clock shifted by `offset_ms`.
    ClockSkew {
        site: usize,
        offset_ms: i64,
    },
    /// Fill the node's disk for `span`.
    DiskFull {
        site: usize,
        span: Duration,
    },
}

fn code(site: usize) -> &'static str {
    match site {
        0 => "00",
        1 => "11",
        n => NODES.get(n - FIRST_NODE).copied().unwrap_or("?"),
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Fault::Kill { site, down } => write!(f, "kill {} for {}ms", code(*site), ms(down)),
            Fault::Stall { link, span } => {
                write!(f, "stall link {} for {}ms", code(*link), ms(span))
            }
            Fault::Refuse { link, span } => {
                write!(f, "refuse link {} for {}ms", code(*link), ms(span))
            }
            Fault::Cut { link } => write!(f, "cut link {}", code(*link)),
            Fault::Reset { link } => write!(f, "reset link {}", code(*link)),
            Fault::CutMidStream { link, dir, after } => {
                write!(f, "cut link {} after {after} bytes {dir:?}", code(*link))
            }
            Fault::Latency {
                link,
                up,
                down,
                span,
            } => write!(
                f,
                "latency {}ms/{}ms on link {} for {}ms",
                ms(up),
                ms(down),
                code(*link),
                ms(span)
            ),
            Fault::Bandwidth {
                link,
                bytes_per_s,
                span,
            } => write!(
                f,
                "bandwidth {bytes_per_s} B/s on link {} for {}ms",
                code(*link),
                ms(span)
            ),
            Fault::ClockSkew { site, offset_ms } => write!(
                f,
                "clock of {} off by {:+.1} days",
                code(*site),
                *offset_ms as f64 / DAY_MS as f64
            ),
            Fault::DiskFull { site, span } => {
                write!(f, "disk of {} full for {}ms", code(*site), ms(span))
            }
        }
    }
}

/// A fault and when it starts, from the start of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

/// A seeded schedule of faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    /// How long the workload runs while faults happen.
    pub window: Duration,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The node whose disk the plan fills, if any (the federation must give
    /// it a tmpfs).
    pub fn disk_site(&self) -> Option<usize> {
        self.steps.iter().find_map(|s| match s.fault {
            Fault::DiskFull { site, .. } => Some(site),
            _ => None,
        })
    }

    pub fn describe(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| format!("@{}ms {}", s.at.as_millis(), s.fault))
            .collect()
    }
}

/// What a plan may contain.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub window: Duration,
    /// Faults per schedule: at least 2, at most this many.
    pub max_faults: usize,
    /// Whether disk-full faults can run (root, private mounts).
    pub disk: bool,
}

fn span(rng: &mut StdRng, window: Duration) -> Duration {
    let max = (window.as_millis() as u64 / 2).max(300);
    Duration::from_millis(rng.random_range(200..=max))
}

/// The schedule for `seed`.
pub fn plan(seed: u64, options: &PlanOptions) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let window = options.window;
    let faults = rng.random_range(2..=options.max_faults.max(2));
    let latest_start = (window.as_millis() as u64 * 3 / 4).max(1);
    let mut steps = Vec::new();
    for _ in 0..faults {
        let at = Duration::from_millis(rng.random_range(0..latest_start));
        let link = rng.random_range(1..SITES);
        let node = rng.random_range(FIRST_NODE..SITES);
        let weights: [(u32, u8); 10] = [
            (22, 0),
            (12, 1),
            (12, 2),
            (10, 3),
            (10, 4),
            (8, 5),
            (10, 6),
            (8, 7),
            (5, 8),
            (if options.disk { 6 } else { 0 }, 9),
        ];
        let total: u32 = weights.iter().map(|(w, _)| w).sum();
        let mut roll = rng.random_range(0..total);
        let mut pick = 0;
        for (w, k) in weights {
            if roll < w {
                pick = k;
                break;
            }
            roll -= w;
        }
        let fault = match pick {
            0 => Fault::Kill {
                site: rng.random_range(0..SITES),
                down: span(&mut rng, window),
            },
            1 => Fault::Stall {
                link,
                span: span(&mut rng, window),
            },
            2 => Fault::Refuse {
                link,
                span: span(&mut rng, window),
            },
            3 => Fault::Cut { link },
            4 => Fault::Reset { link },
            5 => Fault::CutMidStream {
                link,
                dir: if rng.random_bool(0.5) {
                    Direction::Up
                } else {
                    Direction::Down
                },
                after: rng.random_range(1..64 * 1024),
            },
            6 => Fault::Latency {
                link,
                up: Duration::from_millis(rng.random_range(20..400)),
                down: Duration::from_millis(rng.random_range(20..400)),
                span: span(&mut rng, window),
            },
            7 => Fault::Bandwidth {
                link,
                bytes_per_s: rng.random_range(4_000..256_000),
                span: span(&mut rng, window),
            },
            8 => {
                let days = rng.random_range(1..=3);
                let sign = if rng.random_bool(0.5) { 1 } else { -1 };
                Fault::ClockSkew {
                    site: node,
                    offset_ms: sign * days * DAY_MS,
                }
            }
            _ => Fault::DiskFull {
                // One node per federation has the tmpfs: the first one drawn.
                site: steps
                    .iter()
                    .find_map(|s: &Step| match s.fault {
                        Fault::DiskFull { site, .. } => Some(site),
                        _ => None,
                    })
                    .unwrap_or(node),
                span: span(&mut rng, window),
            },
        };
        steps.push(Step { at, fault });
    }
    steps.sort_by_key(|s| s.at);
    Plan {
        seed,
        window,
        steps,
    }
}

/// One thing the executor does at one instant.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Kill(usize),
    Restart(usize),
    Stall(usize, bool),
    Refuse(usize, bool),
    Cut(usize),
    Reset(usize),
    CutAfter(usize, Direction, u64),
    Latency(usize, Duration, Duration),
    Bandwidth(usize, Option<u64>),
    Skew(usize, i64),
    Fill(usize),
    Free(usize),
}

/// The plan as instants: each windowed fault becomes a start and an end
/// (ends past the window are left to the heal).
fn timeline(plan: &Plan) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    for step in &plan.steps {
        let at = step.at;
        let mut window = |start: Action, span: Duration, end: Action| {
            out.push((at, start));
            if at + span < plan.window {
                out.push((at + span, end));
            }
        };
        match step.fault {
            Fault::Kill { site, down } => window(Action::Kill(site), down, Action::Restart(site)),
            Fault::Stall { link, span } => {
                window(Action::Stall(link, true), span, Action::Stall(link, false))
            }
            Fault::Refuse { link, span } => window(
                Action::Refuse(link, true),
                span,
                Action::Refuse(link, false),
            ),
            Fault::Latency {
                link,
                up,
                down,
                span,
            } => window(
                Action::Latency(link, up, down),
                span,
                Action::Latency(link, Duration::ZERO, Duration::ZERO),
            ),
            Fault::Bandwidth {
                link,
                bytes_per_s,
                span,
            } => window(
                Action::Bandwidth(link, Some(bytes_per_s)),
                span,
                Action::Bandwidth(link, None),
            ),
            Fault::DiskFull { site, span } => window(Action::Fill(site), span, Action::Free(site)),
            Fault::Cut { link } => out.push((at, Action::Cut(link))),
            Fault::Reset { link } => out.push((at, Action::Reset(link))),
            Fault::CutMidStream { link, dir, after } => {
                out.push((at, Action::CutAfter(link, dir, after)));
            }
            Fault::ClockSkew { site, offset_ms } => out.push((at, Action::Skew(site, offset_ms))),
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Runs `plan` against `fed` until its window ends. Returns notes on
/// actions that could not be carried out as planned (a restart that failed
/// while the disk was full, say) — the heal retries those; they are not
/// findings by themselves.
pub async fn execute(plan: &Plan, fed: &mut Federation) -> Vec<String> {
    let start = tokio::time::Instant::now();
    let mut notes = Vec::new();
    for (at, action) in timeline(plan) {
        tokio::time::sleep_until(start + at).await;
        if let Err(e) = apply(fed, &action).await {
            notes.push(format!("@{}ms {action:?}: {e:#}", at.as_millis()));
        }
    }
    tokio::time::sleep_until(start + plan.window).await;
    notes
}

async fn apply(fed: &mut Federation, action: &Action) -> anyhow::Result<()> {
    match *action {
        Action::Kill(site) => fed.kill(site).await?,
        Action::Restart(site) => fed.restart(site).await?,
        Action::Skew(site, offset) => fed.set_clock_offset(site, offset).await?,
        Action::Fill(site) => {
            fed.fill_disk(site)?;
        }
        Action::Free(site) => fed.free_disk(site)?,
        Action::Stall(link, on) => proxy(fed, link)?.set_stalled(on),
        Action::Refuse(link, on) => proxy(fed, link)?.set_refusing(on),
        Action::Cut(link) => {
            proxy(fed, link)?.cut();
        }
        Action::Reset(link) => {
            proxy(fed, link)?.reset();
        }
        Action::CutAfter(link, dir, after) => proxy(fed, link)?.cut_after(dir, after),
        Action::Latency(link, up, down) => proxy(fed, link)?.set_latency(up, down),
        Action::Bandwidth(link, rate) => proxy(fed, link)?.set_bandwidth(rate, rate),
    }
    Ok(())
}

fn proxy(fed: &Federation, site: usize) -> anyhow::Result<&FaultProxy> {
    fed.uplink(site)
        .ok_or_else(|| anyhow::anyhow!("site {} has no link to a parent", code(site)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(disk: bool) -> PlanOptions {
        PlanOptions {
            window: Duration::from_secs(4),
            max_faults: 5,
            disk,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        assert_eq!(plan(7, &options(true)), plan(7, &options(true)));
        assert_ne!(plan(7, &options(true)), plan(8, &options(true)));
    }

    #[test]
    fn faults_start_inside_the_window_and_name_real_sites() {
        for seed in 0..200 {
            let p = plan(seed, &options(true));
            assert!((2..=5).contains(&p.steps.len()), "{p:?}");
            for s in &p.steps {
                assert!(s.at < p.window, "{s:?}");
                match s.fault {
                    Fault::ClockSkew { site, .. } | Fault::DiskFull { site, .. } => {
                        assert!((FIRST_NODE..SITES).contains(&site), "{s:?}");
                    }
                    Fault::Kill { site, .. } => assert!(site < SITES),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn without_private_mounts_no_disk_is_filled() {
        for seed in 0..200 {
            assert_eq!(plan(seed, &options(false)).disk_site(), None);
        }
    }

    #[test]
    fn one_node_at_most_has_its_disk_filled() {
        for seed in 0..500 {
            let p = plan(seed, &options(true));
            let sites: std::collections::BTreeSet<usize> = p
                .steps
                .iter()
                .filter_map(|s| match s.fault {
                    Fault::DiskFull { site, .. } => Some(site),
                    _ => None,
                })
                .collect();
            assert!(sites.len() <= 1, "{p:?}");
        }
    }

    #[test]
    fn every_windowed_fault_that_ends_in_the_window_is_undone() {
        let p = Plan {
            seed: 0,
            window: Duration::from_secs(4),
            steps: vec![
                Step {
                    at: Duration::from_millis(100),
                    fault: Fault::Stall {
                        link: 2,
                        span: Duration::from_millis(500),
                    },
                },
                Step {
                    at: Duration::from_millis(3_800),
                    fault: Fault::Kill {
                        site: 1,
                        down: Duration::from_secs(1),
                    },
                },
            ],
        };
        assert_eq!(
            timeline(&p),
            vec![
                (Duration::from_millis(100), Action::Stall(2, true)),
                (Duration::from_millis(600), Action::Stall(2, false)),
                (Duration::from_millis(3_800), Action::Kill(1)),
            ]
        );
    }
}
