//! Bounds and single-field rules for everything that enters from the wire:
//! lengths, allowed characters, NIK structure, phone and e-mail shape,
//! coordinates and dates.
//!
//! The limits are `pub const` so servers, clients and fuzzers share them.
//! Each check looks at one value and returns a [`FieldError`]; the field path
//! is attached by `super::convert`, which composes these into message rules.
//!
//! Design constraints:
//! - Lengths are counted in Unicode scalar values (`char`s), the unit a
//!   district clerk counts in, not bytes.
//! - Error messages never quote personal data (name, NIK, phone, e-mail):
//!   they travel in `Status` details and end up in logs.
//! - Checks are pure and time-independent, so an event accepted at one site
//!   is accepted at every site, whenever it arrives. The one exception,
//!   [`check_not_after`], is applied only at intake.

use chrono::NaiveDate;

/// Complaint title (`ComplaintIntake.title`), required.
pub const MAX_TITLE_CHARS: usize = 200;
/// Complaint body (`ComplaintIntake.body`), required.
pub const MAX_BODY_CHARS: usize = 10_000;
/// Free-form category label, optional.
pub const MAX_CATEGORY_CHARS: usize = 100;
/// Operator account or system name acting on an event, required.
pub const MAX_ACTOR_CHARS: usize = 100;
/// Notes, reasons, responses, replies and comments of lifecycle events.
pub const MAX_NOTE_CHARS: usize = 10_000;
/// Institution names in dispositions and responses, required.
pub const MAX_INSTITUTION_CHARS: usize = 200;
/// Free-text location (`Location.description`), optional.
pub const MAX_LOCATION_DESCRIPTION_CHARS: usize = 500;
/// Reporter's name, required when a reporter is given.
pub const MAX_REPORTER_NAME_CHARS: usize = 200;
/// E-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Tracking numbers; the store mints ~15 characters (`1113-K7Q-000042`).
pub const MAX_TRACKING_NUMBER_CHARS: usize = 64;
/// The earliest incident year accepted (the Republic's founding).
pub const MIN_INCIDENT_YEAR: i32 = 1945;
/// Digits in a NIK.
pub const NIK_DIGITS: usize = 16;

/// Why one value was refused. Variants carry the bound that was crossed,
/// never the value itself (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Required text is empty or only whitespace.
    #[error("is required")]
    Missing,
    /// Text longer than its limit.
    #[error("is {len} characters; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    /// Text holds a control character other than tab, CR or LF.
    #[error("contains control character U+{code:04X} at character {at}")]
    ControlChar { code: u32, at: usize },
    /// Not 16 ASCII digits.
    #[error("must be exactly 16 digits")]
    NikShape,
    /// The first two digits cannot be a province code (11..=99).
    #[error("does not start with a province code (11-99)")]
    NikProvince,
    /// Digits 7-8 are not a day of birth (01-31, or 41-71 for women).
    #[error("digits 7-8 must be a day of birth 01-31 or 41-71")]
    NikDay,
    /// Digits 9-10 are not a month 01-12.
    #[error("digits 9-10 must be a month 01-12")]
    NikMonth,
    /// Not an Indonesian phone number in a form we accept.
    #[error(
        "must be an Indonesian number: 08 followed by 8-11 digits, or +62/62 followed by 8-12 digits"
    )]
    Phone,
    /// `+62` followed by the trunk `0` (`+62 0812…`): ambiguous, so refused.
    #[error("must not keep the leading 0 after the country code +62")]
    PhoneTrunkZero,
    /// Not a plausible e-mail address.
    #[error("is not an e-mail address: {why}")]
    Email { why: &'static str },
    /// A latitude or longitude outside its range, or not finite.
    #[error("{axis} must be a finite number of degrees in -{limit}..={limit}")]
    Coordinate { axis: &'static str, limit: u8 },
    /// Only one of latitude and longitude is given.
    #[error("latitude and longitude must be given together")]
    HalfCoordinate,
    /// Year, month and day do not form a calendar date.
    #[error("{year:04}-{month:02}-{day:02} is not a calendar date")]
    NotADate { year: i32, month: i32, day: i32 },
    /// A date before [`MIN_INCIDENT_YEAR`].
    #[error("must not be before {MIN_INCIDENT_YEAR}")]
    TooEarly,
    /// A date after the latest allowed one.
    #[error("must not be after {latest}")]
    TooLate { latest: NaiveDate },
    /// A tracking number with characters other than ASCII letters, digits, '-'.
    #[error("may hold only ASCII letters, digits and '-'")]
    TrackingCharset,
    /// Not a UUID in canonical hyphenated form.
    #[error("must be a UUID in hyphenated form (8-4-4-4-12 hex digits)")]
    Uuid,
    /// The all-zero UUID, which no generator mints.
    #[error("must not be the nil UUID")]
    NilUuid,
}

/// Checks free text: at least `min` characters (and, when `min > 0`, not
/// only whitespace), at most `max`, and no control characters except `\t`,
/// `\n`, `\r`.
pub fn check_text(s: &str, min: usize, max: usize) -> Result<(), FieldError> {
    if min > 0 && s.trim().is_empty() {
        return Err(FieldError::Missing);
    }
    let len = if s.is_ascii() {
        // Most text is ASCII: one byte is one character, and the ASCII
        // control characters are below 0x20 and 0x7f (what `is_control`
        // says of them), so the bytes can be checked without decoding.
        let refused = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f;
        // A branch-free pass over the whole string first (the compiler
        // vectorises it; validation is a measurable share of a receiving
        // hub's CPU), and the position only when there is something to say.
        let clean = !s.bytes().fold(false, |any, b| {
            any | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0x7f)
        });
        let bad = if clean {
            None
        } else {
            s.bytes().position(refused)
        };
        if let Some(at) = bad {
            return Err(FieldError::ControlChar {
                code: u32::from(s.as_bytes()[at]),
                at,
            });
        }
        s.len()
    } else {
        let mut len = 0;
        for (at, c) in s.chars().enumerate() {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                return Err(FieldError::ControlChar {
                    code: u32::from(c),
                    at,
                });
            }
            len += 1;
        }
        len
    };
    if len < min {
        return Err(FieldError::Missing);
    }
    if len > max {
        return Err(FieldError::TooLong { len, max });
    }
    Ok(())
}

fn two_digit(s: &str, at: usize) -> u8 {
    let b = s.as_bytes();
    (b[at] - b'0') * 10 + (b[at + 1] - b'0')
}

/// Checks a NIK's structure: 16 ASCII digits `PP KK CC DD MM YY SSSS` with a
/// plausible province `PP` (11-99), day `DD` 01-31 or 41-71 (+40 for women)
/// and month `MM` 01-12.
///
/// The province is deliberately not looked up in [`crate::regions`]: a NIK
/// keeps the code of the region where it was first issued, which may since
/// have been renumbered (Papua 91.xx → 93.xx in 2022; domain.md §6.1).
pub fn check_nik(s: &str) -> Result<(), FieldError> {
    if s.len() != NIK_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::NikShape);
    }
    if two_digit(s, 0) < 11 {
        return Err(FieldError::NikProvince);
    }
    if !matches!(two_digit(s, 6), 1..=31 | 41..=71) {
        return Err(FieldError::NikDay);
    }
    if !matches!(two_digit(s, 8), 1..=12) {
        return Err(FieldError::NikMonth);
    }
    Ok(())
}

/// Validates an Indonesian phone number and returns it in `+62…` form.
///
/// Accepted: `08` + 8-11 digits (10-13 digits in all), or `+62`/`62` + 8-12
/// digits; spaces and dashes anywhere are dropped. The result is a fixed
/// point: normalising it again returns it unchanged.
pub fn normalize_phone(s: &str) -> Result<String, FieldError> {
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let subscriber = if let Some(rest) = compact
        .strip_prefix("+62")
        .or_else(|| compact.strip_prefix("62"))
    {
        if rest.starts_with('0') {
            return Err(FieldError::PhoneTrunkZero);
        }
        (8..=12).contains(&rest.len()).then_some(rest)
    } else if compact.starts_with("08") {
        (10..=13).contains(&compact.len()).then(|| &compact[1..])
    } else {
        None
    };
    match subscriber {
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(format!("+62{digits}")),
        _ => Err(FieldError::Phone),
    }
}

/// Checks an e-mail address loosely: at most [`MAX_EMAIL_CHARS`], one `@`, a
/// non-empty local part, a domain with a dot and no empty labels, no
/// whitespace or control characters. Deliverability is not our business.
pub fn check_email(s: &str) -> Result<(), FieldError> {
    let why = |why| Err(FieldError::Email { why });
    if s.chars().count() > MAX_EMAIL_CHARS {
        return Err(FieldError::TooLong {
            len: s.chars().count(),
            max: MAX_EMAIL_CHARS,
        });
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return why("contains whitespace");
    }
    let Some((local, domain)) = s.split_once('@') else {
        return why("has no '@'");
    };
    if domain.contains('@') {
        return why("has more than one '@'");
    }
    if local.is_empty() {
        return why("empty local part");
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return why("domain must be dotted, like desa.go.id");
    }
    Ok(())
}

/// Checks a position: both or neither of latitude (-90..=90) and longitude
/// (-180..=180), finite.
pub fn check_coordinates(
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<Option<(f64, f64)>, FieldError> {
    let (lat, lon) = match (lat, lon) {
        (None, None) => return Ok(None),
        (Some(lat), Some(lon)) => (lat, lon),
        _ => return Err(FieldError::HalfCoordinate),
    };
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(FieldError::Coordinate {
            axis: "latitude",
            limit: 90,
        });
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(FieldError::Coordinate {
            axis: "longitude",
            limit: 180,
        });
    }
    Ok(Some((lat, lon)))
}

/// Builds an incident date: a real calendar date, not before
/// [`MIN_INCIDENT_YEAR`].
pub fn incident_date(year: i32, month: i32, day: i32) -> Result<NaiveDate, FieldError> {
    let date = u32::try_from(month)
        .ok()
        .zip(u32::try_from(day).ok())
        .and_then(|(m, d)| NaiveDate::from_ymd_opt(year, m, d))
        .ok_or(FieldError::NotADate { year, month, day })?;
    if year < MIN_INCIDENT_YEAR {
        return Err(FieldError::TooEarly);
    }
    Ok(date)
}

/// Refuses a date after `today` plus one day. The day of slack absorbs time
/// zones (WIT is two hours ahead of WIB) and a district PC whose clock lags.
pub fn check_not_after(date: NaiveDate, today: NaiveDate) -> Result<(), FieldError> {
    let latest = today.succ_opt().unwrap_or(today);
    if date > latest {
        return Err(FieldError::TooLate { latest });
    }
    Ok(())
}

/// Checks a tracking number's shape: 1..=[`MAX_TRACKING_NUMBER_CHARS`] ASCII
/// letters, digits and dashes.
pub fn check_tracking_number(s: &str) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::Missing);
    }
    if s.len() > MAX_TRACKING_NUMBER_CHARS {
        return Err(FieldError::TooLong {
            len: s.chars().count(),
            max: MAX_TRACKING_NUMBER_CHARS,
        });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(FieldError::TrackingCharset);
    }
    Ok(())
}

/// Parses a UUID written in hyphenated form (either case), refusing the nil
/// UUID. Any version is accepted: ids from peers only need to be unique, and
/// refusing a v4 minted by another implementation would quarantine real data
/// for no gain in safety. Our own sites mint v7.
pub fn parse_uuid(s: &str) -> Result<uuid::Uuid, FieldError> {
    // `Uuid::try_parse` also takes the simple, braced and URN forms; only the
    // 36-character input is the hyphenated one the contract names.
    if s.len() != 36 {
        return Err(FieldError::Uuid);
    }
    let id = uuid::Uuid::try_parse(s).map_err(|_| FieldError::Uuid)?;
    if id.is_nil() {
        return Err(FieldError::NilUuid);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn text_within_bounds_is_accepted_and_outside_refused() {
        assert_eq!(check_text("Jalan rusak\r\n\tparah", 1, 200), Ok(()));
        assert_eq!(check_text(&"é".repeat(200), 1, 200), Ok(()));
        assert_eq!(
            check_text(&"é".repeat(201), 1, 200),
            Err(FieldError::TooLong { len: 201, max: 200 })
        );
        assert_eq!(check_text("", 1, 200), Err(FieldError::Missing));
        assert_eq!(check_text(" \n ", 1, 200), Err(FieldError::Missing));
        assert_eq!(check_text("", 0, 200), Ok(()));
        assert_eq!(
            check_text("a\u{0}b", 0, 200),
            Err(FieldError::ControlChar { code: 0, at: 1 })
        );
        assert_eq!(
            check_text("a\u{1b}[2J", 0, 200),
            Err(FieldError::ControlChar { code: 0x1b, at: 1 })
        );
        assert_eq!(
            check_text("\u{85}", 0, 200),
            Err(FieldError::ControlChar { code: 0x85, at: 0 })
        );
    }

    #[test]
    fn every_ascii_character_is_judged_as_is_control_judges_it() {
        for b in 0u8..128 {
            let c = char::from(b);
            let allowed = !c.is_control() || matches!(c, '\t' | '\n' | '\r');
            let ascii = format!("ab{c}");
            // The same character after a non-ASCII one takes the other path.
            let wide = format!("é{c}");
            let (want_ascii, want_wide) = if allowed {
                (Ok(()), Ok(()))
            } else {
                let code = u32::from(b);
                (
                    Err(FieldError::ControlChar { code, at: 2 }),
                    Err(FieldError::ControlChar { code, at: 1 }),
                )
            };
            assert_eq!(check_text(&ascii, 0, 10), want_ascii, "byte {b:#x}");
            assert_eq!(check_text(&wide, 0, 10), want_wide, "byte {b:#x}");
        }
        assert_eq!(
            check_text(&"a".repeat(11), 0, 10),
            Err(FieldError::TooLong { len: 11, max: 10 })
        );
    }

    #[test]
    fn nik_of_a_woman_born_on_the_first_is_accepted() {
        assert_eq!(check_nik("1113014107900001"), Ok(()));
        assert_eq!(check_nik("1113010107900001"), Ok(()));
        assert_eq!(check_nik("9101017112990001"), Ok(())); // historical Papua code, day 71, month 12
    }

    #[test]
    fn nik_with_bad_structure_is_refused() {
        assert_eq!(check_nik("111301410790000"), Err(FieldError::NikShape));
        assert_eq!(check_nik("11130141079000012"), Err(FieldError::NikShape));
        assert_eq!(check_nik("11130141079O0001"), Err(FieldError::NikShape));
        assert_eq!(check_nik("１113014107900001"), Err(FieldError::NikShape));
        assert_eq!(check_nik("1013014107900001"), Err(FieldError::NikProvince));
        assert_eq!(check_nik("1113013207900001"), Err(FieldError::NikDay));
        assert_eq!(check_nik("1113017207900001"), Err(FieldError::NikDay));
        assert_eq!(check_nik("1113010007900001"), Err(FieldError::NikDay));
        assert_eq!(check_nik("1113014113900001"), Err(FieldError::NikMonth));
        assert_eq!(check_nik("1113014100900001"), Err(FieldError::NikMonth));
    }

    #[test]
    fn phone_numbers_are_normalised_to_plus_62() {
        assert_eq!(
            normalize_phone("0812-3456-7890").as_deref(),
            Ok("+6281234567890")
        );
        assert_eq!(
            normalize_phone("0812 3456 78").as_deref(),
            Ok("+62812345678")
        );
        assert_eq!(
            normalize_phone("+62 812 3456 7890").as_deref(),
            Ok("+6281234567890")
        );
        assert_eq!(
            normalize_phone("6281234567890").as_deref(),
            Ok("+6281234567890")
        );
        assert_eq!(
            normalize_phone("+62 642 21234").as_deref(),
            Ok("+6264221234")
        );
    }

    #[test]
    fn malformed_phone_numbers_are_refused() {
        for bad in [
            "",
            "081234567",
            "08123456789012",
            "021 1234567",
            "+62123",
            "+621234567890123",
            "0812-3456-789a",
            "(0812) 345678",
            "+1 415 555 0100",
        ] {
            assert_eq!(normalize_phone(bad), Err(FieldError::Phone), "{bad:?}");
        }
        assert_eq!(
            normalize_phone("+62 0812 3456 7890"),
            Err(FieldError::PhoneTrunkZero)
        );
    }

    #[test]
    fn emails_are_checked_loosely() {
        for good in ["siti@desa.go.id", "a.b+c@mail.example.co.id", "x@y.z"] {
            assert_eq!(check_email(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "siti",
            "@desa.go.id",
            "siti@",
            "siti@localhost",
            "si ti@desa.go.id",
            "a@b@c.id",
            "a@b..id",
            "a@.b.id",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@desa.go.id", "a".repeat(MAX_EMAIL_CHARS));
        assert!(matches!(
            check_email(&long),
            Err(FieldError::TooLong { .. })
        ));
    }

    #[test]
    fn coordinates_are_both_or_neither_and_in_range() {
        assert_eq!(check_coordinates(None, None), Ok(None));
        assert_eq!(
            check_coordinates(Some(3.97), Some(97.35)),
            Ok(Some((3.97, 97.35)))
        );
        assert_eq!(
            check_coordinates(Some(-90.0), Some(180.0)),
            Ok(Some((-90.0, 180.0)))
        );
        assert_eq!(
            check_coordinates(Some(3.97), None),
            Err(FieldError::HalfCoordinate)
        );
        assert_eq!(
            check_coordinates(None, Some(97.35)),
            Err(FieldError::HalfCoordinate)
        );
        assert!(check_coordinates(Some(90.5), Some(0.0)).is_err());
        assert!(check_coordinates(Some(0.0), Some(-180.5)).is_err());
        assert!(check_coordinates(Some(f64::NAN), Some(0.0)).is_err());
        assert!(check_coordinates(Some(0.0), Some(f64::INFINITY)).is_err());
    }

    #[test]
    fn incident_dates_must_be_real_and_not_before_1945() {
        assert_eq!(
            incident_date(2024, 2, 29),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        assert_eq!(
            incident_date(1945, 1, 1),
            Ok(NaiveDate::from_ymd_opt(1945, 1, 1).unwrap())
        );
        assert!(matches!(
            incident_date(2025, 2, 29),
            Err(FieldError::NotADate { .. })
        ));
        assert!(matches!(
            incident_date(2025, 0, 1),
            Err(FieldError::NotADate { .. })
        ));
        assert!(matches!(
            incident_date(2025, -1, 1),
            Err(FieldError::NotADate { .. })
        ));
        assert!(matches!(
            incident_date(0, 0, 0),
            Err(FieldError::NotADate { .. })
        ));
        assert_eq!(incident_date(1944, 12, 31), Err(FieldError::TooEarly));
    }

    #[test]
    fn dates_up_to_tomorrow_are_accepted() {
        let today = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        assert_eq!(check_not_after(today, today), Ok(()));
        assert_eq!(
            check_not_after(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), today),
            Ok(())
        );
        assert!(check_not_after(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), today).is_err());
    }

    #[test]
    fn tracking_numbers_are_short_ascii() {
        assert_eq!(check_tracking_number("1113-K7Q-000042"), Ok(()));
        assert_eq!(check_tracking_number(""), Err(FieldError::Missing));
        assert_eq!(
            check_tracking_number("1113 K7Q"),
            Err(FieldError::TrackingCharset)
        );
        assert!(check_tracking_number(&"1".repeat(MAX_TRACKING_NUMBER_CHARS + 1)).is_err());
    }

    #[test]
    fn uuids_must_be_hyphenated_and_not_nil() {
        let v7 = uuid::Uuid::now_v7();
        assert_eq!(parse_uuid(&v7.to_string()), Ok(v7));
        assert_eq!(parse_uuid(&v7.to_string().to_uppercase()), Ok(v7));
        let v4 = "0b6c4d9e-3f1a-4c2b-9d8e-7f6a5b4c3d2e";
        assert!(parse_uuid(v4).is_ok(), "any version is accepted from peers");
        assert_eq!(parse_uuid(&v7.simple().to_string()), Err(FieldError::Uuid));
        assert_eq!(parse_uuid(&format!("{{{v7}}}")), Err(FieldError::Uuid));
        assert_eq!(parse_uuid("not-a-uuid"), Err(FieldError::Uuid));
        assert_eq!(
            parse_uuid("00000000-0000-0000-0000-000000000000"),
            Err(FieldError::NilUuid)
        );
    }

    #[test]
    fn error_messages_never_quote_the_value() {
        let nik = "1113013207900001";
        assert!(!check_nik(nik).unwrap_err().to_string().contains(nik));
        assert!(
            !normalize_phone("0812xx")
                .unwrap_err()
                .to_string()
                .contains("0812xx")
        );
        assert!(
            !check_email("siti@x")
                .unwrap_err()
                .to_string()
                .contains("siti")
        );
    }

    /// A NIK with a valid province, day and month, from generated parts.
    fn valid_nik() -> impl Strategy<Value = String> {
        (
            11u8..=99,
            0u32..10_000,
            prop_oneof![1u8..=31, 41u8..=71],
            1u8..=12,
            0u32..1_000_000,
        )
            .prop_map(|(pp, kkcc, dd, mm, rest)| format!("{pp:02}{kkcc:04}{dd:02}{mm:02}{rest:06}"))
    }

    proptest! {
        #[test]
        fn any_nik_with_valid_day_and_month_is_accepted(nik in valid_nik()) {
            prop_assert_eq!(nik.len(), NIK_DIGITS);
            prop_assert_eq!(check_nik(&nik), Ok(()));
        }

        #[test]
        fn any_nik_with_a_non_digit_is_refused(nik in valid_nik(), at in 0usize..NIK_DIGITS, c in any::<char>()) {
            prop_assume!(!c.is_ascii_digit());
            let mut chars: Vec<char> = nik.chars().collect();
            chars[at] = c;
            let bad: String = chars.into_iter().collect();
            prop_assert_eq!(check_nik(&bad), Err(FieldError::NikShape));
        }

        #[test]
        fn any_nik_with_an_impossible_day_is_refused(nik in valid_nik(), dd in prop_oneof![Just(0u8), 32u8..=40, 72u8..=99]) {
            let bad = format!("{}{dd:02}{}", &nik[..6], &nik[8..]);
            prop_assert_eq!(check_nik(&bad), Err(FieldError::NikDay));
        }

        #[test]
        fn any_nik_with_an_impossible_month_is_refused(nik in valid_nik(), mm in prop_oneof![Just(0u8), 13u8..=99]) {
            let bad = format!("{}{mm:02}{}", &nik[..8], &nik[10..]);
            prop_assert_eq!(check_nik(&bad), Err(FieldError::NikMonth));
        }

        #[test]
        fn phone_normalisation_is_idempotent(s in "(\\+62|62|0)8[0-9 -]{6,16}") {
            if let Ok(once) = normalize_phone(&s) {
                prop_assert_eq!(normalize_phone(&once), Ok(once.clone()));
                prop_assert!(once.starts_with("+628"));
            }
        }

        #[test]
        fn mobile_numbers_in_any_spelling_normalise_alike(sub in "8[0-9]{8,10}") {
            let want = format!("+62{sub}");
            prop_assert_eq!(normalize_phone(&format!("0{sub}")), Ok(want.clone()));
            prop_assert_eq!(normalize_phone(&format!("62{sub}")), Ok(want.clone()));
            prop_assert_eq!(normalize_phone(&format!("+62 {}-{}", &sub[..3], &sub[3..])), Ok(want));
        }

        #[test]
        fn text_checks_never_panic(s in any::<String>(), min in 0usize..3, max in 0usize..50) {
            let _ = check_text(&s, min, max);
            let _ = check_email(&s);
            let _ = normalize_phone(&s);
            let _ = check_nik(&s);
        }
    }
}
