//! A hub's small certificate authority: `ca.pem` and `ca.key` (mode 0600)
//! in `<hub data dir>/ca/`, the log of issued certificates (`issued.jsonl`,
//! so `revoke --site` can find serials) and the deny-list (`revoked.json`).
//!
//! Certificates are short-lived (30 days by default) and renewed over the
//! link (the child sends only a new public key; its private key never
//! leaves it). Keys are ECDSA P-256.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::peer::{Subject, hex};
use super::revoked::{self, Revocation, RevokedError};
use super::{OPERATOR_URI_PREFIX, SITE_URI_PREFIX, site_dns_name};
use crate::domain::SiteCode;

/// Default lifetime of an issued certificate.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime of the CA certificate itself.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a little in the past, so a child whose clock is a
/// few minutes behind the hub's can use a fresh one.
const BACKDATE: Duration = Duration::from_secs(10 * 60);

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const ISSUED_FILE: &str = "issued.jsonl";
pub const REVOKED_FILE: &str = "revoked.json";

/// Why a CA operation failed. Every variant names the file or subject.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("a CA already exists in {dir} (refusing to overwrite its key)")]
    Exists { dir: PathBuf },
    #[error("no CA in {dir}: run `lapor-hub ca init` first")]
    Missing { dir: PathBuf },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation for {subject}")]
    Generate {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{value:?} is not valid in a certificate name")]
    Name { value: String },
    #[error("no issued certificate names {subject}")]
    UnknownSubject { subject: String },
    #[error(transparent)]
    Revoked(#[from] RevokedError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One line of `issued.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub serial: String,
    pub subject: String,
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
}

/// A freshly issued certificate (and its key, when the CA generated it).
#[derive(Debug)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8 PEM; `None` when the subject sent its own public key.
    pub key_pem: Option<zeroize::Zeroizing<String>>,
    pub serial: String,
    pub not_after: i64,
}

/// An open CA.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to a new file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

impl Ca {
    /// Creates the CA of hub `owner` in `dir` (created if needed).
    ///
    /// # Errors
    /// [`CaError::Exists`] when `dir` already holds a CA key.
    pub fn init(dir: &Path, owner: &SiteCode) -> Result<Ca, CaError> {
        let key_path = dir.join(CA_KEY_FILE);
        if key_path.exists() {
            return Err(CaError::Exists {
                dir: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let generate = |source| CaError::Generate {
            subject: format!("CA {owner}"),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("lapor-sync CA {owner}"));
        name.push(DnType::OrganizationName, "lapor-sync");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(generate)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        let cert_path = dir.join(CA_CERT_FILE);
        std::fs::write(&cert_path, cert.pem()).map_err(io_err(&cert_path))?;
        Ca::open(dir)
    }

    /// Opens the CA in `dir`.
    ///
    /// # Errors
    /// [`CaError::Missing`] when there is none.
    pub fn open(dir: &Path) -> Result<Ca, CaError> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        if !key_path.exists() {
            return Err(CaError::Missing {
                dir: dir.to_owned(),
            });
        }
        let key_pem =
            zeroize::Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let generate = |source| CaError::Generate {
            subject: format!("CA in {}", dir.display()),
            source,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(generate)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(generate)?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem,
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate and a new key for `subject`, valid from now for
    /// `validity` (or until `not_after` when given — the tests use a past
    /// one for an expired certificate).
    pub fn issue(
        &self,
        subject: &Subject,
        validity: Duration,
        not_after: Option<OffsetDateTime>,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate().map_err(|source| CaError::Generate {
            subject: subject.name().to_owned(),
            source,
        })?;
        let mut issued = self.sign(subject, &key, validity, not_after)?;
        issued.key_pem = Some(zeroize::Zeroizing::new(key.serialize_pem()));
        Ok(issued)
    }

    /// Signs a certificate for `subject` over a public key the subject sent
    /// (PEM SubjectPublicKeyInfo) — renewal, where the private key stays
    /// with the child.
    pub fn issue_for_key(
        &self,
        subject: &Subject,
        public_key_pem: &str,
        validity: Duration,
    ) -> Result<Issued, CaError> {
        let key =
            SubjectPublicKeyInfo::from_pem(public_key_pem).map_err(|source| CaError::Generate {
                subject: subject.name().to_owned(),
                source,
            })?;
        self.sign(subject, &key, validity, None)
    }

    fn sign(
        &self,
        subject: &Subject,
        key: &impl PublicKeyData,
        validity: Duration,
        not_after: Option<OffsetDateTime>,
    ) -> Result<Issued, CaError> {
        let params = leaf_params(subject, validity, not_after)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex(&s.to_bytes()))
            .unwrap_or_default();
        let expiry = params.not_after.unix_timestamp();
        let cert = params
            .signed_by(key, &self.issuer)
            .map_err(|source| CaError::Generate {
                subject: subject.name().to_owned(),
                source,
            })?;
        self.record(&IssuedRecord {
            serial: serial.clone(),
            subject: subject.name().to_owned(),
            role: subject.role().as_str().to_owned(),
            not_after: expiry,
        })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: None,
            serial,
            not_after: expiry,
        })
    }

    fn record(&self, record: &IssuedRecord) -> Result<(), CaError> {
        let path = self.dir.join(ISSUED_FILE);
        let mut line =
            serde_json::to_string(record).map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(line.as_bytes()).map_err(io_err(&path))
    }

    /// Every certificate this CA issued.
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, CaError> {
        let path = self.dir.join(ISSUED_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The deny-list file the hub's server reads.
    pub fn revoked_path(&self) -> PathBuf {
        self.dir.join(REVOKED_FILE)
    }

    /// Puts `serial` on the deny-list.
    pub fn revoke_serial(&self, serial: &str, subject: &str) -> Result<(), CaError> {
        let path = self.revoked_path();
        let mut list = revoked::read(&path)?;
        list.insert(
            serial.to_ascii_lowercase().replace(':', ""),
            Revocation {
                subject: subject.to_owned(),
                revoked_at: chrono::Utc::now().to_rfc3339(),
            },
        );
        revoked::write(&path, &list)?;
        Ok(())
    }

    /// Revokes every certificate issued to `subject`; returns their serials.
    pub fn revoke_subject(&self, subject: &str) -> Result<Vec<String>, CaError> {
        let serials: Vec<String> = self
            .issued()?
            .into_iter()
            .filter(|r| r.subject == subject)
            .map(|r| r.serial)
            .collect();
        if serials.is_empty() {
            return Err(CaError::UnknownSubject {
                subject: subject.to_owned(),
            });
        }
        for serial in &serials {
            self.revoke_serial(serial, subject)?;
        }
        Ok(serials)
    }
}

fn ia5(value: String) -> Result<rcgen::string::Ia5String, CaError> {
    rcgen::string::Ia5String::try_from(value.clone()).map_err(|_| CaError::Name { value })
}

fn leaf_params(
    subject: &Subject,
    validity: Duration,
    not_after: Option<OffsetDateTime>,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, subject.name());
    name.push(DnType::OrganizationalUnitName, subject.role().as_str());
    name.push(DnType::OrganizationName, "lapor-sync");
    params.distinguished_name = name;
    params.subject_alt_names = match subject {
        Subject::Site(site) => vec![
            SanType::URI(ia5(format!("{SITE_URI_PREFIX}{site}"))?),
            SanType::DnsName(ia5(site_dns_name(site))?),
        ],
        Subject::Operator { name, .. } => {
            vec![SanType::URI(ia5(format!("{OPERATOR_URI_PREFIX}{name}"))?)]
        }
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_after = not_after.unwrap_or(now + validity);
    params.not_before = (now - BACKDATE).min(params.not_after - BACKDATE);
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// 16 random bytes, high bit clear (a positive DER integer).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::caller::CallerRole;
    use crate::tls::peer::PeerIdentity;

    fn der(pem: &str) -> Vec<u8> {
        let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        parsed.contents
    }

    #[test]
    fn an_issued_site_certificate_names_the_site_and_its_serial_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let ca = Ca::init(&ca_dir, &SiteCode::parse("11").unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(ca_dir.join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let site = SiteCode::parse("11.13").unwrap();
        let issued = ca
            .issue(&Subject::Site(site.clone()), DEFAULT_VALIDITY, None)
            .unwrap();
        let peer = PeerIdentity::from_der(&der(&issued.cert_pem)).unwrap();
        assert_eq!(peer.subject, Subject::Site(site));
        assert_eq!(peer.serial, issued.serial);
        let in_30_days = OffsetDateTime::now_utc().unix_timestamp() + 30 * 24 * 3600;
        assert!((peer.not_after - in_30_days).abs() < 60);
        assert!(issued.key_pem.is_some());
        assert!(matches!(
            Ca::init(&ca_dir, &SiteCode::parse("11").unwrap()),
            Err(CaError::Exists { .. })
        ));
    }

    #[test]
    fn an_operator_certificate_carries_its_role_and_renewal_signs_the_sent_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), &SiteCode::parse("00").unwrap()).unwrap();
        let subject = Subject::Operator {
            name: "admin.aceh".into(),
            role: CallerRole::IdentityReader,
        };
        let issued = ca.issue(&subject, DEFAULT_VALIDITY, None).unwrap();
        let peer = PeerIdentity::from_der(&der(&issued.cert_pem)).unwrap();
        assert_eq!(peer.subject, subject);
        let own = KeyPair::generate().unwrap();
        let renewed = ca
            .issue_for_key(&subject, &own.public_key_pem(), DEFAULT_VALIDITY)
            .unwrap();
        assert!(renewed.key_pem.is_none());
        let renewed_der = der(&renewed.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&renewed_der).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            own.public_key_raw()
        );
    }

    #[test]
    fn revoking_a_site_lists_every_serial_it_was_issued() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), &SiteCode::parse("11").unwrap()).unwrap();
        let site = Subject::Site(SiteCode::parse("11.13").unwrap());
        let a = ca.issue(&site, DEFAULT_VALIDITY, None).unwrap();
        let b = ca.issue(&site, DEFAULT_VALIDITY, None).unwrap();
        let revoked = ca.revoke_subject("11.13").unwrap();
        assert_eq!(revoked, vec![a.serial.clone(), b.serial.clone()]);
        let list = revoked::read(&ca.revoked_path()).unwrap();
        assert!(list.contains_key(&a.serial) && list.contains_key(&b.serial));
        assert!(matches!(
            ca.revoke_subject("11.14"),
            Err(CaError::UnknownSubject { .. })
        ));
    }
}
