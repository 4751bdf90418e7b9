//! The query string of the budget and quota lists; their handlers are [`super::ledger_rules`]'
//! (one set over the ledger rule kind).

use crate::services::budgets::OwnerFilter;
use crate::services::PageRequest;
use odock_core::OwnerType;
use serde::Deserialize;

/// `?limit=&cursor=&ownerType=&active=[&organisationId=]` of the budget and quota lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerListParams {
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// Only rules of this owner type (ORG, TEAM, USER, APIKEY).
    pub owner_type: Option<OwnerType>,
    /// Only active (`true`) or inactive (`false`) rules.
    pub active: Option<bool>,
    /// Only read by the cross-organisation lists.
    pub organisation_id: Option<String>,
}

impl OwnerListParams {
    /// The page asked for.
    pub fn page(&self) -> PageRequest {
        PageRequest::new(self.cursor.clone(), self.limit)
    }

    /// The owner-type and active filters.
    pub fn filter(&self) -> OwnerFilter {
        OwnerFilter {
            owner_type: self.owner_type,
            active: self.active,
        }
    }
}
