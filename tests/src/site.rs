//! A site (node or hub) running as a real child process: `init` its config
//! (optionally with an `[upstream]` parent), start it on `127.0.0.1:0` (or
//! on a given address, to restart it where its children expect it), learn
//! its port from the readiness line, signal it, read what it holds, and
//! never leave it behind — [`SiteProcess`] kills the child when dropped, so
//! a failing assertion leaves no orphan.
//!
//! A child's stderr (its logs) goes to a file in the test's directory, so a
//! chatty child can never block on a full pipe, and a failure message can
//! quote the log ([`SiteProcess::log_tail`]).

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::complaints_client::ComplaintsClient;
use lapor_shared::proto::v1::intake_client::IntakeClient;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{Binary, binary};

/// How long a site may take from spawn to its readiness line (a debug
/// build migrating a fresh database takes well under a second).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `lapor-node` or `lapor-hub`.
#[derive(Debug)]
pub struct SiteProcess {
    which: Binary,
    /// The config it was started with.
    config: PathBuf,
    /// Where its stderr goes.
    log: PathBuf,
    child: Child,
    /// Address from the readiness line.
    addr: SocketAddr,
    /// Kept open so a late write to stdout never fails with EPIPE.
    _stdout: BufReader<ChildStdout>,
    /// How this harness's own clients reach a hub that requires mutual
    /// TLS (an operator certificate); `None`: plain text on loopback.
    client_tls: Option<ClientTlsConfig>,
}

/// An operator bundle from `lapor-hub ca issue --operator NAME` (its
/// `ca.pem`, `operator.pem`, `operator.key`) and the DNS name the hub's
/// server certificate carries (`site-11.lapor.internal`).
///
/// # Errors
/// A file of the bundle cannot be read.
pub fn operator_tls(bundle: &Path, hub_dns: &str) -> anyhow::Result<ClientTlsConfig> {
    bundle_tls(bundle, "operator.pem", "operator.key", hub_dns)
}

/// Client TLS from a bundle directory: its `ca.pem`, the certificate and
/// key files named, and the DNS name the hub's certificate carries
/// (`lapor_shared::tls::site_dns_name`).
///
/// # Errors
/// A file of the bundle cannot be read.
pub fn bundle_tls(
    bundle: &Path,
    cert: &str,
    key: &str,
    hub_dns: &str,
) -> anyhow::Result<ClientTlsConfig> {
    let read = |name: &str| {
        let path = bundle.join(name);
        std::fs::read(&path).with_context(|| format!("read {}", path.display()))
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(hub_dns))
}

/// `lapor-hub ca issue --site SITE --out OUT [extra...]` at the hub
/// configured by `config`; returns OUT (the bundle directory).
///
/// # Errors
/// The command failed (its stderr is in the error).
pub async fn ca_issue(
    config: &Path,
    site: &str,
    out: &Path,
    extra: &[&str],
) -> anyhow::Result<PathBuf> {
    let out_str = out.to_str().context("bundle path is not UTF-8")?;
    let mut args = vec!["ca", "issue", "--site", site, "--out", out_str];
    args.extend_from_slice(extra);
    run_command(Binary::Hub, config, &args).await?;
    Ok(out.to_owned())
}

impl SiteProcess {
    /// Starts `which` with `config`, listening on a free loopback port, and
    /// waits for its readiness line. Its log goes to `<config>.log`.
    ///
    /// # Errors
    /// The build or spawn failed, or the process exited or stayed silent
    /// before announcing readiness (the error quotes its log).
    pub async fn start(which: Binary, config: &Path) -> anyhow::Result<SiteProcess> {
        Self::start_at(which, config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Like [`SiteProcess::start`], listening on `listen`: a hub restarted
    /// after a crash must come back where its children's `[upstream] url`
    /// points (see also [`reserve_port`]).
    ///
    /// # Errors
    /// As [`SiteProcess::start`]; also when `listen` is taken.
    pub async fn start_at(
        which: Binary,
        config: &Path,
        listen: SocketAddr,
    ) -> anyhow::Result<SiteProcess> {
        let log = config.with_extension("log");
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open log {}", log.display()))?;
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("read {}", config.display()))?;
        let mut child = Command::new(binary(which)?)
            .arg("--config")
            .arg(config)
            .args(["run", "--listen", &listen.to_string()])
            .args(needs_insecure(which, &text).then_some("--insecure"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", which.name()))?;
        let stdout = child.stdout.take().context("take the child's stdout")?;
        let mut stdout = BufReader::new(stdout);
        let ready = tokio::time::timeout(READY_TIMEOUT, read_ready_line(&mut stdout)).await;
        let addr = match ready {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => bail!(
                "{} did not start: {e:#}\n--- log ---\n{}",
                which.name(),
                tail(&log)
            ),
            Err(_) => bail!(
                "{} not ready after {READY_TIMEOUT:?}\n--- log ---\n{}",
                which.name(),
                tail(&log)
            ),
        };
        Ok(SiteProcess {
            which,
            config: config.to_owned(),
            log,
            child,
            addr,
            _stdout: stdout,
            client_tls: None,
        })
    }

    /// This harness's clients (count, list, get) present `tls` from now on:
    /// for a hub that requires client certificates ([`operator_tls`]).
    #[must_use]
    pub fn with_client_tls(mut self, tls: ClientTlsConfig) -> SiteProcess {
        self.client_tls = Some(tls);
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (plain text on loopback).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`, for a site serving mutual TLS.
    pub fn tls_endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .context("the process has already been reaped")
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let endpoint = match &self.client_tls {
            None => Endpoint::from_shared(self.endpoint())?,
            Some(tls) => Endpoint::from_shared(self.tls_endpoint())?.tls_config(tls.clone())?,
        };
        endpoint
            .connect()
            .await
            .with_context(|| format!("connect to {} at {}", self.which.name(), self.addr))
    }

    pub async fn intake(&self) -> anyhow::Result<IntakeClient<Channel>> {
        Ok(IntakeClient::new(self.channel().await?))
    }

    pub async fn complaints(&self) -> anyhow::Result<ComplaintsClient<Channel>> {
        Ok(ComplaintsClient::new(self.channel().await?))
    }

    /// Number of complaints the site holds (Complaints.Count, no filter).
    pub async fn count(&self) -> anyhow::Result<u64> {
        let resp = self
            .complaints()
            .await?
            .count(v1::CountComplaintsRequest { filter: None })
            .await
            .with_context(|| format!("count complaints at {}", self.which.name()))?;
        Ok(resp.into_inner().count)
    }

    /// Every complaint id the site lists, page by page (Complaints.List),
    /// in listing order — duplicates, if any, are kept so a caller can
    /// detect them.
    pub async fn complaint_ids(&self) -> anyhow::Result<Vec<String>> {
        let mut client = self.complaints().await?;
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list(v1::ListComplaintsRequest {
                    filter: None,
                    page_size: 1_000,
                    page_token,
                })
                .await
                .with_context(|| format!("list complaints at {}", self.which.name()))?
                .into_inner();
            ids.extend(page.complaints.into_iter().map(|c| c.complaint_id));
            if page.next_page_token.is_empty() {
                return Ok(ids);
            }
            page_token = page.next_page_token;
        }
    }

    /// Sends SIGTERM (graceful shutdown); see [`SiteProcess::wait_exit`].
    pub async fn sigterm(&self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .context("run kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed: {status}");
        Ok(())
    }

    /// SIGKILLs the process (no chance to flush or close anything) and
    /// reaps it.
    pub async fn sigkill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL the process")
    }

    /// Waits up to `deadline` for the process to exit.
    ///
    /// # Errors
    /// Still running at the deadline (the error quotes its log).
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.context("wait for the process"),
            Err(_) => bail!(
                "{} still running after {deadline:?}\n--- log ---\n{}",
                self.which.name(),
                self.log_tail()
            ),
        }
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

/// Whether the site configured by `config_text` runs a plain-text link
/// (a hub without `[tls]`, or an `http://` parent), which `run` allows only
/// with `--insecure`. A site set up with certificates is started without
/// it, so it must do without plain text.
fn needs_insecure(which: Binary, config_text: &str) -> bool {
    let plain_server = which == Binary::Hub && !config_text.contains("\n[tls]");
    let plain_upstream = config_text.contains("url = \"http://");
    plain_server || plain_upstream
}

async fn read_ready_line(stdout: &mut BufReader<ChildStdout>) -> anyhow::Result<SocketAddr> {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).await.context("read stdout")? == 0 {
            bail!("exited before printing its readiness line");
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            return addr
                .parse()
                .with_context(|| format!("parse readiness line {line:?}"));
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs a one-shot command of `which` with `--config config` and returns
/// its stdout; fails with its stderr when it exits non-zero.
pub async fn run_command(which: Binary, config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary(which)?)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {} {}", which.name(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} {} exited with {}:\n{}",
            which.name(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("stdout is not UTF-8")
}

/// `lapor-node init` for district `site` in `dir`, with no parent; returns
/// the config path (`dir/node-<site>.toml`, data in `dir/node-<site>/`).
pub async fn init_node(dir: &Path, site: &str) -> anyhow::Result<PathBuf> {
    init_node_with_upstream(dir, site, None).await
}

/// [`init_node`], pushing to the province hub at `upstream`
/// (`http://127.0.0.1:PORT`) when given. Nothing needs to listen there yet.
pub async fn init_node_with_upstream(
    dir: &Path,
    site: &str,
    upstream: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let config = dir.join(format!("node-{site}.toml"));
    let data = dir.join(format!("node-{site}"));
    let data = data.to_str().context("data dir is not UTF-8")?;
    let mut args = vec!["init", "--site", site, "--data-dir", data];
    args.extend(upstream.iter().flat_map(|url| ["--upstream", *url]));
    run_command(Binary::Node, &config, &args).await?;
    Ok(config)
}

/// `lapor-hub init` for a hub in `dir`, with no parent; returns the config
/// path (`dir/hub-<site>.toml`, data in `dir/hub-<site>/`).
pub async fn init_hub(dir: &Path, role: &str, site: &str) -> anyhow::Result<PathBuf> {
    init_hub_with_upstream(dir, role, site, None).await
}

/// [`init_hub`], forwarding to the national hub at `upstream` when given
/// (a province only; nothing needs to listen there yet).
pub async fn init_hub_with_upstream(
    dir: &Path,
    role: &str,
    site: &str,
    upstream: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let config = dir.join(format!("hub-{site}.toml"));
    let data = dir.join(format!("hub-{site}"));
    let data = data.to_str().context("data dir is not UTF-8")?;
    let mut args = vec!["init", "--role", role, "--site", site, "--data-dir", data];
    args.extend(upstream.iter().flat_map(|url| ["--upstream", *url]));
    run_command(Binary::Hub, &config, &args).await?;
    Ok(config)
}

/// A loopback address that was free a moment ago: bound to port 0, read,
/// and released, so a child's `[upstream] url` can name a hub that is not
/// started yet. Another process could take the port in between; on
/// loopback in a test run that race is accepted.
pub fn reserve_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("bind 127.0.0.1:0 to reserve a port")?;
    listener.local_addr().context("read the reserved address")
}

/// The children a hub reports (`lapor-hub nodes --json`): site, cursor,
/// lag, quarantined, received events and duplicates.
pub async fn hub_children(config: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = run_command(Binary::Hub, config, &["nodes", "--json"]).await?;
    serde_json::from_str(&out).with_context(|| format!("parse nodes JSON {out:?}"))
}

/// The entry of `child` in [`hub_children`], if it has said Hello.
pub async fn hub_child(config: &Path, child: &str) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(hub_children(config)
        .await?
        .into_iter()
        .find(|c| c["site"] == child))
}

/// `status --json --integrity` of the site configured at `config`.
pub async fn status_json(which: Binary, config: &Path) -> anyhow::Result<serde_json::Value> {
    let out = run_command(which, config, &["status", "--json", "--integrity"]).await?;
    serde_json::from_str(&out).with_context(|| format!("parse status JSON {out:?}"))
}
