//! Tests of the transition table, the fold and the state digest.

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::{Channel, Classification, Location, Nik, RegionCode, Reporter};

const GAYO: &str = "11.13";
const ACEH: &str = "11";
const NATIONAL: &str = "00";
const T0: u64 = 1_760_000_000_000;

fn site(code: &str) -> SiteCode {
    SiteCode::parse(code).unwrap()
}

fn complaint() -> ComplaintId {
    ComplaintId(Uuid::from_u128(0xC0))
}

fn intake() -> Intake {
    Intake {
        classification: Classification::Pengaduan,
        channel: Channel::WalkIn,
        category: "infrastruktur".into(),
        title: "Jembatan rusak".into(),
        body: "Jembatan di desa kami rusak sejak banjir.".into(),
        location: Location {
            region: RegionCode::parse("11.13.01").unwrap(),
            description: "dekat meunasah".into(),
            coordinates: Some((3.97, 97.35)),
        },
        incident_date: chrono::NaiveDate::from_ymd_opt(2025, 10, 1),
        privacy: Privacy::default(),
        reporter: Some(Reporter {
            name: "Cut Nyak".into(),
            nik: Some(Nik("1113014107900001".into())),
            phone: Some("081234567890".into()),
            email: None,
        }),
    }
}

/// An event of the test complaint; `id` orders events that share an HLC.
fn ev(id: u128, ms: u64, origin: &str, body: EventBody) -> Event {
    Event {
        id: EventId(Uuid::from_u128(id)),
        complaint_id: complaint(),
        origin: site(origin),
        hlc: Hlc::from_parts(T0 + ms, 0),
        actor: "operator".into(),
        district: site(GAYO),
        body,
    }
}

fn created(id: u128, ms: u64) -> Event {
    let body = EventBody::Created {
        tracking_number: TrackingNumber("1113-K7Q-000001".into()),
        intake: Box::new(intake()),
    };
    ev(id, ms, GAYO, body)
}

fn verified(privacy: Privacy) -> EventBody {
    EventBody::Verified {
        note: "lengkap".into(),
        privacy,
    }
}

fn hop(from: &str, to: &str) -> EventBody {
    EventBody::Dispositioned {
        from_institution: from.into(),
        to_institution: to.into(),
        note: String::new(),
    }
}

fn body_of(kind: EventKind) -> EventBody {
    let text = || "teks".to_owned();
    match kind {
        EventKind::Created => EventBody::Created {
            tracking_number: TrackingNumber("1113-K7Q-000002".into()),
            intake: Box::new(intake()),
        },
        EventKind::Verified => verified(Privacy::default()),
        EventKind::Rejected => EventBody::Rejected { reason: text() },
        EventKind::Dispositioned => hop("Pemkab Gayo Lues", "Dinas PUPR"),
        EventKind::Responded => EventBody::Responded {
            institution: "Dinas PUPR".into(),
            body: text(),
        },
        EventKind::ReporterReplied => EventBody::ReporterReplied { body: text() },
        EventKind::Commented => EventBody::Commented { body: text() },
        EventKind::Closed => EventBody::Closed { reason: text() },
        EventKind::Archived => EventBody::Archived { reason: text() },
        EventKind::Reopened => EventBody::Reopened { reason: text() },
        EventKind::PrivacyTightened => EventBody::PrivacyTightened {
            privacy: Privacy::default(),
        },
    }
}

/// A five-event history that ends in Dalam Proses after a reply.
fn history() -> Vec<Event> {
    vec![
        created(1, 0),
        ev(2, 10, ACEH, verified(Privacy::default())),
        ev(3, 20, NATIONAL, hop("Pemprov Aceh", "Pemkab Gayo Lues")),
        ev(4, 30, NATIONAL, body_of(EventKind::Responded)),
        ev(5, 40, GAYO, body_of(EventKind::ReporterReplied)),
    ]
}

fn permutations(items: &[Event]) -> Vec<Vec<Event>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let head = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, head.clone());
            out.push(tail);
        }
    }
    out
}

fn reasons(state: &ComplaintState) -> Vec<&str> {
    state.skipped.iter().map(|s| s.reason.as_str()).collect()
}

#[test]
fn fold_is_independent_of_input_order() {
    let expected = fold(&history()).unwrap();
    assert_eq!(expected.status, Status::DalamProses);
    assert!(expected.skipped.is_empty(), "{:?}", expected.skipped);
    let all = permutations(&history());
    assert_eq!(all.len(), 120);
    for p in all {
        let state = fold(&p).unwrap();
        assert_eq!(state, expected);
        assert_eq!(state.digest(), expected.digest());
    }
}

#[test]
fn duplicate_events_are_folded_once() {
    let mut events = history();
    events.extend(history());
    events.push(history()[2].clone());
    let state = fold(&events).unwrap();
    assert_eq!(state, fold(&history()).unwrap());
    assert_eq!(state.event_count, 5);
    assert_eq!(state.dispositions.len(), 1);
}

#[test]
fn milestones_are_recorded_for_deadlines() {
    let state = fold(&history()).unwrap();
    let at = |ms| Some(Hlc::from_parts(T0 + ms, 0));
    assert_eq!(state.created_hlc, Hlc::from_parts(T0, 0));
    assert_eq!(state.verified_at, at(10));
    assert_eq!(state.dispositioned_at, at(20));
    assert_eq!(state.responded_at, at(30));
    assert_eq!(state.last_reply_at, at(40));
    assert_eq!((state.closed_at, state.reopened_at), (None, None));
    assert_eq!(state.updated_hlc, Hlc::from_parts(T0 + 40, 0));
    assert_eq!(state.last_event, EventId(Uuid::from_u128(5)));
}

#[test]
fn no_created_event_folds_to_nothing() {
    assert_eq!(fold(&[]), None);
    assert_eq!(fold(&history()[1..]), None);
    // A complaint cannot be created at a hub, so this founds nothing either.
    let mut at_hub = created(1, 0);
    at_hub.origin = site(ACEH);
    assert_eq!(fold(&[at_hub]), None);
}

/// What LAPOR's workflow allows, written out independently of `TRANSITIONS`
/// (with a response on record): the status an event leads to, or `None`.
fn lapor_rule(kind: EventKind, from: Status) -> Option<Status> {
    use Status::*;
    match (kind, from) {
        (EventKind::Verified, BelumTerverifikasi) => Some(Terverifikasi),
        (EventKind::Rejected, BelumTerverifikasi) => Some(Ditolak),
        (EventKind::Dispositioned, Terverifikasi | DalamProses) => Some(DalamProses),
        (EventKind::Responded | EventKind::ReporterReplied, DalamProses) => Some(DalamProses),
        (EventKind::Commented | EventKind::PrivacyTightened, s) => Some(s),
        (EventKind::Closed, DalamProses) => Some(Selesai),
        (EventKind::Archived, BelumTerverifikasi | Terverifikasi) => Some(Diarsipkan),
        (EventKind::Reopened, Selesai) => Some(DalamProses),
        (EventKind::Reopened, Ditolak | Diarsipkan) => Some(BelumTerverifikasi),
        _ => None,
    }
}

#[test]
fn every_kind_from_every_status_follows_the_table() {
    let base = fold(&[created(1, 0)]).unwrap();
    for kind in EventKind::ALL {
        // Written where it is allowed, so only the status decides.
        let origin = if legal_at(kind, SiteRole::Node) {
            GAYO
        } else {
            NATIONAL
        };
        let event = ev(9, 50, origin, body_of(kind));
        for from in Status::ALL {
            let mut state = base.clone();
            state.status = from;
            state.responded_at = Some(Hlc::from_parts(T0 + 1, 0));
            let got = state.check(&event);
            match (kind, lapor_rule(kind, from)) {
                (EventKind::Created, _) => assert_eq!(
                    got,
                    Err(TransitionError::AlreadyCreated {
                        first: EventId(Uuid::from_u128(1))
                    })
                ),
                (_, Some(to)) => assert_eq!(got, Ok(to), "{kind} from {from}"),
                (_, None) => {
                    assert_eq!(
                        got,
                        Err(TransitionError::IllegalFrom { kind, from }),
                        "{kind} from {from}"
                    );
                    state.apply(&event);
                    assert_eq!(state.status, from, "an illegal {kind} changed the status");
                    assert_eq!(reasons(&state), [format!("{kind} while {from}")]);
                }
            }
        }
    }
}

#[test]
fn each_kind_is_written_only_at_its_tiers() {
    use SiteRole::*;
    let expected: [(EventKind, &[SiteRole]); 11] = [
        (EventKind::Created, &[Node]),
        (EventKind::Verified, &[Node, Province, National]),
        (EventKind::Rejected, &[Node, Province, National]),
        (EventKind::Dispositioned, &[Node, Province, National]),
        (EventKind::Responded, &[Node, Province, National]),
        (EventKind::ReporterReplied, &[Node]),
        (EventKind::Commented, &[Node, Province, National]),
        (EventKind::Closed, &[Province, National]),
        (EventKind::Archived, &[Province, National]),
        (EventKind::Reopened, &[Province, National]),
        (EventKind::PrivacyTightened, &[Node, Province, National]),
    ];
    for (kind, tiers) in expected {
        for role in [Node, Province, National] {
            assert_eq!(
                legal_at(kind, role),
                tiers.contains(&role),
                "{kind} at {role}"
            );
        }
    }
}

#[test]
fn a_node_never_closes_and_the_skip_says_why() {
    let mut events = history();
    events.push(ev(6, 50, GAYO, body_of(EventKind::Closed)));
    let state = fold(&events).unwrap();
    assert_eq!(state.status, Status::DalamProses);
    assert_eq!(state.closed_at, None);
    assert_eq!(state.event_count, 6);
    assert_eq!(
        reasons(&state),
        ["closed may not be written at a node site (11.13)"]
    );
    assert_eq!(state.skipped[0].kind, "closed");
}

#[test]
fn a_reporter_reply_needs_an_agency_response() {
    let events = [
        created(1, 0),
        ev(2, 10, GAYO, verified(Privacy::default())),
        ev(3, 20, GAYO, hop("Pemkab", "Dinas")),
        ev(4, 30, GAYO, body_of(EventKind::ReporterReplied)),
    ];
    let state = fold(&events).unwrap();
    assert_eq!(state.last_reply_at, None);
    assert_eq!(
        reasons(&state),
        ["reporter_replied before any agency response"]
    );
}

#[test]
fn check_transition_judges_new_complaints_too() {
    assert_eq!(
        check_transition(None, &created(1, 0)),
        Ok(Status::BelumTerverifikasi)
    );
    let early = ev(2, 0, ACEH, verified(Privacy::default()));
    assert_eq!(
        check_transition(None, &early),
        Err(TransitionError::NotCreated {
            kind: EventKind::Verified
        })
    );
    let state = fold(&[created(1, 0)]).unwrap();
    assert_eq!(
        check_transition(Some(&state), &early),
        Ok(Status::Terverifikasi)
    );
}

#[test]
fn reopen_leads_back_by_where_it_ended() {
    let closed = [
        history(),
        vec![
            ev(6, 50, ACEH, body_of(EventKind::Closed)),
            ev(7, 60, NATIONAL, body_of(EventKind::Reopened)),
        ],
    ]
    .concat();
    let state = fold(&closed).unwrap();
    assert_eq!(state.status, Status::DalamProses);
    assert_eq!(state.closed_at, Some(Hlc::from_parts(T0 + 50, 0)));
    assert_eq!(state.reopened_at, Some(Hlc::from_parts(T0 + 60, 0)));

    let rejected = [
        created(1, 0),
        ev(2, 10, GAYO, body_of(EventKind::Rejected)),
        ev(3, 20, ACEH, body_of(EventKind::Reopened)),
    ];
    assert_eq!(fold(&rejected).unwrap().status, Status::BelumTerverifikasi);
}

#[test]
fn of_concurrent_verify_and_reject_the_first_in_hlc_id_order_stands() {
    // Same physical millisecond at two tiers: the event id decides.
    let verify = |id| ev(id, 10, ACEH, verified(Privacy::default()));
    let reject = |id| ev(id, 10, GAYO, body_of(EventKind::Rejected));

    // Every arrival order gives the same outcome.
    for events in permutations(&[created(1, 0), verify(0x20), reject(0x21)]) {
        let state = fold(&events).unwrap();
        assert_eq!(state.status, Status::Terverifikasi);
        assert_eq!(state.skipped.len(), 1);
        assert_eq!(state.skipped[0].event_id, EventId(Uuid::from_u128(0x21)));
        assert_eq!(reasons(&state), ["rejected while Terverifikasi"]);
    }
    for events in permutations(&[created(1, 0), verify(0x21), reject(0x20)]) {
        let state = fold(&events).unwrap();
        assert_eq!(state.status, Status::Ditolak);
        assert_eq!(state.verified_at, None);
        assert_eq!(reasons(&state), ["verified while Ditolak"]);
        assert_eq!(state.event_count, 3);
    }
}

#[test]
fn a_second_concurrent_verify_is_kept_as_skipped() {
    let a = ev(0x20, 10, ACEH, verified(Privacy::default()));
    let b = ev(0x21, 10, NATIONAL, verified(Privacy::default()));
    for events in permutations(&[created(1, 0), b, a]) {
        let state = fold(&events).unwrap();
        assert_eq!(state.status, Status::Terverifikasi);
        assert_eq!(state.verified_at, Some(Hlc::from_parts(T0 + 10, 0)));
        assert_eq!(state.skipped[0].event_id, EventId(Uuid::from_u128(0x21)));
        assert_eq!(reasons(&state), ["verified while Terverifikasi"]);
    }
}

#[test]
fn a_second_created_is_skipped_and_the_earliest_founds_the_state() {
    let mut later = created(7, 5);
    if let EventBody::Created {
        tracking_number, ..
    } = &mut later.body
    {
        *tracking_number = TrackingNumber("1113-ZZZ-000009".into());
    }
    let state = fold(&[later, created(1, 0)]).unwrap();
    assert_eq!(state.tracking_number.0, "1113-K7Q-000001");
    assert_eq!(state.created_event, EventId(Uuid::from_u128(1)));
    assert_eq!(
        reasons(&state),
        [format!(
            "created again; the complaint was created by event {}",
            Uuid::from_u128(1)
        )]
    );
}

#[test]
fn events_stamped_before_the_created_are_applied_after_it() {
    // A node whose clock ran ahead stamped the creation after national's
    // verification.
    let verify = ev(2, 10, NATIONAL, verified(Privacy::default()));
    let state = fold(&[verify.clone(), created(1, 500)]).unwrap();
    assert_eq!(state.status, Status::Terverifikasi);
    assert_eq!(state.verified_at, Some(verify.hlc));
    assert_eq!(state.created_hlc, Hlc::from_parts(T0 + 500, 0));
    assert_eq!(state.updated_hlc, Hlc::from_parts(T0 + 500, 0));
    assert_eq!(state.event_count, 2);
}

#[test]
fn events_of_another_complaint_or_district_are_kept_but_not_applied() {
    let mut stray = ev(
        2,
        10,
        ACEH,
        verified(Privacy {
            anonymous: true,
            secret: true,
        }),
    );
    stray.complaint_id = ComplaintId(Uuid::from_u128(0xBAD));
    let mut moved = ev(3, 20, ACEH, verified(Privacy::default()));
    moved.district = site("11.71");
    let state = fold(&[created(1, 0), stray, moved]).unwrap();
    assert_eq!(state.status, Status::BelumTerverifikasi);
    assert_eq!(
        state.privacy,
        Privacy::default(),
        "a stray event tightened privacy"
    );
    assert_eq!(state.skipped.len(), 2);
    assert_eq!(state.event_count, 3);
}

#[test]
fn privacy_never_loosens() {
    let mut first = created(1, 0);
    if let EventBody::Created { intake, .. } = &mut first.body {
        intake.privacy = Privacy {
            anonymous: true,
            secret: false,
        };
    }
    let secret = Privacy {
        anonymous: false,
        secret: true,
    };
    let events = [
        first,
        ev(2, 10, ACEH, verified(Privacy::default())),
        ev(
            3,
            20,
            GAYO,
            EventBody::PrivacyTightened {
                privacy: Privacy::default(),
            },
        ),
        // Loses to the first verification, but its flag is still honoured.
        ev(4, 30, NATIONAL, verified(secret)),
        ev(
            5,
            40,
            GAYO,
            EventBody::PrivacyTightened {
                privacy: Privacy::default(),
            },
        ),
    ];
    let state = fold(&events).unwrap();
    assert_eq!(
        state.privacy,
        Privacy {
            anonymous: true,
            secret: true
        }
    );
    assert_eq!(reasons(&state), ["verified while Terverifikasi"]);
    assert_eq!(
        state.intake.privacy,
        Privacy {
            anonymous: true,
            secret: false
        }
    );
}

#[test]
fn dispositions_form_a_chain_in_fold_order() {
    let events = [
        ev(5, 40, NATIONAL, hop("Dinas PUPR", "Balai Jalan")),
        ev(3, 20, NATIONAL, hop("KSP", "Pemprov Aceh")),
        created(1, 0),
        ev(4, 30, ACEH, hop("Pemprov Aceh", "Dinas PUPR")),
        ev(2, 10, NATIONAL, verified(Privacy::default())),
    ];
    let state = fold(&events).unwrap();
    let chain: Vec<(&str, &str)> = state
        .dispositions
        .iter()
        .map(|h| (h.from_institution.as_str(), h.to_institution.as_str()))
        .collect();
    assert_eq!(
        chain,
        [
            ("KSP", "Pemprov Aceh"),
            ("Pemprov Aceh", "Dinas PUPR"),
            ("Dinas PUPR", "Balai Jalan")
        ]
    );
    assert_eq!(state.dispositioned_at, Some(Hlc::from_parts(T0 + 40, 0)));
}

#[test]
fn applying_in_order_equals_folding() {
    let mut events = history();
    events.push(ev(6, 35, GAYO, verified(Privacy::default())));
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| (e.hlc, e.id));
    let mut state = ComplaintState::from_created(&sorted[0]).unwrap();
    for e in &sorted[1..] {
        assert!(state.follows(e));
        state.apply(e);
    }
    assert_eq!(state, fold(&events).unwrap());
    assert!(!state.follows(&sorted[2]));
}

/// A named change to one field of a state.
type Edit = (&'static str, fn(&mut ComplaintState));

#[test]
fn digest_changes_with_every_field_and_only_with_them() {
    let base = fold(&history()).unwrap();
    assert_eq!(base.digest(), base.clone().digest());
    assert_eq!(base.digest().len(), 64);
    fn h(ms: u64) -> Hlc {
        Hlc::from_parts(T0 + ms, 7)
    }
    fn reporter(s: &mut ComplaintState) -> &mut Reporter {
        s.intake.reporter.as_mut().unwrap()
    }
    #[rustfmt::skip] // one edit a line
    let edits: &[Edit] = &[
        ("id", |s| s.id = ComplaintId(Uuid::from_u128(0xC1))),
        ("tracking", |s| s.tracking_number.0.push('X')),
        ("district", |s| s.district = site("11.71")),
        ("origin", |s| s.origin = site("11.71")),
        ("classification", |s| s.intake.classification = Classification::Aspirasi),
        ("channel", |s| s.intake.channel = Channel::Sms1708),
        ("category", |s| s.intake.category.push('x')),
        // Moving a byte between adjacent strings must still change the digest.
        ("title/body", |s| { s.intake.title.push('J'); s.intake.body.remove(0); }),
        ("region", |s| s.intake.location.region = RegionCode::parse("11.13.02").unwrap()),
        ("place", |s| s.intake.location.description.clear()),
        ("coordinates", |s| s.intake.location.coordinates = None),
        ("incident", |s| s.intake.incident_date = None),
        ("intake privacy", |s| s.intake.privacy.secret = true),
        ("reporter", |s| s.intake.reporter = None),
        ("name", |s| reporter(s).name.clear()),
        ("nik", |s| reporter(s).nik = None),
        ("phone", |s| reporter(s).phone = None),
        ("email", |s| reporter(s).email = Some("a@b.id".into())),
        ("status", |s| s.status = Status::Selesai),
        ("privacy", |s| s.privacy.anonymous = true),
        ("hop added", |s| s.dispositions.push(s.dispositions[0].clone())),
        ("hop from", |s| s.dispositions[0].from_institution.push('x')),
        ("hop to", |s| s.dispositions[0].to_institution.push('x')),
        ("hop note", |s| s.dispositions[0].note.push('x')),
        ("hop at", |s| s.dispositions[0].at = h(1)),
        ("created", |s| s.created_hlc = h(2)),
        ("updated", |s| s.updated_hlc = h(3)),
        ("count", |s| s.event_count += 1),
        ("skipped", |s| s.skipped.push(SkippedEvent {
            event_id: EventId(Uuid::from_u128(9)),
            kind: "verified",
            reason: "verified while Terverifikasi".into(),
        })),
        ("created event", |s| s.created_event = EventId(Uuid::from_u128(99))),
        ("last event", |s| s.last_event = EventId(Uuid::from_u128(99))),
        ("verified", |s| s.verified_at = None),
        ("dispositioned", |s| s.dispositioned_at = Some(h(4))),
        ("responded", |s| s.responded_at = Some(h(5))),
        ("replied", |s| s.last_reply_at = None),
        ("closed", |s| s.closed_at = Some(h(6))),
        ("reopened", |s| s.reopened_at = Some(h(6))),
    ];
    let mut seen = std::collections::HashMap::new();
    seen.insert(base.digest(), "base");
    for (name, edit) in edits {
        let mut state = base.clone();
        edit(&mut state);
        assert_ne!(state, base, "{name} edit changed nothing");
        if let Some(other) = seen.insert(state.digest(), name) {
            panic!("{name} has the same digest as {other}");
        }
    }
}

/// One generated event: kind, origin tier, HLC offset, privacy flags, and a
/// random part of its id so that ties in HLC break in random ways.
type Op = (usize, usize, u64, (bool, bool), u16);

fn build(created_at: u64, ops: &[Op]) -> Vec<Event> {
    let tiers = [GAYO, ACEH, NATIONAL];
    let mut events = vec![created((u128::from(u16::MAX) << 16) | 0xFFFF, created_at)];
    for (i, &(kind, tier, ms, (anonymous, secret), salt)) in ops.iter().enumerate() {
        let kind = EventKind::ALL[kind % EventKind::ALL.len()];
        let privacy = Privacy { anonymous, secret };
        let body = match body_of(kind) {
            EventBody::Verified { note, .. } => EventBody::Verified { note, privacy },
            EventBody::PrivacyTightened { .. } => EventBody::PrivacyTightened { privacy },
            other => other,
        };
        let id = (u128::from(salt) << 16) | i as u128;
        events.push(ev(id, ms, tiers[tier % 3], body));
    }
    events
}

fn history_and_redelivery() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
    let ops = prop::collection::vec(
        (
            0..11usize,
            0..3usize,
            0..8u64,
            any::<(bool, bool)>(),
            any::<u16>(),
        ),
        0..14,
    );
    (0..8u64, ops).prop_flat_map(|(created_at, ops)| {
        let events = build(created_at, &ops);
        let n = events.len();
        let dups = prop::collection::vec(0..n, 0..6);
        (Just(events.clone()), Just(events).prop_shuffle(), dups).prop_map(
            |(events, mut shuffled, dups)| {
                for d in dups {
                    let copy = events[d].clone();
                    shuffled.insert(d % (shuffled.len() + 1), copy);
                }
                (events, shuffled)
            },
        )
    })
}

proptest! {
    #[test]
    fn permuted_and_duplicated_histories_fold_to_the_same_digest(
        (events, redelivered) in history_and_redelivery()
    ) {
        let a = fold(&events).unwrap();
        let b = fold(&redelivered).unwrap();
        prop_assert_eq!(a.digest(), b.digest());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.event_count as usize, events.len());
        prop_assert!(a.skipped.len() < events.len());
        // Privacy is the union of the flags of every event of the complaint.
        let union = events.iter().fold(intake().privacy, |p, e| match &e.body {
            EventBody::Verified { privacy, .. } | EventBody::PrivacyTightened { privacy } => p.tighten(*privacy),
            _ => p,
        });
        prop_assert_eq!(a.privacy, union);
    }
}
