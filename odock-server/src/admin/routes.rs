//! The route table of the admin API: the single source of both the router ([`super::router`]) and
//! the OpenAPI document ([`super::openapi`]), so a route cannot exist without being documented.

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};

use super::AdminState;
use super::{
    api_keys, budgets, grants, models, openapi, organisations, provider_keys, providers, quotas,
    teams, usage_records,
};

/// An HTTP method the admin API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    /// Lower-case, as OpenAPI path items spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    pub const fn method(self) -> http::Method {
        match self {
            Verb::Get => http::Method::GET,
            Verb::Post => http::Method::POST,
            Verb::Patch => http::Method::PATCH,
            Verb::Delete => http::Method::DELETE,
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// What a successful call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 201 with the named schema.
    Created(&'static str),
    /// 200 with the named schema.
    Ok(&'static str),
    /// 200 `{"data":[<schema>...],"nextCursor":...}`.
    List(&'static str),
    /// 204 without a body.
    NoContent,
}

/// A query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParam {
    pub name: &'static str,
    /// `string`, `integer`, `boolean` or `date-time`.
    pub kind: &'static str,
    pub description: &'static str,
}

const fn param(name: &'static str, kind: &'static str, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        kind,
        description,
    }
}

pub const PAGINATION: &[QueryParam] = &[
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
];

pub const ADMIN_LIST: &[QueryParam] = &[
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
    param(
        "organisationId",
        "string",
        "Only this organisation's objects.",
    ),
];

pub const OWNER_FILTERS: &[QueryParam] = &[
    param(
        "ownerType",
        "string",
        "Only this owner type (ORG, TEAM, USER, APIKEY).",
    ),
    param(
        "active",
        "boolean",
        "Only active (`true`) or inactive (`false`) ones.",
    ),
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
];

pub const ADMIN_OWNER_FILTERS: &[QueryParam] = &[
    param(
        "ownerType",
        "string",
        "Only this owner type (ORG, TEAM, USER, APIKEY).",
    ),
    param(
        "active",
        "boolean",
        "Only active (`true`) or inactive (`false`) ones.",
    ),
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
    param(
        "organisationId",
        "string",
        "Only this organisation's objects.",
    ),
];

pub const USAGE_FILTERS: &[QueryParam] = &[
    param(
        "from",
        "date-time",
        "Records created at or after this instant (RFC 3339).",
    ),
    param(
        "to",
        "date-time",
        "Records created before this instant (RFC 3339).",
    ),
    param("apiKeyId", "string", "Only this API key's records."),
    param("teamId", "string", "Only this team's records."),
    param("userId", "string", "Only this user's records."),
    param("modelId", "string", "Only this model's records."),
    param(
        "provider",
        "string",
        "Only this provider family (`openai`, `anthropic`, …).",
    ),
    param("status", "integer", "Only records with this HTTP status."),
    param("requestId", "string", "Only the record of this request id."),
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
];

pub const ADMIN_USAGE_FILTERS: &[QueryParam] = &[
    param(
        "from",
        "date-time",
        "Records created at or after this instant (RFC 3339).",
    ),
    param(
        "to",
        "date-time",
        "Records created before this instant (RFC 3339).",
    ),
    param("apiKeyId", "string", "Only this API key's records."),
    param("teamId", "string", "Only this team's records."),
    param("userId", "string", "Only this user's records."),
    param("modelId", "string", "Only this model's records."),
    param(
        "provider",
        "string",
        "Only this provider family (`openai`, `anthropic`, …).",
    ),
    param("status", "integer", "Only records with this HTTP status."),
    param("requestId", "string", "Only the record of this request id."),
    param("limit", "integer", "Page size, default 50, at most 500."),
    param("cursor", "string", "The previous page's nextCursor."),
    param(
        "organisationId",
        "string",
        "Only this organisation's records.",
    ),
];

/// One route: how it is documented and the handler that serves it.
pub struct Operation {
    pub verb: Verb,
    /// axum/OpenAPI path template (`{name}` parameters).
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Served without the admin token.
    pub public: bool,
    pub query: &'static [QueryParam],
    /// Schema name of the JSON body.
    pub request: Option<&'static str>,
    pub reply: Reply,
    pub(crate) handler: MethodRouter<AdminState>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb.as_str(), self.path)
    }
}

impl Operation {
    fn new<H, T>(verb: Verb, path: &'static str, operation_id: &'static str, handler: H) -> Self
    where
        H: Handler<T, AdminState>,
        T: 'static,
    {
        Self {
            verb,
            path,
            operation_id,
            tag: "",
            summary: "",
            public: false,
            query: &[],
            request: None,
            reply: Reply::NoContent,
            handler: on(verb.filter(), handler),
        }
    }

    fn describe(mut self, tag: &'static str, summary: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self
    }

    fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }

    fn body(mut self, schema: &'static str) -> Self {
        self.request = Some(schema);
        self
    }

    fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    fn public(mut self) -> Self {
        self.public = true;
        self
    }
}

fn get<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Get, path, id, handler)
}

fn post<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Post, path, id, handler)
}

fn patch<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Patch, path, id, handler)
}

fn delete<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Delete, path, id, handler)
}

const ORGS: &str = "Organisations";
const PROVIDERS: &str = "Providers";
const PROVIDER_KEYS: &str = "Provider keys";
const MODELS: &str = "Models";
const API_KEYS: &str = "API keys";
const GRANTS: &str = "Model grants";
const USAGE: &str = "Usage records";
const SETTINGS: &str = "Settings";
const TEAMS: &str = "Teams";
const BUDGETS: &str = "Budgets";
const QUOTAS: &str = "Quotas";
const META: &str = "Meta";

/// Every route of the admin API.
pub fn operations() -> Vec<Operation> {
    use Reply::{Created, List, NoContent, Ok};
    vec![
        get("/api/openapi.json", "getOpenApi", openapi::serve)
            .describe(META, "This document")
            .reply(Ok("OpenApiDocument"))
            .public(),
        // Organisations (SUPER_ADMIN).
        post(
            "/api/admin/organisations",
            "createOrganisation",
            organisations::create,
        )
        .describe(ORGS, "Create an organisation")
        .body("NewOrganisation")
        .reply(Created("Organisation")),
        get(
            "/api/admin/organisations",
            "listOrganisations",
            organisations::list,
        )
        .describe(ORGS, "List organisations")
        .query(PAGINATION)
        .reply(List("Organisation")),
        get(
            "/api/admin/organisations/{id}",
            "getOrganisation",
            organisations::get,
        )
        .describe(ORGS, "Read an organisation")
        .reply(Ok("Organisation")),
        patch(
            "/api/admin/organisations/{id}",
            "updateOrganisation",
            organisations::update,
        )
        .describe(ORGS, "Update an organisation")
        .body("OrganisationPatch")
        .reply(Ok("Organisation")),
        delete(
            "/api/admin/organisations/{id}",
            "deleteOrganisation",
            organisations::delete,
        )
        .describe(ORGS, "Delete an organisation and everything it owns")
        .reply(NoContent),
        // Cross-organisation lists (SUPER_ADMIN).
        get(
            "/api/admin/providers",
            "listAllProviders",
            providers::list_all,
        )
        .describe(PROVIDERS, "List providers of every organisation")
        .query(ADMIN_LIST)
        .reply(List("Provider")),
        get("/api/admin/models", "listAllModels", models::list_all)
            .describe(MODELS, "List models of every organisation")
            .query(ADMIN_LIST)
            .reply(List("Model")),
        get("/api/admin/apikeys", "listAllApiKeys", api_keys::list_all)
            .describe(API_KEYS, "List API keys of every organisation")
            .query(ADMIN_LIST)
            .reply(List("ApiKey")),
        get("/api/admin/teams", "listAllTeams", teams::list_all)
            .describe(TEAMS, "List teams of every organisation")
            .query(ADMIN_LIST)
            .reply(List("Team")),
        get("/api/admin/budgets", "listAllBudgets", budgets::list_all)
            .describe(BUDGETS, "List budgets of every organisation")
            .query(ADMIN_OWNER_FILTERS)
            .reply(List("Budget")),
        get("/api/admin/quotas", "listAllQuotas", quotas::list_all)
            .describe(QUOTAS, "List quotas of every organisation")
            .query(ADMIN_OWNER_FILTERS)
            .reply(List("Quota")),
        get(
            "/api/admin/usage-records",
            "listAllUsageRecords",
            usage_records::list_all,
        )
        .describe(
            USAGE,
            "List usage records of every organisation, newest first",
        )
        .query(ADMIN_USAGE_FILTERS)
        .reply(List("UsageRecord")),
        // Settings.
        get(
            "/api/organisations/{organisationId}/settings",
            "getOrganisationSettings",
            organisations::get_settings,
        )
        .describe(SETTINGS, "Read the organisation's settings")
        .reply(Ok("OrganisationSettings")),
        patch(
            "/api/organisations/{organisationId}/settings",
            "updateOrganisationSettings",
            organisations::update_settings,
        )
        .describe(
            SETTINGS,
            "Update the organisation's name, contact, routing switch or policies",
        )
        .body("SettingsPatch")
        .reply(Ok("OrganisationSettings")),
        // Teams.
        post(
            "/api/organisations/{organisationId}/teams",
            "createTeam",
            teams::create,
        )
        .describe(TEAMS, "Create a team")
        .body("NewTeam")
        .reply(Created("Team")),
        get(
            "/api/organisations/{organisationId}/teams",
            "listTeams",
            teams::list,
        )
        .describe(TEAMS, "List the organisation's teams")
        .query(PAGINATION)
        .reply(List("Team")),
        get(
            "/api/organisations/{organisationId}/teams/{id}",
            "getTeam",
            teams::get,
        )
        .describe(TEAMS, "Read a team")
        .reply(Ok("Team")),
        patch(
            "/api/organisations/{organisationId}/teams/{id}",
            "updateTeam",
            teams::update,
        )
        .describe(TEAMS, "Update a team's name or policies")
        .body("TeamPatch")
        .reply(Ok("Team")),
        delete(
            "/api/organisations/{organisationId}/teams/{id}",
            "deleteTeam",
            teams::delete,
        )
        .describe(
            TEAMS,
            "Delete a team with its members, TEAM keys, budgets and quotas",
        )
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/teams/{id}/members",
            "addTeamMember",
            teams::add_member,
        )
        .describe(TEAMS, "Add a user of the organisation to the team")
        .body("NewTeamMember")
        .reply(Created("TeamMember")),
        get(
            "/api/organisations/{organisationId}/teams/{id}/members",
            "listTeamMembers",
            teams::list_members,
        )
        .describe(TEAMS, "List the team's members")
        .query(PAGINATION)
        .reply(List("TeamMember")),
        patch(
            "/api/organisations/{organisationId}/teams/{id}/members/{userId}",
            "updateTeamMember",
            teams::update_member,
        )
        .describe(TEAMS, "Change a member's team role")
        .body("TeamMemberPatch")
        .reply(Ok("TeamMember")),
        delete(
            "/api/organisations/{organisationId}/teams/{id}/members/{userId}",
            "removeTeamMember",
            teams::remove_member,
        )
        .describe(TEAMS, "Remove a member from the team")
        .reply(NoContent),
        // Budgets.
        post(
            "/api/organisations/{organisationId}/budgets",
            "createBudget",
            budgets::create,
        )
        .describe(BUDGETS, "Create a budget")
        .body("NewBudget")
        .reply(Created("Budget")),
        get(
            "/api/organisations/{organisationId}/budgets",
            "listBudgets",
            budgets::list,
        )
        .describe(BUDGETS, "List the organisation's budgets")
        .query(OWNER_FILTERS)
        .reply(List("Budget")),
        get(
            "/api/organisations/{organisationId}/budgets/{id}",
            "getBudget",
            budgets::get,
        )
        .describe(BUDGETS, "Read a budget")
        .reply(Ok("Budget")),
        patch(
            "/api/organisations/{organisationId}/budgets/{id}",
            "updateBudget",
            budgets::update,
        )
        .describe(BUDGETS, "Update a budget (not its owner)")
        .body("BudgetPatch")
        .reply(Ok("Budget")),
        delete(
            "/api/organisations/{organisationId}/budgets/{id}",
            "deleteBudget",
            budgets::delete,
        )
        .describe(BUDGETS, "Delete a budget and its windows")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/budgets/{id}/windows",
            "listBudgetWindows",
            budgets::windows,
        )
        .describe(
            BUDGETS,
            "List a budget's windows, current first (id null while the ledger has not created it)",
        )
        .reply(List("BudgetWindow")),
        // Quotas.
        post(
            "/api/organisations/{organisationId}/quotas",
            "createQuota",
            quotas::create,
        )
        .describe(QUOTAS, "Create a quota")
        .body("NewQuota")
        .reply(Created("Quota")),
        get(
            "/api/organisations/{organisationId}/quotas",
            "listQuotas",
            quotas::list,
        )
        .describe(QUOTAS, "List the organisation's quotas")
        .query(OWNER_FILTERS)
        .reply(List("Quota")),
        get(
            "/api/organisations/{organisationId}/quotas/{id}",
            "getQuota",
            quotas::get,
        )
        .describe(QUOTAS, "Read a quota")
        .reply(Ok("Quota")),
        patch(
            "/api/organisations/{organisationId}/quotas/{id}",
            "updateQuota",
            quotas::update,
        )
        .describe(QUOTAS, "Update a quota (not its owner or metric)")
        .body("QuotaPatch")
        .reply(Ok("Quota")),
        delete(
            "/api/organisations/{organisationId}/quotas/{id}",
            "deleteQuota",
            quotas::delete,
        )
        .describe(QUOTAS, "Delete a quota and its windows")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/quotas/{id}/windows",
            "listQuotaWindows",
            quotas::windows,
        )
        .describe(
            QUOTAS,
            "List a quota's windows, current first (id null while the ledger has not created it)",
        )
        .reply(List("QuotaWindow")),
        // Providers.
        post(
            "/api/organisations/{organisationId}/providers",
            "createProvider",
            providers::create,
        )
        .describe(PROVIDERS, "Create a provider")
        .body("NewProvider")
        .reply(Created("Provider")),
        get(
            "/api/organisations/{organisationId}/providers",
            "listProviders",
            providers::list,
        )
        .describe(PROVIDERS, "List the organisation's providers")
        .query(PAGINATION)
        .reply(List("Provider")),
        get(
            "/api/organisations/{organisationId}/providers/{id}",
            "getProvider",
            providers::get,
        )
        .describe(PROVIDERS, "Read a provider")
        .reply(Ok("Provider")),
        patch(
            "/api/organisations/{organisationId}/providers/{id}",
            "updateProvider",
            providers::update,
        )
        .describe(PROVIDERS, "Update a provider")
        .body("ProviderPatch")
        .reply(Ok("Provider")),
        delete(
            "/api/organisations/{organisationId}/providers/{id}",
            "deleteProvider",
            providers::delete,
        )
        .describe(PROVIDERS, "Delete a provider with its keys and models")
        .reply(NoContent),
        // Provider keys.
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys",
            "createProviderKey",
            provider_keys::create,
        )
        .describe(
            PROVIDER_KEYS,
            "Store an upstream key (sealed; only a preview is ever returned)",
        )
        .body("NewProviderKey")
        .reply(Created("ProviderKey")),
        get(
            "/api/organisations/{organisationId}/providers/{id}/keys",
            "listProviderKeys",
            provider_keys::list,
        )
        .describe(PROVIDER_KEYS, "List a provider's keys (previews only)")
        .query(PAGINATION)
        .reply(List("ProviderKey")),
        get(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}",
            "getProviderKey",
            provider_keys::get,
        )
        .describe(PROVIDER_KEYS, "Read a provider key (preview only)")
        .reply(Ok("ProviderKey")),
        delete(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}",
            "deleteProviderKey",
            provider_keys::delete,
        )
        .describe(PROVIDER_KEYS, "Delete a provider key")
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}/revoke",
            "revokeProviderKey",
            provider_keys::revoke,
        )
        .describe(PROVIDER_KEYS, "Revoke a provider key")
        .reply(Ok("ProviderKey")),
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}/unrevoke",
            "unrevokeProviderKey",
            provider_keys::unrevoke,
        )
        .describe(PROVIDER_KEYS, "Restore a revoked provider key")
        .reply(Ok("ProviderKey")),
        // Models.
        post(
            "/api/organisations/{organisationId}/models",
            "createModel",
            models::create,
        )
        .describe(MODELS, "Create a model")
        .body("NewModel")
        .reply(Created("Model")),
        get(
            "/api/organisations/{organisationId}/models",
            "listModels",
            models::list,
        )
        .describe(MODELS, "List the organisation's models")
        .query(PAGINATION)
        .reply(List("Model")),
        get(
            "/api/organisations/{organisationId}/models/{id}",
            "getModel",
            models::get,
        )
        .describe(MODELS, "Read a model")
        .reply(Ok("Model")),
        patch(
            "/api/organisations/{organisationId}/models/{id}",
            "updateModel",
            models::update,
        )
        .describe(MODELS, "Update a model")
        .body("ModelPatch")
        .reply(Ok("Model")),
        delete(
            "/api/organisations/{organisationId}/models/{id}",
            "deleteModel",
            models::delete,
        )
        .describe(MODELS, "Delete a model and its grants")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/models/{id}/api-key-access",
            "listModelApiKeyAccess",
            grants::list_for_model,
        )
        .describe(GRANTS, "List the API keys granted this model")
        .reply(List("ModelGrant")),
        post(
            "/api/organisations/{organisationId}/models/{id}/api-key-access",
            "grantModelToApiKeys",
            grants::grant_api_keys,
        )
        .describe(
            GRANTS,
            "Grant API keys this model (idempotent); returns the model's grants",
        )
        .body("GrantApiKeys")
        .reply(List("ModelGrant")),
        // API keys.
        post(
            "/api/organisations/{organisationId}/apikeys",
            "createApiKey",
            api_keys::create,
        )
        .describe(
            API_KEYS,
            "Issue an API key; the plaintext `key` is returned only here",
        )
        .body("NewApiKey")
        .reply(Created("IssuedApiKey")),
        get(
            "/api/organisations/{organisationId}/apikeys",
            "listApiKeys",
            api_keys::list,
        )
        .describe(API_KEYS, "List the organisation's API keys (previews only)")
        .query(PAGINATION)
        .reply(List("ApiKey")),
        get(
            "/api/organisations/{organisationId}/apikeys/{id}",
            "getApiKey",
            api_keys::get,
        )
        .describe(API_KEYS, "Read an API key (preview only)")
        .reply(Ok("ApiKey")),
        patch(
            "/api/organisations/{organisationId}/apikeys/{id}",
            "updateApiKey",
            api_keys::update,
        )
        .describe(
            API_KEYS,
            "Update an API key's name, expiry, timezone or policies",
        )
        .body("ApiKeyPatch")
        .reply(Ok("ApiKey")),
        delete(
            "/api/organisations/{organisationId}/apikeys/{id}",
            "deleteApiKey",
            api_keys::delete,
        )
        .describe(API_KEYS, "Delete an API key")
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/rotate",
            "rotateApiKey",
            api_keys::rotate,
        )
        .describe(
            API_KEYS,
            "Issue a new secret for the same key id; the old one stops working at once",
        )
        .body("RotateApiKey")
        .reply(Ok("IssuedApiKey")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/revoke",
            "revokeApiKey",
            api_keys::revoke,
        )
        .describe(API_KEYS, "Revoke an API key")
        .reply(Ok("ApiKey")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/unrevoke",
            "unrevokeApiKey",
            api_keys::unrevoke,
        )
        .describe(API_KEYS, "Restore a revoked API key")
        .reply(Ok("ApiKey")),
        // Model grants, from the key's side.
        get(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access",
            "listApiKeyModelAccess",
            grants::list_for_api_key,
        )
        .describe(GRANTS, "List the models an API key may call")
        .reply(List("ModelGrant")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access",
            "grantModelsToApiKey",
            grants::grant_models,
        )
        .describe(
            GRANTS,
            "Grant an API key models (idempotent); returns the key's grants",
        )
        .body("GrantModels")
        .reply(List("ModelGrant")),
        delete(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access/{modelId}",
            "revokeModelFromApiKey",
            grants::revoke_model,
        )
        .describe(GRANTS, "Remove one model grant")
        .reply(NoContent),
        // Usage records.
        get(
            "/api/organisations/{organisationId}/usage-records",
            "listUsageRecords",
            usage_records::list,
        )
        .describe(USAGE, "List the organisation's usage records, newest first")
        .query(USAGE_FILTERS)
        .reply(List("UsageRecord")),
        get(
            "/api/organisations/{organisationId}/usage-records/{id}",
            "getUsageRecord",
            usage_records::get,
        )
        .describe(USAGE, "Read a usage record")
        .reply(Ok("UsageRecord")),
    ]
}
