//! The config sections a node and a hub share — `[store]`, `[server]`,
//! `[upstream]`, `[testing]` — with the checks serde cannot do and the
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

/// `[upstream]`: the parent hub (used by replication).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://` or `https://` URL of the parent's gRPC endpoint.
    pub url: String,
}

impl UpstreamSection {
    /// Refuses a URL that is not http(s) with a host.
    pub fn check(&self) -> Result<(), SectionError> {
        check_upstream_url(&self.url)
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
