//! `lapor-hub ca`: the hub's small certificate authority — `init` (the CA
//! and the hub's own server certificate, and the `[tls]` section of its
//! config), `issue` (a bundle for a child site or an operator) and `revoke`
//! (the deny-list the running hub reads on every request).
//!
//! The CA lives in `<data dir>/ca/` beside the database; its key is mode
//! 0600. A bundle is a directory a district installs as it is: the CA
//! certificate, its own certificate and key, and a ready-to-use config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use lapor_shared::domain::{SiteCode, SiteRole};
use lapor_shared::rpc::caller::CallerRole;
use lapor_shared::site::config::toml_string;
use lapor_shared::tls::ca::{CA_CERT_FILE, Ca, REVOKED_FILE, write_private};
use lapor_shared::tls::peer::{Subject, parse_role};

use crate::cli::{CaArgs, CaCommand, IssueArgs};
use crate::config::HubConfig;
use crate::init::load;

/// The hub's own server certificate and key, in the CA directory.
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";

/// `<data dir>/ca` of the hub configured at `config`.
pub fn ca_dir(config: &HubConfig) -> PathBuf {
    config
        .store
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .join("ca")
}

/// `lapor-hub ca ...`.
pub async fn ca(config_path: &Path, args: CaArgs) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let dir = ca_dir(&config);
    match args.command {
        CaCommand::Init { days } => init(config_path, &config, &dir, days),
        CaCommand::Issue(issue_args) => issue(&config, &dir, issue_args),
        CaCommand::Revoke { serial, site } => revoke(&dir, serial, site),
    }
}

/// Lifetime of the hub's own server certificate when `run` re-issues it.
const SERVER_VALIDITY_DAYS: u32 = 365;

/// Re-issues the hub's own server certificate from its CA when it is in
/// the last third of its life (or expired), before the hub serves with it:
/// a hub that holds its CA never presents its children an expired server
/// certificate after a restart. Returns the new expiry when it re-issued.
/// Does nothing for a hub without a CA, or whose `[tls]` names another
/// certificate (installed by hand).
///
/// # Errors
/// The CA or the certificate could not be read, or the new one written.
pub fn refresh_server_cert(config: &HubConfig) -> anyhow::Result<Option<i64>> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let dir = ca_dir(config);
    let (cert_path, key_path) = (dir.join(SERVER_CERT_FILE), dir.join(SERVER_KEY_FILE));
    if tls.cert != cert_path || !dir.join(lapor_shared::tls::ca::CA_KEY_FILE).exists() {
        return Ok(None);
    }
    let pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("read {}", cert_path.display()))?;
    let (not_before, not_after) = lapor_shared::tls::renew::validity(&pem, &cert_path)?;
    if !lapor_shared::tls::renew::due(not_before, not_after, chrono::Utc::now().timestamp()) {
        return Ok(None);
    }
    let ca = Ca::open(&dir)?;
    let server = ca.issue(
        &Subject::Site(config.site_code()?),
        days(SERVER_VALIDITY_DAYS),
        None,
    )?;
    let key = server
        .key_pem
        .as_ref()
        .context("a new server certificate came without its key")?;
    lapor_shared::tls::renew::install(
        &lapor_shared::site::config::TlsFiles {
            ca: tls.ca.clone(),
            cert: cert_path,
            key: key_path,
        },
        &server.cert_pem,
        key,
    )?;
    Ok(Some(server.not_after))
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 24 * 3600)
}

fn init(
    config_path: &Path,
    config: &HubConfig,
    dir: &Path,
    valid_days: u32,
) -> anyhow::Result<ExitCode> {
    let site = config.site_code()?;
    let ca = Ca::init(dir, &site)?;
    let server = ca.issue(&Subject::Site(site.clone()), days(valid_days), None)?;
    std::fs::write(dir.join(SERVER_CERT_FILE), &server.cert_pem)
        .with_context(|| format!("write {}", dir.join(SERVER_CERT_FILE).display()))?;
    if let Some(key) = &server.key_pem {
        write_private(&dir.join(SERVER_KEY_FILE), key.as_bytes())?;
    }
    println!("CA of hub {site} created in {}", dir.display());
    if config.tls.is_none() {
        // The config is ours (written by `init`): add the section rather
        // than leave the operator to copy paths by hand.
        let section = format!(
            "\n[tls]\nca = {}\ncert = {}\nkey = {}\nrevoked = {}\n",
            toml_string(&dir.join(CA_CERT_FILE).to_string_lossy()),
            toml_string(&dir.join(SERVER_CERT_FILE).to_string_lossy()),
            toml_string(&dir.join(SERVER_KEY_FILE).to_string_lossy()),
            toml_string(&dir.join(REVOKED_FILE).to_string_lossy()),
        );
        let mut text = std::fs::read_to_string(config_path)
            .with_context(|| format!("read {}", config_path.display()))?;
        text.push_str(&section);
        HubConfig::parse(&text).context("parse the config with [tls]")?;
        std::fs::write(config_path, text)
            .with_context(|| format!("write {}", config_path.display()))?;
        println!(
            "added [tls] to {}: the hub now requires client certificates",
            config_path.display()
        );
    }
    println!("issue a district bundle with: lapor-hub ca issue --site NN.NN --out DIR");
    Ok(ExitCode::SUCCESS)
}

fn issue(config: &HubConfig, dir: &Path, args: IssueArgs) -> anyhow::Result<ExitCode> {
    let ca = Ca::open(dir)?;
    let own = config.site_code()?;
    let subject = match (&args.site, &args.operator) {
        (Some(site), None) => {
            let site = SiteCode::parse(site).with_context(|| format!("parse --site {site:?}"))?;
            if lapor_shared::replication::scope::parent_of(&site).as_ref() != Some(&own) {
                bail!(
                    "site {site} is not a child of hub {own}: its bundle comes from its own parent"
                );
            }
            Subject::Site(site)
        }
        (None, Some(name)) => {
            let role = parse_role(&args.role)
                .filter(|r| *r != CallerRole::Site)
                .with_context(|| {
                    format!("--role {:?} is not operator or identity-reader", args.role)
                })?;
            Subject::Operator {
                name: name.clone(),
                role,
            }
        }
        _ => bail!("give exactly one of --site or --operator"),
    };
    let not_after = match args.testing_not_after_unix {
        Some(ts) => Some(
            time::OffsetDateTime::from_unix_timestamp(ts)
                .context("--testing-not-after-unix is out of range")?,
        ),
        None => None,
    };
    let issued = ca.issue(&subject, days(args.days), not_after)?;
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    };
    write("ca.pem", ca.cert_pem())?;
    let (cert_name, key_name) = match &subject {
        Subject::Site(_) => ("cert.pem", "cert.key"),
        Subject::Operator { .. } => ("operator.pem", "operator.key"),
    };
    write(cert_name, &issued.cert_pem)?;
    if let Some(key) = &issued.key_pem {
        write_private(&out.join(key_name), key.as_bytes())?;
    }
    if let Subject::Site(site) = &subject {
        let url = match &args.url {
            Some(url) => url.clone(),
            None => format!("https://{}", config.server.local_addr()),
        };
        let (file, text) = child_config(site, &url);
        write(file, &text)?;
        println!("bundle for {site} in {} (config: {file})", out.display());
    } else {
        println!(
            "bundle for operator {} in {}",
            subject.name(),
            out.display()
        );
    }
    println!(
        "serial {}, expires {}",
        issued.serial,
        chrono::DateTime::from_timestamp(issued.not_after, 0)
            .map_or_else(|| issued.not_after.to_string(), |t| t.to_rfc3339())
    );
    Ok(ExitCode::SUCCESS)
}

/// The ready-to-use config in a bundle: paths relative to the bundle.
fn child_config(site: &SiteCode, url: &str) -> (&'static str, String) {
    let upstream = format!(
        "[upstream]\nurl = {}\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"cert.key\"\n",
        toml_string(url)
    );
    match site.role() {
        SiteRole::Node => (
            "lapor-node.toml",
            format!(
                "# Bundle from `lapor-hub ca issue`: install this directory as it is.\n[site]\ncode = {}\n\n[store]\npath = \"node.db\"\n\n{upstream}",
                toml_string(site.as_str())
            ),
        ),
        _ => (
            "lapor-hub.toml",
            format!(
                "# Bundle from `lapor-hub ca issue`: install this directory as it is,\n# then `lapor-hub ca init` for this province's own CA.\n[site]\nrole = \"province\"\ncode = {}\n\n[store]\npath = \"hub.db\"\n\n{upstream}",
                toml_string(site.as_str())
            ),
        ),
    }
}

fn revoke(dir: &Path, serial: Option<String>, site: Option<String>) -> anyhow::Result<ExitCode> {
    let ca = Ca::open(dir)?;
    match (serial, site) {
        (Some(serial), None) => {
            ca.revoke_serial(&serial, "by serial")?;
            println!("revoked {serial}");
        }
        (None, Some(site)) => {
            for serial in ca.revoke_subject(&site)? {
                println!("revoked {serial} ({site})");
            }
        }
        _ => bail!("give exactly one of --serial or --site"),
    }
    println!("the running hub refuses it from its next request on");
    Ok(ExitCode::SUCCESS)
}
