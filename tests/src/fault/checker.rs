//! The checker: Jepsen's set semantics over what the workload attempted
//! ([`History`]) and what every tier holds once the federation has healed
//! ([`TierView`]). Pure functions, so each rule has a unit test that shows
//! it can fail.
//!
//! Rules (a complaint is an element named by its complaint id, a lifecycle
//! event one named by its event id):
//! - **lost**: acknowledged at the site it was written to, missing at
//!   national.
//! - **unexpected**: held by a tier but never attempted, or attempted and
//!   refused on every attempt. Unknown operations may be present or not.
//! - **duplicated**: at any tier, a complaint id listed twice, a Count that
//!   differs from the distinct ids listed, an event id twice in the log, a
//!   complaint with other than one `created` event, or an `event_count`
//!   that differs from the distinct events its log holds.
//! - **diverged**: a complaint whose state digest or event-id set differs
//!   between national, the province and its district node — or that one of
//!   them lacks. Each tier is judged within its scope: a node holds its own
//!   district, the province its province, national everything.
//! - **integrity**: `status --json --integrity` failed or did not say `ok`.
//! - **anomalies**: conflicts (an id with two contents) or quarantined
//!   records at a site, or a retry answered `ALREADY_EXISTS` — none of which
//!   this workload can cause legitimately.
//!
//! [`converged`] is the cheaper predicate polled after healing: the same
//! complaints with the same digests and event counts at every tier in
//! scope, and every acknowledged complaint at national.

use std::collections::{BTreeMap, BTreeSet};

use super::federation::{SiteInfo, Tier};
use super::observe::{Holdings, TierView};
use super::workload::{History, Verdict};

/// What the checker found; every list empty means the schedule passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub lost: Vec<String>,
    pub unexpected: Vec<String>,
    pub duplicated: Vec<String>,
    pub diverged: Vec<String>,
    pub integrity: Vec<String>,
    pub anomalies: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.duplicated.is_empty()
            && self.diverged.is_empty()
            && self.integrity.is_empty()
            && self.anomalies.is_empty()
    }

    /// Only findings that waiting can undo: something not yet at national
    /// (lost) or not yet alike at every tier (diverged). An operation whose
    /// client gave up may still be applied late — a site that stalled
    /// answers a listing before it commits the writes queued behind it — so
    /// these are judged again after the federation converges once more;
    /// duplicates, unexpected records and integrity failures never are.
    pub fn only_unsettled(&self) -> bool {
        !self.is_clean()
            && self.unexpected.is_empty()
            && self.duplicated.is_empty()
            && self.integrity.is_empty()
            && self.anomalies.is_empty()
    }

    /// Every finding, one per line, labelled.
    pub fn lines(&self) -> Vec<String> {
        let groups = [
            ("lost", &self.lost),
            ("unexpected", &self.unexpected),
            ("duplicated", &self.duplicated),
            ("diverged", &self.diverged),
            ("integrity", &self.integrity),
            ("anomaly", &self.anomalies),
        ];
        groups
            .iter()
            .flat_map(|(label, items)| items.iter().map(move |i| format!("{label}: {i}")))
            .collect()
    }
}

/// Whether `site` should hold the complaints of `district`.
pub fn in_scope(site: &SiteInfo, district: &str) -> bool {
    match site.tier {
        Tier::National => true,
        Tier::Province => district
            .strip_prefix(site.code)
            .is_some_and(|rest| rest.starts_with('.')),
        Tier::Node => district == site.code,
    }
}

/// `Ok` once every tier holds, within its scope, the complaints national
/// holds with the same digests and event counts, and national holds every
/// acknowledged complaint; otherwise the first difference found.
///
/// # Errors
/// The reason the federation has not converged yet.
pub fn converged(history: &History, tiers: &[(SiteInfo, Holdings)]) -> Result<(), String> {
    let Some((_, national)) = tiers.iter().find(|(s, _)| s.tier == Tier::National) else {
        return Err("no national tier".into());
    };
    for (id, op) in &history.complaints {
        if op.verdict() == Verdict::Acknowledged && !national.complaints.contains_key(id) {
            return Err(format!("acknowledged complaint {id} not at national yet"));
        }
    }
    for (site, held) in tiers {
        if site.tier == Tier::National {
            continue;
        }
        let expected: BTreeMap<_, _> = national
            .complaints
            .iter()
            .filter(|(_, c)| in_scope(site, &c.district))
            .collect();
        let actual: BTreeMap<_, _> = held.complaints.iter().collect();
        if expected != actual {
            let first = expected
                .iter()
                .find(|(id, c)| actual.get(*id) != Some(*c))
                .map(|(id, _)| format!("{id} differs or is missing at {}", site.code))
                .or_else(|| {
                    actual
                        .keys()
                        .find(|id| !expected.contains_key(*id))
                        .map(|id| format!("{id} at {} but not at national", site.code))
                })
                .unwrap_or_default();
            return Err(format!(
                "{} holds {} complaints in scope, national {}: {first}",
                site.code,
                actual.len(),
                expected.len()
            ));
        }
    }
    Ok(())
}

/// The events of each complaint in one view's log.
fn events_by_complaint(view: &TierView) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &view.events {
        out.entry(e.complaint_id.as_str())
            .or_default()
            .insert(e.event_id.as_str());
    }
    out
}

/// Applies every rule to `history` and `views` (one per site).
pub fn check(history: &History, views: &[TierView]) -> Findings {
    let mut f = Findings::default();
    let tally = history.tally();
    if tally.conflicts > 0 {
        f.anomalies.push(format!(
            "{} attempts answered ALREADY_EXISTS (a retry judged a conflict)",
            tally.conflicts
        ));
    }
    for view in views {
        check_one_tier(history, view, &mut f);
    }
    let Some(national) = views.iter().find(|v| v.site.tier == Tier::National) else {
        f.lost.push("no national tier to check".into());
        return f;
    };
    let national_events: BTreeSet<&str> = national
        .events
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    for (id, op) in &history.complaints {
        if op.verdict() == Verdict::Acknowledged && !national.holdings.complaints.contains_key(id) {
            f.lost
                .push(format!("complaint {id} acknowledged at {}", op.site));
        }
    }
    for (id, op) in &history.events {
        if op.verdict() == Verdict::Acknowledged && !national_events.contains(id.as_str()) {
            f.lost.push(format!(
                "{} event {id} of complaint {} acknowledged at {}",
                op.kind, op.complaint_id, op.site
            ));
        }
    }
    check_divergence(views, national, &mut f);
    f
}

fn check_one_tier(history: &History, view: &TierView, f: &mut Findings) {
    let site = view.site.code;
    match &view.health {
        Err(e) => f.integrity.push(format!("{site}: status failed: {e}")),
        Ok(h) => {
            if h.integrity != ["ok"] {
                f.integrity
                    .push(format!("{site}: integrity_check said {:?}", h.integrity));
            }
            if h.conflicts > 0 {
                f.anomalies
                    .push(format!("{site}: {} conflicting event ids", h.conflicts));
            }
            if h.quarantined > 0 {
                f.anomalies
                    .push(format!("{site}: {} quarantined records", h.quarantined));
            }
        }
    }
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &view.holdings.listed {
        *listed.entry(id.as_str()).or_default() += 1;
    }
    for (id, n) in &listed {
        if *n > 1 {
            f.duplicated
                .push(format!("{site}: complaint {id} listed {n} times"));
        }
    }
    if view.count != listed.len() as u64 {
        f.duplicated.push(format!(
            "{site}: Count says {} but {} distinct complaints are listed",
            view.count,
            listed.len()
        ));
    }
    for id in listed.keys() {
        let attempted = history.complaints.get(*id).map(|op| op.verdict());
        if matches!(attempted, None | Some(Verdict::Failed)) {
            f.unexpected.push(format!(
                "{site}: complaint {id} was {}",
                if attempted.is_none() {
                    "never attempted"
                } else {
                    "refused on every attempt"
                }
            ));
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut created: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &view.events {
        *seen.entry(e.event_id.as_str()).or_default() += 1;
        if e.kind == "created" {
            *created.entry(e.complaint_id.as_str()).or_default() += 1;
        } else {
            let attempted = history.events.get(&e.event_id).map(|op| op.verdict());
            if matches!(attempted, None | Some(Verdict::Failed)) {
                f.unexpected.push(format!(
                    "{site}: {} event {} was {}",
                    e.kind,
                    e.event_id,
                    if attempted.is_none() {
                        "never attempted"
                    } else {
                        "refused on every attempt"
                    }
                ));
            }
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            f.duplicated
                .push(format!("{site}: event {id} is {n} times in the log"));
        }
    }
    if view.health.is_err() {
        // The log was not read (the status failure is already a finding).
        return;
    }
    let logged = events_by_complaint(view);
    for (id, c) in &view.holdings.complaints {
        let genesis = created.get(id.as_str()).copied().unwrap_or(0);
        if genesis != 1 {
            f.duplicated.push(format!(
                "{site}: complaint {id} has {genesis} created events"
            ));
        }
        let distinct = logged.get(id.as_str()).map_or(0, BTreeSet::len);
        if c.event_count as usize != distinct {
            f.duplicated.push(format!(
                "{site}: complaint {id} shows event_count {} but its log holds {distinct} events",
                c.event_count
            ));
        }
    }
}

fn check_divergence(views: &[TierView], national: &TierView, f: &mut Findings) {
    let national_log = events_by_complaint(national);
    let mut districts: BTreeMap<&str, &str> = BTreeMap::new();
    for view in views {
        for (id, c) in &view.holdings.complaints {
            districts.entry(id.as_str()).or_insert(c.district.as_str());
        }
    }
    for view in views.iter().filter(|v| v.site.tier != Tier::National) {
        let log = events_by_complaint(view);
        for (id, district) in &districts {
            if !in_scope(&view.site, district) {
                continue;
            }
            let here = view.holdings.complaints.get(*id);
            let there = national.holdings.complaints.get(*id);
            let site = view.site.code;
            match (here, there) {
                (None, None) => {}
                (Some(_), None) => f
                    .diverged
                    .push(format!("complaint {id} at {site} but not at national")),
                (None, Some(_)) => f
                    .diverged
                    .push(format!("complaint {id} at national but not at {site}")),
                (Some(a), Some(b)) => {
                    if a.digest != b.digest {
                        f.diverged.push(format!(
                            "complaint {id}: digest {} at {site}, {} at national",
                            short(&a.digest),
                            short(&b.digest)
                        ));
                    }
                    if log.get(*id) != national_log.get(*id) {
                        f.diverged.push(format!(
                            "complaint {id}: {} events at {site}, {} at national",
                            log.get(*id).map_or(0, BTreeSet::len),
                            national_log.get(*id).map_or(0, BTreeSet::len)
                        ));
                    }
                }
            }
        }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

#[cfg(test)]
mod tests;
