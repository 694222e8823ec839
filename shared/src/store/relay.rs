//! Batches a hub forwards upward exactly as its child sent them.
//!
//! A province hub stores each batch a district pushes and then sends the
//! same events on to national: it reads them back from its log, puts each
//! reporter identity back in, frames and compresses them again — about a
//! quarter of what a two-hop drain costs it (docs/benchmarks.md, fifth
//! pass). When a pushed batch was stored whole, in order, at consecutive
//! seqs, and each received event is byte for byte what a run of the log
//! gives for it, the run of that seq range *is* the batch the child sent,
//! so its compressed bytes can go up unchanged.
//!
//! Rules:
//! - A batch is kept only after its group commits, and before the head
//!   moves, so the push loop that wakes on the new head finds it.
//! - Byte equality is checked when the batch is prepared
//!   ([`verify`]): each event's stored form, with its identity put back
//!   the way a run does it, must equal the bytes received.
//! - Anything that could change what a run gives for a kept range drops
//!   every kept batch: so far, a complaint turning anonymous (its identity
//!   erased or made local). Kept batches are a cache; none is ever needed.
//! - Memory is bounded ([`MAX_KEPT_BYTES`]): when full, a new batch is not
//!   kept (those kept are the next to go), and a batch the push loop has
//!   moved past is dropped.

use std::collections::BTreeMap;
use std::ops::Range;

use prost::Message as _;
use zeroize::Zeroize as _;

use super::identity::{self, StoredEvent};
use crate::domain::Seq;
use crate::proto::{convert, wire};

/// A pushed batch offered for forwarding unchanged
/// ([`super::Store::queue_apply_remote_relaying`]).
#[derive(Debug)]
pub struct RelayCandidate {
    /// The sender's compression (replication's tag; opaque here).
    pub encoding: i32,
    /// The batch as received, compressed.
    pub compressed: Vec<u8>,
    /// The batch uncompressed, and where each event of the batch is in it,
    /// in the order of the batch's events.
    pub frame: Vec<u8>,
    pub ranges: Vec<Range<usize>>,
}

/// A candidate whose every event the log will give back as received.
#[derive(Debug)]
pub(super) struct Relayable {
    encoding: i32,
    compressed: Vec<u8>,
    /// Bytes of its events, uncompressed.
    raw_len: usize,
    count: usize,
}

/// Checks a candidate against the stored forms of its events (same order);
/// `None` unless each event would be read back, identity included, as the
/// exact bytes received.
pub(super) fn verify(candidate: RelayCandidate, stored: &[StoredEvent]) -> Option<Relayable> {
    if candidate.ranges.len() != stored.len() || stored.is_empty() {
        return None;
    }
    for (range, form) in candidate.ranges.iter().zip(stored) {
        let received = candidate.frame.get(range.clone())?;
        let same = match &form.identity {
            None => form.payload == received,
            Some(sealed) => {
                let mut plain = convert::reporter_to_proto(&sealed.reporter).encode_to_vec();
                let whole = wire::append_nested(
                    &form.payload,
                    identity::REPORTER_PATH,
                    identity::REPORTER_FIELD,
                    &plain,
                );
                plain.zeroize();
                let same = whole.as_deref() == Some(received);
                if let Some(mut whole) = whole {
                    whole.zeroize();
                }
                same
            }
        };
        if !same {
            return None;
        }
    }
    Some(Relayable {
        encoding: candidate.encoding,
        compressed: candidate.compressed,
        // Counted as a run counts its `max_bytes`: events, not framing.
        raw_len: candidate.ranges.iter().map(ExactSizeIterator::len).sum(),
        count: stored.len(),
    })
}

/// A kept batch handed to the push loop: the events with seq in
/// `(after, through]`, all of them, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedBatch {
    pub through: Seq,
    /// Compressed with the encoding asked for.
    pub compressed: Vec<u8>,
    pub event_count: usize,
}

/// What [`super::Store::take_relayed`] found after a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// A kept batch starting right after it.
    Batch(RelayedBatch),
    /// None starts right after it, but one starts after this seq: a run
    /// that stops here leaves that batch whole for the next call.
    Until(Seq),
}

/// Compressed bytes kept at most. A province's intake of a drain runs
/// ahead of what national acks: in bench-replication's two-hop drain of
/// 100,000 complaints, 16 MiB ran out after ~76,000 (27 of 126 batches were
/// then read from the log) and 32 MiB held every batch until it was sent.
pub(super) const MAX_KEPT_BYTES: usize = 32 << 20;

/// The batches kept, by first seq; each holds the seqs from there on, one
/// per event.
#[derive(Debug, Default)]
pub(super) struct RelayMap {
    kept: BTreeMap<u64, Relayable>,
    bytes: usize,
}

impl RelayMap {
    /// Keeps `batch`, stored at seqs `first..=last` (one per event), unless
    /// that would hold more than [`MAX_KEPT_BYTES`]: the batches kept first
    /// are the next ones sent, so a full map keeps them and lets the new
    /// one be read from the log when its turn comes.
    pub(super) fn keep(&mut self, first: u64, last: u64, batch: Relayable) {
        if last + 1 - first != batch.count as u64
            || self.bytes + batch.compressed.len() > MAX_KEPT_BYTES
        {
            return;
        }
        self.bytes += batch.compressed.len();
        self.kept.insert(first, batch);
    }

    /// Drops every kept batch.
    pub(super) fn clear(&mut self) {
        self.kept.clear();
        self.bytes = 0;
    }

    /// The kept batch starting right after `after`, if its encoding is
    /// `encoding` and it is within the limits; batches at or before `after`
    /// are dropped (the caller has moved past them).
    pub(super) fn take(
        &mut self,
        after: u64,
        encoding: i32,
        max_raw: usize,
        max_events: usize,
    ) -> Option<Relayed> {
        while let Some(entry) = self.kept.first_entry() {
            if *entry.key() > after {
                break;
            }
            self.bytes -= entry.remove().compressed.len();
        }
        let entry = self.kept.first_entry()?;
        let first = *entry.key();
        if first != after + 1 {
            return Some(Relayed::Until(Seq(first - 1)));
        }
        let batch = entry.remove();
        self.bytes -= batch.compressed.len();
        if batch.encoding != encoding || batch.raw_len > max_raw || batch.count > max_events {
            // Not one this link can send: the run goes through it as usual.
            return None;
        }
        Some(Relayed::Batch(RelayedBatch {
            through: Seq(after + batch.count as u64),
            compressed: batch.compressed,
            event_count: batch.count,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(count: usize, bytes: usize) -> Relayable {
        Relayable {
            encoding: 2,
            compressed: vec![7; bytes],
            raw_len: bytes * 4,
            count,
        }
    }

    fn taken(map: &mut RelayMap, after: u64) -> Option<Relayed> {
        map.take(after, 2, usize::MAX, usize::MAX)
    }

    #[test]
    fn a_kept_batch_is_taken_once_right_after_the_seq_before_it() {
        let mut map = RelayMap::default();
        map.keep(11, 20, batch(10, 100));
        map.keep(21, 25, batch(5, 50));
        assert_eq!(taken(&mut map, 5), Some(Relayed::Until(Seq(10))));
        let Some(Relayed::Batch(b)) = taken(&mut map, 10) else {
            panic!("the batch at 11..=20");
        };
        assert_eq!(
            (b.through, b.event_count, b.compressed.len()),
            (Seq(20), 10, 100)
        );
        assert!(matches!(taken(&mut map, 20), Some(Relayed::Batch(b)) if b.through == Seq(25)));
        assert_eq!(taken(&mut map, 25), None);
        assert_eq!(map.bytes, 0);
    }

    #[test]
    fn batches_the_push_loop_has_moved_past_or_into_are_dropped() {
        let mut map = RelayMap::default();
        map.keep(11, 20, batch(10, 100));
        map.keep(21, 30, batch(10, 100));
        // A run that ended inside the first batch: it can never be sent whole.
        assert_eq!(taken(&mut map, 15), Some(Relayed::Until(Seq(20))));
        assert_eq!(map.kept.len(), 1);
        assert_eq!(map.bytes, 100);
    }

    #[test]
    fn a_batch_another_link_cannot_take_is_dropped_and_the_run_goes_through_it() {
        let mut map = RelayMap::default();
        map.keep(1, 10, batch(10, 100));
        assert_eq!(
            map.take(0, 1, usize::MAX, usize::MAX),
            None,
            "other encoding"
        );
        map.keep(1, 10, batch(10, 100));
        assert_eq!(
            map.take(0, 2, 399, usize::MAX),
            None,
            "too large uncompressed"
        );
        map.keep(1, 10, batch(10, 100));
        assert_eq!(map.take(0, 2, usize::MAX, 9), None, "too many events");
        assert_eq!(map.bytes, 0);
    }

    #[test]
    fn a_full_map_keeps_the_batches_due_first_and_not_the_new_one() {
        let mut map = RelayMap::default();
        let size = MAX_KEPT_BYTES / 4;
        for i in 0..6u64 {
            map.keep(i * 10 + 1, i * 10 + 10, batch(10, size));
        }
        assert_eq!(map.bytes, MAX_KEPT_BYTES);
        assert_eq!(
            map.kept.keys().copied().collect::<Vec<_>>(),
            [1, 11, 21, 31]
        );
        // Once the first is sent there is room again.
        assert!(matches!(taken(&mut map, 0), Some(Relayed::Batch(_))));
        map.keep(61, 70, batch(10, size));
        assert_eq!(
            map.kept.keys().copied().collect::<Vec<_>>(),
            [11, 21, 31, 61]
        );
        map.clear();
        assert_eq!((map.kept.len(), map.bytes), (0, 0));
    }

    #[test]
    fn a_batch_whose_seqs_do_not_match_its_events_is_not_kept() {
        let mut map = RelayMap::default();
        map.keep(1, 10, batch(9, 100));
        assert_eq!(taken(&mut map, 0), None);
    }
}
