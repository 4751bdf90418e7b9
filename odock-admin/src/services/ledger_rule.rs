//! Budgets and quotas are one shape over a [`RuleKind`]: a named limit on an owner, on the calendar
//! windows of a schedule. What differs — the table, the limit's column and request field (nanos of
//! money or a count of a metric), and the kind's own columns (a budget's currency and thresholds,
//! a quota's metric) — is the kind; creating, updating and listing windows are written once here.

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, BudgetPeriod, CacheKind, LedgerKind, OwnerType};
use odock_store::db::{now_ms, to_ms, Db, Param, SqlBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::organisations::ensure_exists;
use super::schedule::{
    self, check_owner, filter_conditions, new_span, owner_columns, patch_span, schedule,
    OwnerFilter, Span, WindowRows,
};
use super::{required_text, AdminError, Page, PageRequest, Scoped};

/// A new rule's fields that every kind has.
pub(crate) struct NewRule {
    pub name: String,
    pub owner_type: OwnerType,
    pub owner_id: Option<String>,
    /// In the kind's unit.
    pub limit: i64,
    pub period: BudgetPeriod,
    pub start_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub end_at: Option<DateTime<Utc>>,
    pub active: Option<bool>,
}

/// A patch's fields that every kind has (`end_at: Some(None)` removes the end).
pub(crate) struct RulePatch {
    pub name: Option<String>,
    pub limit: Option<i64>,
    pub period: Option<BudgetPeriod>,
    pub start_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub end_at: Option<Option<DateTime<Utc>>>,
    pub active: Option<bool>,
}

/// The fields every kind's rule has, borrowed from a stored rule.
pub(crate) struct RuleFields<'a> {
    pub name: &'a mut String,
    pub limit: &'a mut i64,
    pub period: &'a mut BudgetPeriod,
    pub start_at: &'a mut DateTime<Utc>,
    pub timezone: &'a mut String,
    pub end_at: &'a mut Option<DateTime<Utc>>,
    pub active: &'a mut bool,
}

/// A window's start, end and `(used, reserved)`.
pub(crate) type WindowTotalsMut<'a> = (DateTime<Utc>, DateTime<Utc>, (&'a mut i64, &'a mut i64));

/// One kind of ledger rule (budgets, quotas): its table and what it adds to the common shape.
pub(crate) trait RuleKind: Send + Sync + 'static {
    /// The API object.
    type Rule: Serialize + Send + Sync + 'static;
    /// The creation request.
    type New: DeserializeOwned + Send + 'static;
    /// The update request.
    type Patch: DeserializeOwned + Send + 'static;
    /// One window, as listed.
    type Window: Serialize + Send + 'static;
    /// What a creation request adds to [`NewRule`].
    type NewExtra;
    /// What an update request adds to [`RulePatch`].
    type PatchExtra;
    /// The table, its columns and the object's decoding.
    const ROWS: Scoped<Self::Rule>;
    /// The window table.
    const WINDOWS: WindowRows<Self::Window>;
    /// The limit's column (`amount_nanos`) and request field (`amountNanos`).
    const LIMIT: (&'static str, &'static str);
    /// What the gateway evicts when one changes.
    const CACHE: CacheKind;
    /// The ledger's name for the kind (live window totals).
    const LEDGER: LedgerKind;

    fn split_new(new: Self::New) -> (NewRule, Self::NewExtra);
    fn split_patch(patch: Self::Patch) -> (RulePatch, Self::PatchExtra);
    fn fields(rule: &mut Self::Rule) -> RuleFields<'_>;
    /// The owner, which decides who may see the rule.
    fn owner(rule: &Self::Rule) -> (OwnerType, Option<&str>);
    /// A window's span and its `(used, reserved)` totals, which the live ledger may overwrite.
    fn window_totals(window: &mut Self::Window) -> WindowTotalsMut<'_>;
    /// The kind's own columns of a new rule, checked (after the common fields).
    fn new_columns(extra: Self::NewExtra) -> Result<Vec<(&'static str, Param)>, AdminError>;
    /// Applies the kind's own fields of a patch, checked (after the common fields but `active`).
    fn apply_patch(rule: &mut Self::Rule, extra: Self::PatchExtra) -> Result<(), AdminError>;
    /// The kind's columns an update writes.
    fn patched_columns(rule: &Self::Rule) -> Result<Vec<(&'static str, Param)>, AdminError>;
}

/// Writes a kind's [`RuleKind::split_new`], [`RuleKind::split_patch`], [`RuleKind::fields`] and
/// [`RuleKind::owner`]: a kind's rule, creation and update types name the common fields alike, all
/// but the limit (`$limit`: `amount_nanos`, `limit`), so the mapping is written once.
/// `$new_extra` and `$patch_extra` take the kind's own fields of each request.
macro_rules! common_rule_fields {
    ($limit:ident, new: |$new:ident| $new_extra:expr, patch: |$patch:ident| $patch_extra:expr $(,)?) => {
        fn split_new($new: Self::New) -> (NewRule, Self::NewExtra) {
            let rule = NewRule {
                name: $new.name,
                owner_type: $new.owner_type,
                owner_id: $new.owner_id,
                limit: $new.$limit,
                period: $new.period,
                start_at: $new.start_at,
                timezone: $new.timezone,
                end_at: $new.end_at,
                active: $new.active,
            };
            (rule, $new_extra)
        }

        fn split_patch($patch: Self::Patch) -> (RulePatch, Self::PatchExtra) {
            let rule = RulePatch {
                name: $patch.name,
                limit: $patch.$limit,
                period: $patch.period,
                start_at: $patch.start_at,
                timezone: $patch.timezone,
                end_at: $patch.end_at,
                active: $patch.active,
            };
            (rule, $patch_extra)
        }

        fn fields(rule: &mut Self::Rule) -> RuleFields<'_> {
            RuleFields {
                name: &mut rule.name,
                limit: &mut rule.$limit,
                period: &mut rule.period,
                start_at: &mut rule.start_at,
                timezone: &mut rule.timezone,
                end_at: &mut rule.end_at,
                active: &mut rule.active,
            }
        }

        fn owner(rule: &Self::Rule) -> (OwnerType, Option<&str>) {
            (rule.owner_type, rule.owner_id.as_deref())
        }
    };
}
pub(crate) use common_rule_fields;

/// The limit must be positive, whatever its unit.
fn check_limit<K: RuleKind>(limit: i64) -> Result<i64, AdminError> {
    let field = K::LIMIT.1;
    if limit > 0 {
        Ok(limit)
    } else {
        Err(AdminError::field(
            field,
            format!("{field} must be greater than 0"),
        ))
    }
}

/// Creates a rule of the organisation: name, owner, limit and span are checked in that order, then
/// the kind's own fields.
pub(crate) async fn create<K: RuleKind>(
    pool: &Db,
    organisation_id: &str,
    input: K::New,
) -> Result<K::Rule, AdminError> {
    let (input, extra) = K::split_new(input);
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let owner_id = check_owner(pool, organisation_id, input.owner_type, input.owner_id).await?;
    let limit = check_limit::<K>(input.limit)?;
    let Span {
        start_at,
        timezone,
        end_at,
    } = new_span(input.start_at, input.timezone.as_deref(), input.end_at)?;
    let own = K::new_columns(extra)?;
    let (team_id, user_id, api_key_id) = owner_columns(input.owner_type, owner_id.as_deref());
    let now = now_ms();
    let id = new_object_id();
    let mut columns = vec![
        ("id", Param::from(id.as_str())),
        ("organisation_id", organisation_id.into()),
        ("name", name.into()),
        ("owner_type", input.owner_type.as_str().into()),
        ("team_id", team_id.into()),
        ("user_id", user_id.into()),
        ("api_key_id", api_key_id.into()),
        (K::LIMIT.0, limit.into()),
        ("period", input.period.as_str().into()),
        ("start_at", to_ms(start_at).into()),
        ("timezone", timezone.into()),
        ("end_at", end_at.map(to_ms).into()),
        ("active", input.active.unwrap_or(true).into()),
        ("created_at", now.into()),
        ("updated_at", now.into()),
    ];
    columns.extend(own);
    let names = columns.iter().map(|(c, _)| *c).collect::<Vec<_>>();
    let mut insert = SqlBuilder::new(format!(
        "INSERT INTO {} ({}) VALUES ",
        K::ROWS.table,
        names.join(", ")
    ));
    insert.push_tuple(columns.into_iter().map(|(_, v)| v));
    insert.query().execute(pool).await?;
    K::ROWS.get(pool, organisation_id, &id).await
}

/// The organisation's rules of the kind; with `organisation_id = None`, every organisation's
/// (SUPER_ADMIN).
pub(crate) async fn list<K: RuleKind>(
    pool: &Db,
    organisation_id: Option<&str>,
    filter: &OwnerFilter,
    page: &PageRequest,
) -> Result<Page<K::Rule>, AdminError> {
    K::ROWS
        .list(pool, organisation_id, &filter_conditions(filter), page)
        .await
}

/// Applies a patch: name, limit, period and span are checked in that order, then the kind's own
/// fields; the owner (and a quota's metric) never change.
pub(crate) async fn update<K: RuleKind>(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: K::Patch,
) -> Result<K::Rule, AdminError> {
    let (patch, extra) = K::split_patch(patch);
    let mut current = K::ROWS.get(pool, organisation_id, id).await?;
    let fields = K::fields(&mut current);
    if let Some(name) = patch.name {
        *fields.name = required_text("name", &name, 200)?;
    }
    if let Some(limit) = patch.limit {
        *fields.limit = check_limit::<K>(limit)?;
    }
    if let Some(period) = patch.period {
        *fields.period = period;
    }
    patch_span(
        fields.start_at,
        fields.timezone,
        fields.end_at,
        patch.start_at,
        patch.timezone,
        patch.end_at,
    )?;
    K::apply_patch(&mut current, extra)?;
    let fields = K::fields(&mut current);
    if let Some(active) = patch.active {
        *fields.active = active;
    }
    let mut columns = vec![
        ("name", Param::from(fields.name.as_str())),
        (K::LIMIT.0, (*fields.limit).into()),
        ("period", fields.period.as_str().into()),
        ("start_at", to_ms(*fields.start_at).into()),
        ("timezone", fields.timezone.as_str().into()),
        ("end_at", fields.end_at.map(to_ms).into()),
        ("active", (*fields.active).into()),
        ("updated_at", now_ms().into()),
    ];
    columns.extend(K::patched_columns(&current)?);
    let mut statement = SqlBuilder::new(format!("UPDATE {} SET ", K::ROWS.table));
    for (i, (column, value)) in columns.into_iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        statement.push(&format!("{column} = ")).push_bind(value);
    }
    statement
        .push(" WHERE id = ")
        .push_bind(id)
        .push(" AND organisation_id = ")
        .push_bind(organisation_id);
    let result = statement.query().execute(pool).await?;
    K::ROWS.touched(&result)?;
    K::ROWS.get(pool, organisation_id, id).await
}

/// The rule's windows, current first (the current one with zero usage when the ledger has not
/// created its row yet).
pub(crate) async fn windows<K: RuleKind>(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<Vec<K::Window>, AdminError> {
    let mut rule = K::ROWS.get(pool, organisation_id, id).await?;
    let fields = K::fields(&mut rule);
    let schedule = schedule(
        *fields.start_at,
        fields.timezone,
        *fields.period,
        *fields.end_at,
    )?;
    schedule::windows(pool, id, schedule, &K::WINDOWS).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::budgets::{BudgetPatch, Budgets, NewBudget};
    use crate::services::quotas::{QuotaPatch, Quotas};
    use crate::services::test_support::{org, pool};
    use odock_core::QuotaMetric;

    fn field_of<T>(result: Result<T, AdminError>) -> String {
        match result {
            Err(AdminError::Invalid { field: Some(f), .. }) => f,
            Err(other) => panic!("expected a field error, got {other:?}"),
            Ok(_) => panic!("expected a field error, got a rule"),
        }
    }

    /// Creating, updating, listing and windows of one kind through the one rule logic: the limit is
    /// checked under the kind's field name and stored in the kind's column.
    async fn one_kind<K: RuleKind>(
        pool: &Db,
        organisation_id: &str,
        new: fn(i64) -> K::New,
        patch: fn(i64) -> K::Patch,
    ) -> K::Rule {
        let (column, field) = K::LIMIT;
        assert_eq!(
            field_of(create::<K>(pool, organisation_id, new(0)).await),
            field
        );
        let mut rule = create::<K>(pool, organisation_id, new(5)).await.unwrap();
        assert_eq!(*K::fields(&mut rule).limit, 5);
        assert!(*K::fields(&mut rule).active);
        let id = (K::ROWS.id_of)(&rule).to_owned();
        assert_eq!(
            field_of(update::<K>(pool, organisation_id, &id, patch(-1)).await),
            field
        );
        let mut rule = update::<K>(pool, organisation_id, &id, patch(7))
            .await
            .unwrap();
        assert_eq!(*K::fields(&mut rule).limit, 7);
        let sql = format!("SELECT {column} FROM {} WHERE id = $1", K::ROWS.table);
        let stored: i64 = sqlx::query_scalar(&sql)
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(stored, 7);
        let page = list::<K>(
            pool,
            Some(organisation_id),
            &OwnerFilter::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(page.data.len(), 1);
        assert_eq!(
            windows::<K>(pool, organisation_id, &id)
                .await
                .unwrap()
                .len(),
            1
        );
        rule
    }

    #[tokio::test]
    async fn one_rule_logic_serves_budgets_and_quotas() {
        let pool = pool().await;
        let (a, b) = (org(&pool, "A").await, org(&pool, "B").await);
        let budget = one_kind::<Budgets>(
            &pool,
            &a,
            |amount_nanos| NewBudget {
                name: "monthly".into(),
                owner_type: OwnerType::Org,
                owner_id: None,
                amount_nanos,
                period: BudgetPeriod::Monthly,
                start_at: None,
                timezone: None,
                end_at: None,
                thresholds: Some(vec![100, 50, 50]),
                rollover: None,
                active: None,
                currency: None,
            },
            |amount_nanos| BudgetPatch {
                amount_nanos: Some(amount_nanos),
                ..BudgetPatch::default()
            },
        )
        .await;
        // The budget's own fields ride along the common ones.
        assert_eq!(budget.thresholds, [50, 100]);
        let quota = one_kind::<Quotas>(&pool, &b, crate::services::quotas::tests::new, |limit| {
            QuotaPatch {
                limit: Some(limit),
                ..QuotaPatch::default()
            }
        })
        .await;
        assert_eq!(quota.metric, QuotaMetric::Requests);
    }
}
