//! Setting a hub up and checking its config: `init`, `print-config`,
//! `check-config`.
//!
//! `init` writes the commented template with this hub's role and code (never
//! over an existing file unless `--force`), then creates and migrates the
//! database and its site key (mode 0600, beside the database unless
//! `store.key_path` says otherwise; an existing key is kept, never
//! replaced), so the first `run` finds everything in place.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use lapor_shared::domain::SiteCode;

use crate::cli::{InitArgs, PrintConfigArgs};
use crate::config::{HubConfig, TEMPLATE, render_template};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "hub.db";

/// `lapor-hub init`.
pub async fn init(config_path: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    let site =
        SiteCode::parse(&args.site).with_context(|| format!("parse --site {:?}", args.site))?;
    if config_path.exists() && !args.force {
        bail!(
            "write config {}: the file exists (pass --force to overwrite it)",
            config_path.display()
        );
    }
    let config_dir = absolute_parent(config_path)?;
    let data_dir = match args.data_dir {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => std::env::current_dir()
            .context("read the current directory")?
            .join(dir),
        None => config_dir.join("data"),
    };
    let db_path = data_dir.join(DB_FILE);
    let mut text = render_template(args.role, &site, &db_path, args.listen)
        .context("fill in the config template")?;
    if let Some(url) = &args.upstream {
        // Appended as its own table: TOML tables may come in any order, and
        // the template's commented example stays as documentation.
        text.push_str(&format!(
            "\n[upstream]\nurl = {}\n",
            toml::Value::String(url.clone())
        ));
    }
    // Validate before writing anything: a role/code mismatch must not leave
    // a half-initialised hub behind.
    let config = HubConfig::parse(&text).context("parse the generated config")?;
    config.validate().context("validate the generated config")?;

    std::fs::create_dir_all(&config_dir)
        .with_context(|| format!("create {}", config_dir.display()))?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("create data directory {}", data_dir.display()))?;
    std::fs::write(config_path, text)
        .with_context(|| format!("write config {}", config_path.display()))?;

    let store = crate::open_store(&config)
        .await
        .with_context(|| format!("create database {}", db_path.display()))?;
    let stats = store.stats().await.context("read store stats")?;
    store.close().await.context("close the store")?;

    println!("wrote config {}", config_path.display());
    println!(
        "database {} (schema version {}, {} hub {})",
        db_path.display(),
        stats.schema_version,
        args.role.as_str(),
        stats.site
    );
    print_key_line(&config.key_path());
    println!(
        "start the hub with: lapor-hub --config {} run",
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Tells the operator where the key is and why it matters.
fn print_key_line(key: &Path) {
    println!(
        "site key {} (mode 0600): back it up apart from the database; without it reporter identities cannot be read",
        key.display()
    );
}

/// The directory a relative config path lives in, made absolute so the
/// store path written into the config does not depend on the cwd of `run`.
fn absolute_parent(config_path: &Path) -> anyhow::Result<PathBuf> {
    let parent = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).with_context(|| format!("resolve {}", parent.display()))
}

/// `lapor-hub print-config`.
pub fn print_config(config_path: &Path, args: PrintConfigArgs) -> anyhow::Result<ExitCode> {
    if args.effective {
        let config = load(config_path)?;
        print!(
            "{}",
            toml::to_string_pretty(&config).context("serialise the config")?
        );
    } else {
        print!("{TEMPLATE}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `lapor-hub check-config`.
pub fn check_config(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    println!(
        "config ok: {} — {} hub {}, store {}, listen {}, upstream {}",
        config_path.display(),
        config.site.role.as_str(),
        config.site.code,
        config.store.path.display(),
        config.server.listen,
        config.upstream.as_ref().map_or("none", |u| u.url.as_str()),
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the config with the context every command reports.
pub(crate) fn load(config_path: &Path) -> anyhow::Result<HubConfig> {
    HubConfig::load(config_path).context("load config")
}
