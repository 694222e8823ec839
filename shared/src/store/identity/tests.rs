//! Identity at rest: no plaintext on disk, identity back for entitled
//! readers and peers, anonymous identity never leaving its node,
//! idempotency with identity, the upgrade of older databases, the key file.

use std::path::{Path, PathBuf};

use prost::Message as _;
use rusqlite::Connection;
use tempfile::TempDir;

use super::super::migrations::migrate_to;
use super::super::read::encode_event;
use super::super::*;
use crate::crypto::KeyError;
use crate::domain::{
    Channel, Classification, Location, Nik, Privacy, RegionCode, Reporter, TrackingNumber,
};
use crate::hlc::{Hlc, SystemClock};
use crate::proto::{convert, v1};

const NAME: &str = "Cut Meutia Zahra";
const NIK: &str = "1113015507900001";
const PHONE: &str = "+6281377001234";
const EMAIL: &str = "cut.meutia@kutelintang.desa.id";

/// Distinct identities, so a leak names its scenario.
fn reporter(n: u8) -> Reporter {
    Reporter {
        name: format!("{NAME} {n}"),
        nik: Some(Nik(format!("{}{n}", &NIK[..15]))),
        phone: Some(format!("{}{n}", &PHONE[..PHONE.len() - 1])),
        email: Some(format!("{n}.{EMAIL}")),
    }
}

/// Byte strings that must never be on disk for identity `n`.
fn needles(n: u8) -> Vec<Vec<u8>> {
    let r = reporter(n);
    let phone = r.phone.unwrap_or_default();
    vec![
        r.name.into_bytes(),
        r.nik.map(|n| n.0).unwrap_or_default().into_bytes(),
        // Without the country code too: any spelling of the number.
        phone.trim_start_matches("+62").as_bytes().to_vec(),
        r.email.unwrap_or_default().into_bytes(),
    ]
}

fn site(code: &str) -> SiteCode {
    SiteCode::parse(code).unwrap()
}

fn open(dir: &Path, code: &str) -> Store {
    Store::open(StoreConfig {
        path: dir.join("site.db"),
        site: site(code),
        clock: SystemClock::default(),
    })
    .unwrap()
}

fn intake(reporter: Option<Reporter>, anonymous: bool) -> Intake {
    Intake {
        classification: Classification::Pengaduan,
        channel: Channel::WalkIn,
        category: "Kesehatan".into(),
        title: "Puskesmas tutup".into(),
        body: "Puskesmas tutup pada jam pelayanan.".into(),
        location: Location {
            region: RegionCode::parse("11.13.01").unwrap(),
            description: "Blangkejeren".into(),
            coordinates: None,
        },
        incident_date: None,
        privacy: Privacy {
            anonymous,
            secret: false,
        },
        reporter,
    }
}

async fn submit(store: &Store, reporter: Option<Reporter>, anonymous: bool) -> Submitted {
    store
        .submit(NewComplaint {
            complaint_id: None,
            intake: intake(reporter, anonymous),
            actor: "petugas".into(),
        })
        .await
        .unwrap()
}

/// A Created event as a node would push it.
fn created(reporter: Option<Reporter>, n: u32) -> Event {
    Event {
        id: EventId::new_v7(),
        complaint_id: ComplaintId::new_v7(),
        origin: site("11.13"),
        hlc: Hlc(1 << 30),
        actor: "petugas".into(),
        district: site("11.13"),
        body: EventBody::Created {
            tracking_number: TrackingNumber(format!("1113-ABC-{n:06}")),
            intake: Box::new(intake(reporter, false)),
        },
    }
}

fn incoming(from: &str, events: Vec<Event>) -> Incoming {
    Incoming {
        from: site(from),
        events,
        source_seqs: vec![],
        requires: None,
        quarantine: vec![],
        cursor: None,
    }
}

fn run_all() -> RunRequest {
    RunRequest {
        after: Seq(0),
        exclude_from: None,
        region: None,
        max_events: 1000,
        max_bytes: 1 << 24,
        until: None,
    }
}

/// A province operator makes `complaint` anonymous at `store`.
async fn made_anonymous(store: &Store, complaint: ComplaintId) -> Appended {
    store
        .add_event(NewEvent {
            event_id: None,
            complaint_id: complaint,
            actor: "admin.koordinator".into(),
            body: EventBody::PrivacyTightened {
                privacy: Privacy {
                    anonymous: true,
                    secret: false,
                },
            },
        })
        .await
        .unwrap()
}

/// The events of a run, decoded as a peer would.
async fn sent(store: &Store) -> Vec<(Vec<u8>, Event)> {
    store
        .event_run(run_all())
        .await
        .unwrap()
        .iter()
        .map(|(_, p)| {
            let e = convert::event_from_proto(v1::Event::decode(p).unwrap()).unwrap();
            (p.to_vec(), e)
        })
        .collect()
}

fn reporter_of(e: &Event) -> Option<&Reporter> {
    match &e.body {
        EventBody::Created { intake, .. } => intake.reporter.as_ref(),
        _ => None,
    }
}

/// Files under `dir` whose bytes contain any needle.
fn files_holding(dir: &Path, needles: &[Vec<u8>]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if needles
            .iter()
            .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        {
            hits.push(path);
        }
    }
    hits
}

fn audit_actions(dir: &Path) -> Vec<String> {
    let conn = Connection::open(dir.join("site.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT action FROM audit ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn state_of(store: &Store, id: ComplaintId) -> crate::lifecycle::ComplaintState {
    store
        .get(ComplaintKey::Id(id))
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn identity_round_trips_to_an_entitled_reader_and_every_read_is_audited() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path(), "11.13");
    let s = submit(&store, Some(reporter(1)), false).await;
    let state = state_of(&store, s.complaint_id).await;
    assert_eq!(state.intake.reporter, None, "plain reads carry no identity");
    store.close().await.unwrap();

    let store = open(dir.path(), "11.13");
    let held = store
        .read_identities(vec![IdentityKey::from(&state)], "node-cli:test")
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].reporter, reporter(1));
    assert_eq!(held[0].scope, IdentityScope::Event);
    assert_eq!(held[0].complaint_id, s.complaint_id);
    store.close().await.unwrap();
    assert_eq!(audit_actions(dir.path()), ["read_identity"]);
}

#[tokio::test]
async fn the_database_files_hold_no_identity_in_plain_text() {
    let node_dir = TempDir::new().unwrap();
    let hub_dir = TempDir::new().unwrap();
    let node = open(node_dir.path(), "11.13");
    let hub = open(hub_dir.path(), "11");
    // At the node: a named complaint, an anonymous one with a recorded
    // identity, and lots of other writes so the WAL is well used.
    submit(&node, Some(reporter(1)), false).await;
    submit(&node, Some(reporter(2)), true).await;
    for _ in 0..20 {
        submit(&node, None, true).await;
    }
    // At the hub: what the node sent, a conflicting copy with another
    // identity, and a quarantined record that carries one.
    let from_node: Vec<Event> = sent(&node).await.into_iter().map(|(_, e)| e).collect();
    hub.apply_remote(incoming("11.13", from_node))
        .await
        .unwrap();
    let pushed = created(Some(reporter(3)), 900);
    hub.apply_remote(incoming("11.13", vec![pushed.clone()]))
        .await
        .unwrap();
    let mut forged = pushed.clone();
    if let EventBody::Created { intake, .. } = &mut forged.body {
        intake.reporter = Some(reporter(4));
    }
    let c = hub
        .apply_remote(incoming("11.13", vec![forged]))
        .await
        .unwrap();
    assert_eq!(c.conflicts, 1);
    let refused = created(Some(reporter(5)), 901);
    let mut q = incoming("11.13", vec![]);
    q.quarantine.push(QuarantineRecord {
        event_id: Some(refused.id.to_string()),
        payload: encode_event(&refused),
        reason: "test refusal".into(),
    });
    hub.apply_remote(q).await.unwrap();
    assert_eq!(
        hub.quarantined(None).await.unwrap()[0].payload,
        encode_event(&refused)
    );

    let all: Vec<Vec<u8>> = (1..=5).flat_map(needles).collect();
    // Before a checkpoint: the WAL holds the recent pages.
    for dir in [node_dir.path(), hub_dir.path()] {
        assert!(dir.join("site.db-wal").exists());
        assert_eq!(files_holding(dir, &all), Vec::<PathBuf>::new());
    }
    // After a checkpoint: everything is in the main file.
    for dir in [node_dir.path(), hub_dir.path()] {
        let conn = Connection::open(dir.join("site.db")).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    node.close().await.unwrap();
    hub.close().await.unwrap();
    for dir in [node_dir.path(), hub_dir.path()] {
        assert_eq!(files_holding(dir, &all), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn a_re_received_event_with_identity_is_a_duplicate_and_another_identity_a_conflict() {
    let dir = TempDir::new().unwrap();
    let hub = open(dir.path(), "11");
    let e = created(Some(reporter(1)), 1);
    let first = hub
        .apply_remote(incoming("11.13", vec![e.clone()]))
        .await
        .unwrap();
    assert_eq!(first.accepted, 1);
    let again = hub
        .apply_remote(incoming("11.13", vec![e.clone()]))
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.conflicts), (1, 0));

    let mut other_phone = e.clone();
    if let EventBody::Created { intake, .. } = &mut other_phone.body
        && let Some(r) = &mut intake.reporter
    {
        r.phone = Some("+6285212345678".into());
    }
    let changed = hub
        .apply_remote(incoming("11.13", vec![other_phone]))
        .await
        .unwrap();
    assert_eq!((changed.duplicates, changed.conflicts), (0, 1));

    let mut withheld = e.clone();
    if let EventBody::Created { intake, .. } = &mut withheld.body {
        intake.reporter = None;
    }
    let w = hub
        .apply_remote(incoming("11.13", vec![withheld]))
        .await
        .unwrap();
    assert_eq!(
        (w.duplicates, w.conflicts),
        (1, 0),
        "a copy without identity is the same event"
    );

    let state = state_of(&hub, e.complaint_id).await;
    let held = hub
        .read_identities(vec![IdentityKey::from(&state)], "test")
        .await
        .unwrap();
    assert_eq!(held[0].reporter, reporter(1), "a conflict never overwrites");
    // The canonical event goes on upward, identity included.
    let (_, up) = sent(&hub).await.remove(0);
    assert_eq!(up, e);
}

#[tokio::test]
async fn a_resubmitted_complaint_with_identity_is_a_duplicate_and_other_identity_a_conflict() {
    let dir = TempDir::new().unwrap();
    let node = open(dir.path(), "11.13");
    for anonymous in [false, true] {
        let id = ComplaintId::new_v7();
        let req = NewComplaint {
            complaint_id: Some(id),
            intake: intake(Some(reporter(1)), anonymous),
            actor: "petugas".into(),
        };
        assert!(!node.submit(req.clone()).await.unwrap().duplicate);
        assert!(node.submit(req.clone()).await.unwrap().duplicate);
        let mut other = req.clone();
        other.intake.reporter = Some(reporter(2));
        assert!(matches!(
            node.submit(other).await,
            Err(StoreError::Conflict(_))
        ));
    }
}

#[tokio::test]
async fn an_anonymous_complaints_identity_never_appears_in_an_event_run() {
    let dir = TempDir::new().unwrap();
    let node = open(dir.path(), "11.13");
    let anon = submit(&node, Some(reporter(1)), true).await;
    let named = submit(&node, Some(reporter(2)), false).await;
    let run = sent(&node).await;
    assert_eq!(run.len(), 2);
    for (payload, event) in &run {
        if event.complaint_id == anon.complaint_id {
            assert_eq!(reporter_of(event), None);
            assert!(files_holding_bytes(payload, &needles(1)).is_empty());
        } else {
            assert_eq!(event.complaint_id, named.complaint_id);
            assert_eq!(reporter_of(event), Some(&reporter(2)));
        }
    }
    // The node still holds it, for its own staff only.
    let state = state_of(&node, anon.complaint_id).await;
    let held = node
        .read_identities(vec![IdentityKey::from(&state)], "test")
        .await
        .unwrap();
    assert_eq!(held[0].scope, IdentityScope::Local);
    assert_eq!(held[0].reporter, reporter(1));
}

fn files_holding_bytes(bytes: &[u8], needles: &[Vec<u8>]) -> Vec<usize> {
    needles
        .iter()
        .enumerate()
        .filter(|(_, n)| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn a_complaint_made_anonymous_keeps_identity_local_at_its_node_and_erased_above() {
    let (node_dir, hub_dir, national_dir) = (
        TempDir::new().unwrap(),
        TempDir::new().unwrap(),
        TempDir::new().unwrap(),
    );
    let node = open(node_dir.path(), "11.13");
    let hub = open(hub_dir.path(), "11");
    let national = open(national_dir.path(), "00");
    let s = submit(&node, Some(reporter(1)), false).await;
    let created_at_node: Vec<Event> = sent(&node).await.into_iter().map(|(_, e)| e).collect();
    hub.apply_remote(incoming("11.13", created_at_node.clone()))
        .await
        .unwrap();
    let key = IdentityKey::from(&state_of(&hub, s.complaint_id).await);
    assert_eq!(hub.read_identities(vec![key], "t").await.unwrap().len(), 1);
    let nik = reporter(1).nik.unwrap();
    assert_eq!(hub.find_by_nik(&nik, "t").await.unwrap(), [s.complaint_id]);

    // The province operator makes it anonymous; the event flows down and up.
    let tightened = made_anonymous(&hub, s.complaint_id).await;
    assert!(tightened.state.privacy.anonymous);
    assert!(
        hub.read_identities(vec![key], "t")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        hub.find_by_nik(&nik, "t").await.unwrap().is_empty(),
        "the NIK hash is erased with the identity"
    );
    assert!(audit_actions(hub_dir.path()).contains(&"erase_identity".to_string()));
    let from_hub: Vec<Event> = sent(&hub).await.into_iter().map(|(_, e)| e).collect();
    assert!(
        from_hub.iter().all(|e| reporter_of(e).is_none()),
        "the hub has nothing left to send"
    );
    node.apply_remote(incoming(
        "11",
        from_hub
            .iter()
            .filter(|e| e.origin == site("11"))
            .cloned()
            .collect(),
    ))
    .await
    .unwrap();
    national
        .apply_remote(incoming("11", from_hub.clone()))
        .await
        .unwrap();
    let at_national = state_of(&national, s.complaint_id).await;
    assert!(at_national.privacy.anonymous);
    assert!(
        national
            .read_identities(vec![IdentityKey::from(&at_national)], "t")
            .await
            .unwrap()
            .is_empty()
    );
    // The node keeps it, for its staff only, and sends it no more.
    let held = node.read_identities(vec![key], "t").await.unwrap();
    assert_eq!(held[0].scope, IdentityScope::Local);
    assert!(
        sent(&node)
            .await
            .iter()
            .all(|(_, e)| reporter_of(e).is_none())
    );
    // A late resend of the original Created does not bring identity back.
    let again = hub
        .apply_remote(incoming("11.13", created_at_node))
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
    assert!(
        hub.read_identities(vec![key], "t")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Erasing clears the event row's identity columns: neither the
/// ciphertext nor the NIK hash is left in the database file once the WAL
/// is checkpointed. (The row is rewritten in place over its old tail,
/// where those columns were; `secure_delete` zeroes any space it frees.)
#[tokio::test]
async fn an_erased_identity_leaves_no_ciphertext_or_nik_hash_in_the_file() {
    let (node_dir, hub_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let node = open(node_dir.path(), "11.13");
    let hub = open(hub_dir.path(), "11");
    let s = submit(&node, Some(reporter(1)), false).await;
    // Other named complaints share the page, so it is rewritten, not freed.
    for n in 2..6 {
        submit(&node, Some(reporter(n)), false).await;
    }
    let events: Vec<Event> = sent(&node).await.into_iter().map(|(_, e)| e).collect();
    hub.apply_remote(incoming("11.13", events)).await.unwrap();
    let db = hub_dir.path().join("site.db");
    let held: Vec<Vec<u8>> = {
        let conn = Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT identity, nik_hash FROM events WHERE complaint_id = ?1 AND identity IS NOT NULL",
            [s.complaint_id.0.as_bytes().as_slice()],
            |r| Ok(vec![r.get(0)?, r.get(1)?]),
        )
        .unwrap()
    };
    made_anonymous(&hub, s.complaint_id).await;
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    hub.close().await.unwrap();
    assert_eq!(files_holding(hub_dir.path(), &held), Vec::<PathBuf>::new());
    // The others' identities stay where they were.
    let hub = open(hub_dir.path(), "11");
    let nik = reporter(2).nik.unwrap();
    assert_eq!(hub.find_by_nik(&nik, "t").await.unwrap().len(), 1);
}

#[tokio::test]
async fn complaints_are_found_by_nik_though_no_nik_is_stored() {
    let dir = TempDir::new().unwrap();
    let node = open(dir.path(), "11.13");
    let a = submit(&node, Some(reporter(1)), false).await;
    let b = submit(&node, Some(reporter(1)), true).await;
    submit(&node, Some(reporter(2)), false).await;
    submit(&node, None, true).await;
    let nik = reporter(1).nik.unwrap();
    let mut found = node.find_by_nik(&nik, "node-cli:test").await.unwrap();
    found.sort();
    let mut want = vec![a.complaint_id, b.complaint_id];
    want.sort();
    assert_eq!(found, want);
    assert!(
        node.find_by_nik(&Nik("1113014107900009".into()), "t")
            .await
            .unwrap()
            .is_empty()
    );
    node.close().await.unwrap();
    assert_eq!(audit_actions(dir.path()), ["lookup_nik", "lookup_nik"]);
    assert!(files_holding(dir.path(), &[nik.0.into_bytes()]).is_empty());
}

#[tokio::test]
async fn plain_text_identity_of_an_older_database_is_sealed_on_upgrade() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("site.db");
    let legacy = created(Some(reporter(1)), 7);
    let conflicting = created(Some(reporter(2)), 8);
    let refused = created(Some(reporter(3)), 9);
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute(
            "INSERT INTO events (event_id, complaint_id, origin, district, hlc, kind, payload, received_from, stored_at_ms)
             VALUES (?1, ?2, '11.13', '11.13', ?3, 'created', ?4, '11.13', 0)",
            rusqlite::params![legacy.id.0.as_bytes().as_slice(), legacy.complaint_id.0.as_bytes().as_slice(), legacy.hlc.0 as i64, encode_event(&legacy)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO complaints VALUES (?1, '1113-ABC-000007', '11.13', 1, ?2, ?2, 1)",
            rusqlite::params![
                legacy.complaint_id.0.as_bytes().as_slice(),
                legacy.hlc.0 as i64
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO conflicts (event_id, received_from, payload, recorded_at_ms) VALUES (?1, '11.13', ?2, 0)",
            rusqlite::params![conflicting.id.0.as_bytes().as_slice(), encode_event(&conflicting)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO quarantine (received_from, event_id, payload, reason, recorded_at_ms) VALUES ('11.13', ?1, ?2, 'old', 0)",
            rusqlite::params![refused.id.to_string(), encode_event(&refused)],
        )
        .unwrap();
    }
    let hub = open(dir.path(), "11");
    let state = state_of(&hub, legacy.complaint_id).await;
    assert_eq!(state.intake.reporter, None);
    let held = hub
        .read_identities(vec![IdentityKey::from(&state)], "t")
        .await
        .unwrap();
    assert_eq!(held[0].reporter, reporter(1));
    assert_eq!(sent(&hub).await[0].1, legacy, "sent as the canonical event");
    assert_eq!(
        hub.quarantined(None).await.unwrap()[0].payload,
        encode_event(&refused)
    );
    hub.close().await.unwrap();
    let all: Vec<Vec<u8>> = (1..=3).flat_map(needles).collect();
    assert_eq!(files_holding(dir.path(), &all), Vec::<PathBuf>::new());
    // Opening again does not redo (or undo) anything.
    let hub = open(dir.path(), "11");
    assert_eq!(
        hub.read_identities(vec![IdentityKey::from(&state)], "t")
            .await
            .unwrap()[0]
            .reporter,
        reporter(1)
    );
}

#[tokio::test]
async fn a_new_database_gets_its_key_beside_it_with_mode_0600() {
    let dir = TempDir::new().unwrap();
    open(dir.path(), "11.13").close().await.unwrap();
    let key = dir.path().join(crate::crypto::KEY_FILE_NAME);
    assert!(key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[tokio::test]
async fn a_sealed_database_refuses_a_missing_or_foreign_key() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path(), "11.13");
    submit(&store, Some(reporter(1)), false).await;
    store.close().await.unwrap();
    let key = dir.path().join(crate::crypto::KEY_FILE_NAME);
    let config = || StoreConfig {
        path: dir.path().join("site.db"),
        site: site("11.13"),
        clock: SystemClock::default(),
    };

    std::fs::rename(&key, dir.path().join("elsewhere.key")).unwrap();
    match Store::open(config()) {
        Err(StoreError::Key(KeyError::Missing { path })) => assert_eq!(path, key),
        other => panic!("expected a missing key, got {other:?}"),
    }
    assert!(!key.exists(), "no new key is made for a sealed database");

    crate::crypto::SiteKey::create(&key).unwrap();
    assert!(matches!(
        Store::open(config()),
        Err(StoreError::WrongKey { .. })
    ));

    std::fs::rename(dir.path().join("elsewhere.key"), &key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Store::open(config()).unwrap_err();
        assert!(matches!(err, StoreError::Key(KeyError::TooOpen { .. })));
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Store::open(config()).unwrap().close().await.unwrap();
}

#[tokio::test]
async fn quarantined_records_are_sealed_and_each_refusal_is_audited() {
    let dir = TempDir::new().unwrap();
    let hub = open(dir.path(), "11");
    let refused = created(Some(reporter(1)), 5);
    let mut inc = incoming("11.13", vec![]);
    for reason in ["district 11.71 is outside 11.13", "bad nik"] {
        inc.quarantine.push(QuarantineRecord {
            event_id: Some(refused.id.to_string()),
            payload: encode_event(&refused),
            reason: reason.into(),
        });
    }
    assert_eq!(hub.apply_remote(inc).await.unwrap().quarantined, 2);
    hub.close().await.unwrap();
    assert_eq!(
        audit_actions(dir.path()),
        ["refused_write", "refused_write"]
    );
    let conn = Connection::open(dir.path().join("site.db")).unwrap();
    let (actor, detail): (String, String) = conn
        .query_row("SELECT actor, detail FROM audit WHERE seq = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(actor, "site:11.13");
    assert!(detail.contains("outside"), "{detail}");
}

#[tokio::test]
async fn an_event_outside_the_sites_scope_is_permission_denied_and_audited() {
    let dir = TempDir::new().unwrap();
    let node = open(dir.path(), "11.71");
    // A Banda Aceh node that somehow holds a Gayo Lues complaint.
    let e = created(None, 3);
    let mut e = e;
    if let EventBody::Created { intake, .. } = &mut e.body {
        intake.privacy.anonymous = true;
    }
    node.apply_remote(incoming("11", vec![e.clone()]))
        .await
        .unwrap();
    let err = node
        .add_event(NewEvent {
            event_id: None,
            complaint_id: e.complaint_id,
            actor: "operator".into(),
            body: EventBody::Commented {
                body: "bukan wewenang".into(),
            },
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::OutOfScope { .. }), "{err:?}");
    assert_eq!(
        crate::rpc::status::to_status(err).code(),
        tonic::Code::PermissionDenied
    );
    node.close().await.unwrap();
    assert_eq!(audit_actions(dir.path()), ["refused_write"]);
}

/// A Created event row of `complaint` whose identity has NIK hash `hash`,
/// stored at the first seq of NIK-index partition `part`.
fn insert_hashed(conn: &Connection, complaint: ComplaintId, hash: &[u8; 32], part: i64) {
    // Another row of the same partition may have taken its first seq.
    let seq: i64 = conn
        .query_row(
            "SELECT coalesce(max(seq) + 1, ?1) FROM events WHERE seq >= ?1 AND seq < ?2",
            [
                part << super::NIK_PART_BITS,
                (part + 1) << super::NIK_PART_BITS,
            ],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO events (seq, event_id, complaint_id, origin, district, hlc, kind, payload, stored_at_ms,
                             identity, identity_scope, nik_hash)
         VALUES (?1, ?2, ?3, '11.13', '11.13', 1, 'created', x'00', 0, x'00', 'event', ?4)",
        rusqlite::params![
            seq,
            EventId::new_v7().0.as_bytes().as_slice(),
            complaint.0.as_bytes().as_slice(),
            hash.as_slice(),
        ],
    )
    .unwrap();
}

#[test]
fn a_nik_is_found_in_every_partition_of_its_index_once_per_complaint() {
    let mut conn = Connection::open_in_memory().unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    let hash = [7u8; 32];
    assert!(super::complaints_by_nik(&conn, &hash).unwrap().is_empty());
    let [a, b, c, d] = [(); 4].map(|()| ComplaintId::new_v7());
    // The NIK is in the first, a middle and the last partition (c twice),
    // another NIK in the middle one, and partitions between hold nothing.
    insert_hashed(&conn, c, &hash, 9);
    insert_hashed(&conn, a, &hash, 2);
    insert_hashed(&conn, c, &hash, 2);
    insert_hashed(&conn, d, &hash, 5);
    insert_hashed(&conn, b, &[8u8; 32], 5);
    let mut want = vec![a, c, d];
    want.sort();
    assert_eq!(super::complaints_by_nik(&conn, &hash).unwrap(), want);
    assert_eq!(super::complaints_by_nik(&conn, &[8u8; 32]).unwrap(), [b]);
    assert!(
        super::complaints_by_nik(&conn, &[9u8; 32])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn nik_look_ups_search_the_partitioned_index_and_never_scan_the_table() {
    let mut conn = Connection::open_in_memory().unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    let plan = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let probe = plan(super::NIK_PROBE, &[&0i64, &[7u8; 32].as_slice()]);
    assert!(
        probe.iter().any(|s| s.starts_with("SEARCH events USING")
            && s.contains("INDEX events_by_nik (<expr>=? AND nik_hash=?)")),
        "{probe:?}"
    );
    let bounds = plan(super::NIK_PARTS, &[]);
    assert!(
        bounds.iter().all(|s| !s.starts_with("SCAN events"))
            && bounds
                .iter()
                .filter(|s| s.starts_with("SEARCH events USING COVERING INDEX events_by_nik"))
                .count()
                == 2,
        "min and max must each be read from an end of the index: {bounds:?}"
    );
}

#[test]
fn upgrading_to_the_partitioned_nik_index_files_old_identities_by_their_seq() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate_to(&mut conn, 5).unwrap();
    let hash = [3u8; 32];
    let (event, complaint) = (EventId::new_v7(), ComplaintId::new_v7());
    conn.execute(
        "INSERT INTO events (seq, event_id, complaint_id, origin, district, hlc, kind, payload, stored_at_ms)
         VALUES (9000, ?1, ?2, '11.13', '11.13', 1, 'created', x'00', 0)",
        rusqlite::params![event.0.as_bytes().as_slice(), complaint.0.as_bytes().as_slice()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO identities (event_id, complaint_id, scope, sealed, nik_hash, recorded_at_ms)
         VALUES (?1, ?2, 'event', x'00', ?3, 0)",
        rusqlite::params![
            event.0.as_bytes().as_slice(),
            complaint.0.as_bytes().as_slice(),
            hash.as_slice()
        ],
    )
    .unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    assert_eq!(super::complaints_by_nik(&conn, &hash).unwrap(), [complaint]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// What a peer receives for a stored Created event is the canonical
    /// encoding of the whole event, whether the reporter is appended to the
    /// stored bytes or the event is decoded and encoded again.
    #[test]
    fn an_appended_identity_gives_the_bytes_of_the_whole_event(
        mut event in crate::proto::convert::tests::event_strategy(),
        intake in crate::proto::convert::tests::intake_strategy(),
        created in proptest::prelude::any::<bool>(),
    ) {
        // Mostly Created events (half of them with a reporter), the rest
        // of every kind.
        if created {
            event.body = EventBody::Created {
                tracking_number: TrackingNumber("2026-K7Q-000042".into()),
                intake: Box::new(intake),
            };
        }
        let key = crate::crypto::SiteKey::for_tests(1);
        let form = super::stored_form(&key, &event);
        let mut stripped = event.clone();
        if let EventBody::Created { intake, .. } = &mut stripped.body {
            intake.reporter = None;
        }
        proptest::prop_assert_eq!(&form.payload, &encode_event(&stripped), "never any identity in the payload");
        if let Some(identity) = &form.identity {
            let whole = encode_event(&event);
            let mut framed = b"before".to_vec();
            let at = super::attach_framed(&key, 1, event.id, &form.payload, &identity.sealed, &mut framed).unwrap();
            let fast = framed[at.clone()].to_vec();
            // Framed as one `EventBatch` record after what was there.
            proptest::prop_assert_eq!(&framed, &framed_after(b"before", &whole));
            let slow = super::attach_by_decoding(&key, 1, event.id, &form.payload, &identity.sealed).unwrap();
            proptest::prop_assert_eq!(&fast, &whole);
            // ... by appending: a stored Created is always in the shape the
            // appending path takes, never left to the decoding one.
            proptest::prop_assert!(crate::proto::wire::append_nested(
                &form.payload, super::REPORTER_PATH, super::REPORTER_FIELD, b""
            ).is_some());
            proptest::prop_assert_eq!(&slow, &whole);
        } else {
            proptest::prop_assert_eq!(form.payload, encode_event(&event));
        }
    }
}

/// A named Created event, its stored payload and its sealed identity.
fn stored_named_created() -> (crate::crypto::SiteKey, Event, Vec<u8>, Vec<u8>) {
    let key = crate::crypto::SiteKey::for_tests(1);
    let event = created(Some(reporter(1)), 1);
    let form = super::stored_form(&key, &event);
    let sealed = form.identity.unwrap().sealed;
    (key, event, form.payload, sealed)
}

/// `before`, then `event` framed as one `EventBatch` record (field 1,
/// length-delimited), spelled out here rather than by the code under test.
fn framed_after(before: &[u8], event: &[u8]) -> Vec<u8> {
    let mut record = before.to_vec();
    record.push(0x0a);
    prost::encoding::encode_varint(event.len() as u64, &mut record);
    record.extend_from_slice(event);
    record
}

#[test]
fn an_identity_sealed_for_another_event_does_not_open_on_the_appending_path() {
    let (key, _, payload, sealed) = stored_named_created();
    let mut framed = Vec::new();
    let err = super::attach_framed(&key, 1, EventId::new_v7(), &payload, &sealed, &mut framed)
        .unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err:?}");
    assert!(
        framed.is_empty(),
        "nothing framed for an identity that did not open"
    );
}

#[test]
fn a_stored_payload_not_in_the_stored_shape_is_framed_from_a_decode_and_encode() {
    let (key, event, payload, sealed) = stored_named_created();
    // An unknown varint field after the body: the body is no longer the
    // last field, so the identity cannot be appended in place.
    let mut odd = payload;
    odd.extend_from_slice(&[15 << 3, 1]);
    assert!(
        crate::proto::wire::Splice::plan(&odd, super::REPORTER_PATH, super::REPORTER_FIELD, b"")
            .is_none()
    );
    let mut framed = Vec::new();
    let at = super::attach_framed(&key, 1, event.id, &odd, &sealed, &mut framed).unwrap();
    let whole = encode_event(&event);
    assert_eq!(&framed[at.clone()], whole.as_slice(), "the canonical event");
    assert_eq!(framed, framed_after(b"", &whole));
}

// ---- pushed batches kept for forwarding unchanged (`store::relay`) ----

/// `events` as a child pushes them: canonical bytes (identity included),
/// framed and compressed, and the frame with each event's range in it.
fn pushed(events: &[Event]) -> RelayCandidate {
    use crate::replication::codec;
    let encoded: Vec<Vec<u8>> = events.iter().map(encode_event).collect();
    let frame = codec::frame_events(encoded.iter().map(Vec::as_slice));
    let compressed = codec::compress(v1::Compression::Zstd, &frame).unwrap();
    let decoded = codec::decode_events(v1::Compression::Zstd as i32, &compressed).unwrap();
    RelayCandidate {
        encoding: v1::Compression::Zstd as i32,
        compressed,
        ranges: decoded.events.into_iter().map(|(_, at)| at).collect(),
        frame: decoded.raw,
    }
}

async fn apply_relaying(hub: &Store, events: Vec<Event>) -> ApplyOutcome {
    let candidate = pushed(&events);
    hub.queue_apply_remote_relaying(incoming("11.13", events), candidate)
        .await
        .unwrap()
        .await
        .unwrap()
}

fn take_all(hub: &Store, after: u64) -> Option<Relayed> {
    hub.take_relayed(
        Seq(after),
        v1::Compression::Zstd as i32,
        usize::MAX,
        usize::MAX,
    )
}

#[tokio::test]
async fn a_batch_stored_whole_is_kept_and_is_exactly_what_a_run_of_its_range_sends() {
    let dir = TempDir::new().unwrap();
    let hub = open(dir.path(), "11");
    let first = vec![created(Some(reporter(1)), 1), created(None, 2)];
    let second = vec![created(Some(reporter(2)), 3)];
    assert_eq!(
        apply_relaying(&hub, first).await.stored_seqs,
        Some((Seq(1), Seq(2)))
    );
    apply_relaying(&hub, second).await;

    assert_eq!(
        take_all(&hub, 1),
        Some(Relayed::Until(Seq(2))),
        "mid-batch: read up to the next"
    );
    let run = hub
        .event_run(RunRequest {
            after: Seq(2),
            ..run_all()
        })
        .await
        .unwrap();
    // A link whose batches hold exactly this much (as a run counts bytes:
    // the events', not their framing's) takes it.
    let bytes = run.iter().map(|(_, p)| p.len()).sum();
    let Some(Relayed::Batch(kept)) =
        hub.take_relayed(Seq(2), v1::Compression::Zstd as i32, bytes, 1)
    else {
        panic!("the second batch, kept");
    };
    assert_eq!((kept.through, kept.event_count), (Seq(3), 1));
    let framed = crate::replication::codec::frame_events(run.iter().map(|(_, p)| p));
    assert_eq!(run.framed, framed, "a run is framed as a batch");
    assert_eq!(
        crate::replication::codec::decompress(v1::Compression::Zstd as i32, &kept.compressed)
            .unwrap(),
        framed,
        "identity put back and all, the same bytes"
    );
    assert_eq!(take_all(&hub, 2), None, "taken once");
}

#[tokio::test]
async fn a_batch_not_stored_whole_or_not_as_received_is_not_kept() {
    let dir = TempDir::new().unwrap();
    let hub = open(dir.path(), "11");
    let held = created(Some(reporter(1)), 1);
    hub.apply_remote(incoming("11.13", vec![held.clone()]))
        .await
        .unwrap();
    // One event already held (a duplicate): the rest is stored, not whole.
    let out = apply_relaying(&hub, vec![held, created(None, 2)]).await;
    assert_eq!((out.accepted, out.duplicates), (1, 1));
    assert_eq!(take_all(&hub, 1), None);

    // An anonymous Created that still carries its reporter: stored without
    // it, so a run would send other bytes than the child did.
    let mut leaky = created(Some(reporter(3)), 3);
    if let EventBody::Created { intake, .. } = &mut leaky.body {
        intake.privacy.anonymous = true;
    }
    let candidate = pushed(std::slice::from_ref(&leaky));
    hub.queue_apply_remote_relaying(incoming("11.13", vec![leaky]), candidate)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(take_all(&hub, 2), None);
}

#[tokio::test]
async fn kept_batches_are_dropped_when_a_complaint_here_turns_anonymous() {
    let dir = TempDir::new().unwrap();
    let hub = open(dir.path(), "11");
    let events = vec![created(Some(reporter(1)), 1)];
    let complaint = events[0].complaint_id;
    apply_relaying(&hub, events).await;
    made_anonymous(&hub, complaint).await;
    // The kept batch carried the identity this hub has since erased.
    assert_eq!(take_all(&hub, 0), None);
    assert!(
        sent(&hub)
            .await
            .iter()
            .all(|(_, e)| reporter_of(e).is_none())
    );
}

#[test]
fn a_complaints_identities_are_found_through_its_events_by_index_only() {
    let mut conn = Connection::open_in_memory().unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    for sql in [super::MAKE_LOCAL, super::ERASE] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([[1u8; 16].as_slice()], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().all(|s| !s.starts_with("SCAN")),
            "{sql}: {plan:?}"
        );
        assert!(
            plan.iter()
                .any(|s| s.contains("USING INDEX events_by_complaint")),
            "{sql}: {plan:?}"
        );
    }
}

/// The index's partition expression is the one the queries use, at the
/// width the docs give: a probe by partition finds exactly the rows whose
/// seq falls in it.
#[test]
fn the_nik_index_partitions_by_4096_seqs() {
    let mut conn = Connection::open_in_memory().unwrap();
    super::super::migrations::migrate(&mut conn).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events_by_nik'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let expr = format!("(seq >> {})", super::NIK_PART_BITS);
    assert!(sql.contains(&expr), "{sql}");
    for q in [super::NIK_PARTS, super::NIK_PROBE] {
        assert!(q.contains(&expr[1..expr.len() - 1]), "{q}");
    }
}

#[test]
fn upgrading_moves_each_identity_into_its_event_row_and_drops_the_table() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate_to(&mut conn, 7).unwrap();
    let hash = [5u8; 32];
    let ids: Vec<(EventId, ComplaintId)> = (0..3)
        .map(|_| (EventId::new_v7(), ComplaintId::new_v7()))
        .collect();
    for (i, (event, complaint)) in ids.iter().enumerate() {
        conn.execute(
            "INSERT INTO events (seq, event_id, complaint_id, origin, district, hlc, kind, payload, stored_at_ms)
             VALUES (?1, ?2, ?3, '11.13', '11.13', 1, 'created', x'00', 0)",
            rusqlite::params![
                5000 + i as i64,
                event.0.as_bytes().as_slice(),
                complaint.0.as_bytes().as_slice()
            ],
        )
        .unwrap();
    }
    // The first with a NIK, the second local and without one, the third
    // without identity.
    for (n, scope, nik) in [(0, "event", Some(hash.as_slice())), (1, "local", None)] {
        let (event, complaint) = ids[n];
        conn.execute(
            "INSERT INTO identities (event_id, complaint_id, scope, sealed, nik_hash, recorded_at_ms, nik_part)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
            rusqlite::params![
                event.0.as_bytes().as_slice(),
                complaint.0.as_bytes().as_slice(),
                scope,
                [n as u8 + 1; 40].as_slice(),
                nik,
                (5000 + n as i64) >> super::NIK_PART_BITS,
            ],
        )
        .unwrap();
    }
    super::super::migrations::migrate(&mut conn).unwrap();
    type Columns = (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Columns> = conn
        .prepare("SELECT identity_scope, identity, nik_hash FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (Some("event".into()), Some(vec![1; 40]), Some(hash.to_vec())),
            (Some("local".into()), Some(vec![2; 40]), None),
            (None, None, None),
        ]
    );
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'identities'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    assert_eq!(super::complaints_by_nik(&conn, &hash).unwrap(), [ids[0].1]);
}
