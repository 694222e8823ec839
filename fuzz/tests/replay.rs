//! Replays the committed corpus through the same checks the fuzz targets
//! run, on the stable toolchain and without libFuzzer:
//!
//! ```text
//! cargo test --manifest-path fuzz/Cargo.toml
//! ```
//!
//! A crash input kept in `corpus/<target>/` fails here until the bug is
//! fixed; while a bug is open its input is listed in [`OPEN_BUGS`] and
//! replayed by an ignored test instead, as the project marks known bugs.

use std::path::Path;

/// Seeds that still crash their target: (target, seed file).
const OPEN_BUGS: &[(&str, &str)] = &[];

fn is_open_bug(target: &str, path: &str) -> bool {
    OPEN_BUGS
        .iter()
        .any(|(t, seed)| *t == target && path.ends_with(&format!("/{seed}")))
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read corpus file");
            (path.display().to_string(), bytes)
        })
        .collect()
}

#[test]
fn every_committed_input_passes_its_target() {
    for (target, check) in lapor_fuzz::TARGETS {
        let inputs = corpus(target);
        assert!(!inputs.is_empty(), "{target} has no seeds");
        for (path, bytes) in inputs {
            if is_open_bug(target, &path) {
                eprintln!("skip {path}: open bug, see OPEN_BUGS");
                continue;
            }
            eprintln!("replay {path}");
            check(&bytes);
        }
    }
}

#[test]
#[ignore = "bug: Hello's clock skew `req.wall_clock_ms - now` overflows for wall_clock_ms near \
            i64::MIN (shared/src/replication/server.rs)"]
fn the_inputs_of_open_bugs_pass_their_targets() {
    for (target, check) in lapor_fuzz::TARGETS {
        for (path, bytes) in corpus(target) {
            if is_open_bug(target, &path) {
                eprintln!("replay {path}");
                check(&bytes);
            }
        }
    }
}

#[test]
fn the_committed_seeds_are_what_the_generator_writes() {
    for (target, seeds) in lapor_fuzz::seeds::all() {
        let committed = corpus(target);
        for (name, bytes) in seeds {
            let found = committed
                .iter()
                .find(|(path, _)| path.ends_with(&format!("/{name}")));
            assert_eq!(
                found.map(|(_, b)| b),
                Some(&bytes),
                "{target}/{name} differs from the generator: run the gen_corpus example"
            );
        }
    }
}
