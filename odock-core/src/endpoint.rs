//! The gateway's LLM endpoints: which route, which provider families it accepts, how it is billed.

use crate::domain::ProviderType;
use crate::pricing::BillingMode;

/// One LLM operation exposed by the gateway. Inserted into request extensions by the builder so
/// every layer knows what it is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/chat/completions` (OpenAI wire format).
    ChatCompletions,
}

/// How a route shapes its error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error":{...}}`.
    OpenAi,
    /// `{"type":"error","error":{...}}`, so Anthropic SDKs parse it.
    Anthropic,
}

impl Endpoint {
    /// The route, as recorded on usage records and metrics.
    pub const fn route(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
        }
    }

    /// Native routes are family-pinned: a model of another family is `provider_not_allowed`.
    pub const fn accepts(self, provider: ProviderType) -> bool {
        match self {
            Endpoint::ChatCompletions => matches!(
                provider,
                ProviderType::OpenAi | ProviderType::AzureOpenAi | ProviderType::Custom
            ),
        }
    }

    pub const fn error_style(self) -> ErrorStyle {
        match self {
            Endpoint::ChatCompletions => ErrorStyle::OpenAi,
        }
    }

    pub const fn billing_mode(self) -> BillingMode {
        match self {
            Endpoint::ChatCompletions => BillingMode::Tokens,
        }
    }
}
