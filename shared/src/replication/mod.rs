//! Replication between a child (district node, or province hub) and its
//! parent (province hub, or national hub).
//!
//! - [`server`]: the parent's half — Hello, Push (durable acks), Pull.
//! - `feed`: the parent's Pull feed, one per open stream.
//! - [`client`]: the child's half — the push loop with a byte window,
//!   reconnect backoff and link status.
//! - [`codec`]: batch payload framing and compression.
//! - [`report`]: link and child health for `status` and `nodes`.
//! - [`scope`]: who may send what to whom (one rule, both halves).
//! - `screen`: received records validated, checked, kept or refused (both halves).
//! - [`limit`]: the parent's per-child rate limit.
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
mod feed;
pub mod limit;
mod pull;
pub mod report;
pub mod scope;
mod screen;
pub mod server;

/// The replication protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Skews beyond this are clamped: no real clock is ten years off, and a
/// peer's clock value is untrusted input that must never overflow arithmetic.
pub const MAX_SKEW_MS: i64 = 10 * 366 * 86_400_000;

/// A peer's clock minus ours, ms; `None` when the peer sent no clock (0).
/// Saturating and clamped to ±[`MAX_SKEW_MS`], so any `i64` a peer sends is
/// answered, never a panic.
pub fn clock_skew(peer_ms: i64, ours_ms: i64) -> Option<i64> {
    (peer_ms != 0).then(|| {
        peer_ms
            .saturating_sub(ours_ms)
            .clamp(-MAX_SKEW_MS, MAX_SKEW_MS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_peer_clocks_give_a_clamped_skew_not_an_overflow() {
        assert_eq!(clock_skew(i64::MIN, 1_764_000_000_000), Some(-MAX_SKEW_MS));
        assert_eq!(clock_skew(i64::MAX, -5), Some(MAX_SKEW_MS));
        assert_eq!(clock_skew(0, 123), None);
        assert_eq!(clock_skew(1_000, 400), Some(600));
    }
}
