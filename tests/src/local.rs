//! The demo federation on loopback, set up the way operators set up the
//! real one: the national hub (00), the Aceh province hub (11) and three
//! district nodes — Gayo Lues (11.13), Aceh Tengah (11.04), Kota Banda Aceh
//! (11.71) — as real processes on ports chosen at runtime.
//!
//! With [`Security::MutualTls`] (the default of the demo) every link is
//! mutual TLS, set up with the operator commands only: `lapor-hub ca init`
//! at national, `ca issue --site 11` for the province (a bundle it runs
//! from as it is, then its own `ca init`), `ca issue --site 11.13` ... at the
//! province for each district, and an operator bundle at each hub for this
//! harness's own reads. [`Security::Insecure`] is plain text on loopback.
//!
//! With `capture` every replication link (node → province, province →
//! national) passes through a [`CaptureProxy`], so a test can scan what
//! crossed the wire.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use lapor_shared::domain::SiteCode;

use crate::Binary;
use crate::capture::CaptureProxy;
use crate::site::{
    SiteProcess, init_hub, init_hub_with_upstream, init_node_with_upstream, operator_tls,
    run_command,
};

/// The districts of the demo, with their names.
pub const NODES: &[(&str, &str)] = &[
    ("11.13", "Kabupaten Gayo Lues"),
    ("11.04", "Kabupaten Aceh Tengah"),
    ("11.71", "Kota Banda Aceh"),
];

/// How long a site may take to stop after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// How the links are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Every hub requires client certificates from its own CA.
    MutualTls,
    /// Plain text, loopback only.
    Insecure,
}

/// A running district node.
pub struct LocalNode {
    pub code: &'static str,
    pub name: &'static str,
    pub config: PathBuf,
    pub site: SiteProcess,
}

/// The running federation. Its processes are killed if it is dropped;
/// [`LocalFederation::stop`] stops them gracefully and checks they exit 0.
pub struct LocalFederation {
    pub security: Security,
    pub national_config: PathBuf,
    pub national: SiteProcess,
    pub province_config: PathBuf,
    pub province: SiteProcess,
    pub nodes: Vec<LocalNode>,
    /// One per replication link when capturing: the province → national
    /// link first, then one per node in [`NODES`] order.
    pub captures: Vec<CaptureProxy>,
}

impl LocalFederation {
    /// Sets up and starts the federation under `dir` (which should be
    /// empty).
    ///
    /// # Errors
    /// A command or a process failed (the error says which, with its log).
    pub async fn start(
        dir: &Path,
        security: Security,
        capture: bool,
    ) -> anyhow::Result<LocalFederation> {
        let mut captures = Vec::new();

        // National.
        let national_config = init_hub(dir, "national", "00").await?;
        if security == Security::MutualTls {
            run_command(Binary::Hub, &national_config, &["ca", "init"]).await?;
        }
        let national = SiteProcess::start(Binary::Hub, &national_config).await?;
        let national = with_operator(national, &national_config, dir, "00", security).await?;

        // The province, forwarding to national.
        let to_national = link(&national, security, capture, &mut captures).await?;
        let province_config = match security {
            Security::MutualTls => {
                let bundle = dir.join("hub-11");
                let bundle_str = utf8(&bundle)?;
                run_command(
                    Binary::Hub,
                    &national_config,
                    &[
                        "ca",
                        "issue",
                        "--site",
                        "11",
                        "--out",
                        bundle_str,
                        "--url",
                        &to_national,
                    ],
                )
                .await?;
                let config = bundle.join("lapor-hub.toml");
                run_command(Binary::Hub, &config, &["ca", "init"]).await?;
                config
            }
            Security::Insecure => {
                init_hub_with_upstream(dir, "province", "11", Some(&to_national)).await?
            }
        };
        let province = SiteProcess::start(Binary::Hub, &province_config).await?;
        let province = with_operator(province, &province_config, dir, "11", security).await?;

        // The districts, pushing to the province.
        let mut nodes = Vec::new();
        for (code, name) in NODES {
            let to_province = link(&province, security, capture, &mut captures).await?;
            let config = match security {
                Security::MutualTls => {
                    let bundle = dir.join(format!("node-{code}"));
                    run_command(
                        Binary::Hub,
                        &province_config,
                        &[
                            "ca",
                            "issue",
                            "--site",
                            code,
                            "--out",
                            utf8(&bundle)?,
                            "--url",
                            &to_province,
                        ],
                    )
                    .await?;
                    bundle.join("lapor-node.toml")
                }
                Security::Insecure => {
                    init_node_with_upstream(dir, code, Some(&to_province)).await?
                }
            };
            let site = SiteProcess::start(Binary::Node, &config).await?;
            nodes.push(LocalNode {
                code,
                name,
                config,
                site,
            });
        }
        Ok(LocalFederation {
            security,
            national_config,
            national,
            province_config,
            province,
            nodes,
            captures,
        })
    }

    /// Every byte captured on the replication links so far.
    pub fn captured(&self) -> Vec<u8> {
        self.captures
            .iter()
            .flat_map(CaptureProxy::captured)
            .collect()
    }

    /// Every site's config, national first.
    pub fn configs(&self) -> Vec<(Binary, &Path)> {
        let mut out = vec![
            (Binary::Hub, self.national_config.as_path()),
            (Binary::Hub, self.province_config.as_path()),
        ];
        out.extend(
            self.nodes
                .iter()
                .map(|n| (Binary::Node, n.config.as_path())),
        );
        out
    }

    /// SIGTERM to every site (nodes first), each expected to exit 0.
    ///
    /// # Errors
    /// A site did not stop in time or exited with an error (its log is
    /// quoted).
    pub async fn stop(self) -> anyhow::Result<()> {
        let mut sites: Vec<SiteProcess> = self.nodes.into_iter().map(|n| n.site).collect();
        sites.push(self.province);
        sites.push(self.national);
        for site in &mut sites {
            // Fails only for a site already gone: Ctrl-C in a terminal
            // reaches the whole process group, so they may be stopping.
            let _ = site.sigterm().await;
            let status = site.wait_exit(STOP_DEADLINE).await?;
            if !status.success() {
                bail!("a site exited with {status}:\n{}", site.log_tail());
            }
        }
        for capture in self.captures {
            capture.stop().await;
        }
        Ok(())
    }
}

/// The URL a child dials to reach `parent`: directly, or through a new
/// capture proxy.
async fn link(
    parent: &SiteProcess,
    security: Security,
    capture: bool,
    captures: &mut Vec<CaptureProxy>,
) -> anyhow::Result<String> {
    let scheme = match security {
        Security::MutualTls => "https",
        Security::Insecure => "http",
    };
    let addr = if capture {
        let proxy = CaptureProxy::start(parent.addr()).await?;
        let addr = proxy.addr();
        captures.push(proxy);
        addr
    } else {
        parent.addr()
    };
    Ok(format!("{scheme}://{addr}"))
}

/// With mutual TLS, an operator bundle for this harness from the hub's CA,
/// presented by every read it makes.
async fn with_operator(
    hub: SiteProcess,
    config: &Path,
    dir: &Path,
    code: &str,
    security: Security,
) -> anyhow::Result<SiteProcess> {
    if security == Security::Insecure {
        return Ok(hub);
    }
    let bundle = dir.join(format!("operator-{code}"));
    run_command(
        Binary::Hub,
        config,
        &["ca", "issue", "--operator", "demo", "--out", utf8(&bundle)?],
    )
    .await?;
    let site = SiteCode::parse(code).with_context(|| format!("site code {code}"))?;
    let tls = operator_tls(&bundle, &lapor_shared::tls::site_dns_name(&site))?;
    Ok(hub.with_client_tls(tls))
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
