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

// The tests would push this file past a readable size; they live beside it
// in `calendar/`.
#[cfg(test)]
mod tests;
