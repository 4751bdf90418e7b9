//! The gateway's tower layers, one concern per module. [`crate::GatewayBuilder`] applies them in one
//! documented order; embedders may also compose them by hand.

pub mod admission;
pub mod admission_facts;
pub mod auth;
pub mod client_ip;
pub mod error_response;
pub mod mcp;
pub mod metering;
pub mod request_id;
pub mod resolve;
pub mod trace;

pub use admission::{AdmissionLayer, AdmissionService, ClientIp};
pub use admission_facts::{estimate, AdmissionFacts, PolicyTarget, DEFAULT_OUTPUT_ESTIMATE};
pub use auth::{AuthLayer, AuthService};
pub use client_ip::{ClientIpLayer, ClientIpService, TrustedProxies};
pub use error_response::{ErrorResponseLayer, ErrorResponseService};
pub use mcp::{McpRef, McpRefLayer, McpRequest, McpResolveLayer};
pub use metering::{Meter, MeteringLayer, MeteringService};
pub use request_id::{RequestIdLayer, RequestIdService, RequestStart};
pub use resolve::{LlmRequest, ResolveLayer, ResolveService};
pub use trace::{TraceLayer, TraceService, TraceStageLayer, TraceStageService};

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
