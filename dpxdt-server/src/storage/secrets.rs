//! The server's secret key and what it seals: `server.key` in the data
//! directory (32 random bytes, made on first use, readable only by the
//! server's user) encrypts small secrets kept in the database, such as a
//! build's commit-status token, with AES-256-GCM. A copy of the database
//! alone does not reveal them.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::StoreError;

/// The file name of the key in the data directory.
pub const KEY_FILE: &str = "server.key";

/// A loaded server key.
pub struct SecretKey(LessSafeKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

impl SecretKey {
    /// The key in `data_dir`, made (and fsynced) if there is none yet.
    pub fn load_or_create(data_dir: &Path) -> Result<SecretKey, StoreError> {
        Self::load_or_create_at(&data_dir.join(KEY_FILE))
    }

    /// The key in the file `path`, made (and fsynced) if there is none yet.
    /// Replicas sharing one database must be given the same file.
    pub fn load_or_create_at(path: &Path) -> Result<SecretKey, StoreError> {
        let path: PathBuf = path.to_owned();
        let data_dir = path.parent().unwrap_or(Path::new("."));
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| StoreError::Io(std::io::Error::other("no random bytes")))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(&path) {
                    Ok(mut file) => {
                        file.write_all(&key)
                            .and_then(|()| file.sync_all())
                            .map_err(|e| io("writing", &path, e))?;
                        super::artifacts::sync_dir(data_dir)
                            .map_err(|e| io("syncing", data_dir, e))?;
                        key.to_vec()
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(&path).map_err(|e| io("reading", &path, e))?
                    }
                    Err(e) => return Err(io("creating", &path, e)),
                }
            }
            Err(e) => return Err(io("reading", &path, e)),
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            StoreError::Invalid(format!(
                "{} is not a 32-byte key; restore it from a backup (secrets sealed with it cannot be read without it)",
                path.display()
            ))
        })?;
        Ok(SecretKey(LessSafeKey::new(key)))
    }

    /// Encrypts `plain`: a random nonce, then the ciphertext and its tag.
    /// `bound_to` (associated data) is not stored but must be given again
    /// to open it: a secret bound to one build and address does not open
    /// for another, even if its bytes are copied there.
    pub fn seal(&self, plain: &[u8], bound_to: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Io(std::io::Error::other("no random bytes")))?;
        let mut data = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound_to),
                &mut data,
            )
            .map_err(|_| StoreError::Io(std::io::Error::other("sealing a secret failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Decrypts what [`SecretKey::seal`] made with this key and `bound_to`.
    pub fn open(&self, sealed: &[u8], bound_to: &[u8]) -> Result<Vec<u8>, StoreError> {
        let bad = || {
            StoreError::Invalid(
                "a sealed secret does not open with this server's key (server.key was replaced?)"
                    .into(),
            )
        };
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(bound_to), &mut data)
            .map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal(b"ghp_token", b"build 1").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"ghp_token"));
        // The same file next time.
        let again = SecretKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed, b"build 1").unwrap(), b"ghp_token");
        // Bound to what it was sealed for.
        assert!(again.open(&sealed, b"build 2").is_err());
        assert!(again.open(&sealed, b"").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let stranger = SecretKey::load_or_create(other.path()).unwrap();
        assert!(stranger.open(&sealed, b"build 1").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(again.open(&tampered, b"build 1").is_err());
    }
}
