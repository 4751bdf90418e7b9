//! Virtual keys: generation and the hash they are stored and looked up by.
//!
//! A key is `sk_` + 43 URL-safe base64 characters (256 random bits). It is stored as its SHA-256
//! (hex): the key already carries 256 bits of entropy, so a plain hash cannot be brute-forced, and
//! authentication stays one indexed lookup. The plaintext exists only in the create/rotate response.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every virtual key starts with, so a leaked key is recognisable (and scannable) as Odock's.
pub const KEY_PREFIX: &str = "sk_";

/// A fresh virtual key.
pub fn generate_virtual_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored lookup hash of a presented key.
pub fn hash_virtual_key(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

/// A hash for other one-time tokens (invitations, sessions), same construction.
pub fn hash_token(token: &str) -> String {
    hash_virtual_key(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_stable_hashes() {
        let key = generate_virtual_key();
        assert!(key.starts_with("sk_"));
        assert_eq!(key.len(), 3 + 43);
        assert_ne!(generate_virtual_key(), key);
        assert_eq!(hash_virtual_key(&key), hash_virtual_key(&key));
        assert_eq!(hash_virtual_key(&key).len(), 64);
        assert_ne!(hash_virtual_key(&key), hash_virtual_key("sk_other"));
    }
}
