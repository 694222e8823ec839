//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the
//! threshold, on the connection that committed: the writer thread copies
//! every page back into the database file and fsyncs it while the callers
//! of the next group wait. Under a replication burst that was about a fifth
//! of the writer's time (docs/benchmarks.md). Here the writer's WAL hook
//! only wakes a checkpointer thread with its own connection, which copies
//! pages back while the writer goes on appending; the two touch different
//! files and SQLite lets one checkpointer run beside one writer.
//!
//! The writer still checkpoints inline when the WAL passes a hard bound
//! (the checkpointer fell behind, or there is none yet): that is SQLite's
//! own rule, just later, and by then the checkpointer has usually copied
//! nearly everything, so the inline one is short. A checkpoint run right
//! after a commit, with no writer active, is also what lets the next
//! transaction restart the WAL from its beginning, so the file stays bounded.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::connection::open_writer;

/// The WAL bounds, in pages (SQLite counts pages; a database keeps the
/// page size it was created with).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The checkpointer is woken: half the inline bound, so each WAL cycle
    /// costs two or three checkpoints instead of one every 4 MiB (SQLite's
    /// default), which would copy the pages every commit touches (index
    /// right edges, interior pages) back again each time.
    wake: c_int,
    /// The writer checkpoints inside its commit: the `wal_autocheckpoint`
    /// its connection was configured with (connection.rs, 40 MiB).
    inline: c_int,
}

impl Bounds {
    /// Read before the WAL hook replaces the automatic checkpoint, which
    /// also clears the setting.
    fn of(conn: &Connection) -> rusqlite::Result<Bounds> {
        let inline: c_int = conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?;
        Ok(Bounds {
            wake: inline / 2,
            inline,
        })
    }
}

/// The checkpointer thread of one store. Stopped by [`Checkpointer::stop`].
pub(super) struct Checkpointer {
    thread: std::thread::JoinHandle<()>,
    bounds: Bounds,
}

impl Checkpointer {
    /// Starts the thread and installs the writer connection's WAL hook
    /// (which replaces SQLite's automatic checkpoint on that connection).
    ///
    /// If the thread or its connection cannot start, the writer keeps
    /// SQLite's inline checkpoints and this returns `None`: slower, never
    /// wrong.
    pub(super) fn start(path: &Path, writer: &mut Connection) -> Option<Checkpointer> {
        let bounds = match Bounds::of(writer) {
            Ok(bounds) if bounds.wake > 0 => bounds,
            Ok(_) | Err(_) => {
                // No inline bound configured (or unreadable): nothing to
                // split, and the connection's own setting stays as it is.
                tracing::warn!("no WAL checkpoint bound on the writer; it checkpoints inline");
                return None;
            }
        };
        let conn = match open_writer(path) {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "no checkpointer connection; the writer checkpoints inline");
                return None;
            }
        };
        let (wake_tx, wake_rx) = sync_channel::<()>(1);
        let thread = match std::thread::Builder::new()
            .name("lapor-store-checkpoint".into())
            .spawn(move || run(&conn, &wake_rx))
        {
            Ok(thread) => thread,
            Err(error) => {
                tracing::warn!(%error, "no checkpointer thread; the writer checkpoints inline");
                return None;
            }
        };
        if let Err(error) = writer.wal_hook(Some(hook(wake_tx, bounds))) {
            // The sender went with the failed hook, so the thread ends.
            tracing::warn!(%error, "cannot install the WAL hook; the writer checkpoints inline");
            let _ = thread.join();
            return None;
        }
        Some(Checkpointer { thread, bounds })
    }

    /// Removes the hook (dropping the thread's only wake sender), restores
    /// SQLite's inline checkpoints on `writer`, and waits for the thread,
    /// which ends after any checkpoint it is running.
    pub(super) fn stop(self, writer: &mut Connection) {
        if let Err(error) =
            writer.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, c_int) -> rusqlite::Result<()>>)
        {
            tracing::warn!(%error, "cannot remove the WAL hook");
        }
        if let Err(error) = writer.pragma_update(None, "wal_autocheckpoint", self.bounds.inline) {
            tracing::warn!(%error, "cannot restore wal_autocheckpoint");
        }
        if self.thread.join().is_err() {
            tracing::error!("checkpointer thread panicked");
        }
    }
}

/// The writer's WAL hook: called after each commit with the WAL's size.
fn hook(
    wake: SyncSender<()>,
    bounds: Bounds,
) -> impl FnMut(&mut rusqlite::hooks::Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
    move |wal, pages| {
        if pages >= bounds.inline {
            // An error here would make the commit that already happened
            // report failure; SQLite's own automatic checkpoint ignores it
            // too, and the next commit tries again.
            if let Err(error) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::warn!(%error, pages, "inline WAL checkpoint failed");
            }
        } else if pages >= bounds.wake {
            // Full: a wake-up is already pending and covers this one.
            // Disconnected: the thread died (it otherwise ends only once
            // the hook is gone); the inline bound above still holds.
            let _ = wake.try_send(());
        }
        Ok(())
    }
}

fn run(conn: &Connection, wake: &Receiver<()>) {
    // Ends when the writer removes its hook (the only sender).
    while wake.recv().is_ok() {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((log, done)) => tracing::trace!(log, done, "WAL checkpoint"),
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint failed; retried on the next wake-up")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(conn: &Connection) -> usize {
        conn.pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
            .expect("page_size") as usize
    }

    /// Commits about `pages` pages: one row per page.
    fn write_pages(conn: &Connection, pages: usize) {
        let row = page_size(conn) * 3 / 4;
        let tx = conn.unchecked_transaction().expect("begin");
        for i in 0..pages {
            tx.execute("INSERT INTO t (v) VALUES (?1)", [vec![i as u8; row]])
                .expect("insert");
        }
        tx.commit().expect("commit");
    }

    fn db_pages(path: &Path, conn: &Connection) -> u64 {
        std::fs::metadata(path)
            .map(|m| m.len() / page_size(conn) as u64)
            .unwrap_or(0)
    }

    /// In WAL mode the main file grows only when a checkpoint copies pages
    /// back into it, so its size shows whether one ran.
    fn setup() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = open_writer(&path).expect("open");
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
            .expect("schema");
        (dir, path, writer)
    }

    #[test]
    fn the_checkpointer_copies_the_wal_back_while_the_writer_does_not() {
        let (_dir, path, mut writer) = setup();
        let checkpointer = Checkpointer::start(&path, &mut writer).expect("start");
        let bounds = checkpointer.bounds;
        // One commit past the wake-up size, short of the writer's inline
        // bound, so only the checkpointer can copy the pages back.
        write_pages(&writer, bounds.wake as usize + 500);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while db_pages(&path, &writer) < bounds.wake as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "main file still {} pages 30 s after a {}-page commit",
                db_pages(&path, &writer),
                bounds.wake + 500
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        checkpointer.stop(&mut writer);
    }

    #[test]
    fn a_commit_under_the_wake_up_size_leaves_the_wal_alone() {
        let (_dir, path, mut writer) = setup();
        let checkpointer = Checkpointer::start(&path, &mut writer).expect("start");
        write_pages(&writer, 300);
        // Stopping joins the thread: had it been woken, its checkpoint
        // would have finished by now.
        checkpointer.stop(&mut writer);
        assert!(
            db_pages(&path, &writer) < 100,
            "main file grew to {} pages",
            db_pages(&path, &writer)
        );
    }

    #[test]
    fn after_stop_the_writer_checkpoints_inline_again() {
        let (_dir, path, mut writer) = setup();
        let checkpointer = Checkpointer::start(&path, &mut writer).expect("start");
        let bounds = checkpointer.bounds;
        checkpointer.stop(&mut writer);
        // Past wal_autocheckpoint: SQLite copies back inside the commit.
        write_pages(&writer, (bounds.inline as usize) + 500);
        assert!(
            db_pages(&path, &writer) >= bounds.inline as u64,
            "main file {} pages",
            db_pages(&path, &writer)
        );
    }
}

#[cfg(test)]
mod bounds_tests {
    use super::super::connection::INLINE_WAL_BYTES;
    use super::*;

    #[test]
    fn the_wal_bounds_are_the_same_bytes_whatever_the_page_size() {
        for (page_size, wake, inline) in [
            (4096, 5_120, 10_240),
            (8192, 2_560, 5_120),
            (16384, 1_280, 2_560),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("b.db");
            {
                // A database created with this page size (as an older
                // binary made them, or this one).
                let conn = Connection::open(&path).expect("create");
                conn.pragma_update(None, "page_size", page_size)
                    .expect("page_size");
                conn.execute_batch("CREATE TABLE t (x)").expect("schema");
            }
            let conn = open_writer(&path).expect("open");
            let b = Bounds::of(&conn).expect("bounds");
            assert_eq!((b.wake, b.inline), (wake, inline), "page size {page_size}");
            assert_eq!(i64::from(b.inline) * page_size, INLINE_WAL_BYTES);
        }
    }
}
