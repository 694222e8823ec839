//! The site key and everything derived from it: sealing reporter identity
//! at rest (XChaCha20-Poly1305) and the keyed NIK hash (HMAC-SHA256).
//!
//! Each site (node or hub) has its own key, created once beside its
//! database (`init`, or the first open of a new database) and never sent
//! anywhere. Losing it makes the identities stored at that site unreadable;
//! everything else in the database stays readable. This module owns the key
//! file, key derivation and the sealed-blob format; *what* is sealed and
//! where it is stored is `crate::store::identity`'s business.
//!
//! Design constraints:
//! - The key file must be readable by the service user only: a file with
//!   any group or other permission bit is refused, never "fixed" silently.
//! - One master key, separate derived keys per purpose, so a NIK hash can
//!   never be confused with (or help attack) a ciphertext.
//! - Every sealed blob names its purpose and record in the AEAD's associated
//!   data, so a blob copied into another row does not open there.
//! - Nonces are random (24 bytes): no counter to persist, and collisions are
//!   negligible at any volume a site will see.
//!
//! ```text
//! site.key (41 bytes, mode 0600)
//!   offset size
//!   0      8    magic "LAPORKEY"
//!   8      1    format version = 1
//!   9      32   master key (from the operating system's RNG)
//!
//! derived keys = HMAC-SHA256(master, label)
//!   "lapor-sync/v1/seal"       XChaCha20-Poly1305 key
//!   "lapor-sync/v1/nik-hash"   HMAC-SHA256 key of the NIK look-up hash
//!   "lapor-sync/v1/key-check"  first 16 bytes, hex, kept in the database's
//!                              meta table: opening with another key fails
//!
//! sealed blob
//!   0      1    format version = 1
//!   1      24   XChaCha20 nonce (random)
//!   25     n+16 ciphertext || Poly1305 tag
//!   associated data = purpose label || record id (never stored)
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::{RngCore as _, TryRngCore as _};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroize as _;

use crate::domain::Nik;

/// File name of the key inside a site's data directory.
pub const KEY_FILE_NAME: &str = "site.key";

const MAGIC: &[u8; 8] = b"LAPORKEY";
const FILE_VERSION: u8 = 1;
const MASTER_LEN: usize = 32;
const FILE_LEN: usize = MAGIC.len() + 1 + MASTER_LEN;

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of a sealed blob.
const TAG_LEN: usize = 16;

/// The default key location: `site.key` in the database's directory.
pub fn key_path_beside(db: &Path) -> PathBuf {
    db.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(KEY_FILE_NAME)
}

/// Why a key file could not be used. Every variant names the file and says
/// what an operator should do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file does not exist, but the database was sealed with a key.
    #[error(
        "site key {path} is missing: restore it from your backup (mode 0600, owned by the service user); a new key cannot read the reporter identities this database holds"
    )]
    Missing { path: PathBuf },
    /// Group or other users may read or write the key file.
    #[error(
        "site key {path} has mode {mode:03o}, readable beyond its owner: run `chmod 600 {path}` (and check who could have copied it)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    /// Not a regular file (a directory, a device, ...).
    #[error("site key {path} is not a regular file")]
    NotAFile { path: PathBuf },
    /// Wrong magic or length: not a key file written by lapor-sync.
    #[error("site key {path} is not a lapor-sync key file ({len} bytes, expected {FILE_LEN})")]
    Format { path: PathBuf, len: usize },
    /// A key file from a newer (or unknown) format.
    #[error("site key {path} has format version {found}; this binary reads version {FILE_VERSION}")]
    Version { path: PathBuf, found: u8 },
    /// `init` (or a new database) found a key file already in place.
    #[error("site key {path} already exists; it is kept, never overwritten")]
    Exists { path: PathBuf },
    /// Reading the file failed.
    #[error("read site key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing a new key file failed.
    #[error("create site key {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("draw a new site key from the operating system")]
    Random(#[source] rand::rand_core::OsError),
}

/// A sealed blob did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Unknown format version or too short to hold nonce and tag.
    #[error("sealed blob of {len} bytes has no valid header")]
    Format { len: usize },
    /// Authentication failed: tampered, truncated, moved to another record,
    /// or sealed with another site's key.
    #[error("sealed blob does not open with this site's key for this record")]
    Open,
}

/// A site's key, with the per-purpose keys derived from it. Never printed,
/// never sent; zeroed when dropped.
pub struct SiteKey {
    seal: [u8; 32],
    nik: [u8; 32],
    check: [u8; 32],
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteKey(<secret>)")
    }
}

impl Drop for SiteKey {
    fn drop(&mut self) {
        self.seal.zeroize();
        self.nik.zeroize();
        self.check.zeroize();
    }
}

/// HMAC-SHA256 of `parts`, concatenated, under `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SiteKey {
    /// Derives the purpose keys from a master key.
    fn from_master(mut master: [u8; MASTER_LEN]) -> SiteKey {
        let key = SiteKey {
            seal: hmac(&master, &[b"lapor-sync/v1/seal"]),
            nik: hmac(&master, &[b"lapor-sync/v1/nik-hash"]),
            check: hmac(&master, &[b"lapor-sync/v1/key-check"]),
        };
        master.zeroize();
        key
    }

    /// A key from fixed bytes, for tests that need two distinct keys
    /// without files.
    #[cfg(test)]
    pub(crate) fn for_tests(byte: u8) -> SiteKey {
        SiteKey::from_master([byte; MASTER_LEN])
    }

    /// Reads the key file at `path`.
    ///
    /// # Errors
    /// [`KeyError::Missing`] when there is no file; [`KeyError::TooOpen`]
    /// when group or others have any permission on it; a format error for
    /// anything that is not a lapor-sync key file.
    pub fn load(path: &Path) -> Result<SiteKey, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(read(e)),
        };
        let meta = file.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_owned(),
            });
        }
        check_mode(path, &meta)?;
        let mut bytes = Vec::with_capacity(FILE_LEN);
        // One byte more than a key file holds, to tell "too long" apart.
        (&mut file)
            .take(FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        let parsed = parse(path, &bytes);
        bytes.zeroize();
        parsed
    }

    /// Creates a new key file at `path` (mode 0600), never overwriting one.
    ///
    /// # Errors
    /// [`KeyError::Exists`] when a file is already there.
    pub fn create(path: &Path) -> Result<SiteKey, KeyError> {
        let mut master = [0u8; MASTER_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut master)
            .map_err(KeyError::Random)?;
        let mut bytes = Vec::with_capacity(FILE_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.push(FILE_VERSION);
        bytes.extend_from_slice(&master);
        let written = write_new(path, &bytes);
        bytes.zeroize();
        match written {
            Ok(()) => Ok(SiteKey::from_master(master)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                master.zeroize();
                Err(KeyError::Exists {
                    path: path.to_owned(),
                })
            }
            Err(source) => {
                master.zeroize();
                Err(KeyError::Create {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }

    /// Loads the key, or creates it when there is none. Whether creating is
    /// allowed is the caller's decision (the store allows it only for a
    /// database that was never sealed with a key).
    ///
    /// Returns the key and whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(SiteKey, bool), KeyError> {
        match SiteKey::load(path) {
            Err(KeyError::Missing { .. }) => match SiteKey::create(path) {
                Ok(key) => Ok((key, true)),
                // Another process created it between our two steps.
                Err(KeyError::Exists { .. }) => SiteKey::load(path).map(|k| (k, false)),
                Err(e) => Err(e),
            },
            other => other.map(|k| (k, false)),
        }
    }

    /// A short fingerprint of the key, kept in the database so that opening
    /// it with another site's key is refused instead of failing later on
    /// the first identity.
    pub fn check_value(&self) -> String {
        self.check[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Seals `plaintext` for the record named by `aad` (purpose label and
    /// record id); see the module doc for the format.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // ThreadRng is a CSPRNG reseeded from the OS; a random 192-bit nonce
        // needs no uniqueness bookkeeping.
        rand::rng().fill_bytes(&mut nonce);
        let (key, inner) = self.xchacha(&nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        // Sealing fails only for messages beyond ~256 GiB; a reporter
        // identity or one event is a few KiB at most.
        let tag = key
            .seal_in_place_separate_tag(inner, Aad::from(aad), &mut out[1 + NONCE_LEN..])
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens a blob made by [`SiteKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`SealError::Open`] for a tampered blob, another record's, or another
    /// key's.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
            return Err(SealError::Format { len: sealed.len() });
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SealError::Format { len: sealed.len() })?;
        let (key, inner) = self.xchacha(nonce);
        let mut buf = ciphertext.to_vec();
        match key.open_in_place(inner, Aad::from(aad), &mut buf) {
            Ok(plain) => {
                let len = plain.len();
                buf.truncate(len);
                Ok(buf)
            }
            Err(_) => {
                // What a failed open leaves in the buffer is unspecified.
                buf.zeroize();
                Err(SealError::Open)
            }
        }
    }

    /// XChaCha20-Poly1305 for a 24-byte nonce, built the standard way
    /// (draft-irtf-cfrg-xchacha): ChaCha20-Poly1305 under the subkey
    /// HChaCha20(key, nonce[..16]) with the nonce 0^4 || nonce[16..]. The
    /// blobs are those the `chacha20poly1305` crate's `XChaCha20Poly1305`
    /// makes (a test holds them equal), at a fifth of its cost on the
    /// identities sealed for every received complaint (`bench-seal`,
    /// docs/benchmarks.md).
    fn xchacha(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let (head, tail) = nonce.split_at(16);
        let mut subkey = chacha20::hchacha::<chacha20::R20>(
            &chacha20::Key::from(self.seal),
            head.try_into().expect("16 of the nonce's 24 bytes"),
        );
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice())
                .expect("HChaCha20 gives a 32-byte ChaCha20 key"),
        );
        subkey.as_mut_slice().zeroize();
        let mut inner = [0u8; 12];
        inner[4..].copy_from_slice(tail);
        (key, Nonce::assume_unique_for_key(inner))
    }

    /// The keyed hash of a NIK, for look-ups and duplicate detection. Equal
    /// NIKs hash equal at one site; without the key the hash reveals nothing
    /// (a bare SHA-256 of a 16-digit NIK with a known structure could be
    /// brute-forced in minutes).
    pub fn nik_hash(&self, nik: &Nik) -> [u8; 32] {
        hmac(&self.nik, &[nik.0.as_bytes()])
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<SiteKey, KeyError> {
    if bytes.len() != FILE_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(KeyError::Format {
            path: path.to_owned(),
            len: bytes.len(),
        });
    }
    let version = bytes[MAGIC.len()];
    if version != FILE_VERSION {
        return Err(KeyError::Version {
            path: path.to_owned(),
            found: version,
        });
    }
    let mut master = [0u8; MASTER_LEN];
    master.copy_from_slice(&bytes[MAGIC.len() + 1..]);
    Ok(SiteKey::from_master(master))
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

// Windows has no mode bits; its ACLs are the deployment's business.
#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// Writes a new file with owner-only permissions from the first byte (no
/// window in which it is world-readable), and makes it durable.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // The directory entry must survive a power cut too; a failure here is
    // not fatal (some file systems refuse to fsync directories).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Blobs sealed before and after the move to HChaCha20 + ring's
        /// ChaCha20-Poly1305 are the same construction: each side opens the
        /// other's, and the ciphertexts are byte-equal.
        #[test]
        fn sealed_blobs_are_xchacha20_poly1305_as_the_reference_crate_makes_them(
            master in any::<[u8; 32]>(),
            plaintext in prop::collection::vec(any::<u8>(), 0..300),
            aad in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let key = SiteKey::from_master(master);
            let reference = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key.seal));
            let sealed = key.seal(&aad, &plaintext);
            prop_assert_eq!(sealed.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
            let nonce = XNonce::try_from(&sealed[1..1 + NONCE_LEN]).unwrap();
            let theirs = reference
                .encrypt(&nonce, Payload { msg: &plaintext, aad: &aad })
                .unwrap();
            prop_assert_eq!(&sealed[1 + NONCE_LEN..], theirs.as_slice());
            let opened = reference
                .decrypt(&nonce, Payload { msg: &sealed[1 + NONCE_LEN..], aad: &aad })
                .unwrap();
            prop_assert_eq!(&opened, &plaintext);
            prop_assert_eq!(key.open(&aad, &sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_blob_or_its_aad_does_not_open() {
        let key = SiteKey::for_tests(1);
        let sealed = key.seal(b"lapor.identity.v1", b"Cut Nyak Dhien");
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                matches!(key.open(b"lapor.identity.v1", &bad), Err(SealError::Open)),
                "byte {i}"
            );
        }
        assert!(matches!(
            key.open(b"lapor.identity.v2", &sealed),
            Err(SealError::Open)
        ));
        assert!(matches!(
            SiteKey::for_tests(2).open(b"lapor.identity.v1", &sealed),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn a_created_key_has_mode_0600_and_loads_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let created = SiteKey::create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(std::fs::read(&path).unwrap().len(), FILE_LEN);
        let loaded = SiteKey::load(&path).unwrap();
        assert_eq!(created.check_value(), loaded.check_value());
        let sealed = created.seal(b"t", b"Cut Nyak Dhien");
        assert_eq!(loaded.open(b"t", &sealed).unwrap(), b"Cut Nyak Dhien");
    }

    #[test]
    fn an_existing_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let first = SiteKey::create(&path).unwrap();
        assert!(matches!(
            SiteKey::create(&path),
            Err(KeyError::Exists { .. })
        ));
        let (again, created) = SiteKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.check_value(), again.check_value());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_group_or_others_is_refused_naming_the_path_and_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        SiteKey::create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o700 | 0o001] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = SiteKey::load(&path).unwrap_err();
            assert!(matches!(err, KeyError::TooOpen { .. }), "{mode:o}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains("chmod 600"),
                "{msg}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(SiteKey::load(&path).is_ok(), "tighter than 0600 is fine");
    }

    #[test]
    fn a_missing_key_and_a_foreign_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        assert!(matches!(
            SiteKey::load(&path),
            Err(KeyError::Missing { .. })
        ));
        write_new(&path, b"not a key").unwrap();
        assert!(matches!(
            SiteKey::load(&path),
            Err(KeyError::Format { len: 9, .. })
        ));
        let other = dir.path().join("v9.key");
        let mut bytes = MAGIC.to_vec();
        bytes.push(9);
        bytes.extend_from_slice(&[0; MASTER_LEN]);
        write_new(&other, &bytes).unwrap();
        assert!(matches!(
            SiteKey::load(&other),
            Err(KeyError::Version { found: 9, .. })
        ));
    }

    #[test]
    fn a_sealed_blob_opens_only_with_its_key_and_its_record() {
        let key = SiteKey::for_tests(1);
        let sealed = key.seal(b"identity/1", b"1113014107900001");
        assert_eq!(
            key.open(b"identity/1", &sealed).unwrap(),
            b"1113014107900001"
        );
        assert_eq!(key.open(b"identity/2", &sealed), Err(SealError::Open));
        assert_eq!(
            SiteKey::for_tests(2).open(b"identity/1", &sealed),
            Err(SealError::Open)
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(b"identity/1", &tampered), Err(SealError::Open));
        assert!(matches!(
            key.open(b"identity/1", &sealed[..20]),
            Err(SealError::Format { .. })
        ));
    }

    #[test]
    fn sealing_twice_gives_different_bytes_and_no_plaintext() {
        let key = SiteKey::for_tests(1);
        let a = key.seal(b"x", b"Teuku Umar 081234567890");
        let b = key.seal(b"x", b"Teuku Umar 081234567890");
        assert_ne!(a, b, "random nonces");
        assert!(!a.windows(5).any(|w| w == b"Teuku"));
    }

    #[test]
    fn the_nik_hash_is_keyed() {
        let nik = Nik("1113014107900001".into());
        let a = SiteKey::for_tests(1);
        assert_eq!(a.nik_hash(&nik), a.nik_hash(&nik.clone()));
        assert_ne!(a.nik_hash(&nik), SiteKey::for_tests(2).nik_hash(&nik));
        assert_ne!(
            a.nik_hash(&nik),
            a.nik_hash(&Nik("1113014107900002".into()))
        );
    }
}
