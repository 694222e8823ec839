//! Certificate renewal over the link a child already has.
//!
//! Certificates are short-lived (30 days). When less than a third of its
//! certificate's life is left (at most 10 days), a child — a district node,
//! or a province towards national — generates a new key pair, sends the
//! public key to its parent's `Certificates.Renew` over its current
//! mutual-TLS connection, and installs the certificate it gets back beside
//! the new key. The parent issues for the site its *connection's*
//! certificate names, never a site a message names, and records the serial
//! in its issued log, so `lapor-hub ca revoke --site` finds it.
//!
//! Installing is crash-safe: both files are written complete under
//! `*.next` names first, then renamed key first, cert second; a crash
//! between the two renames is completed by [`recover`], which the link runs
//! before it loads the bundle. A child that misses the window (offline past
//! expiry) is refused by the TLS handshake and told how to get back in
//! (`link::BundleError::Expired`): a new bundle from `lapor-hub ca issue`.
//!
//! Signing costs the parent CPU and a log row, so `Renew` is rate-limited
//! per child (the site of the connection's certificate), in buckets of its
//! own ([`RateLimit::RENEWAL`], hub `[limits] child_renewals_per_hour`). A
//! child told `RESOURCE_EXHAUSTED` asks again only after the
//! `google.rpc.RetryInfo` delay ([`RenewError::Later`]); its link goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{KeyPair, PublicKeyData as _};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::ca::{self, Ca, CaError};
use super::link::{PeerAuth, first_cert_der, peer_auth};
use super::peer::{PeerIdentity, Subject};
use crate::domain::SiteCode;
use crate::proto::v1::certificates_client::CertificatesClient;
use crate::proto::v1::certificates_server::Certificates;
use crate::proto::v1::{RenewRequest, RenewResponse};
use crate::replication::limit::{self, ChildBuckets, RateLimit};
use crate::replication::scope;
use crate::site::config::TlsFiles;

/// Renew at the latest this long before expiry.
const RENEW_AHEAD_MAX: i64 = 10 * 24 * 3600;
/// A public key in PEM is a few hundred bytes; anything far larger is not one.
pub const MAX_PUBLIC_KEY_PEM: usize = 4096;
/// How long the child waits for its parent to sign.
const RENEW_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the child waits after `RESOURCE_EXHAUSTED` without a usable
/// `RetryInfo`, and the most any `RetryInfo` can make it wait (a renewal
/// window is days long; a parent's answer must not use it up).
const LATER_DEFAULT: Duration = Duration::from_secs(3600);
const LATER_MAX: Duration = Duration::from_secs(6 * 3600);

/// Why renewal did not happen. The link goes on with the current
/// certificate either way; the next connection tries again.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("install {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no readable certificate")]
    Cert { path: PathBuf },
    #[error("generate a key pair")]
    Key(#[source] rcgen::Error),
    #[error("the parent refused to renew: {0}")]
    Refused(#[source] Box<Status>),
    /// The parent's renewal limit (`RESOURCE_EXHAUSTED`): not a failure,
    /// the child asks again after `retry_in` and not before.
    #[error("the parent asked to renew later (its renewal rate limit); next try in {} s", retry_in.as_secs())]
    Later { retry_in: Duration },
    #[error(
        "the parent returned a certificate for {got}, not for {expected}, or not for our new key"
    )]
    WrongCertificate { expected: String, got: String },
    #[error("write the new key")]
    Private(#[source] CaError),
}

impl RenewError {
    /// Whether this only means "not now": the parent's rate limit.
    pub fn is_try_later(&self) -> bool {
        matches!(self, RenewError::Later { .. })
    }
}

/// When each certificate (by path) may ask its parent again after a
/// `RESOURCE_EXHAUSTED`: process-wide, like the renewal itself, so the
/// session start and the hourly check both honour it.
static NOT_BEFORE: Mutex<BTreeMap<PathBuf, Instant>> = Mutex::new(BTreeMap::new());

fn not_before() -> std::sync::MutexGuard<'static, BTreeMap<PathBuf, Instant>> {
    // Held for one map operation; a poisoned map is still consistent.
    NOT_BEFORE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the parent asked the certificate in `files` to wait before it
/// renews again, if it is still waiting at `now`.
pub fn deferred(files: &TlsFiles, now: Instant) -> Option<Duration> {
    let mut map = not_before();
    match map.get(&files.cert) {
        Some(&until) if until > now => Some(until - now),
        Some(_) => {
            map.remove(&files.cert);
            None
        }
        None => None,
    }
}

/// Records the parent's `RESOURCE_EXHAUSTED`: the wait it asked for in
/// `RetryInfo` (or [`LATER_DEFAULT`]), at most [`LATER_MAX`].
fn defer(files: &TlsFiles, status: &Status, now: Instant) -> RenewError {
    let retry_in = limit::retry_delay(status)
        .unwrap_or(LATER_DEFAULT)
        .min(LATER_MAX);
    not_before().insert(files.cert.clone(), now + retry_in);
    RenewError::Later { retry_in }
}

/// What a renewal installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub serial: String,
    pub not_after: i64,
}

/// What renewal needs of a certificate, from one parse of it.
struct CertFacts {
    peer: PeerIdentity,
    not_before: i64,
    /// SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
}

/// Parses the first certificate in `pem` (read from, or meant for, `path`).
fn facts(pem: &str, path: &Path) -> Result<CertFacts, RenewError> {
    let bad = || RenewError::Cert {
        path: path.to_owned(),
    };
    let der = first_cert_der(pem, path).map_err(|_| bad())?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|_| bad())?;
    Ok(CertFacts {
        peer: PeerIdentity::from_der(&der).map_err(|_| bad())?,
        not_before: cert.validity().not_before.timestamp(),
        spki: cert.public_key().raw.to_vec(),
    })
}

/// `(not_before, not_after)` of the first certificate in `pem`.
pub fn validity(pem: &str, path: &Path) -> Result<(i64, i64), RenewError> {
    let f = facts(pem, path)?;
    Ok((f.not_before, f.peer.not_after))
}

/// Whether a certificate valid from `not_before` to `not_after` is due for
/// renewal at `now`: less than a third of its life (and at most
/// [`RENEW_AHEAD_MAX`]) left. An expired one is due too (the parent will
/// refuse the handshake, but that is the parent's to say).
pub fn due(not_before: i64, not_after: i64, now: i64) -> bool {
    let life = (not_after - not_before).max(0);
    let ahead = (life / 3).min(RENEW_AHEAD_MAX);
    not_after - now < ahead
}

fn next_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> Result<(), RenewError> {
    std::fs::rename(from, to).map_err(|source| RenewError::Write {
        path: to.to_owned(),
        source,
    })
}

/// Makes the directory entries of a rename durable.
fn sync_dir(file: &Path) -> Result<(), RenewError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| RenewError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `bytes` completely to `<path>.next` (through a temporary name,
/// so a `.next` file is always whole).
fn stage(path: &Path, bytes: &[u8], private: bool) -> Result<(), RenewError> {
    let tmp = tmp_path(path);
    if private {
        ca::write_private(&tmp, bytes).map_err(RenewError::Private)?;
    } else {
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .map_err(|source| RenewError::Write {
                path: tmp.clone(),
                source,
            })?;
    }
    rename(&tmp, &next_path(path))
}

/// Installs a new certificate and its key in place of the bundle's.
///
/// # Errors
/// A file could not be written or renamed (the old pair stays in use, or
/// [`recover`] completes the switch).
pub fn install(files: &TlsFiles, cert_pem: &str, key_pem: &str) -> Result<(), RenewError> {
    stage(&files.key, key_pem.as_bytes(), true)?;
    stage(&files.cert, cert_pem.as_bytes(), false)?;
    rename(&next_path(&files.key), &files.key)?;
    rename(&next_path(&files.cert), &files.cert)?;
    sync_dir(&files.cert)
}

/// Completes or discards an installation a crash interrupted, so the
/// certificate and key on disk always belong together.
///
/// # Errors
/// A rename failed.
pub fn recover(files: &TlsFiles) -> Result<(), RenewError> {
    let cert_next = next_path(&files.cert);
    let key_next = next_path(&files.key);
    if cert_next.exists() {
        // Both were staged whole: finish the switch (the key may already
        // have been renamed).
        if key_next.exists() {
            rename(&key_next, &files.key)?;
        }
        rename(&cert_next, &files.cert)?;
        tracing::warn!(cert = %files.cert.display(), "completed a certificate renewal interrupted by a crash");
        return sync_dir(&files.cert);
    }
    // Staging never finished: the old pair is intact.
    for stray in [key_next, tmp_path(&files.key), tmp_path(&files.cert)] {
        if stray.exists() {
            std::fs::remove_file(&stray).map_err(|source| RenewError::Write {
                path: stray.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Renews this site's certificate over `channel` (a mutual-TLS connection
/// to its parent, made with the bundle in `files`) if it is due.
///
/// # Errors
/// See [`RenewError`]; the current certificate stays installed.
pub async fn renew_if_due(
    channel: Channel,
    files: &TlsFiles,
    now: i64,
) -> Result<Option<Renewed>, RenewError> {
    // One renewal at a time in this process (the session start and the
    // hourly check may meet); the second then finds the new certificate.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let cert_pem = std::fs::read_to_string(&files.cert).map_err(|source| RenewError::Read {
        path: files.cert.clone(),
        source,
    })?;
    let own = facts(&cert_pem, &files.cert)?;
    if !due(own.not_before, own.peer.not_after, now) {
        return Ok(None);
    }
    if let Some(retry_in) = deferred(files, Instant::now()) {
        return Err(RenewError::Later { retry_in });
    }
    let key = KeyPair::generate().map_err(RenewError::Key)?;
    let mut request = Request::new(RenewRequest {
        public_key_pem: key.public_key_pem(),
    });
    request.set_timeout(RENEW_TIMEOUT);
    let response = match CertificatesClient::new(channel).renew(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
            return Err(defer(files, &status, Instant::now()));
        }
        Err(status) => return Err(RenewError::Refused(Box::new(status))),
    };
    // Install only what names us and holds our new key.
    let new = facts(&response.certificate_pem, &files.cert)?;
    if new.peer.subject != own.peer.subject || new.spki != key.subject_public_key_info() {
        return Err(RenewError::WrongCertificate {
            expected: own.peer.subject.name().to_owned(),
            got: new.peer.subject.name().to_owned(),
        });
    }
    install(files, &response.certificate_pem, &key.serialize_pem())?;
    Ok(Some(Renewed {
        serial: new.peer.serial,
        not_after: new.peer.not_after,
    }))
}

/// `Certificates` at a hub with a CA: renews its children's certificates.
#[derive(Debug, Clone)]
pub struct CertificatesService {
    ca_dir: PathBuf,
    site: SiteCode,
    validity: Duration,
    /// One bucket per child site, apart from the replication buckets.
    rate: Arc<ChildBuckets>,
}

impl CertificatesService {
    /// Signs with the CA in `ca_dir` (opened per request, so `ca init`'s
    /// files are read as they are now) for children of `site`, each child
    /// at most at `rate` ([`RateLimit::RENEWAL`] unless configured).
    pub fn new(ca_dir: PathBuf, site: SiteCode, rate: RateLimit) -> CertificatesService {
        CertificatesService {
            ca_dir,
            site,
            validity: ca::DEFAULT_VALIDITY,
            rate: Arc::new(ChildBuckets::new(rate)),
        }
    }
}

#[tonic::async_trait]
impl Certificates for CertificatesService {
    async fn renew(&self, req: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        let peer = match peer_auth(req.extensions()) {
            PeerAuth::Certificate(peer) => peer,
            PeerAuth::InsecureLoopback | PeerAuth::Unauthenticated => {
                return Err(Status::failed_precondition(
                    "renewal needs a mutual-TLS link: the certificate renewed is the one the connection presents",
                ));
            }
        };
        let Subject::Site(child) = &peer.subject else {
            return Err(Status::permission_denied(
                "only sites renew over the link; an operator gets a new bundle from `lapor-hub ca issue --operator`",
            ));
        };
        // Before anything else costs: keyed by the certificate's site, so
        // the buckets are bounded by the certificates this CA issued.
        self.rate.admit(child.as_str(), 1.0)?;
        scope::check_child(&self.site, child)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        let pem = req.into_inner().public_key_pem;
        if pem.is_empty() || pem.len() > MAX_PUBLIC_KEY_PEM {
            return Err(Status::invalid_argument(format!(
                "public_key_pem: {} bytes, expected a PEM public key of at most {MAX_PUBLIC_KEY_PEM}",
                pem.len()
            )));
        }
        let (dir, subject, validity) = (self.ca_dir.clone(), peer.subject.clone(), self.validity);
        let issued = tokio::task::spawn_blocking(move || {
            Ca::open(&dir)?.issue_for_key(&subject, &pem, validity)
        })
        .await
        .map_err(|_| Status::internal("the signing task failed"))?
        .map_err(|e| match e {
            CaError::Generate { .. } => {
                Status::invalid_argument(format!("public_key_pem: not a usable public key ({e})"))
            }
            CaError::Missing { .. } => Status::failed_precondition(e.to_string()),
            other => {
                tracing::error!(error = %other, "certificate renewal failed");
                Status::internal("the CA could not sign")
            }
        })?;
        tracing::info!(site = %child, serial = %issued.serial, old_serial = %peer.serial, "certificate renewed over the link");
        Ok(Response::new(RenewResponse {
            certificate_pem: issued.cert_pem,
            serial: issued.serial,
            not_after_unix: issued.not_after,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DAY: i64 = 24 * 3600;

    #[test]
    fn a_thirty_day_certificate_is_renewed_in_its_last_ten_days() {
        let nb = 1_000_000;
        let na = nb + 30 * DAY;
        assert!(!due(nb, na, nb + DAY));
        assert!(!due(nb, na, na - 10 * DAY - 1));
        assert!(due(nb, na, na - 10 * DAY + 1));
        assert!(due(nb, na, na + 1), "an expired one is due too");
    }

    #[test]
    fn a_short_certificate_is_renewed_in_its_last_third() {
        let nb = 1_000_000;
        let na = nb + 3 * DAY;
        assert!(!due(nb, na, nb + DAY + 1));
        assert!(due(nb, na, na - DAY + 1));
    }

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("cert.key"),
        }
    }

    #[test]
    fn install_replaces_both_files_and_keeps_the_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        std::fs::write(&f.cert, "old cert").unwrap();
        std::fs::write(&f.key, "old key").unwrap();
        install(&f, "new cert", "new key").unwrap();
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), "new cert");
        assert_eq!(std::fs::read_to_string(&f.key).unwrap(), "new key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&f.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!next_path(&f.cert).exists() && !next_path(&f.key).exists());
    }

    #[test]
    fn recover_finishes_a_switch_cut_between_the_two_renames() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        std::fs::write(&f.cert, "old cert").unwrap();
        // The key was renamed, the certificate was still staged.
        std::fs::write(&f.key, "new key").unwrap();
        std::fs::write(next_path(&f.cert), "new cert").unwrap();
        recover(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), "new cert");
        assert_eq!(std::fs::read_to_string(&f.key).unwrap(), "new key");
    }

    #[test]
    fn recover_finishes_a_switch_staged_whole_but_not_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        std::fs::write(&f.cert, "old cert").unwrap();
        std::fs::write(&f.key, "old key").unwrap();
        std::fs::write(next_path(&f.key), "new key").unwrap();
        std::fs::write(next_path(&f.cert), "new cert").unwrap();
        recover(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), "new cert");
        assert_eq!(std::fs::read_to_string(&f.key).unwrap(), "new key");
    }

    fn request_from(subject: Option<Subject>, pem: &str) -> Request<RenewRequest> {
        let mut req = Request::new(RenewRequest {
            public_key_pem: pem.to_owned(),
        });
        if let Some(subject) = subject {
            req.extensions_mut().insert(PeerIdentity {
                subject,
                serial: "01".into(),
                not_after: 0,
            });
        }
        req
    }

    fn site(code: &str) -> Subject {
        Subject::Site(SiteCode::parse(code).unwrap())
    }

    #[tokio::test]
    async fn a_child_gets_a_certificate_for_its_own_site_and_new_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let aceh = SiteCode::parse("11").unwrap();
        Ca::init(dir.path(), &aceh).unwrap();
        let service = CertificatesService::new(dir.path().to_owned(), aceh, RateLimit::default());
        let key = KeyPair::generate().unwrap();
        let pem = key.public_key_pem();

        let renewed = service
            .renew(request_from(Some(site("11.13")), &pem))
            .await
            .unwrap()
            .into_inner();
        let der = first_cert_der(&renewed.certificate_pem, Path::new("reply")).unwrap();
        let peer = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(peer.subject, site("11.13"));
        assert_eq!(peer.serial, renewed.serial);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            parsed.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
        let issued = Ca::open(dir.path()).unwrap().issued().unwrap();
        assert!(
            issued
                .iter()
                .any(|r| r.serial == renewed.serial && r.subject == "11.13")
        );

        let refused = |req| async { service.renew(req).await.unwrap_err().code() };
        assert_eq!(
            refused(request_from(Some(site("12.01")), &pem)).await,
            tonic::Code::PermissionDenied,
            "another province's district"
        );
        let operator = Subject::Operator {
            name: "admin".into(),
            role: crate::rpc::caller::CallerRole::IdentityReader,
        };
        assert_eq!(
            refused(request_from(Some(operator), &pem)).await,
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            refused(request_from(None, &pem)).await,
            tonic::Code::FailedPrecondition,
            "no certificate on the connection"
        );
        assert_eq!(
            refused(request_from(Some(site("11.13")), "not a key")).await,
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            refused(request_from(
                Some(site("11.13")),
                &"x".repeat(MAX_PUBLIC_KEY_PEM + 1)
            ))
            .await,
            tonic::Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn the_fourth_renewal_in_an_hour_is_resource_exhausted_with_retry_info_and_another_child_is_served()
     {
        let dir = tempfile::tempdir().unwrap();
        let aceh = SiteCode::parse("11").unwrap();
        Ca::init(dir.path(), &aceh).unwrap();
        let service = CertificatesService::new(dir.path().to_owned(), aceh, RateLimit::RENEWAL);
        let pem = KeyPair::generate().unwrap().public_key_pem();
        let renew = |child: &'static str| {
            let (service, pem) = (service.clone(), pem.clone());
            async move { service.renew(request_from(Some(site(child)), &pem)).await }
        };
        for i in 0..RateLimit::RENEWAL.burst {
            renew("11.13")
                .await
                .unwrap_or_else(|e| panic!("renewal {i}: {e:?}"));
        }
        let refused = renew("11.13").await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let retry = limit::retry_delay(&refused).expect("the refusal carries RetryInfo");
        assert!(!retry.is_zero());
        let signed_for = |subject: &str| {
            let issued = Ca::open(dir.path()).unwrap().issued().unwrap();
            issued.iter().filter(|r| r.subject == subject).count()
        };
        assert_eq!(signed_for("11.13"), 3, "nothing signed for the refused one");

        renew("11.71")
            .await
            .expect("another district has its own bucket");
        assert_eq!(signed_for("11.71"), 1);
        assert_eq!(
            renew("11.13").await.unwrap_err().code(),
            tonic::Code::ResourceExhausted,
            "still limited after the other was served"
        );
    }

    /// A parent whose renewal limit is always exhausted; counts the asks.
    struct Exhausted {
        asked: Arc<std::sync::atomic::AtomicUsize>,
        retry: Duration,
    }

    #[tonic::async_trait]
    impl Certificates for Exhausted {
        async fn renew(&self, _: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(limit::exhausted("11.13", &RateLimit::RENEWAL, self.retry))
        }
    }

    /// A certificate for 11.13 with two minutes left (due), in `dir`.
    fn due_bundle(dir: &Path) -> TlsFiles {
        let ca = Ca::init(&dir.join("ca"), &SiteCode::parse("11").unwrap()).unwrap();
        let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let issued = ca
            .issue(&site("11.13"), ca::DEFAULT_VALIDITY, Some(soon))
            .unwrap();
        let f = files(dir);
        std::fs::write(&f.cert, &issued.cert_pem).unwrap();
        std::fs::write(&f.key, issued.key_pem.unwrap().as_bytes()).unwrap();
        f
    }

    #[tokio::test]
    async fn a_child_told_resource_exhausted_waits_the_retry_info_delay_before_asking_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = due_bundle(dir.path());
        let before = std::fs::read_to_string(&f.cert).unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let parent = Exhausted {
            asked: asked.clone(),
            retry: Duration::from_secs(90),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(crate::proto::v1::certificates_server::CertificatesServer::new(parent))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    token.clone().cancelled_owned(),
                ),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp();

        let err = renew_if_due(channel.clone(), &f, now).await.unwrap_err();
        assert!(err.is_try_later(), "{err:?}");
        let RenewError::Later { retry_in } = err else {
            unreachable!()
        };
        assert!(retry_in >= Duration::from_secs(90), "{retry_in:?}");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            std::fs::read_to_string(&f.cert).unwrap(),
            before,
            "nothing installed"
        );

        // Within the delay the child does not ask (the session start and the
        // hourly check alike); after it, it would.
        let err = renew_if_due(channel, &f, now).await.unwrap_err();
        assert!(err.is_try_later(), "{err:?}");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(deferred(&f, Instant::now()).is_some());
        assert_eq!(deferred(&f, Instant::now() + retry_in), None);

        token.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn a_missing_or_huge_retry_delay_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let t0 = Instant::now();
        let no_info = Status::resource_exhausted("busy");
        assert!(matches!(
            defer(&f, &no_info, t0),
            RenewError::Later { retry_in } if retry_in == LATER_DEFAULT
        ));
        let week = limit::exhausted(
            "11.13",
            &RateLimit::RENEWAL,
            Duration::from_secs(7 * 86_400),
        );
        assert!(matches!(
            defer(&f, &week, t0),
            RenewError::Later { retry_in } if retry_in == LATER_MAX
        ));
        assert_eq!(deferred(&f, t0 + LATER_MAX), None);
    }

    #[test]
    fn recover_discards_a_half_staged_switch_and_keeps_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        std::fs::write(&f.cert, "old cert").unwrap();
        std::fs::write(&f.key, "old key").unwrap();
        std::fs::write(next_path(&f.key), "new key").unwrap();
        std::fs::write(tmp_path(&f.cert), "new ce").unwrap();
        recover(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), "old cert");
        assert_eq!(std::fs::read_to_string(&f.key).unwrap(), "old key");
        assert!(!next_path(&f.key).exists() && !tmp_path(&f.cert).exists());
    }
}
