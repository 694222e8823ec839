//! Store tests: idempotency, conflicts, group commit, migrations, reads.

use std::collections::HashSet;

use rusqlite::Connection;
use tempfile::TempDir;

use super::connection::PAGE_SIZE;
use super::migrations::migrate_to;
use super::*;
use crate::domain::{Channel, Classification, Location, Privacy, RegionCode, Reporter};
use crate::hlc::SystemClock;

fn site(code: &str) -> SiteCode {
    SiteCode::parse(code).unwrap()
}

fn config(dir: &TempDir, code: &str) -> StoreConfig {
    StoreConfig {
        path: dir.path().join("site.db"),
        site: site(code),
        clock: SystemClock::default(),
    }
}

pub(crate) fn intake(title: &str) -> Intake {
    Intake {
        classification: Classification::Pengaduan,
        channel: Channel::WalkIn,
        category: "Infrastruktur".into(),
        title: title.into(),
        body: "Jalan desa rusak berat sejak banjir, warga sulit ke pasar.".into(),
        location: Location {
            region: RegionCode::parse("11.13.01").unwrap(),
            description: "Desa Kutelintang".into(),
            coordinates: None,
        },
        incident_date: None,
        privacy: Privacy::default(),
        reporter: Some(Reporter {
            name: "Siti".into(),
            nik: None,
            phone: None,
            email: None,
        }),
    }
}

fn new_complaint(title: &str) -> NewComplaint {
    NewComplaint {
        complaint_id: None,
        intake: intake(title),
        actor: "petugas".into(),
    }
}

#[tokio::test]
async fn a_submitted_complaint_is_readable_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let s = store.submit(new_complaint("Jalan rusak")).await.unwrap();
    assert!(!s.duplicate);
    assert!(
        s.tracking_number.0.starts_with("1113-"),
        "{}",
        s.tracking_number
    );
    store.close().await.unwrap();

    let store = Store::open(config(&dir, "11.13")).unwrap();
    let view = store
        .get(ComplaintKey::Tracking(s.tracking_number.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.state.id, s.complaint_id);
    assert_eq!(view.state.status, Status::BelumTerverifikasi);
    assert_eq!(view.history.len(), 1);
    let again = store.submit(new_complaint("Kedua")).await.unwrap();
    assert!(again.hlc > s.hlc);
    assert_ne!(again.tracking_number, s.tracking_number);
    assert_eq!(
        store.integrity_check().await.unwrap(),
        vec!["ok".to_string()]
    );
}

#[tokio::test]
async fn resubmitting_the_same_complaint_id_is_a_no_op_and_other_content_a_conflict() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let id = ComplaintId::new_v7();
    let req = NewComplaint {
        complaint_id: Some(id),
        intake: intake("Air bersih"),
        actor: "a".into(),
    };
    let first = store.submit(req.clone()).await.unwrap();
    let second = store.submit(req.clone()).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(first.tracking_number, second.tracking_number);
    assert_eq!(first.event_id, second.event_id);
    let changed = NewComplaint {
        intake: intake("Lain"),
        ..req
    };
    assert!(matches!(
        store.submit(changed).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count(ComplaintFilter::default()).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_submissions_commit_in_groups_with_distinct_tracking_numbers() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.submit(new_complaint(&format!("aduan {i}"))).await })
        })
        .collect();
    let mut numbers = HashSet::new();
    for t in tasks {
        assert!(numbers.insert(t.await.unwrap().unwrap().tracking_number));
    }
    assert_eq!(store.count(ComplaintFilter::default()).await.unwrap(), 500);
    assert_eq!(store.stats().await.unwrap().head_seq, Seq(500));
}

#[tokio::test]
async fn a_failing_request_does_not_spoil_its_group() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.submit(new_complaint(&format!("ok {i}")))
                .await
                .map(|_| ())
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = s
                .add_event(NewEvent {
                    event_id: None,
                    complaint_id: ComplaintId::new_v7(),
                    actor: "x".into(),
                    body: EventBody::Commented { body: "?".into() },
                })
                .await;
            assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
            Ok(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.count(ComplaintFilter::default()).await.unwrap(), 50);
}

fn remote_event(origin: &str, complaint: ComplaintId, hlc: u64) -> Event {
    Event {
        id: EventId::new_v7(),
        complaint_id: complaint,
        origin: site(origin),
        hlc: Hlc(hlc),
        actor: "op".into(),
        district: site("11.13"),
        body: EventBody::Created {
            tracking_number: TrackingNumber("1113-ABC-000001".into()),
            intake: Box::new(intake("remote")),
        },
    }
}

#[tokio::test]
async fn the_same_event_twice_is_a_duplicate_and_other_content_is_recorded_as_a_conflict() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let e = remote_event("11.13", ComplaintId::new_v7(), 1 << 20);
    let inc = |events: Vec<Event>| Incoming {
        from: site("11.13"),
        events,
        quarantine: vec![],
        cursor: None,
        source_seqs: vec![],
        requires: None,
    };
    let first = store.apply_remote(inc(vec![e.clone()])).await.unwrap();
    assert_eq!(first.accepted, 1);
    let again = store.apply_remote(inc(vec![e.clone()])).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    let mut forged = e.clone();
    forged.actor = "someone else".into();
    let c = store.apply_remote(inc(vec![forged])).await.unwrap();
    assert_eq!(c.conflicts, 1);
    let view = store
        .get(ComplaintKey::Id(e.complaint_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.history[0].actor, "op", "a conflict never overwrites");
    assert_eq!(store.stats().await.unwrap().conflicts, 1);
}

#[tokio::test]
async fn an_event_naming_another_district_than_its_complaints_is_quarantined_in_the_transaction() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let inc = |events: Vec<Event>| Incoming {
        from: site("11.71"),
        events,
        quarantine: vec![],
        cursor: None,
        source_seqs: vec![],
        requires: None,
    };
    let comment = |complaint: ComplaintId, district: &str| Event {
        id: EventId::new_v7(),
        complaint_id: complaint,
        origin: site("11.71"),
        hlc: Hlc(2 << 20),
        actor: "op".into(),
        district: site(district),
        body: EventBody::Commented {
            body: "bukan wilayah kami".into(),
        },
    };
    // A complaint of 11.13 already held; 11.71's event claims it is 11.71's.
    let held = remote_event("11.13", ComplaintId::new_v7(), 1 << 20);
    store.apply_remote(inc(vec![held.clone()])).await.unwrap();
    let forged = comment(held.complaint_id, "11.71");
    // And a complaint created in the same batch, then claimed by another district.
    let mut fresh = remote_event("11.71", ComplaintId::new_v7(), 1 << 20);
    fresh.district = site("11.71");
    let forged_fresh = comment(fresh.complaint_id, "11.13");
    let honest = comment(fresh.complaint_id, "11.71");
    let out = store
        .apply_remote(inc(vec![
            forged.clone(),
            fresh,
            forged_fresh.clone(),
            honest,
        ]))
        .await
        .unwrap();
    assert_eq!((out.accepted, out.quarantined), (2, 2), "{out:?}");
    let refused: Vec<_> = out.refused.iter().map(|r| r.event_id).collect();
    assert_eq!(refused, vec![forged.id, forged_fresh.id]);
    assert!(
        out.refused[0].reason.contains("of district 11.13"),
        "{:?}",
        out.refused[0]
    );
    let quarantined = store.quarantined(None).await.unwrap();
    assert_eq!(quarantined.len(), 2);
    assert!(quarantined.iter().all(|q| q.received_from == "11.71"));
    let view = store
        .get(ComplaintKey::Id(held.complaint_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.history.len(),
        1,
        "the forged comment is not in the log"
    );
}

#[tokio::test]
async fn events_and_their_cursor_commit_together_and_cursors_never_go_back() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let from = site("11.13");
    let e = remote_event("11.13", ComplaintId::new_v7(), 1 << 20);
    let cursor = CursorUpdate {
        peer: from.clone(),
        kind: CursorKind::PushIn,
        seq: Seq(40),
    };
    store
        .apply_remote(Incoming {
            from: from.clone(),
            events: vec![e],
            quarantine: vec![],
            cursor: Some(cursor),
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .cursor(from.clone(), CursorKind::PushIn)
            .await
            .unwrap(),
        Seq(40)
    );
    store
        .set_cursor(CursorUpdate {
            peer: from.clone(),
            kind: CursorKind::PushIn,
            seq: Seq(7),
        })
        .await
        .unwrap();
    assert_eq!(
        store.cursor(from, CursorKind::PushIn).await.unwrap(),
        Seq(40)
    );
}

#[test]
fn the_row_of_a_lone_created_event_is_the_row_of_its_fold() {
    let created = remote_event("11.13", ComplaintId::new_v7(), 7 << 20);
    let folded = crate::lifecycle::fold(std::slice::from_ref(&created)).unwrap();
    assert_eq!(
        writer::ComplaintRow::of_created(&created),
        Some(writer::ComplaintRow::of(&folded))
    );
    let mut not_created = created.clone();
    not_created.body = EventBody::Verified {
        note: String::new(),
        privacy: Privacy::default(),
    };
    assert_eq!(writer::ComplaintRow::of_created(&not_created), None);
}

/// A pushed batch from 11.13 of one new complaint, continuing from
/// `after` through `through`.
fn pushed_batch(after: u64, through: u64) -> Incoming {
    let from = site("11.13");
    let mut e = remote_event("11.13", ComplaintId::new_v7(), through << 20);
    if let EventBody::Created {
        tracking_number, ..
    } = &mut e.body
    {
        *tracking_number = TrackingNumber(format!("1113-ABC-{through:06}"));
    }
    Incoming {
        from: from.clone(),
        events: vec![e],
        quarantine: vec![],
        cursor: Some(CursorUpdate {
            peer: from,
            kind: CursorKind::PushIn,
            seq: Seq(through),
        }),
        source_seqs: vec![through],
        requires: Some(Seq(after)),
    }
}

/// How far 11.13's pushed log is held here.
async fn held_from_gayo(store: &Store) -> Seq {
    store
        .cursor(site("11.13"), CursorKind::PushIn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_continuing_past_what_is_held_is_refused_and_stores_nothing() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    // Seqs 1..=5 never committed here; a batch after them must not land.
    match store.apply_remote(pushed_batch(5, 9)).await {
        Err(StoreError::Gap { peer, from, held }) => {
            assert_eq!((peer, from, held), (site("11.13"), Seq(5), Seq(0)));
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(store.stats().await.unwrap().complaints, 0);
    assert_eq!(held_from_gayo(&store).await, Seq(0));
}

#[tokio::test]
async fn batches_queued_back_to_back_commit_in_order_and_a_failed_one_stops_the_rest() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    // Queued before any answer: each finds the one before it committed.
    let first = store.queue_apply_remote(pushed_batch(0, 5)).await.unwrap();
    let second = store.queue_apply_remote(pushed_batch(5, 9)).await.unwrap();
    assert_eq!(first.await.unwrap().accepted, 1);
    assert_eq!(second.await.unwrap().accepted, 1);
    // A batch whose predecessor is missing (here: never sent) is refused,
    // and so is the one queued behind it, though it is fine by itself.
    let gap = store
        .queue_apply_remote(pushed_batch(12, 15))
        .await
        .unwrap();
    let behind = store
        .queue_apply_remote(pushed_batch(15, 20))
        .await
        .unwrap();
    assert!(matches!(gap.await, Err(StoreError::Gap { .. })));
    assert!(matches!(
        behind.await,
        Err(StoreError::Gap { held: Seq(9), .. })
    ));
    assert_eq!(store.stats().await.unwrap().complaints, 2);
    assert_eq!(held_from_gayo(&store).await, Seq(9));
}

#[tokio::test]
async fn an_event_run_skips_what_came_from_the_peer_but_moves_past_it() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let e1 = remote_event("11.13", ComplaintId::new_v7(), 1 << 20);
    let e2 = remote_event("00", ComplaintId::new_v7(), 2 << 20);
    store
        .apply_remote(Incoming {
            from: site("11.13"),
            events: vec![e1],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    store
        .apply_remote(Incoming {
            from: site("00"),
            events: vec![e2],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    let req = RunRequest {
        after: Seq(0),
        exclude_from: Some(site("00")),
        region: None,
        max_events: 10,
        max_bytes: 1 << 20,
        until: None,
    };
    let run = store.event_run(req.clone()).await.unwrap();
    assert_eq!(run.events.len(), 1);
    assert_eq!(run.through, Seq(2));
    assert!(run.complete);
    // Cut short by the batch limit: the caller must read again.
    let first = store
        .event_run(RunRequest {
            exclude_from: None,
            max_events: 1,
            ..req.clone()
        })
        .await
        .unwrap();
    assert_eq!((first.events.len(), first.through), (1, Seq(1)));
    assert!(!first.complete);
    // A cut run is framed as a batch of exactly the events it names.
    let batch =
        <crate::proto::v1::EventBatch as prost::Message>::decode(first.framed.as_slice()).unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(
        first.framed,
        crate::replication::codec::frame_events(first.iter().map(|(_, p)| p))
    );
    // Cut by bytes: the event that would not fit is not left in the frame,
    // and a buffer handed in is emptied first.
    let one = first.iter().map(|(_, p)| p.len()).sum();
    let by_bytes = store
        .event_run_into(
            RunRequest {
                exclude_from: None,
                max_bytes: one,
                ..req.clone()
            },
            b"left over from the last batch".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (by_bytes.len(), by_bytes.through, by_bytes.complete),
        (1, Seq(1), false)
    );
    assert_eq!(by_bytes.framed, first.framed);
    // Stopped where a kept batch starts (`until`), with room for more.
    let stopped = store
        .event_run(RunRequest {
            exclude_from: None,
            until: Some(Seq(1)),
            ..req
        })
        .await
        .unwrap();
    assert_eq!((stopped.events.len(), stopped.through), (1, Seq(1)));
    let (queued, _) = store.backlog(Seq(0), Some(site("00"))).await.unwrap();
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn a_commit_wakes_the_watchers_of_its_district_and_province_not_of_other_districts() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let mut gayo_lues = store.watch_region(&site("11.13"));
    let aceh_tengah = store.watch_region(&site("11.04"));
    let mut aceh = store.watch_region(&site("11"));
    // remote_event is of district 11.13. The signal is sent before the
    // commit's callers are answered, so no waiting is involved.
    store
        .apply_remote(Incoming {
            from: site("00"),
            events: vec![remote_event("00", ComplaintId::new_v7(), 1 << 20)],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    assert!(gayo_lues.has_changed().unwrap());
    assert_eq!(*gayo_lues.borrow_and_update(), Seq(1));
    assert!(aceh.has_changed().unwrap());
    assert!(!aceh_tengah.has_changed().unwrap());

    // A commit without events (a cursor) wakes no region.
    aceh.borrow_and_update();
    store
        .set_cursor(CursorUpdate {
            peer: site("00"),
            kind: CursorKind::PullIn,
            seq: Seq(1),
        })
        .await
        .unwrap();
    assert!(!gayo_lues.has_changed().unwrap());
    assert!(!aceh.has_changed().unwrap());
}

#[tokio::test]
async fn lists_page_newest_first_and_filter_by_region_and_status() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    for i in 0..7 {
        store.submit(new_complaint(&format!("c{i}"))).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(ComplaintFilter::default(), PageRequest { limit: 3, token })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|s| s.id));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    let province = ComplaintFilter {
        region: Some("11".into()),
        ..Default::default()
    };
    assert_eq!(store.count(province).await.unwrap(), 7);
    let other = ComplaintFilter {
        region: Some("12".into()),
        ..Default::default()
    };
    assert_eq!(store.count(other).await.unwrap(), 0);
    let verified = ComplaintFilter {
        statuses: vec![Status::Terverifikasi],
        ..Default::default()
    };
    assert_eq!(store.count(verified).await.unwrap(), 0);
    let bad = store
        .list(
            ComplaintFilter::default(),
            PageRequest {
                limit: 3,
                token: Some("nope".into()),
            },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::BadPageToken(_))));
}

#[tokio::test]
async fn a_hub_refuses_intake() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    assert!(matches!(
        store.submit(new_complaint("x")).await,
        Err(StoreError::Rejected { .. })
    ));
}

#[tokio::test]
async fn a_database_of_the_first_schema_opens_under_the_current_one() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("site.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 1).unwrap();
        // A version-1 database with a complaint in it, written as version 1 would.
        let e = remote_event("11.13", ComplaintId::new_v7(), 5 << 20);
        conn.execute(
            "INSERT INTO events (event_id, complaint_id, origin, district, hlc, kind, payload, received_from, stored_at_ms)
             VALUES (?1, ?2, '11.13', '11.13', ?3, 'created', ?4, NULL, 0)",
            rusqlite::params![e.id.0.as_bytes().as_slice(), e.complaint_id.0.as_bytes().as_slice(), e.hlc.0 as i64, read::encode_event(&e)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO complaints VALUES (?1, '1113-ABC-000001', '11.13', 1, ?2, ?2, 1)",
            rusqlite::params![e.complaint_id.0.as_bytes().as_slice(), e.hlc.0 as i64],
        )
        .unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.complaints, stats.schema_version),
        (1, SCHEMA_VERSION)
    );
    assert_eq!(
        store.cursor(site("11"), CursorKind::PushOut).await.unwrap(),
        Seq(0)
    );
    let next = store.submit(new_complaint("after upgrade")).await.unwrap();
    assert!(
        next.hlc > Hlc(5 << 20),
        "the clock floor comes from the old data"
    );
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let dir = TempDir::new().unwrap();
    {
        let conn = Connection::open(dir.path().join("site.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    match Store::open(config(&dir, "11.13")) {
        Err(StoreError::IncompatibleVersion { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
}

#[tokio::test]
async fn another_sites_database_is_refused() {
    let dir = TempDir::new().unwrap();
    Store::open(config(&dir, "11.13"))
        .unwrap()
        .close()
        .await
        .unwrap();
    assert!(matches!(
        Store::open(config(&dir, "11.04")),
        Err(StoreError::WrongSite { .. })
    ));
}

#[tokio::test]
async fn a_clock_set_back_across_a_restart_still_stamps_later_events_later() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let first = store.submit(new_complaint("a")).await.unwrap();
    store.close().await.unwrap();
    let mut cfg = config(&dir, "11.13");
    cfg.clock = SystemClock {
        offset_ms: -3 * 86_400_000,
    };
    let store = Store::open(cfg).unwrap();
    let second = store.submit(new_complaint("b")).await.unwrap();
    assert!(second.hlc > first.hlc);
}

#[tokio::test]
async fn national_acks_become_receipts_in_each_childs_own_numbering() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    let gayo = site("11.13");
    let banda = site("11.71");
    let mut banda_event = remote_event("11.71", ComplaintId::new_v7(), 3 << 20);
    banda_event.district = banda.clone();
    let gayo_events = vec![
        remote_event("11.13", ComplaintId::new_v7(), 1 << 20),
        remote_event("11.13", ComplaintId::new_v7(), 2 << 20),
    ];
    // Gayo Lues sends its seqs 7 and 9 (province seqs 1, 2); Banda Aceh its seq 4 (province seq 3).
    store
        .apply_remote(Incoming {
            from: gayo.clone(),
            events: gayo_events,
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![7, 9],
            requires: None,
        })
        .await
        .unwrap();
    store
        .apply_remote(Incoming {
            from: banda.clone(),
            events: vec![banda_event],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![4],
            requires: None,
        })
        .await
        .unwrap();
    let mut receipts = store.watch_receipts();
    // National holds the province's seqs through 1: Gayo Lues' seq 7 only.
    assert!(
        store
            .advance_receipts(SiteCode::national(), Seq(1))
            .await
            .unwrap()
    );
    assert!(receipts.has_changed().unwrap());
    receipts.mark_unchanged();
    assert_eq!(
        store.receipt_for(gayo.clone()).await.unwrap().map(|r| r.0),
        Some(Seq(7))
    );
    assert_eq!(store.receipt_for(banda.clone()).await.unwrap(), None);
    // A repeated ack moves nothing.
    assert!(
        !store
            .advance_receipts(SiteCode::national(), Seq(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_receipts(SiteCode::national(), Seq(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.receipt_for(gayo).await.unwrap().map(|r| r.0),
        Some(Seq(9))
    );
    assert_eq!(
        store.receipt_for(banda).await.unwrap().map(|r| r.0),
        Some(Seq(4))
    );
}

#[tokio::test]
async fn a_complaint_shows_when_it_was_first_durable_at_each_tier() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11.13")).unwrap();
    let first = store.submit(new_complaint("a")).await.unwrap();
    let second = store.submit(new_complaint("b")).await.unwrap();
    store
        .record_custody(CustodyTier::Province, Seq(1), 1_000)
        .await
        .unwrap();
    store
        .record_custody(CustodyTier::Province, Seq(2), 2_000)
        .await
        .unwrap();
    store
        .record_custody(CustodyTier::National, Seq(2), 3_000)
        .await
        .unwrap();
    store
        .record_custody(CustodyTier::Province, Seq(2), 9_000)
        .await
        .unwrap(); // a repeat keeps the first time
    let a = store
        .get(ComplaintKey::Id(first.complaint_id))
        .await
        .unwrap()
        .unwrap();
    let b = store
        .get(ComplaintKey::Id(second.complaint_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.custody,
        vec![
            Custody {
                tier: CustodyTier::Province,
                at_ms: 1_000
            },
            Custody {
                tier: CustodyTier::National,
                at_ms: 3_000
            }
        ]
    );
    assert_eq!(
        b.custody,
        vec![
            Custody {
                tier: CustodyTier::Province,
                at_ms: 2_000
            },
            Custody {
                tier: CustodyTier::National,
                at_ms: 3_000
            }
        ]
    );
}

#[tokio::test]
async fn every_earlier_schema_version_migrates_to_the_current_one() {
    for version in 1..SCHEMA_VERSION {
        let dir = TempDir::new().unwrap();
        {
            let mut conn = Connection::open(dir.path().join("site.db")).unwrap();
            migrate_to(&mut conn, version).unwrap();
        }
        let store = Store::open(config(&dir, "11.13")).unwrap();
        assert_eq!(
            store.stats().await.unwrap().schema_version,
            SCHEMA_VERSION,
            "from version {version}"
        );
        store.submit(new_complaint("after upgrade")).await.unwrap();
        store
            .record_custody(CustodyTier::Province, Seq(1), 1)
            .await
            .unwrap();
        assert_eq!(
            store.integrity_check().await.unwrap(),
            vec!["ok".to_string()]
        );
    }
}

#[tokio::test]
async fn a_new_database_gets_16_kib_pages_and_an_older_one_keeps_its_own() {
    let page_size = |path: &std::path::Path| -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    let fresh = TempDir::new().unwrap();
    let store = Store::open(config(&fresh, "11.13")).unwrap();
    store.submit(new_complaint("new")).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(page_size(&fresh.path().join("site.db")), 16 * 1024);
    assert_eq!(PAGE_SIZE, 16 * 1024);

    // A database an earlier binary created, with its 4 KiB pages and WAL.
    let old = TempDir::new().unwrap();
    {
        let mut conn = Connection::open(old.path().join("site.db")).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        migrate_to(&mut conn, 4).unwrap();
    }
    let store = Store::open(config(&old, "11.13")).unwrap();
    store.submit(new_complaint("old")).await.unwrap();
    assert_eq!(store.stats().await.unwrap().complaints, 1);
    store.close().await.unwrap();
    assert_eq!(page_size(&old.path().join("site.db")), 4096);
}

#[tokio::test]
async fn a_future_dated_event_is_stored_and_later_local_events_still_order_after_it() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(config(&dir, "11")).unwrap();
    // A node whose clock runs three days ahead created this complaint.
    let three_days = 3 * 86_400_000;
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    let created = remote_event(
        "11.13",
        ComplaintId::new_v7(),
        Hlc::from_parts(now_ms + three_days, 0).0,
    );
    let out = store
        .apply_remote(Incoming {
            from: site("11.13"),
            events: vec![created.clone()],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    assert_eq!(out.accepted, 1, "a future-dated event never blocks sync");
    let verified = store
        .add_event(NewEvent {
            event_id: None,
            complaint_id: created.complaint_id,
            actor: "admin".into(),
            body: EventBody::Verified {
                note: String::new(),
                privacy: Privacy::default(),
            },
        })
        .await
        .unwrap();
    assert!(
        verified.hlc > created.hlc,
        "causal order inside the complaint holds"
    );
    assert_eq!(verified.state.status, Status::Terverifikasi);
    // ... but the hub's own clock was not dragged days ahead: an event on
    // another complaint is stamped near real time.
    let mut current = remote_event("11.13", ComplaintId::new_v7(), Hlc::from_parts(now_ms, 0).0);
    if let EventBody::Created {
        tracking_number, ..
    } = &mut current.body
    {
        *tracking_number = TrackingNumber("1113-ABC-000002".into());
    }
    store
        .apply_remote(Incoming {
            from: site("11.13"),
            events: vec![current.clone()],
            quarantine: vec![],
            cursor: None,
            source_seqs: vec![],
            requires: None,
        })
        .await
        .unwrap();
    let other = store
        .add_event(NewEvent {
            event_id: None,
            complaint_id: current.complaint_id,
            actor: "admin".into(),
            body: EventBody::Verified {
                note: String::new(),
                privacy: Privacy::default(),
            },
        })
        .await
        .unwrap();
    let bound = now_ms + crate::hlc::DEFAULT_MAX_FORWARD.as_millis() as u64 + 60_000;
    assert!(
        other.hlc.physical_ms() < bound,
        "clock dragged to {}",
        other.hlc
    );
}
