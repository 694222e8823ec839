//! The checks behind the fuzz targets in `fuzz_targets/`. Each takes the raw
//! bytes of one request message, decodes them as the server's gRPC codec
//! would (prost), runs what the server runs on the result, and asserts what
//! must hold for *any* input: no panic, a refusal is `INVALID_ARGUMENT` with
//! field details and no personal data in it, and an accepted value encodes,
//! decodes and validates back to itself.
//!
//! The checks live in this library rather than in the targets so that the
//! committed corpus (and any crash input) replays under plain `cargo test`
//! on the stable toolchain (`tests/replay.rs`), without libFuzzer.
//!
//! Where a handler can run without writing (a hub refuses `Submit` after
//! validating it; `AddEvent` of an unknown complaint; `Complaints` reads;
//! `Hello` up to its one peer record), the real tonic handler is called on a
//! throw-away store (`fixture`); the rest restates the handler's private glue
//! from the public rules it composes, and says so where it does.

mod complaints;
mod fixture;
mod intake;
mod invariants;
mod replication;
pub mod seeds;

pub use complaints::complaints_requests;
pub use intake::{add_event, intake_submit};
pub use replication::{hello, pull_request, push_batch};

/// What a target runs on one input; it panics on a bug.
pub type Check = fn(&[u8]);

/// The targets, in the order `run-brief.sh` and the docs list them, with the
/// check each runs.
pub const TARGETS: [(&str, Check); 6] = [
    ("fuzz_intake_submit", intake_submit),
    ("fuzz_add_event", add_event),
    ("fuzz_complaints_requests", complaints_requests),
    ("fuzz_hello", hello),
    ("fuzz_push_batch", push_batch),
    ("fuzz_pull_request", pull_request),
];
