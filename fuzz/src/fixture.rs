//! The throw-away stores and the runtime that the real handlers run on.
//!
//! A fuzz process opens each store once, in a fresh directory under the
//! system temp dir (`run-brief.sh` points `TMPDIR` at a scratch dir it
//! removes), and keeps it for all its inputs: nothing a target does writes to
//! a store except `Hello`'s peer record, which is one row per child.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use lapor_shared::domain::SiteCode;
use lapor_shared::hlc::SystemClock;
use lapor_shared::store::{Store, StoreConfig};

pub(crate) fn site(code: &str) -> SiteCode {
    match SiteCode::parse(code) {
        Ok(site) => site,
        Err(e) => panic!("fixture site code: {e}"),
    }
}

/// One current-thread runtime per process: the handlers are async, the
/// fuzz loop is not.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        })
        .block_on(f)
}

/// The store of `code`, opened on first use in a new directory; `init` runs
/// once on it (to give it some complaints, say).
pub(crate) fn store(code: &str, init: impl FnOnce(&Store)) -> Store {
    static STORES: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(store) = stores.get(code) {
        return store.clone();
    }
    let dir = scratch_dir(code);
    let config = StoreConfig {
        path: dir.join("site.db"),
        site: site(code),
        clock: SystemClock::default(),
    };
    let store = block_on(async { Store::open(config) })
        .unwrap_or_else(|e| panic!("open fuzz store {}: {e}", dir.display()));
    init(&store);
    stores.insert(code.to_owned(), store.clone());
    store
}

fn scratch_dir(code: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lapor-fuzz-{}-{}-{}",
        std::process::id(),
        code.replace('.', "_"),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create fuzz store dir {}: {e}", dir.display()));
    dir
}
