//! The deny-list of revoked certificate serials (`revoked.json` in a hub's
//! CA directory), written by `lapor-hub ca revoke` and read by the running
//! hub on every request: a change to the file takes effect without a
//! restart (the file's modification time is checked, and the list re-read
//! only when it changed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The subject (site code or operator name), for operators reading the
    /// file.
    pub subject: String,
    /// When it was revoked (RFC 3339, UTC).
    pub revoked_at: String,
}

/// The file's content: serial (lowercase hex) -> revocation.
pub type RevokedSerials = BTreeMap<String, Revocation>;

/// Why the deny-list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RevokedError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path} (a JSON object of serial -> revocation)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the deny-list; a missing file is an empty list.
pub fn read(path: &Path) -> Result<RevokedSerials, RevokedError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| RevokedError::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RevokedSerials::new()),
        Err(source) => Err(RevokedError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the deny-list atomically (temporary file, then rename), so a hub
/// reading it never sees half a file.
pub fn write(path: &Path, list: &RevokedSerials) -> Result<(), RevokedError> {
    let err = |source| RevokedError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(list).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The deny-list as a running server sees it.
#[derive(Debug)]
pub struct DenyList {
    path: PathBuf,
    // std Mutex: held for a stat and a map look-up, never across an await.
    cache: Mutex<(Option<SystemTime>, RevokedSerials)>,
}

impl DenyList {
    pub fn new(path: PathBuf) -> DenyList {
        DenyList {
            path,
            cache: Mutex::new((None, RevokedSerials::new())),
        }
    }

    /// Whether `serial` is revoked. A list that cannot be read refuses
    /// everyone (fail closed): a hub must not accept a revoked district
    /// because someone broke the file.
    pub fn is_revoked(&self, serial: &str) -> bool {
        let modified = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot stat the deny-list; refusing");
                return true;
            }
        };
        let Ok(mut cache) = self.cache.lock() else {
            return true;
        };
        if cache.0 != modified || (modified.is_none() && !cache.1.is_empty()) {
            match read(&self.path) {
                Ok(list) => *cache = (modified, list),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the deny-list; refusing");
                    return true;
                }
            }
        }
        cache.1.contains_key(serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_written_to_the_file_is_refused_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.json");
        let deny = DenyList::new(path.clone());
        assert!(!deny.is_revoked("0a"));
        let mut list = read(&path).unwrap();
        list.insert(
            "0a".into(),
            Revocation {
                subject: "11.13".into(),
                revoked_at: "2026-11-28T00:00:00Z".into(),
            },
        );
        write(&path, &list).unwrap();
        assert!(deny.is_revoked("0a"));
        assert!(!deny.is_revoked("0b"));
    }

    #[test]
    fn an_unreadable_list_refuses_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.json");
        std::fs::write(&path, "not json").unwrap();
        assert!(DenyList::new(path).is_revoked("0b"));
    }
}
