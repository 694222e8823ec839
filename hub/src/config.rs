//! The hub's TOML configuration: [`HubConfig`], its loading and validation,
//! and the commented template that `init` and `print-config` emit
//! (`deploy/config/hub.example.toml`, compiled in).
//!
//! Unknown keys are refused (`deny_unknown_fields`): the template ships in
//! lockstep with the binary, so an unknown key is a typo and should stop
//! startup rather than be ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lapor_shared::domain::{CodeError, SiteCode, SiteRole};
use lapor_shared::hlc::SystemClock;
use lapor_shared::overdue::DeadlinePolicy;
use lapor_shared::regions;
use lapor_shared::replication::limit::{RateLimit, SESSION_COST};
use lapor_shared::site::config::{
    SectionError, ServerSection, StoreSection, TestingSection, TlsSection, UpstreamSection,
    toml_string,
};
use lapor_shared::store::StoreConfig;
use lapor_shared::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

/// The commented example config, the single source for `init` and
/// `print-config`.
pub const TEMPLATE: &str = include_str!("../../deploy/config/hub.example.toml");

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

/// Everything `lapor-hub` reads from its config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    pub site: SiteSection,
    pub store: StoreSection,
    #[serde(default)]
    pub server: ServerSection<7400>,
    /// The parent hub (national, for a province); absent for national.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSection>,
    #[serde(default)]
    pub log: LogConfig,
    /// Holidays and SLA days for LAPOR deadlines; every tier must agree.
    #[serde(default)]
    pub deadlines: DeadlinePolicy,
    /// Mutual TLS for children (`lapor-hub ca init` writes it); absent,
    /// the hub serves only with `run --insecure`, plain text on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
    /// Per-child rate limit and request timeout.
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub testing: TestingSection,
}

/// `[limits]`: how much each child may ask, and how long a request may take.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Replication requests (Hello, Push, Pull) a child may make per second.
    pub child_requests_per_second: f64,
    /// Requests a child may make at once after a quiet spell; at least 3
    /// (one session's Hello, Push and Pull).
    pub child_burst: u32,
    /// Certificate renewals (`Certificates.Renew`) a child may ask for per
    /// hour: a bucket of its own, since each one makes the CA sign.
    pub child_renewals_per_hour: f64,
    /// Renewals a child may ask for at once; at least 1.
    pub child_renewal_burst: u32,
    /// Longest a request handler may take to answer (for a stream: to open
    /// it), in seconds.
    pub request_timeout_secs: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let rate = RateLimit::default();
        let renewal = RateLimit::RENEWAL;
        LimitsSection {
            child_requests_per_second: rate.per_second,
            child_burst: rate.burst,
            child_renewals_per_hour: renewal.per_second * 3600.0,
            child_renewal_burst: renewal.burst,
            request_timeout_secs: 30,
        }
    }
}

impl LimitsSection {
    /// The per-child token bucket.
    pub fn child_rate(&self) -> RateLimit {
        RateLimit {
            per_second: self.child_requests_per_second,
            burst: self.child_burst,
        }
    }

    /// The per-child bucket for certificate renewals.
    pub fn child_renewal_rate(&self) -> RateLimit {
        RateLimit::per_hour(self.child_renewals_per_hour, self.child_renewal_burst)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let rate = self.child_requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError::Limit {
                key: "limits.child_requests_per_second",
                why: "must be a number above 0",
            });
        }
        if f64::from(self.child_burst) < SESSION_COST {
            return Err(ConfigError::Limit {
                key: "limits.child_burst",
                why: "must be at least 3 (a session's Hello, Push and Pull)",
            });
        }
        let renewals = self.child_renewals_per_hour;
        if !(renewals.is_finite() && renewals > 0.0) {
            return Err(ConfigError::Limit {
                key: "limits.child_renewals_per_hour",
                why: "must be a number above 0",
            });
        }
        if self.child_renewal_burst == 0 {
            return Err(ConfigError::Limit {
                key: "limits.child_renewal_burst",
                why: "must be at least 1",
            });
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::Limit {
                key: "limits.request_timeout_secs",
                why: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// Which tier a hub is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HubRole {
    /// A provincial hub: code `NN`, children are the province's districts.
    Province,
    /// The national hub: code `00`, children are the provinces.
    National,
}

impl HubRole {
    pub fn as_str(self) -> &'static str {
        match self {
            HubRole::Province => "province",
            HubRole::National => "national",
        }
    }
}

/// `[site]`: which hub this is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    pub role: HubRole,
    /// `NN` (province) or `00` (national).
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
    /// The file is not valid TOML for [`HubConfig`] (the message names the
    /// key: unknown, missing or of the wrong type).
    #[error("parse config {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `site.code` is not of the form `00` or `NN`.
    #[error("site.code = {value:?} is not a hub code (NN or 00)")]
    SiteShape {
        value: String,
        #[source]
        source: Option<CodeError>,
    },
    /// `site.role` and `site.code` disagree (national is exactly `00`).
    #[error(
        "site.role = {role:?} does not match site.code = {value:?} (national <=> \"00\", province <=> NN)"
    )]
    RoleMismatch { role: &'static str, value: String },
    /// `site.code` is well formed but not a province in the region list.
    #[error("site.code = {value:?} is not a province in the region list")]
    UnknownProvince { value: String },
    /// A shared section (`[store]`, `[upstream]`) has an unusable value.
    #[error(transparent)]
    Section(#[from] SectionError),
    /// The national hub has no parent to forward to.
    #[error("upstream is set but site.role = \"national\" has no parent")]
    NationalUpstream,
    /// A `[limits]` value the hub cannot use.
    #[error("{key} {why}")]
    Limit {
        key: &'static str,
        why: &'static str,
    },
}

impl HubConfig {
    /// Reads, parses and validates the file at `path`, resolving a relative
    /// `store.path` against the file's directory.
    ///
    /// # Errors
    /// See [`ConfigError`]; each variant names the file or the key.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = HubConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.store.resolve(base);
        if let Some(upstream) = &mut config.upstream {
            upstream.resolve(base);
        }
        if let Some(tls) = &mut config.tls {
            tls.resolve(base);
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating it.
    pub fn parse(text: &str) -> Result<HubConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks what serde cannot: role and code agree, the province exists,
    /// the path, the upstream URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.site_code()?;
        self.store.check()?;
        self.limits.check()?;
        match (&self.upstream, self.site.role) {
            (Some(_), HubRole::National) => return Err(ConfigError::NationalUpstream),
            (Some(upstream), HubRole::Province) => upstream.check()?,
            (None, _) => {}
        }
        Ok(())
    }

    /// The validated hub code, consistent with the role.
    pub fn site_code(&self) -> Result<SiteCode, ConfigError> {
        let value = &self.site.code;
        let code = SiteCode::parse(value).map_err(|source| ConfigError::SiteShape {
            value: value.clone(),
            source: Some(source),
        })?;
        let mismatch = || ConfigError::RoleMismatch {
            role: self.site.role.as_str(),
            value: value.clone(),
        };
        match (self.site.role, code.role()) {
            (_, SiteRole::Node) => {
                return Err(ConfigError::SiteShape {
                    value: value.clone(),
                    source: None,
                });
            }
            (HubRole::National, SiteRole::National) => {}
            (HubRole::Province, SiteRole::Province) => {
                if regions::province(code.as_str()).is_none() {
                    return Err(ConfigError::UnknownProvince {
                        value: value.clone(),
                    });
                }
            }
            _ => return Err(mismatch()),
        }
        Ok(code)
    }

    /// The site key file: `store.key_path`, or `site.key` beside the
    /// database.
    pub fn key_path(&self) -> PathBuf {
        self.store.key_path()
    }

    /// What the store needs to open this hub's database.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        Ok(StoreConfig {
            path: self.store.path.clone(),
            site: self.site_code()?,
            clock: SystemClock {
                offset_ms: self.testing.clock_offset_ms,
            },
        })
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
const TEMPLATE_ROLE_LINE: &str = "role = \"province\"";
const TEMPLATE_SITE_LINE: &str = "code = \"11\"";
const TEMPLATE_PATH_LINE: &str = "path = \"/var/lib/lapor-hub/hub.db\"";
const TEMPLATE_LISTEN_LINE: &str = "listen = \"127.0.0.1:7400\"";

/// The template with this hub's values filled in, comments kept.
pub fn render_template(
    role: HubRole,
    site: &SiteCode,
    store_path: &Path,
    listen: SocketAddr,
) -> Result<String, TemplateError> {
    let mut text = TEMPLATE.to_owned();
    for (line, value) in [
        (
            TEMPLATE_ROLE_LINE,
            format!("role = {}", toml_string(role.as_str())),
        ),
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

    fn with_site(role: &str, code: &str) -> HubConfig {
        let text = TEMPLATE
            .replace(TEMPLATE_ROLE_LINE, &format!("role = \"{role}\""))
            .replace(TEMPLATE_SITE_LINE, &format!("code = \"{code}\""));
        HubConfig::parse(&text).unwrap()
    }

    #[test]
    fn the_shipped_template_parses_and_validates() {
        let config = HubConfig::parse(TEMPLATE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.site.role, HubRole::Province);
        assert_eq!(config.site_code().unwrap().as_str(), "11");
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn role_and_code_must_agree() {
        with_site("national", "00").validate().unwrap();
        with_site("province", "32").validate().unwrap();
        for (role, code) in [("national", "11"), ("province", "00")] {
            let err = with_site(role, code).validate().unwrap_err().to_string();
            assert!(err.contains("does not match"), "{role} {code}: {err}");
        }
        let err = with_site("province", "11.13")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.code"), "{err}");
        let err = with_site("province", "99")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a province in the region list"), "{err}");
        assert!(
            HubConfig::parse(&TEMPLATE.replace(TEMPLATE_ROLE_LINE, "role = \"district\"")).is_err()
        );
    }

    #[test]
    fn national_has_no_upstream() {
        let mut config = with_site("national", "00");
        config.upstream = Some(UpstreamSection {
            url: "http://127.0.0.1:7400".into(),
            ca: None,
            cert: None,
            key: None,
        });
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NationalUpstream)
        ));
    }

    #[test]
    fn rendered_template_carries_the_given_values() {
        let site = SiteCode::national();
        let listen: SocketAddr = "127.0.0.1:7499".parse().unwrap();
        let text = render_template(
            HubRole::National,
            &site,
            Path::new("/srv/nasional/hub.db"),
            listen,
        )
        .unwrap();
        let config = HubConfig::parse(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.site.role, HubRole::National);
        assert_eq!(config.site.code, "00");
        assert_eq!(config.store.path, Path::new("/srv/nasional/hub.db"));
        assert_eq!(config.server.listen, listen);
    }

    #[test]
    fn the_key_defaults_beside_the_database_unless_configured() {
        let config = HubConfig::parse(TEMPLATE).unwrap();
        assert_eq!(config.key_path(), Path::new("/var/lib/lapor-hub/site.key"));
        let text = TEMPLATE.replace(
            "# key_path = \"/var/lib/lapor-hub/site.key\"",
            "key_path = \"/etc/lapor-hub/site.key\"",
        );
        assert_ne!(text, TEMPLATE, "the template documents key_path");
        let config = HubConfig::parse(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.key_path(), Path::new("/etc/lapor-hub/site.key"));
    }

    #[test]
    fn limits_default_to_the_template_and_unusable_ones_are_refused() {
        let config = HubConfig::parse(TEMPLATE).unwrap();
        assert_eq!(config.limits, LimitsSection::default());
        let without = HubConfig::parse(
            "[site]\nrole = \"national\"\ncode = \"00\"\n[store]\npath = \"h.db\"\n",
        )
        .unwrap();
        assert_eq!(without.limits, LimitsSection::default());
        for (line, value, key) in [
            (
                "child_requests_per_second = 2.0",
                "child_requests_per_second = 0.0",
                "child_requests_per_second",
            ),
            ("child_burst = 30", "child_burst = 2", "child_burst"),
            (
                "child_renewals_per_hour = 3.0",
                "child_renewals_per_hour = -1.0",
                "child_renewals_per_hour",
            ),
            (
                "child_renewal_burst = 3",
                "child_renewal_burst = 0",
                "child_renewal_burst",
            ),
            (
                "request_timeout_secs = 30",
                "request_timeout_secs = 0",
                "request_timeout_secs",
            ),
        ] {
            let text = TEMPLATE.replace(line, value);
            assert_ne!(text, TEMPLATE, "the template sets {line}");
            let err = HubConfig::parse(&text).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = HubConfig::parse(&TEMPLATE.replace("[testing]", "[testing]\nclock_skew = 1"))
            .unwrap_err();
        assert!(err.to_string().contains("clock_skew"), "{err}");
    }
}
