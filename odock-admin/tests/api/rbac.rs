//! The role table, walked: every route of the route table × every kind of caller, against an
//! expected outcome written out here. A route without a row in [`expected`] fails the walk, so a
//! route cannot be added without deciding who may call it.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use http::{Method, StatusCode};
use odock_admin::api::authz::Access;
use odock_admin::api::openapi;
use odock_admin::api::routes::operations;
use odock_admin::testing::{harness, harness_on, Harness, PASSWORD};
use odock_core::{
    ApiKeyId, OrganisationId, RequestId, Role, TeamId, TokenUsage, UsageRecord, UsageRecordId,
    UserId,
};
use serde_json::{json, Value};

/// The callers every route is tried with, in the columns' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The static admin token.
    Super,
    OrgAdmin,
    /// MANAGER, team MANAGER of the team the paths name.
    Manager,
    /// MANAGER, team MANAGER of another team of the organisation.
    OtherManager,
    /// USER, MEMBER of the team the paths name, owner of the record the paths name.
    User,
    /// ORG_ADMIN of another organisation.
    Outsider,
    Anonymous,
}

const WHO: [Who; 7] = [
    Who::Super,
    Who::OrgAdmin,
    Who::Manager,
    Who::OtherManager,
    Who::User,
    Who::Outsider,
    Who::Anonymous,
];

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Any 2xx.
    Ok,
    /// Exactly this status (401, 403, 404, or 400 where the caller is let through but cannot act).
    Status(u16),
}

use Outcome::Ok as Y;
const N401: Outcome = Outcome::Status(401);
const N403: Outcome = Outcome::Status(403);
const N404: Outcome = Outcome::Status(404);
const BAD: Outcome = Outcome::Status(400);

// Columns: Super, OrgAdmin, Manager (of the team), OtherManager, User, Outsider, Anonymous.
const PUBLIC: [Outcome; 7] = [Y, Y, Y, Y, Y, Y, Y];
const SIGNED_IN: [Outcome; 7] = [Y, Y, Y, Y, Y, Y, N401];
const SUPER_ONLY: [Outcome; 7] = [Y, N403, N403, N403, N403, N403, N401];
const ORG_ADMIN: [Outcome; 7] = [Y, Y, N403, N403, N403, N404, N401];
const ORG_STAFF: [Outcome; 7] = [Y, Y, Y, Y, N403, N404, N401];
const ORG_MEMBER: [Outcome; 7] = [Y, Y, Y, Y, Y, N404, N401];
const TEAM_MEMBER: [Outcome; 7] = [Y, Y, Y, N403, Y, N404, N401];
const TEAM_MANAGER: [Outcome; 7] = [Y, Y, Y, N403, N403, N404, N401];
const OWN_RECORD: [Outcome; 7] = [Y, Y, Y, N403, Y, N404, N401];

/// The expected outcome of every route, by operation id.
fn expected() -> BTreeMap<&'static str, [Outcome; 7]> {
    let rows: &[(&str, [Outcome; 7])] = &[
        ("getOpenApi", PUBLIC),
        // Sign-in.
        ("login", PUBLIC),
        ("logout", SIGNED_IN),
        ("getMe", SIGNED_IN),
        // The admin token has no password to change.
        ("changePassword", [BAD, Y, Y, Y, Y, Y, N401]),
        ("getInvitationByToken", PUBLIC),
        ("acceptInvitation", PUBLIC),
        // SUPER_ADMIN.
        ("createOrganisation", SUPER_ONLY),
        ("listOrganisations", SUPER_ONLY),
        ("getOrganisation", SUPER_ONLY),
        ("updateOrganisation", SUPER_ONLY),
        ("deleteOrganisation", SUPER_ONLY),
        ("listAllProviders", SUPER_ONLY),
        ("listAllModels", SUPER_ONLY),
        ("listAllApiKeys", SUPER_ONLY),
        ("listAllTeams", SUPER_ONLY),
        ("listAllBudgets", SUPER_ONLY),
        ("listAllQuotas", SUPER_ONLY),
        ("listAllUsageRecords", SUPER_ONLY),
        ("listAllUsers", SUPER_ONLY),
        ("listAllInvitations", SUPER_ONLY),
        ("createOrganisationInvitation", SUPER_ONLY),
        ("resendOrganisationInvitation", SUPER_ONLY),
        ("revokeOrganisationInvitation", SUPER_ONLY),
        // Settings.
        ("getOrganisationSettings", ORG_ADMIN),
        ("updateOrganisationSettings", ORG_ADMIN),
        // Users.
        ("createUser", ORG_ADMIN),
        ("listUsers", ORG_STAFF),
        ("getUser", ORG_STAFF),
        ("updateUser", ORG_ADMIN),
        ("deleteUser", ORG_ADMIN),
        ("approveUser", ORG_ADMIN),
        ("declineUser", ORG_ADMIN),
        // Invitations.
        ("createInvitation", ORG_ADMIN),
        ("listInvitations", ORG_ADMIN),
        ("getInvitation", ORG_ADMIN),
        ("resendInvitation", ORG_ADMIN),
        ("revokeInvitation", ORG_ADMIN),
        // Teams.
        ("createTeam", ORG_ADMIN),
        ("listTeams", ORG_MEMBER),
        ("getTeam", TEAM_MEMBER),
        ("updateTeam", ORG_ADMIN),
        ("deleteTeam", ORG_ADMIN),
        ("addTeamMember", TEAM_MANAGER),
        ("listTeamMembers", TEAM_MEMBER),
        ("updateTeamMember", TEAM_MANAGER),
        ("removeTeamMember", TEAM_MANAGER),
        ("listTeamApiKeys", TEAM_MANAGER),
        // Budgets and quotas (the paths name the team's).
        ("createBudget", TEAM_MANAGER),
        ("listBudgets", ORG_MEMBER),
        ("getBudget", TEAM_MANAGER),
        ("updateBudget", TEAM_MANAGER),
        ("deleteBudget", TEAM_MANAGER),
        ("listBudgetWindows", TEAM_MANAGER),
        ("createQuota", TEAM_MANAGER),
        ("listQuotas", ORG_MEMBER),
        ("getQuota", TEAM_MANAGER),
        ("updateQuota", TEAM_MANAGER),
        ("deleteQuota", TEAM_MANAGER),
        ("listQuotaWindows", TEAM_MANAGER),
        // Providers and their keys: managers read previews.
        ("createProvider", ORG_ADMIN),
        ("listProviders", ORG_STAFF),
        ("getProvider", ORG_STAFF),
        ("updateProvider", ORG_ADMIN),
        ("deleteProvider", ORG_ADMIN),
        ("createProviderKey", ORG_ADMIN),
        ("listProviderKeys", ORG_STAFF),
        ("getProviderKey", ORG_STAFF),
        ("deleteProviderKey", ORG_ADMIN),
        ("revokeProviderKey", ORG_ADMIN),
        ("unrevokeProviderKey", ORG_ADMIN),
        // Models: everyone of the organisation reads.
        ("createModel", ORG_ADMIN),
        ("listModels", ORG_MEMBER),
        ("getModel", ORG_MEMBER),
        ("updateModel", ORG_ADMIN),
        ("deleteModel", ORG_ADMIN),
        ("listModelApiKeyAccess", ORG_ADMIN),
        ("grantModelToApiKeys", ORG_ADMIN),
        // API keys (the paths name the team's TEAM key).
        ("createApiKey", TEAM_MANAGER),
        ("listApiKeys", ORG_MEMBER),
        ("getApiKey", TEAM_MANAGER),
        ("updateApiKey", TEAM_MANAGER),
        ("deleteApiKey", TEAM_MANAGER),
        ("rotateApiKey", TEAM_MANAGER),
        ("revokeApiKey", TEAM_MANAGER),
        ("unrevokeApiKey", TEAM_MANAGER),
        ("listApiKeyRotations", TEAM_MANAGER),
        ("listApiKeyModelAccess", TEAM_MANAGER),
        ("grantModelsToApiKey", TEAM_MANAGER),
        ("revokeModelFromApiKey", TEAM_MANAGER),
        ("getApiKeyRouting", TEAM_MANAGER),
        ("putApiKeyRouting", TEAM_MANAGER),
        ("getProviderHealth", ORG_STAFF),
        // Usage records (the path names the user's record on the team's key).
        ("listUsageRecords", ORG_MEMBER),
        ("getUsageRecord", OWN_RECORD),
        // MCP servers: a catalog everyone of the organisation reads; grants like model grants.
        ("createMcpServer", ORG_ADMIN),
        ("listMcpServers", ORG_MEMBER),
        ("listAllMcpServers", SUPER_ONLY),
        ("getMcpServer", ORG_MEMBER),
        ("updateMcpServer", ORG_ADMIN),
        ("deleteMcpServer", ORG_ADMIN),
        ("listMcpServerApiKeyAccess", ORG_ADMIN),
        ("grantMcpServerToApiKeys", ORG_ADMIN),
        ("listApiKeyMcpAccess", TEAM_MANAGER),
        ("grantMcpServersToApiKey", TEAM_MANAGER),
        ("revokeMcpServerFromApiKey", TEAM_MANAGER),
        ("listMcpUsageRecords", ORG_MEMBER),
        ("listAllMcpUsageRecords", SUPER_ONLY),
        // Reports: everyone, over what they may see.
        ("getUsageSummary", ORG_MEMBER),
        ("getDashboardCounts", ORG_MEMBER),
        ("getInvoice", ORG_MEMBER),
        ("listAuditLog", ORG_ADMIN),
        ("listAllAuditLog", SUPER_ONLY),
        // Notification channels and alerts.
        ("createNotificationChannel", ORG_ADMIN),
        ("listNotificationChannels", ORG_ADMIN),
        ("getNotificationChannel", ORG_ADMIN),
        ("updateNotificationChannel", ORG_ADMIN),
        ("deleteNotificationChannel", ORG_ADMIN),
        ("testNotificationChannel", ORG_ADMIN),
        ("listAlerts", ORG_ADMIN),
        ("getAlert", ORG_ADMIN),
    ];
    let mut table = BTreeMap::new();
    for (id, outcomes) in rows {
        assert!(
            table.insert(*id, *outcomes).is_none(),
            "{id} is listed twice"
        );
    }
    table
}

/// Everything a route may name, in one organisation, plus the callers' credentials.
struct World {
    h: Harness,
    ids: HashMap<&'static str, String>,
    tokens: HashMap<&'static str, String>,
}

impl World {
    /// A world on the suite's database.
    async fn new() -> Self {
        Self::build(harness().await).await
    }

    /// A world on in-memory SQLite: the role walk builds many worlds, and what it checks (the rules)
    /// does not depend on the backend; the other tests here run on the suite's backend.
    async fn on_sqlite() -> Self {
        let pool = odock_store::connect_in_memory().await.unwrap();
        Self::build(harness_on(pool)).await
    }

    async fn build(h: Harness) -> Self {
        let org = h
            .create("/api/admin/organisations", json!({"name": "Acme"}))
            .await;
        let other_org = h
            .create("/api/admin/organisations", json!({"name": "Globex"}))
            .await;
        let base = format!("/api/organisations/{org}");
        let team = h
            .create(&format!("{base}/teams"), json!({"name": "core"}))
            .await;
        let other_team = h
            .create(&format!("{base}/teams"), json!({"name": "edge"}))
            .await;

        let admin = h.user(Some(&org), "admin@acme.test", Role::OrgAdmin).await;
        let manager = h.user(Some(&org), "manager@acme.test", Role::Manager).await;
        let other_manager = h.user(Some(&org), "other@acme.test", Role::Manager).await;
        let user = h.user(Some(&org), "user@acme.test", Role::User).await;
        let outsider = h
            .user(Some(&other_org), "admin@globex.test", Role::OrgAdmin)
            .await;
        for (team, user, role) in [
            (&team, &manager, "MANAGER"),
            (&other_team, &other_manager, "MANAGER"),
            (&team, &user, "MEMBER"),
        ] {
            let added = h
                .admin(
                    Method::POST,
                    &format!("{base}/teams/{team}/members"),
                    Some(&json!({"userId": user, "role": role})),
                )
                .await;
            assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        }
        let pending = h
            .create(
                &format!("{base}/users"),
                json!({"email": "pending@acme.test", "role": "USER"}),
            )
            .await;

        let provider = h
            .create(
                &format!("{base}/providers"),
                json!({"type": "OPENAI", "name": "OpenAI"}),
            )
            .await;
        let provider_key = h
            .create(
                &format!("{base}/providers/{provider}/keys"),
                json!({"name": "primary", "key": "sk-upstream-secret-0123456789"}),
            )
            .await;
        let model = h
            .create(
                &format!("{base}/models"),
                json!({"name": "fast", "slug": "gpt-4o-mini", "type": "chat", "providerId": provider}),
            )
            .await;
        let team_key = h
            .create(
                &format!("{base}/apikeys"),
                json!({"name": "team", "type": "TEAM", "teamId": team}),
            )
            .await;
        let user_key = h
            .create(
                &format!("{base}/apikeys"),
                json!({"name": "mine", "type": "USER", "userId": user}),
            )
            .await;
        let grant = h
            .admin(
                Method::POST,
                &format!("{base}/apikeys/{team_key}/model-access"),
                Some(&json!({"modelIds": [model]})),
            )
            .await;
        assert_eq!(grant.status, StatusCode::OK, "{}", grant.text);
        let budget = h
            .create(
                &format!("{base}/budgets"),
                json!({"name": "team", "ownerType": "TEAM", "ownerId": team, "amountNanos": 1_000_000, "period": "MONTHLY"}),
            )
            .await;
        let quota = h
            .create(
                &format!("{base}/quotas"),
                json!({"name": "team", "ownerType": "TEAM", "ownerId": team, "metric": "REQUESTS", "limit": 10, "period": "DAILY"}),
            )
            .await;
        let record = insert_record(&h, &org, &team_key, Some(&team), Some(&user)).await;
        let mcp = h
            .create(
                &format!("{base}/mcp-servers"),
                json!({"name": "Docs", "slug": "docs", "transport": "STREAMABLE_HTTP", "endpointUrl": "http://127.0.0.1:9/mcp"}),
            )
            .await;
        let mcp_grant = h
            .admin(
                Method::POST,
                &format!("{base}/apikeys/{team_key}/mcp-access"),
                Some(&json!({"mcpServerIds": [mcp]})),
            )
            .await;
        assert_eq!(mcp_grant.status, StatusCode::OK, "{}", mcp_grant.text);
        let invitation = h
            .admin(
                Method::POST,
                &format!("{base}/invitations"),
                Some(&json!({"email": "invitee@acme.test", "role": "USER"})),
            )
            .await;
        assert_eq!(
            invitation.status,
            StatusCode::CREATED,
            "{}",
            invitation.text
        );
        let new_org_invitation = h
            .create(
                "/api/admin/invitations",
                json!({"email": "founder@initech.test", "organisationName": "Initech"}),
            )
            .await;
        let channel = h
            .create(
                &format!("{base}/notification-channels"),
                json!({"name": "ops", "type": "EMAIL", "emails": ["ops@acme.test"]}),
            )
            .await;
        let alert = h
            .admin(
                Method::POST,
                &format!("{base}/notification-channels/{channel}/test"),
                None,
            )
            .await;
        assert_eq!(alert.status, StatusCode::OK, "{}", alert.text);

        let mut tokens = HashMap::new();
        for (name, id) in [
            ("orgAdmin", &admin),
            ("manager", &manager),
            ("otherManager", &other_manager),
            ("user", &user),
            ("outsider", &outsider),
        ] {
            tokens.insert(name, h.session(id).await);
        }
        let ids = HashMap::from([
            ("org", org),
            ("team", team),
            ("otherTeam", other_team),
            ("user", user),
            ("otherManager", other_manager),
            ("pending", pending),
            ("provider", provider),
            ("providerKey", provider_key),
            ("model", model),
            ("teamKey", team_key),
            ("userKey", user_key),
            ("budget", budget),
            ("quota", quota),
            ("record", record),
            ("mcp", mcp),
            (
                "invitation",
                invitation.body["id"].as_str().unwrap().to_owned(),
            ),
            (
                "invitationToken",
                invitation.body["token"].as_str().unwrap().to_owned(),
            ),
            ("newOrgInvitation", new_org_invitation),
            ("channel", channel),
            ("alert", alert.body["id"].as_str().unwrap().to_owned()),
        ]);
        World { h, ids, tokens }
    }

    fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }

    fn token(&self, who: Who) -> Option<String> {
        match who {
            Who::Super => Some(odock_admin::testing::ADMIN_TOKEN.to_owned()),
            Who::OrgAdmin => Some(self.tokens["orgAdmin"].clone()),
            Who::Manager => Some(self.tokens["manager"].clone()),
            Who::OtherManager => Some(self.tokens["otherManager"].clone()),
            Who::User => Some(self.tokens["user"].clone()),
            Who::Outsider => Some(self.tokens["outsider"].clone()),
            Who::Anonymous => None,
        }
    }

    /// The concrete path of a route template, naming this world's objects; `Err` names a path
    /// parameter the world has no object for.
    fn path(&self, template: &str) -> Result<String, String> {
        let segments: Vec<&str> = template.split('/').collect();
        let mut out = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                out.push((*segment).to_owned());
                continue;
            };
            let collection = segments[i - 1];
            let admin_path = template.starts_with("/api/admin/");
            let name = match (collection, param) {
                ("organisations", _) => "org",
                ("teams", "id") => "team",
                ("members", "userId") => "user",
                ("budgets", "id") => "budget",
                ("quotas", "id") => "quota",
                ("providers", "id") => "provider",
                ("keys", "keyId") => "providerKey",
                ("models", "id") | ("model-access", "modelId") => "model",
                ("apikeys", "id") => "teamKey",
                ("usage-records", "id") => "record",
                ("mcp-servers", "id") | ("mcp-access", "mcpServerId") => "mcp",
                ("users", "id") => "pending",
                ("invitations", "id") if admin_path => "newOrgInvitation",
                ("invitations", "id") => "invitation",
                ("invitations", "token") => "invitationToken",
                ("notification-channels", "id") => "channel",
                ("alerts", "id") => "alert",
                _ => {
                    return Err(format!(
                        "no fixture for {{{param}}} in {template}: add one to World::path"
                    ))
                }
            };
            out.push(self.id(name).to_owned());
        }
        Ok(out.join("/"))
    }

    /// A body the route accepts from a caller who may call it.
    fn body(&self, operation_id: &str) -> Option<Value> {
        let team = self.id("team");
        let body = match operation_id {
            "login" => json!({"email": "user@acme.test", "password": PASSWORD}),
            "changePassword" => {
                json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"})
            }
            "acceptInvitation" => json!({"name": "Invitee", "password": "invitee passphrase"}),
            "createOrganisation" => json!({"name": "Initrode"}),
            "updateOrganisation" | "updateOrganisationSettings" => {
                json!({"contact": "ops@acme.test"})
            }
            "createOrganisationInvitation" => {
                json!({"email": "ceo@umbrella.test", "organisationName": "Umbrella"})
            }
            "createUser" => json!({"email": "new@acme.test", "role": "USER"}),
            "updateUser" => json!({"name": "Renamed"}),
            "createInvitation" => json!({"email": "someone@acme.test", "role": "MANAGER"}),
            "createTeam" => json!({"name": "new team"}),
            "updateTeam" => json!({"name": "renamed team"}),
            "addTeamMember" => json!({"userId": self.id("otherManager"), "role": "MEMBER"}),
            "updateTeamMember" => json!({"role": "MANAGER"}),
            "createBudget" => json!({
                "name": "more", "ownerType": "TEAM", "ownerId": team, "amountNanos": 5,
                "period": "WEEKLY"
            }),
            "updateBudget" | "updateQuota" | "updateApiKey" | "updateProvider" => {
                json!({"name": "renamed"})
            }
            "createQuota" => json!({
                "name": "more", "ownerType": "TEAM", "ownerId": team, "metric": "TOKENS",
                "limit": 5, "period": "WEEKLY"
            }),
            "createProvider" => json!({"type": "ANTHROPIC", "name": "Anthropic"}),
            "createProviderKey" => json!({"name": "second", "key": "sk-another-upstream-key-42"}),
            "createNotificationChannel" => {
                json!({"name": "hooks", "type": "EMAIL", "emails": ["hooks@acme.test"]})
            }
            "updateNotificationChannel" => json!({"name": "renamed"}),
            "createModel" => json!({
                "name": "smart", "slug": "gpt-4o", "type": "chat", "providerId": self.id("provider")
            }),
            "updateModel" => json!({"slug": "gpt-4.1-mini"}),
            "grantModelToApiKeys" => json!({"apiKeyIds": [self.id("teamKey")]}),
            "createApiKey" => json!({"name": "another", "type": "TEAM", "teamId": team}),
            "grantModelsToApiKey" => json!({"modelIds": [self.id("model")]}),
            "putApiKeyRouting" => json!({"policies": []}),
            "createMcpServer" => json!({
                "name": "Search", "slug": "search", "transport": "STREAMABLE_HTTP",
                "endpointUrl": "http://127.0.0.1:9/search"
            }),
            "updateMcpServer" => json!({"description": "internal docs"}),
            "grantMcpServerToApiKeys" => json!({"apiKeyIds": [self.id("teamKey")]}),
            "grantMcpServersToApiKey" => json!({"mcpServerIds": [self.id("mcp")]}),
            _ => return None,
        };
        Some(body)
    }
}

async fn insert_record(
    h: &Harness,
    org: &str,
    key: &str,
    team: Option<&str>,
    user: Option<&str>,
) -> String {
    let record = UsageRecord {
        id: UsageRecordId::generate(),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new(org),
        team_id: team.map(TeamId::new),
        user_id: user.map(UserId::new),
        api_key_id: ApiKeyId::new(key),
        provider: "openai".into(),
        model: Some("fast".into()),
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: 200,
        error_code: None,
        latency_ms: 120,
        gateway_overhead_us: 300,
        stream: false,
        tokens: TokenUsage {
            input: 10,
            output: 20,
            ..TokenUsage::default()
        },
        billable_tokens: 30,
        cost_nanos_usd: 1_000,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: odock_core::UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: odock_core::RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
            received_at: Utc::now(),
            provider_type: None,
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: Utc::now(),
        ledger_charges: Vec::new(),
    };
    let id = record.id.to_string();
    let mut conn = h.pool.acquire().await.unwrap();
    odock_store::usage_records::insert_batch(&mut conn, &[record], &[])
        .await
        .unwrap();
    id
}

fn matches(outcome: Outcome, status: StatusCode) -> bool {
    match outcome {
        Outcome::Ok => status.is_success(),
        Outcome::Status(code) => status.as_u16() == code,
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_role_table_says() {
    let expected = expected();
    let operations = operations();
    let mut failures = Vec::new();

    // One world serves every call until a write succeeds; then the next call gets a fresh one, so
    // an earlier success (a delete) cannot change what a later caller sees. Refused calls and reads
    // change nothing.
    let mut world = World::on_sqlite().await;

    let listed: Vec<&str> = operations.iter().map(|o| o.operation_id).collect();
    for id in expected.keys() {
        if !listed.contains(id) {
            failures.push(format!(
                "{id}: in the expected table but not in the route table"
            ));
        }
    }

    for operation in &operations {
        let Some(outcomes) = expected.get(operation.operation_id) else {
            failures.push(format!(
                "{} {} ({}): no row in the expected role table",
                operation.verb.as_str(),
                operation.path,
                operation.operation_id
            ));
            continue;
        };
        if operation.access == Access::Unassigned {
            failures.push(format!("{}: no access rule", operation.operation_id));
        }
        for (who, outcome) in WHO.iter().zip(outcomes) {
            let path = match world.path(operation.path) {
                Ok(path) => path,
                Err(missing) => {
                    failures.push(format!("{}: {missing}", operation.operation_id));
                    break;
                }
            };
            let body = world.body(operation.operation_id);
            let token = world.token(*who);
            let reply = world
                .h
                .call(
                    operation.verb.method(),
                    &path,
                    token.as_deref(),
                    body.as_ref(),
                )
                .await;
            let wrote =
                reply.status.is_success() && operation.verb != odock_admin::api::routes::Verb::Get;
            if !matches(*outcome, reply.status) {
                failures.push(format!(
                    "{} as {who:?}: expected {outcome:?}, got {} {}",
                    operation.operation_id, reply.status, reply.text
                ));
            }
            if !reply.status.is_success() {
                // Refusals are the admin API's JSON errors with the documented codes.
                let code = reply.body["error"]["code"].as_str().unwrap_or_default();
                let want = match reply.status.as_u16() {
                    401 => Some("unauthorized"),
                    403 => Some("forbidden"),
                    404 => Some("not_found"),
                    _ => None,
                };
                if let Some(want) = want {
                    if code != want {
                        failures.push(format!(
                            "{} as {who:?}: code {code}, want {want}",
                            operation.operation_id
                        ));
                    }
                }
            }
            if wrote {
                world = World::on_sqlite().await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_openapi_document_states_each_operations_access_rule() {
    let operations = operations();
    let document = openapi::document(&operations);
    for operation in &operations {
        let described = &document["paths"][operation.path][operation.verb.as_str()];
        let description = described["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(operation.access.describe()),
            "{}: {description}",
            operation.operation_id
        );
    }
}

/// Lists a role only partly sees hold exactly what it may see.
#[tokio::test]
async fn partly_visible_lists_are_filtered_by_role() {
    let w = World::new().await;
    let org = w.id("org");
    let base = format!("/api/organisations/{org}");
    // An ORGANISATION key, a TEAM key of the other team, another user's key, an ORG budget.
    let org_key =
        w.h.create(
            &format!("{base}/apikeys"),
            json!({"name": "org", "type": "ORGANISATION"}),
        )
        .await;
    let other_team_key =
        w.h.create(
            &format!("{base}/apikeys"),
            json!({"name": "edge", "type": "TEAM", "teamId": w.id("otherTeam")}),
        )
        .await;
    w.h.create(
        &format!("{base}/budgets"),
        json!({"name": "org", "ownerType": "ORG", "amountNanos": 9, "period": "MONTHLY"}),
    )
    .await;
    w.h.create(
        &format!("{base}/budgets"),
        json!({"name": "mine", "ownerType": "APIKEY", "ownerId": w.id("userKey"), "amountNanos": 9, "period": "MONTHLY"}),
    )
    .await;
    insert_record(&w.h, org, &org_key, None, None).await;
    insert_record(&w.h, org, &other_team_key, Some(w.id("otherTeam")), None).await;

    let ids = |reply: &odock_admin::testing::Answer, field: &str| -> Vec<String> {
        let mut ids: Vec<String> = reply.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", reply.text))
            .iter()
            .map(|item| item[field].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&str>| {
        v.sort();
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let get = |who: Who, path: String| {
        let token = w.token(who);
        let h = &w.h;
        async move { h.call(Method::GET, &path, token.as_deref(), None).await }
    };

    // Keys: the admin sees all four, the manager its team's, the user their own.
    let keys = format!("{base}/apikeys");
    assert_eq!(ids(&get(Who::OrgAdmin, keys.clone()).await, "id").len(), 4);
    assert_eq!(
        ids(&get(Who::Manager, keys.clone()).await, "id"),
        sorted(vec![w.id("teamKey")])
    );
    assert_eq!(
        ids(&get(Who::OtherManager, keys.clone()).await, "id"),
        sorted(vec![&other_team_key])
    );
    assert_eq!(
        ids(&get(Who::User, keys.clone()).await, "id"),
        sorted(vec![w.id("userKey")])
    );
    // Paging through a filtered list still visits every visible item once.
    let first = get(Who::User, format!("{keys}?limit=1")).await;
    assert_eq!(ids(&first, "id"), sorted(vec![w.id("userKey")]));
    assert!(
        first.body["nextCursor"].is_null() || {
            let next = first.body["nextCursor"].as_str().unwrap_or_default();
            ids(
                &get(Who::User, format!("{keys}?limit=1&cursor={next}")).await,
                "id",
            )
            .is_empty()
        }
    );

    // Budgets: the team's for its manager, the one on the user's key for the user.
    let budgets = format!("{base}/budgets");
    assert_eq!(
        ids(&get(Who::OrgAdmin, budgets.clone()).await, "name").len(),
        3
    );
    assert_eq!(
        ids(&get(Who::Manager, budgets.clone()).await, "name"),
        ["team"]
    );
    assert_eq!(
        ids(&get(Who::User, budgets.clone()).await, "name"),
        ["mine"]
    );
    assert!(ids(&get(Who::OtherManager, budgets).await, "name").is_empty());

    // Quotas likewise.
    let quotas = format!("{base}/quotas");
    assert_eq!(
        ids(&get(Who::Manager, quotas.clone()).await, "name"),
        ["team"]
    );
    assert!(ids(&get(Who::User, quotas).await, "name").is_empty());

    // Teams: the ones the caller belongs to.
    let teams = format!("{base}/teams");
    assert_eq!(
        ids(&get(Who::OrgAdmin, teams.clone()).await, "name"),
        ["core", "edge"]
    );
    assert_eq!(ids(&get(Who::User, teams.clone()).await, "name"), ["core"]);
    assert_eq!(ids(&get(Who::OtherManager, teams).await, "name"), ["edge"]);

    // Usage records: the team's for its manager, their own for the user.
    let usage = format!("{base}/usage-records");
    assert_eq!(ids(&get(Who::OrgAdmin, usage.clone()).await, "id").len(), 3);
    assert_eq!(
        ids(&get(Who::Manager, usage.clone()).await, "id"),
        sorted(vec![w.id("record")])
    );
    assert_eq!(
        ids(&get(Who::User, usage.clone()).await, "id"),
        sorted(vec![w.id("record")])
    );
    // Asking for someone else's records yields nothing rather than an error.
    let other_user = format!("{usage}?userId={}", w.id("pending"));
    assert!(ids(&get(Who::User, other_user).await, "id").is_empty());
    assert_eq!(ids(&get(Who::OtherManager, usage).await, "id").len(), 1);

    // A team's own keys: only its TEAM keys.
    let team_keys = get(
        Who::Manager,
        format!("{base}/teams/{}/apikeys", w.id("team")),
    )
    .await;
    assert_eq!(ids(&team_keys, "id"), sorted(vec![w.id("teamKey")]));

    // Single objects: the team's budget for its manager, the user's record for the user.
    let budget = format!("{base}/budgets/{}", w.id("budget"));
    assert_eq!(
        get(Who::Manager, budget.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(get(Who::User, budget).await.status, StatusCode::FORBIDDEN);
    let record = format!("{base}/usage-records/{}", w.id("record"));
    assert_eq!(get(Who::User, record.clone()).await.status, StatusCode::OK);
    assert_eq!(
        get(Who::OtherManager, record).await.status,
        StatusCode::FORBIDDEN
    );

    // A USER reads their own key but not the team's.
    let own = get(Who::User, format!("{base}/apikeys/{}", w.id("userKey"))).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let rotate =
        w.h.call(
            Method::POST,
            &format!("{base}/apikeys/{}/rotate", w.id("userKey")),
            w.token(Who::User).as_deref(),
            None,
        )
        .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN, "{}", rotate.text);
    // A manager may not create a key for another team, nor an ORGANISATION key.
    for body in [
        json!({"name": "x", "type": "TEAM", "teamId": w.id("otherTeam")}),
        json!({"name": "x", "type": "ORGANISATION"}),
    ] {
        let reply =
            w.h.call(
                Method::POST,
                &keys,
                w.token(Who::Manager).as_deref(),
                Some(&body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    }
}
