//! Which OpenAI API operation serves a gateway endpoint, and how that operation's requests and
//! answers are shaped.

use odock_core::{BodyFormat, Endpoint};

/// One operation of the OpenAI API, as the upstream exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    ChatCompletions,
    Responses,
    Embeddings,
    ImageGenerations,
    ImageEdits,
    ImageVariations,
}

impl Operation {
    /// The operation behind `endpoint`, or `None` when the OpenAI family does not serve it.
    /// `/v1/llm/chat` is chat completions: its body is already OpenAI chat.
    pub(crate) const fn for_endpoint(endpoint: Endpoint) -> Option<Self> {
        match endpoint {
            Endpoint::ChatCompletions | Endpoint::UnifiedChat => Some(Self::ChatCompletions),
            Endpoint::Responses => Some(Self::Responses),
            Endpoint::Embeddings => Some(Self::Embeddings),
            Endpoint::ImageGenerations => Some(Self::ImageGenerations),
            Endpoint::ImageEdits => Some(Self::ImageEdits),
            Endpoint::ImageVariations => Some(Self::ImageVariations),
            _ => None,
        }
    }

    /// The path under the API's base (`{base_url}/{path}` on OpenAI).
    pub(crate) const fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat/completions",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::ImageGenerations => "images/generations",
            Self::ImageEdits => "images/edits",
            Self::ImageVariations => "images/variations",
        }
    }

    /// Image edits and variations upload files as `multipart/form-data`; the rest is JSON.
    pub(crate) const fn body_format(self) -> BodyFormat {
        match self {
            Self::ImageEdits | Self::ImageVariations => BodyFormat::Multipart,
            Self::ChatCompletions | Self::Responses | Self::Embeddings | Self::ImageGenerations => {
                BodyFormat::Json
            }
        }
    }

    /// Only chat completions has `stream_options`; the gateway sets `include_usage` there. The
    /// Responses API and image streams report usage in their final events unasked.
    pub(crate) const fn asks_for_stream_usage(self) -> bool {
        matches!(self, Self::ChatCompletions)
    }

    /// The image operations, billed per image returned.
    pub(crate) const fn is_image(self) -> bool {
        matches!(
            self,
            Self::ImageGenerations | Self::ImageEdits | Self::ImageVariations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_openai_route_has_an_operation_and_no_other_does() {
        for &endpoint in Endpoint::ALL {
            let operation = Operation::for_endpoint(endpoint);
            let openai_route = matches!(
                endpoint,
                Endpoint::ChatCompletions
                    | Endpoint::Responses
                    | Endpoint::Embeddings
                    | Endpoint::ImageGenerations
                    | Endpoint::ImageEdits
                    | Endpoint::ImageVariations
                    | Endpoint::UnifiedChat
            );
            assert_eq!(operation.is_some(), openai_route, "{endpoint:?}");
            if let Some(operation) = operation {
                // The gateway decodes the body in the format the upstream expects.
                assert_eq!(
                    operation.body_format(),
                    endpoint.body_format(),
                    "{endpoint:?}"
                );
            }
        }
        assert_eq!(
            Operation::for_endpoint(Endpoint::UnifiedChat),
            Some(Operation::ChatCompletions)
        );
        assert_eq!(Operation::ImageVariations.path(), "images/variations");
    }
}
