//! The federation under test: a national hub, the Aceh province hub and
//! three district nodes (Gayo Lues 11.13, Aceh Tengah 11.04, Kota Banda
//! Aceh 11.71), real processes on loopback, every child→parent link through
//! its own [`FaultProxy`] (the child's `[upstream] url` is the proxy).
//!
//! It owns the processes and what the nemesis does to them: SIGKILL and
//! restart on the same address, a clock offset written into a site's TOML
//! (`[testing] clock_offset_ms`), and a node disk that can be filled — a
//! small tmpfs on the node's data directory, mounted only when the harness
//! runs as root inside a private mount namespace ([`DiskMode::probe`]).
//!
//! Sites are initialised with the `site` functions (`init_hub`,
//! `init_node_with_upstream`, ...), so a change in how sites are set up
//! (mutual TLS, say) reaches this harness unchanged.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures::future::try_join_all;
use tempfile::TempDir;

use super::proxy::FaultProxy;
use crate::Binary;
use crate::site::{
    SiteProcess, init_hub, init_hub_with_upstream, init_node_with_upstream, status_json,
};

/// The national hub's code.
pub const NATIONAL: &str = "00";
/// The province hub (Aceh).
pub const PROVINCE: &str = "11";
/// The district nodes, in site order.
pub const NODES: [&str; 3] = ["11.13", "11.04", "11.71"];

/// Env var the chaos binary sets once it runs in its own mount namespace.
pub const PRIVATE_MOUNTS_ENV: &str = "LAPOR_CHAOS_PRIVATE_MOUNTS";
/// Size of the tmpfs under a node whose disk may be filled.
const DISK_BYTES: u64 = 32 * 1024 * 1024;
/// A restart may find its port briefly unavailable; it is retried this
/// often before the harness gives up.
const RESTART_TRIES: u32 = 3;

/// The tier of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    National,
    Province,
    Node,
}

impl Tier {
    pub fn binary(self) -> Binary {
        match self {
            Tier::Node => Binary::Node,
            _ => Binary::Hub,
        }
    }
}

/// What the workload and the checker need to reach a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteInfo {
    pub code: &'static str,
    pub tier: Tier,
    pub addr: SocketAddr,
}

/// Whether the disk-full fault can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskMode {
    /// Root in a private mount namespace: tmpfs mounts stay ours.
    Available,
    /// Skipped, with the reason printed for the operator.
    Skipped(String),
}

impl DiskMode {
    /// Available only as root with [`PRIVATE_MOUNTS_ENV`] set (the chaos
    /// binary re-executes itself under `unshare -m` to get there).
    pub fn probe() -> DiskMode {
        if !is_root() {
            return DiskMode::Skipped(
                "disk-full fault skipped: not running as root (it needs a tmpfs mount)".into(),
            );
        }
        if std::env::var_os(PRIVATE_MOUNTS_ENV).is_none() {
            return DiskMode::Skipped(format!(
                "disk-full fault skipped: not in a private mount namespace \
                 (run the chaos binary, which enters one with `unshare -m`; {PRIVATE_MOUNTS_ENV} unset)"
            ));
        }
        DiskMode::Available
    }
}

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A tmpfs mounted on a node's data directory, with a ballast file that
/// fills it.
#[derive(Debug)]
struct Disk {
    mount: PathBuf,
    ballast: PathBuf,
}

impl Disk {
    async fn mount(dir: &Path) -> anyhow::Result<Disk> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let out = tokio::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK_BYTES}")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .await
            .context("run mount")?;
        if !out.status.success() {
            bail!(
                "mount tmpfs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Disk {
            mount: dir.to_owned(),
            ballast: dir.join("ballast"),
        })
    }

    /// Writes ballast until the tmpfs is full.
    fn fill(&self) -> anyhow::Result<u64> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ballast)
            .context("open the ballast file")?;
        let block = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        // Bounded: the tmpfs cannot take more than its size.
        for _ in 0..=(DISK_BYTES / block.len() as u64 + 1) {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e).context("write ballast"),
            }
        }
        // Whatever fits of a smaller piece, so not even a page is left.
        for _ in 0..64 {
            match file.write(&block[..4096]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => break,
            }
        }
        Ok(written)
    }

    fn free(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.ballast) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("remove ballast"),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Lazy: a killed process may still hold files open for a moment.
        // Best effort — the namespace's mounts vanish with it anyway.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

/// One site of the federation.
#[derive(Debug)]
struct Site {
    code: &'static str,
    tier: Tier,
    config: PathBuf,
    /// Where it listens, across restarts.
    addr: SocketAddr,
    /// `None` while killed.
    process: Option<SiteProcess>,
    /// The proxy on its link to its parent (none for national).
    uplink: Option<FaultProxy>,
    clock_offset_ms: i64,
    disk: Option<Disk>,
}

/// The running federation. Dropping it kills every process.
#[derive(Debug)]
pub struct Federation {
    /// Sites in order: national, province, then [`NODES`].
    sites: Vec<Site>,
    /// Kept last so it is removed after the processes and mounts are gone.
    dir: TempDir,
}

/// How to build a federation.
#[derive(Debug, Clone, Default)]
pub struct FederationOptions {
    /// Give this node (by code) a fillable tmpfs disk.
    pub disk_node: Option<&'static str>,
    /// Keep the directory (configs, databases, logs) after the run.
    pub keep_dir: bool,
}

/// A loopback port held by a bound listener until the site starts, so the
/// proxies (bound meanwhile) cannot be given it.
fn hold_port() -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")
}

impl Federation {
    /// Initialises and starts the federation; returns once every site has
    /// announced readiness.
    ///
    /// # Errors
    /// An init, a mount or a start failed (the error quotes the site's log).
    pub async fn start(options: &FederationOptions) -> anyhow::Result<Federation> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("lapor-chaos-");
        if options.keep_dir {
            builder.disable_cleanup(true);
        }
        let dir = builder
            .tempdir()
            .context("create the federation directory")?;
        let national_port = hold_port()?;
        let province_port = hold_port()?;
        let national_addr = national_port.local_addr()?;
        let province_addr = province_port.local_addr()?;
        let province_link = FaultProxy::start(national_addr).await?;
        let mut node_links = Vec::new();
        for _ in NODES {
            node_links.push(FaultProxy::start(province_addr).await?);
        }
        let mut disks = Vec::new();
        for code in NODES {
            disks.push(match options.disk_node {
                Some(d) if d == code => {
                    Some(Disk::mount(&dir.path().join(format!("node-{code}"))).await?)
                }
                _ => None,
            });
        }
        let root = dir.path();
        let province_url = province_link.url();
        let node_urls: Vec<String> = node_links.iter().map(FaultProxy::url).collect();
        let (national_config, province_config, node_configs) = tokio::try_join!(
            init_hub(root, "national", NATIONAL),
            init_hub_with_upstream(root, "province", PROVINCE, Some(&province_url)),
            try_join_all(
                NODES
                    .iter()
                    .zip(&node_urls)
                    .map(|(code, url)| init_node_with_upstream(root, code, Some(url)))
            ),
        )?;
        drop((national_port, province_port));
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let (national, province, nodes) = tokio::try_join!(
            SiteProcess::start_at(Binary::Hub, &national_config, national_addr),
            SiteProcess::start_at(Binary::Hub, &province_config, province_addr),
            try_join_all(node_configs.iter().map(|c| SiteProcess::start_at(
                Binary::Node,
                c,
                any_port
            ))),
        )?;
        let mut sites = vec![
            Site {
                code: NATIONAL,
                tier: Tier::National,
                config: national_config,
                addr: national.addr(),
                process: Some(national),
                uplink: None,
                clock_offset_ms: 0,
                disk: None,
            },
            Site {
                code: PROVINCE,
                tier: Tier::Province,
                config: province_config,
                addr: province.addr(),
                process: Some(province),
                uplink: Some(province_link),
                clock_offset_ms: 0,
                disk: None,
            },
        ];
        for (((code, config), process), (link, disk)) in NODES
            .into_iter()
            .zip(node_configs)
            .zip(nodes)
            .zip(node_links.into_iter().zip(disks))
        {
            sites.push(Site {
                code,
                tier: Tier::Node,
                config,
                addr: process.addr(),
                process: Some(process),
                uplink: Some(link),
                clock_offset_ms: 0,
                disk,
            });
        }
        Ok(Federation { sites, dir })
    }

    /// The federation's directory (configs, databases, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory after the federation is dropped (for a failed
    /// schedule's post-mortem); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_owned()
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    pub fn info(&self, site: usize) -> SiteInfo {
        let s = &self.sites[site];
        SiteInfo {
            code: s.code,
            tier: s.tier,
            addr: s.addr,
        }
    }

    pub fn infos(&self) -> Vec<SiteInfo> {
        (0..self.sites.len()).map(|i| self.info(i)).collect()
    }

    /// The index of the site with `code`.
    pub fn index_of(&self, code: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.code == code)
    }

    pub fn config(&self, site: usize) -> &Path {
        &self.sites[site].config
    }

    /// The proxy on `site`'s link to its parent (none for national).
    pub fn uplink(&self, site: usize) -> Option<&FaultProxy> {
        self.sites[site].uplink.as_ref()
    }

    /// Sites that have a link to a parent.
    pub fn links(&self) -> Vec<usize> {
        (0..self.sites.len())
            .filter(|&i| self.sites[i].uplink.is_some())
            .collect()
    }

    pub fn has_disk(&self, site: usize) -> bool {
        self.sites[site].disk.is_some()
    }

    pub fn is_running(&self, site: usize) -> bool {
        self.sites[site].process.is_some()
    }

    pub fn clock_offset_ms(&self, site: usize) -> i64 {
        self.sites[site].clock_offset_ms
    }

    /// SIGKILLs `site` (a power cut: nothing is flushed or closed).
    /// Killing a dead site does nothing.
    ///
    /// # Errors
    /// The kill failed.
    pub async fn kill(&mut self, site: usize) -> anyhow::Result<()> {
        if let Some(mut process) = self.sites[site].process.take() {
            process.sigkill().await?;
        }
        Ok(())
    }

    /// Starts `site` again on its old address if it is down.
    ///
    /// # Errors
    /// It did not come up (the error quotes its log).
    pub async fn restart(&mut self, site: usize) -> anyhow::Result<()> {
        let s = &mut self.sites[site];
        if s.process.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..RESTART_TRIES {
            match SiteProcess::start_at(s.tier.binary(), &s.config, s.addr).await {
                Ok(p) => {
                    s.process = Some(p);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| anyhow::anyhow!("no start attempted"));
        Err(e.context(format!("restart {} at {}", s.code, s.addr)))
    }

    /// Writes `[testing] clock_offset_ms = offset` into `site`'s config and
    /// restarts it (SIGKILL, start) so the new clock takes effect.
    ///
    /// # Errors
    /// The config could not be rewritten, or the restart failed.
    pub async fn set_clock_offset(&mut self, site: usize, offset_ms: i64) -> anyhow::Result<()> {
        let path = self.sites[site].config.clone();
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        std::fs::write(&path, with_clock_offset(&text, offset_ms))
            .with_context(|| format!("write {}", path.display()))?;
        self.sites[site].clock_offset_ms = offset_ms;
        self.kill(site).await?;
        self.restart(site).await
    }

    /// Fills `site`'s tmpfs; returns the ballast bytes written.
    ///
    /// # Errors
    /// The site has no tmpfs disk, or writing failed other than by ENOSPC.
    pub fn fill_disk(&self, site: usize) -> anyhow::Result<u64> {
        self.sites[site]
            .disk
            .as_ref()
            .context("this site has no fillable disk")?
            .fill()
    }

    /// Removes the ballast from `site`'s tmpfs (if it has one).
    ///
    /// # Errors
    /// The ballast could not be removed.
    pub fn free_disk(&self, site: usize) -> anyhow::Result<()> {
        match &self.sites[site].disk {
            Some(d) => d.free(),
            None => Ok(()),
        }
    }

    /// Clears every fault: links healed, disks freed, dead sites started.
    /// Clock offsets stay: a wrong clock is a condition the federation must
    /// converge under, not a partition that heals.
    ///
    /// # Errors
    /// A disk could not be freed or a site did not come back.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for site in 0..self.sites.len() {
            if let Some(link) = &self.sites[site].uplink {
                link.heal();
            }
            self.free_disk(site)?;
        }
        for site in 0..self.sites.len() {
            self.restart(site).await?;
        }
        Ok(())
    }

    /// `status --json --integrity` of `site` (works while it runs or not).
    ///
    /// # Errors
    /// The command failed — including a failed integrity check, which makes
    /// it exit non-zero.
    pub async fn status(&self, site: usize) -> anyhow::Result<serde_json::Value> {
        let s = &self.sites[site];
        status_json(s.tier.binary(), &s.config).await
    }

    /// The last lines of `site`'s log, for failure messages.
    pub fn log_tail(&self, site: usize) -> String {
        let log = self.sites[site].config.with_extension("log");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        // Processes first (kill_on_drop), then the mounts under them; the
        // directory goes last with the `dir` field.
        for site in &mut self.sites {
            site.process.take();
        }
        for site in &mut self.sites {
            site.disk.take();
        }
    }
}

/// `text` (a site's TOML) with `[testing] clock_offset_ms` set to `offset`.
pub fn with_clock_offset(text: &str, offset_ms: i64) -> String {
    let line = format!("clock_offset_ms = {offset_ms}");
    let mut replaced = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("clock_offset_ms") {
                replaced = true;
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !replaced {
        out.push(String::new());
        out.push("[testing]".into());
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_offset_is_replaced_in_place() {
        let text = "[site]\ncode = \"11.13\"\n\n[testing]\n# note\nclock_offset_ms = 0\n";
        let out = with_clock_offset(text, -259_200_000);
        assert!(out.contains("[testing]\n# note\nclock_offset_ms = -259200000\n"));
        assert_eq!(out.matches("clock_offset_ms").count(), 1);
    }

    #[test]
    fn a_missing_testing_section_is_added() {
        let out = with_clock_offset("[site]\ncode = \"11.13\"\n", 5);
        assert!(out.ends_with("[testing]\nclock_offset_ms = 5\n"), "{out}");
    }
}
