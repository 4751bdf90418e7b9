//! Extractors whose rejections are [`ApiError`]s, so axum's plain-text rejections never reach clients.

use crate::services::PageRequest;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::Json;
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;

/// A JSON body. An empty body reads as `{}` (actions like `rotate` take an optional body);
/// the content type is not checked. Syntax and type errors are 400 `invalid_request`, with `field`
/// naming the offending field where serde can tell.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminJson<T>(pub T);

impl<S, T> FromRequest<S> for AdminJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::invalid(None, "the request body could not be read")
                    }
                })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        match Json::<T>::from_bytes(bytes) {
            Ok(Json(value)) => Ok(AdminJson(value)),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::invalid(
                None,
                format!(
                    "the request body is not valid JSON: {}",
                    detail(&e.body_text())
                ),
            )),
            Err(rejection) => Err(deserialize_error(&rejection.body_text())),
        }
    }
}

/// A query string, rejected like [`AdminJson`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AdminQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| AdminQuery(value))
            .map_err(|rejection: QueryRejection| deserialize_error(&rejection.body_text()))
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The page asked for.
    pub fn page(&self) -> PageRequest {
        PageRequest::new(self.cursor.clone(), self.limit)
    }
}

/// `?limit=&cursor=&organisationId=` of the cross-organisation lists under `/api/admin`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminListParams {
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// Only this organisation's objects.
    pub organisation_id: Option<String>,
}

impl AdminListParams {
    /// The page asked for.
    pub fn page(&self) -> PageRequest {
        PageRequest::new(self.cursor.clone(), self.limit)
    }
}

/// axum's rejection text is `<what failed>: <serde_path_to_error message>`; keep the message.
fn detail(body_text: &str) -> &str {
    body_text
        .split_once(": ")
        .map_or(body_text, |(_, detail)| detail)
}

/// Turns a deserialisation failure into a 400 naming the field: serde_path_to_error prefixes the
/// message with the path (`pricing.input: invalid type ...`) unless the error is at the root, where
/// serde names the field itself (``missing field `name` ``, ``unknown field `nmae` ``).
///
/// `field` is always a top-level field of the body or query (`pricing`, `modelIds`), the same
/// granularity as the repositories' validation errors; the message keeps the full path.
fn deserialize_error(body_text: &str) -> ApiError {
    let message = detail(body_text);
    let field = path_prefix(message).or_else(|| backticked_field(message));
    ApiError::Invalid {
        message: message.to_owned(),
        field,
    }
}

fn path_prefix(message: &str) -> Option<String> {
    let (path, _) = message.split_once(": ")?;
    let is_path = !path.is_empty()
        && path != "."
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    let top_level = path.split(['.', '[']).next().unwrap_or(path);
    (is_path && !top_level.is_empty()).then(|| top_level.to_owned())
}

fn backticked_field(message: &str) -> Option<String> {
    let rest = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_recovered_from_serde_messages() {
        let e = deserialize_error(
            "Failed to deserialize the JSON body into the target type: pricing.input: invalid type: string \"x\", expected struct TokenRates at line 1 column 9",
        );
        assert!(matches!(e, ApiError::Invalid { field: Some(ref f), .. } if f == "pricing"));
        let e = deserialize_error(
            "Failed to deserialize the JSON body into the target type: modelIds[0]: invalid type: integer `1`, expected a string",
        );
        assert!(matches!(e, ApiError::Invalid { field: Some(ref f), .. } if f == "modelIds"));
        let e = deserialize_error(
            "Failed to deserialize the JSON body into the target type: missing field `name` at line 1 column 2",
        );
        assert!(matches!(e, ApiError::Invalid { field: Some(ref f), .. } if f == "name"));
        let e = deserialize_error(
            "Failed to deserialize query string: limit: invalid digit found in string",
        );
        assert!(matches!(e, ApiError::Invalid { field: Some(ref f), .. } if f == "limit"));
        let e = deserialize_error(
            "Failed to deserialize the JSON body into the target type: invalid type: integer `1`, expected a map",
        );
        assert!(matches!(e, ApiError::Invalid { field: None, .. }));
    }
}
