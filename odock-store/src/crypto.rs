//! Secret envelopes: provider keys and MCP credentials are encrypted at rest with AES-256-GCM under
//! the master key. An envelope is `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id (the
//! first 8 hex characters of SHA-256 of the master key) tells which master key sealed it, so the
//! master key can be rotated by re-sealing.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use odock_core::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why a master key could not be loaded or a secret envelope not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key is not 32 bytes of valid base64.
    #[error("master key must be 32 bytes, base64-encoded")]
    InvalidMasterKey,
    /// The envelope is not `v1.<key id>.<base64url>`, or its payload is too short.
    #[error("secret envelope is malformed")]
    MalformedEnvelope,
    /// The envelope names another key id (the one given): it needs the master key it was sealed
    /// with.
    #[error("secret envelope was sealed with another master key ({0})")]
    WrongKey(String),
    /// Decryption failed: the ciphertext or its tag was altered.
    #[error("secret envelope failed authentication")]
    Tampered,
    /// Encryption failed (AES-GCM refused the input).
    #[error("secret could not be sealed")]
    Seal,
    /// The master key file could not be read or written.
    #[error("master key file: {0}")]
    Io(#[from] std::io::Error),
}

/// The 32-byte key that seals every secret at rest. `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.key_id)
    }
}

impl MasterKey {
    /// A key from its 32 raw bytes; its key id is derived from them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::InvalidMasterKey);
        }
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::InvalidMasterKey)?;
        let key_id = hex::encode(&Sha256::digest(bytes)[..4]);
        Ok(Self { cipher, key_id })
    }

    /// Parses `ODOCK_MASTER_KEY` (standard base64 of 32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::InvalidMasterKey)?;
        Self::from_bytes(&bytes)
    }

    /// A new random key and its base64 form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let text = STANDARD.encode(bytes);
        // 32 bytes is always a valid AES-256 key.
        let key = Self::from_bytes(&bytes).unwrap_or_else(|_| unreachable!("32-byte key"));
        (key, text)
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a fresh key. Returns the key and
    /// whether it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate();
                write_private_file(path, text.as_bytes())?;
                Ok((key, true))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The first 8 hex characters of SHA-256 of the key, which every envelope it seals carries.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plaintext` into an envelope. AES-GCM refuses only inputs beyond its 64 GiB limit.
    pub fn seal(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| CryptoError::Seal)?;
        let mut payload = Vec::with_capacity(12 + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        Ok(format!(
            "v1.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(payload)
        ))
    }

    /// Opens an envelope made by [`MasterKey::seal`].
    pub fn open(&self, envelope: &str) -> Result<Secret, CryptoError> {
        let mut parts = envelope.splitn(3, '.');
        let (Some("v1"), Some(key_id), Some(payload)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::MalformedEnvelope);
        };
        if key_id != self.key_id {
            return Err(CryptoError::WrongKey(key_id.to_owned()));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CryptoError::MalformedEnvelope)?;
        if payload.len() < 12 + 16 {
            return Err(CryptoError::MalformedEnvelope);
        }
        let (nonce, ciphertext) = payload.split_at(12);
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| CryptoError::MalformedEnvelope)
    }
}

/// Writes a file readable only by its owner.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_detect_tampering() {
        let (key, _) = MasterKey::generate();
        let envelope = key.seal("sk-upstream-secret").unwrap();
        assert!(!envelope.contains("sk-upstream-secret"));
        assert_eq!(
            key.open(&envelope).map(|s| s.expose().to_owned()).ok(),
            Some("sk-upstream-secret".to_owned())
        );
        assert_ne!(
            key.seal("x").unwrap(),
            key.seal("x").unwrap(),
            "nonces must differ"
        );

        let mut tampered = envelope.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert!(matches!(
            key.open(&tampered),
            Err(CryptoError::Tampered | CryptoError::MalformedEnvelope)
        ));

        let (other, _) = MasterKey::generate();
        assert!(matches!(
            other.open(&envelope),
            Err(CryptoError::WrongKey(_))
        ));
        assert!(matches!(
            key.open("garbage"),
            Err(CryptoError::MalformedEnvelope)
        ));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("master-key");
        let (first, generated) =
            MasterKey::load_or_generate(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(generated);
        let (second, generated) =
            MasterKey::load_or_generate(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!generated);
        assert_eq!(first.key_id(), second.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
