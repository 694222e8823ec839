//! The fault-injection harness (issue 6): the real binaries as a federation
//! whose every link passes through a fault proxy, a workload that records
//! what was acknowledged, a seeded nemesis, and a checker with Jepsen's set
//! semantics. `docs/reliability.md` states the fault model and the rules;
//! `src/bin/chaos.rs` is the long mode, `tests/chaos.rs` the CI set.
//!
//! # Layout
//!
//! - [`proxy`]: the TCP fault proxy for one link (latency, bandwidth,
//!   stall, cut, reset, cut mid-stream, refuse), below TLS;
//! - [`federation`]: national, the Aceh hub and three district nodes as
//!   processes, each link through its own proxy; kill, restart, clock
//!   skew, a fillable tmpfs disk;
//! - [`workload`]: clients that submit and add lifecycle events with
//!   client-minted ids, recording each attempt's outcome;
//!   [`transitions`] picks the events from the product's transition table;
//! - [`nemesis`]: a seeded schedule of faults and its execution;
//! - [`observe`]: what each site lists, its event log, its status;
//! - [`checker`]: lost, unexpected, duplicated, diverged, integrity;
//! - [`schedule`]: one schedule end to end (faults, heal, converge, check);
//! - [`slowlink`]: the two-week backlog over a 256 kbit/s, 600 ms link.

pub mod checker;
pub mod federation;
pub mod nemesis;
pub mod observe;
pub mod proxy;
pub mod schedule;
pub mod slowlink;
pub mod transitions;
pub mod workload;
