//! `lapor-hub` binary: parse the command line and hand over to the library.
//! Everything else lives in `lapor_hub` so tests can drive it in-process.

use std::process::ExitCode;

use clap::Parser as _;
use lapor_hub::cli::{Cli, dispatch};

/// mimalloc, not glibc's malloc: less CPU per replicated complaint in the
/// same-run pairs of docs/benchmarks.md (seventh pass), where malloc and
/// free were a sixth of the runtime threads' samples. Its huge pages cost
/// resident memory; the README's dependency table gives both figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match dispatch(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            // The one place an error is reported: to stderr, where the
            // operator running the command (or journald) sees it, whether
            // or not logging was initialised before it happened.
            eprintln!("error: failed to {e:#}");
            ExitCode::FAILURE
        }
    }
}
