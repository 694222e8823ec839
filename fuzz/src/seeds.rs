//! The seed corpus: for each target, valid messages and edge cases (limits
//! exactly met and just crossed, unknown enum numbers, absent parts, every
//! compression), encoded as the wire carries them.
//!
//! Deterministic — fixed ids, no clock — so `examples/gen_corpus.rs` writes
//! the same files each time and the committed corpus can be checked against
//! it (`tests/replay.rs`).

use lapor_shared::proto::limits::{
    MAX_ACTOR_CHARS, MAX_BODY_CHARS, MAX_INSTITUTION_CHARS, MAX_TITLE_CHARS,
    MAX_TRACKING_NUMBER_CHARS,
};
use lapor_shared::proto::v1::{self, event_body::Kind};
use lapor_shared::replication::codec;
use prost::Message;

/// One seed file: its name in `corpus/<target>/` and its bytes.
pub type Seed = (String, Vec<u8>);

/// Seeds of every target, by target name (the names of [`crate::TARGETS`]).
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("fuzz_intake_submit", intake_submit()),
        ("fuzz_add_event", add_event()),
        ("fuzz_complaints_requests", complaints_requests()),
        ("fuzz_hello", hello()),
        ("fuzz_push_batch", push_batch()),
        ("fuzz_pull_request", pull_request()),
    ]
}

fn seed(name: &str, message: &impl Message) -> Seed {
    (name.to_owned(), message.encode_to_vec())
}

fn id(n: u128) -> String {
    // Version 7 bits set, so the ids look like the ones sites mint.
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n).to_string()
}

/// A complete, valid intake of a complaint in Gayo Lues (11.13).
pub fn valid_intake() -> v1::ComplaintIntake {
    v1::ComplaintIntake {
        classification: v1::Classification::Pengaduan as i32,
        channel: v1::Channel::WalkIn as i32,
        category: "Infrastruktur".into(),
        title: "Jembatan rusak".into(),
        body: "Jembatan di desa kami rusak sejak banjir.\nWarga sulit ke pasar.".into(),
        location: Some(v1::Location {
            region_code: "11.13.01.2001".into(),
            description: "dekat meunasah".into(),
            latitude: Some(3.97),
            longitude: Some(97.35),
        }),
        incident_date: Some(v1::Date {
            year: 2025,
            month: 11,
            day: 28,
        }),
        privacy: Some(v1::Privacy {
            is_anonymous: false,
            is_secret: false,
        }),
        reporter: Some(v1::ReporterIdentity {
            name: "Cut Nyak".into(),
            nik: "1113014107900001".into(),
            phone: "0812-3456-7890".into(),
            email: "cut@desa.go.id".into(),
        }),
    }
}

fn anonymous_intake() -> v1::ComplaintIntake {
    v1::ComplaintIntake {
        privacy: Some(v1::Privacy {
            is_anonymous: true,
            is_secret: true,
        }),
        reporter: None,
        ..valid_intake()
    }
}

fn submit(intake: v1::ComplaintIntake) -> v1::SubmitRequest {
    v1::SubmitRequest {
        complaint_id: String::new(),
        intake: Some(intake),
        actor: "petugas.loket".into(),
    }
}

fn intake_submit() -> Vec<Seed> {
    let with = |change: fn(&mut v1::ComplaintIntake)| {
        let mut i = valid_intake();
        change(&mut i);
        submit(i)
    };
    vec![
        seed("valid", &submit(valid_intake())),
        seed(
            "valid_with_id",
            &v1::SubmitRequest {
                complaint_id: id(1),
                ..submit(valid_intake())
            },
        ),
        seed("anonymous", &submit(anonymous_intake())),
        seed(
            "anonymous_with_reporter",
            &with(|i| {
                i.privacy = Some(v1::Privacy {
                    is_anonymous: true,
                    is_secret: false,
                })
            }),
        ),
        seed("no_intake", &v1::SubmitRequest::default()),
        seed(
            "limits_met",
            &with(|i| {
                i.title = "é".repeat(MAX_TITLE_CHARS);
                i.body = "x".repeat(MAX_BODY_CHARS);
                i.location = Some(v1::Location {
                    region_code: "93.01".into(),
                    description: String::new(),
                    latitude: Some(-90.0),
                    longitude: Some(180.0),
                });
                i.incident_date = Some(v1::Date {
                    year: 1945,
                    month: 8,
                    day: 17,
                });
            }),
        ),
        seed(
            "limits_crossed",
            &with(|i| {
                i.classification = 99;
                i.channel = -1;
                i.title = "é".repeat(MAX_TITLE_CHARS + 1);
                i.category = "a\u{0}".into();
                i.location = Some(v1::Location {
                    region_code: "11.99".into(),
                    description: "\u{1b}[2J".into(),
                    latitude: Some(f64::NAN),
                    longitude: None,
                });
                i.incident_date = Some(v1::Date {
                    year: 2025,
                    month: 2,
                    day: 29,
                });
            }),
        ),
        seed(
            "bad_identity",
            &with(|i| {
                if let Some(r) = i.reporter.as_mut() {
                    r.nik = "1113013207900001".into();
                    r.phone = "+62 0812 3456 78".into();
                    r.email = "cut.nyak@nowhere".into();
                }
            }),
        ),
        seed(
            "future_incident",
            &with(|i| {
                i.incident_date = Some(v1::Date {
                    year: 2999,
                    month: 12,
                    day: 31,
                })
            }),
        ),
        seed(
            "actor_too_long",
            &v1::SubmitRequest {
                actor: "a".repeat(MAX_ACTOR_CHARS + 1),
                complaint_id: "not-a-uuid".into(),
                ..submit(valid_intake())
            },
        ),
    ]
}

fn body(kind: Kind) -> Option<v1::EventBody> {
    Some(v1::EventBody { kind: Some(kind) })
}

fn add(kind: Option<v1::EventBody>) -> v1::AddEventRequest {
    v1::AddEventRequest {
        event_id: String::new(),
        complaint_id: id(2),
        actor: "admin.koordinator".into(),
        body: kind,
    }
}

/// One body of every lifecycle kind, valid.
fn lifecycle_bodies() -> Vec<(&'static str, Kind)> {
    let privacy = Some(v1::Privacy {
        is_anonymous: true,
        is_secret: false,
    });
    vec![
        (
            "verified",
            Kind::Verified(v1::Verified {
                note: "lengkap".into(),
                privacy,
            }),
        ),
        (
            "rejected",
            Kind::Rejected(v1::Rejected {
                reason: "bukan kewenangan".into(),
            }),
        ),
        (
            "dispositioned",
            Kind::Dispositioned(v1::Dispositioned {
                from_institution: "Pemkab Gayo Lues".into(),
                to_institution: "Dinas PUPR".into(),
                note: String::new(),
            }),
        ),
        (
            "responded",
            Kind::Responded(v1::Responded {
                institution: "Dinas PUPR".into(),
                body: "sudah diperbaiki".into(),
            }),
        ),
        (
            "reporter_replied",
            Kind::ReporterReplied(v1::ReporterReplied {
                body: "terima kasih".into(),
            }),
        ),
        (
            "commented",
            Kind::Commented(v1::Commented {
                body: "ditindaklanjuti".into(),
            }),
        ),
        (
            "closed",
            Kind::Closed(v1::Closed {
                reason: String::new(),
            }),
        ),
        (
            "archived",
            Kind::Archived(v1::Archived {
                reason: "duplikat".into(),
            }),
        ),
        (
            "reopened",
            Kind::Reopened(v1::Reopened {
                reason: "belum selesai".into(),
            }),
        ),
        (
            "privacy_tightened",
            Kind::PrivacyTightened(v1::PrivacyTightened { privacy }),
        ),
    ]
}

fn created() -> Kind {
    Kind::Created(v1::Created {
        tracking_number: "1113-K7Q-000001".into(),
        intake: Some(valid_intake()),
    })
}

fn add_event() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = lifecycle_bodies()
        .into_iter()
        .map(|(name, kind)| seed(name, &add(body(kind))))
        .collect();
    seeds.extend([
        seed("created_refused", &add(body(created()))),
        seed("no_body", &add(None)),
        seed("empty_body", &add(Some(v1::EventBody { kind: None }))),
        seed(
            "ids_given",
            &v1::AddEventRequest {
                event_id: id(3).to_uppercase(),
                ..add(body(Kind::Commented(v1::Commented { body: "x".into() })))
            },
        ),
        seed(
            "limits_crossed",
            &v1::AddEventRequest {
                event_id: uuid::Uuid::nil().to_string(),
                complaint_id: String::new(),
                actor: "petugas\u{7f}".into(),
                body: body(Kind::Dispositioned(v1::Dispositioned {
                    from_institution: "i".repeat(MAX_INSTITUTION_CHARS + 1),
                    to_institution: " ".into(),
                    note: "\u{85}".into(),
                })),
            },
        ),
    ]);
    seeds
}

fn filter(region: &str, statuses: Vec<i32>, since: u64) -> Option<v1::ComplaintFilter> {
    Some(v1::ComplaintFilter {
        region_code: region.into(),
        statuses,
        updated_since_hlc: since,
    })
}

fn complaints_requests() -> Vec<Seed> {
    use v1::get_complaint_request::Key;
    let get = |key| v1::GetComplaintRequest { key };
    vec![
        seed("get_by_id", &get(Some(Key::ComplaintId(id(2))))),
        seed(
            "get_by_tracking",
            &get(Some(Key::TrackingNumber("1113-K7Q-000001".into()))),
        ),
        seed(
            "get_tracking_too_long",
            &get(Some(Key::TrackingNumber(
                "1".repeat(MAX_TRACKING_NUMBER_CHARS + 1),
            ))),
        ),
        seed("get_no_key", &get(None)),
        seed(
            "list_filtered",
            &v1::ListComplaintsRequest {
                filter: filter("11.13", vec![1, 2], 1),
                page_size: 2,
                page_token: id(9),
            },
        ),
        seed(
            "list_bad",
            &v1::ListComplaintsRequest {
                filter: filter("11.13.01", vec![0, 99, -1], u64::MAX),
                page_size: u32::MAX,
                page_token: "x".repeat(513),
            },
        ),
        seed(
            "count_province",
            &v1::CountComplaintsRequest {
                filter: filter("11", vec![], 0),
            },
        ),
        seed(
            "count_national",
            &v1::CountComplaintsRequest {
                filter: filter("00", vec![6], 0),
            },
        ),
        seed(
            "overdue",
            &v1::OverdueRequest {
                filter: filter("11.13", vec![1], 0),
                limit: 500,
            },
        ),
    ]
}

fn hello_from(site: &str, role: v1::SiteRole) -> v1::HelloRequest {
    v1::HelloRequest {
        protocol_version: 1,
        site: site.into(),
        role: role as i32,
        compressions: vec![
            v1::Compression::Zstd as i32,
            v1::Compression::Gzip as i32,
            v1::Compression::None as i32,
        ],
        wall_clock_ms: 1_764_000_000_000,
        head_seq: 42,
        software: "lapor-node 0.1.0".into(),
    }
}

fn hello() -> Vec<Seed> {
    use v1::SiteRole::{Node, Province};
    vec![
        seed("node", &hello_from("11.13", Node)),
        seed("node_wrong_role", &hello_from("11.13", Province)),
        seed("foreign_node", &hello_from("12.71", Node)),
        seed("unlisted_node", &hello_from("11.99", Node)),
        seed("province_to_province", &hello_from("11", Province)),
        seed(
            "future_version",
            &v1::HelloRequest {
                protocol_version: 2,
                ..hello_from("11.13", Node)
            },
        ),
        seed(
            "no_compression_no_clock",
            &v1::HelloRequest {
                compressions: vec![],
                wall_clock_ms: 0,
                ..hello_from("11.13", Node)
            },
        ),
        // Clock edges: a child's wall clock is whatever it says.
        seed(
            "clock_max",
            &v1::HelloRequest {
                wall_clock_ms: i64::MAX,
                compressions: vec![99, -1],
                ..hello_from("11.13", Node)
            },
        ),
        // Found the overflow in Hello's skew (`wall_clock_ms - now`); kept as
        // the regression seed (docs/security.md, "Results").
        seed(
            "clock_min",
            &v1::HelloRequest {
                wall_clock_ms: i64::MIN,
                ..hello_from("11.13", Node)
            },
        ),
        seed(
            "clock_negative",
            &v1::HelloRequest {
                wall_clock_ms: -1,
                ..hello_from("11.13", Node)
            },
        ),
        seed("empty", &v1::HelloRequest::default()),
    ]
}

/// Events as a node in Gayo Lues sends them: a Created and a Comment, and one
/// that fails validation (no actor, unlisted district).
fn batch_events() -> v1::EventBatch {
    let event = |n: u128, body: Kind| v1::Event {
        event_id: id(100 + n),
        complaint_id: id(2),
        origin_site: "11.13".into(),
        hlc: (1_764_000_000_000 << 16) | n as u64,
        actor: "petugas.loket".into(),
        district_code: "11.13".into(),
        body: Some(v1::EventBody { kind: Some(body) }),
    };
    let mut bad = event(3, Kind::Commented(v1::Commented { body: "x".into() }));
    bad.actor = String::new();
    bad.district_code = "11.99".into();
    v1::EventBatch {
        events: vec![
            event(1, created()),
            event(2, Kind::Commented(v1::Commented { body: "ok".into() })),
            bad,
        ],
    }
}

/// `batch_events` encoded and compressed with `compression`.
fn payload(compression: v1::Compression) -> Vec<u8> {
    let raw = batch_events().encode_to_vec();
    codec::compress(compression, &raw)
        .unwrap_or_else(|e| panic!("compress a seed batch with {compression:?}: {e}"))
}

fn push_batch() -> Vec<Seed> {
    use v1::push_message::Kind as Push;
    let batch = |compression: v1::Compression| v1::PushMessage {
        kind: Some(Push::Batch(v1::PushBatch {
            batch_no: 1,
            after_seq: 0,
            through_seq: 3,
            compression: compression as i32,
            payload: payload(compression),
            event_count: 3,
            seqs: vec![1, 2, 3],
        })),
    };
    let mut seeds = vec![
        seed(
            "open",
            &v1::PushMessage {
                kind: Some(Push::Open(v1::PushOpen { session_id: id(7) })),
            },
        ),
        seed("batch_none", &batch(v1::Compression::None)),
        seed("batch_gzip", &batch(v1::Compression::Gzip)),
        seed("batch_zstd", &batch(v1::Compression::Zstd)),
        seed("empty", &v1::PushMessage::default()),
    ];
    let mut odd = batch(v1::Compression::None);
    if let Some(Push::Batch(b)) = odd.kind.as_mut() {
        b.compression = 99;
        b.after_seq = 5;
        b.through_seq = 4;
        b.seqs = vec![1];
        b.event_count = u32::MAX;
    }
    seeds.push(seed("batch_inconsistent", &odd));
    seeds
}

fn pull_request() -> Vec<Seed> {
    vec![
        seed(
            "pull",
            &v1::PullRequest {
                session_id: id(7),
                after_seq: 0,
                compressions: vec![v1::Compression::Zstd as i32],
            },
        ),
        seed(
            "pull_resume",
            &v1::PullRequest {
                session_id: "not-a-session".into(),
                after_seq: u64::MAX,
                compressions: vec![99],
            },
        ),
        // The child decodes what comes back: the same target reads its bytes
        // as a `PullBatch` too.
        seed(
            "pull_batch_gzip",
            &v1::PullBatch {
                after_seq: 0,
                through_seq: 3,
                compression: v1::Compression::Gzip as i32,
                payload: payload(v1::Compression::Gzip),
                event_count: 3,
                receipts: vec![v1::Receipt {
                    tier: v1::Tier::National as i32,
                    through_seq: 2,
                    at_ms: 1_764_000_000_000,
                }],
            },
        ),
        seed(
            "pull_batch_none",
            &v1::PullBatch {
                after_seq: 3,
                through_seq: 5,
                compression: v1::Compression::None as i32,
                payload: payload(v1::Compression::None),
                event_count: 3,
                receipts: vec![],
            },
        ),
    ]
}
