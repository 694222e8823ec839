//! Command-line interface of `lapor-node`: parsing (clap derive) and
//! dispatch to the module that owns each command. Nothing here does the
//! work itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lapor_shared::domain::Status;

use crate::{init, server, status, submit, view};

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "lapor-node.toml";

/// District (kabupaten/kota) node of lapor-sync: takes in SP4N-LAPOR!
/// complaints, keeps them in a local SQLite store, works offline.
#[derive(Debug, Parser)]
#[command(name = "lapor-node", version, about)]
pub struct Cli {
    /// Path of the node's TOML config file.
    #[arg(long, global = true, env = "LAPOR_NODE_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented config for this district and create its database.
    Init(InitArgs),
    /// Serve Intake, Complaints, health and reflection until SIGTERM.
    Run(RunArgs),
    /// Enter a complaint (staff-facing) and print its tracking number.
    Submit(Box<submit::SubmitArgs>),
    /// List complaints, newest first.
    List(ListArgs),
    /// Show one complaint and its event history.
    Show(ShowArgs),
    /// Show the site's store counters (and, on request, its integrity).
    Status(StatusArgs),
    /// Complaints past their LAPOR deadline (judged on the hub's clock).
    Overdue(OverdueArgs),
    /// The audit log of reporter-identity reads and refused writes.
    Audit(AuditArgs),
    /// Print the commented example config (or the effective one).
    PrintConfig(PrintConfigArgs),
    /// Load and validate the config, then print a one-line summary.
    CheckConfig,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Kemendagri code of this kabupaten/kota, e.g. 11.13 (Gayo Lues).
    #[arg(long)]
    pub site: String,
    /// Directory for the database; default: `data/` beside the config file.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address the node will serve gRPC on.
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
    /// Allow a plain-text link to the parent (an http:// upstream, loopback
    /// only): tests and the demo. A district uses the bundle from
    /// `lapor-hub ca issue`.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses (repeatable).
    #[arg(long = "status", value_enum)]
    pub statuses: Vec<StatusArg>,
    /// Only this province (NN) or district (NN.NN).
    #[arg(long)]
    pub region: Option<String>,
    /// At most this many complaints.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Tracking number (1113-K7Q-000042) or complaint id (UUID).
    pub key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// For an anonymous complaint, also print the identity recorded at this
    /// node (it never leaves the node; the read is audited).
    #[arg(long)]
    pub local_identity: bool,
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
pub struct StatusArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also run `PRAGMA integrity_check`; exit 1 if it is not "ok".
    #[arg(long)]
    pub integrity: bool,
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
pub struct PrintConfigArgs {
    /// Print the loaded config (after defaults and path resolution)
    /// instead of the commented example.
    #[arg(long)]
    pub effective: bool,
}

/// LAPOR statuses as command-line values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    BelumTerverifikasi,
    Terverifikasi,
    DalamProses,
    Selesai,
    Ditolak,
    Diarsipkan,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::BelumTerverifikasi => Status::BelumTerverifikasi,
            StatusArg::Terverifikasi => Status::Terverifikasi,
            StatusArg::DalamProses => Status::DalamProses,
            StatusArg::Selesai => Status::Selesai,
            StatusArg::Ditolak => Status::Ditolak,
            StatusArg::Diarsipkan => Status::Diarsipkan,
        }
    }
}

/// Runs the parsed command. `Ok(code)` carries a non-error exit status
/// (e.g. `status --integrity` finding damage).
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Init(args) => init::init(&config, args).await,
        Command::Run(args) => server::run_from_cli(&config, args).await,
        Command::Submit(args) => submit::submit(&config, *args).await,
        Command::List(args) => view::list(&config, args).await,
        Command::Show(args) => view::show(&config, args).await,
        Command::Status(args) => status::status(&config, args).await,
        Command::Overdue(args) => view::overdue(&config, args).await,
        Command::Audit(args) => status::audit(&config, args).await,
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
    fn no_subcommand_means_run() {
        let cli = Cli::try_parse_from(["lapor-node", "--config", "x.toml"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from([
            "lapor-node",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "x.toml",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Run(RunArgs {
                listen: Some(_),
                ..
            }))
        ));
    }
}
