//! Opaque identifiers. Ids are cheap to clone (`Arc<str>`) because they travel in request extensions.

use std::fmt;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps an existing id (from storage or a request path).
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                Self(id.into())
            }

            /// Mints a fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(new_object_id().into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Ids are strings on the wire.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::new(s)
            }
        }
    )+};
}

id_type!(
    /// An organisation's id: the tenant every other object belongs to.
    OrganisationId,
    /// A team's id.
    TeamId,
    /// A user's id.
    UserId,
    /// A virtual key's id (never the key itself, which is stored only as a hash).
    ApiKeyId,
    /// A provider's id.
    ProviderId,
    /// A provider credential's id (never the credential itself).
    ProviderKeyId,
    /// A model's id.
    ModelId,
    /// An MCP server's id.
    McpServerId,
    /// A usage record's id, which makes storing a record idempotent.
    UsageRecordId,
    /// A budget's id.
    BudgetId,
    /// A quota's id.
    QuotaId,
);

/// The id of one gateway request, echoed as `X-Request-Id` and stored on its usage record.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A fresh id: 32 lower-case hex characters, time-ordered so the usage records' request-id index grows
    /// at its right edge instead of touching a random page per record.
    pub fn generate() -> Self {
        Self(time_ordered_hex_id().into())
    }

    /// Accepts a client-supplied id when it is 1–128 characters of `[A-Za-z0-9._:-]`.
    pub fn parse(value: &str) -> Option<Self> {
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        valid.then(|| Self(value.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RequestId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <String as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RequestId {}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", &self.0)
    }
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(bytes.as_mut_slice());
    hex::encode(bytes)
}

/// A 32-hex-character id whose first 12 characters are the unix time in milliseconds: unique like a
/// random id, but appended in order, which keeps inserts into time-ordered tables (usage records)
/// at the right edge of their index.
pub fn time_ordered_hex_id() -> String {
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
    format!("{:012x}{}", millis & 0xffff_ffff_ffff, random_hex(10))
}

/// A 25-character, lower-case, time-ordered object id (`c` + 9 base-36 time digits + 15 random).
/// Time-ordered ids keep list pagination by id stable and index-friendly.
pub fn new_object_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut out = String::with_capacity(25);
    out.push('c');
    let mut digits = [b'0'; 9];
    let mut t = millis;
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(t % 36) as usize];
        t /= 36;
    }
    out.extend(digits.iter().map(|&b| b as char));
    let mut rng = rand::thread_rng();
    for _ in 0..15 {
        out.push(ALPHABET[rng.gen_range(0..36)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_accepts_only_safe_values() {
        assert!(RequestId::parse("abc-123_x.y:z").is_some());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
    }

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = RequestId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        let hex = time_ordered_hex_id();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let object = new_object_id();
        assert_eq!(object.len(), 25);
        assert!(object.starts_with('c'));
        assert_ne!(new_object_id(), object);
    }
}
