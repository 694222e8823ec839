//! The node's TOML configuration: [`NodeConfig`], its loading and
//! validation, and the commented template that `init` and `print-config`
//! emit (`deploy/config/node.example.toml`, compiled in).
//!
//! Unknown keys are refused (`deny_unknown_fields`): the template ships in
//! lockstep with the binary, so a key we do not know is a typo, and a typo in
//! `listen` or `path` should stop startup rather than be ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lapor_shared::domain::{CodeError, SiteCode, SiteRole};
use lapor_shared::hlc::SystemClock;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::regions;
use lapor_shared::site::config::{
    SectionError, ServerSection, StoreSection, TestingSection, UpstreamSection, toml_string,
};
use lapor_shared::store::StoreConfig;
use lapor_shared::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

/// The commented example config, the single source for `init` and
/// `print-config`.
pub const TEMPLATE: &str = include_str!("../../deploy/config/node.example.toml");

/// Default gRPC listen address (loopback: the node needs no inbound port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7300";

/// Everything `lapor-node` reads from its config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub site: SiteSection,
    pub store: StoreSection,
    #[serde(default)]
    pub server: ServerSection<7300>,
    /// The provincial hub; absent means the node works offline only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSection>,
    #[serde(default)]
    pub log: LogConfig,
    /// Holidays and SLA days for LAPOR deadlines; every tier must agree.
    #[serde(default)]
    pub deadlines: DeadlinePolicy,
    /// Request timeout of the node's own server.
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub testing: TestingSection,
}

/// `[limits]`: how long a request to the node may take.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Longest a request handler may take to answer, in seconds.
    pub request_timeout_secs: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            request_timeout_secs: 30,
        }
    }
}

impl LimitsSection {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// `[site]`: which district this node is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// Kemendagri kabupaten/kota code, `NN.NN`.
    pub code: String,
}

/// Why a config could not be loaded. Every variant names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`NodeConfig`] (the message names the
    /// key: unknown, missing or of the wrong type).
    #[error("parse config {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `site.code` is not of the form `NN.NN`.
    #[error("site.code = {value:?} is not a district code")]
    SiteShape {
        value: String,
        #[source]
        source: CodeError,
    },
    /// `site.code` is a province or national code; a node is a district.
    #[error("site.code = {value:?} names a {role}, but a node is a kabupaten/kota (NN.NN)")]
    NotADistrict { value: String, role: SiteRole },
    /// `site.code` is well formed but not in the Kemendagri list.
    #[error("site.code = {value:?} is not a kabupaten/kota in the region list")]
    UnknownDistrict { value: String },
    /// A shared section (`[store]`, `[upstream]`) has an unusable value.
    #[error(transparent)]
    Section(#[from] SectionError),
    /// `limits.request_timeout_secs` is 0.
    #[error("limits.request_timeout_secs must be at least 1")]
    RequestTimeout,
}

impl NodeConfig {
    /// Reads, parses and validates the file at `path`, resolving a relative
    /// `store.path` against the file's directory.
    ///
    /// # Errors
    /// See [`ConfigError`]; each variant names the file or the key.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = NodeConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.store.resolve(base);
        if let Some(upstream) = &mut config.upstream {
            upstream.resolve(base);
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating it.
    pub fn parse(text: &str) -> Result<NodeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks what serde cannot: the site code, the path, the upstream URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.site_code()?;
        self.store.check()?;
        if self.limits.request_timeout_secs == 0 {
            return Err(ConfigError::RequestTimeout);
        }
        if let Some(upstream) = &self.upstream {
            upstream.check()?;
        }
        Ok(())
    }

    /// The validated district code.
    pub fn site_code(&self) -> Result<SiteCode, ConfigError> {
        let value = &self.site.code;
        let code = SiteCode::parse(value).map_err(|source| ConfigError::SiteShape {
            value: value.clone(),
            source,
        })?;
        if code.role() != SiteRole::Node {
            return Err(ConfigError::NotADistrict {
                value: value.clone(),
                role: code.role(),
            });
        }
        if regions::district(code.as_str()).is_none() {
            return Err(ConfigError::UnknownDistrict {
                value: value.clone(),
            });
        }
        Ok(code)
    }

    /// What the store needs to open this node's database.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        Ok(StoreConfig {
            path: self.store.path.clone(),
            site: self.site_code()?,
            clock: SystemClock {
                offset_ms: self.testing.clock_offset_ms,
            },
        })
    }

    /// The site key file: `store.key_path`, or `site.key` beside the
    /// database.
    pub fn key_path(&self) -> PathBuf {
        self.store.key_path()
    }

    /// The endpoint local clients (`submit`) dial: the listen address, with
    /// an unspecified IP (`0.0.0.0`) replaced by loopback.
    pub fn local_endpoint(&self) -> String {
        format!("http://{}", self.server.local_addr())
    }
}

/// Why the template could not be filled in.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A line that `init` substitutes is missing from, or repeated in, the
    /// template: the template and this code drifted apart.
    #[error("template line {line:?} occurs {found} times, expected once")]
    Drift { line: &'static str, found: usize },
}

/// The lines of [`TEMPLATE`] that `init` replaces.
const TEMPLATE_SITE_LINE: &str = "code = \"11.13\"";
const TEMPLATE_PATH_LINE: &str = "path = \"/var/lib/lapor-node/node.db\"";
const TEMPLATE_LISTEN_LINE: &str = "listen = \"127.0.0.1:7300\"";

/// The template with this node's values filled in, comments kept.
pub fn render_template(
    site: &SiteCode,
    store_path: &Path,
    listen: SocketAddr,
) -> Result<String, TemplateError> {
    let mut text = TEMPLATE.to_owned();
    for (line, value) in [
        (
            TEMPLATE_SITE_LINE,
            format!("code = {}", toml_string(site.as_str())),
        ),
        (
            TEMPLATE_PATH_LINE,
            format!("path = {}", toml_string(&store_path.to_string_lossy())),
        ),
        (
            TEMPLATE_LISTEN_LINE,
            format!("listen = {}", toml_string(&listen.to_string())),
        ),
    ] {
        let found = text.lines().filter(|l| l.trim() == line).count();
        if found != 1 {
            return Err(TemplateError::Drift { line, found });
        }
        text = text.replacen(line, &value, 1);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_template_parses_and_validates() {
        let config = NodeConfig::parse(TEMPLATE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.site_code().unwrap().as_str(), "11.13");
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.upstream.is_none());
    }

    #[test]
    fn rendered_template_carries_the_given_values() {
        let site = SiteCode::parse("11.71").unwrap();
        let listen: SocketAddr = "0.0.0.0:7311".parse().unwrap();
        let text = render_template(&site, Path::new("/srv/lapor \"x\"/node.db"), listen).unwrap();
        let config = NodeConfig::parse(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.site.code, "11.71");
        assert_eq!(config.store.path, Path::new("/srv/lapor \"x\"/node.db"));
        assert_eq!(config.server.listen, listen);
        assert!(text.contains("# TEST ONLY"), "comments are kept");
        assert_eq!(config.local_endpoint(), "http://127.0.0.1:7311");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = TEMPLATE.replace("listen =", "lisen =");
        let err = NodeConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn site_code_must_be_a_known_district() {
        for (code, want) in [
            ("11", "names a province"),
            ("00", "names a national"),
            ("11.1", "is not a district code"),
            ("11.99", "not a kabupaten/kota in the region list"),
        ] {
            let text = TEMPLATE.replace(TEMPLATE_SITE_LINE, &format!("code = \"{code}\""));
            let err = NodeConfig::parse(&text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("site.code") && err.contains(want),
                "{code}: {err}"
            );
        }
    }

    #[test]
    fn relative_store_path_is_resolved_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let text = TEMPLATE.replace(TEMPLATE_PATH_LINE, "path = \"data/node.db\"");
        std::fs::write(&path, text).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.store.path, dir.path().join("data/node.db"));
    }

    #[test]
    fn the_key_defaults_beside_the_database_and_a_relative_one_follows_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, TEMPLATE).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.key_path(), Path::new("/var/lib/lapor-node/site.key"));
        let text = TEMPLATE.replace(
            "# key_path = \"/var/lib/lapor-node/site.key\"",
            "key_path = \"keys/site.key\"",
        );
        assert_ne!(text, TEMPLATE, "the template documents key_path");
        std::fs::write(&path, text).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.key_path(), dir.path().join("keys/site.key"));
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = NodeConfig::load(Path::new("/nonexistent/lapor-node.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/lapor-node.toml"));
    }
}
