//! Opening and configuring SQLite connections: one place, a reason for every
//! PRAGMA (corrosion's `setup_conn`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Page size of a database this binary creates.
pub(super) const PAGE_SIZE: i64 = 16384;

/// WAL size at which a writer connection checkpoints inside its commit.
pub(super) const INLINE_WAL_BYTES: i64 = 40 << 20;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Applies the settings every connection of a store needs.
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: readers see a consistent snapshot while the writer commits, and
    // never wait behind it; a commit appends to the WAL instead of rewriting
    // pages in place.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {mode}"
        )));
    }
    // FULL: the WAL is fsynced at every commit, so a commit that returned
    // survives a power cut. We ack callers and peers only after commit, and
    // district offices lose power routinely. Group commit keeps the cost to
    // one fsync per group, not per complaint.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Cheap insurance for schema changes that add references later.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The CLI may open the database while the node runs; wait for a brief
    // lock instead of failing at once.
    conn.busy_timeout(Duration::from_secs(5))?;
    // 32 MiB page cache: the working set of a district fits; a hub benefits.
    conn.pragma_update(None, "cache_size", -32_000)?;
    // Checkpoint the WAL inline only at 40 MiB instead of every 4 MiB:
    // each checkpoint costs an fsync of the main file. The store's writer
    // replaces this with its WAL hook and a checkpointer thread
    // (checkpoint.rs), which copies pages back from 20 MiB on while the
    // writer goes on; the same bound stays as the writer's backstop.
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        INLINE_WAL_BYTES / page_size.max(512),
    )?;
    // Sorts and temporary indexes in memory: they are small and short-lived.
    // (Also keeps decrypted values out of temporary files.)
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Deleted content is zeroed where that costs no extra I/O: an identity
    // erased at a hub does not linger in its page.
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // Room for every statement the writer runs (rusqlite keeps 16), so a
    // group never prepares one again after another pushed it out.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// The writer's connection (creates the file if missing).
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // 16 KiB pages for a new database (before WAL mode fixes the size): a
    // ~1.5 KiB event row wastes less of a page, each index holds more
    // entries per page, and a group commit writes fewer WAL frames (SQLite
    // writes each frame with two `pwrite`s). Measured in docs/benchmarks.md:
    // 8 KiB gave one hop +10 % over 4 KiB, 16 KiB +7–12 % over 8 KiB and the
    // store benchmark +8–21 %; 32 KiB no more than 16. An existing database
    // keeps the size it was created with; only VACUUM could change it.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    configure(&conn)?;
    Ok(conn)
}

/// A reader's connection. `query_only` makes an accidental write an error.
///
/// Only the settings a reader uses: the writer opened the file first and
/// made it WAL (which is persistent), and `synchronous`, `foreign_keys`,
/// `wal_autocheckpoint` and `secure_delete` only matter to writes.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A read that meets a checkpoint's brief lock waits instead of failing.
    conn.busy_timeout(Duration::from_secs(5))?;
    // 8 MiB page cache per reader: there are up to 8 of them (read.rs)
    // beside the writer's 32 MiB, and the OS page cache holds the file
    // anyway, so a hub's memory stays bounded (8 × 8 MiB at worst).
    conn.pragma_update(None, "cache_size", -8_000)?;
    // As for the writer: small, short-lived, and no decrypted values in
    // temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "query_only", true)?;
    // As for the writer: the read paths have more than 16 statements (an
    // event run alone has one per region shape).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    /// Fails unless the linked-in SQLite was compiled with `option`.
    fn assert_compiled_with(option: &str) {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|o| o == option), "{options:?}");
    }

    /// The SQLite linked in keeps no statistics of its memory use, so no
    /// allocation takes its process-wide mutex (`.cargo/config.toml`).
    #[test]
    fn sqlite_is_built_without_memory_statistics() {
        assert_compiled_with("DEFAULT_MEMSTATUS=0");
    }

    /// Each connection's page cache recycles pages from one block of its
    /// own (`.cargo/config.toml`), not from the allocator at every read
    /// after another connection's commit.
    #[test]
    fn sqlite_page_caches_take_their_pages_from_one_block_per_connection() {
        assert_compiled_with("DEFAULT_PCACHE_INITSZ=-8192");
    }
}
