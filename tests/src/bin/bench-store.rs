//! Store benchmark: 200,000 ~1 KiB complaints through the store's public
//! API from many concurrent callers (group commit), against a baseline that
//! writes the same rows with plain batched rusqlite transactions (10,000
//! rows each, synchronous=FULL) into the same schema.
//!
//! `cargo run --release -p lapor-tests --bin bench-store [-- --complaints N --callers C]`
//! The last line of output is one JSON object.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use prost::Message as _;
use rand::SeedableRng as _;

use lapor_shared::domain::{ComplaintId, Event, EventBody, EventId, SiteCode, TrackingNumber};
use lapor_shared::hlc::{Hlc, SystemClock};
use lapor_shared::proto::convert;
use lapor_shared::store::{NewComplaint, Store, StoreConfig};
use lapor_tests::sample;

/// The allocator the binaries use (`lapor-node`, `lapor-hub`), so the
/// library is measured as it runs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Complaints to write in each run.
    #[arg(long, default_value_t = 200_000)]
    complaints: usize,
    /// Concurrent callers of the store API.
    #[arg(long, default_value_t = 1024)]
    callers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let site = SiteCode::parse("11.13")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let intakes: Vec<_> = (0..args.complaints)
        .map(|_| {
            let mut p = sample::intake(&mut rng, "11.13", 1024);
            // Identity-free so both runs write the same bytes per row.
            p.privacy = Some(lapor_shared::proto::v1::Privacy {
                is_anonymous: true,
                is_secret: false,
            });
            p.reporter = None;
            convert::intake_from_proto(p).map_err(|v| anyhow::anyhow!("sample intake invalid: {v}"))
        })
        .collect::<Result<_, _>>()?;
    let intakes = Arc::new(intakes);

    // Store API run.
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig {
        path: dir.path().join("store.db"),
        site: site.clone(),
        clock: SystemClock::default(),
    })?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..args.callers {
        let store = store.clone();
        let intakes = intakes.clone();
        let callers = args.callers;
        tasks.push(tokio::spawn(async move {
            let mut i = caller;
            while i < intakes.len() {
                store
                    .submit(NewComplaint {
                        complaint_id: None,
                        intake: intakes[i].clone(),
                        actor: "bench".into(),
                    })
                    .await?;
                i += callers;
            }
            Ok::<_, lapor_shared::store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let store_secs = started.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(dir.path().join("store.db"))?.len();
    store.close().await?;

    // Baseline: the same rows, plain rusqlite, 10,000 per transaction.
    let base_dir = tempfile::tempdir()?;
    let base_path = base_dir.path().join("raw.db");
    Store::open(StoreConfig {
        path: base_path.clone(),
        site: site.clone(),
        clock: SystemClock::default(),
    })?
    .close()
    .await?;
    let rows: Vec<(Event, Vec<u8>)> = intakes
        .iter()
        .enumerate()
        .map(|(i, intake)| {
            let e = Event {
                id: EventId::new_v7(),
                complaint_id: ComplaintId::new_v7(),
                origin: site.clone(),
                hlc: Hlc::from_parts(1_764_000_000_000 + i as u64, 0),
                actor: "bench".into(),
                district: site.clone(),
                body: EventBody::Created {
                    tracking_number: TrackingNumber(format!("1113-BEN-{i:06}")),
                    intake: Box::new(intake.clone()),
                },
            };
            let payload = convert::event_to_proto(&e).encode_to_vec();
            (e, payload)
        })
        .collect();
    let raw_secs = tokio::task::spawn_blocking(move || raw_baseline(&base_path, &rows)).await??;

    let store_per_s = args.complaints as f64 / store_secs;
    let raw_per_s = args.complaints as f64 / raw_secs;
    eprintln!(
        "store: {store_secs:.2}s, raw: {raw_secs:.2}s, database {:.1} MiB",
        db_bytes as f64 / 1048576.0
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "store",
            "complaints": args.complaints,
            "store_per_s": store_per_s.round(),
            "raw_per_s": raw_per_s.round(),
            "ratio": (store_per_s / raw_per_s * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

/// Inserts the rows the store writes for a submission (one `events` row,
/// one `complaints` row) in transactions of 10,000, synchronous=FULL.
fn raw_baseline(path: &std::path::Path, rows: &[(Event, Vec<u8>)]) -> anyhow::Result<f64> {
    let mut conn = rusqlite::Connection::open(path).context("open baseline db")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let started = Instant::now();
    for chunk in rows.chunks(10_000) {
        let tx = conn.transaction()?;
        {
            let mut ev = tx.prepare_cached(
                "INSERT INTO events (event_id, complaint_id, origin, district, hlc, kind, payload, received_from, stored_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'created', ?6, NULL, 0)",
            )?;
            let mut co = tx.prepare_cached(
                "INSERT INTO complaints (complaint_id, tracking_number, district, status, created_hlc, updated_hlc, updated_seq)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5)",
            )?;
            for (e, payload) in chunk {
                ev.execute(rusqlite::params![
                    e.id.0.as_bytes().as_slice(),
                    e.complaint_id.0.as_bytes().as_slice(),
                    e.origin.as_str(),
                    e.district.as_str(),
                    e.hlc.0 as i64,
                    payload
                ])?;
                let seq = tx.last_insert_rowid();
                let EventBody::Created {
                    tracking_number, ..
                } = &e.body
                else {
                    continue;
                };
                co.execute(rusqlite::params![
                    e.complaint_id.0.as_bytes().as_slice(),
                    tracking_number.0,
                    e.district.as_str(),
                    e.hlc.0 as i64,
                    seq
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed().as_secs_f64())
}
