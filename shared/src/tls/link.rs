//! Mutual TLS on a link, both ends: the server's tonic TLS config (clients
//! must present a certificate chaining to the site's CA), the interceptor
//! that turns the verified client certificate into the request's
//! [`PeerIdentity`] and [`Caller`] (refusing revoked serials), the client's
//! config (verifying the parent by its site DNS name), and [`peer_auth`]:
//! how a handler learns which of the two transports a request came over.
//!
//! A site server runs in exactly one of two modes, fixed at start
//! (`site::serve::SiteServer`):
//!
//! - **mutual TLS**: rustls refuses a connection without a client
//!   certificate chaining to our CA, and [`Authenticate`] puts the
//!   certificate's [`PeerIdentity`] into every request. Who the peer is
//!   comes from that certificate only.
//! - **insecure loopback** (test and demo only): plain text, only on a
//!   loopback listener; every request carries the [`InsecureLoopback`]
//!   marker and no identity. Handlers that need a peer's site then take
//!   what the peer says about itself.
//!
//! A request with neither (a service called outside the site server) is
//! treated as unauthenticated and refused by handlers that need a peer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::peer::PeerIdentity;
use super::revoked::DenyList;
use super::site_dns_name;
use crate::domain::SiteCode;
use crate::rpc::caller::Caller;
use crate::site::config::TlsFiles;

/// Why a TLS bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NotPem { path: PathBuf },
    #[error("{path}: {source}")]
    Cert {
        path: PathBuf,
        #[source]
        source: super::peer::PeerError,
    },
    /// The site's own certificate has expired: it cannot reconnect.
    #[error(
        "certificate expired on {expired_on}; ask the {parent_kind} for a new bundle: lapor-hub ca issue --site {site}"
    )]
    Expired {
        expired_on: String,
        parent_kind: &'static str,
        site: String,
    },
}

/// The PEM files of a bundle, read.
#[derive(Debug)]
pub struct Bundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
    /// What our own certificate says.
    pub own: PeerIdentity,
}

fn read(path: &Path) -> Result<String, BundleError> {
    std::fs::read_to_string(path).map_err(|source| BundleError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The first certificate of a PEM text, DER.
pub fn first_cert_der(pem: &str, path: &Path) -> Result<Vec<u8>, BundleError> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, p)| p.contents)
        .map_err(|_| BundleError::NotPem {
            path: path.to_owned(),
        })
}

impl Bundle {
    /// Reads the three files (each time a link connects, so a renewed
    /// certificate is picked up without a restart).
    pub fn load(files: &TlsFiles) -> Result<Bundle, BundleError> {
        let cert_pem = read(&files.cert)?;
        let der = first_cert_der(&cert_pem, &files.cert)?;
        let own = PeerIdentity::from_der(&der).map_err(|source| BundleError::Cert {
            path: files.cert.clone(),
            source,
        })?;
        Ok(Bundle {
            ca_pem: read(&files.ca)?,
            cert_pem,
            key_pem: zeroize::Zeroizing::new(read(&files.key)?),
            own,
        })
    }

    /// Refuses an expired own certificate with the way back in, instead of
    /// a handshake failure nobody can read.
    pub fn check_not_expired(&self, now_unix: i64) -> Result<(), BundleError> {
        if self.own.not_after > now_unix {
            return Ok(());
        }
        let expired_on = chrono::DateTime::from_timestamp(self.own.not_after, 0)
            .map_or_else(|| self.own.not_after.to_string(), |t| t.to_rfc3339());
        let site = self.own.subject.name().to_owned();
        let parent_kind = match SiteCode::parse(&site).map(|s| s.role()) {
            Ok(crate::domain::SiteRole::Province) => "national hub",
            _ => "province",
        };
        Err(BundleError::Expired {
            expired_on,
            parent_kind,
            site,
        })
    }

    /// tonic's server config: serve with our certificate, require client
    /// certificates chaining to our CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.as_bytes()))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// tonic's client config for talking to `parent`: verify it against the
    /// CA and by its site DNS name, present our certificate.
    pub fn client_config(&self, parent: &SiteCode) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.as_bytes()))
            .domain_name(site_dns_name(parent))
    }
}

/// Marker the site server puts into every request's extensions when it
/// serves plain text (loopback only): the peer is not authenticated, and
/// handlers take what it claims about itself. Test and demo only.
/// Extensions are set by server-side code, never from bytes a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsecureLoopback;

/// How the peer of a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAuth {
    /// Mutual TLS: what the verified client certificate says.
    Certificate(PeerIdentity),
    /// A plain-text loopback server: nothing is known about the peer.
    InsecureLoopback,
    /// Neither: the service was called outside the site server.
    Unauthenticated,
}

/// How `extensions` (a request's) say the peer was authenticated.
pub fn peer_auth(extensions: &tonic::Extensions) -> PeerAuth {
    if let Some(peer) = extensions.get::<PeerIdentity>() {
        PeerAuth::Certificate(peer.clone())
    } else if extensions.get::<InsecureLoopback>().is_some() {
        PeerAuth::InsecureLoopback
    } else {
        PeerAuth::Unauthenticated
    }
}

/// The request interceptor of a TLS server: every request carries the
/// verified peer's [`PeerIdentity`] and [`Caller`] in its extensions, or is
/// refused.
#[derive(Debug, Clone)]
pub struct Authenticate {
    deny: Option<Arc<DenyList>>,
}

impl Authenticate {
    pub fn new(revoked: Option<PathBuf>) -> Authenticate {
        Authenticate {
            deny: revoked.map(|p| Arc::new(DenyList::new(p))),
        }
    }

    /// Checks one request.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` without a usable certificate, `PERMISSION_DENIED`
    /// for a revoked one.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let der = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let peer = PeerIdentity::from_der(der)
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
        if self
            .deny
            .as_ref()
            .is_some_and(|d| d.is_revoked(&peer.serial))
        {
            tracing::warn!(subject = peer.subject.name(), serial = %peer.serial, "revoked certificate refused");
            return Err(Status::permission_denied(format!(
                "certificate {} of {} is revoked",
                peer.serial,
                peer.subject.name()
            )));
        }
        let caller = Caller {
            role: peer.subject.role(),
            name: format!("cert:{}", peer.subject.name()),
        };
        request.extensions_mut().insert(caller);
        request.extensions_mut().insert(peer);
        Ok(request)
    }
}
