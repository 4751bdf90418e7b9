//! The response body type every gateway service produces.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Boxed error type used in bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed response body: full JSON bodies, relayed upstream streams and metered wrappers all
/// become this one type, so layers compose without generic explosions.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
