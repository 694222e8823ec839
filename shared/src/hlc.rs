//! Hybrid logical clock (Kulkarni et al., 2014): timestamps that follow wall
//! time when clocks are sane and still order causally when they are not.
//!
//! Layout of an [`Hlc`] (`u64`, so it sorts as an integer in SQLite):
//!
//! ```text
//!  63                              16 15            0
//! +----------------------------------+---------------+
//! |  physical: Unix milliseconds     | logical count |
//! +----------------------------------+---------------+
//! ```
//!
//! Design constraints:
//! - `now()` is strictly increasing, even when the wall clock jumps back
//!   (a district PC after a power cut) — the physical part then stays put and
//!   the logical part counts.
//! - `observe()` of a remote timestamp never lets the local clock run more
//!   than `max_forward` ahead of the wall clock: a node whose clock is days in
//!   the future must not drag every site's clock with it. Causal order inside
//!   one complaint is kept separately by the store (a new event is always
//!   stamped after the complaint's latest event).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A hybrid logical clock timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hlc(pub u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MAX: u64 = (1 << LOGICAL_BITS) - 1;

impl Hlc {
    pub fn from_parts(physical_ms: u64, logical: u16) -> Hlc {
        Hlc((physical_ms << LOGICAL_BITS) | u64::from(logical))
    }

    /// Unix milliseconds of the physical part.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MAX) as u16
    }

    /// The smallest timestamp strictly after `self`.
    pub fn successor(self) -> Hlc {
        Hlc(self.0.saturating_add(1))
    }

    /// The physical part as a UTC time.
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.physical_ms() as i64).unwrap_or_default()
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:04x}", self.physical_ms(), self.logical())
    }
}

/// Where wall time comes from. Tests substitute a scripted clock.
pub trait WallClock: Send + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock, shifted by a fixed offset (the test-only
/// `clock_offset_ms` setting that the fault harness uses to skew a node).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    pub offset_ms: i64,
}

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        real.saturating_add(self.offset_ms).max(0) as u64
    }
}

/// The clock of one site. Owned by the store's writer, so it needs no lock.
pub struct HlcClock {
    last: Hlc,
    wall: Box<dyn WallClock>,
    max_forward_ms: u64,
}

impl fmt::Debug for HlcClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HlcClock")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

/// How far ahead of local wall time a remote timestamp may pull the clock.
pub const DEFAULT_MAX_FORWARD: Duration = Duration::from_secs(5 * 60);

impl HlcClock {
    /// A clock that will never issue a timestamp at or below `floor` (the
    /// highest HLC already stored, so a restart with a clock set back keeps
    /// order).
    pub fn new(wall: Box<dyn WallClock>, floor: Hlc, max_forward: Duration) -> HlcClock {
        HlcClock {
            last: floor,
            wall,
            max_forward_ms: max_forward.as_millis() as u64,
        }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Wall time now, Unix milliseconds.
    pub fn wall_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// A fresh timestamp for a local event.
    pub fn now(&mut self) -> Hlc {
        let wall = self.wall.now_ms();
        self.last = if wall > self.last.physical_ms() {
            Hlc::from_parts(wall, 0)
        } else {
            next_logical(self.last)
        };
        self.last
    }

    /// Takes a remote timestamp into account; later `now()` values are after
    /// it unless it lies more than `max_forward` ahead of wall time, in which
    /// case the clock advances only to that bound.
    pub fn observe(&mut self, remote: Hlc) {
        let bound = Hlc::from_parts(self.wall.now_ms().saturating_add(self.max_forward_ms), 0);
        let remote = remote.min(bound);
        if remote > self.last {
            self.last = remote;
        }
    }
}

fn next_logical(h: Hlc) -> Hlc {
    if u64::from(h.logical()) == LOGICAL_MAX {
        Hlc::from_parts(h.physical_ms() + 1, 0)
    } else {
        h.successor()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Clone)]
    struct Scripted(Arc<AtomicU64>);
    impl WallClock for Scripted {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn clock(at: u64) -> (HlcClock, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(at));
        (
            HlcClock::new(Box::new(Scripted(t.clone())), Hlc(0), DEFAULT_MAX_FORWARD),
            t,
        )
    }

    #[test]
    fn follows_wall_time_when_it_advances() {
        let (mut c, t) = clock(1_000);
        assert_eq!(c.now(), Hlc::from_parts(1_000, 0));
        t.store(2_000, Ordering::SeqCst);
        assert_eq!(c.now(), Hlc::from_parts(2_000, 0));
    }

    #[test]
    fn stays_monotonic_when_the_wall_clock_jumps_backwards() {
        let (mut c, t) = clock(10_000);
        let a = c.now();
        t.store(5_000, Ordering::SeqCst); // clock set back after a power cut
        let b = c.now();
        let d = c.now();
        assert!(a < b && b < d);
        assert_eq!(b.physical_ms(), 10_000);
        assert_eq!(d.logical(), 2);
    }

    #[test]
    fn a_restart_never_reissues_a_stored_timestamp() {
        let t = Arc::new(AtomicU64::new(1_000));
        let floor = Hlc::from_parts(9_000, 7);
        let mut c = HlcClock::new(Box::new(Scripted(t)), floor, DEFAULT_MAX_FORWARD);
        assert!(c.now() > floor);
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let t = Arc::new(AtomicU64::new(0));
        let floor = Hlc::from_parts(50, u16::MAX);
        let mut c = HlcClock::new(Box::new(Scripted(t)), floor, DEFAULT_MAX_FORWARD);
        assert_eq!(c.now(), Hlc::from_parts(51, 0));
    }

    #[test]
    fn observing_a_later_remote_orders_local_events_after_it() {
        let (mut c, _t) = clock(1_000);
        let remote = Hlc::from_parts(1_500, 3);
        c.observe(remote);
        assert!(c.now() > remote);
    }

    #[test]
    fn a_far_future_remote_cannot_drag_the_clock_beyond_the_bound() {
        let (mut c, _t) = clock(1_000);
        let days_ahead = Hlc::from_parts(1_000 + 3 * 86_400_000, 0);
        c.observe(days_ahead);
        let next = c.now();
        assert!(next < days_ahead);
        assert!(next.physical_ms() <= 1_000 + DEFAULT_MAX_FORWARD.as_millis() as u64);
    }

    #[test]
    fn parts_round_trip_and_sort_as_integers() {
        let h = Hlc::from_parts(1_764_000_000_000, 513);
        assert_eq!(h.physical_ms(), 1_764_000_000_000);
        assert_eq!(h.logical(), 513);
        assert!(Hlc::from_parts(5, 0) > Hlc::from_parts(4, u16::MAX));
    }
}
