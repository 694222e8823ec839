//! Replication between a child (district node, or province hub) and its
//! parent (province hub, or national hub).
//!
//! - [`server`]: the parent's half — Hello, Push (durable acks), Pull.
//! - [`client`]: the child's half — the push loop with a byte window,
//!   reconnect backoff and link status.
//! - [`codec`]: batch payload framing and compression.
//! - [`report`]: link and child health for `status` and `nodes`.
//! - [`scope`]: who may send what to whom (one rule, both halves).
//!
//! ```text
//! child                                   parent
//!   Hello{version, site, head, clock} ──▶  check version + scope
//!                                      ◀── {push_cursor, codec, limits, session}
//!   Push: Open{session}, Batch(after,through] ...  (window in bytes)
//!                                          decode → validate → authorize
//!                                          bad records → quarantine
//!                                          commit events + child cursor (one txn)
//!                                      ◀── Ack{batch_no, through}
//! ```

pub mod client;
pub mod codec;
mod pull;
pub mod report;
pub mod scope;
pub mod server;

/// The replication protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
