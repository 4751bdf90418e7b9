//! The signed-in caller of a console page, as data: what the page shell ([`super::layout`]) reads
//! and the session extractor ([`super::session`]) fills in. Kept apart from the extractor so the
//! layout does not import the module that renders its error pages through it.

use odock_core::Role;
use serde_json::Value;

use super::client::Caller;
use super::Console;

/// The name of the hidden CSRF field of every console form.
pub const CSRF_FIELD: &str = "_csrf";

/// The signed-in caller of a console page.
#[derive(Clone)]
pub struct Ctx {
    /// The console's shared state.
    pub console: Console,
    /// The session and origin the page's API calls are made with.
    pub caller: Caller,
    /// The caller's role.
    pub role: Role,
    /// The caller's user id (`None` for the static admin token).
    pub user_id: Option<String>,
    /// `{id, name, email, role, …}`; `null` for the static admin token.
    pub user: Value,
    /// The caller's organisation id (`None` for SUPER_ADMIN).
    pub organisation_id: Option<String>,
    /// The session's CSRF token, put in every form of the page.
    pub csrf: String,
    /// Whether this request passed the origin check (meaningful for writes).
    pub(super) origin_ok: bool,
    /// The path of this page, for the navigation and redirects.
    pub path: String,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("role", &self.role)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Whether the caller is a SUPER_ADMIN (or the admin token).
    pub fn is_super_admin(&self) -> bool {
        self.role == Role::SuperAdmin
    }
}
