//! Authorisation of the admin API: the one layer that decides, for every route, whether the caller
//! may go on.
//!
//! Each operation of the route table carries an [`Access`] rule. [`guard`] wraps the operation's
//! handler with a middleware that authenticates the caller ([`super::auth::authenticate`]),
//! evaluates the rule against the caller's [`AdminPrincipal`], the path's `organisationId` and the
//! object the path names (`{id}`), and either answers the refusal or hands the principal to the
//! handler in the request extensions (lists a role only partly sees use it to filter, see
//! [`Visibility`]).
//!
//! Outcomes, the same for every route:
//! - no or an unknown credential → 401 `unauthorized`;
//! - an organisation-scoped path of another organisation, or an object the path names that does not
//!   exist in the organisation → 404 `not_found` (existence never leaks across organisations);
//! - an action the caller's role does not allow on something it can see → 403 `forbidden`;
//!   `/api/admin/*` is 403 for anyone but SUPER_ADMIN.
//!
//! SUPER_ADMIN (and the static `ODOCK_ADMIN_TOKEN`) passes every rule. The rules, by role
//! (DECISIONS.md "Roles"): ORG_ADMIN everything in their organisation; MANAGER reads providers
//! (previews), models, MCP servers and the teams it belongs to, and manages the members, TEAM keys,
//! key grants, budgets and quotas of the teams it is a team MANAGER of; USER reads models and MCP
//! servers and sees its own keys, budgets, quotas and usage.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use crate::auth::access::{self, KeyOwner, Memberships, RuleOwner, RuleTable};
use crate::services::{api_keys, AdminError, Page, PageRequest, MAX_LIMIT};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::RequestExt;
use odock_core::{ApiKeyType, OwnerType, Role};
use serde_json::Value;

use super::auth::authenticate;
use super::auth_settings::AuthSettings;
use super::error::ApiError;
pub use super::principal::AdminPrincipal;
use super::AdminState;

/// Whether a rule allows reading or also changing the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Reading the object.
    Read,
    /// Changing or deleting the object.
    Manage,
}

/// Who may call an operation. Every operation of the route table has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No rule was given: only SUPER_ADMIN passes (fail closed), and the RBAC test fails.
    Unassigned,
    /// No credentials needed (the OpenAPI document, sign-in, invitation acceptance).
    Public,
    /// Any signed-in caller (`/api/auth/me`, sign-out, password change).
    SignedIn,
    /// SUPER_ADMIN only (`/api/admin/*`).
    SuperAdmin,
    /// ORG_ADMIN of the path's organisation.
    OrgAdmin,
    /// ORG_ADMIN or MANAGER of the organisation: provider and provider-key reads (previews only),
    /// the user directory.
    OrgStaff,
    /// Anyone of the organisation: the catalog (models, MCP servers).
    OrgMember,
    /// Anyone of the organisation; the handler shows only what the caller may see ([`Visibility`]).
    OrgFiltered,
    /// The team `{id}`: ORG_ADMIN, or any member of the team (Read) / its team MANAGER (Manage).
    Team(Op),
    /// The user `{id}`: ORG_ADMIN and MANAGER read, ORG_ADMIN manages; everyone reads themself.
    User(Op),
    /// The API key `{id}`: ORG_ADMIN; the team MANAGER for a TEAM key of its team; the owner of a
    /// USER key reads it.
    ApiKey(Op),
    /// Creating an API key (body `type`, `teamId`): ORG_ADMIN, or a team MANAGER for a TEAM key of its
    /// team. USER does not create keys.
    NewApiKey,
    /// The budget or quota `{id}`: ORG_ADMIN; a team MANAGER for its team's rules (TEAM, or APIKEY of a
    /// TEAM key of its team); the owner reads USER rules and rules of their USER keys.
    Rule(RuleTable, Op),
    /// Creating a budget or quota (body `ownerType`, `ownerId`): ORG_ADMIN, or a team MANAGER for its
    /// team's rules.
    NewRule,
    /// The usage record `{id}`: ORG_ADMIN; a team MANAGER for its team's records; the user whose
    /// record it is.
    UsageRecord,
}

impl Access {
    /// How the rule reads in the OpenAPI document.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Unassigned => "SUPER_ADMIN only (no rule assigned).",
            Access::Public => "Public: no credentials.",
            Access::SignedIn => "Any signed-in user or the admin token.",
            Access::SuperAdmin => "SUPER_ADMIN only.",
            Access::OrgAdmin => "ORG_ADMIN of the organisation (or SUPER_ADMIN).",
            Access::OrgStaff => "ORG_ADMIN or MANAGER of the organisation (or SUPER_ADMIN).",
            Access::OrgMember => "Any user of the organisation (or SUPER_ADMIN).",
            Access::OrgFiltered => {
                "Any user of the organisation; the list holds only what the caller may see \
                 (ORG_ADMIN all, MANAGER its teams', USER its own)."
            }
            Access::Team(Op::Read) => "ORG_ADMIN, or a member of the team.",
            Access::Team(Op::Manage) => "ORG_ADMIN, or a team MANAGER of the team.",
            Access::User(Op::Read) => "ORG_ADMIN or MANAGER of the organisation, or the user themself.",
            Access::User(Op::Manage) => "ORG_ADMIN of the organisation.",
            Access::ApiKey(Op::Read) => {
                "ORG_ADMIN; a team MANAGER for TEAM keys of its team; the owner of a USER key."
            }
            Access::ApiKey(Op::Manage) => "ORG_ADMIN; a team MANAGER for TEAM keys of its team.",
            Access::NewApiKey => "ORG_ADMIN; a team MANAGER for a TEAM key of its team.",
            Access::Rule(_, Op::Read) => {
                "ORG_ADMIN; a team MANAGER for its team's rules; the owner of USER rules and of \
                 rules on their keys."
            }
            Access::Rule(_, Op::Manage) => "ORG_ADMIN; a team MANAGER for its team's rules.",
            Access::NewRule => "ORG_ADMIN; a team MANAGER for a rule owned by its team or a TEAM key of it.",
            Access::UsageRecord => {
                "ORG_ADMIN; a team MANAGER for its team's records; the user the record is attributed to."
            }
        }
    }
}

/// Wraps an operation's handler with its rule. Public operations are left as they are.
pub fn guard(
    handler: MethodRouter<AdminState>,
    access: Access,
    state: &AdminState,
    settings: &AuthSettings,
) -> MethodRouter<AdminState> {
    if access == Access::Public {
        return handler;
    }
    let guard = Guard {
        state: state.clone(),
        settings: settings.clone(),
        access,
    };
    handler.route_layer(from_fn_with_state(guard, enforce))
}

#[derive(Clone)]
struct Guard {
    state: AdminState,
    settings: AuthSettings,
    access: Access,
}

/// Bodies the layer reads to decide a create (`NewApiKey`, `NewRule`) are admin objects: small.
const MAX_PEEK_BYTES: usize = 1024 * 1024;

async fn enforce(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let client_ip = request
        .extensions()
        .get::<odock_core::layers::ClientIp>()
        .map(|ip| ip.0);
    let principal =
        match authenticate(&guard.state, &guard.settings, request.headers(), client_ip).await {
            Ok(principal) => principal,
            Err(refusal) => return refusal.into_response(),
        };
    let params = match request
        .extract_parts::<Path<HashMap<String, String>>>()
        .await
    {
        Ok(Path(params)) => params,
        Err(_) => HashMap::new(),
    };
    let needs_body =
        matches!(guard.access, Access::NewApiKey | Access::NewRule) && !principal.is_super_admin();
    let body = if needs_body {
        let (parts, body) = request.into_parts();
        let bytes = match to_bytes(body, MAX_PEEK_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => return ApiError::PayloadTooLarge.into_response(),
        };
        let value = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        request = Request::from_parts(parts, Body::from(bytes));
        value
    } else {
        Value::Null
    };
    let decision = Decision {
        state: &guard.state,
        principal: &principal,
        params: &params,
        body: &body,
    };
    if let Err(refusal) = decision.check(guard.access).await {
        return refusal.into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// One evaluation of a rule.
struct Decision<'a> {
    state: &'a AdminState,
    principal: &'a AdminPrincipal,
    params: &'a HashMap<String, String>,
    body: &'a Value,
}

fn forbidden() -> ApiError {
    ApiError::Forbidden("your role does not allow this".into())
}

fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("{what} not found"))
}

fn db(error: sqlx::Error) -> ApiError {
    super::error::internal(&error)
}

impl Decision<'_> {
    async fn check(&self, access: Access) -> Result<(), ApiError> {
        let principal = self.principal;
        if principal.is_super_admin() {
            return Ok(());
        }
        let organisation = match access {
            Access::Public | Access::SignedIn => return Ok(()),
            Access::Unassigned | Access::SuperAdmin => return Err(forbidden()),
            _ => self.organisation()?,
        };
        let role = principal.role;
        match access {
            Access::Public | Access::SignedIn | Access::Unassigned | Access::SuperAdmin => Ok(()),
            Access::OrgAdmin => allow(role == Role::OrgAdmin),
            Access::OrgStaff => allow(matches!(role, Role::OrgAdmin | Role::Manager)),
            Access::OrgMember | Access::OrgFiltered => Ok(()),
            Access::Team(op) => self.team(organisation, op).await,
            Access::User(op) => self.user(organisation, op).await,
            Access::ApiKey(op) => self.api_key(organisation, op).await,
            Access::NewApiKey => self.new_api_key(organisation).await,
            Access::Rule(table, op) => self.rule(organisation, table, op).await,
            Access::NewRule => self.new_rule(organisation).await,
            Access::UsageRecord => self.usage_record(organisation).await,
        }
    }

    /// The path's organisation, which must be the caller's (else 404).
    fn organisation(&self) -> Result<&str, ApiError> {
        let organisation = self
            .params
            .get("organisationId")
            .map(String::as_str)
            .unwrap_or_default();
        if self.principal.in_organisation(organisation) {
            Ok(organisation)
        } else {
            Err(not_found("organisation"))
        }
    }

    fn id(&self) -> &str {
        self.params
            .get("id")
            .map(String::as_str)
            .unwrap_or_default()
    }

    async fn memberships(&self) -> Result<Memberships, ApiError> {
        match &self.principal.user_id {
            Some(user) => access::memberships(&self.state.pool, user)
                .await
                .map_err(db),
            None => Ok(Memberships::default()),
        }
    }

    async fn team(&self, organisation: &str, op: Op) -> Result<(), ApiError> {
        let team = self.id();
        if !access::team_exists(&self.state.pool, organisation, team)
            .await
            .map_err(db)?
        {
            return Err(not_found("team"));
        }
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        let memberships = self.memberships().await?;
        allow(match op {
            Op::Read => memberships.belongs_to(team),
            Op::Manage => memberships.manages(team),
        })
    }

    async fn user(&self, organisation: &str, op: Op) -> Result<(), ApiError> {
        let user = self.id();
        if !access::user_exists(&self.state.pool, organisation, user)
            .await
            .map_err(db)?
        {
            return Err(not_found("user"));
        }
        let role = self.principal.role;
        allow(match op {
            Op::Read => {
                matches!(role, Role::OrgAdmin | Role::Manager) || self.principal.is_user(Some(user))
            }
            Op::Manage => role == Role::OrgAdmin,
        })
    }

    async fn api_key(&self, organisation: &str, op: Op) -> Result<(), ApiError> {
        let owner = access::api_key_owner(&self.state.pool, organisation, self.id())
            .await
            .map_err(db)?
            .ok_or_else(|| not_found("API key"))?;
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        let memberships = self.memberships().await?;
        allow(self.may_key(&owner, &memberships, op))
    }

    fn may_key(&self, owner: &KeyOwner, memberships: &Memberships, op: Op) -> bool {
        let managed_team_key = owner.key_type == ApiKeyType::Team
            && self.principal.role == Role::Manager
            && owner
                .team_id
                .as_deref()
                .is_some_and(|t| memberships.manages(t));
        let own_user_key =
            owner.key_type == ApiKeyType::User && self.principal.is_user(owner.user_id.as_deref());
        match op {
            Op::Read => managed_team_key || own_user_key,
            Op::Manage => managed_team_key,
        }
    }

    async fn new_api_key(&self, _organisation: &str) -> Result<(), ApiError> {
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        if self.principal.role != Role::Manager {
            return Err(forbidden());
        }
        let is_team =
            self.body.get("type").and_then(Value::as_str) == Some(ApiKeyType::Team.as_str());
        let team = self.body.get("teamId").and_then(Value::as_str);
        let memberships = self.memberships().await?;
        allow(is_team && team.is_some_and(|t| memberships.manages(t)))
    }

    async fn rule(&self, organisation: &str, table: RuleTable, op: Op) -> Result<(), ApiError> {
        let what = match table {
            RuleTable::Budgets => "budget",
            RuleTable::Quotas => "quota",
        };
        let owner = access::rule_owner(&self.state.pool, table, organisation, self.id())
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(what))?;
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        let memberships = self.memberships().await?;
        allow(self.may_rule(&owner, &memberships, op))
    }

    fn may_rule(&self, owner: &RuleOwner, memberships: &Memberships, op: Op) -> bool {
        let manager = self.principal.role == Role::Manager;
        let team_rule = manager
            && owner.owner_type == OwnerType::Team
            && owner
                .team_id
                .as_deref()
                .is_some_and(|t| memberships.manages(t));
        let team_key_rule = owner.owner_type == OwnerType::ApiKey
            && owner
                .key
                .as_ref()
                .is_some_and(|key| self.may_key(key, memberships, Op::Manage));
        if team_rule || team_key_rule {
            return true;
        }
        let own_rule = match owner.owner_type {
            OwnerType::User => self.principal.is_user(owner.user_id.as_deref()),
            OwnerType::ApiKey => owner
                .key
                .as_ref()
                .is_some_and(|key| self.may_key(key, memberships, Op::Read)),
            OwnerType::Org | OwnerType::Team => false,
        };
        op == Op::Read && own_rule
    }

    async fn new_rule(&self, organisation: &str) -> Result<(), ApiError> {
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        if self.principal.role != Role::Manager {
            return Err(forbidden());
        }
        let owner_type = self.body.get("ownerType").and_then(Value::as_str);
        let owner_id = self.body.get("ownerId").and_then(Value::as_str);
        let memberships = self.memberships().await?;
        let allowed = match (owner_type, owner_id) {
            (Some("TEAM"), Some(team)) => memberships.manages(team),
            (Some("APIKEY"), Some(key)) => {
                match access::api_key_owner(&self.state.pool, organisation, key)
                    .await
                    .map_err(db)?
                {
                    Some(owner) => self.may_key(&owner, &memberships, Op::Manage),
                    None => false,
                }
            }
            _ => false,
        };
        allow(allowed)
    }

    async fn usage_record(&self, organisation: &str) -> Result<(), ApiError> {
        let owner = access::usage_record_owner(&self.state.pool, organisation, self.id())
            .await
            .map_err(db)?
            .ok_or_else(|| not_found("usage record"))?;
        if self.principal.role == Role::OrgAdmin {
            return Ok(());
        }
        let memberships = self.memberships().await?;
        let team_record = self.principal.role == Role::Manager
            && owner
                .team_id
                .as_deref()
                .is_some_and(|t| memberships.manages(t));
        allow(team_record || self.principal.is_user(owner.user_id.as_deref()))
    }
}

fn allow(allowed: bool) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// What a caller may see of an organisation's partly visible lists (keys, budgets, quotas, usage,
/// teams), derived from its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// SUPER_ADMIN and ORG_ADMIN.
    Everything,
    /// MANAGER and USER: their own objects, and for MANAGER those of the teams it manages.
    Limited {
        /// The caller.
        user_id: String,
        /// Whether the caller's role is MANAGER.
        manager: bool,
        /// The caller's teams.
        memberships: Memberships,
    },
}

impl Visibility {
    /// The visibility of `principal`: everything for SUPER_ADMIN, ORG_ADMIN and the admin token.
    pub async fn of(state: &AdminState, principal: &AdminPrincipal) -> Result<Self, ApiError> {
        match (&principal.role, &principal.user_id) {
            (Role::SuperAdmin | Role::OrgAdmin, _) | (_, None) => Ok(Visibility::Everything),
            (role, Some(user)) => Ok(Visibility::Limited {
                user_id: user.clone(),
                manager: *role == Role::Manager,
                memberships: access::memberships(&state.pool, user).await.map_err(db)?,
            }),
        }
    }

    fn manages(&self, team: Option<&str>) -> bool {
        match self {
            Visibility::Everything => true,
            Visibility::Limited {
                manager,
                memberships,
                ..
            } => *manager && team.is_some_and(|t| memberships.manages(t)),
        }
    }

    fn is_user(&self, user: Option<&str>) -> bool {
        match self {
            Visibility::Everything => true,
            Visibility::Limited { user_id, .. } => user == Some(user_id.as_str()),
        }
    }

    /// Whether the caller sees the whole organisation.
    pub fn sees_everything(&self) -> bool {
        matches!(self, Visibility::Everything)
    }

    /// TEAM keys of managed teams, the caller's USER keys.
    pub fn sees_key(&self, key_type: ApiKeyType, team: Option<&str>, user: Option<&str>) -> bool {
        self.sees_everything()
            || (key_type == ApiKeyType::Team && self.manages(team))
            || (key_type == ApiKeyType::User && self.is_user(user))
    }

    /// Teams the caller belongs to.
    pub fn sees_team(&self, team: &str) -> bool {
        match self {
            Visibility::Everything => true,
            Visibility::Limited { memberships, .. } => memberships.belongs_to(team),
        }
    }

    /// Records of managed teams and the caller's own.
    pub fn sees_record(&self, team: Option<&str>, user: Option<&str>) -> bool {
        self.sees_everything() || self.manages(team) || self.is_user(user)
    }

    /// How to narrow a usage-record query asking for `team` / `user`; `None` when the caller sees
    /// every record. A MANAGER sees the records of every team it manages and its own; a USER its
    /// own. Each visible part, narrowed by what the query asks, is one [`RecordSlice`]; the list is
    /// their union.
    pub fn record_scope(&self, team: Option<&str>, user: Option<&str>) -> Option<RecordScope> {
        let Visibility::Limited {
            user_id,
            manager,
            memberships,
        } = self
        else {
            return None;
        };
        let mut slices = Vec::new();
        if *manager {
            for managed in &memberships.managed {
                if team.is_none_or(|asked| asked == managed) {
                    slices.push(RecordSlice {
                        team: Some(managed.clone()),
                        user: user.map(str::to_owned),
                    });
                }
            }
        }
        if user.is_none_or(|asked| asked == user_id) {
            slices.push(RecordSlice {
                team: team.map(str::to_owned),
                user: Some(user_id.clone()),
            });
        }
        Some(if slices.is_empty() {
            RecordScope::Nothing
        } else {
            RecordScope::Slices(slices)
        })
    }

    /// Rules owned by a managed team or the caller, and rules on keys in `visible_keys`.
    pub fn sees_rule(
        &self,
        owner_type: OwnerType,
        owner_id: Option<&str>,
        visible_keys: &HashSet<String>,
    ) -> bool {
        match owner_type {
            _ if self.sees_everything() => true,
            OwnerType::Org => false,
            OwnerType::Team => self.manages(owner_id),
            OwnerType::User => self.is_user(owner_id),
            OwnerType::ApiKey => owner_id.is_some_and(|key| visible_keys.contains(key)),
        }
    }

    /// The ids of the organisation's keys the caller sees (for rules owned by keys).
    pub async fn visible_keys(
        &self,
        state: &AdminState,
        organisation_id: &str,
    ) -> Result<HashSet<String>, ApiError> {
        let pool = &state.pool;
        let page = collect_visible(
            None,
            usize::MAX,
            |page| async move { api_keys::list(pool, Some(organisation_id), &page).await },
            |key| self.sees_key(key.key_type, key.team_id.as_deref(), key.user_id.as_deref()),
            |key| &key.id,
        )
        .await?;
        Ok(page.data.into_iter().map(|key| key.id).collect())
    }
}

/// How a usage-record list is narrowed for a caller who sees only part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordScope {
    /// The records of any of these slices.
    Slices(Vec<RecordSlice>),
    /// Nothing the query asks for is visible.
    Nothing,
}

/// Records of a team and/or a user (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSlice {
    /// The team (`None`: any).
    pub team: Option<String>,
    /// The user (`None`: any).
    pub user: Option<String>,
}

/// A page of a list ordered by `key` — `(sort value, id)`, descending or ascending — that is the
/// union of several lists fetched one by one (`fetch(slice, cursor, limit)`): each gives at most
/// `limit` items after the cursor, they are merged in order, duplicates (a record of a managed team
/// that is also the caller's) kept once. The next cursor is `<sort value>:<id>` of the last item,
/// the format the store's lists use, so every slice resumes after it.
pub async fn merged_page<T, S, Fetch, Fut, Key>(
    slices: &[S],
    cursor: Option<&str>,
    limit: u32,
    descending: bool,
    mut fetch: Fetch,
    key: Key,
) -> Result<(Vec<T>, Option<String>), sqlx::Error>
where
    Fetch: FnMut(&S, Option<&str>, u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), sqlx::Error>>,
    Key: Fn(&T) -> (i64, &str),
{
    let limit = limit.max(1);
    let mut merged: Vec<T> = Vec::new();
    let mut more = false;
    for slice in slices {
        let (items, next) = fetch(slice, cursor, limit).await?;
        more |= next.is_some();
        merged.extend(items);
    }
    merged.sort_by(|a, b| {
        let order = key(a).cmp(&key(b));
        if descending {
            order.reverse()
        } else {
            order
        }
    });
    merged.dedup_by(|a, b| key(a) == key(b));
    let limit = limit as usize;
    if merged.len() > limit {
        merged.truncate(limit);
        more = true;
    }
    let next = if more {
        merged.last().map(|item| {
            let (created_at, id) = key(item);
            format!("{created_at}:{id}")
        })
    } else {
        None
    };
    Ok((merged, next))
}

/// One page of an id-ordered list holding only the items `keep` accepts.
pub async fn visible_page<T, Fetch, Fut>(
    page: &PageRequest,
    fetch: Fetch,
    keep: impl Fn(&T) -> bool,
    id_of: fn(&T) -> &str,
) -> Result<Page<T>, ApiError>
where
    Fetch: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, AdminError>>,
{
    collect_visible(page.cursor.clone(), page.limit as usize, fetch, keep, id_of).await
}

/// Reads an id-ordered list from `cursor`, a full page at a time, keeping what `keep` accepts
/// until `wanted` items are kept or the list ends. The next cursor is the last kept id, so paging
/// visits every visible item exactly once.
async fn collect_visible<T, Fetch, Fut>(
    mut cursor: Option<String>,
    wanted: usize,
    mut fetch: Fetch,
    keep: impl Fn(&T) -> bool,
    id_of: fn(&T) -> &str,
) -> Result<Page<T>, ApiError>
where
    Fetch: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, AdminError>>,
{
    let mut data = Vec::new();
    loop {
        let batch = fetch(PageRequest::new(cursor.clone(), Some(MAX_LIMIT))).await?;
        for item in batch.data {
            if keep(&item) {
                data.push(item);
                if data.len() == wanted {
                    let next_cursor = data.last().map(|item| id_of(item).to_owned());
                    return Ok(Page { data, next_cursor });
                }
            }
        }
        match batch.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                return Ok(Page {
                    data,
                    next_cursor: None,
                })
            }
        }
    }
}
