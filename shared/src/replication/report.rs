//! What operators see of replication: a site's link to its parent (queue,
//! last contact, last error) and, at a hub, each child's health. Read from
//! the store, so `status` works whether or not the site is running.

use serde::Serialize;

use crate::domain::{SiteCode, SiteRole};
use crate::store::{CursorKind, PeerInfo, Store, StoreError};

/// The link to the parent, for `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamStatus {
    /// The parent's site code ("11", "00").
    pub parent: String,
    /// Own seq the parent last said it holds durably.
    pub acked_seq: u64,
    /// Events written or received here that the parent has not acked.
    pub queued_events: u64,
    /// Age of the oldest of them, seconds.
    pub oldest_queued_age_s: Option<f64>,
    /// Unix ms of the last successful exchange (Hello or ack).
    pub last_contact_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// Parent clock minus ours at the last Hello, ms.
    pub clock_skew_ms: Option<i64>,
    /// The skew exceeds [`SKEW_WARNING_MS`]: fix this machine's clock (events
    /// still order causally, but local times shown to staff are off).
    pub clock_warning: bool,
    /// Events received from the parent and stored.
    pub received_events: u64,
    /// Events the parent sent that were already held here (an echo or a
    /// re-send; stays 0 in normal operation).
    pub received_duplicates: u64,
}

/// Clock skew above which `status` and `nodes` flag a site.
pub const SKEW_WARNING_MS: i64 = 5 * 60 * 1000;

fn skew_warning(skew: Option<i64>) -> bool {
    skew.is_some_and(|s| s.unsigned_abs() > SKEW_WARNING_MS.unsigned_abs())
}

/// One child of a hub, for `lapor-hub nodes --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildStatus {
    pub site: String,
    pub last_seen_ms: Option<i64>,
    /// The child's seq this hub holds durably.
    pub cursor: u64,
    /// The child's head seq as it reported at its last Hello.
    pub reported_head: Option<u64>,
    /// `reported_head - cursor`: events the child had that are not here yet
    /// (as of the last Hello; 0 when unknown).
    pub lag_events: u64,
    /// Child clock minus ours at its last Hello, ms.
    pub clock_skew_ms: Option<i64>,
    /// The skew exceeds [`SKEW_WARNING_MS`].
    pub clock_warning: bool,
    /// Records from this child that were refused and await an operator.
    pub quarantined: u64,
    /// Events received from this child and stored.
    pub received_events: u64,
    /// Events this child sent that were already held here (re-sends after
    /// a cut or a restart).
    pub received_duplicates: u64,
}

fn tier(role: SiteRole) -> u8 {
    match role {
        SiteRole::Node => 0,
        SiteRole::Province => 1,
        SiteRole::National => 2,
    }
}

fn peer_site(p: &PeerInfo) -> Option<SiteCode> {
    SiteCode::parse(&p.peer).ok()
}

/// The link to this site's parent. `configured` says whether the site has
/// an `[upstream]`: then the link is reported from the start (queue and
/// errors before the parent ever answered); otherwise only once a parent
/// has been spoken with. Always `None` for national.
pub async fn upstream_status(
    store: &Store,
    configured: bool,
) -> Result<Option<UpstreamStatus>, StoreError> {
    let Some(parent) = super::scope::parent_of(store.site()) else {
        return Ok(None);
    };
    let peers = store.peers().await?;
    let info = peers.into_iter().find(|p| p.peer == parent.as_str());
    if info.is_none() && !configured {
        return Ok(None);
    }
    let info = info.unwrap_or_else(|| PeerInfo {
        peer: parent.to_string(),
        role: parent.role().to_string(),
        last_seen_ms: None,
        last_error: None,
        last_error_ms: None,
        clock_skew_ms: None,
        peer_head_seq: None,
        received_events: 0,
        received_duplicates: 0,
    });
    let acked = store.cursor(parent.clone(), CursorKind::PushOut).await?;
    let acked_at = store
        .cursors()
        .await?
        .into_iter()
        .find(|(peer, kind, _, _)| peer == parent.as_str() && *kind == CursorKind::PushOut)
        .map(|(_, _, _, at)| at);
    let (queued, oldest) = store.backlog(acked, Some(parent.clone())).await?;
    let now = chrono::Utc::now().timestamp_millis();
    Ok(Some(UpstreamStatus {
        parent: parent.to_string(),
        acked_seq: acked.0,
        queued_events: queued,
        oldest_queued_age_s: oldest.map(|t| (now - t).max(0) as f64 / 1000.0),
        last_contact_ms: info.last_seen_ms.max(acked_at),
        last_error: info.last_error.clone(),
        last_error_ms: info.last_error_ms,
        clock_skew_ms: info.clock_skew_ms,
        clock_warning: skew_warning(info.clock_skew_ms),
        received_events: info.received_events,
        received_duplicates: info.received_duplicates,
    }))
}

/// Every child that has said Hello to this hub.
pub async fn children_status(store: &Store) -> Result<Vec<ChildStatus>, StoreError> {
    let own = tier(store.site().role());
    let quarantine = store.quarantined(None).await?;
    let mut out = Vec::new();
    for info in store.peers().await? {
        let Some(site) = peer_site(&info) else {
            continue;
        };
        if tier(site.role()) + 1 != own {
            continue;
        }
        let cursor = store.cursor(site.clone(), CursorKind::PushIn).await?;
        out.push(ChildStatus {
            site: info.peer.clone(),
            last_seen_ms: info.last_seen_ms,
            cursor: cursor.0,
            reported_head: info.peer_head_seq,
            lag_events: info.peer_head_seq.map_or(0, |h| h.saturating_sub(cursor.0)),
            clock_skew_ms: info.clock_skew_ms,
            clock_warning: skew_warning(info.clock_skew_ms),
            quarantined: quarantine
                .iter()
                .filter(|q| q.received_from == info.peer)
                .count() as u64,
            received_events: info.received_events,
            received_duplicates: info.received_duplicates,
        });
    }
    Ok(out)
}

fn ago(now_ms: i64, at_ms: Option<i64>) -> String {
    match at_ms {
        None => "never".into(),
        Some(t) => format!("{}s ago", (now_ms - t).max(0) / 1000),
    }
}

impl std::fmt::Display for UpstreamStatus {
    /// The lines `status` prints for the link (text mode).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = chrono::Utc::now().timestamp_millis();
        writeln!(
            f,
            "parent          {} (acked through seq {})",
            self.parent, self.acked_seq
        )?;
        let oldest = self
            .oldest_queued_age_s
            .map(|s| format!(", oldest {s:.0}s old"))
            .unwrap_or_default();
        writeln!(f, "queued          {} event(s){oldest}", self.queued_events)?;
        writeln!(f, "last contact    {}", ago(now, self.last_contact_ms))?;
        if let Some(e) = &self.last_error {
            writeln!(f, "last error      {} ({e})", ago(now, self.last_error_ms))?;
        }
        if let Some(skew) = self.clock_skew_ms {
            let flag = if self.clock_warning {
                "  ← check this machine's clock"
            } else {
                ""
            };
            writeln!(f, "clock skew      {skew} ms{flag}")?;
        }
        Ok(())
    }
}
