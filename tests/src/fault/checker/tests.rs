//! Each checker rule, shown to fire on a history and views built by hand,
//! and to stay quiet on a clean federation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use lapor_shared::lifecycle::EventKind;

use super::*;
use crate::fault::observe::{Health, Listed, LoggedEvent};
use crate::fault::workload::{Attempt, Op, Request};

const C1: &str = "00000000-0000-7000-8000-000000000001";
const C2: &str = "00000000-0000-7000-8000-000000000002";
const E1: &str = "00000000-0000-7000-8000-0000000000e1";
const G1: &str = "00000000-0000-7000-8000-0000000000a1";
const G2: &str = "00000000-0000-7000-8000-0000000000a2";

fn site(code: &'static str, tier: Tier) -> SiteInfo {
    SiteInfo {
        code,
        tier,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
    }
}

fn op(site: &'static str, complaint: &str, kind: EventKind, attempts: Vec<Attempt>) -> Op {
    Op {
        site,
        complaint_id: complaint.into(),
        district: "11.13".into(),
        kind,
        request: Request::Submit(Default::default()),
        attempts,
    }
}

/// C1 submitted and acknowledged at 11.13, E1 (verified at national)
/// acknowledged.
fn history() -> History {
    let mut h = History::default();
    h.complaints.insert(
        C1.into(),
        op("11.13", C1, EventKind::Created, vec![Attempt::Ok]),
    );
    h.events.insert(
        E1.into(),
        op("00", C1, EventKind::Verified, vec![Attempt::Ok]),
    );
    h
}

fn view(
    site: SiteInfo,
    complaints: &[(&str, &str, &str)],
    events: &[(&str, &str, &str)],
) -> TierView {
    let mut holdings = Holdings::default();
    for (id, district, digest) in complaints {
        let count = events.iter().filter(|e| e.1 == *id).count() as u32;
        holdings.listed.push((*id).into());
        holdings.complaints.insert(
            (*id).into(),
            Listed {
                district: (*district).into(),
                digest: (*digest).into(),
                event_count: count,
            },
        );
    }
    TierView {
        site,
        count: holdings.complaints.len() as u64,
        holdings,
        events: events
            .iter()
            .map(|(e, c, k)| LoggedEvent {
                event_id: (*e).into(),
                complaint_id: (*c).into(),
                kind: (*k).into(),
            })
            .collect(),
        health: Ok(Health {
            integrity: vec!["ok".into()],
            conflicts: 0,
            quarantined: 0,
            store_path: PathBuf::from("/nowhere"),
        }),
    }
}

const FULL: &[(&str, &str, &str)] = &[(G1, C1, "created"), (E1, C1, "verified")];

/// The three tiers holding C1 with both events and the same digest.
fn clean() -> Vec<TierView> {
    vec![
        view(site("00", Tier::National), &[(C1, "11.13", "d1")], FULL),
        view(site("11", Tier::Province), &[(C1, "11.13", "d1")], FULL),
        view(site("11.13", Tier::Node), &[(C1, "11.13", "d1")], FULL),
        view(site("11.04", Tier::Node), &[], &[]),
    ]
}

fn holdings_of(views: &[TierView]) -> Vec<(SiteInfo, Holdings)> {
    views.iter().map(|v| (v.site, v.holdings.clone())).collect()
}

#[test]
fn a_clean_federation_passes_every_rule() {
    let views = clean();
    let f = check(&history(), &views);
    assert!(f.is_clean(), "{:?}", f.lines());
    assert_eq!(converged(&history(), &holdings_of(&views)), Ok(()));
}

#[test]
fn an_acknowledged_complaint_missing_at_national_is_lost() {
    let mut views = clean();
    views[0] = view(site("00", Tier::National), &[], &[]);
    let f = check(&history(), &views);
    assert_eq!(f.lost.len(), 2, "{:?}", f.lines());
    assert!(f.lost[0].contains(C1));
    assert!(converged(&history(), &holdings_of(&views)).is_err());
}

#[test]
fn an_acknowledged_event_missing_at_national_is_lost() {
    let mut views = clean();
    views[0] = view(
        site("00", Tier::National),
        &[(C1, "11.13", "d1")],
        &[(G1, C1, "created")],
    );
    let f = check(&history(), &views);
    assert_eq!(f.lost.len(), 1, "{:?}", f.lines());
    assert!(f.lost[0].contains(E1));
}

#[test]
fn an_unknown_operation_may_be_missing() {
    let mut h = history();
    h.events.get_mut(E1).unwrap().attempts = vec![Attempt::Unknown("timeout".into())];
    let only_created = &[(G1, C1, "created")];
    let views: Vec<TierView> = clean()
        .into_iter()
        .map(|v| {
            if v.holdings.complaints.is_empty() {
                v
            } else {
                view(v.site, &[(C1, "11.13", "d0")], only_created)
            }
        })
        .collect();
    let f = check(&h, &views);
    assert!(f.is_clean(), "{:?}", f.lines());
}

#[test]
fn a_complaint_nobody_submitted_or_that_was_refused_is_unexpected() {
    let mut h = history();
    h.complaints.insert(
        C2.into(),
        op(
            "11.13",
            C2,
            EventKind::Created,
            vec![Attempt::Refused(tonic::Code::InvalidArgument)],
        ),
    );
    let mut views = clean();
    views[0] = view(
        site("00", Tier::National),
        &[(C1, "11.13", "d1"), (C2, "11.13", "d2")],
        &[
            (G1, C1, "created"),
            (E1, C1, "verified"),
            (G2, C2, "created"),
        ],
    );
    let f = check(&h, &views);
    assert!(
        f.unexpected.iter().any(|u| u.contains(C2)),
        "{:?}",
        f.lines()
    );
    h.complaints.remove(C2);
    let f = check(&h, &views);
    assert!(
        f.unexpected.iter().any(|u| u.contains("never attempted")),
        "{:?}",
        f.lines()
    );
}

#[test]
fn a_complaint_listed_twice_or_created_twice_is_duplicated() {
    let mut views = clean();
    views[1].holdings.listed.push(C1.into());
    let f = check(&history(), &views);
    assert!(
        f.duplicated.iter().any(|d| d.contains("listed 2 times")),
        "{:?}",
        f.lines()
    );
    assert!(
        f.duplicated.iter().any(|d| d.contains("Count says")) || views[1].count == 1,
        "{:?}",
        f.lines()
    );

    let mut views = clean();
    views[2].events.push(LoggedEvent {
        event_id: G2.into(),
        complaint_id: C1.into(),
        kind: "created".into(),
    });
    let f = check(&history(), &views);
    assert!(
        f.duplicated.iter().any(|d| d.contains("2 created events")),
        "{:?}",
        f.lines()
    );
}

#[test]
fn an_event_count_above_the_distinct_events_is_duplicated() {
    let mut views = clean();
    views[0]
        .holdings
        .complaints
        .get_mut(C1)
        .unwrap()
        .event_count = 3;
    let f = check(&history(), &views);
    assert!(
        f.duplicated.iter().any(|d| d.contains("event_count 3")),
        "{:?}",
        f.lines()
    );
}

#[test]
fn a_different_digest_or_event_set_between_tiers_is_divergence() {
    let mut views = clean();
    views[2].holdings.complaints.get_mut(C1).unwrap().digest = "other".into();
    let f = check(&history(), &views);
    assert_eq!(f.diverged.len(), 1, "{:?}", f.lines());
    assert!(converged(&history(), &holdings_of(&views)).is_err());

    let mut views = clean();
    views[1].events.pop();
    views[1]
        .holdings
        .complaints
        .get_mut(C1)
        .unwrap()
        .event_count = 1;
    let f = check(&history(), &views);
    assert!(
        f.diverged.iter().any(|d| d.contains("1 events at 11")),
        "{:?}",
        f.lines()
    );
}

#[test]
fn a_complaint_missing_from_its_node_is_divergence_but_other_districts_are_out_of_scope() {
    let mut views = clean();
    views[2] = view(site("11.13", Tier::Node), &[], &[]);
    let f = check(&history(), &views);
    assert_eq!(f.diverged.len(), 1, "{:?}", f.lines());
    assert!(f.diverged[0].contains("not at 11.13"));
}

#[test]
fn a_failed_integrity_check_and_quarantined_records_are_reported() {
    let mut views = clean();
    views[1].health = Err("exit 1: integrity".into());
    if let Ok(h) = &mut views[2].health {
        h.quarantined = 2;
        h.integrity = vec!["*** in database main ***".into()];
    }
    let f = check(&history(), &views);
    assert_eq!(f.integrity.len(), 2, "{:?}", f.lines());
    assert_eq!(f.anomalies.len(), 1, "{:?}", f.lines());
}

#[test]
fn scope_follows_the_tier() {
    let province = site("11", Tier::Province);
    assert!(in_scope(&province, "11.13"));
    assert!(!in_scope(&province, "12.01"));
    assert!(!in_scope(&site("1", Tier::Province), "11.13"));
    assert!(in_scope(&site("11.13", Tier::Node), "11.13"));
    assert!(!in_scope(&site("11.13", Tier::Node), "11.04"));
    assert!(in_scope(&site("00", Tier::National), "94.71"));
}

#[test]
fn only_lost_or_diverged_findings_are_judged_again_after_waiting() {
    let mut f = Findings::default();
    assert!(!f.only_unsettled(), "a clean check needs no second look");
    f.diverged
        .push("complaint x: 5 events at 11, 4 at national".into());
    f.lost.push("complaint y acknowledged at 11.13".into());
    assert!(f.only_unsettled());
    f.duplicated
        .push("11: event z is 2 times in the log".into());
    assert!(!f.only_unsettled(), "a duplicate never settles");
}
