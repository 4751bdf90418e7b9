//! `/api/organisations/{organisationId}/budgets` and `/quotas` with their windows, and the
//! cross-organisation `/api/admin/budgets` and `/api/admin/quotas`: one set of handlers over the
//! ledger rule kind (`Budgets`, `Quotas`; the route table instantiates each for both).
//!
//! Every write invalidates the kind's cache (`CacheKind::Budget` or `Quota`) for the organisation,
//! so the ledger reloads its rules.

use crate::services::ledger_rule::{self, RuleKind};
use crate::services::Page;
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use odock_core::{LedgerKind, OrganisationId, WindowTotals};

use super::authz::{visible_page, AdminPrincipal, Visibility};
use super::budgets::OwnerListParams;
use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery};
use super::AdminState;

pub(crate) async fn create<K: RuleKind>(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<K::New>,
) -> Result<(StatusCode, Json<K::Rule>), ApiError> {
    let rule = ledger_rule::create::<K>(&state.pool, &org, input).await?;
    state.invalidate(K::CACHE, &org);
    Ok((StatusCode::CREATED, Json(rule)))
}

/// The rules the caller may see: all for admins, its teams' for a MANAGER, its own and its keys'
/// for anyone.
pub(crate) async fn list<K: RuleKind>(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<K::Rule>>, ApiError> {
    let visibility = Visibility::of(&state, &principal).await?;
    let (pool, filter) = (&state.pool, &params.filter());
    if visibility.sees_everything() {
        return Ok(Json(
            ledger_rule::list::<K>(pool, Some(&org), filter, &params.page()).await?,
        ));
    }
    let keys = visibility.visible_keys(&state, &org).await?;
    let org = org.as_str();
    let page = visible_page(
        &params.page(),
        |page| async move { ledger_rule::list::<K>(pool, Some(org), filter, &page).await },
        |rule| {
            let (owner_type, owner_id) = K::owner(rule);
            visibility.sees_rule(owner_type, owner_id, &keys)
        },
        |rule| (K::ROWS.id_of)(rule),
    )
    .await?;
    Ok(Json(page))
}

pub(crate) async fn list_all<K: RuleKind>(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<K::Rule>>, ApiError> {
    let org = params.organisation_id.as_deref();
    let (filter, page) = (params.filter(), params.page());
    Ok(Json(
        ledger_rule::list::<K>(&state.pool, org, &filter, &page).await?,
    ))
}

pub(crate) async fn get<K: RuleKind>(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<K::Rule>, ApiError> {
    Ok(Json(K::ROWS.get(&state.pool, &org, &id).await?))
}

pub(crate) async fn update<K: RuleKind>(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<K::Patch>,
) -> Result<Json<K::Rule>, ApiError> {
    let rule = ledger_rule::update::<K>(&state.pool, &org, &id, patch).await?;
    state.invalidate(K::CACHE, &org);
    Ok(Json(rule))
}

pub(crate) async fn delete<K: RuleKind>(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    K::ROWS.delete(&state.pool, &org, &id).await?;
    state.invalidate(K::CACHE, &org);
    Ok(StatusCode::NO_CONTENT)
}

/// The rule's windows; those the ledger is counting show its live totals (holds included),
/// which are ahead of the stored ones.
pub(crate) async fn windows<K: RuleKind>(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<K::Window>>, ApiError> {
    let mut windows = ledger_rule::windows::<K>(&state.pool, &org, &id).await?;
    for window in &mut windows {
        let (start, end, totals) = K::window_totals(window);
        if let Some(live) = live_totals(&state, &org, K::LEDGER, &id, start, end).await {
            *totals.0 = live.used;
            *totals.1 = live.reserved;
        }
    }
    Ok(Json(Page::all(windows)))
}

/// A window's live totals, asked only for windows that may still be counted (ended less than a
/// day ago: later settlements of requests admitted in them still land).
async fn live_totals(
    state: &AdminState,
    org: &str,
    kind: LedgerKind,
    rule_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<WindowTotals> {
    if end < Utc::now() - chrono::Duration::days(1) {
        return None;
    }
    state
        .live_windows
        .live_totals(&OrganisationId::new(org), kind, rule_id, start)
        .await
}
