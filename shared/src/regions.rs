//! The Kemendagri province and kabupaten/kota list: which region and site
//! codes exist.
//!
//! The list is `shared/data/wilayah_provinsi_kabkota.csv` (38 provinsi, 514
//! kabupaten/kota; Kepmendagri 300.2.2-2138/2025 via cahyadsn/wilayah, MIT —
//! see `SOURCE.md` and the licence beside it). It is compiled into the binary
//! with `include_str!` so a site never depends on a file on disk, and parsed
//! once, on first use.
//!
//! Invariants:
//! - Codes stay text, exactly as written in the list (`"11.10"`, never
//!   `"11.1"`); every [`Region`] borrows its strings from the embedded file.
//! - Only the current list is known. NIKs keep historical region codes and
//!   are therefore *not* checked against this module (domain.md §6.1).
//!
//! This module answers "does this code exist"; shape checks of codes live in
//! `crate::domain` (`SiteCode::parse`, `RegionCode::parse`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use crate::domain::{SiteCode, SiteRole};

/// The embedded list (CRLF line endings, header
/// `kode,kode_induk,tingkat,jenis,nama`, no quoting).
const CSV: &str = include_str!("../data/wilayah_provinsi_kabkota.csv");

const HEADER: &str = "kode,kode_induk,tingkat,jenis,nama";

/// What kind of region a code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    Provinsi,
    Kabupaten,
    Kota,
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegionKind::Provinsi => "provinsi",
            RegionKind::Kabupaten => "kabupaten",
            RegionKind::Kota => "kota",
        })
    }
}

/// One province or kabupaten/kota of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Dotted Kemendagri code: `"11"` or `"11.13"`.
    pub code: &'static str,
    /// The province of a kabupaten/kota; `None` for a province.
    pub parent: Option<&'static str>,
    pub kind: RegionKind,
    /// Official name, e.g. `"Kabupaten Gayo Lues"`.
    pub name: &'static str,
}

/// Why the embedded list could not be read. Only a broken data file in the
/// source tree produces one; the tests parse the file strictly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionsError {
    /// The first line is not the expected header.
    #[error("region list header is {found:?}, expected {HEADER:?}")]
    Header { found: String },
    /// A row does not have five comma-separated fields.
    #[error("region list line {line}: expected 5 fields")]
    Fields { line: usize },
    /// A row's code, parent, level or kind is inconsistent.
    #[error("region list line {line}: {what}")]
    Row { line: usize, what: &'static str },
    /// A code appears twice.
    #[error("region list line {line}: duplicate code {code}")]
    Duplicate { line: usize, code: &'static str },
}

/// The parsed list, keyed by code.
#[derive(Debug)]
struct Table {
    provinces: BTreeMap<&'static str, Region>,
    districts: BTreeMap<&'static str, Region>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    // The file is part of the source tree and `the_embedded_list_parses_strictly`
    // checks it, so a failure here is a build defect, not a runtime condition.
    parse(CSV).expect("embedded region list is well formed (checked by tests)")
});

fn two_digits(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse(csv: &'static str) -> Result<Table, RegionsError> {
    let mut lines = csv.lines().map(|l| l.trim_end_matches('\r'));
    let header = lines.next().unwrap_or_default();
    if header != HEADER {
        return Err(RegionsError::Header {
            found: header.to_owned(),
        });
    }
    let mut table = Table {
        provinces: BTreeMap::new(),
        districts: BTreeMap::new(),
    };
    for (i, row) in lines.enumerate() {
        let line = i + 2;
        if row.is_empty() {
            continue;
        }
        let fields: Vec<&'static str> = row.split(',').collect();
        let [code, parent, level, kind, name] = fields[..] else {
            return Err(RegionsError::Fields { line });
        };
        let bad = |what| RegionsError::Row { line, what };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let (region, map) = match (level, kind) {
            ("provinsi", "provinsi") => {
                if !two_digits(code) || code == "00" || !parent.is_empty() {
                    return Err(bad("province code must be NN with no parent"));
                }
                let region = Region {
                    code,
                    parent: None,
                    kind: RegionKind::Provinsi,
                    name,
                };
                (region, &mut table.provinces)
            }
            ("kabkota", "kabupaten" | "kota") => {
                let Some((p, k)) = code.split_once('.') else {
                    return Err(bad("kabupaten/kota code must be NN.NN"));
                };
                if !two_digits(p) || !two_digits(k) || p != parent {
                    return Err(bad("kabupaten/kota code must be NN.NN under its parent"));
                }
                if !table.provinces.contains_key(parent) {
                    return Err(bad("parent province is not listed before it"));
                }
                let kind = if kind == "kota" {
                    RegionKind::Kota
                } else {
                    RegionKind::Kabupaten
                };
                let region = Region {
                    code,
                    parent: Some(parent),
                    kind,
                    name,
                };
                (region, &mut table.districts)
            }
            _ => return Err(bad("unknown tingkat/jenis")),
        };
        if map.insert(code, region).is_some() {
            return Err(RegionsError::Duplicate { line, code });
        }
    }
    Ok(table)
}

/// The province with this two-digit code (`"11"` = Aceh).
pub fn province(code: &str) -> Option<&'static Region> {
    TABLE.provinces.get(code)
}

/// The kabupaten/kota with this dotted code (`"11.13"` = Gayo Lues).
pub fn district(code: &str) -> Option<&'static Region> {
    TABLE.districts.get(code)
}

/// Every province, in code order.
pub fn provinces() -> impl Iterator<Item = &'static Region> {
    TABLE.provinces.values()
}

/// Every kabupaten/kota, in code order.
pub fn districts() -> impl Iterator<Item = &'static Region> {
    TABLE.districts.values()
}

/// The kabupaten/kota of a province, in code order; empty for an unknown
/// province.
pub fn districts_of(province: &str) -> impl Iterator<Item = &'static Region> {
    let province = province.to_owned();
    TABLE
        .districts
        .values()
        .filter(move |r| r.parent == Some(province.as_str()))
}

/// Whether a site code names a site that can exist: national `00` always; a
/// province or a kabupaten/kota only when it is in the list.
pub fn is_known_site(site: &SiteCode) -> bool {
    match site.role() {
        SiteRole::National => true,
        SiteRole::Province => province(site.as_str()).is_some(),
        SiteRole::Node => district(site.as_str()).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_list_parses_strictly() {
        parse(CSV).unwrap();
    }

    #[test]
    fn the_list_has_38_provinces_and_514_kabupaten_kota() {
        assert_eq!(provinces().count(), 38);
        assert_eq!(districts().count(), 514);
        assert_eq!(
            districts()
                .filter(|r| r.kind == RegionKind::Kabupaten)
                .count(),
            416
        );
        assert_eq!(
            districts().filter(|r| r.kind == RegionKind::Kota).count(),
            98
        );
    }

    #[test]
    fn gayo_lues_is_11_13_in_aceh() {
        let gayo = district("11.13").unwrap();
        assert_eq!(gayo.name, "Kabupaten Gayo Lues");
        assert_eq!(gayo.kind, RegionKind::Kabupaten);
        assert_eq!(gayo.parent, Some("11"));
        assert_eq!(province("11").unwrap().name, "Aceh");
        assert_eq!(district("11.71").unwrap().kind, RegionKind::Kota);
    }

    #[test]
    fn aceh_has_23_kabupaten_kota() {
        let codes: Vec<&str> = districts_of("11").map(|r| r.code).collect();
        assert_eq!(codes.len(), 23);
        assert_eq!(codes.first(), Some(&"11.01"));
        assert_eq!(codes.last(), Some(&"11.75"));
        assert_eq!(districts_of("10").count(), 0);
    }

    #[test]
    fn codes_stay_text_so_11_1_does_not_exist_but_11_10_does() {
        assert!(district("11.1").is_none());
        assert_eq!(district("11.10").unwrap().name, "Kabupaten Aceh Singkil");
        assert!(province("1").is_none());
        assert!(district("1110").is_none());
    }

    #[test]
    fn papua_split_of_2022_is_current() {
        // Merauke moved from 91.01 to 93.01 when Papua Selatan was created.
        assert_eq!(district("93.01").unwrap().name, "Kabupaten Merauke");
        assert!(province("96").is_some());
    }

    #[test]
    fn known_sites_are_national_and_listed_codes_only() {
        let site = |s: &str| SiteCode::parse(s).unwrap();
        assert!(is_known_site(&site("00")));
        assert!(is_known_site(&site("11")));
        assert!(is_known_site(&site("11.13")));
        assert!(!is_known_site(&site("10")));
        assert!(!is_known_site(&site("11.99")));
        assert!(!is_known_site(&site("99.01")));
    }

    #[test]
    fn malformed_lists_are_refused() {
        let header = "kode,kode_induk,tingkat,jenis,nama\n";
        assert!(matches!(
            parse("kode,nama\n"),
            Err(RegionsError::Header { .. })
        ));
        let cases: [&'static str; 4] = [
            "11,,provinsi,provinsi,Aceh\n11.1,11,kabkota,kabupaten,X\n",
            "11.01,11,kabkota,kabupaten,X\n",
            "11,,provinsi,provinsi,Aceh\n11,,provinsi,provinsi,Aceh\n",
            "11,,provinsi,provinsi\n",
        ];
        for body in cases {
            let csv: &'static str = format!("{header}{body}").leak();
            assert!(parse(csv).is_err(), "{body:?} accepted");
        }
    }
}
