//! Who is calling the admin API ([`AdminPrincipal`]), as [`super::auth`] names it and
//! [`super::authz`] judges it.

use odock_core::Role;

/// Who is calling, inserted into the request extensions of every protected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// The caller's role (SUPER_ADMIN for the static admin token).
    pub role: Role,
    /// `None` for the static admin token.
    pub user_id: Option<String>,
    /// `None` for SUPER_ADMINs.
    pub organisation_id: Option<String>,
    /// The session the request came with, if any.
    pub session_id: Option<String>,
}

impl AdminPrincipal {
    /// The static `ODOCK_ADMIN_TOKEN`.
    pub fn admin_token() -> Self {
        Self {
            role: Role::SuperAdmin,
            user_id: None,
            organisation_id: None,
            session_id: None,
        }
    }

    /// Whether the caller is a SUPER_ADMIN (or the admin token).
    pub fn is_super_admin(&self) -> bool {
        self.role == Role::SuperAdmin
    }

    pub(super) fn in_organisation(&self, organisation_id: &str) -> bool {
        self.organisation_id.as_deref() == Some(organisation_id)
    }

    pub(super) fn is_user(&self, user_id: Option<&str>) -> bool {
        user_id.is_some() && self.user_id.as_deref() == user_id
    }
}
