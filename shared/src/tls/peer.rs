//! What a verified peer certificate says: which site or operator it names,
//! with which role, its serial (for the deny-list) and its expiry.
//!
//! Only call this on a certificate rustls has already verified against the
//! CA; parsing proves nothing by itself.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::{OPERATOR_URI_PREFIX, SITE_URI_PREFIX};
use crate::domain::SiteCode;
use crate::rpc::caller::CallerRole;

/// Whom a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A site (node or hub): `lapor://site/CODE`.
    Site(SiteCode),
    /// A person or tool: `lapor://operator/NAME`, role in OU.
    Operator { name: String, role: CallerRole },
}

impl Subject {
    /// The certificate CN and the name in logs and the deny-list.
    pub fn name(&self) -> &str {
        match self {
            Subject::Site(site) => site.as_str(),
            Subject::Operator { name, .. } => name,
        }
    }

    /// The role carried in OU.
    pub fn role(&self) -> CallerRole {
        match self {
            Subject::Site(_) => CallerRole::Site,
            Subject::Operator { role, .. } => *role,
        }
    }
}

/// A peer as its certificate describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub subject: Subject,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Why a certificate does not name a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("the certificate is not valid DER X.509")]
    Der,
    #[error("the certificate names no lapor:// site or operator")]
    NoSubject,
    #[error("the certificate names site {value:?}, which is not a site code")]
    BadSite { value: String },
    #[error("the certificate's role {value:?} is not site, operator or identity-reader")]
    BadRole { value: String },
}

/// Parses a role as written in OU.
pub fn parse_role(value: &str) -> Option<CallerRole> {
    match value {
        "site" => Some(CallerRole::Site),
        "operator" => Some(CallerRole::Operator),
        "identity-reader" => Some(CallerRole::IdentityReader),
        _ => None,
    }
}

impl PeerIdentity {
    /// Reads a DER certificate.
    ///
    /// # Errors
    /// See [`PeerError`].
    pub fn from_der(der: &[u8]) -> Result<PeerIdentity, PeerError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| PeerError::Der)?;
        let serial = hex(cert.raw_serial());
        let not_after = cert.validity().not_after.timestamp();
        let uris: Vec<&str> = cert
            .subject_alternative_name()
            .map_err(|_| PeerError::Der)?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::URI(uri) => Some(*uri),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let subject = if let Some(code) = uris.iter().find_map(|u| u.strip_prefix(SITE_URI_PREFIX))
        {
            Subject::Site(SiteCode::parse(code).map_err(|_| PeerError::BadSite {
                value: code.to_owned(),
            })?)
        } else if let Some(name) = uris
            .iter()
            .find_map(|u| u.strip_prefix(OPERATOR_URI_PREFIX))
        {
            let ou = cert
                .subject()
                .iter_organizational_unit()
                .next()
                .and_then(|a| a.as_str().ok())
                .unwrap_or("operator");
            let role = parse_role(ou).ok_or_else(|| PeerError::BadRole {
                value: ou.to_owned(),
            })?;
            if role == CallerRole::Site {
                return Err(PeerError::BadRole {
                    value: ou.to_owned(),
                });
            }
            Subject::Operator {
                name: name.to_owned(),
                role,
            }
        } else {
            return Err(PeerError::NoSubject);
        };
        Ok(PeerIdentity {
            subject,
            serial,
            not_after,
        })
    }
}

/// Lowercase hex without separators (how serials are written everywhere).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
