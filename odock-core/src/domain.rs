//! The enums of the seed reference, written exactly as the admin API and the database spell them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value was not one of the enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    /// Which enum was being read (for the message).
    pub kind: &'static str,
    /// The text that matched none of its spellings.
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling the admin API and the database use.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        /// A string enum of [`Self::ALL`]'s spellings.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// A user's role in their organisation.
    Role {
        /// Operates the whole deployment, across organisations.
        SuperAdmin => "SUPER_ADMIN",
        /// Administers one organisation.
        OrgAdmin => "ORG_ADMIN",
        /// Organisation staff: sees and manages the teams they manage.
        Manager => "MANAGER",
        /// A member: sees their own keys and usage.
        User => "USER",
    }
);

string_enum!(
    /// Whose key it is: it decides attribution and which budgets, quotas and policies match.
    ApiKeyType {
        /// The organisation's own key: only organisation-wide rules match.
        Organisation => "ORGANISATION",
        /// A team's key: the team's rules match too.
        Team => "TEAM",
        /// A user's key: the user's rules match too.
        User => "USER",
    }
);

string_enum!(
    /// Upstream provider families.
    ProviderType {
        /// OpenAI's API.
        OpenAi => "OPENAI",
        /// Anthropic's Messages API.
        Anthropic => "ANTHROPIC",
        /// Google's Gemini API (`generateContent`).
        Google => "GOOGLE",
        /// Azure OpenAI deployments (OpenAI's protocol, Azure's URLs and `api-key` header).
        AzureOpenAi => "AZURE_OPENAI",
        /// A self-hosted vLLM server.
        Vllm => "VLLM",
        /// Mistral's API.
        Mistral => "MISTRAL",
        /// Hugging Face's inference router.
        HuggingFace => "HUGGINGFACE",
        /// Any other OpenAI-compatible server.
        Custom => "CUSTOM",
    }
);

impl ProviderType {
    /// The lower-case family name used on usage records and in `/v1/llm/chat` responses.
    pub const fn family(self) -> &'static str {
        match self {
            ProviderType::OpenAi => "openai",
            ProviderType::Anthropic => "anthropic",
            ProviderType::Google => "gemini",
            ProviderType::AzureOpenAi => "azure",
            ProviderType::Vllm => "vllm",
            ProviderType::Mistral => "mistral",
            ProviderType::HuggingFace => "huggingface",
            ProviderType::Custom => "custom",
        }
    }

    /// The base URL a provider of this type gets when none is configured.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            ProviderType::OpenAi => "https://api.openai.com/v1",
            ProviderType::Anthropic => "https://api.anthropic.com",
            ProviderType::Google => "https://generativelanguage.googleapis.com",
            ProviderType::AzureOpenAi => "https://example-resource.openai.azure.com",
            ProviderType::Vllm => "http://localhost:8000",
            ProviderType::Mistral => "https://api.mistral.ai/v1",
            ProviderType::HuggingFace => "https://router.huggingface.co",
            ProviderType::Custom => "https://api.example.com/v1",
        }
    }
}

string_enum!(
    /// What a model does; routing policies are grouped by it.
    ModelType {
        /// Chat completion.
        Chat => "chat",
        /// Chat with extended reasoning.
        Reasoning => "reasoning",
        /// Image generation.
        Image => "image",
        /// Embeddings.
        Embeddings => "embeddings",
        /// Audio generation or understanding.
        Audio => "audio",
        /// Content moderation.
        Moderation => "moderation",
        /// Speech to text.
        Transcription => "transcription",
        /// Text to speech.
        Tts => "tts",
        /// Document OCR.
        Ocr => "ocr",
    }
);

string_enum!(
    /// How Odock talks to an MCP server.
    McpTransportKind {
        /// MCP's streamable HTTP transport.
        StreamableHttp => "STREAMABLE_HTTP",
        /// The older HTTP+SSE transport.
        Sse => "SSE",
        /// A child process speaking JSON-RPC on its standard input and output.
        Stdio => "STDIO",
    }
);

string_enum!(
    /// How Odock authenticates to an MCP server.
    McpAuthType {
        /// No credentials.
        None => "NONE",
        /// A static bearer token.
        Bearer => "BEARER",
        /// HTTP Basic username and password.
        Basic => "BASIC",
        /// OAuth 2.0 client credentials.
        OAuth2 => "OAUTH2",
    }
);

string_enum!(
    /// Length of a budget or quota window.
    BudgetPeriod {
        /// One day.
        Daily => "DAILY",
        /// Seven days.
        Weekly => "WEEKLY",
        /// One calendar month.
        Monthly => "MONTHLY",
        /// Three calendar months.
        Quarterly => "QUARTERLY",
    }
);

string_enum!(
    /// What a quota counts.
    QuotaMetric {
        /// Requests made.
        Requests => "REQUESTS",
        /// Input plus output tokens.
        Tokens => "TOKENS",
        /// Input tokens.
        TokensIn => "TOKENS_IN",
        /// Output tokens.
        TokensOut => "TOKENS_OUT",
        /// Failed requests (counted when they end).
        Errors => "ERRORS",
        /// Cost in nanos USD.
        Cost => "COST",
        /// Request latency in milliseconds, summed (counted when requests end).
        LatencyMs => "LATENCY_MS",
    }
);

string_enum!(
    /// Who a budget or quota belongs to.
    OwnerType {
        /// The whole organisation.
        Org => "ORG",
        /// One team.
        Team => "TEAM",
        /// One user.
        User => "USER",
        /// One API key.
        ApiKey => "APIKEY",
    }
);

string_enum!(
    /// A user's account state.
    UserStatus {
        /// Created without a password: cannot sign in yet.
        Pending => "PENDING",
        /// May sign in.
        Active => "ACTIVE",
        /// Locked out.
        Revoked => "REVOKED",
    }
);

string_enum!(
    /// What accepting an invitation does.
    InvitationType {
        /// The invitee creates a new organisation and administers it.
        CreateOrganisation => "CREATE_ORGANISATION",
        /// The invitee joins an existing organisation.
        JoinOrganisation => "JOIN_ORGANISATION",
    }
);

string_enum!(
    /// Where an invitation stands.
    InvitationStatus {
        /// Sent, not yet used.
        Pending => "PENDING",
        /// Used.
        Accepted => "ACCEPTED",
        /// Not used in time.
        Expired => "EXPIRED",
        /// Withdrawn before use.
        Revoked => "REVOKED",
    }
);

string_enum!(
    /// A member's role inside one team.
    TeamRole {
        /// Manages the team.
        Manager => "MANAGER",
        /// Belongs to the team.
        Member => "MEMBER",
    }
);

string_enum!(
    /// Model capabilities.
    Capability {
        /// Reads images.
        Vision => "vision",
        /// Reasons before answering.
        Reasoning => "reasoning",
        /// Calls tools.
        ToolUse => "tool_use",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_spelling() {
        for t in ProviderType::ALL {
            assert_eq!(t.as_str().parse::<ProviderType>().ok(), Some(*t));
        }
        assert_eq!(ModelType::Ocr.as_str(), "ocr");
        assert_eq!(ProviderType::HuggingFace.as_str(), "HUGGINGFACE");
        let json = serde_json::to_string(&QuotaMetric::TokensIn).unwrap_or_default();
        assert_eq!(json, "\"TOKENS_IN\"");
        assert!(serde_json::from_str::<OwnerType>("\"NOPE\"").is_err());
        assert_eq!(ProviderType::ALL.len(), 8);
        assert_eq!(ModelType::ALL.len(), 9);
    }
}
