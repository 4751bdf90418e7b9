//! The routing document of one API key (`GET|PUT /apikeys/{id}/routing`): one policy per model
//! type, each an ordered list of candidate models, a strategy, the triggers that allow another
//! attempt, and how many more attempts there may be.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::ModelType;
use crate::ids::ModelId;

/// How the attempt order is chosen (DECISIONS.md, "Smart routing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The candidates as listed.
    Failover,
    /// Ascending `priority` (ties as listed).
    Priority,
    /// As listed, starting one further for each request of that key and type.
    RoundRobin,
    /// The start drawn by `weight`, then as listed.
    Weighted,
}

impl Strategy {
    /// The strategy as the routing document spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Failover => "failover",
            Strategy::Priority => "priority",
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
        }
    }
}

/// Which upstream failures allow another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Trigger {
    /// Upstream status ≥ 500 or a connection failure.
    #[serde(rename = "5xx")]
    ServerError,
    /// The upstream timed out.
    #[serde(rename = "timeout")]
    Timeout,
    /// Upstream 429, or an error body mentioning `rate_limit` / `rate limit`.
    #[serde(rename = "rate_limit")]
    RateLimit,
    /// Any upstream failure.
    #[serde(rename = "any")]
    Any,
}

/// The triggers a policy has when it names none.
pub const DEFAULT_TRIGGERS: [Trigger; 2] = [Trigger::ServerError, Trigger::Timeout];

/// The most attempts a policy may add to the first (`maxRetries`).
pub const MAX_RETRIES: u32 = 10;
/// The longest pause between attempts (`retryDelayMs`).
pub const MAX_RETRY_DELAY_MS: u64 = 60_000;

/// One model a policy may route to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingCandidate {
    /// The candidate model's id.
    pub model_id: ModelId,
    /// Its rank under [`Strategy::Priority`] (lower goes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Its share under [`Strategy::Weighted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The model's name, by which the request path resolves it (through the key store's cache).
    /// Filled in by the [`RoutingPolicySource`](super::RoutingPolicySource); never part of the
    /// document.
    #[serde(skip)]
    pub model_name: String,
}

impl RoutingCandidate {
    /// A candidate `id` called `name` (the model name clients send).
    pub fn new(id: impl Into<ModelId>, name: impl Into<String>) -> Self {
        Self {
            model_id: id.into(),
            priority: None,
            weight: None,
            model_name: name.into(),
        }
    }

    /// The same candidate with `priority`.
    pub fn with_priority(mut self, priority: i64) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The same candidate with `weight`.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }
}

/// The routing policy of one key for one model type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingPolicy {
    /// The model type the policy applies to: requests for a model of this type are routed.
    pub model_type: ModelType,
    /// How the attempt order is chosen.
    pub strategy: Strategy,
    /// The models the policy may route to, in listed order.
    pub candidates: Vec<RoutingCandidate>,
    /// Attempts allowed after the first (`maxRetries`, at most [`MAX_RETRIES`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 10))]
    pub max_retries: u32,
    /// Pause between attempts (`retryDelayMs`, at most [`MAX_RETRY_DELAY_MS`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 60_000))]
    pub retry_delay_ms: u64,
    /// Which failures allow another attempt (default [`DEFAULT_TRIGGERS`]).
    #[serde(default = "default_triggers")]
    pub triggers: Vec<Trigger>,
}

fn default_triggers() -> Vec<Trigger> {
    DEFAULT_TRIGGERS.to_vec()
}

impl RoutingPolicy {
    /// A policy of `strategy` over `candidates`, default triggers, no retries.
    pub fn new(
        model_type: ModelType,
        strategy: Strategy,
        candidates: Vec<RoutingCandidate>,
    ) -> Self {
        Self {
            model_type,
            strategy,
            candidates,
            max_retries: 0,
            retry_delay_ms: 0,
            triggers: default_triggers(),
        }
    }

    /// At most `1 + maxRetries` attempts.
    pub fn max_attempts(&self) -> usize {
        1 + self.max_retries.min(MAX_RETRIES) as usize
    }

    /// The pause between attempts, capped at [`MAX_RETRY_DELAY_MS`].
    pub fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms.min(MAX_RETRY_DELAY_MS))
    }

    /// Whether a failure of kind `trigger` allows another attempt.
    pub fn triggers_on(&self, trigger: Trigger) -> bool {
        self.triggers
            .iter()
            .any(|t| *t == trigger || *t == Trigger::Any)
    }

    /// The shape checks that need no database (candidates exist, weights and bounds); the admin
    /// API adds the ones that do (same organisation, same type, granted). `Err` names the field.
    pub fn check_shape(&self) -> Result<(), (String, &'static str)> {
        if self.candidates.is_empty() {
            return Err((
                "a routing policy needs at least one candidate".to_owned(),
                "candidates",
            ));
        }
        if self.max_retries > MAX_RETRIES {
            return Err((format!("maxRetries is at most {MAX_RETRIES}"), "maxRetries"));
        }
        if self.retry_delay_ms > MAX_RETRY_DELAY_MS {
            return Err((
                format!("retryDelayMs is at most {MAX_RETRY_DELAY_MS}"),
                "retryDelayMs",
            ));
        }
        if self.triggers.is_empty() {
            return Err((
                "triggers must name at least one trigger".to_owned(),
                "triggers",
            ));
        }
        for (i, candidate) in self.candidates.iter().enumerate() {
            if self.candidates[..i]
                .iter()
                .any(|c| c.model_id == candidate.model_id)
            {
                return Err((
                    format!("model `{}` is a candidate twice", candidate.model_id),
                    "candidates",
                ));
            }
        }
        if self.strategy == Strategy::Weighted
            && self.candidates.iter().all(|c| c.weight.unwrap_or(1) == 0)
        {
            return Err((
                "a weighted policy needs a candidate with a positive weight".to_owned(),
                "candidates",
            ));
        }
        Ok(())
    }
}

/// Every routing policy of one key (the body of `GET|PUT /apikeys/{id}/routing`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingDocument {
    /// At most one policy per model type.
    #[serde(default)]
    pub policies: Vec<RoutingPolicy>,
}

impl RoutingDocument {
    /// [`RoutingPolicy::check_shape`] for each, and one policy per model type.
    pub fn check_shape(&self) -> Result<(), (String, &'static str)> {
        for (i, policy) in self.policies.iter().enumerate() {
            if self.policies[..i]
                .iter()
                .any(|p| p.model_type == policy.model_type)
            {
                return Err((
                    format!("two policies for model type `{}`", policy.model_type),
                    "policies",
                ));
            }
            policy.check_shape()?;
        }
        Ok(())
    }

    /// The policy for `model_type`, if the key has one.
    pub fn policy(&self, model_type: ModelType) -> Option<&RoutingPolicy> {
        self.policies.iter().find(|p| p.model_type == model_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_reads_the_admin_api_shape_with_defaults() {
        let doc: RoutingDocument = serde_json::from_str(
            r#"{"policies":[{"modelType":"chat","strategy":"round_robin",
                "candidates":[{"modelId":"a"},{"modelId":"b","priority":2,"weight":3}]}]}"#,
        )
        .unwrap();
        let policy = doc.policy(ModelType::Chat).unwrap();
        assert_eq!(policy.strategy, Strategy::RoundRobin);
        assert_eq!(policy.triggers, DEFAULT_TRIGGERS.to_vec());
        assert_eq!(policy.max_attempts(), 1);
        assert!(policy.triggers_on(Trigger::Timeout));
        assert!(!policy.triggers_on(Trigger::RateLimit));
        let back = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            back["policies"][0]["triggers"],
            serde_json::json!(["5xx", "timeout"])
        );
        assert_eq!(back["policies"][0]["candidates"][1]["weight"], 3);
        assert!(back["policies"][0]["candidates"][0]
            .get("modelName")
            .is_none());
    }

    #[test]
    fn shape_checks_name_the_field() {
        let mut policy = RoutingPolicy::new(ModelType::Chat, Strategy::Failover, vec![]);
        assert_eq!(policy.check_shape().unwrap_err().1, "candidates");
        policy.candidates = vec![
            RoutingCandidate::new("a", "a"),
            RoutingCandidate::new("a", "a"),
        ];
        assert_eq!(policy.check_shape().unwrap_err().1, "candidates");
        policy.candidates.pop();
        policy.max_retries = 99;
        assert_eq!(policy.check_shape().unwrap_err().1, "maxRetries");
        policy.max_retries = 1;
        assert!(policy.check_shape().is_ok());
        let doc = RoutingDocument {
            policies: vec![policy.clone(), policy],
        };
        assert_eq!(doc.check_shape().unwrap_err().1, "policies");
        assert!(serde_json::from_str::<RoutingDocument>(
            r#"{"policies":[{"modelType":"chat","strategy":"random","candidates":[]}]}"#
        )
        .is_err());
    }
}
