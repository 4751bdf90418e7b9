//! Who is calling: the resolved virtual key and its owner chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ApiKeyType;
use crate::ids::{ApiKeyId, OrganisationId, TeamId, UserId};

/// The authenticated caller, inserted into request extensions by the auth layer.
///
/// A principal is returned by a [`KeyStore`](crate::KeyStore) even for revoked or expired keys; the
/// auth layer decides, so a cached principal expires at the right instant without a store round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The virtual key's id.
    pub api_key_id: ApiKeyId,
    /// The organisation the key belongs to.
    pub organisation_id: OrganisationId,
    /// ORGANISATION, TEAM or USER: which owners' rules apply.
    pub key_type: ApiKeyType,
    /// Set for TEAM keys.
    pub team_id: Option<TeamId>,
    /// Set for USER keys.
    pub user_id: Option<UserId>,
    /// When the key stops working (`api_key_expired` from then on).
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the key was revoked (`api_key_revoked`).
    pub revoked: bool,
}

impl Principal {
    /// A key is expired from its expiry instant on.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

impl Principal {
    /// An organisation-wide key (no team, no user), not revoked, never expiring.
    pub fn organisation_key(
        organisation: impl Into<OrganisationId>,
        api_key_id: impl Into<ApiKeyId>,
    ) -> Self {
        Self {
            api_key_id: api_key_id.into(),
            organisation_id: organisation.into(),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        }
    }
}
