//! Domain types: identifiers, the complaint as captured, lifecycle events.
//!
//! No protobuf and no SQL here. Values of these types have been validated at
//! the edge (`crate::proto::convert`), so code that holds one may rely on its
//! invariants (a `SiteCode` is well formed, an `Event` has a body, ...).

use std::fmt;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::hlc::Hlc;

/// The site code of the national tier.
pub const NATIONAL_SITE: &str = "00";

/// Which tier a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SiteRole {
    /// A district (kabupaten/kota) node: `NN.NN`.
    Node,
    /// A provincial hub: `NN`.
    Province,
    /// The national hub: `00`.
    National,
}

impl fmt::Display for SiteRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteRole::Node => "node",
            SiteRole::Province => "province",
            SiteRole::National => "national",
        })
    }
}

/// A site in the federation, named by its Kemendagri code: `"11.13"` for the
/// Gayo Lues node, `"11"` for the Aceh hub, `"00"` for national.
///
/// Only the shape is checked by [`SiteCode::parse`]; whether the code exists
/// in the region list is checked by `crate::regions`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteCode(String);

/// Why a code or identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not `00`, `NN` or `NN.NN` (digits only).
    #[error("site code {0:?} is not of the form 00, NN or NN.NN")]
    SiteShape(String),
    /// Not a dotted Kemendagri region code (`NN.NN[.NN[.NNNN]]`).
    #[error("region code {0:?} is not of the form NN.NN, NN.NN.NN or NN.NN.NN.NNNN")]
    RegionShape(String),
    /// Not a UUID.
    #[error("{0:?} is not a UUID")]
    Uuid(String),
}

fn all_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

impl SiteCode {
    /// Parses `00`, `NN` or `NN.NN`.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let ok = match s.split_once('.') {
            None => all_digits(s, 2),
            Some((p, k)) => all_digits(p, 2) && all_digits(k, 2) && p != "00",
        };
        if ok {
            Ok(SiteCode(s.to_owned()))
        } else {
            Err(CodeError::SiteShape(s.to_owned()))
        }
    }

    /// The national site, `00`.
    pub fn national() -> Self {
        SiteCode(NATIONAL_SITE.to_owned())
    }

    /// The tier this code names.
    pub fn role(&self) -> SiteRole {
        if self.0 == NATIONAL_SITE {
            SiteRole::National
        } else if self.0.contains('.') {
            SiteRole::Node
        } else {
            SiteRole::Province
        }
    }

    /// The two-digit province code, `None` for national.
    pub fn province(&self) -> Option<&str> {
        match self.role() {
            SiteRole::National => None,
            _ => Some(&self.0[..2]),
        }
    }

    /// Whether events of complaints of `district` belong to this site's
    /// scope: a node its own district, a province its districts, national all.
    pub fn covers(&self, district: &SiteCode) -> bool {
        match self.role() {
            SiteRole::National => true,
            SiteRole::Province => district.province() == self.province(),
            SiteRole::Node => self == district,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dotted Kemendagri region code at kab/kota level or deeper:
/// `11.13`, `11.13.01`, `11.13.01.2001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(String);

impl RegionCode {
    /// Checks the shape only (see `crate::regions` for existence).
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let parts: Vec<&str> = s.split('.').collect();
        let widths = [2usize, 2, 2, 4];
        let ok = (2..=4).contains(&parts.len())
            && parts.iter().zip(widths).all(|(p, w)| all_digits(p, w));
        if ok {
            Ok(RegionCode(s.to_owned()))
        } else {
            Err(CodeError::RegionShape(s.to_owned()))
        }
    }

    /// The kabupaten/kota this region lies in (`11.13.01` -> `11.13`).
    pub fn district(&self) -> SiteCode {
        SiteCode(self.0[..5].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh UUIDv7 (time-ordered).
            pub fn new_v7() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn parse(s: &str) -> Result<Self, CodeError> {
                Uuid::parse_str(s).map($name).map_err(|_| CodeError::Uuid(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_newtype!(
    /// Identity of a complaint, minted by the node that received it.
    ComplaintId
);
uuid_newtype!(
    /// Identity of an event, minted where the event was written.
    EventId
);

/// A site-local position in the event log (the rowid). Cursors between sites
/// are `Seq`s of the sending site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The human tracking number of a complaint, e.g. `1113-K7Q-000042`:
/// district, the minting node's instance tag, a per-instance counter. Two
/// nodes (even of one district) never mint the same number because their
/// instance tags differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackingNumber(pub String);

impl fmt::Display for TrackingNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// LAPOR's classification of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    Pengaduan,
    Aspirasi,
    PermintaanInformasi,
}

/// How the complaint reached the office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    WalkIn,
    Letter,
    Sms1708,
    Phone,
    Web,
    LocalApp,
}

/// Where the incident happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub region: RegionCode,
    pub description: String,
    /// Latitude and longitude in degrees, when known.
    pub coordinates: Option<(f64, f64)>,
}

/// Privacy flags; they only tighten (see [`Privacy::tighten`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Privacy {
    /// The reporter's name is never published.
    pub anonymous: bool,
    /// The report is never shown to the public.
    pub secret: bool,
}

impl Privacy {
    /// The union of two flag sets: what was set stays set.
    pub fn tighten(self, other: Privacy) -> Privacy {
        Privacy {
            anonymous: self.anonymous || other.anonymous,
            secret: self.secret || other.secret,
        }
    }
}

/// A 16-digit Nomor Induk Kependudukan, structurally valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nik(pub String);

impl fmt::Debug for Nik {
    // Personal data: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nik(<redacted>)")
    }
}

/// Who reported. Personal data under UU 27/2022.
#[derive(Clone, PartialEq, Default)]
pub struct Reporter {
    pub name: String,
    pub nik: Option<Nik>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl fmt::Debug for Reporter {
    // Personal data: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter(<redacted>)")
    }
}

/// What is recorded when a complaint is received.
#[derive(Debug, Clone, PartialEq)]
pub struct Intake {
    pub classification: Classification,
    pub channel: Channel,
    pub category: String,
    pub title: String,
    pub body: String,
    pub location: Location,
    pub incident_date: Option<NaiveDate>,
    pub privacy: Privacy,
    /// Who reported. Where it may be `Some`:
    /// - in a *submission* at the district node, for any complaint: for an
    ///   anonymous one the identity is recorded at that node only (the store
    ///   keeps it out of every event, so it never leaves the node);
    /// - in a `Created` *event*, only when not anonymous; even then it may be
    ///   `None` when the sending site withheld it (the complaint became
    ///   anonymous before the event was sent, see `crate::store`).
    pub reporter: Option<Reporter>,
}

/// LAPOR's status vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    BelumTerverifikasi,
    Terverifikasi,
    DalamProses,
    Selesai,
    Ditolak,
    Diarsipkan,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::BelumTerverifikasi,
        Status::Terverifikasi,
        Status::DalamProses,
        Status::Selesai,
        Status::Ditolak,
        Status::Diarsipkan,
    ];

    /// The name LAPOR shows.
    pub fn label(self) -> &'static str {
        match self {
            Status::BelumTerverifikasi => "Belum Terverifikasi",
            Status::Terverifikasi => "Terverifikasi",
            Status::DalamProses => "Dalam Proses",
            Status::Selesai => "Selesai",
            Status::Ditolak => "Ditolak",
            Status::Diarsipkan => "Diarsipkan",
        }
    }

    /// Stable small integer used in the store (never reorder).
    pub fn code(self) -> i64 {
        match self {
            Status::BelumTerverifikasi => 1,
            Status::Terverifikasi => 2,
            Status::DalamProses => 3,
            Status::Selesai => 4,
            Status::Ditolak => 5,
            Status::Diarsipkan => 6,
        }
    }

    pub fn from_code(code: i64) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Created {
        tracking_number: TrackingNumber,
        intake: Box<Intake>,
    },
    Verified {
        note: String,
        privacy: Privacy,
    },
    Rejected {
        reason: String,
    },
    Dispositioned {
        from_institution: String,
        to_institution: String,
        note: String,
    },
    Responded {
        institution: String,
        body: String,
    },
    ReporterReplied {
        body: String,
    },
    Commented {
        body: String,
    },
    Closed {
        reason: String,
    },
    Archived {
        reason: String,
    },
    Reopened {
        reason: String,
    },
    PrivacyTightened {
        privacy: Privacy,
    },
}

impl EventBody {
    /// Short stable name, for logs, the store's `kind` column and operators.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Created { .. } => "created",
            EventBody::Verified { .. } => "verified",
            EventBody::Rejected { .. } => "rejected",
            EventBody::Dispositioned { .. } => "dispositioned",
            EventBody::Responded { .. } => "responded",
            EventBody::ReporterReplied { .. } => "reporter_replied",
            EventBody::Commented { .. } => "commented",
            EventBody::Closed { .. } => "closed",
            EventBody::Archived { .. } => "archived",
            EventBody::Reopened { .. } => "reopened",
            EventBody::PrivacyTightened { .. } => "privacy_tightened",
        }
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub complaint_id: ComplaintId,
    /// The site that wrote it.
    pub origin: SiteCode,
    pub hlc: Hlc,
    /// Operator account or system name.
    pub actor: String,
    /// District of the complaint (for routing and authorization).
    pub district: SiteCode,
    pub body: EventBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_codes_parse_by_shape_and_know_their_role() {
        assert_eq!(SiteCode::parse("00").unwrap().role(), SiteRole::National);
        assert_eq!(SiteCode::parse("11").unwrap().role(), SiteRole::Province);
        assert_eq!(SiteCode::parse("11.13").unwrap().role(), SiteRole::Node);
        for bad in [
            "", "1", "111", "11.1", "11.130", "aa", "11.13.01", "00.01", "11-13",
        ] {
            assert!(SiteCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_site_covers_exactly_its_own_scope() {
        let gayo = SiteCode::parse("11.13").unwrap();
        let banda = SiteCode::parse("11.71").unwrap();
        let medan = SiteCode::parse("12.71").unwrap();
        let aceh = SiteCode::parse("11").unwrap();
        assert!(gayo.covers(&gayo));
        assert!(!gayo.covers(&banda));
        assert!(aceh.covers(&gayo) && aceh.covers(&banda));
        assert!(!aceh.covers(&medan));
        assert!(SiteCode::national().covers(&medan));
    }

    #[test]
    fn region_codes_parse_down_to_desa_and_know_their_district() {
        let r = RegionCode::parse("11.13.01.2001").unwrap();
        assert_eq!(r.district().as_str(), "11.13");
        assert!(RegionCode::parse("11.13.01").is_ok());
        for bad in ["11", "11.13.1", "11.13.01.201", "11.13.01.2001.1", "11.1"] {
            assert!(RegionCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn privacy_only_tightens() {
        let set = Privacy {
            anonymous: true,
            secret: false,
        };
        let clear = Privacy::default();
        assert_eq!(set.tighten(clear), set);
        assert_eq!(clear.tighten(set), set);
    }

    #[test]
    fn status_codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
    }
}
