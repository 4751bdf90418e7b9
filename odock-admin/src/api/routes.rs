//! The route table of the admin API: the single source of both the router ([`super::router`]) and
//! the OpenAPI document ([`super::openapi`]), so a route cannot exist without being documented.

use std::sync::OnceLock;

use axum::Json;
use serde_json::Value;

use crate::auth::access::RuleTable;
use crate::services::budgets::Budgets;
use crate::services::grants::ModelGrants;
use crate::services::mcp_grants::McpGrants;
use crate::services::quotas::Quotas;

use super::authz::{Access, Op};
use super::operation::{delete, get, param, patch, post, put};
pub use super::operation::{Operation, QueryParam, Reply, Verb};
use super::{
    analytics, api_keys, audit, dashboard, grants, invitations, invoices, ledger_rules, models,
    notifications, openapi, organisations, provider_keys, providers, session, teams, usage_records,
    users,
};

// One query parameter each, so the lists below (an organisation's and the cross-organisation
// one, LLM and MCP records) name what they share instead of repeating it.
const LIMIT: QueryParam = param("limit", "integer", "Page size, default 50, at most 500.");
const CURSOR: QueryParam = param("cursor", "string", "The previous page's nextCursor.");
const ORG_OBJECTS: QueryParam = param(
    "organisationId",
    "string",
    "Only this organisation's objects.",
);
const OWNER_TYPE: QueryParam = param(
    "ownerType",
    "string",
    "Only this owner type (ORG, TEAM, USER, APIKEY).",
);
const ACTIVE: QueryParam = param(
    "active",
    "boolean",
    "Only active (`true`) or inactive (`false`) ones.",
);
const ORG_RECORDS: QueryParam = param(
    "organisationId",
    "string",
    "Only this organisation's records.",
);
const MODEL_ID: QueryParam = param("modelId", "string", "Only this model's records.");
const PROVIDER: QueryParam = param(
    "provider",
    "string",
    "Only this provider family (`openai`, `anthropic`, …).",
);
const SORT: QueryParam = param(
    "sort",
    "string",
    "time, cost, latency or tokens (input + output), ascending, or with a leading - descending; default -time. A cursor resumes the sort it came from.",
);
const MCP_SERVER_ID: QueryParam = param("mcpServerId", "string", "Only this MCP server's records.");
const TOOL: QueryParam = param("tool", "string", "Only calls of this tool.");
const FROM: QueryParam = param(
    "from",
    "date-time",
    "Records created at or after this instant (RFC 3339).",
);
const TO: QueryParam = param(
    "to",
    "date-time",
    "Records created before this instant (RFC 3339).",
);
const MCP_LIMIT: QueryParam = param("limit", "integer", "Page size, default 50, at most 1000.");

/// A record list's parameters: the filters of both record lists around the ones a list adds
/// (`$own`), then `$tail` (paging, and `organisationId` across organisations).
macro_rules! record_filters {
    ([$($own:expr),*], [$($tail:expr),*]) => {
        &[
            FROM,
            TO,
            param("apiKeyId", "string", "Only this API key's records."),
            param("teamId", "string", "Only this team's records."),
            param("userId", "string", "Only this user's records."),
            $($own,)*
            param("status", "integer", "Only records with this HTTP status."),
            param("requestId", "string", "Only the record of this request id."),
            $($tail,)*
        ]
    };
}

/// `limit`, `cursor`: an organisation's plain lists.
pub const PAGINATION: &[QueryParam] = &[LIMIT, CURSOR];

/// `limit`, `cursor`, `organisationId`: the plain cross-organisation lists.
pub const ADMIN_LIST: &[QueryParam] = &[LIMIT, CURSOR, ORG_OBJECTS];

/// The budget and quota lists' (an organisation's).
pub const OWNER_FILTERS: &[QueryParam] = &[OWNER_TYPE, ACTIVE, LIMIT, CURSOR];

/// The budget and quota lists' (across organisations).
pub const ADMIN_OWNER_FILTERS: &[QueryParam] = &[OWNER_TYPE, ACTIVE, LIMIT, CURSOR, ORG_OBJECTS];

/// The usage records' (the organisation's list).
pub const USAGE_FILTERS: &[QueryParam] =
    record_filters!([MODEL_ID, PROVIDER], [SORT, LIMIT, CURSOR]);

/// The usage records' (across organisations).
pub const ADMIN_USAGE_FILTERS: &[QueryParam] =
    record_filters!([MODEL_ID, PROVIDER], [SORT, LIMIT, CURSOR, ORG_RECORDS]);

/// The MCP usage records' (the organisation's list).
pub const MCP_USAGE_FILTERS: &[QueryParam] =
    record_filters!([MCP_SERVER_ID, TOOL], [MCP_LIMIT, CURSOR]);

/// The MCP usage records' (across organisations).
pub const ADMIN_MCP_USAGE_FILTERS: &[QueryParam] =
    record_filters!([MCP_SERVER_ID, TOOL], [MCP_LIMIT, CURSOR, ORG_RECORDS]);

/// The usage summary's: period, grouping and filters.
pub const SUMMARY_PARAMS: &[QueryParam] = &[
    FROM,
    TO,
    param(
        "groupBy",
        "string",
        "Also return groups by day, hour (periods of at most 31 days), model, apiKey (or key), team, user, provider, mcpServer or status.",
    ),
    param(
        "teamIds",
        "string",
        "Comma-separated team ids: only their records (or those of apiKeyIds).",
    ),
    param(
        "apiKeyIds",
        "string",
        "Comma-separated API key ids: only their records (or those of teamIds).",
    ),
    param("traffic", "string", "all (default), llm or mcp."),
    param("modelIds", "string", "Comma-separated model ids: only their records."),
    param("providers", "string", "Comma-separated providers (mcp for MCP traffic): only their records."),
    param("userIds", "string", "Comma-separated user ids: only records attributed to them."),
    param("status", "string", "success (status below 400) or error."),
];

/// The invoice's: period, filters and format.
pub const INVOICE_PARAMS: &[QueryParam] = &[
    param("from", "date-time", "Period start, inclusive (RFC 3339); default: the start of `to`'s UTC month."),
    param("to", "date-time", "Period end, exclusive (RFC 3339); default: now."),
    param("teamIds", "string", "Comma-separated team ids: only their records (or those of apiKeyIds)."),
    param("apiKeyIds", "string", "Comma-separated API key ids: only their records (or those of teamIds)."),
    param(
        "format",
        "string",
        "json (default); csv: every record of the period as an attachment; pdf: the invoice document.",
    ),
];

const ORGS: &str = "Organisations";
const PROVIDERS: &str = "Providers";
const PROVIDER_KEYS: &str = "Provider keys";
const MODELS: &str = "Models";
const API_KEYS: &str = "API keys";
const GRANTS: &str = "Model grants";
const ROUTING: &str = "Routing";
const MCP_SERVERS: &str = "MCP servers";
const MCP_GRANTS: &str = "MCP grants";
const MCP_USAGE: &str = "MCP usage";
const USAGE: &str = "Usage records";
const SETTINGS: &str = "Settings";
const TEAMS: &str = "Teams";
const BUDGETS: &str = "Budgets";
const QUOTAS: &str = "Quotas";
const META: &str = "Meta";
const REPORTS: &str = "Usage analytics and invoices";
const AUDIT: &str = "Audit log";
const AUTH: &str = "Sign-in";
const USERS: &str = "Users";
const INVITATIONS: &str = "Invitations";
const NOTIFICATIONS: &str = "Notifications and alerts";

/// Every route of the admin API.
pub fn operations() -> Vec<Operation> {
    use Reply::{Created, List, NoContent, Ok};
    vec![
        get("/api/openapi.json", "getOpenApi", serve_openapi)
            .describe(META, "This document")
            .reply(Ok("OpenApiDocument"))
            .public(),
        // Organisations (SUPER_ADMIN).
        post(
            "/api/admin/organisations",
            "createOrganisation",
            organisations::create,
        )
        .access(Access::SuperAdmin)
        .describe(ORGS, "Create an organisation")
        .body("NewOrganisation")
        .reply(Created("Organisation")),
        get(
            "/api/admin/organisations",
            "listOrganisations",
            organisations::list,
        )
        .access(Access::SuperAdmin)
        .describe(ORGS, "List organisations")
        .query(PAGINATION)
        .reply(List("Organisation")),
        get(
            "/api/admin/organisations/{id}",
            "getOrganisation",
            organisations::get,
        )
        .access(Access::SuperAdmin)
        .describe(ORGS, "Read an organisation")
        .reply(Ok("Organisation")),
        patch(
            "/api/admin/organisations/{id}",
            "updateOrganisation",
            organisations::update,
        )
        .access(Access::SuperAdmin)
        .describe(ORGS, "Update an organisation")
        .body("OrganisationPatch")
        .reply(Ok("Organisation")),
        delete(
            "/api/admin/organisations/{id}",
            "deleteOrganisation",
            organisations::delete,
        )
        .access(Access::SuperAdmin)
        .describe(ORGS, "Delete an organisation and everything it owns")
        .reply(NoContent),
        // Cross-organisation lists (SUPER_ADMIN).
        get(
            "/api/admin/providers",
            "listAllProviders",
            providers::list_all,
        )
        .access(Access::SuperAdmin)
        .describe(PROVIDERS, "List providers of every organisation")
        .query(ADMIN_LIST)
        .reply(List("Provider")),
        get("/api/admin/models", "listAllModels", models::list_all)
            .access(Access::SuperAdmin)
            .describe(MODELS, "List models of every organisation")
            .query(ADMIN_LIST)
            .reply(List("Model")),
        get("/api/admin/apikeys", "listAllApiKeys", api_keys::list_all)
            .access(Access::SuperAdmin)
            .describe(API_KEYS, "List API keys of every organisation")
            .query(ADMIN_LIST)
            .reply(List("ApiKey")),
        get("/api/admin/teams", "listAllTeams", teams::list_all)
            .access(Access::SuperAdmin)
            .describe(TEAMS, "List teams of every organisation")
            .query(ADMIN_LIST)
            .reply(List("Team")),
        get("/api/admin/budgets", "listAllBudgets", ledger_rules::list_all::<Budgets>)
            .access(Access::SuperAdmin)
            .describe(BUDGETS, "List budgets of every organisation")
            .query(ADMIN_OWNER_FILTERS)
            .reply(List("Budget")),
        get("/api/admin/quotas", "listAllQuotas", ledger_rules::list_all::<Quotas>)
            .access(Access::SuperAdmin)
            .describe(QUOTAS, "List quotas of every organisation")
            .query(ADMIN_OWNER_FILTERS)
            .reply(List("Quota")),
        get(
            "/api/admin/usage-records",
            "listAllUsageRecords",
            usage_records::list_all,
        )
        .access(Access::SuperAdmin)
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
        .access(Access::OrgAdmin)
        .describe(SETTINGS, "Read the organisation's settings")
        .reply(Ok("OrganisationSettings")),
        patch(
            "/api/organisations/{organisationId}/settings",
            "updateOrganisationSettings",
            organisations::update_settings,
        )
        .access(Access::OrgAdmin)
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
        .access(Access::OrgAdmin)
        .describe(TEAMS, "Create a team")
        .body("NewTeam")
        .reply(Created("Team")),
        get(
            "/api/organisations/{organisationId}/teams",
            "listTeams",
            teams::list,
        )
        .access(Access::OrgFiltered)
        .describe(TEAMS, "List the organisation's teams")
        .query(PAGINATION)
        .reply(List("Team")),
        get(
            "/api/organisations/{organisationId}/teams/{id}",
            "getTeam",
            teams::get,
        )
        .access(Access::Team(Op::Read))
        .describe(TEAMS, "Read a team")
        .reply(Ok("Team")),
        patch(
            "/api/organisations/{organisationId}/teams/{id}",
            "updateTeam",
            teams::update,
        )
        .access(Access::OrgAdmin)
        .describe(TEAMS, "Update a team's name or policies")
        .body("TeamPatch")
        .reply(Ok("Team")),
        delete(
            "/api/organisations/{organisationId}/teams/{id}",
            "deleteTeam",
            teams::delete,
        )
        .access(Access::OrgAdmin)
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
        .access(Access::Team(Op::Manage))
        .describe(TEAMS, "Add a user of the organisation to the team")
        .body("NewTeamMember")
        .reply(Created("TeamMember")),
        get(
            "/api/organisations/{organisationId}/teams/{id}/members",
            "listTeamMembers",
            teams::list_members,
        )
        .access(Access::Team(Op::Read))
        .describe(TEAMS, "List the team's members")
        .query(PAGINATION)
        .reply(List("TeamMember")),
        patch(
            "/api/organisations/{organisationId}/teams/{id}/members/{userId}",
            "updateTeamMember",
            teams::update_member,
        )
        .access(Access::Team(Op::Manage))
        .describe(TEAMS, "Change a member's team role")
        .body("TeamMemberPatch")
        .reply(Ok("TeamMember")),
        delete(
            "/api/organisations/{organisationId}/teams/{id}/members/{userId}",
            "removeTeamMember",
            teams::remove_member,
        )
        .access(Access::Team(Op::Manage))
        .describe(TEAMS, "Remove a member from the team")
        .reply(NoContent),
        // Budgets.
        post(
            "/api/organisations/{organisationId}/budgets",
            "createBudget",
            ledger_rules::create::<Budgets>,
        )
        .access(Access::NewRule)
        .describe(BUDGETS, "Create a budget")
        .body("NewBudget")
        .reply(Created("Budget")),
        get(
            "/api/organisations/{organisationId}/budgets",
            "listBudgets",
            ledger_rules::list::<Budgets>,
        )
        .access(Access::OrgFiltered)
        .describe(BUDGETS, "List the organisation's budgets")
        .query(OWNER_FILTERS)
        .reply(List("Budget")),
        get(
            "/api/organisations/{organisationId}/budgets/{id}",
            "getBudget",
            ledger_rules::get::<Budgets>,
        )
        .access(Access::Rule(RuleTable::Budgets, Op::Read))
        .describe(BUDGETS, "Read a budget")
        .reply(Ok("Budget")),
        patch(
            "/api/organisations/{organisationId}/budgets/{id}",
            "updateBudget",
            ledger_rules::update::<Budgets>,
        )
        .access(Access::Rule(RuleTable::Budgets, Op::Manage))
        .describe(BUDGETS, "Update a budget (not its owner)")
        .body("BudgetPatch")
        .reply(Ok("Budget")),
        delete(
            "/api/organisations/{organisationId}/budgets/{id}",
            "deleteBudget",
            ledger_rules::delete::<Budgets>,
        )
        .access(Access::Rule(RuleTable::Budgets, Op::Manage))
        .describe(BUDGETS, "Delete a budget and its windows")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/budgets/{id}/windows",
            "listBudgetWindows",
            ledger_rules::windows::<Budgets>,
        )
        .access(Access::Rule(RuleTable::Budgets, Op::Read))
        .describe(
            BUDGETS,
            "List a budget's windows, current first (id null while the ledger has not created it)",
        )
        .reply(List("BudgetWindow")),
        // Quotas.
        post(
            "/api/organisations/{organisationId}/quotas",
            "createQuota",
            ledger_rules::create::<Quotas>,
        )
        .access(Access::NewRule)
        .describe(QUOTAS, "Create a quota")
        .body("NewQuota")
        .reply(Created("Quota")),
        get(
            "/api/organisations/{organisationId}/quotas",
            "listQuotas",
            ledger_rules::list::<Quotas>,
        )
        .access(Access::OrgFiltered)
        .describe(QUOTAS, "List the organisation's quotas")
        .query(OWNER_FILTERS)
        .reply(List("Quota")),
        get(
            "/api/organisations/{organisationId}/quotas/{id}",
            "getQuota",
            ledger_rules::get::<Quotas>,
        )
        .access(Access::Rule(RuleTable::Quotas, Op::Read))
        .describe(QUOTAS, "Read a quota")
        .reply(Ok("Quota")),
        patch(
            "/api/organisations/{organisationId}/quotas/{id}",
            "updateQuota",
            ledger_rules::update::<Quotas>,
        )
        .access(Access::Rule(RuleTable::Quotas, Op::Manage))
        .describe(QUOTAS, "Update a quota (not its owner or metric)")
        .body("QuotaPatch")
        .reply(Ok("Quota")),
        delete(
            "/api/organisations/{organisationId}/quotas/{id}",
            "deleteQuota",
            ledger_rules::delete::<Quotas>,
        )
        .access(Access::Rule(RuleTable::Quotas, Op::Manage))
        .describe(QUOTAS, "Delete a quota and its windows")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/quotas/{id}/windows",
            "listQuotaWindows",
            ledger_rules::windows::<Quotas>,
        )
        .access(Access::Rule(RuleTable::Quotas, Op::Read))
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
        .access(Access::OrgAdmin)
        .describe(PROVIDERS, "Create a provider")
        .body("NewProvider")
        .reply(Created("Provider")),
        get(
            "/api/organisations/{organisationId}/providers",
            "listProviders",
            providers::list,
        )
        .access(Access::OrgStaff)
        .describe(PROVIDERS, "List the organisation's providers")
        .query(PAGINATION)
        .reply(List("Provider")),
        get(
            "/api/organisations/{organisationId}/providers/{id}",
            "getProvider",
            providers::get,
        )
        .access(Access::OrgStaff)
        .describe(PROVIDERS, "Read a provider")
        .reply(Ok("Provider")),
        patch(
            "/api/organisations/{organisationId}/providers/{id}",
            "updateProvider",
            providers::update,
        )
        .access(Access::OrgAdmin)
        .describe(PROVIDERS, "Update a provider")
        .body("ProviderPatch")
        .reply(Ok("Provider")),
        delete(
            "/api/organisations/{organisationId}/providers/{id}",
            "deleteProvider",
            providers::delete,
        )
        .access(Access::OrgAdmin)
        .describe(PROVIDERS, "Delete a provider with its keys and models")
        .reply(NoContent),
        // Provider keys.
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys",
            "createProviderKey",
            provider_keys::create,
        )
        .access(Access::OrgAdmin)
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
        .access(Access::OrgStaff)
        .describe(PROVIDER_KEYS, "List a provider's keys (previews only)")
        .query(PAGINATION)
        .reply(List("ProviderKey")),
        get(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}",
            "getProviderKey",
            provider_keys::get,
        )
        .access(Access::OrgStaff)
        .describe(PROVIDER_KEYS, "Read a provider key (preview only)")
        .reply(Ok("ProviderKey")),
        delete(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}",
            "deleteProviderKey",
            provider_keys::delete,
        )
        .access(Access::OrgAdmin)
        .describe(PROVIDER_KEYS, "Delete a provider key")
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}/revoke",
            "revokeProviderKey",
            provider_keys::revoke,
        )
        .access(Access::OrgAdmin)
        .describe(PROVIDER_KEYS, "Revoke a provider key")
        .reply(Ok("ProviderKey")),
        post(
            "/api/organisations/{organisationId}/providers/{id}/keys/{keyId}/unrevoke",
            "unrevokeProviderKey",
            provider_keys::unrevoke,
        )
        .access(Access::OrgAdmin)
        .describe(PROVIDER_KEYS, "Restore a revoked provider key")
        .reply(Ok("ProviderKey")),
        // Models.
        post(
            "/api/organisations/{organisationId}/models",
            "createModel",
            models::create,
        )
        .access(Access::OrgAdmin)
        .describe(MODELS, "Create a model")
        .body("NewModel")
        .reply(Created("Model")),
        get(
            "/api/organisations/{organisationId}/models",
            "listModels",
            models::list,
        )
        .access(Access::OrgMember)
        .describe(MODELS, "List the organisation's models")
        .query(PAGINATION)
        .reply(List("Model")),
        get(
            "/api/organisations/{organisationId}/models/{id}",
            "getModel",
            models::get,
        )
        .access(Access::OrgMember)
        .describe(MODELS, "Read a model")
        .reply(Ok("Model")),
        patch(
            "/api/organisations/{organisationId}/models/{id}",
            "updateModel",
            models::update,
        )
        .access(Access::OrgAdmin)
        .describe(MODELS, "Update a model")
        .body("ModelPatch")
        .reply(Ok("Model")),
        delete(
            "/api/organisations/{organisationId}/models/{id}",
            "deleteModel",
            models::delete,
        )
        .access(Access::OrgAdmin)
        .describe(MODELS, "Delete a model and its grants")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/models/{id}/api-key-access",
            "listModelApiKeyAccess",
            grants::list_for_target::<ModelGrants>,
        )
        .access(Access::OrgAdmin)
        .describe(GRANTS, "List the API keys granted this model")
        .reply(List("ModelGrant")),
        post(
            "/api/organisations/{organisationId}/models/{id}/api-key-access",
            "grantModelToApiKeys",
            grants::grant_api_keys::<ModelGrants>,
        )
        .access(Access::OrgAdmin)
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
        .access(Access::NewApiKey)
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
        .access(Access::OrgFiltered)
        .describe(API_KEYS, "List the organisation's API keys (previews only)")
        .query(PAGINATION)
        .reply(List("ApiKey")),
        get(
            "/api/organisations/{organisationId}/apikeys/{id}",
            "getApiKey",
            api_keys::get,
        )
        .access(Access::ApiKey(Op::Read))
        .describe(API_KEYS, "Read an API key (preview only)")
        .reply(Ok("ApiKey")),
        patch(
            "/api/organisations/{organisationId}/apikeys/{id}",
            "updateApiKey",
            api_keys::update,
        )
        .access(Access::ApiKey(Op::Manage))
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
        .access(Access::ApiKey(Op::Manage))
        .describe(API_KEYS, "Delete an API key")
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/rotate",
            "rotateApiKey",
            api_keys::rotate,
        )
        .access(Access::ApiKey(Op::Manage))
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
        .access(Access::ApiKey(Op::Manage))
        .describe(API_KEYS, "Revoke an API key")
        .reply(Ok("ApiKey")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/unrevoke",
            "unrevokeApiKey",
            api_keys::unrevoke,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(API_KEYS, "Restore a revoked API key")
        .reply(Ok("ApiKey")),
        get(
            "/api/organisations/{organisationId}/apikeys/{id}/rotations",
            "listApiKeyRotations",
            api_keys::rotations,
        )
        .access(Access::ApiKey(Op::Read))
        .describe(
            API_KEYS,
            "The key's rotation history, newest first (previews of the replaced secrets only)",
        )
        .reply(List("ApiKeyRotation")),
        // Model grants, from the key's side.
        get(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access",
            "listApiKeyModelAccess",
            grants::list_for_api_key::<ModelGrants>,
        )
        .access(Access::ApiKey(Op::Read))
        .describe(GRANTS, "List the models an API key may call")
        .reply(List("ModelGrant")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access",
            "grantModelsToApiKey",
            grants::grant_targets::<ModelGrants>,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(
            GRANTS,
            "Grant an API key models (idempotent); returns the key's grants",
        )
        .body("GrantModels")
        .reply(List("ModelGrant")),
        delete(
            "/api/organisations/{organisationId}/apikeys/{id}/model-access/{modelId}",
            "revokeModelFromApiKey",
            grants::revoke::<ModelGrants>,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(GRANTS, "Remove one model grant")
        .reply(NoContent),
        // Routing policies and provider health.
        get(
            "/api/organisations/{organisationId}/apikeys/{id}/routing",
            "getApiKeyRouting",
            super::routing::get,
        )
        .access(Access::ApiKey(Op::Read))
        .describe(ROUTING, "The API key's routing policies (one per model type)")
        .reply(Ok("RoutingDocument")),
        put(
            "/api/organisations/{organisationId}/apikeys/{id}/routing",
            "putApiKeyRouting",
            super::routing::put,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(
            ROUTING,
            "Replace the API key's routing policies; candidates must be models of the organisation, \
             of the policy's type, granted to the key (400 naming the candidate otherwise)",
        )
        .body("RoutingDocument")
        .reply(Ok("RoutingDocument")),
        get(
            "/api/organisations/{organisationId}/provider-health",
            "getProviderHealth",
            super::routing::provider_health,
        )
        .access(Access::OrgStaff)
        .describe(
            ROUTING,
            "Circuit-breaker state of the organisation's providers and provider keys, as the \
             replica answering sees it (breakers are per replica)",
        )
        .reply(Ok("ProviderHealthList")),
        // MCP servers, their grants (from both sides) and their usage.
        post(
            "/api/organisations/{organisationId}/mcp-servers",
            "createMcpServer",
            super::mcp_servers::create,
        )
        .access(Access::OrgAdmin)
        .describe(
            MCP_SERVERS,
            "Create an MCP server (auth config and stdio env are sealed); a stdio command outside \
             ODOCK_MCP_STDIO_ALLOW is SUPER_ADMIN-only (403 stdio_not_allowed)",
        )
        .body("NewMcpServer")
        .reply(Created("McpServer")),
        get(
            "/api/organisations/{organisationId}/mcp-servers",
            "listMcpServers",
            super::mcp_servers::list,
        )
        .access(Access::OrgMember)
        .describe(MCP_SERVERS, "List the organisation's MCP servers")
        .query(PAGINATION)
        .reply(List("McpServer")),
        get(
            "/api/admin/mcp-servers",
            "listAllMcpServers",
            super::mcp_servers::list_all,
        )
        .access(Access::SuperAdmin)
        .describe(MCP_SERVERS, "List MCP servers of every organisation")
        .query(ADMIN_LIST)
        .reply(List("McpServer")),
        get(
            "/api/organisations/{organisationId}/mcp-servers/{id}",
            "getMcpServer",
            super::mcp_servers::get,
        )
        .access(Access::OrgMember)
        .describe(MCP_SERVERS, "Read an MCP server (secrets as previews only)")
        .reply(Ok("McpServer")),
        patch(
            "/api/organisations/{organisationId}/mcp-servers/{id}",
            "updateMcpServer",
            super::mcp_servers::update,
        )
        .access(Access::OrgAdmin)
        .describe(
            MCP_SERVERS,
            "Update an MCP server; authConfig / stdioEnv replace the stored secrets; changing the \
             stdio launch to a command outside ODOCK_MCP_STDIO_ALLOW is SUPER_ADMIN-only (403 \
             stdio_not_allowed)",
        )
        .body("McpServerPatch")
        .reply(Ok("McpServer")),
        delete(
            "/api/organisations/{organisationId}/mcp-servers/{id}",
            "deleteMcpServer",
            super::mcp_servers::delete,
        )
        .access(Access::OrgAdmin)
        .describe(MCP_SERVERS, "Delete an MCP server and its grants")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/mcp-servers/{id}/api-key-access",
            "listMcpServerApiKeyAccess",
            grants::list_for_target::<McpGrants>,
        )
        .access(Access::OrgAdmin)
        .describe(MCP_GRANTS, "List the API keys granted this MCP server")
        .reply(List("McpGrant")),
        post(
            "/api/organisations/{organisationId}/mcp-servers/{id}/api-key-access",
            "grantMcpServerToApiKeys",
            grants::grant_api_keys::<McpGrants>,
        )
        .access(Access::OrgAdmin)
        .describe(
            MCP_GRANTS,
            "Grant API keys this MCP server (idempotent); returns the server's grants",
        )
        .body("GrantApiKeys")
        .reply(List("McpGrant")),
        get(
            "/api/organisations/{organisationId}/apikeys/{id}/mcp-access",
            "listApiKeyMcpAccess",
            grants::list_for_api_key::<McpGrants>,
        )
        .access(Access::ApiKey(Op::Read))
        .describe(MCP_GRANTS, "List the MCP servers an API key may call")
        .reply(List("McpGrant")),
        post(
            "/api/organisations/{organisationId}/apikeys/{id}/mcp-access",
            "grantMcpServersToApiKey",
            grants::grant_targets::<McpGrants>,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(
            MCP_GRANTS,
            "Grant an API key MCP servers (idempotent); returns the key's MCP grants",
        )
        .body("GrantMcpServers")
        .reply(List("McpGrant")),
        delete(
            "/api/organisations/{organisationId}/apikeys/{id}/mcp-access/{mcpServerId}",
            "revokeMcpServerFromApiKey",
            grants::revoke::<McpGrants>,
        )
        .access(Access::ApiKey(Op::Manage))
        .describe(MCP_GRANTS, "Remove one MCP grant")
        .reply(NoContent),
        get(
            "/api/organisations/{organisationId}/mcp-usage-records",
            "listMcpUsageRecords",
            super::mcp_usage::list,
        )
        .access(Access::OrgFiltered)
        .describe(
            MCP_USAGE,
            "List the organisation's MCP usage records, newest first",
        )
        .query(MCP_USAGE_FILTERS)
        .reply(List("McpUsageRecord")),
        get(
            "/api/admin/mcp-usage-records",
            "listAllMcpUsageRecords",
            super::mcp_usage::list_all,
        )
        .access(Access::SuperAdmin)
        .describe(
            MCP_USAGE,
            "List MCP usage records of every organisation, newest first",
        )
        .query(ADMIN_MCP_USAGE_FILTERS)
        .reply(List("McpUsageRecord")),
        // Usage records.
        get(
            "/api/organisations/{organisationId}/usage-records",
            "listUsageRecords",
            usage_records::list,
        )
        .access(Access::OrgFiltered)
        .describe(USAGE, "List the organisation's usage records, newest first")
        .query(USAGE_FILTERS)
        .reply(List("UsageRecord")),
        get(
            "/api/organisations/{organisationId}/usage-records/{id}",
            "getUsageRecord",
            usage_records::get,
        )
        .access(Access::UsageRecord)
        .describe(USAGE, "Read a usage record")
        .reply(Ok("UsageRecord")),
        // Sign-in (public) and the signed-in caller.
        post("/api/auth/login", "login", session::login)
            .describe(
                AUTH,
                "Sign in with email and password; sets the odock_session cookie",
            )
            .body("Login")
            .reply(Ok("Session"))
            .public(),
        post("/api/auth/logout", "logout", session::logout)
            .access(Access::SignedIn)
            .describe(AUTH, "End the presented session and clear the cookie")
            .reply(NoContent),
        get("/api/auth/me", "getMe", session::me)
            .access(Access::SignedIn)
            .describe(AUTH, "The signed-in user, role and organisation")
            .reply(Ok("Me")),
        post(
            "/api/auth/password",
            "changePassword",
            session::change_password,
        )
        .access(Access::SignedIn)
        .describe(AUTH, "Change your password; your other sessions end")
        .body("PasswordChange")
        .reply(NoContent),
        get(
            "/api/invitations/{token}",
            "getInvitationByToken",
            invitations::lookup,
        )
        .describe(
            INVITATIONS,
            "What an invitation offers (410 once expired, revoked or used)",
        )
        .reply(Ok("PublicInvitation"))
        .public(),
        post(
            "/api/invitations/{token}/accept",
            "acceptInvitation",
            invitations::accept,
        )
        .describe(
            INVITATIONS,
            "Accept an invitation: activates the user with the invited role and signs them in",
        )
        .body("AcceptInvitation")
        .reply(Ok("Session"))
        .public(),
        // Users.
        post(
            "/api/organisations/{organisationId}/users",
            "createUser",
            users::create,
        )
        .access(Access::OrgAdmin)
        .describe(
            USERS,
            "Create a user (with a password: ACTIVE; without: PENDING)",
        )
        .body("NewUser")
        .reply(Created("User")),
        get(
            "/api/organisations/{organisationId}/users",
            "listUsers",
            users::list,
        )
        .access(Access::OrgStaff)
        .describe(USERS, "List the organisation's users")
        .query(PAGINATION)
        .reply(List("User")),
        get(
            "/api/organisations/{organisationId}/users/{id}",
            "getUser",
            users::get,
        )
        .access(Access::User(Op::Read))
        .describe(USERS, "Read a user")
        .reply(Ok("User")),
        patch(
            "/api/organisations/{organisationId}/users/{id}",
            "updateUser",
            users::update,
        )
        .access(Access::User(Op::Manage))
        .describe(
            USERS,
            "Update a user; REVOKED (or a new password) ends their sessions, keys are untouched",
        )
        .body("UserPatch")
        .reply(Ok("User")),
        delete(
            "/api/organisations/{organisationId}/users/{id}",
            "deleteUser",
            users::delete,
        )
        .access(Access::User(Op::Manage))
        .describe(
            USERS,
            "Delete a user with their sessions, memberships, USER keys and USER budgets/quotas",
        )
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/users/{id}/approve",
            "approveUser",
            users::approve,
        )
        .access(Access::User(Op::Manage))
        .describe(USERS, "Approve a PENDING user (ACTIVE)")
        .reply(Ok("User")),
        post(
            "/api/organisations/{organisationId}/users/{id}/decline",
            "declineUser",
            users::decline,
        )
        .access(Access::User(Op::Manage))
        .describe(USERS, "Decline a PENDING user (REVOKED)")
        .reply(Ok("User")),
        get("/api/admin/users", "listAllUsers", users::list_all)
            .access(Access::SuperAdmin)
            .describe(USERS, "List users of every organisation (and SUPER_ADMINs)")
            .query(ADMIN_LIST)
            .reply(List("User")),
        // Invitations.
        post(
            "/api/organisations/{organisationId}/invitations",
            "createInvitation",
            invitations::create,
        )
        .access(Access::OrgAdmin)
        .describe(
            INVITATIONS,
            "Invite someone into the organisation; the token and link are returned only here",
        )
        .body("NewInvitation")
        .reply(Created("IssuedInvitation")),
        get(
            "/api/organisations/{organisationId}/invitations",
            "listInvitations",
            invitations::list,
        )
        .access(Access::OrgAdmin)
        .describe(INVITATIONS, "List the organisation's invitations")
        .query(PAGINATION)
        .reply(List("Invitation")),
        get(
            "/api/organisations/{organisationId}/invitations/{id}",
            "getInvitation",
            invitations::get,
        )
        .access(Access::OrgAdmin)
        .describe(INVITATIONS, "Read an invitation (never its token)")
        .reply(Ok("Invitation")),
        post(
            "/api/organisations/{organisationId}/invitations/{id}/resend",
            "resendInvitation",
            invitations::resend,
        )
        .access(Access::OrgAdmin)
        .describe(
            INVITATIONS,
            "Issue a new token and 72-hour expiry; the old token stops working",
        )
        .reply(Ok("IssuedInvitation")),
        post(
            "/api/organisations/{organisationId}/invitations/{id}/revoke",
            "revokeInvitation",
            invitations::revoke,
        )
        .access(Access::OrgAdmin)
        .describe(INVITATIONS, "Revoke a pending invitation")
        .reply(Ok("Invitation")),
        post(
            "/api/admin/invitations",
            "createOrganisationInvitation",
            invitations::create_for_new_organisation,
        )
        .access(Access::SuperAdmin)
        .describe(
            INVITATIONS,
            "Invite someone to create a new organisation (CREATE_ORGANISATION) as its ORG_ADMIN",
        )
        .body("NewOrganisationInvitation")
        .reply(Created("IssuedInvitation")),
        get(
            "/api/admin/invitations",
            "listAllInvitations",
            invitations::list_all,
        )
        .access(Access::SuperAdmin)
        .describe(INVITATIONS, "List invitations of every organisation")
        .query(ADMIN_LIST)
        .reply(List("Invitation")),
        post(
            "/api/admin/invitations/{id}/resend",
            "resendOrganisationInvitation",
            invitations::resend_for_new_organisation,
        )
        .access(Access::SuperAdmin)
        .describe(INVITATIONS, "Resend a CREATE_ORGANISATION invitation")
        .reply(Ok("IssuedInvitation")),
        post(
            "/api/admin/invitations/{id}/revoke",
            "revokeOrganisationInvitation",
            invitations::revoke_for_new_organisation,
        )
        .access(Access::SuperAdmin)
        .describe(INVITATIONS, "Revoke a CREATE_ORGANISATION invitation")
        .reply(Ok("Invitation")),
        // A team's own keys.
        get(
            "/api/organisations/{organisationId}/teams/{id}/apikeys",
            "listTeamApiKeys",
            teams::list_api_keys,
        )
        .access(Access::Team(Op::Manage))
        .describe(TEAMS, "List the team's TEAM keys (previews only)")
        .query(PAGINATION)
        .reply(List("ApiKey")),
        get(
            "/api/organisations/{organisationId}/dashboard",
            "getDashboardCounts",
            dashboard::counts,
        )
        .access(Access::OrgFiltered)
        .describe(
            REPORTS,
            "Counts of the organisation's keys, models, providers, MCP servers, teams and users, as far as the caller sees them",
        )
        .reply(Ok("DashboardCounts")),
        // Usage analytics, invoices and the audit log.
        get(
            "/api/organisations/{organisationId}/usage/summary",
            "getUsageSummary",
            analytics::summary,
        )
        .access(Access::OrgFiltered)
        .describe(
            REPORTS,
            "Usage totals (requests, errors, tokens, LLM and MCP cost, p50/p95 latency) and groups",
        )
        .query(SUMMARY_PARAMS)
        .reply(Ok("UsageSummary")),
        get(
            "/api/organisations/{organisationId}/invoices",
            "getInvoice",
            invoices::invoice,
        )
        .access(Access::OrgFiltered)
        .describe(
            REPORTS,
            "The invoice of a period: totals and breakdowns (JSON), every record (CSV) or a PDF",
        )
        .query(INVOICE_PARAMS)
        .reply(Ok("Invoice")),
        get(
            "/api/organisations/{organisationId}/audit-log",
            "listAuditLog",
            audit::list,
        )
        .access(Access::OrgAdmin)
        .describe(
            AUDIT,
            "The organisation's admin writes, newest first (secrets removed)",
        )
        .query(PAGINATION)
        .reply(List("AuditEntry")),
        get("/api/admin/audit-log", "listAllAuditLog", audit::list_all)
            .access(Access::SuperAdmin)
            .describe(AUDIT, "Admin writes of every organisation, newest first")
            .query(ADMIN_LIST)
            .reply(List("AuditEntry")),
        // Notification channels and alerts.
        post(
            "/api/organisations/{organisationId}/notification-channels",
            "createNotificationChannel",
            notifications::create,
        )
        .access(Access::OrgAdmin)
        .describe(
            NOTIFICATIONS,
            "Add a WEBHOOK (signed with secret, write-only) or EMAIL channel for alerts",
        )
        .body("NewNotificationChannel")
        .reply(Created("NotificationChannel")),
        get(
            "/api/organisations/{organisationId}/notification-channels",
            "listNotificationChannels",
            notifications::list,
        )
        .access(Access::OrgAdmin)
        .describe(NOTIFICATIONS, "List the organisation's notification channels")
        .query(PAGINATION)
        .reply(List("NotificationChannel")),
        get(
            "/api/organisations/{organisationId}/notification-channels/{id}",
            "getNotificationChannel",
            notifications::get,
        )
        .access(Access::OrgAdmin)
        .describe(NOTIFICATIONS, "Read a notification channel (never its secret)")
        .reply(Ok("NotificationChannel")),
        patch(
            "/api/organisations/{organisationId}/notification-channels/{id}",
            "updateNotificationChannel",
            notifications::update,
        )
        .access(Access::OrgAdmin)
        .describe(
            NOTIFICATIONS,
            "Update a notification channel (`secret: null` removes the signature)",
        )
        .body("NotificationChannelPatch")
        .reply(Ok("NotificationChannel")),
        delete(
            "/api/organisations/{organisationId}/notification-channels/{id}",
            "deleteNotificationChannel",
            notifications::delete,
        )
        .access(Access::OrgAdmin)
        .describe(NOTIFICATIONS, "Delete a notification channel (its alert history stays)")
        .reply(NoContent),
        post(
            "/api/organisations/{organisationId}/notification-channels/{id}/test",
            "testNotificationChannel",
            notifications::test,
        )
        .access(Access::OrgAdmin)
        .describe(
            NOTIFICATIONS,
            "Queue a notification.test alert to this channel; read the alert to see it delivered",
        )
        .reply(Ok("Alert")),
        get(
            "/api/organisations/{organisationId}/alerts",
            "listAlerts",
            notifications::list_alerts,
        )
        .access(Access::OrgAdmin)
        .describe(
            NOTIFICATIONS,
            "Alerts raised for the organisation (thresholds, expiring keys, tests) and their deliveries",
        )
        .query(PAGINATION)
        .reply(List("Alert")),
        get(
            "/api/organisations/{organisationId}/alerts/{id}",
            "getAlert",
            notifications::get_alert,
        )
        .access(Access::OrgAdmin)
        .describe(NOTIFICATIONS, "Read an alert and its deliveries")
        .reply(Ok("Alert")),
    ]
}

/// `GET /api/openapi.json`: the OpenAPI document of this table (built once).
async fn serve_openapi() -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(
        DOCUMENT
            .get_or_init(|| openapi::document(&operations()))
            .clone(),
    )
}
