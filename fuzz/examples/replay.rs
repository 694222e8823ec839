//! Runs one target's check on the given input files, on the stable
//! toolchain and without libFuzzer: to see a crash input's panic in a debug
//! build, or step through it in a debugger.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example replay -- fuzz_hello crash-…
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(target), files) = (args.next(), args.collect::<Vec<_>>()) else {
        eprintln!("usage: replay <target> <input>...");
        return ExitCode::FAILURE;
    };
    let Some((_, check)) = lapor_fuzz::TARGETS.iter().find(|(name, _)| *name == target) else {
        let names: Vec<_> = lapor_fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
        eprintln!("unknown target {target:?}; targets: {}", names.join(", "));
        return ExitCode::FAILURE;
    };
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => {
                check(&bytes);
                println!("{file}: ok");
            }
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
