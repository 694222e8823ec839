//! The files in `deploy/` stay in step with the binaries: the example
//! configs parse and validate, and the systemd units' command lines are
//! accepted by the CLIs they start.

// Test helpers outside #[test] fns: a panic is how they report failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use clap::Parser as _;

fn deploy(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

#[test]
fn example_node_config_parses_and_validates() {
    let config =
        lapor_node::config::NodeConfig::parse(&deploy("config/node.example.toml")).unwrap();
    config.validate().unwrap();
    assert_eq!(config.site.code, "11.13");
}

#[test]
fn example_hub_config_parses_and_validates() {
    let config = lapor_hub::config::HubConfig::parse(&deploy("config/hub.example.toml")).unwrap();
    config.validate().unwrap();
    assert_eq!(config.site.code, "11");
}

/// The value of `key=` lines in a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn check_unit(unit: &str, binary: &str) -> Vec<Vec<String>> {
    assert_eq!(unit_values(unit, "Type"), ["exec"]);
    assert_eq!(unit_values(unit, "KillSignal"), ["SIGTERM"]);
    for hardening in [
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "ProtectHome",
    ] {
        assert!(
            !unit_values(unit, hardening).is_empty(),
            "{binary}: {hardening} missing"
        );
    }
    let commands: Vec<Vec<String>> = unit_values(unit, "ExecStart")
        .into_iter()
        .chain(unit_values(unit, "ExecStartPre"))
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert!(!commands.is_empty());
    for argv in &commands {
        let program = PathBuf::from(&argv[0]);
        assert_eq!(program.file_name().unwrap(), binary, "{argv:?}");
    }
    commands
}

#[test]
fn node_unit_starts_a_valid_node_command_line() {
    for argv in check_unit(&deploy("systemd/lapor-node.service"), "lapor-node") {
        let cli =
            lapor_node::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert_eq!(cli.config, Path::new("/etc/lapor/node.toml"));
    }
}

#[test]
fn hub_unit_starts_a_valid_hub_command_line() {
    for argv in check_unit(&deploy("systemd/lapor-hub.service"), "lapor-hub") {
        let cli =
            lapor_hub::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert_eq!(cli.config, Path::new("/etc/lapor/hub.toml"));
    }
}
