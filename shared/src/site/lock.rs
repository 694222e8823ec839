//! The exclusive advisory lock on `<db>.lock` that makes a site's process
//! the only writer of its database.
//!
//! The OS releases the lock when the process dies, so a SIGKILLed site never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file (or its directory) could not be created or opened.
    #[error("open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "lock {path}: another process holds it (is {binary} already running on this database?)"
    )]
    Held { path: PathBuf, binary: &'static str },
    /// Locking failed for another reason (e.g. unsupported filesystem).
    #[error("lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the exclusive lock beside the database (`node.db` -> `node.lock`);
/// `binary` names the program in the "already running" message. Keep the
/// returned file alive as long as the process may write.
///
/// # Errors
/// See [`LockError`].
pub fn lock_store(db: &Path, binary: &'static str) -> Result<File, LockError> {
    let path = db.with_extension("lock");
    let open_err = |source| LockError::Open {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(open_err)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(open_err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LockError::Held { path, binary }),
        Err(TryLockError::Error(source)) => Err(LockError::Lock { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/node.db");
        let first = lock_store(&db, "lapor-node").unwrap();
        let err = lock_store(&db, "lapor-node").unwrap_err().to_string();
        assert!(
            err.contains("node.lock") && err.contains("lapor-node already running"),
            "{err}"
        );
        drop(first);
        lock_store(&db, "lapor-node").unwrap();
    }
}
