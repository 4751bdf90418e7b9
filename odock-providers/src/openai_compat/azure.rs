//! Azure OpenAI: the same wire format as OpenAI, addressed per deployment and authenticated with
//! an `api-key` header.
//!
//! - **Base URL:** the resource root, e.g. `https://my-resource.openai.azure.com` (no `/openai`).
//! - **Chat, embeddings, images:**
//!   `{base_url}/openai/deployments/{slug}/{path}?api-version={config.apiVersion}`, where the
//!   model's slug is the deployment name and `apiVersion` defaults to [`DEFAULT_API_VERSION`] (the
//!   GA version with `stream_options`, embeddings and DALL·E 3; image edits with `gpt-image-1` need
//!   a newer preview version, set on the provider).
//! - **Responses:** Azure serves the Responses API only on its OpenAI-compatible v1 surface,
//!   `{base_url}/openai/v1/responses`, with the deployment name as the body's `model` (the gateway
//!   writes the slug there anyway). That surface needs no `api-version`; when the provider's config
//!   sets `responsesApiVersion` (e.g. `"preview"`, for the earlier preview surface) it is sent as
//!   `api-version`.
//! - **Auth:** `api-key: <provider key>`, never `Authorization`.

use http::header::HeaderName;
use odock_core::{ProviderError, ResolvedModel};
use reqwest::Url;
use serde_json::Value;

use super::route::Operation;

/// The `api-version` sent when the provider's config sets none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The provider config key for the data-plane API version.
pub const API_VERSION: &str = "apiVersion";

/// The provider config key for the Responses API's `api-version` (unset: none is sent).
pub const RESPONSES_API_VERSION: &str = "responsesApiVersion";

/// Azure's credential header.
pub const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// The upstream URL of `operation` for `model`.
pub fn url(model: &ResolvedModel, operation: Operation) -> Result<Url, ProviderError> {
    let invalid = || {
        ProviderError::Unreachable(format!(
            "the base URL of provider `{}` is not a valid http(s) URL",
            model.provider.name
        ))
    };
    let mut url =
        Url::parse(model.provider.base_url.trim_end_matches('/')).map_err(|_| invalid())?;
    let config = &model.provider.config;
    let api_version = match operation {
        Operation::Responses => config_str(config, RESPONSES_API_VERSION),
        _ => Some(config_str(config, API_VERSION).unwrap_or(DEFAULT_API_VERSION)),
    };
    {
        let mut segments = url.path_segments_mut().map_err(|()| invalid())?;
        segments.pop_if_empty();
        match operation {
            Operation::Responses => {
                segments.extend(["openai", "v1"]);
            }
            _ => {
                // Pushed as one segment: a slug is percent-encoded, never a path.
                segments.extend(["openai", "deployments"]).push(&model.slug);
            }
        }
        segments.extend(operation.path().split('/'));
    }
    url.set_query(None);
    if let Some(version) = api_version {
        url.query_pairs_mut().append_pair("api-version", version);
    }
    Ok(url)
}

/// A non-empty string setting of the provider config.
fn config_str<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use odock_core::{
        ModelId, ModelPricing, ModelType, OrganisationId, ProviderId, ProviderType,
        ResolvedProvider,
    };
    use serde_json::json;

    use super::*;

    fn model(base_url: &str, slug: &str, config: Value) -> ResolvedModel {
        ResolvedModel {
            id: ModelId::new("mdl_1"),
            organisation_id: OrganisationId::new("org_1"),
            name: "gpt".into(),
            slug: slug.into(),
            model_type: ModelType::Chat,
            capabilities: Vec::new(),
            enabled: true,
            provider: ResolvedProvider {
                id: ProviderId::new("prv_1"),
                name: "azure".into(),
                provider_type: ProviderType::AzureOpenAi,
                base_url: base_url.into(),
                timeout: None,
                enabled: true,
                config,
            },
            provider_key: None,
            key_pool: Default::default(),
            pricing: Arc::new(ModelPricing::default()),
            max_output_tokens: None,
            config: json!({}),
        }
    }

    fn url_of(model: &ResolvedModel, operation: Operation) -> String {
        url(model, operation).unwrap().to_string()
    }

    #[test]
    fn deployments_are_addressed_with_the_api_version() {
        let m = model("https://acme.openai.azure.com/", "gpt-4o-prod", json!({}));
        assert_eq!(
            url_of(&m, Operation::ChatCompletions),
            "https://acme.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            url_of(&m, Operation::ImageEdits),
            "https://acme.openai.azure.com/openai/deployments/gpt-4o-prod/images/edits?api-version=2024-10-21"
        );
        let m = model(
            "https://acme.openai.azure.com",
            "text-embedding-3-small",
            json!({"apiVersion": "2025-04-01-preview"}),
        );
        assert_eq!(
            url_of(&m, Operation::Embeddings),
            "https://acme.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2025-04-01-preview"
        );
    }

    #[test]
    fn responses_use_the_v1_surface() {
        let m = model("https://acme.openai.azure.com", "gpt-4.1", json!({}));
        assert_eq!(
            url_of(&m, Operation::Responses),
            "https://acme.openai.azure.com/openai/v1/responses"
        );
        let m = model(
            "https://acme.openai.azure.com",
            "gpt-4.1",
            json!({"responsesApiVersion": "preview", "apiVersion": "2024-10-21"}),
        );
        assert_eq!(
            url_of(&m, Operation::Responses),
            "https://acme.openai.azure.com/openai/v1/responses?api-version=preview"
        );
    }

    #[test]
    fn slugs_cannot_escape_their_segment() {
        let m = model("https://acme.openai.azure.com", "../admin?x=1", json!({}));
        let url = url_of(&m, Operation::ChatCompletions);
        assert_eq!(
            url,
            "https://acme.openai.azure.com/openai/deployments/..%2Fadmin%3Fx=1/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn a_base_url_that_is_not_a_url_is_refused() {
        let m = model("not a url", "d", json!({}));
        assert!(matches!(
            url(&m, Operation::ChatCompletions),
            Err(ProviderError::Unreachable(_))
        ));
    }
}
