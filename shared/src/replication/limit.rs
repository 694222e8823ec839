//! The parent's per-child rate limit: a token bucket per child site, so one
//! child that floods (a reconnect loop, a hostile node) is slowed down with
//! `RESOURCE_EXHAUSTED` while every other child is served as usual.
//!
//! - Every replication request (Hello, Push, Pull) takes one token from the
//!   bucket of the child it authenticates as.
//! - Hello is admitted only while the bucket holds a whole session's worth
//!   ([`SESSION_COST`]: Hello, Push, Pull), so a child that is admitted can
//!   also open its streams; otherwise a child at the limit could spend every
//!   token on Hello and never push.
//! - `Certificates.Renew` (`tls::renew`) has buckets of its own, much
//!   stricter ([`RateLimit::RENEWAL`]): a renewal makes the parent sign,
//!   and a child needs one per certificate lifetime.
//! - A refusal says when the tokens will be there (`google.rpc.RetryInfo`),
//!   and the child waits that long instead of its own backoff.
//!
//! Buckets are keyed by the authenticated site (the certificate's name; in
//! insecure mode the Hello site, after it was checked), so their number is
//! bounded by the children that exist; idle full buckets are dropped when
//! the table grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// Tokens a Hello needs in the bucket (it takes one): Hello, Push, Pull.
pub const SESSION_COST: f64 = 3.0;

/// Above this many buckets, full (idle) ones are dropped.
const PRUNE_ABOVE: usize = 4096;

/// The rate each child is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: requests a child may make at once after being idle.
    pub burst: u32,
}

impl RateLimit {
    /// The default for `Certificates.Renew`, a bucket of its own: 3 per
    /// hour with bursts of 3. A child renews once per certificate lifetime
    /// (30 days), so even a few retries after a lost answer fit; a child
    /// renewing in a loop makes the parent sign 3 certificates an hour.
    pub const RENEWAL: RateLimit = RateLimit::per_hour(3.0, 3);

    /// `per_hour` tokens an hour, bursts of `burst`.
    pub const fn per_hour(per_hour: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second: per_hour / 3600.0,
            burst,
        }
    }
}

impl std::fmt::Display for RateLimit {
    /// `2 requests/s, burst 30`; a rate under one a minute per hour
    /// instead (`3 requests/hour, burst 3`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.per_second >= 1.0 / 60.0 {
            write!(f, "{} requests/s, burst {}", self.per_second, self.burst)
        } else {
            // Rounded so 3/3600 reads back as 3, not 3.0000000000000004.
            let per_hour = (self.per_second * 3600.0 * 1000.0).round() / 1000.0;
            write!(f, "{per_hour} requests/hour, burst {}", self.burst)
        }
    }
}

impl Default for RateLimit {
    /// 2 requests/s with bursts of 30: a healthy child needs 3 requests per
    /// session and keeps its session for hours; a child reconnecting in a
    /// tight loop is held to less than one session per second.
    fn default() -> Self {
        RateLimit {
            per_second: 2.0,
            burst: 30,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One token bucket per child.
#[derive(Debug)]
pub struct ChildBuckets {
    limit: RateLimit,
    // std Mutex: held for one map update, never across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl ChildBuckets {
    pub fn new(limit: RateLimit) -> ChildBuckets {
        ChildBuckets {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token from `child`'s bucket at `now`, provided it holds at
    /// least `need` tokens; otherwise returns how long until it will.
    ///
    /// # Errors
    /// The delay after which the request would be admitted.
    pub fn take(&self, child: &str, need: f64, now: Instant) -> Result<(), Duration> {
        let rate = self.limit.per_second.max(f64::MIN_POSITIVE);
        let burst = f64::from(self.limit.burst.max(1));
        let need = need.clamp(1.0, burst);
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            // A panic elsewhere never held this lock across anything that
            // leaves the map inconsistent: keep serving.
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(child.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= need {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - bucket.tokens) / rate))
        }
    }

    /// [`ChildBuckets::take`] now, as the status a child receives.
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`.
    #[allow(clippy::result_large_err)]
    pub fn admit(&self, child: &str, need: f64) -> Result<(), Status> {
        self.take(child, need, Instant::now()).map_err(|delay| {
            tracing::warn!(
                child,
                retry_after_ms = delay.as_millis() as u64,
                "child over its rate limit"
            );
            exhausted(child, &self.limit, delay)
        })
    }
}

/// `RESOURCE_EXHAUSTED` for `child`, retry after `delay` (rounded up to
/// whole milliseconds, so it is never zero).
pub fn exhausted(child: &str, limit: &RateLimit, delay: Duration) -> Status {
    let delay = Duration::from_millis((delay.as_millis() as u64).saturating_add(1));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "site {child} is over its rate limit ({limit}); retry in {} ms",
            delay.as_millis()
        ),
        ErrorDetails::with_retry_info(Some(delay)),
    )
}

/// The delay a parent asked for in `status`'s `RetryInfo`, if any.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info()?.retry_delay
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(per_second: f64, burst: u32) -> ChildBuckets {
        ChildBuckets::new(RateLimit { per_second, burst })
    }

    #[test]
    fn a_child_gets_its_burst_then_is_told_when_to_come_back() {
        let b = buckets(2.0, 5);
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(b.take("11.13", 1.0, t0).is_ok(), "request {i}");
        }
        let delay = b.take("11.13", 1.0, t0).unwrap_err();
        assert_eq!(delay, Duration::from_millis(500));
        assert!(b.take("11.13", 1.0, t0 + delay).is_ok());
    }

    #[test]
    fn one_childs_flood_leaves_the_others_buckets_alone() {
        let b = buckets(1.0, 3);
        let t0 = Instant::now();
        while b.take("11.13", 1.0, t0).is_ok() {}
        for _ in 0..3 {
            assert!(b.take("11.71", 1.0, t0).is_ok());
        }
    }

    #[test]
    fn hello_needs_a_whole_sessions_worth_so_an_admitted_child_can_push() {
        let b = buckets(1.0, 10);
        let t0 = Instant::now();
        for _ in 0..8 {
            b.take("11.13", 1.0, t0).unwrap();
        }
        // Two tokens left: a Push or Pull would pass, a Hello waits for one more.
        let delay = b.take("11.13", SESSION_COST, t0).unwrap_err();
        assert_eq!(delay, Duration::from_secs(1));
        let t1 = t0 + delay;
        b.take("11.13", SESSION_COST, t1).unwrap();
        b.take("11.13", 1.0, t1).unwrap();
        b.take("11.13", 1.0, t1).unwrap();
    }

    #[test]
    fn the_refusal_carries_retry_info_the_child_can_read() {
        let status = exhausted("11.13", &RateLimit::default(), Duration::from_millis(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(retry_delay(&status), Some(Duration::from_millis(1501)));
        assert_eq!(retry_delay(&Status::unavailable("x")), None);
    }

    #[test]
    fn the_refusal_names_the_limit_per_second_or_per_hour() {
        let fast = exhausted("11.13", &RateLimit::default(), Duration::from_secs(1));
        assert!(
            fast.message().contains("(2 requests/s, burst 30)"),
            "{}",
            fast.message()
        );
        let slow = exhausted("11.13", &RateLimit::RENEWAL, Duration::from_secs(1200));
        assert!(
            slow.message().contains("(3 requests/hour, burst 3)"),
            "{}",
            slow.message()
        );
        assert_eq!(RateLimit::per_hour(7.2, 1).per_second, 0.002);
    }

    #[test]
    fn idle_buckets_are_dropped_when_the_table_grows() {
        let b = buckets(1000.0, 2);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            b.take(&format!("site-{i}"), 1.0, t0).unwrap();
        }
        b.take("late", 1.0, t0 + Duration::from_secs(1)).unwrap();
        assert!(b.buckets.lock().unwrap().len() < PRUNE_ABOVE);
    }
}
