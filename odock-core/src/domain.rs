//! The enums of the seed reference, written exactly as the admin API and the database spell them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value was not one of the enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

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
    Role { SuperAdmin => "SUPER_ADMIN", OrgAdmin => "ORG_ADMIN", Manager => "MANAGER", User => "USER" }
);

string_enum!(
    /// Whose key it is: it decides attribution and which budgets, quotas and policies match.
    ApiKeyType { Organisation => "ORGANISATION", Team => "TEAM", User => "USER" }
);

string_enum!(
    /// Upstream provider families.
    ProviderType {
        OpenAi => "OPENAI",
        Anthropic => "ANTHROPIC",
        Google => "GOOGLE",
        AzureOpenAi => "AZURE_OPENAI",
        Vllm => "VLLM",
        Mistral => "MISTRAL",
        HuggingFace => "HUGGINGFACE",
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
        Chat => "chat",
        Reasoning => "reasoning",
        Image => "image",
        Embeddings => "embeddings",
        Audio => "audio",
        Moderation => "moderation",
        Transcription => "transcription",
        Tts => "tts",
        Ocr => "ocr",
    }
);

string_enum!(
    /// How Odock talks to an MCP server.
    McpTransportKind { StreamableHttp => "STREAMABLE_HTTP", Sse => "SSE", Stdio => "STDIO" }
);

string_enum!(
    /// How Odock authenticates to an MCP server.
    McpAuthType { None => "NONE", Bearer => "BEARER", Basic => "BASIC", OAuth2 => "OAUTH2" }
);

string_enum!(
    /// Length of a budget or quota window.
    BudgetPeriod { Daily => "DAILY", Weekly => "WEEKLY", Monthly => "MONTHLY", Quarterly => "QUARTERLY" }
);

string_enum!(
    /// What a quota counts.
    QuotaMetric {
        Requests => "REQUESTS",
        Tokens => "TOKENS",
        TokensIn => "TOKENS_IN",
        TokensOut => "TOKENS_OUT",
        Errors => "ERRORS",
        Cost => "COST",
        LatencyMs => "LATENCY_MS",
    }
);

string_enum!(
    /// Who a budget or quota belongs to.
    OwnerType { Org => "ORG", Team => "TEAM", User => "USER", ApiKey => "APIKEY" }
);

string_enum!(
    /// A user's account state.
    UserStatus { Pending => "PENDING", Active => "ACTIVE", Revoked => "REVOKED" }
);

string_enum!(
    /// What accepting an invitation does.
    InvitationType { CreateOrganisation => "CREATE_ORGANISATION", JoinOrganisation => "JOIN_ORGANISATION" }
);

string_enum!(
    /// Where an invitation stands.
    InvitationStatus { Pending => "PENDING", Accepted => "ACCEPTED", Expired => "EXPIRED", Revoked => "REVOKED" }
);

string_enum!(
    /// A member's role inside one team.
    TeamRole { Manager => "MANAGER", Member => "MEMBER" }
);

string_enum!(
    /// Model capabilities.
    Capability { Vision => "vision", Reasoning => "reasoning", ToolUse => "tool_use" }
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
