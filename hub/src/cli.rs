//! Command-line interface of `lapor-hub`: parsing (clap derive) and dispatch
//! to the module that owns each command. Nothing here does the work itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::HubRole;
use crate::{ca, children, init, server, status};

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "lapor-hub.toml";

/// Provincial or national hub of lapor-sync: stores the complaints of its
/// children and serves them to operators.
#[derive(Debug, Parser)]
#[command(name = "lapor-hub", version, about)]
pub struct Cli {
    /// Path of the hub's TOML config file.
    #[arg(long, global = true, env = "LAPOR_HUB_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented config for this hub and create its database.
    Init(InitArgs),
    /// Serve Complaints, health and reflection until SIGTERM.
    Run(RunArgs),
    /// Show the site's store counters (and, on request, its integrity).
    Status(StatusArgs),
    /// Complaints past their LAPOR deadline (judged on the hub's clock).
    Overdue(OverdueArgs),
    /// Each child's health: last seen, cursor, lag, clock skew, quarantined.
    Nodes(NodesArgs),
    /// Records refused by validation or authorization: list or replay them.
    Quarantine(QuarantineArgs),
    /// The audit log of reporter-identity reads and refused writes.
    Audit(AuditArgs),
    /// Print the commented example config (or the effective one).
    /// The hub's certificate authority: init, issue bundles, revoke.
    Ca(CaArgs),
    PrintConfig(PrintConfigArgs),
    /// Load and validate the config, then print a one-line summary.
    CheckConfig,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Tier of this hub.
    #[arg(long, value_enum)]
    pub role: HubRole,
    /// Hub code: the two-digit province code (11 = Aceh), or 00 for national.
    #[arg(long)]
    pub site: String,
    /// Directory for the database; default: `data/` beside the config file.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address the hub will serve gRPC on.
    #[arg(long, default_value = crate::config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The parent hub's gRPC URL (http://host:port); written as
    /// `[upstream] url`. Leave out for a site that does not forward (yet).
    #[arg(long)]
    pub upstream: Option<String>,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Listen here instead of `server.listen` (port 0 picks a free port;
    /// the readiness line on stdout tells which).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve plain text when the config has no [tls], and allow a
    /// plain-text parent link (loopback only): tests and the demo. A hub
    /// serves mutual TLS after `lapor-hub ca init`.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also run `PRAGMA integrity_check`; exit 1 if it is not "ok".
    #[arg(long)]
    pub integrity: bool,
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the log's hash chain; exit 1 at the first broken link.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List records awaiting an operator.
    List {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-validate records and store those that now pass (after the cause
    /// was fixed, e.g. an updated region list).
    Replay {
        /// Only these quarantine ids (default: all).
        #[arg(long)]
        id: Vec<i64>,
    },
}

#[derive(Debug, Args)]
pub struct OverdueArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many, most overdue first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA in `<data dir>/ca/` and the hub's own server
    /// certificate, and add `[tls]` to the config.
    Init {
        /// Lifetime of the hub's server certificate, in days (`run`
        /// re-issues it from the CA in its last third).
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Write a bundle (CA certificate, certificate, key, config) for a
    /// child site or an operator.
    Issue(IssueArgs),
    /// Put a certificate on the deny-list, by serial or every one of a site.
    Revoke {
        /// Serial number (hex, as printed by `issue`).
        #[arg(long)]
        serial: Option<String>,
        /// Site code (or operator name): every certificate issued to it.
        #[arg(long)]
        site: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The child site (`11.13` from a province, `11` from national).
    #[arg(long)]
    pub site: Option<String>,
    /// An operator's name (with --role).
    #[arg(long)]
    pub operator: Option<String>,
    /// The operator's role: operator or identity-reader.
    #[arg(long, default_value = "operator")]
    pub role: String,
    /// Directory to write the bundle to.
    #[arg(long)]
    pub out: PathBuf,
    /// The URL the child dials (default: https:// and this hub's listen
    /// address).
    #[arg(long)]
    pub url: Option<String>,
    /// Lifetime of the certificate, in days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// TEST ONLY: expiry as Unix seconds (a past one issues an expired
    /// certificate).
    #[arg(long, hide = true)]
    pub testing_not_after_unix: Option<i64>,
}

#[derive(Debug, Args)]
pub struct PrintConfigArgs {
    /// Print the loaded config (after defaults and path resolution)
    /// instead of the commented example.
    #[arg(long)]
    pub effective: bool,
}

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Init(args) => init::init(&config, args).await,
        Command::Run(args) => server::run_from_cli(&config, args).await,
        Command::Status(args) => status::status(&config, args).await,
        Command::Overdue(args) => status::overdue(&config, args).await,
        Command::Nodes(args) => children::nodes(&config, args).await,
        Command::Quarantine(args) => children::quarantine(&config, args).await,
        Command::Audit(args) => status::audit(&config, args).await,
        Command::Ca(args) => ca::ca(&config, args).await,
        Command::PrintConfig(args) => init::print_config(&config, args),
        Command::CheckConfig => init::check_config(&config),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                assert!(
                    builtin || arg.get_help().is_some(),
                    "{} --{} has no help",
                    cmd.get_name(),
                    arg.get_id()
                );
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&Cli::command());
    }

    #[test]
    fn init_takes_role_and_site() {
        let cli = Cli::try_parse_from(["lapor-hub", "init", "--role", "national", "--site", "00"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Init(InitArgs {
                role: HubRole::National,
                ..
            }))
        ));
        assert!(
            Cli::try_parse_from(["lapor-hub", "init", "--role", "district", "--site", "11"])
                .is_err()
        );
    }
}
