//! The working-day calendar (*hari kerja*) that LAPOR's service levels are
//! counted in: Indonesia's three time zones, weekends, national holidays and
//! *cuti bersama*.
//!
//! This module owns the counting rule and the province → zone map. It knows
//! nothing about complaints (see `crate::deadline`) and reads no clock: every
//! instant is a parameter.
//!
//! The counting rule, in the local time of the calendar's zone:
//! - a day is a working day unless it is a Saturday, a Sunday or in the
//!   holiday list;
//! - an event's *anchor day* is its local date when that is a working day,
//!   otherwise the next working day (a complaint filed on Saturday night is
//!   treated as received on Monday, as if it had been handed in then);
//! - [`WorkCalendar::add_working_days`]`(t, n)` is the **end** of the n-th
//!   working day after the anchor day — 23:59:59.999 local, returned in UTC;
//!   `n = 0` is the end of the anchor day itself;
//! - [`WorkCalendar::working_days_between`]`(a, b)` counts the working days
//!   after `a`'s anchor day up to and including `b`'s local date, so
//!   `working_days_between(t, add_working_days(t, n)) == n`.
//!
//! Holidays: the operator's configured [`HolidayList`] is authoritative. The
//! built-in list ([`BUILTIN_HOLIDAYS`]) covers only 2026 and is the SKB of
//! three ministers as published; a configured list *replaces* it rather than
//! adding to it, because revisions of the SKB move dates (a union would keep
//! the stale one).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

/// One of Indonesia's three civil time zones.
///
/// A `chrono::FixedOffset` per zone rather than `chrono-tz`: Indonesia has
/// kept these offsets without daylight saving since 1988, so a tz database
/// would add a dependency and a data refresh duty for no difference in any
/// date this service handles. If the government ever merges the zones (it
/// was proposed in 2012), this enum changes, exactly as a tz rule would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IndonesianZone {
    /// Waktu Indonesia Barat, UTC+7: Sumatra, Java, West and Central
    /// Kalimantan.
    Wib,
    /// Waktu Indonesia Tengah, UTC+8: Bali, Nusa Tenggara, the rest of
    /// Kalimantan, Sulawesi.
    Wita,
    /// Waktu Indonesia Timur, UTC+9: Maluku and Papua.
    Wit,
}

const HOUR: i32 = 3600;

/// Evaluated at compile time, so the `panic!` arms can only ever fail the
/// build, never a running site.
const fn fixed(hours: i32) -> FixedOffset {
    match FixedOffset::east_opt(hours * HOUR) {
        Some(offset) => offset,
        None => panic!("offset out of range"),
    }
}

const WIB: FixedOffset = fixed(7);
const WITA: FixedOffset = fixed(8);
const WIT: FixedOffset = fixed(9);

impl IndonesianZone {
    pub const ALL: [IndonesianZone; 3] = [
        IndonesianZone::Wib,
        IndonesianZone::Wita,
        IndonesianZone::Wit,
    ];

    /// The zone's offset from UTC.
    pub fn offset(self) -> FixedOffset {
        match self {
            IndonesianZone::Wib => WIB,
            IndonesianZone::Wita => WITA,
            IndonesianZone::Wit => WIT,
        }
    }

    /// The abbreviation Indonesians write after a time: `"WIB"`.
    pub fn abbreviation(self) -> &'static str {
        match self {
            IndonesianZone::Wib => "WIB",
            IndonesianZone::Wita => "WITA",
            IndonesianZone::Wit => "WIT",
        }
    }
}

impl fmt::Display for IndonesianZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// The zone of a province, from its two-digit Kemendagri code (`"11"` =
/// Aceh). A kabupaten/kota code (`"11.13"`) is accepted too: its province
/// prefix decides. `None` for a code that names no province (`"00"`, the
/// national site, has no single zone).
///
/// Every province of `shared/data/wilayah_provinsi_kabkota.csv` maps (a test
/// holds that). The first digit is the island group; only Kalimantan (6x)
/// straddles two zones.
pub fn zone_for_province(code: &str) -> Option<IndonesianZone> {
    let province = code.split_once('.').map_or(code, |(p, _)| p);
    let zone = match province {
        // Sumatra (11–19) and Kepulauan Riau (21); Java and Banten (31–36);
        // Kalimantan Barat and Kalimantan Tengah.
        "11" | "12" | "13" | "14" | "15" | "16" | "17" | "18" | "19" | "21" => IndonesianZone::Wib,
        "31" | "32" | "33" | "34" | "35" | "36" | "61" | "62" => IndonesianZone::Wib,
        // Bali and Nusa Tenggara; Kalimantan Selatan, Timur, Utara; Sulawesi.
        "51" | "52" | "53" | "63" | "64" | "65" => IndonesianZone::Wita,
        "71" | "72" | "73" | "74" | "75" | "76" => IndonesianZone::Wita,
        // Maluku, Maluku Utara and the six Papua provinces.
        "81" | "82" | "91" | "92" | "93" | "94" | "95" | "96" => IndonesianZone::Wit,
        _ => return None,
    };
    Some(zone)
}

/// Whether a day off is a national holiday or collective leave. Both stop
/// the SLA clock; the kind is kept for operators reading the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolidayKind {
    /// *Hari libur nasional*.
    National,
    /// *Cuti bersama*: collective leave of the civil service, set by the same
    /// SKB.
    CutiBersama,
}

/// One entry of the built-in list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub date: NaiveDate,
    pub kind: HolidayKind,
    /// The name the SKB gives it.
    pub name: &'static str,
}

/// Compile-time checked date of 2026 (an invalid day fails the build).
const fn d2026(month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(2026, month, day) {
        Some(date) => date,
        None => panic!("invalid date in the built-in holiday list"),
    }
}

const fn national(month: u32, day: u32, name: &'static str) -> Holiday {
    Holiday {
        date: d2026(month, day),
        kind: HolidayKind::National,
        name,
    }
}

const fn cuti(month: u32, day: u32, name: &'static str) -> Holiday {
    Holiday {
        date: d2026(month, day),
        kind: HolidayKind::CutiBersama,
        name,
    }
}

/// National holidays (17 days) and *cuti bersama* (8 days) of 2026 per the
/// SKB of the Minister of Religious Affairs, the Minister of Manpower and the
/// Minister of PANRB (No. 1497/2025, 2/2025, 5/2025), announced on
/// 19 September 2025. Only 2026 is built in: later years are not decided
/// yet, and dates of years already past do not matter for open deadlines.
/// The operator's configuration is authoritative; see the module docs.
#[rustfmt::skip] // a table reads as a table
pub const BUILTIN_HOLIDAYS: &[Holiday] = &[
    national(1, 1,   "Tahun Baru 2026 Masehi"),
    national(1, 16,  "Isra Mikraj Nabi Muhammad SAW"),
    cuti(2, 16,      "Cuti bersama Tahun Baru Imlek"),
    national(2, 17,  "Tahun Baru Imlek 2577 Kongzili"),
    cuti(3, 18,      "Cuti bersama Hari Suci Nyepi"),
    national(3, 19,  "Hari Suci Nyepi Tahun Baru Saka 1948"),
    cuti(3, 20,      "Cuti bersama Idul Fitri 1447 H"),
    national(3, 21,  "Idul Fitri 1447 H"),
    national(3, 22,  "Idul Fitri 1447 H"),
    cuti(3, 23,      "Cuti bersama Idul Fitri 1447 H"),
    cuti(3, 24,      "Cuti bersama Idul Fitri 1447 H"),
    national(4, 3,   "Wafat Yesus Kristus"),
    national(4, 5,   "Kebangkitan Yesus Kristus (Paskah)"),
    national(5, 1,   "Hari Buruh Internasional"),
    national(5, 14,  "Kenaikan Yesus Kristus"),
    cuti(5, 15,      "Cuti bersama Kenaikan Yesus Kristus"),
    national(5, 27,  "Idul Adha 1447 H"),
    cuti(5, 28,      "Cuti bersama Idul Adha 1447 H"),
    national(5, 31,  "Hari Raya Waisak 2570 BE"),
    national(6, 1,   "Hari Lahir Pancasila"),
    national(6, 16,  "1 Muharam Tahun Baru Islam 1448 H"),
    national(8, 17,  "Proklamasi Kemerdekaan"),
    national(8, 25,  "Maulid Nabi Muhammad SAW"),
    cuti(12, 24,     "Cuti bersama Kelahiran Yesus Kristus"),
    national(12, 25, "Kelahiran Yesus Kristus"),
];

/// The configurable list of days off (national holidays and *cuti bersama*
/// alike), as it appears in a site's TOML:
///
/// ```toml
/// [holidays]
/// dates = [2026-01-01, "2026-01-16"]   # TOML dates or ISO strings
/// ```
///
/// [`Default`] is the built-in 2026 list, so a config section left out means
/// "use what the binary ships".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayList {
    /// Every day off, in any order; weekends may be listed and change nothing.
    #[serde(deserialize_with = "iso_dates")]
    pub dates: Vec<NaiveDate>,
}

impl HolidayList {
    /// The built-in list ([`BUILTIN_HOLIDAYS`]).
    pub fn builtin() -> HolidayList {
        HolidayList {
            dates: BUILTIN_HOLIDAYS.iter().map(|h| h.date).collect(),
        }
    }
}

impl Default for HolidayList {
    fn default() -> Self {
        HolidayList::builtin()
    }
}

/// An ISO date written either as a string (`"2026-03-20"`, JSON and TOML) or
/// as a TOML date literal (`2026-03-20`). The `toml` crate hands a literal to
/// a visitor as a one-entry map whose value is the date's text; chrono's own
/// `NaiveDate` visitor accepts strings only, and an operator writing TOML's
/// native date syntax should not be told "invalid type: map".
struct IsoDate(NaiveDate);

struct IsoDateVisitor;

const DATE_FORMAT: &str = "%Y-%m-%d";

impl<'de> Visitor<'de> for IsoDateVisitor {
    type Value = IsoDate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ISO date such as 2026-03-20")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<IsoDate, E> {
        NaiveDate::parse_from_str(s, DATE_FORMAT)
            .map(IsoDate)
            .map_err(|_| E::invalid_value(Unexpected::Str(s), &self))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IsoDate, A::Error> {
        let Some((_, text)) = map.next_entry::<IgnoredAny, String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_type(Unexpected::Map, &self));
        }
        self.visit_str(&text)
    }
}

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(IsoDateVisitor)
    }
}

fn iso_dates<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<NaiveDate>, D::Error> {
    let dates = Vec::<IsoDate>::deserialize(deserializer)?;
    Ok(dates.into_iter().map(|IsoDate(date)| date).collect())
}

/// The last millisecond of a day: deadlines fall at the end of a working day.
const END_OF_DAY: NaiveTime = match NaiveTime::from_hms_milli_opt(23, 59, 59, 999) {
    Some(t) => t,
    None => panic!("23:59:59.999 is a valid time"),
};

/// A working-day calendar in one zone. Cheap to query; build one per zone
/// and reuse it (the holiday set is shared by all three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    /// The zone whose local dates are counted.
    pub zone: IndonesianZone,
    /// National holidays and *cuti bersama*; weekend dates in it are
    /// harmless.
    pub holidays: BTreeSet<NaiveDate>,
}

impl WorkCalendar {
    pub fn new(zone: IndonesianZone, holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        WorkCalendar {
            zone,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// A calendar with the holidays of a configured list.
    pub fn from_list(zone: IndonesianZone, list: &HolidayList) -> Self {
        WorkCalendar::new(zone, list.dates.iter().copied())
    }

    /// Whether any holiday of `year` is listed — a hub can warn an operator
    /// whose list does not reach the current year yet.
    pub fn has_holidays_in(&self, year: i32) -> bool {
        let (Some(first), Some(last)) = (
            NaiveDate::from_ymd_opt(year, 1, 1),
            NaiveDate::from_ymd_opt(year, 12, 31),
        ) else {
            return false;
        };
        self.holidays.range(first..=last).next().is_some()
    }

    /// The local date of an instant in this calendar's zone.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone.offset()).date_naive()
    }

    /// Monday to Friday, and not a holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !is_weekend(date) && !self.holidays.contains(&date)
    }

    /// The end of the `n`-th working day after the anchor day of `from` (see
    /// the module docs): 23:59:59.999 local time, as UTC. Saturates at
    /// `DateTime::<Utc>::MAX_UTC` past the end of chrono's calendar.
    pub fn add_working_days(&self, from: DateTime<Utc>, n: u16) -> DateTime<Utc> {
        let mut day = self.anchor_day(self.local_date(from));
        for _ in 0..n {
            day = day.and_then(|d| self.next_working_day_after(d));
        }
        day.and_then(|d| self.end_of_day(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The working days after `a`'s anchor day up to and including `b`'s
    /// local date; 0 when `b` is not later than that.
    pub fn working_days_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> u32 {
        let Some(start) = self.anchor_day(self.local_date(a)) else {
            return 0;
        };
        let end = self.local_date(b);
        if end <= start {
            return 0;
        }
        let weekdays = weekdays_upto(end) - weekdays_upto(start);
        let holidays = self
            .holidays
            .range((Bound::Excluded(start), Bound::Included(end)))
            .filter(|d| !is_weekend(**d))
            .count();
        let days = weekdays - i64::try_from(holidays).unwrap_or(i64::MAX);
        u32::try_from(days.max(0)).unwrap_or(u32::MAX)
    }

    /// The last millisecond of `date` in this zone, as UTC.
    pub fn end_of_day(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        date.and_time(END_OF_DAY)
            .checked_sub_offset(self.zone.offset())
            .map(|utc| utc.and_utc())
    }

    /// `date` if it is a working day, else the next one. `None` only past the
    /// end of chrono's calendar.
    fn anchor_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        if self.is_working_day(date) {
            Some(date)
        } else {
            self.next_working_day_after(date)
        }
    }

    /// Terminates: the holiday set is finite, so a weekday outside it comes
    /// within `holidays.len() + 7` days.
    fn next_working_day_after(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut day = date.succ_opt()?;
        while !self.is_working_day(day) {
            day = day.succ_opt()?;
        }
        Some(day)
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The number of Monday–Friday dates from an arbitrary fixed origin up to
/// and including `date`; only differences are meaningful. Day 1 of the
/// common era (0001-01-01, proleptic Gregorian) is a Monday, so days
/// numbered 1..=5 modulo 7 are weekdays.
fn weekdays_upto(date: NaiveDate) -> i64 {
    let n = i64::from(date.num_days_from_ce());
    n.div_euclid(7) * 5 + n.rem_euclid(7).min(5)
}

#[cfg(test)]
mod tests {
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
}
