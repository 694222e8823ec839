//! Every message rule, accepted at its edge and refused past it; the exact
//! round trip of generated events.
//!
//! The rule tables are `#[rustfmt::skip]`: one rule per line reads as a
//! table, which is what they are.

use proptest::prelude::*;
use prost::Message as _;
use uuid::Uuid;

use super::*;
use crate::domain::{Channel, Classification, Privacy};

fn valid_intake() -> v1::ComplaintIntake {
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
        incident_date: Some(date(2025, 11, 28)),
        privacy: Some(privacy(false, false)),
        reporter: Some(v1::ReporterIdentity {
            name: "Cut Nyak".into(),
            nik: "1113014107900001".into(),
            phone: "0812-3456-7890".into(),
            email: "cut@desa.go.id".into(),
        }),
    }
}

fn date(year: i32, month: i32, day: i32) -> v1::Date {
    v1::Date { year, month, day }
}

fn privacy(is_anonymous: bool, is_secret: bool) -> v1::Privacy {
    v1::Privacy {
        is_anonymous,
        is_secret,
    }
}

fn reporter(p: &mut v1::ComplaintIntake) -> &mut v1::ReporterIdentity {
    p.reporter.as_mut().unwrap()
}

fn location(p: &mut v1::ComplaintIntake) -> &mut v1::Location {
    p.location.as_mut().unwrap()
}

/// The violated field paths after applying `change` to a valid intake.
fn intake_fields(change: impl FnOnce(&mut v1::ComplaintIntake)) -> Vec<String> {
    let mut p = valid_intake();
    change(&mut p);
    match intake_from_proto(p) {
        Ok(_) => vec![],
        Err(v) => v.fields().into_iter().map(str::to_owned).collect(),
    }
}

#[test]
fn a_complete_intake_is_accepted_and_the_phone_normalised() {
    let intake = intake_from_proto(valid_intake()).unwrap();
    let reporter = intake.reporter.unwrap();
    assert_eq!(reporter.phone.as_deref(), Some("+6281234567890"));
    assert_eq!(reporter.nik, Some(Nik("1113014107900001".into())));
    assert_eq!(reporter.email.as_deref(), Some("cut@desa.go.id"));
    assert_eq!(intake.location.region.district().as_str(), "11.13");
    assert_eq!(intake.location.coordinates, Some((3.97, 97.35)));
    assert_eq!(intake.incident_date, NaiveDate::from_ymd_opt(2025, 11, 28));
}

#[test]
fn every_intake_rule_accepts_the_edge_and_refuses_past_it() {
    type Change = fn(&mut v1::ComplaintIntake);
    #[rustfmt::skip]
    let cases: &[(&str, Change, Change)] = &[
        ("intake.classification", |p| p.classification = 3, |p| p.classification = 0),
        ("intake.classification", |p| p.classification = 2, |p| p.classification = 99),
        ("intake.channel", |p| p.channel = 6, |p| p.channel = 0),
        ("intake.channel", |p| p.channel = 3, |p| p.channel = -1),
        ("intake.title", |p| p.title = "é".repeat(MAX_TITLE_CHARS), |p| p.title = "é".repeat(MAX_TITLE_CHARS + 1)),
        ("intake.title", |p| p.title = "J".into(), |p| p.title = "  ".into()),
        ("intake.title", |p| p.title = "tab\there".into(), |p| p.title = "bell\u{7}".into()),
        ("intake.body", |p| p.body = "x".repeat(MAX_BODY_CHARS), |p| p.body = "x".repeat(MAX_BODY_CHARS + 1)),
        ("intake.body", |p| p.body = "a\r\nb".into(), |p| p.body = String::new()),
        ("intake.category", |p| p.category = String::new(), |p| p.category = "c".repeat(MAX_CATEGORY_CHARS + 1)),
        ("intake.category", |p| p.category = "c".repeat(MAX_CATEGORY_CHARS), |p| p.category = "a\u{0}".into()),
        ("intake.location", |p| location(p).region_code = "11.13".into(), |p| p.location = None),
        ("intake.location.region_code", |p| location(p).region_code = "93.01.01".into(), |p| location(p).region_code = "11.99".into()),
        ("intake.location.region_code", |p| location(p).region_code = "11.10".into(), |p| location(p).region_code = "11.1".into()),
        ("intake.location.region_code", |p| location(p).region_code = "11.13.01".into(), |p| location(p).region_code = "11".into()),
        ("intake.location.region_code", |p| location(p).region_code = "11.13".into(), |p| location(p).region_code = String::new()),
        ("intake.location.description", |p| location(p).description = "d".repeat(MAX_LOCATION_DESCRIPTION_CHARS),
            |p| location(p).description = "d".repeat(MAX_LOCATION_DESCRIPTION_CHARS + 1)),
        ("intake.location.latitude", |p| location(p).latitude = Some(-90.0), |p| location(p).latitude = Some(-90.1)),
        ("intake.location.latitude", |p| location(p).latitude = Some(0.0), |p| location(p).latitude = Some(f64::NAN)),
        ("intake.location.longitude", |p| location(p).longitude = Some(180.0), |p| location(p).longitude = Some(180.1)),
        ("intake.location.latitude", |p| (location(p).latitude, location(p).longitude) = (None, None), |p| location(p).latitude = None),
        ("intake.location.longitude", |p| location(p).longitude = Some(-180.0), |p| location(p).longitude = None),
        ("intake.incident_date", |p| p.incident_date = None, |p| p.incident_date = Some(date(0, 0, 0))),
        ("intake.incident_date", |p| p.incident_date = Some(date(1945, 8, 17)), |p| p.incident_date = Some(date(1944, 12, 31))),
        ("intake.incident_date", |p| p.incident_date = Some(date(2024, 2, 29)), |p| p.incident_date = Some(date(2025, 2, 29))),
        ("intake.reporter", |p| (p.privacy, p.reporter) = (Some(privacy(true, false)), None), |p| p.reporter = None),
        ("intake.reporter", |p| (p.privacy, p.reporter) = (Some(privacy(true, true)), Some(Default::default())),
            |p| p.privacy = Some(privacy(true, false))),
        ("intake.reporter", |p| p.privacy = None, |p| (p.privacy, p.reporter) = (None, Some(Default::default()))),
        ("intake.reporter.name", |p| reporter(p).name = "n".repeat(MAX_REPORTER_NAME_CHARS), |p| reporter(p).name = String::new()),
        ("intake.reporter.name", |p| reporter(p).name = "Ali".into(), |p| reporter(p).name = "n".repeat(MAX_REPORTER_NAME_CHARS + 1)),
        ("intake.reporter.nik", |p| reporter(p).nik = String::new(), |p| reporter(p).nik = "111301410790000".into()),
        ("intake.reporter.nik", |p| reporter(p).nik = "9101017112990001".into(), |p| reporter(p).nik = "1113017207900001".into()),
        ("intake.reporter.nik", |p| reporter(p).nik = "1113013107900001".into(), |p| reporter(p).nik = "1113013113900001".into()),
        ("intake.reporter.nik", |p| reporter(p).nik = "1113014107900001".into(), |p| reporter(p).nik = "0513014107900001".into()),
        ("intake.reporter.phone", |p| reporter(p).phone = String::new(), |p| reporter(p).phone = "021 555 1234".into()),
        ("intake.reporter.phone", |p| reporter(p).phone = "+62 812 3456 78".into(), |p| reporter(p).phone = "+62 0812 3456 78".into()),
        ("intake.reporter.email", |p| reporter(p).email = String::new(), |p| reporter(p).email = "cut@localhost".into()),
        ("intake.reporter.email", |p| reporter(p).email = "c@d.id".into(), |p| reporter(p).email = "c d@desa.go.id".into()),
    ];
    for (field, accepted, refused) in cases {
        assert_eq!(
            intake_fields(accepted),
            Vec::<String>::new(),
            "accepted case of {field}"
        );
        assert_eq!(
            intake_fields(refused),
            vec![field.to_string()],
            "refused case of {field}"
        );
    }
}

#[test]
fn all_intake_violations_are_reported_at_once() {
    let fields = intake_fields(|p| {
        p.classification = 0;
        p.title = String::new();
        location(p).region_code = "xx".into();
        reporter(p).nik = "123".into();
        reporter(p).phone = "123".into();
    });
    let want = [
        "intake.classification",
        "intake.title",
        "intake.location.region_code",
        "intake.reporter.nik",
        "intake.reporter.phone",
    ];
    assert_eq!(fields, want);
}

#[test]
fn future_incident_dates_are_refused_only_at_submission() {
    let today = NaiveDate::from_ymd_opt(2025, 11, 26).unwrap();
    let mut p = valid_intake();
    p.incident_date = Some(date(2025, 11, 27));
    assert!(
        intake_from_submission(p.clone(), today).is_ok(),
        "tomorrow is within the slack"
    );
    p.incident_date = Some(date(2025, 11, 28));
    let err = intake_from_submission(p.clone(), today).unwrap_err();
    assert_eq!(err.fields(), ["intake.incident_date"]);
    assert!(
        intake_from_proto(p).is_ok(),
        "replicated intakes are judged without a clock"
    );
}

#[test]
fn intake_round_trips_through_proto() {
    let intake = intake_from_proto(valid_intake()).unwrap();
    assert_eq!(intake_from_proto(intake_to_proto(&intake)).unwrap(), intake);
}

#[test]
fn refusals_never_echo_personal_data() {
    let mut p = valid_intake();
    reporter(&mut p).name = "Cut\u{0}Nyak".into();
    reporter(&mut p).nik = "1113013207900001".into();
    reporter(&mut p).phone = "0812-99".into();
    reporter(&mut p).email = "cut.nyak@nowhere".into();
    let err = intake_from_proto(p).unwrap_err();
    assert_eq!(err.len(), 4);
    let text = tonic::Status::from(err.clone()).message().to_owned() + &err.to_string();
    for secret in ["1113013207900001", "0812", "cut.nyak", "Nyak"] {
        assert!(!text.contains(secret), "{secret} leaked in {text:?}");
    }
}

fn created_event(intake: v1::ComplaintIntake) -> v1::Event {
    let mut e = valid_event(Kind::Created(v1::Created {
        tracking_number: "1113-K7Q-000001".into(),
        intake: Some(intake),
    }));
    e.origin_site = "11.13".into();
    e
}

#[test]
fn an_anonymous_submission_may_record_identity_but_no_anonymous_event_carries_it() {
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut p = valid_intake();
    p.privacy = Some(privacy(true, false));
    let at_node = intake_from_submission(p.clone(), today).unwrap();
    assert!(at_node.privacy.anonymous);
    assert_eq!(
        at_node.reporter.map(|r| r.phone),
        Some(Some("+6281234567890".into())),
        "validated and normalised like any identity"
    );
    assert_eq!(
        intake_from_proto(p.clone()).unwrap_err().fields(),
        ["intake.reporter"]
    );
    let err = event_from_proto(created_event(p)).unwrap_err();
    assert_eq!(err.fields(), ["body.created.intake.reporter"]);
}

#[test]
fn a_non_anonymous_created_event_may_arrive_with_identity_withheld() {
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut p = valid_intake();
    p.reporter = None;
    let event = event_from_proto(created_event(p.clone())).unwrap();
    match event.body {
        EventBody::Created { intake, .. } => {
            assert!(!intake.privacy.anonymous);
            assert_eq!(intake.reporter, None);
        }
        other => panic!("not created: {other:?}"),
    }
    assert_eq!(
        intake_from_submission(p, today).unwrap_err().fields(),
        ["intake.reporter"],
        "entering a named complaint still requires the name"
    );
}

#[test]
fn a_reporter_round_trips_on_its_own() {
    let p = valid_intake().reporter.unwrap();
    let r = reporter_from_proto(p, "reporter").unwrap();
    assert_eq!(
        reporter_from_proto(reporter_to_proto(&r), "reporter").unwrap(),
        r
    );
    let mut bad = reporter_to_proto(&r);
    bad.nik = "123".into();
    assert_eq!(
        reporter_from_proto(bad, "reporter").unwrap_err().fields(),
        ["reporter.nik"]
    );
}

fn valid_event(body: Kind) -> v1::Event {
    v1::Event {
        event_id: Uuid::now_v7().to_string(),
        complaint_id: Uuid::now_v7().to_string(),
        origin_site: "11".into(),
        hlc: Hlc::from_parts(1_764_000_000_000, 3).0,
        actor: "admin.koordinator".into(),
        district_code: "11.13".into(),
        body: Some(v1::EventBody { kind: Some(body) }),
    }
}

fn commented(body: &str) -> Option<v1::EventBody> {
    Some(v1::EventBody {
        kind: Some(Kind::Commented(v1::Commented { body: body.into() })),
    })
}

fn event_fields(change: impl FnOnce(&mut v1::Event)) -> Vec<String> {
    let mut p = valid_event(Kind::Commented(v1::Commented { body: "ok".into() }));
    change(&mut p);
    match event_from_proto(p) {
        Ok(_) => vec![],
        Err(v) => v.fields().into_iter().map(str::to_owned).collect(),
    }
}

#[test]
fn every_event_rule_accepts_the_edge_and_refuses_past_it() {
    type Change = fn(&mut v1::Event);
    #[rustfmt::skip]
    let cases: &[(&str, Change, Change)] = &[
        ("event_id", |p| p.event_id = "0b6c4d9e-3f1a-4c2b-9d8e-7f6a5b4c3d2e".into(), |p| p.event_id = "nope".into()),
        ("event_id", |p| p.event_id = p.event_id.to_uppercase(), |p| p.event_id = Uuid::nil().to_string()),
        ("complaint_id", |p| p.complaint_id = Uuid::from_u128(42).to_string(), |p| p.complaint_id = Uuid::now_v7().simple().to_string()),
        ("complaint_id", |_| {}, |p| p.complaint_id = String::new()),
        ("origin_site", |p| p.origin_site = "00".into(), |p| p.origin_site = "10".into()),
        ("origin_site", |p| p.origin_site = "11.13".into(), |p| p.origin_site = "11.99".into()),
        ("origin_site", |p| p.origin_site = "96".into(), |p| p.origin_site = "11.1".into()),
        ("district_code", |p| p.district_code = "93.01".into(), |p| p.district_code = "11".into()),
        ("district_code", |p| p.district_code = "11.75".into(), |p| p.district_code = "11.76".into()),
        ("district_code", |p| p.district_code = "11.10".into(), |p| p.district_code = "00".into()),
        ("hlc", |p| p.hlc = 1, |p| p.hlc = 0),
        ("actor", |p| p.actor = "a".repeat(MAX_ACTOR_CHARS), |p| p.actor = "a".repeat(MAX_ACTOR_CHARS + 1)),
        ("actor", |p| p.actor = "a".into(), |p| p.actor = String::new()),
        ("actor", |p| p.actor = "petugas 1".into(), |p| p.actor = "petugas\u{7f}".into()),
        ("body", |p| p.body = commented("x"), |p| p.body = None),
        ("body", |_| {}, |p| p.body = Some(v1::EventBody { kind: None })),
        ("body.commented.body", |p| p.body = commented(&"x".repeat(MAX_NOTE_CHARS)), |p| p.body = commented(&"x".repeat(MAX_NOTE_CHARS + 1))),
        ("body.commented.body", |_| {}, |p| p.body = commented("")),
    ];
    for (field, accepted, refused) in cases {
        assert_eq!(
            event_fields(accepted),
            Vec::<String>::new(),
            "accepted case of {field}"
        );
        assert_eq!(
            event_fields(refused),
            vec![field.to_string()],
            "refused case of {field}"
        );
    }
}

#[test]
fn every_body_rule_accepts_the_edge_and_refuses_past_it() {
    let note = "n".repeat(MAX_NOTE_CHARS);
    let long_note = "n".repeat(MAX_NOTE_CHARS + 1);
    let inst = "i".repeat(MAX_INSTITUTION_CHARS);
    let long_inst = "i".repeat(MAX_INSTITUTION_CHARS + 1);
    let disp = |from: &str, to: &str, note: &str| {
        Kind::Dispositioned(v1::Dispositioned {
            from_institution: from.into(),
            to_institution: to.into(),
            note: note.into(),
        })
    };
    let responded = |institution: &str, body: &str| {
        Kind::Responded(v1::Responded {
            institution: institution.into(),
            body: body.into(),
        })
    };
    let verified = |note: &str| {
        Kind::Verified(v1::Verified {
            note: note.into(),
            privacy: None,
        })
    };
    let rejected = |reason: &str| {
        Kind::Rejected(v1::Rejected {
            reason: reason.into(),
        })
    };
    let closed = |reason: &str| {
        Kind::Closed(v1::Closed {
            reason: reason.into(),
        })
    };
    let archived = |reason: &str| {
        Kind::Archived(v1::Archived {
            reason: reason.into(),
        })
    };
    let reopened = |reason: &str| {
        Kind::Reopened(v1::Reopened {
            reason: reason.into(),
        })
    };
    let replied = |body: &str| Kind::ReporterReplied(v1::ReporterReplied { body: body.into() });
    let created = v1::Created {
        tracking_number: "1113-K7Q-000001".into(),
        intake: Some(valid_intake()),
    };
    let mut bad_intake = created.clone();
    bad_intake.intake.as_mut().unwrap().title = String::new();
    #[rustfmt::skip]
    let cases: Vec<(&str, Kind, Kind)> = vec![
        ("body.verified.note", verified(""), verified(&long_note)),
        ("body.verified.note", verified(&note), verified("\u{0}")),
        ("body.rejected.reason", rejected(&note), rejected(&long_note)),
        ("body.closed.reason", closed(""), closed("\u{1b}")),
        ("body.archived.reason", archived("dup"), archived(&long_note)),
        ("body.reopened.reason", reopened("again"), reopened(&long_note)),
        ("body.dispositioned.from_institution", disp(&inst, "Dinas PUPR", ""), disp(&long_inst, "Dinas PUPR", "")),
        ("body.dispositioned.to_institution", disp("Pemkab", &inst, ""), disp("Pemkab", "", "")),
        ("body.dispositioned.note", disp("Pemkab", "Dinas PUPR", &note), disp("Pemkab", "Dinas PUPR", &long_note)),
        ("body.responded.institution", responded(&inst, "sudah diperbaiki"), responded(" ", "sudah diperbaiki")),
        ("body.responded.body", responded("Dinas PUPR", &note), responded("Dinas PUPR", "")),
        ("body.reporter_replied.body", replied("terima kasih"), replied(&long_note)),
        ("body.created.tracking_number", Kind::Created(created.clone()),
            Kind::Created(v1::Created { tracking_number: "1113 K7Q".into(), ..created.clone() })),
        ("body.created.intake", Kind::Created(created.clone()), Kind::Created(v1::Created { intake: None, ..created.clone() })),
        ("body.created.intake.title", Kind::Created(created.clone()), Kind::Created(bad_intake)),
    ];
    for (field, accepted, refused) in cases {
        let accepted = event_body_from_proto(
            Some(v1::EventBody {
                kind: Some(accepted),
            }),
            "body",
        );
        assert!(accepted.is_ok(), "accepted case of {field}: {accepted:?}");
        let err = event_body_from_proto(
            Some(v1::EventBody {
                kind: Some(refused),
            }),
            "body",
        )
        .unwrap_err();
        assert_eq!(err.fields(), [field], "refused case of {field}");
    }
}

#[test]
fn a_missing_body_is_reported_under_the_callers_path() {
    let err = event_body_from_proto(None, "request.body").unwrap_err();
    assert_eq!(err.fields(), ["request.body"]);
}

#[test]
fn nested_paths_are_reported_in_full_and_an_empty_prefix_adds_no_dot() {
    let mut p = valid_intake();
    p.title = String::new();
    location(&mut p).region_code = "11.99".into();
    location(&mut p).latitude = Some(91.0);
    reporter(&mut p).nik = "1113013207900001".into();
    let err = event_from_proto(created_event(p.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body.created.intake.title: is required; \
         body.created.intake.location.region_code: kabupaten/kota 11.99 is not in the Kemendagri list; \
         body.created.intake.location.latitude: latitude must be a finite number of degrees in -90..=90; \
         body.created.intake.reporter.nik: digits 7-8 must be a day of birth 01-31 or 41-71"
    );

    let created = Kind::Created(v1::Created {
        tracking_number: "1113-K7Q-000001".into(),
        intake: Some(p),
    });
    let err = event_body_from_proto(
        Some(v1::EventBody {
            kind: Some(created),
        }),
        "",
    )
    .unwrap_err();
    assert_eq!(
        err.fields(),
        [
            "created.intake.title",
            "created.intake.location.region_code",
            "created.intake.location.latitude",
            "created.intake.reporter.nik",
        ]
    );
    let verified = Kind::Verified(v1::Verified {
        note: "\u{0}".into(),
        privacy: None,
    });
    let err = event_body_from_proto(
        Some(v1::EventBody {
            kind: Some(verified),
        }),
        "",
    )
    .unwrap_err();
    assert_eq!(err.fields(), ["verified.note"]);
    assert_eq!(event_body_from_proto(None, "").unwrap_err().fields(), [""]);
    let mut bad = valid_intake().reporter.unwrap();
    bad.nik = "123".into();
    assert_eq!(reporter_from_proto(bad, "").unwrap_err().fields(), ["nik"]);
}

// ---- generated events -------------------------------------------------------

/// Printable text of at most `max` chars (plus tab and newline), never blank
/// when `min > 0`.
fn text_of(min: usize, max: usize) -> impl Strategy<Value = String> {
    // The longest head is 5 chars ("Jalan").
    let tail = format!("[\\PC\\t\\n]{{0,{}}}", max.saturating_sub(5));
    (
        prop::sample::select(vec!["a", "Jalan", "é", "日", "1"]),
        prop::string::string_regex(&tail).expect("valid regex"),
    )
        .prop_map(move |(head, tail)| {
            if min == 0 && tail.len() % 2 == 0 {
                tail
            } else {
                format!("{head}{tail}")
            }
        })
}

fn district() -> impl Strategy<Value = &'static str> {
    prop::sample::select(regions::districts().map(|r| r.code).collect::<Vec<_>>())
}

fn privacy_strategy() -> impl Strategy<Value = Privacy> {
    (any::<bool>(), any::<bool>()).prop_map(|(anonymous, secret)| Privacy { anonymous, secret })
}

fn reporter_strategy() -> impl Strategy<Value = Reporter> {
    let day = prop_oneof![1u8..=31, 41u8..=71];
    let nik = (11u8..=99, 0u32..10_000, day, 1u8..=12, 0u32..1_000_000)
        .prop_map(|(pp, kc, dd, mm, rest)| Nik(format!("{pp:02}{kc:04}{dd:02}{mm:02}{rest:06}")));
    let phone = "\\+628[0-9]{7,11}";
    let email = "[a-z0-9.]{1,10}@[a-z]{1,8}\\.(go\\.id|id|com)";
    (
        text_of(1, 40),
        prop::option::of(nik),
        prop::option::of(phone),
        prop::option::of(email),
    )
        .prop_map(|(name, nik, phone, email)| Reporter {
            name,
            nik,
            phone,
            email,
        })
}

pub(crate) fn intake_strategy() -> impl Strategy<Value = Intake> {
    use Channel as Ch;
    use Classification as C;
    let classification =
        prop::sample::select(vec![C::Pengaduan, C::Aspirasi, C::PermintaanInformasi]);
    let channel = prop::sample::select(vec![
        Ch::WalkIn,
        Ch::Letter,
        Ch::Sms1708,
        Ch::Phone,
        Ch::Web,
        Ch::LocalApp,
    ]);
    let deeper = prop::option::of((1u8..=99, prop::option::of(1000u16..=3999)));
    let region = (district(), deeper).prop_map(|(d, deeper)| match deeper {
        None => d.to_owned(),
        Some((kec, None)) => format!("{d}.{kec:02}"),
        Some((kec, Some(desa))) => format!("{d}.{kec:02}.{desa}"),
    });
    let coordinates = prop::option::of((-90.0f64..=90.0, -180.0f64..=180.0));
    let date = prop::option::of(
        (1945i32..=2100, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
    );
    let texts = (text_of(0, 30), text_of(1, MAX_TITLE_CHARS), text_of(1, 300));
    let place = (region, text_of(0, 60), coordinates);
    (
        classification,
        channel,
        texts,
        place,
        date,
        privacy_strategy(),
        reporter_strategy(),
    )
        .prop_map(
            |(
                classification,
                channel,
                (category, title, body),
                place,
                incident_date,
                privacy,
                reporter,
            )| Intake {
                classification,
                channel,
                category,
                title,
                body,
                location: Location {
                    region: RegionCode::parse(&place.0).unwrap(),
                    description: place.1,
                    coordinates: place.2,
                },
                incident_date,
                privacy,
                reporter: (!privacy.anonymous).then_some(reporter),
            },
        )
}

fn body_strategy() -> impl Strategy<Value = EventBody> {
    let tracking = "[0-9]{4}-[A-Z0-9]{3}-[0-9]{6}";
    prop_oneof![
        (tracking, intake_strategy()).prop_map(|(t, i)| EventBody::Created {
            tracking_number: TrackingNumber(t),
            intake: Box::new(i),
        }),
        (text_of(0, 50), privacy_strategy())
            .prop_map(|(note, privacy)| EventBody::Verified { note, privacy }),
        text_of(0, 50).prop_map(|reason| EventBody::Rejected { reason }),
        (text_of(1, 50), text_of(1, 50), text_of(0, 50)).prop_map(|(from, to, note)| {
            EventBody::Dispositioned {
                from_institution: from,
                to_institution: to,
                note,
            }
        }),
        (text_of(1, 50), text_of(1, 50))
            .prop_map(|(institution, body)| EventBody::Responded { institution, body }),
        text_of(1, 50).prop_map(|body| EventBody::ReporterReplied { body }),
        text_of(1, 50).prop_map(|body| EventBody::Commented { body }),
        text_of(0, 50).prop_map(|reason| EventBody::Closed { reason }),
        text_of(0, 50).prop_map(|reason| EventBody::Archived { reason }),
        text_of(0, 50).prop_map(|reason| EventBody::Reopened { reason }),
        privacy_strategy().prop_map(|privacy| EventBody::PrivacyTightened { privacy }),
    ]
}

pub(crate) fn event_strategy() -> impl Strategy<Value = Event> {
    let origin = prop_oneof![
        Just("00"),
        prop::sample::select(vec!["11", "12", "93"]),
        district(),
    ];
    let ids = (1u128.., 1u128..);
    (
        ids,
        origin,
        1u64..,
        "[a-z][a-z0-9._]{0,30}",
        district(),
        body_strategy(),
    )
        .prop_map(|((id, cid), origin, hlc, actor, district, body)| Event {
            id: EventId(Uuid::from_u128(id)),
            complaint_id: ComplaintId(Uuid::from_u128(cid)),
            origin: SiteCode::parse(origin).unwrap(),
            hlc: Hlc(hlc),
            actor,
            district: SiteCode::parse(district).unwrap(),
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_events_round_trip_exactly(event in event_strategy()) {
        let bytes = event_to_proto(&event).encode_to_vec();
        prop_assert_eq!(&event_to_proto(&event).encode_to_vec(), &bytes, "encoding is deterministic");
        let decoded = v1::Event::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(event_from_proto(decoded), Ok(event));
    }

    #[test]
    fn accepted_intakes_round_trip_and_nothing_panics(
        classification in any::<i32>(),
        title in any::<String>(),
        region in any::<String>(),
        lat in prop::option::of(any::<f64>()),
        lon in prop::option::of(any::<f64>()),
        ymd in any::<(i32, i32, i32)>(),
        nik in any::<String>(),
        phone in any::<String>(),
        email in any::<String>(),
    ) {
        let mut p = valid_intake();
        p.classification = classification;
        p.title = title;
        p.location = Some(v1::Location { region_code: region, description: String::new(), latitude: lat, longitude: lon });
        p.incident_date = Some(date(ymd.0, ymd.1, ymd.2));
        p.reporter = Some(v1::ReporterIdentity { name: "x".into(), nik, phone, email });
        if let Ok(intake) = intake_from_proto(p) {
            prop_assert_eq!(intake_from_proto(intake_to_proto(&intake)), Ok(intake));
        }
    }
}

// ---- properties of the single-value validators and the filter ---------------
//
// The fuzz targets (fuzz/, docs/security.md) explore the same rules from raw
// bytes; these properties keep the core of them in the ordinary test run,
// which CI always executes.

/// A canonical hyphenated UUID of `n`, in lower or upper case.
fn uuid_text(n: u128, upper: bool) -> String {
    let s = Uuid::from_u128(n).to_string();
    if upper { s.to_uppercase() } else { s }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_hyphenated_uuid_but_nil_is_accepted(n in any::<u128>(), upper in any::<bool>()) {
        let parsed = limits::parse_uuid(&uuid_text(n, upper));
        if n == 0 {
            prop_assert_eq!(parsed, Err(FieldError::NilUuid));
        } else {
            prop_assert_eq!(parsed, Ok(Uuid::from_u128(n)));
        }
    }

    #[test]
    fn a_uuid_in_any_other_form_is_refused(n in 1u128.., form in 0usize..3) {
        let id = Uuid::from_u128(n);
        let text = match form {
            0 => id.simple().to_string(),
            1 => id.braced().to_string(),
            _ => id.urn().to_string(),
        };
        prop_assert_eq!(limits::parse_uuid(&text), Err(FieldError::Uuid));
    }

    #[test]
    fn tracking_numbers_are_exactly_short_ascii_alphanumerics_and_dashes(s in any::<String>()) {
        let shape = !s.is_empty()
            && s.len() <= limits::MAX_TRACKING_NUMBER_CHARS
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        prop_assert_eq!(limits::check_tracking_number(&s).is_ok(), shape);
    }

    #[test]
    fn generated_emails_are_accepted_and_any_whitespace_refuses_them(
        local in "[a-z0-9._+]{1,20}",
        domain in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}",
        ws in prop::sample::select(vec![' ', '\t', '\n', '\u{a0}']),
        at in any::<prop::sample::Index>(),
    ) {
        let email = format!("{local}@{domain}");
        prop_assert_eq!(limits::check_email(&email), Ok(()));
        let mut chars: Vec<char> = email.chars().collect();
        chars.insert(at.index(chars.len() + 1), ws);
        let spaced: String = chars.into_iter().collect();
        prop_assert!(limits::check_email(&spaced).is_err(), "{spaced:?} accepted");
    }

    #[test]
    fn coordinates_are_accepted_exactly_when_both_are_finite_and_in_range(
        lat in prop::option::of(prop_oneof![any::<f64>(), -90.0f64..=90.0]),
        lon in prop::option::of(prop_oneof![any::<f64>(), -180.0f64..=180.0]),
    ) {
        let ok = match (lat, lon) {
            (None, None) => true,
            (Some(lat), Some(lon)) => (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon),
            _ => false,
        };
        prop_assert_eq!(limits::check_coordinates(lat, lon).is_ok(), ok);
    }

    #[test]
    fn a_submission_accepts_every_intake_valid_on_its_own(
        anonymous in any::<bool>(),
        with_reporter in any::<bool>(),
        year in 1940i32..2030,
        title in prop_oneof![Just(String::new()), text_of(1, 40)],
    ) {
        // Submission rules only add the date bound; whatever an intake on
        // its own passes, a submission dated after the incident passes too.
        let mut p = valid_intake();
        p.privacy = Some(privacy(anonymous, false));
        if !with_reporter {
            p.reporter = None;
        }
        p.incident_date = Some(date(year, 1, 1));
        p.title = title;
        let today = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        if let Ok(intake) = intake_from_proto(p.clone()) {
            prop_assert_eq!(intake_from_submission(p, today), Ok(intake));
        }
    }

    #[test]
    fn a_filter_is_refused_once_per_bad_status_and_bad_region(
        region in prop_oneof![
            Just(String::new()),
            prop::sample::select(vec!["00", "11", "11.13", "93.01", "11.13.01", "1", "xx"]).prop_map(String::from),
            any::<String>(),
        ],
        statuses in prop::collection::vec(-2i32..9, 0..6),
        since in any::<u64>(),
    ) {
        use crate::rpc::complaints::filter_from_proto;
        let wire = v1::ComplaintFilter { region_code: region.clone(), statuses: statuses.clone(), updated_since_hlc: since };
        let mut v = Violations::new();
        let f = filter_from_proto(wire, "filter", &mut v);
        let bad_statuses = statuses.iter().filter(|s| status_from_proto(**s).is_none()).count();
        let bad_region = !region.is_empty() && SiteCode::parse(&region).is_err();
        prop_assert_eq!(v.len(), bad_statuses + usize::from(bad_region));
        prop_assert_eq!(f.statuses.len(), statuses.len() - bad_statuses);
        prop_assert_eq!(f.updated_since, (since > 0).then_some(Hlc(since)));
        match f.region {
            None => prop_assert!(bad_region || region.is_empty() || region == "00"),
            Some(r) => prop_assert_eq!(r, region),
        }
    }

    #[test]
    fn mutated_event_encodings_never_panic_and_what_passes_round_trips(
        event in event_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        // A cheap stand-in for the fuzz_push_batch target: damage a valid
        // encoding in place (overwrite, insert, delete) and validate.
        let mut bytes = event_to_proto(&event).encode_to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let Ok(decoded) = v1::Event::decode(bytes.as_slice()) else { return Ok(()) };
        match event_from_proto(decoded) {
            Ok(e) => {
                let again = v1::Event::decode(event_to_proto(&e).encode_to_vec().as_slice()).unwrap();
                prop_assert_eq!(event_from_proto(again), Ok(e));
            }
            Err(v) => {
                prop_assert!(!v.is_empty());
                prop_assert!(v.iter().all(|x| !x.field.is_empty()), "a violation names no field: {}", v);
            }
        }
    }
}
