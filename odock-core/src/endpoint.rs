//! The gateway's LLM endpoints: which route, which provider families it accepts, how its request is
//! decoded and how it is billed.

use crate::domain::ProviderType;
use crate::pricing::BillingMode;

/// One LLM operation exposed by the gateway. Inserted into request extensions by the builder so
/// every layer knows what it is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/chat/completions` (OpenAI wire format).
    ChatCompletions,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/images/generations` (JSON).
    ImageGenerations,
    /// `POST /v1/images/edits` (multipart).
    ImageEdits,
    /// `POST /v1/images/variations` (multipart).
    ImageVariations,
    /// `POST /v1/messages` (Anthropic wire format).
    AnthropicMessages,
    /// `POST /v1beta/models/{model}:generateContent` (Gemini wire format; model in the path).
    GeminiGenerateContent,
    /// `POST /v1beta/models/{model}:streamGenerateContent` (always streamed).
    GeminiStreamGenerateContent,
    /// `POST /v1/vllm/...`: raw pass-through after governance.
    Vllm(VllmRoute),
    /// `POST /v1/mistral/...`.
    Mistral(MistralRoute),
    /// `POST /v1/huggingface/...`.
    HuggingFace(HuggingFaceRoute),
    /// `POST /v1/llm/chat`: an OpenAI-style chat request for a model of any family.
    UnifiedChat,
    /// `GET|POST|DELETE /v1/mcp/{ref}[/{path}]`: the governed MCP gateway (no model, no provider
    /// family; not in [`Endpoint::ALL`], which lists the LLM routes).
    Mcp,
}

/// vLLM's routes under `/v1/vllm/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VllmRoute {
    /// `/v1/vllm/chat/completions`.
    ChatCompletions,
    /// `/v1/vllm/completions` (plain text completion).
    Completions,
    /// `/v1/vllm/responses`.
    Responses,
    /// `/v1/vllm/embeddings`.
    Embeddings,
    /// `/v1/vllm/audio/transcriptions` (multipart).
    AudioTranscriptions,
    /// `/v1/vllm/audio/translations` (multipart).
    AudioTranslations,
    /// `/v1/vllm/tokenize`.
    Tokenize,
    /// `/v1/vllm/detokenize`.
    Detokenize,
    /// `/v1/vllm/pooling`.
    Pooling,
    /// `/v1/vllm/classify`.
    Classify,
    /// `/v1/vllm/score`.
    Score,
    /// `/v1/vllm/rerank`.
    Rerank,
}

/// Mistral's routes under `/v1/mistral/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MistralRoute {
    /// `/v1/mistral/chat/completions`.
    ChatCompletions,
    /// `/v1/mistral/fim/completions` (fill-in-the-middle code completion).
    FimCompletions,
    /// `/v1/mistral/embeddings`.
    Embeddings,
    /// `/v1/mistral/moderations`.
    Moderations,
    /// `/v1/mistral/ocr` (document OCR).
    Ocr,
}

/// Hugging Face's routes under `/v1/huggingface/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HuggingFaceRoute {
    /// `/v1/huggingface/chat/completions`.
    ChatCompletions,
    /// `/v1/huggingface/feature-extraction` (embeddings).
    FeatureExtraction,
    /// `/v1/huggingface/text-to-image`.
    TextToImage,
    /// `/v1/huggingface/text-to-video`.
    TextToVideo,
    /// `/v1/huggingface/speech-to-text`.
    SpeechToText,
}

/// How a route shapes its error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error":{...}}`.
    OpenAi,
    /// `{"type":"error","error":{...}}`, so Anthropic SDKs parse it.
    Anthropic,
}

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON body.
    Json,
    /// `multipart/form-data` with a `model` field (image edits, audio).
    Multipart,
}

/// Where the request names its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The `model` member (JSON) or field (multipart).
    Body,
    /// The path segment `models/{model}:{method}` (Gemini).
    GeminiPath,
}

/// Provider families served by the OpenAI routes (`/v1/chat/completions`, `/v1/responses`, …).
const OPENAI_FAMILY: &[ProviderType] = &[
    ProviderType::OpenAi,
    ProviderType::AzureOpenAi,
    ProviderType::Custom,
];

impl Endpoint {
    /// Every LLM endpoint, for route tables and tests.
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Embeddings,
        Endpoint::ImageGenerations,
        Endpoint::ImageEdits,
        Endpoint::ImageVariations,
        Endpoint::AnthropicMessages,
        Endpoint::GeminiGenerateContent,
        Endpoint::GeminiStreamGenerateContent,
        Endpoint::Vllm(VllmRoute::ChatCompletions),
        Endpoint::Vllm(VllmRoute::Completions),
        Endpoint::Vllm(VllmRoute::Responses),
        Endpoint::Vllm(VllmRoute::Embeddings),
        Endpoint::Vllm(VllmRoute::AudioTranscriptions),
        Endpoint::Vllm(VllmRoute::AudioTranslations),
        Endpoint::Vllm(VllmRoute::Tokenize),
        Endpoint::Vllm(VllmRoute::Detokenize),
        Endpoint::Vllm(VllmRoute::Pooling),
        Endpoint::Vllm(VllmRoute::Classify),
        Endpoint::Vllm(VllmRoute::Score),
        Endpoint::Vllm(VllmRoute::Rerank),
        Endpoint::Mistral(MistralRoute::ChatCompletions),
        Endpoint::Mistral(MistralRoute::FimCompletions),
        Endpoint::Mistral(MistralRoute::Embeddings),
        Endpoint::Mistral(MistralRoute::Moderations),
        Endpoint::Mistral(MistralRoute::Ocr),
        Endpoint::HuggingFace(HuggingFaceRoute::ChatCompletions),
        Endpoint::HuggingFace(HuggingFaceRoute::FeatureExtraction),
        Endpoint::HuggingFace(HuggingFaceRoute::TextToImage),
        Endpoint::HuggingFace(HuggingFaceRoute::TextToVideo),
        Endpoint::HuggingFace(HuggingFaceRoute::SpeechToText),
        Endpoint::UnifiedChat,
    ];

    /// The OpenTelemetry GenAI operation name (`gen_ai.operation.name`) of a call on this route.
    pub const fn gen_ai_operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::AnthropicMessages
            | Endpoint::GeminiGenerateContent
            | Endpoint::GeminiStreamGenerateContent
            | Endpoint::UnifiedChat
            | Endpoint::Vllm(VllmRoute::ChatCompletions | VllmRoute::Responses)
            | Endpoint::Mistral(MistralRoute::ChatCompletions)
            | Endpoint::HuggingFace(HuggingFaceRoute::ChatCompletions) => "chat",
            Endpoint::Vllm(VllmRoute::Completions)
            | Endpoint::Mistral(MistralRoute::FimCompletions) => "text_completion",
            Endpoint::Embeddings
            | Endpoint::Vllm(VllmRoute::Embeddings)
            | Endpoint::Mistral(MistralRoute::Embeddings)
            | Endpoint::HuggingFace(HuggingFaceRoute::FeatureExtraction) => "embeddings",
            Endpoint::ImageGenerations | Endpoint::ImageEdits | Endpoint::ImageVariations => {
                "generate_content"
            }
            Endpoint::Mcp => "execute_tool",
            _ => "generate_content",
        }
    }

    /// The gateway route (axum path syntax), as recorded on usage records and metrics.
    pub const fn route(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::ImageGenerations => "/v1/images/generations",
            Endpoint::ImageEdits => "/v1/images/edits",
            Endpoint::ImageVariations => "/v1/images/variations",
            Endpoint::AnthropicMessages => "/v1/messages",
            Endpoint::GeminiGenerateContent => "/v1beta/models/{model}:generateContent",
            Endpoint::GeminiStreamGenerateContent => "/v1beta/models/{model}:streamGenerateContent",
            Endpoint::Vllm(route) => match route {
                VllmRoute::ChatCompletions => "/v1/vllm/chat/completions",
                VllmRoute::Completions => "/v1/vllm/completions",
                VllmRoute::Responses => "/v1/vllm/responses",
                VllmRoute::Embeddings => "/v1/vllm/embeddings",
                VllmRoute::AudioTranscriptions => "/v1/vllm/audio/transcriptions",
                VllmRoute::AudioTranslations => "/v1/vllm/audio/translations",
                VllmRoute::Tokenize => "/v1/vllm/tokenize",
                VllmRoute::Detokenize => "/v1/vllm/detokenize",
                VllmRoute::Pooling => "/v1/vllm/pooling",
                VllmRoute::Classify => "/v1/vllm/classify",
                VllmRoute::Score => "/v1/vllm/score",
                VllmRoute::Rerank => "/v1/vllm/rerank",
            },
            Endpoint::Mistral(route) => match route {
                MistralRoute::ChatCompletions => "/v1/mistral/chat/completions",
                MistralRoute::FimCompletions => "/v1/mistral/fim/completions",
                MistralRoute::Embeddings => "/v1/mistral/embeddings",
                MistralRoute::Moderations => "/v1/mistral/moderations",
                MistralRoute::Ocr => "/v1/mistral/ocr",
            },
            Endpoint::HuggingFace(route) => match route {
                HuggingFaceRoute::ChatCompletions => "/v1/huggingface/chat/completions",
                HuggingFaceRoute::FeatureExtraction => "/v1/huggingface/feature-extraction",
                HuggingFaceRoute::TextToImage => "/v1/huggingface/text-to-image",
                HuggingFaceRoute::TextToVideo => "/v1/huggingface/text-to-video",
                HuggingFaceRoute::SpeechToText => "/v1/huggingface/speech-to-text",
            },
            Endpoint::UnifiedChat => "/v1/llm/chat",
            Endpoint::Mcp => "/v1/mcp/{mcp_ref}",
        }
    }

    /// Native routes are family-pinned: a model of another family is `provider_not_allowed`.
    /// `/v1/llm/chat` accepts every family.
    pub fn accepts(self, provider: ProviderType) -> bool {
        match self {
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::Embeddings
            | Endpoint::ImageGenerations
            | Endpoint::ImageEdits
            | Endpoint::ImageVariations => OPENAI_FAMILY.contains(&provider),
            Endpoint::AnthropicMessages => provider == ProviderType::Anthropic,
            Endpoint::GeminiGenerateContent | Endpoint::GeminiStreamGenerateContent => {
                provider == ProviderType::Google
            }
            Endpoint::Vllm(_) => provider == ProviderType::Vllm,
            Endpoint::Mistral(_) => provider == ProviderType::Mistral,
            Endpoint::HuggingFace(_) => provider == ProviderType::HuggingFace,
            Endpoint::UnifiedChat => true,
            Endpoint::Mcp => false,
        }
    }

    /// How errors on this route are shaped (Anthropic's envelope on `/v1/messages`).
    pub const fn error_style(self) -> ErrorStyle {
        match self {
            Endpoint::AnthropicMessages => ErrorStyle::Anthropic,
            _ => ErrorStyle::OpenAi,
        }
    }

    /// Embeddings-style routes bill input tokens at the embeddings rate.
    pub const fn billing_mode(self) -> BillingMode {
        match self {
            Endpoint::Embeddings
            | Endpoint::Vllm(VllmRoute::Embeddings)
            | Endpoint::Mistral(MistralRoute::Embeddings)
            | Endpoint::HuggingFace(HuggingFaceRoute::FeatureExtraction) => BillingMode::Embeddings,
            _ => BillingMode::Tokens,
        }
    }

    /// How the route's request body is encoded.
    pub const fn body_format(self) -> BodyFormat {
        match self {
            Endpoint::ImageEdits
            | Endpoint::ImageVariations
            | Endpoint::Vllm(VllmRoute::AudioTranscriptions | VllmRoute::AudioTranslations) => {
                BodyFormat::Multipart
            }
            _ => BodyFormat::Json,
        }
    }

    /// Where the route's request names its model.
    pub const fn model_source(self) -> ModelSource {
        match self {
            Endpoint::GeminiGenerateContent | Endpoint::GeminiStreamGenerateContent => {
                ModelSource::GeminiPath
            }
            _ => ModelSource::Body,
        }
    }

    /// Whether the route streams regardless of the body (Gemini's stream method).
    pub const fn always_streams(self) -> bool {
        matches!(self, Endpoint::GeminiStreamGenerateContent)
    }
}
