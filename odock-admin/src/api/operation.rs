//! One row of the admin API's route table ([`super::routes`]): its verb, path, documentation,
//! authorisation rule and handler. The router, the OpenAPI document and the audit middleware all
//! read rows of this shape.

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};

use super::authz::Access;
use super::AdminState;

/// An HTTP method the admin API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Verb {
    /// Lower-case, as OpenAPI path items spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// The matching `http::Method`.
    pub const fn method(self) -> http::Method {
        match self {
            Verb::Get => http::Method::GET,
            Verb::Post => http::Method::POST,
            Verb::Put => http::Method::PUT,
            Verb::Patch => http::Method::PATCH,
            Verb::Delete => http::Method::DELETE,
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
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
    /// The parameter's name as sent (`camelCase`).
    pub name: &'static str,
    /// `string`, `integer`, `boolean` or `date-time`.
    pub kind: &'static str,
    /// Its description in the OpenAPI document.
    pub description: &'static str,
}

pub(super) const fn param(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> QueryParam {
    QueryParam {
        name,
        kind,
        description,
    }
}

/// One route: how it is documented and the handler that serves it.
pub struct Operation {
    /// The HTTP method.
    pub verb: Verb,
    /// axum/OpenAPI path template (`{name}` parameters).
    pub path: &'static str,
    /// The OpenAPI `operationId` (e.g. `listTeams`).
    pub operation_id: &'static str,
    /// The OpenAPI tag it is grouped under.
    pub tag: &'static str,
    /// One-line OpenAPI summary.
    pub summary: &'static str,
    /// Served without the admin token.
    pub public: bool,
    /// Who may call it, evaluated by the one authorisation layer ([`super::authz`]). Every row sets
    /// one with `.access(...)` (or `.public()`); a row without stays `Unassigned` (SUPER_ADMIN only)
    /// and fails the role-table test.
    pub access: Access,
    /// The query parameters it reads.
    pub query: &'static [QueryParam],
    /// Schema name of the JSON body.
    pub request: Option<&'static str>,
    /// What a success returns.
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
            access: Access::Unassigned,
            query: &[],
            request: None,
            reply: Reply::NoContent,
            handler: on(verb.filter(), handler),
        }
    }

    pub(super) fn describe(mut self, tag: &'static str, summary: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self
    }

    pub(super) fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }

    pub(super) fn body(mut self, schema: &'static str) -> Self {
        self.request = Some(schema);
        self
    }

    pub(super) fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    pub(super) fn public(mut self) -> Self {
        self.public = true;
        self.access = Access::Public;
        self
    }

    pub(super) fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }
}

pub(super) fn get<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Get, path, id, handler)
}

pub(super) fn post<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Post, path, id, handler)
}

pub(super) fn put<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Put, path, id, handler)
}

pub(super) fn patch<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Patch, path, id, handler)
}

pub(super) fn delete<H: Handler<T, AdminState>, T: 'static>(
    path: &'static str,
    id: &'static str,
    handler: H,
) -> Operation {
    Operation::new(Verb::Delete, path, id, handler)
}
