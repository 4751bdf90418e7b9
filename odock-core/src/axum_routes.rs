//! The gateway's LLM route table as an axum [`Router`] (feature `axum`): one governed stack per
//! [`Endpoint`], the model-list routes and key validation, and the Gemini method splitter (Gemini
//! puts model and method in one path segment, `models/{model}:{method}`, which the router cannot
//! split, so one route serves both methods).
//!
//! The reference server mounts this same table, so an embedder gets exactly the server's LLM
//! routes by merging [`llm_router`] into its own app.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get_service, post_service};
use axum::Router;
use futures::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::layers::error_response::error_response;
use crate::{Endpoint, ErrorStyle, GatewayBuilder, GatewayError, GatewayService, ProviderType};

/// The Gemini path pattern both Gemini methods share.
pub const GEMINI_ROUTE: &str = "/v1beta/models/{*model_and_method}";

/// Every LLM route of the gateway, `POST /v1/keys/validate` and the model lists.
pub fn llm_router(gateway: &GatewayBuilder) -> Router {
    let mut router = Router::new();
    for &endpoint in Endpoint::ALL {
        if matches!(
            endpoint,
            Endpoint::GeminiGenerateContent | Endpoint::GeminiStreamGenerateContent
        ) {
            continue;
        }
        router = router.route(
            endpoint.route(),
            post_service(gateway.llm::<Body>(endpoint)),
        );
    }
    router
        .route(GEMINI_ROUTE, post_service(GeminiMethods::new(gateway)))
        .route("/v1/keys/validate", post_service(gateway.validate_key()))
        .route("/v1/models", get_service(gateway.model_list::<Body>(None)))
        .route(
            "/v1/vllm/models",
            get_service(gateway.model_list::<Body>(Some(ProviderType::Vllm))),
        )
        .route(
            "/v1/mistral/models",
            get_service(gateway.model_list::<Body>(Some(ProviderType::Mistral))),
        )
        .route(
            "/v1/huggingface/models",
            get_service(gateway.model_list::<Body>(Some(ProviderType::HuggingFace))),
        )
}

/// Routes `…:generateContent` and `…:streamGenerateContent` to their stacks; anything else is 404.
#[derive(Clone)]
pub struct GeminiMethods {
    generate: GatewayService<Body>,
    stream: GatewayService<Body>,
}

impl std::fmt::Debug for GeminiMethods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeminiMethods")
    }
}

impl GeminiMethods {
    /// Both Gemini methods over `gateway`'s stacks.
    pub fn new(gateway: &GatewayBuilder) -> Self {
        Self {
            generate: gateway.llm(Endpoint::GeminiGenerateContent),
            stream: gateway.llm(Endpoint::GeminiStreamGenerateContent),
        }
    }
}

impl Service<Request> for GeminiMethods {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        let service = if path.ends_with(":streamGenerateContent") {
            Some(self.stream.clone())
        } else if path.ends_with(":generateContent") {
            Some(self.generate.clone())
        } else {
            None
        };
        Box::pin(async move {
            match service {
                Some(service) => service
                    .oneshot(request)
                    .await
                    .map(IntoResponse::into_response),
                None => {
                    Ok(error_response(&GatewayError::NotFound, ErrorStyle::OpenAi).into_response())
                }
            }
        })
    }
}
