//! The document cannot drift from the types: every schema the route table names is checked against
//! what serde does with a value of its type.
//!
//! A sample is generated from each schema (every property, or only the required ones), read into the
//! Rust type with serde and written back; the names written must be exactly the schema's properties,
//! of the schema's JSON types. Response-only schemas must also list as `required` exactly what serde
//! always writes; a schema reachable from a request body documents input, where serde defaults make
//! fields optional. Types that only serialise are checked on a value built from samples of their parts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{document, schemas};
use crate::api::routes::{operations, Reply};
use crate::services::{
    api_keys, budgets, grants, invitations, mcp_grants, mcp_servers, models, notifications,
    organisations, provider_keys, providers, quotas, teams, users,
};

const TIME: &str = "2026-01-02T03:04:05Z";

struct Checker {
    schemas: Map<String, Value>,
    /// Schemas reachable from a request body: documented as input.
    input: BTreeSet<String>,
    failures: Vec<String>,
    checked: BTreeSet<String>,
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

/// The JSON types a schema allows (`type` as a string or an array).
fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Checker {
    fn new() -> Self {
        let schemas = schemas();
        let mut input = BTreeSet::new();
        let mut pending: Vec<String> = operations()
            .iter()
            .filter_map(|o| o.request.map(str::to_owned))
            .collect();
        while let Some(name) = pending.pop() {
            if input.insert(name.clone()) {
                let text = schemas[&name].to_string();
                for reference in text.split("\"#/components/schemas/").skip(1) {
                    pending.push(reference.split('"').next().unwrap_or_default().to_owned());
                }
            }
        }
        Self {
            schemas,
            input,
            failures: Vec::new(),
            checked: BTreeSet::new(),
        }
    }

    /// Follows `$ref`s, and picks the non-null branch of a nullable `oneOf`.
    fn resolve<'a>(&'a self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let mut schema = schema;
        let mut name = None;
        loop {
            if let Some(target) = ref_name(schema) {
                name = Some(target);
                schema = &self.schemas[target];
            } else if let Some(branch) = schema["oneOf"]
                .as_array()
                .and_then(|b| b.iter().find(|s| s["type"] != "null"))
            {
                schema = branch;
            } else {
                return (schema, name);
            }
        }
    }

    /// `(properties, required)` of an object schema, `allOf` parts merged.
    fn object(&self, schema: &Value) -> Option<(Map<String, Value>, BTreeSet<String>)> {
        let (schema, _) = self.resolve(schema);
        let mut properties = schema["properties"].as_object().cloned();
        let mut required: BTreeSet<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let (p, r) = self.object(part)?;
            properties.get_or_insert_with(Map::new).extend(p);
            required.extend(r);
        }
        properties.map(|p| (p, required))
    }

    /// A value of `schema`: every property when `full`, else only the required ones.
    fn sample(&self, schema: &Value, full: bool) -> Value {
        let (schema, _) = self.resolve(schema);
        if let Some((properties, required)) = self.object(schema) {
            return properties
                .iter()
                .filter(|(name, _)| full || required.contains(*name))
                .map(|(name, p)| (name.clone(), self.sample(p, full)))
                .collect::<Map<_, _>>()
                .into();
        }
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        match types(schema).into_iter().find(|t| *t != "null") {
            Some("string") if schema["format"] == "date-time" => json!(TIME),
            Some("string") => json!("x"),
            Some("integer") => json!(1),
            Some("number") => json!(0.5),
            Some("boolean") => json!(true),
            Some("array") => json!([self.sample(&schema["items"], full)]),
            Some("object") if schema["additionalProperties"].is_object() => {
                json!({ "k": self.sample(&schema["additionalProperties"], full) })
            }
            _ => json!({}),
        }
    }

    /// Compares what serde wrote (`value`) with `schema`, recursively. `exact`: the value came from a
    /// full sample, so every property must have been written back.
    fn compare(&mut self, path: &str, value: &Value, schema: &Value, exact: bool) {
        let (resolved, name) = self.resolve(schema);
        let (resolved, name) = (resolved.clone(), name.map(str::to_owned));
        if value.is_null() {
            let nullable = types(schema).contains(&"null")
                || types(&resolved).contains(&"null")
                || schema["oneOf"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|s| s["type"] == "null"));
            if !nullable {
                self.failures
                    .push(format!("{path}: null, schema not nullable"));
            }
            return;
        }
        if let Some((properties, required)) = self.object(&resolved) {
            let Some(fields) = value.as_object() else {
                self.failures
                    .push(format!("{path}: {value} is not an object"));
                return;
            };
            let written: BTreeSet<&String> = fields.keys().collect();
            let documented: BTreeSet<&String> = properties.keys().collect();
            for undocumented in written.difference(&documented) {
                self.failures.push(format!(
                    "{path}.{undocumented}: written by serde, not in the schema"
                ));
            }
            let missing: Vec<&&String> = documented.difference(&written).collect();
            for name in &missing {
                if exact || required.contains(**name) {
                    self.failures.push(format!(
                        "{path}.{name}: in the schema (required: {}), not written by serde",
                        required.contains(**name)
                    ));
                }
            }
            // Outside request bodies, `required` is exactly what serde always writes.
            let output = name.is_some_and(|n| !self.input.contains(&n));
            if output && !exact {
                for name in written.difference(&required.iter().collect()) {
                    self.failures
                        .push(format!("{path}.{name}: always written, not required"));
                }
            }
            for (field, item) in fields {
                if let Some(property) = properties.get(field) {
                    self.compare(&format!("{path}.{field}"), item, property, exact);
                }
            }
            return;
        }
        let kind = match value {
            Value::String(_) => "string",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            _ => "object",
        };
        let allowed = types(&resolved);
        let fits = allowed.is_empty()
            || allowed.contains(&kind)
            || (kind == "integer" && allowed.contains(&"number"));
        if !fits {
            self.failures
                .push(format!("{path}: a {kind}, schema says {allowed:?}"));
        }
        if let (Value::Array(items), true) = (value, allowed.contains(&"array")) {
            for (i, item) in items.iter().enumerate() {
                self.compare(&format!("{path}[{i}]"), item, &resolved["items"], exact);
            }
        }
        if let Some(values) = resolved["enum"].as_array() {
            if !values.contains(value) {
                self.failures
                    .push(format!("{path}: {value} is not in {values:?}"));
            }
        }
    }

    fn schema_of(&mut self, name: &str) -> Value {
        self.checked.insert(name.to_owned());
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The full sample of `name`, read into `T`.
    fn read<T: DeserializeOwned>(&mut self, name: &str, full: bool) -> Option<T> {
        let schema = self.schema_of(name);
        let sample = self.sample(&schema, full);
        match serde_json::from_value(sample.clone()) {
            Ok(value) => Some(value),
            Err(error) => {
                self.failures.push(format!(
                    "{name}: serde refuses the sample {sample}: {error}"
                ));
                None
            }
        }
    }

    /// A request body: serde accepts the full and the minimal sample, and (when the schema closes
    /// the object) refuses an undocumented field.
    fn request<T: DeserializeOwned>(&mut self, name: &str) {
        self.read::<T>(name, true);
        self.read::<T>(name, false);
        let schema = self.schema_of(name);
        if self.schemas[name]["additionalProperties"] == false {
            let mut sample = self.sample(&schema, false);
            sample["undocumentedField"] = json!(1);
            if serde_json::from_value::<T>(sample).is_ok() {
                self.failures
                    .push(format!("{name}: accepts an undocumented field"));
            }
        }
    }

    /// A type serde reads and writes: both samples survive the round trip with their names.
    fn round_trip<T: DeserializeOwned + Serialize>(&mut self, name: &str) {
        let schema = self.schema_of(name);
        for full in [true, false] {
            if let Some(value) = self.read::<T>(name, full) {
                let written = serde_json::to_value(value).unwrap_or_default();
                self.compare(name, &written, &schema, full);
            }
        }
    }

    /// A type serde only writes, checked on `value`.
    fn written<T: Serialize>(&mut self, name: &str, value: &T) {
        let schema = self.schema_of(name);
        let written = serde_json::to_value(value).unwrap_or_default();
        self.compare(name, &written, &schema, false);
    }

    fn sampled<T: DeserializeOwned>(&mut self, name: &str) -> T {
        match self.read(name, true) {
            Some(value) => value,
            None => panic!("{:#?}", self.failures),
        }
    }
}

#[test]
fn every_schema_matches_what_serde_writes_and_reads() {
    use crate::analytics::{Percentiles, UsageGroup, UsageStats, UsageSummary};
    use crate::audit_log::AuditEntry;
    use crate::invoices::{Invoice, InvoiceLine, InvoiceTotals, Period};

    let mut c = Checker::new();

    c.round_trip::<organisations::Organisation>("Organisation");
    c.round_trip::<organisations::OrganisationSettings>("OrganisationSettings");
    c.round_trip::<teams::Team>("Team");
    c.round_trip::<teams::TeamMember>("TeamMember");
    c.round_trip::<budgets::Budget>("Budget");
    c.round_trip::<budgets::BudgetWindow>("BudgetWindow");
    c.round_trip::<quotas::Quota>("Quota");
    c.round_trip::<quotas::QuotaWindow>("QuotaWindow");
    c.round_trip::<providers::Provider>("Provider");
    c.round_trip::<provider_keys::ProviderKey>("ProviderKey");
    c.round_trip::<notifications::NotificationChannel>("NotificationChannel");
    c.round_trip::<notifications::Alert>("Alert");
    c.round_trip::<models::Model>("Model");
    c.round_trip::<api_keys::ApiKey>("ApiKey");
    c.round_trip::<api_keys::Rotation>("ApiKeyRotation");
    c.round_trip::<grants::ModelGrant>("ModelGrant");
    c.round_trip::<users::User>("User");
    c.round_trip::<invitations::Invitation>("Invitation");
    c.round_trip::<mcp_servers::McpServer>("McpServer");
    c.round_trip::<mcp_grants::McpGrant>("McpGrant");
    c.round_trip::<odock_core::UsageRecord>("UsageRecord");
    c.round_trip::<odock_core::McpUsageRecord>("McpUsageRecord");
    c.round_trip::<odock_core::routing::RoutingDocument>("RoutingDocument");

    c.request::<organisations::NewOrganisation>("NewOrganisation");
    c.request::<organisations::OrganisationPatch>("OrganisationPatch");
    c.request::<organisations::SettingsPatch>("SettingsPatch");
    c.request::<teams::NewTeam>("NewTeam");
    c.request::<teams::TeamPatch>("TeamPatch");
    c.request::<teams::NewTeamMember>("NewTeamMember");
    c.request::<teams::TeamMemberPatch>("TeamMemberPatch");
    c.request::<budgets::NewBudget>("NewBudget");
    c.request::<budgets::BudgetPatch>("BudgetPatch");
    c.request::<quotas::NewQuota>("NewQuota");
    c.request::<quotas::QuotaPatch>("QuotaPatch");
    c.request::<providers::NewProvider>("NewProvider");
    c.request::<providers::ProviderPatch>("ProviderPatch");
    c.request::<provider_keys::NewProviderKey>("NewProviderKey");
    c.request::<notifications::NewNotificationChannel>("NewNotificationChannel");
    c.request::<notifications::NotificationChannelPatch>("NotificationChannelPatch");
    c.request::<models::NewModel>("NewModel");
    c.request::<models::ModelPatch>("ModelPatch");
    c.request::<api_keys::NewApiKey>("NewApiKey");
    c.request::<api_keys::ApiKeyPatch>("ApiKeyPatch");
    c.request::<api_keys::RotateApiKey>("RotateApiKey");
    c.request::<grants::GrantModels>("GrantModels");
    c.request::<grants::GrantApiKeys>("GrantApiKeys");
    c.request::<users::NewUser>("NewUser");
    c.request::<users::UserPatch>("UserPatch");
    c.request::<invitations::NewInvitation>("NewInvitation");
    c.request::<invitations::NewOrganisationInvitation>("NewOrganisationInvitation");
    c.request::<invitations::AcceptInvitation>("AcceptInvitation");
    c.request::<mcp_servers::NewMcpServer>("NewMcpServer");
    c.request::<mcp_servers::McpServerPatch>("McpServerPatch");
    c.request::<mcp_grants::GrantMcpServers>("GrantMcpServers");
    c.request::<super::super::session::Login>("Login");
    c.request::<super::super::session::PasswordChange>("PasswordChange");
    c.request::<odock_core::routing::RoutingDocument>("RoutingDocument");

    // Types serde only writes, built from samples of their parts.
    let api_key: api_keys::ApiKey = c.sampled("ApiKey");
    c.written(
        "IssuedApiKey",
        &api_keys::IssuedApiKey {
            api_key,
            key: "sk".into(),
        },
    );
    let invitation: invitations::Invitation = c.sampled("Invitation");
    c.written(
        "PublicInvitation",
        &invitations::PublicInvitation {
            email: invitation.email.clone(),
            role: invitation.role,
            kind: invitation.kind,
            status: invitation.status,
            expires_at: invitation.expires_at,
            organisation_name: None,
        },
    );
    c.written(
        "IssuedInvitation",
        &invitations::IssuedInvitation {
            invitation,
            token: "t".into(),
            url: "/u".into(),
            emailed: false,
        },
    );
    let user: users::User = c.sampled("User");
    let organisation: organisations::Organisation = c.sampled("Organisation");
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    c.written(
        "Session",
        &super::super::session::SignedIn {
            token: "t".into(),
            expires_at: at,
            user: user.clone(),
        },
    );
    for (user, organisation) in [(Some(user), Some(organisation)), (None, None)] {
        c.written(
            "Me",
            &super::super::session::Me {
                user,
                role: odock_core::Role::OrgAdmin,
                organisation,
            },
        );
    }
    c.written(
        "DashboardCounts",
        &super::super::dashboard::DashboardCounts {
            api_keys: 1,
            models: 2,
            providers: None,
            mcp_servers: 3,
            teams: 4,
            users: Some(5),
        },
    );
    let stats = UsageStats {
        success_rate: Some(1.0),
        latency_p50_ms: None,
        ..UsageStats::default()
    };
    c.written(
        "UsageSummary",
        &UsageSummary {
            from: Some(at),
            to: None,
            group_by: Some(crate::analytics::GroupBy::ApiKey),
            latency_percentiles: Percentiles::Exact,
            totals: stats.clone(),
            groups: vec![UsageGroup {
                key: None,
                label: "l".into(),
                stats,
            }],
        },
    );
    let line = InvoiceLine {
        id: None,
        name: "n".into(),
        requests: 1,
        llm_cost_nanos_usd: 1,
        mcp_cost_nanos_usd: 0,
        cost_nanos_usd: 1,
        billable_tokens: 1,
        cost_usd: "0.000000001".into(),
    };
    c.written(
        "Invoice",
        &Invoice {
            organisation_id: "o".into(),
            period: Period { from: at, to: at },
            team_ids: vec!["t".into()],
            api_key_ids: vec![],
            generated_at: at,
            totals: InvoiceTotals {
                requests: 1,
                llm_requests: 1,
                mcp_requests: 0,
                llm_cost_nanos_usd: 1,
                mcp_cost_nanos_usd: 0,
                cost_nanos_usd: 1,
                billable_tokens: 1,
                llm_cost_usd: "0".into(),
                mcp_cost_usd: "0".into(),
                cost_usd: "0".into(),
            },
            by_team: vec![line.clone()],
            by_api_key: vec![line.clone()],
            by_model: vec![line.clone()],
            by_mcp_server: vec![line],
        },
    );
    c.written(
        "AuditEntry",
        &AuditEntry {
            id: "a".into(),
            at,
            organisation_id: None,
            actor_user_id: Some("u".into()),
            actor_kind: "user".into(),
            action: "createTeam".into(),
            target_type: "team".into(),
            target_id: None,
            summary: json!({ "path": "/" }),
        },
    );

    // Every schema a route names is checked above, but the three bodies without a type.
    let named: BTreeSet<&str> = operations()
        .iter()
        .flat_map(|o| {
            let reply = match o.reply {
                Reply::Created(s) | Reply::Ok(s) | Reply::List(s) => Some(s),
                Reply::NoContent => None,
            };
            o.request.into_iter().chain(reply)
        })
        .collect();
    for name in named {
        if !c.checked.contains(name)
            && !["Error", "OpenApiDocument", "ProviderHealthList"].contains(&name)
        {
            c.failures
                .push(format!("{name}: named by a route, not checked"));
        }
    }
    assert!(c.failures.is_empty(), "{:#?}", c.failures);
}

/// Every route of the table (the router is built from it) is a path item of the document, every
/// schema a route names is a component, and the document is OpenAPI 3.1.
#[test]
fn the_document_covers_the_route_table() {
    let operations = operations();
    let document = document(&operations);
    assert_eq!(document["openapi"], "3.1.0");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut documented: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (verb, operation) in item.as_object().unwrap() {
            documented.insert((path.clone(), verb.clone()), operation);
        }
    }
    assert_eq!(documented.len(), operations.len());
    for operation in &operations {
        let key = (
            operation.path.to_owned(),
            operation.verb.as_str().to_owned(),
        );
        let item = documented
            .get(&key)
            .unwrap_or_else(|| panic!("{operation:?} is not documented"));
        assert_eq!(item["operationId"], operation.operation_id);
        for name in operation.request.iter() {
            assert!(schemas.contains_key(*name), "{name}");
        }
    }
    // Secrets are documented as write-only.
    assert_eq!(
        schemas["Login"]["properties"]["password"]["writeOnly"],
        true
    );
    assert_eq!(
        schemas["NewProviderKey"]["properties"]["key"]["writeOnly"],
        true
    );
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
}
