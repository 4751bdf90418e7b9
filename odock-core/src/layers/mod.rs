//! The gateway's tower layers, one concern per module. [`crate::GatewayBuilder`] applies them in one
//! documented order; embedders may also compose them by hand.

pub mod admission;
pub mod auth;
pub mod client_ip;
pub mod error_response;
pub mod governed;
pub mod mcp;
pub mod metering;
pub mod request_id;
pub mod resolve;
pub mod trace;

pub use admission::{AdmissionLayer, Admit, ClientIp};
pub use auth::{AuthLayer, Authenticate};
pub use client_ip::{ClientIpLayer, SetClientIp, TrustedProxies};
pub use error_response::{ErrorResponse, ErrorResponseLayer};
pub use governed::{estimate, Governed, PolicyTarget, DEFAULT_OUTPUT_ESTIMATE};
pub use mcp::{McpRef, McpRefLayer, McpRequest, McpResolveLayer};
pub use metering::{Meter, Metering, MeteringLayer};
pub use request_id::{RequestIdLayer, RequestStart, SetRequestId};
pub use resolve::{LlmRequest, Resolve, ResolveLayer};
pub use trace::{Trace, TraceLayer, TraceStage, TraceStageLayer};

/// An extension an earlier layer must have inserted; its absence is a stack-assembly bug, reported
/// as an internal error naming the layer and what it missed.
pub(crate) fn required<'a, T: Send + Sync + 'static>(
    extensions: &'a http::Extensions,
    layer: &str,
    what: &str,
) -> Result<&'a T, crate::error::GatewayError> {
    extensions.get::<T>().ok_or_else(|| {
        crate::error::GatewayError::Internal(format!("{layer} needs {what} from an earlier layer"))
    })
}
