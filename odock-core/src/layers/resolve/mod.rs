//! Resolution: reads the body (bounded), decodes it into an [`LlmRequest`], resolves the model in the
//! caller's organisation and checks, in order: the key's grant (`model_not_allowed`), the route's
//! provider family (`provider_not_allowed`), the provider being enabled (`provider_disabled`) and a
//! usable provider key (`provider_api_key_not_configured`, `provider_api_key_revoked`).
//!
//! Needs [`Principal`] and [`Endpoint`] in the extensions (and
//! uses the [`Meter`] when present). Turns `Request<B>` into `Request<Bytes>` and leaves
//! [`LlmRequest`], `Arc<ResolvedModel>` and [`AdmissionFacts`] (the model's policy target and the
//! request's estimate) in the extensions for the policy gate, the ledgers and the provider call.

pub(crate) mod decode;
#[cfg(test)]
mod fuzz;
pub mod multipart;

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use tower::{Layer, Service};

pub use decode::LlmRequest;

use super::admission_facts::estimate;
use super::admission_facts::{AdmissionFacts, PolicyTarget};
use super::metering::Meter;
use crate::body::BoxError;
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, RequestError, ResolveError};
use crate::key_store::KeyStore;
use crate::model::ResolvedModel;
use crate::principal::Principal;

/// Default cap on a buffered request body (32 MiB); policies may set a lower one later.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Tower layer resolving the model and checking grant, family, provider and key (see the module
/// docs).
#[derive(Clone)]
pub struct ResolveLayer {
    store: Arc<dyn KeyStore>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for ResolveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveLayer")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl ResolveLayer {
    /// A layer resolving through `store`, with the default body limit.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Upper bound on a buffered request body (413 beyond).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

impl<S> Layer<S> for ResolveLayer {
    type Service = ResolveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ResolveLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct ResolveService<S> {
    inner: S,
    layer: ResolveLayer,
}

/// The response future of [`ResolveService`].
pub type ResponseFuture<R> = BoxFuture<'static, Result<R, GatewayError>>;

impl<S, B, ResBody> Service<Request<B>> for ResolveService<S>
where
    S: Service<Request<Bytes>, Response = Response<ResBody>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = GatewayError;
    type Future = ResponseFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let principal = parts
                .extensions
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| {
                    GatewayError::Internal("resolution needs an authenticated principal".into())
                })?;
            let endpoint = parts
                .extensions
                .get::<Endpoint>()
                .copied()
                .ok_or_else(|| GatewayError::Internal("resolution needs an endpoint".into()))?;
            let bytes = read_body(body, layer.max_body_bytes).await?;
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let llm = LlmRequest::decode(endpoint, parts.uri.path(), content_type, &bytes)?;
            let meter = parts.extensions.get::<Meter>().cloned();
            if let Some(meter) = &meter {
                meter.set_request(llm.stream, llm.prompt_text_bytes);
            }
            let model = layer
                .store
                .model(&principal.organisation_id, &llm.model)
                .await?;
            if let Some(meter) = &meter {
                meter.set_model(model.clone());
            }
            check_model(&*layer.store, &principal, endpoint, &model).await?;
            check_provider_pin(&llm, &model)?;
            parts.extensions.insert(AdmissionFacts {
                target: PolicyTarget::Model(model.id.clone()),
                estimate: estimate(&llm, &model, endpoint.billing_mode()),
            });
            parts.extensions.insert(llm);
            parts.extensions.insert(model);
            inner.call(Request::from_parts(parts, bytes)).await
        })
    }
}

/// Buffers the body up to `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, RequestError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(RequestError::PayloadTooLarge {
                limit: limit as u64,
            })
        }
        Err(_) => Err(RequestError::InvalidBody(
            "could not read the request body".to_owned(),
        )),
    }
}

/// `/v1/llm/chat` may name the family it expects (`provider`); a model served by another family is
/// refused. `openai` also names the OpenAI-compatible families served through the OpenAI API
/// (Azure OpenAI, Custom).
pub fn check_provider_pin(request: &LlmRequest, model: &ResolvedModel) -> Result<(), RequestError> {
    let Some(asked) = request.provider.as_deref() else {
        return Ok(());
    };
    let provider_type = model.provider.provider_type;
    let family = provider_type.family();
    let openai_compatible = matches!(
        provider_type,
        crate::ProviderType::OpenAi
            | crate::ProviderType::AzureOpenAi
            | crate::ProviderType::Custom
    );
    if asked.eq_ignore_ascii_case(family)
        || (asked.eq_ignore_ascii_case("openai") && openai_compatible)
    {
        return Ok(());
    }
    Err(RequestError::Invalid {
        message: format!(
            "`provider` is `{asked}`, but model `{}` is served by `{family}`",
            model.name
        ),
        field: Some("provider"),
    })
}

/// The access and configuration checks, in their documented order.
pub async fn check_model(
    store: &dyn KeyStore,
    principal: &Principal,
    endpoint: Endpoint,
    model: &ResolvedModel,
) -> Result<(), ResolveError> {
    if !store
        .has_model_grant(&principal.api_key_id, &model.id)
        .await?
    {
        return Err(ResolveError::ModelNotAllowed);
    }
    let provider_type = model.provider.provider_type;
    if !endpoint.accepts(provider_type) {
        return Err(ResolveError::ProviderNotAllowed {
            model: model.name.clone(),
            provider: provider_type.as_str().to_owned(),
        });
    }
    if !model.provider.enabled {
        return Err(ResolveError::ProviderDisabled);
    }
    match &model.provider_key {
        None => Err(ResolveError::ProviderKeyNotConfigured),
        Some(key) if key.revoked => Err(ResolveError::ProviderKeyRevoked),
        Some(_) => Ok(()),
    }
}
