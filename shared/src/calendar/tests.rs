//! Tests of the working-day counting rule, the zone map and the holiday list.

use chrono::{Duration, TimeZone as _, Timelike as _};
use proptest::prelude::*;
use serde::de::value::{Error as ValueError, MapDeserializer};

use super::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// An instant given in the local time of `zone`.
fn local(zone: IndonesianZone, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    zone.offset()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn end_of(zone: IndonesianZone, y: i32, m: u32, d: u32) -> DateTime<Utc> {
    zone.offset()
        .with_ymd_and_hms(y, m, d, 23, 59, 59)
        .unwrap()
        .with_timezone(&Utc)
        + Duration::milliseconds(999)
}

fn no_holidays(zone: IndonesianZone) -> WorkCalendar {
    WorkCalendar::new(zone, [])
}

fn aceh() -> WorkCalendar {
    WorkCalendar::from_list(IndonesianZone::Wib, &HolidayList::builtin())
}

#[test]
fn weekends_are_skipped() {
    let cal = no_holidays(IndonesianZone::Wib);
    // Thursday 8 January 2026: Fri 9, Mon 12, Tue 13.
    let thursday = local(IndonesianZone::Wib, 2026, 1, 8, 10, 0);
    assert_eq!(
        cal.add_working_days(thursday, 3),
        end_of(IndonesianZone::Wib, 2026, 1, 13)
    );
    assert!(!cal.is_working_day(date(2026, 1, 10)));
    assert!(!cal.is_working_day(date(2026, 1, 11)));
}

#[test]
fn a_holiday_is_skipped() {
    // Wednesday 14 January; Friday 16 January is Isra Mikraj.
    let wednesday = local(IndonesianZone::Wib, 2026, 1, 14, 9, 0);
    assert_eq!(
        no_holidays(IndonesianZone::Wib).add_working_days(wednesday, 2),
        end_of(IndonesianZone::Wib, 2026, 1, 16)
    );
    assert_eq!(
        aceh().add_working_days(wednesday, 2),
        end_of(IndonesianZone::Wib, 2026, 1, 19)
    );
}

#[test]
fn an_event_on_saturday_counts_from_monday() {
    let cal = no_holidays(IndonesianZone::Wib);
    let saturday = local(IndonesianZone::Wib, 2026, 1, 10, 21, 0);
    let monday = local(IndonesianZone::Wib, 2026, 1, 12, 8, 0);
    assert_eq!(
        cal.add_working_days(saturday, 1),
        end_of(IndonesianZone::Wib, 2026, 1, 13)
    );
    assert_eq!(
        cal.add_working_days(saturday, 1),
        cal.add_working_days(monday, 1)
    );
    // n = 0 is the end of the anchor day, Monday.
    assert_eq!(
        cal.add_working_days(saturday, 0),
        end_of(IndonesianZone::Wib, 2026, 1, 12)
    );
}

#[test]
fn an_event_on_a_holiday_counts_from_the_next_working_day() {
    // New Year's Day 2026 is a Thursday.
    let new_year = local(IndonesianZone::Wib, 2026, 1, 1, 12, 0);
    assert_eq!(
        aceh().add_working_days(new_year, 1),
        end_of(IndonesianZone::Wib, 2026, 1, 5)
    );
}

#[test]
fn friday_night_in_wib_is_saturday_morning_in_wit() {
    let instant = local(IndonesianZone::Wib, 2026, 1, 9, 23, 30);
    let wib = no_holidays(IndonesianZone::Wib);
    let wit = no_holidays(IndonesianZone::Wit);
    assert_eq!(wib.local_date(instant), date(2026, 1, 9));
    assert_eq!(wit.local_date(instant), date(2026, 1, 10));
    assert_eq!(instant, local(IndonesianZone::Wit, 2026, 1, 10, 1, 30));
    // Friday counts from Friday; Saturday from Monday.
    assert_eq!(
        wib.add_working_days(instant, 1),
        end_of(IndonesianZone::Wib, 2026, 1, 12)
    );
    assert_eq!(
        wit.add_working_days(instant, 1),
        end_of(IndonesianZone::Wit, 2026, 1, 13)
    );
}

#[test]
fn three_working_days_across_nyepi_and_lebaran_cuti_bersama() {
    // Tuesday 17 March 2026. Wed 18 cuti Nyepi, Thu 19 Nyepi, Fri 20
    // cuti, Sat–Sun 21–22 Idul Fitri, Mon 23 and Tue 24 cuti: the three
    // working days are 25, 26 and 27 March.
    let tuesday = local(IndonesianZone::Wib, 2026, 3, 17, 10, 0);
    let due = aceh().add_working_days(tuesday, 3);
    assert_eq!(due, end_of(IndonesianZone::Wib, 2026, 3, 27));
    assert_eq!(aceh().working_days_between(tuesday, due), 3);
    assert_eq!(
        no_holidays(IndonesianZone::Wib).add_working_days(tuesday, 3),
        end_of(IndonesianZone::Wib, 2026, 3, 20)
    );
}

#[test]
fn deadlines_end_at_the_last_millisecond_of_the_local_day() {
    let cal = no_holidays(IndonesianZone::Wita);
    let due = cal.add_working_days(local(IndonesianZone::Wita, 2026, 2, 2, 8, 0), 1);
    let local_due = due.with_timezone(&IndonesianZone::Wita.offset());
    assert_eq!(local_due.date_naive(), date(2026, 2, 3));
    assert_eq!(
        (local_due.hour(), local_due.minute(), local_due.second()),
        (23, 59, 59)
    );
    assert_eq!(local_due.timestamp_subsec_millis(), 999);
    assert_eq!(
        cal.local_date(due + Duration::milliseconds(1)),
        date(2026, 2, 4)
    );
}

#[test]
fn working_days_between_counts_after_the_anchor_day() {
    let cal = aceh();
    let monday = local(IndonesianZone::Wib, 2026, 1, 12, 9, 0);
    assert_eq!(cal.working_days_between(monday, monday), 0);
    // Earlier b counts nothing.
    assert_eq!(
        cal.working_days_between(monday, monday - Duration::days(3)),
        0
    );
    // Mon 12 → Mon 19: 13, 14, 15, 19 (16 is Isra Mikraj).
    assert_eq!(
        cal.working_days_between(monday, monday + Duration::days(7)),
        4
    );
}

#[test]
fn weekday_count_agrees_with_chrono_weekdays() {
    let start = date(2025, 12, 1);
    let mut expected = 0;
    let mut day = start;
    for _ in 0..60 {
        day = day.succ_opt().unwrap();
        if !is_weekend(day) {
            expected += 1;
        }
        assert_eq!(weekdays_upto(day) - weekdays_upto(start), expected, "{day}");
    }
}

#[test]
fn every_province_in_the_region_list_has_a_zone() {
    let mut count = 0;
    for province in crate::regions::provinces() {
        assert!(
            zone_for_province(province.code).is_some(),
            "{} {} has no zone",
            province.code,
            province.name
        );
        count += 1;
    }
    assert_eq!(count, 38);
}

#[test]
fn provinces_map_to_their_zones() {
    use IndonesianZone::*;
    for (code, zone) in [
        ("11", Wib),    // Aceh
        ("11.13", Wib), // Gayo Lues, by its province
        ("21", Wib),    // Kepulauan Riau
        ("61", Wib),    // Kalimantan Barat
        ("62", Wib),    // Kalimantan Tengah
        ("63", Wita),   // Kalimantan Selatan
        ("65", Wita),   // Kalimantan Utara
        ("51", Wita),   // Bali
        ("76", Wita),   // Sulawesi Barat
        ("82", Wit),    // Maluku Utara
        ("96", Wit),    // Papua Barat Daya
    ] {
        assert_eq!(zone_for_province(code), Some(zone), "{code}");
    }
    for code in ["00", "20", "66", "99", "", "1", "aceh"] {
        assert_eq!(zone_for_province(code), None, "{code:?}");
    }
}

#[test]
fn zone_offsets_are_seven_eight_and_nine_hours() {
    let hours: Vec<i32> = IndonesianZone::ALL
        .iter()
        .map(|z| z.offset().local_minus_utc() / HOUR)
        .collect();
    assert_eq!(hours, [7, 8, 9]);
}

#[test]
fn builtin_list_is_the_2026_skb() {
    let national = BUILTIN_HOLIDAYS
        .iter()
        .filter(|h| h.kind == HolidayKind::National)
        .count();
    let cuti = BUILTIN_HOLIDAYS.len() - national;
    assert_eq!((national, cuti), (17, 8));
    let dates: BTreeSet<NaiveDate> = BUILTIN_HOLIDAYS.iter().map(|h| h.date).collect();
    assert_eq!(dates.len(), BUILTIN_HOLIDAYS.len(), "no date twice");
    assert!(dates.iter().all(|d| d.year() == 2026));
    assert!(aceh().has_holidays_in(2026));
    assert!(!aceh().has_holidays_in(2027));
    assert_eq!(HolidayList::default(), HolidayList::builtin());
}

#[test]
fn holiday_list_reads_iso_strings_and_refuses_bad_dates_and_keys() {
    let list: HolidayList =
        serde_json::from_str(r#"{"dates": ["2027-01-01", "2027-03-10"]}"#).unwrap();
    assert_eq!(list.dates, [date(2027, 1, 1), date(2027, 3, 10)]);

    let err = serde_json::from_str::<HolidayList>(r#"{"dates": ["2027-02-30"]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2027-02-30"), "{err}");
    assert!(serde_json::from_str::<HolidayList>(r#"{"dates": ["01/01/2027"]}"#).is_err());
    assert!(serde_json::from_str::<HolidayList>(r#"{"dates": [], "extra": 1}"#).is_err());
}

#[test]
fn holiday_list_reads_a_toml_date_literal() {
    // The shape the `toml` crate gives a visitor for `2027-01-01`.
    let toml_literal = MapDeserializer::<_, ValueError>::new(
        [("$__toml_private_datetime", "2027-01-01")].into_iter(),
    );
    let IsoDate(parsed) = IsoDate::deserialize(toml_literal).unwrap();
    assert_eq!(parsed, date(2027, 1, 1));

    let two_entries = MapDeserializer::<_, ValueError>::new(
        [("a", "2027-01-01"), ("b", "2027-01-02")].into_iter(),
    );
    assert!(IsoDate::deserialize(two_entries).is_err());
}

fn zone() -> impl Strategy<Value = IndonesianZone> {
    prop::sample::select(IndonesianZone::ALL.to_vec())
}

/// Holidays near the instants drawn below, dense enough to meet often.
fn holidays() -> impl Strategy<Value = BTreeSet<NaiveDate>> {
    prop::collection::btree_set(0i64..800, 0..120).prop_map(|offsets| {
        offsets
            .into_iter()
            .map(|o| date(2025, 6, 1) + Duration::days(o))
            .collect()
    })
}

proptest! {
    #[test]
    fn add_working_days_lands_on_a_working_day_and_counts_back_to_n(
        zone in zone(),
        holidays in holidays(),
        // 2025-06-01 .. 2027-06-01 in milliseconds.
        start_ms in 1_748_736_000_000i64..1_811_808_000_000,
        n in 0u16..300,
    ) {
        let cal = WorkCalendar { zone, holidays };
        let from = DateTime::from_timestamp_millis(start_ms).unwrap();
        let due = cal.add_working_days(from, n);
        prop_assert!(cal.is_working_day(cal.local_date(due)));
        prop_assert_eq!(cal.working_days_between(from, due), u32::from(n));
        prop_assert!(due >= from);
        prop_assert_eq!(cal.end_of_day(cal.local_date(due)), Some(due));
        // One more millisecond is the next local day.
        prop_assert_eq!(
            cal.local_date(due + Duration::milliseconds(1)),
            cal.local_date(due).succ_opt().unwrap()
        );
    }
}
