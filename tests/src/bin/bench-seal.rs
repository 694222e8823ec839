//! Per-operation costs of two things every received complaint goes
//! through, each against the way it was done before, measured in the same
//! run (docs/benchmarks.md, replication, fifth pass):
//!
//! - sealing and opening a reporter identity: `SiteKey` (HChaCha20 from
//!   `chacha20` + ring's ChaCha20-Poly1305) against the `chacha20poly1305`
//!   crate's `XChaCha20Poly1305`, on the sample's encoded identities;
//! - checking free text for control characters: `limits::check_text`
//!   against the byte-by-byte `position` search it replaced, on sample
//!   complaint bodies of ~1 KiB.
//!
//! `cargo run --release -p lapor-tests --bin bench-seal [-- --rounds N]`
//! The last line of output is one JSON object.

use std::hint::black_box;
use std::time::Instant;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use clap::Parser;
use prost::Message as _;
use rand::{RngCore as _, SeedableRng as _};

use lapor_shared::crypto::SiteKey;
use lapor_shared::proto::limits;
use lapor_tests::sample;

#[derive(Parser)]
struct Args {
    /// Operations timed per measurement.
    #[arg(long, default_value_t = 200_000)]
    rounds: usize,
}

/// Nanoseconds per item of `f` over `rounds` items, the best of three.
fn ns_per(rounds: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for i in 0..rounds {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / rounds as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// `limits::check_text` as it was before the fifth pass, for ASCII text
/// (the bodies here are): the first refused byte searched for one byte at
/// a time, then the length rules.
fn check_text_byte_by_byte(s: &str, min: usize, max: usize) -> bool {
    if min > 0 && s.trim().is_empty() || !s.is_ascii() {
        return false;
    }
    let bad = s
        .bytes()
        .position(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f);
    bad.is_none() && (min..=max).contains(&s.len())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let key = SiteKey::create(&dir.path().join("site.key"))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let intakes: Vec<_> = (0..256)
        .map(|_| sample::intake(&mut rng, "11.13", 1024))
        .collect();
    let identities: Vec<Vec<u8>> = intakes
        .iter()
        .filter_map(|i| i.reporter.as_ref().map(|r| r.encode_to_vec()))
        .collect();
    let bodies: Vec<&str> = intakes.iter().map(|i| i.body.as_str()).collect();
    anyhow::ensure!(!identities.is_empty(), "the sample named no reporter");
    let aad = b"lapor.identity.v1 0123456789abcdef";
    let n = identities.len();

    let sealed: Vec<Vec<u8>> = identities.iter().map(|p| key.seal(aad, p)).collect();
    let seal_ns = ns_per(args.rounds, |i| {
        black_box(key.seal(aad, black_box(&identities[i % n])));
    });
    let open_ns = ns_per(args.rounds, |i| {
        black_box(key.open(aad, black_box(&sealed[i % n])).ok());
    });

    let mut reference_key = [0u8; 32];
    rng.fill_bytes(&mut reference_key);
    let reference = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(reference_key));
    let nonce = XNonce::from([7u8; 24]);
    let reference_sealed: Vec<Vec<u8>> = identities
        .iter()
        .map(|p| reference.encrypt(&nonce, Payload { msg: p, aad }))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reference_seal_ns = ns_per(args.rounds, |i| {
        // A fresh random nonce, as `SiteKey::seal` draws one.
        let mut fresh = [0u8; 24];
        rand::rng().fill_bytes(&mut fresh);
        let msg = black_box(&identities[i % n]);
        black_box(
            reference
                .encrypt(&XNonce::from(fresh), Payload { msg, aad })
                .ok(),
        );
    });
    let reference_open_ns = ns_per(args.rounds, |i| {
        let msg = black_box(&reference_sealed[i % n]);
        black_box(reference.decrypt(&nonce, Payload { msg, aad }).ok());
    });

    let b = bodies.len();
    let check_ns = ns_per(args.rounds, |i| {
        black_box(limits::check_text(black_box(bodies[i % b]), 1, 20_000).is_ok());
    });
    let byte_by_byte_ns = ns_per(args.rounds, |i| {
        black_box(check_text_byte_by_byte(black_box(bodies[i % b]), 1, 20_000));
    });
    anyhow::ensure!(
        bodies
            .iter()
            .all(|s| check_text_byte_by_byte(s, 1, 20_000)
                == limits::check_text(s, 1, 20_000).is_ok()),
        "the two checks disagree on a sample body"
    );

    let identity_bytes = identities.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    let body_bytes = bodies.iter().map(|s| s.len()).sum::<usize>() as f64 / b as f64;
    eprintln!(
        "seal {seal_ns:.0} ns (reference {reference_seal_ns:.0}), open {open_ns:.0} ns (reference {reference_open_ns:.0}) per {identity_bytes:.0}-byte identity"
    );
    eprintln!(
        "check_text {check_ns:.0} ns (byte by byte {byte_by_byte_ns:.0}) per {body_bytes:.0}-byte body"
    );
    let round = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "bench": "seal",
            "rounds": args.rounds,
            "identity_bytes": identity_bytes.round(),
            "seal_ns": round(seal_ns),
            "reference_seal_ns": round(reference_seal_ns),
            "open_ns": round(open_ns),
            "reference_open_ns": round(reference_open_ns),
            "seal_speedup": round(reference_seal_ns / seal_ns),
            "open_speedup": round(reference_open_ns / open_ns),
            "body_bytes": body_bytes.round(),
            "check_text_ns": round(check_ns),
            "byte_by_byte_ns": round(byte_by_byte_ns),
            "check_text_speedup": round(byte_by_byte_ns / check_ns),
        })
    );
    Ok(())
}
