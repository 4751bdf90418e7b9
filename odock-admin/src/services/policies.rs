//! The `policies` JSON of organisations, teams, API keys and models (DECISIONS.md "Rate limits").
//!
//! The document is stored as given, but only after it reads as an
//! [`odock_core::rate_limit::Policy`]: known camelCase keys only (a typo such as `requestPerMinute`
//! would otherwise silently mean "no limit"), values of the right type, and IP rules that parse.

use odock_core::rate_limit::Policy;

use super::{AdminError, JsonObject};

/// The keys of a policy document, as [`Policy`] spells them.
pub const POLICY_FIELDS: &[&str] = &[
    "ipAllowlist",
    "ipBlocklist",
    "requestsPerSecond",
    "requestsPerMinute",
    "burst",
    "tokensPerMinute",
    "maxTokensPerRequest",
    "maxRequestBytes",
    "maxConcurrentRequests",
    "concurrencyLeaseTtlMs",
];

/// Returns `policies` unchanged when it is a valid policy document; else a 400 on field `policies`.
pub fn check_policies(policies: JsonObject) -> Result<JsonObject, AdminError> {
    if let Some(unknown) = policies
        .keys()
        .find(|key| !POLICY_FIELDS.contains(&key.as_str()))
    {
        return Err(AdminError::field(
            "policies",
            format!(
                "unknown policy field `{unknown}`; expected one of {}",
                POLICY_FIELDS.join(", ")
            ),
        ));
    }
    let policy: Policy = serde_json::from_value(serde_json::Value::Object(policies.clone()))
        .map_err(|e| AdminError::field("policies", format!("invalid policies: {e}")))?;
    policy
        .validate()
        .map_err(|e| AdminError::field("policies", e.to_string()))?;
    Ok(policies)
}

/// [`check_policies`] for an optional input; absent means `{}`.
pub fn check_optional_policies(policies: Option<JsonObject>) -> Result<JsonObject, AdminError> {
    check_policies(policies.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: serde_json::Value) -> JsonObject {
        value.as_object().cloned().unwrap()
    }

    fn refused(value: serde_json::Value) -> bool {
        matches!(
            check_policies(object(value)),
            Err(AdminError::Invalid { field: Some(f), .. }) if f == "policies"
        )
    }

    #[test]
    fn documents_are_checked_against_the_policy_type() {
        let good = object(json!({"ipAllowlist": ["10.0.0.0/8"], "requestsPerMinute": 600}));
        assert_eq!(check_policies(good.clone()).unwrap(), good);
        assert!(check_optional_policies(None).unwrap().is_empty());
        assert!(refused(json!({"requestPerMinute": 600})));
        assert!(refused(json!({"ipBlocklist": ["10.0.0.0/33"]})));
        assert!(refused(json!({"burst": "many"})));
        assert!(refused(json!({"burst": -1})));
    }
}
