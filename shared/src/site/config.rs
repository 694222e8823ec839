//! The config sections a node and a hub share — `[store]`, `[server]`,
//! `[upstream]`, `[tls]`, `[testing]` — with the checks serde cannot do and the
//! resolution of relative paths against the config file's directory.
//!
//! Every section refuses unknown keys: the template ships in lockstep with
//! the binary, so an unknown key is a typo and must stop startup.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[store]`: where the database and its key live.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The SQLite file; relative paths are resolved against the config
    /// file's directory (see [`StoreSection::resolve`]).
    pub path: PathBuf,
    /// The site key that seals reporter identity; `site.key` beside the
    /// database when absent (see [`StoreSection::key_path`]). Relative paths
    /// are resolved like `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
}

impl StoreSection {
    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
        if let Some(key) = &mut self.key_path
            && key.is_relative()
            && !key.as_os_str().is_empty()
        {
            *key = base.join(&*key);
        }
    }

    /// Refuses an empty `path` or an empty `key_path`.
    pub fn check(&self) -> Result<(), SectionError> {
        if self.path.as_os_str().is_empty() {
            return Err(SectionError::EmptyStorePath);
        }
        if self
            .key_path
            .as_ref()
            .is_some_and(|k| k.as_os_str().is_empty())
        {
            return Err(SectionError::EmptyKeyPath);
        }
        Ok(())
    }

    /// The site key file: `key_path`, or `site.key` beside the database.
    pub fn key_path(&self) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| crate::crypto::key_path_beside(&self.path))
    }
}

/// `[server]`: the gRPC listener; `DEFAULT_PORT` on loopback when unset.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection<const DEFAULT_PORT: u16> {
    #[serde(default = "default_listen::<DEFAULT_PORT>")]
    pub listen: SocketAddr,
}

impl<const DEFAULT_PORT: u16> Default for ServerSection<DEFAULT_PORT> {
    fn default() -> Self {
        ServerSection {
            listen: default_listen::<DEFAULT_PORT>(),
        }
    }
}

impl<const DEFAULT_PORT: u16> ServerSection<DEFAULT_PORT> {
    /// The address local clients dial: `listen`, with an unspecified IP
    /// (`0.0.0.0`) replaced by loopback.
    pub fn local_addr(&self) -> SocketAddr {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        addr
    }
}

fn default_listen<const PORT: u16>() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, PORT))
}

/// `[upstream]`: the parent hub (used by replication), and the bundle this
/// site got from the parent's CA (`lapor-hub ca issue`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `https://` URL of the parent's gRPC endpoint (`http://` only on
    /// loopback, for tests).
    pub url: String,
    /// The parent's CA certificate (verifies the parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// This site's certificate from the parent's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl UpstreamSection {
    /// Refuses a URL that is not http(s) with a host, a half-given bundle,
    /// https without a bundle and plain http to a non-loopback host.
    pub fn check(&self) -> Result<(), SectionError> {
        check_upstream_url(&self.url)?;
        let tls = self.tls()?;
        let https = self.url.starts_with("https://");
        match (https, tls) {
            (true, None) => Err(SectionError::UpstreamWithoutBundle {
                value: self.url.clone(),
            }),
            (false, Some(_)) => Err(SectionError::UpstreamPlainWithBundle {
                value: self.url.clone(),
            }),
            (false, None) if !url_is_loopback(&self.url) => Err(SectionError::PlainNotLoopback {
                key: "upstream.url",
                value: self.url.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The bundle's files, when all three are given.
    pub fn tls(&self) -> Result<Option<TlsFiles>, SectionError> {
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None, None) => Ok(None),
            _ => Err(SectionError::PartialTls {
                section: "upstream",
            }),
        }
    }

    /// Makes relative bundle paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// `[tls]`: the certificate a hub serves with and the CA its children's
/// certificates must chain to (its own CA, `lapor-hub ca init`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The deny-list of revoked serials, read on every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<PathBuf>,
}

impl TlsSection {
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .chain(self.revoked.as_mut())
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// A certificate, its key and the CA that verifies the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Refuses plain text on a non-loopback listen address.
pub fn check_plain_listen(listen: SocketAddr) -> Result<(), SectionError> {
    if listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(SectionError::PlainNotLoopback {
            key: "server.listen",
            value: listen.to_string(),
        })
    }
}

fn url_is_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<tonic::transport::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `[testing]`: knobs that exist only for the fault-injection tests.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestingSection {
    /// TEST ONLY: shift of the wall clock fed to the HLC, in milliseconds.
    #[serde(default)]
    pub clock_offset_ms: i64,
}

/// A shared section's value that serde accepted but the site cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    /// `store.path` is empty.
    #[error("store.path is empty")]
    EmptyStorePath,
    /// `store.key_path` is set but empty.
    #[error("store.key_path is empty (leave it out for site.key beside the database)")]
    EmptyKeyPath,
    /// `upstream.url` is not an http(s) URL with a host.
    #[error("upstream.url = {value:?} is not an http:// or https:// URL with a host")]
    UpstreamUrl { value: String },
    /// Some but not all of ca/cert/key are given.
    #[error("[{section}] needs all of ca, cert and key, or none")]
    PartialTls { section: &'static str },
    /// https without the bundle to prove who we are.
    #[error(
        "upstream.url = {value:?} is https but [upstream] has no ca/cert/key: install the bundle from `lapor-hub ca issue`"
    )]
    UpstreamWithoutBundle { value: String },
    /// A bundle that plain http would not use.
    #[error(
        "upstream.url = {value:?} is plain http but [upstream] names a TLS bundle: use https://"
    )]
    UpstreamPlainWithBundle { value: String },
    /// Plain text off loopback.
    #[error(
        "{key} = {value:?} is not loopback: plain text is allowed only on loopback; configure TLS (see docs/security.md)"
    )]
    PlainNotLoopback { key: &'static str, value: String },
    /// Plain text without the operator asking for it.
    #[error(
        "{what} is plain text: {fix}, or pass --insecure to allow plain text on loopback (tests and the demo only)"
    )]
    InsecureNotRequested { what: String, fix: &'static str },
}

/// Plain text only when `run --insecure` asked for it: a parent link
/// without a TLS bundle (`upstream`) and, for a hub, serving without
/// `[tls]` (`serves_plain`). Loopback-only is checked separately.
pub fn require_insecure_flag(
    upstream: Option<&UpstreamSection>,
    serves_plain: bool,
    insecure: bool,
) -> Result<(), SectionError> {
    if insecure {
        return Ok(());
    }
    if serves_plain {
        return Err(SectionError::InsecureNotRequested {
            what: "this hub has no [tls] section, so it".into(),
            fix: "run `lapor-hub ca init` to create its CA and serve mutual TLS",
        });
    }
    if let Some(up) = upstream
        && up.tls()?.is_none()
    {
        return Err(SectionError::InsecureNotRequested {
            what: format!("upstream.url = {:?}", up.url),
            fix: "install the bundle from `lapor-hub ca issue` (https with ca, cert and key)",
        });
    }
    Ok(())
}

/// Accepts `http://host[:port][/]` and `https://...`; the replication client
/// decides TLS from the scheme.
pub fn check_upstream_url(value: &str) -> Result<(), SectionError> {
    let bad = || SectionError::UpstreamUrl {
        value: value.to_owned(),
    };
    let uri: tonic::transport::Uri = value.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A TOML basic string with escapes (a Windows path or a quote in a
/// directory name must not break the file).
pub fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        server: ServerSection<7300>,
    }

    #[test]
    fn listen_defaults_to_loopback_on_the_sites_port_with_or_without_the_section() {
        let none: Doc = toml::from_str("").unwrap();
        let empty: Doc = toml::from_str("[server]\n").unwrap();
        assert_eq!(none.server.listen.to_string(), "127.0.0.1:7300");
        assert_eq!(empty.server.listen, none.server.listen);
    }

    #[test]
    fn an_unspecified_listen_ip_is_dialled_on_loopback() {
        let server = ServerSection::<7300> {
            listen: "0.0.0.0:7311".parse().unwrap(),
        };
        assert_eq!(server.local_addr().to_string(), "127.0.0.1:7311");
    }

    #[test]
    fn upstream_url_must_be_http_with_a_host() {
        assert!(check_upstream_url("https://hub-11.example:7400").is_ok());
        assert!(check_upstream_url("http://127.0.0.1:7400/").is_ok());
        for bad in ["hub-11:7400", "ftp://hub", "https://", ""] {
            let err = check_upstream_url(bad).unwrap_err().to_string();
            assert!(err.starts_with("upstream.url"), "{bad}: {err}");
        }
    }

    #[test]
    fn plain_text_is_refused_off_loopback_and_https_needs_the_whole_bundle() {
        let up = |url: &str| UpstreamSection {
            url: url.into(),
            ca: None,
            cert: None,
            key: None,
        };
        assert!(up("http://127.0.0.1:7400").check().is_ok());
        assert!(up("http://localhost:7400").check().is_ok());
        let err = up("http://10.0.0.5:7400").check().unwrap_err().to_string();
        assert!(err.contains("not loopback"), "{err}");
        let err = up("https://hub-11:7400").check().unwrap_err().to_string();
        assert!(err.contains("lapor-hub ca issue"), "{err}");
        let mut half = up("https://hub-11:7400");
        half.ca = Some("ca.pem".into());
        assert!(matches!(half.check(), Err(SectionError::PartialTls { .. })));
        half.cert = Some("site.pem".into());
        half.key = Some("site.key".into());
        half.check().unwrap();
        half.resolve(Path::new("/etc/lapor"));
        assert_eq!(
            half.tls().unwrap().unwrap().key,
            Path::new("/etc/lapor/site.key")
        );
        assert!(check_plain_listen("0.0.0.0:7400".parse().unwrap()).is_err());
        assert!(check_plain_listen("127.0.0.1:7400".parse().unwrap()).is_ok());
    }

    #[test]
    fn relative_paths_are_resolved_against_the_base_and_the_key_defaults_beside_the_db() {
        let mut store = StoreSection {
            path: "data/node.db".into(),
            key_path: None,
        };
        store.resolve(Path::new("/etc/lapor"));
        assert_eq!(store.path, Path::new("/etc/lapor/data/node.db"));
        assert_eq!(store.key_path(), Path::new("/etc/lapor/data/site.key"));
        store.key_path = Some(PathBuf::new());
        store.resolve(Path::new("/etc/lapor"));
        assert!(matches!(store.check(), Err(SectionError::EmptyKeyPath)));
    }
}
