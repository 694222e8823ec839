//! Convergence under any interleaving (issue 4): lifecycle events written at
//! all three tiers, delivered through partitions, with duplicates and
//! reordering, end with identical complaint state at every tier — checked
//! against a model (the fold of the union of every event written).
//!
//! In-process stores and `apply_remote` stand in for the network: what is
//! under test is the store's idempotent apply and the fold, not transport.

// The helpers below run only inside the property test; a failed unwrap is a
// failed test, as in a #[test] body.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use lapor_shared::domain::{
    Channel, Classification, ComplaintId, Event, EventBody, EventId, Intake, Location, Privacy,
    RegionCode, SiteCode,
};
use lapor_shared::hlc::SystemClock;
use lapor_shared::lifecycle::fold;
use lapor_shared::store::{ComplaintKey, Incoming, NewComplaint, NewEvent, Store, StoreConfig};

const TIERS: [&str; 3] = ["11.13", "11", "00"];

#[derive(Debug, Clone)]
enum Op {
    /// Tier `tier` writes an event of kind `kind` on complaint `complaint`.
    Write {
        tier: usize,
        complaint: usize,
        kind: u8,
    },
    /// Events held at `from` reach `to`: a subset (the rest is cut off by a
    /// partition), shuffled, some twice.
    Deliver {
        from: usize,
        to: usize,
        keep: Vec<bool>,
        shuffle: u64,
        dup: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..2usize, 0..9u8).prop_map(|(tier, complaint, kind)| Op::Write {
            tier,
            complaint,
            kind
        }),
        (
            0..3usize,
            0..3usize,
            prop::collection::vec(any::<bool>(), 0..16),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(from, to, keep, shuffle, dup)| Op::Deliver {
                from,
                to,
                keep,
                shuffle,
                dup
            }),
    ]
}

fn body(kind: u8, tier: usize) -> EventBody {
    let who = TIERS[tier].to_owned();
    match kind {
        0 => EventBody::Verified {
            note: format!("cek {who}"),
            privacy: Privacy {
                anonymous: false,
                secret: tier == 2,
            },
        },
        1 => EventBody::Rejected {
            reason: "bukan wewenang".into(),
        },
        2 => EventBody::Dispositioned {
            from_institution: who.clone(),
            to_institution: "Dinas PUPR".into(),
            note: String::new(),
        },
        3 => EventBody::Responded {
            institution: "Dinas PUPR".into(),
            body: "sudah diperbaiki".into(),
        },
        4 => EventBody::ReporterReplied {
            body: "terima kasih".into(),
        },
        5 => EventBody::Commented {
            body: format!("catatan {who}"),
        },
        6 => EventBody::Closed {
            reason: "selesai".into(),
        },
        7 => EventBody::Reopened {
            reason: "belum tuntas".into(),
        },
        _ => EventBody::Archived {
            reason: "duplikat".into(),
        },
    }
}

fn intake(n: usize) -> Intake {
    Intake {
        classification: Classification::Pengaduan,
        channel: Channel::WalkIn,
        category: "Infrastruktur".into(),
        title: format!("Jalan rusak {n}"),
        body: "Jalan desa rusak sejak banjir.".into(),
        location: Location {
            region: RegionCode::parse("11.13.01").unwrap(),
            description: "Blangkejeren".into(),
            coordinates: None,
        },
        incident_date: None,
        privacy: Privacy {
            anonymous: true,
            secret: false,
        },
        reporter: None,
    }
}

async fn history(store: &Store, id: ComplaintId) -> Vec<Event> {
    store
        .get(ComplaintKey::Id(id))
        .await
        .unwrap()
        .map(|v| v.history)
        .unwrap_or_default()
}

/// A deterministic shuffle (Fisher–Yates with a small LCG), so a failing
/// case replays exactly from its seed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Store> = TIERS
        .iter()
        .map(|t| {
            Store::open(StoreConfig {
                path: dir.path().join(format!("{t}.db")),
                site: SiteCode::parse(t).unwrap(),
                clock: SystemClock::default(),
            })
            .unwrap()
        })
        .collect();
    let mut complaints = Vec::new();
    for n in 0..2 {
        let s = stores[0]
            .submit(NewComplaint {
                complaint_id: None,
                intake: intake(n),
                actor: "loket".into(),
            })
            .await
            .unwrap();
        complaints.push(s.complaint_id);
    }
    // The model: every event any tier wrote, by id.
    let mut written: BTreeMap<EventId, Event> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Write {
                tier,
                complaint,
                kind,
            } => {
                let id = complaints[complaint];
                let r = stores[tier]
                    .add_event(NewEvent {
                        event_id: None,
                        complaint_id: id,
                        actor: format!("op{tier}"),
                        body: body(kind, tier),
                    })
                    .await;
                // Refusals (an illegal transition here, or a complaint this
                // tier has not received yet) write nothing.
                if let Ok(appended) = r {
                    let event = history(&stores[tier], id)
                        .await
                        .into_iter()
                        .find(|e| e.id == appended.event_id)
                        .unwrap();
                    written.insert(event.id, event);
                }
            }
            Op::Deliver {
                from,
                to,
                keep,
                shuffle: seed,
                dup,
            } => {
                if from == to {
                    continue;
                }
                let mut events = Vec::new();
                for id in &complaints {
                    events.extend(history(&stores[from], *id).await);
                }
                let mut events: Vec<Event> = events
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep.get(*i).copied().unwrap_or(true))
                    .map(|(_, e)| e)
                    .collect();
                if dup {
                    events.extend(events.clone());
                }
                shuffle(&mut events, seed);
                let from_site = SiteCode::parse(TIERS[from]).unwrap();
                stores[to]
                    .apply_remote(Incoming {
                        from: from_site,
                        events,
                        quarantine: vec![],
                        cursor: None,
                        source_seqs: vec![],
                        requires: None,
                    })
                    .await
                    .unwrap();
            }
        }
    }
    // Heal: every tier hears everything from every other, twice over.
    for _ in 0..2 {
        for from in 0..3 {
            for to in 0..3 {
                if from == to {
                    continue;
                }
                let mut events = Vec::new();
                for id in &complaints {
                    events.extend(history(&stores[from], *id).await);
                }
                let from_site = SiteCode::parse(TIERS[from]).unwrap();
                stores[to]
                    .apply_remote(Incoming {
                        from: from_site,
                        events,
                        quarantine: vec![],
                        cursor: None,
                        source_seqs: vec![],
                        requires: None,
                    })
                    .await
                    .unwrap();
            }
        }
    }
    for id in &complaints {
        let mut union: Vec<Event> = history(&stores[0], *id).await;
        union.retain(|e| matches!(e.body, EventBody::Created { .. }));
        union.extend(written.values().filter(|e| e.complaint_id == *id).cloned());
        let expected = fold(&union).unwrap();
        for (tier, store) in stores.iter().enumerate() {
            let view = store.get(ComplaintKey::Id(*id)).await.unwrap().unwrap();
            assert_eq!(
                view.history.len(),
                union.len(),
                "{} holds every event exactly once",
                TIERS[tier]
            );
            assert_eq!(
                view.state.digest(),
                expected.digest(),
                "{} diverged from the model",
                TIERS[tier]
            );
        }
    }
    for s in stores {
        s.close().await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_of_writes_partitions_duplicates_and_reordering_converges(ops in prop::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run(ops));
    }
}
