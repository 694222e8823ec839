//! What this machine charges for memory touched for the first time: the
//! cost under every page a site's heap or page cache takes on. On the
//! project's virtual machines it is large and it moves, and it is a share
//! of every replication figure (docs/benchmarks.md, seventh pass), so this
//! measures it beside what it is compared with, in the same run.
//!
//! `cargo run --release -p lapor-tests --bin bench-machine [-- --mib 256 --reps 5]`
//!
//! Each rep maps fresh anonymous memory and writes one byte per 4 KiB page:
//! with 4 KiB pages (`MADV_NOHUGEPAGE`), with transparent huge pages
//! (`MADV_HUGEPAGE`, what mimalloc asks for), and once more over pages
//! already touched (the loop alone). Then it writes a fresh file in 16 KiB
//! writes (new page-cache pages, as a growing database gets) and writes it
//! again in place (pages the cache already holds). The last line is one
//! JSON object of the medians over the reps, and the first rep's figures,
//! which on a fresh machine are memory the host had not yet backed.

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use lapor_tests::median;
use memmap2::{Advice, MmapMut};

#[derive(Parser)]
struct Args {
    /// MiB mapped (and written to the file) per measurement.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Repetitions of every measurement; the JSON holds the medians.
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

const PAGE: usize = 4096;
const WRITE: usize = 16 * 1024;

/// µs per 4 KiB page to write one byte into each page of a fresh mapping
/// of `bytes` with `advice`, and µs per page to do it again over the same,
/// now resident, pages.
fn anon(bytes: usize, advice: Advice) -> anyhow::Result<(f64, f64)> {
    let mut map = MmapMut::map_anon(bytes).context("map anonymous memory")?;
    map.advise(advice).context("madvise")?;
    let pages = (bytes / PAGE) as f64;
    let mut pass = |value: u8| {
        let started = Instant::now();
        for off in (0..bytes).step_by(PAGE) {
            map[off] = value;
        }
        std::hint::black_box(&map);
        started.elapsed().as_secs_f64() * 1e6 / pages
    };
    let first = pass(1);
    let again = pass(2);
    Ok((first, again))
}

/// µs per KiB to write a fresh file of `bytes` in 16 KiB writes, and to
/// write it again in place; both followed by one fsync, not timed.
fn file(dir: &std::path::Path, bytes: usize) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("pages.bin");
    let block: Vec<u8> = (0..WRITE).map(|i| (i * 31 % 251) as u8).collect();
    let f = std::fs::File::create(&path).context("create scratch file")?;
    let kib = (bytes / 1024) as f64;
    let pass = || -> anyhow::Result<f64> {
        let started = Instant::now();
        for off in (0..bytes).step_by(WRITE) {
            f.write_all_at(&block, off as u64)?;
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / kib;
        f.sync_all()?;
        Ok(us)
    };
    let fresh = pass()?;
    let again = pass()?;
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((fresh, again))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bytes = args.mib << 20;
    let dir = tempfile::tempdir()?;
    let mut small = Vec::new();
    let mut huge = Vec::new();
    let mut resident = Vec::new();
    let mut fresh = Vec::new();
    let mut cached = Vec::new();
    for rep in 1..=args.reps.max(1) {
        let (s, r) = anon(bytes, Advice::NoHugePage)?;
        let (h, _) = anon(bytes, Advice::HugePage)?;
        let (f, c) = file(dir.path(), bytes)?;
        eprintln!(
            "rep {rep}: 4 KiB pages {s:.2} us/page (resident {r:.2}), huge pages {h:.2} us/4 KiB; file: new pages {f:.3} us/KiB, in place {c:.3} us/KiB"
        );
        small.push(s);
        huge.push(h);
        resident.push(r);
        fresh.push(f);
        cached.push(c);
    }
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let json = serde_json::json!({
        "bench": "machine",
        "mib": args.mib,
        "reps": small.len(),
        "anon_first_touch_us_per_page": round(median(small.iter().copied())),
        "anon_huge_first_touch_us_per_4k": round(median(huge.iter().copied())),
        "anon_resident_us_per_page": round(median(resident)),
        "file_new_pages_us_per_kib": round(median(fresh.iter().copied())),
        "file_in_place_us_per_kib": round(median(cached)),
        "first_rep": {
            "anon_first_touch_us_per_page": round(small[0]),
            "anon_huge_first_touch_us_per_4k": round(huge[0]),
            "file_new_pages_us_per_kib": round(fresh[0]),
        },
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")?;
    Ok(())
}
