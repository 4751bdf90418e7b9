//! The MCP server reference: `/v1/mcp/{ref}` or `/v1/mcp/{ref}/{path}`, where `ref` is the server's
//! slug or id. Checked first (before authentication, as the access flow orders it): a path without a
//! reference is 400 `invalid_mcp_ref`.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::error::{GatewayError, McpError};

/// The route prefix of the MCP gateway.
pub const MCP_PREFIX: &str = "/v1/mcp";

/// Request extension: the server reference and the rest of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRef {
    /// Slug or id, as the client wrote it.
    pub reference: String,
    /// What follows the reference (`""`, or `/messages`, …), for transports that use sub-paths.
    pub rest: String,
}

impl McpRef {
    /// Parses `/v1/mcp/{ref}[/{rest}]`.
    pub fn from_path(path: &str) -> Result<Self, McpError> {
        let after = path
            .strip_prefix(MCP_PREFIX)
            .and_then(|p| p.strip_prefix('/'))
            .ok_or(McpError::InvalidRef)?;
        let (reference, rest) = match after.find('/') {
            Some(at) => (&after[..at], &after[at..]),
            None => (after, ""),
        };
        if reference.trim().is_empty() {
            return Err(McpError::InvalidRef);
        }
        Ok(Self {
            reference: reference.to_owned(),
            rest: rest.to_owned(),
        })
    }
}

/// Inserts [`McpRef`] or fails with `invalid_mcp_ref`.
#[derive(Debug, Clone, Copy, Default)]
pub struct McpRefLayer;

impl<S> Layer<S> for McpRefLayer {
    type Service = McpRefService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpRefService { inner }
    }
}

/// The service [`McpRefLayer`] wraps around the inner service.
#[derive(Debug, Clone)]
pub struct McpRefService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for McpRefService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = GatewayError>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Self::Response, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match McpRef::from_path(req.uri().path()) {
            Ok(reference) => {
                req.extensions_mut().insert(reference);
                Box::pin(self.inner.call(req))
            }
            Err(error) => Box::pin(std::future::ready(Err(error.into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_sub_paths() {
        assert_eq!(
            McpRef::from_path("/v1/mcp/tools").unwrap(),
            McpRef {
                reference: "tools".into(),
                rest: String::new()
            }
        );
        assert_eq!(
            McpRef::from_path("/v1/mcp/tools/messages/x").unwrap().rest,
            "/messages/x"
        );
        for bad in ["/v1/mcp", "/v1/mcp/", "/v1/mcp//x", "/other/tools"] {
            assert_eq!(McpRef::from_path(bad), Err(McpError::InvalidRef), "{bad}");
        }
    }
}
