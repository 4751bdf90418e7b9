//! Authentication: finds the virtual key in any accepted carrier — `Authorization: Bearer`,
//! `X-API-Key`, `x-goog-api-key`, or the `key` query parameter, in that order of precedence — asks
//! the [`KeyStore`] for its principal and refuses revoked (`api_key_revoked`), expired
//! (`api_key_expired`), unknown or missing keys (`unauthorized`).
//!
//! Needs the request id and error-response layers outside it. Leaves [`Principal`] in the request
//! extensions for every later layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{header, HeaderMap, Request, Response};
use tower::{Layer, Service};

use crate::clock::{Clock, SystemClock};
use crate::error::{AuthError, GatewayError};
use crate::key_store::KeyStore;
use crate::principal::Principal;

/// Tower layer authenticating each request's virtual key (see the module docs).
#[derive(Clone)]
pub struct AuthLayer {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthLayer")
    }
}

impl AuthLayer {
    /// A layer looking keys up in `store`, checking expiry on the system clock.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks expiry on `clock` instead (for tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

/// The response future of [`AuthService`].
pub type ResponseFuture<R> = BoxFuture<'static, Result<R, GatewayError>>;

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = GatewayError;
    type Future = ResponseFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let presented =
                presented_key(req.headers(), req.uri().query()).ok_or(AuthError::Missing)?;
            let principal = authenticate(&*layer.store, &*layer.clock, presented).await?;
            req.extensions_mut().insert(principal);
            inner.call(req).await
        })
    }
}

/// Looks the key up and applies the revocation and expiry rules.
pub async fn authenticate(
    store: &dyn KeyStore,
    clock: &dyn Clock,
    presented: &str,
) -> Result<Principal, AuthError> {
    let principal = store.principal(presented).await?;
    if principal.revoked {
        return Err(AuthError::Revoked);
    }
    if principal.is_expired(clock.now()) {
        return Err(AuthError::Expired);
    }
    Ok(principal)
}

/// The virtual key from the first carrier that has one. An empty or malformed carrier counts as none.
pub fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|v| !v.is_empty());
    bearer
        .or_else(|| header_value("x-api-key"))
        .or_else(|| header_value("x-goog-api-key"))
        .or_else(|| {
            query?
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == "key")
                .map(|(_, value)| value)
                .filter(|v| !v.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::ApiKeyType;
    use crate::key_store::InMemoryKeyStore;
    use chrono::{TimeZone, Utc};
    use http::HeaderValue;
    use tower::ServiceExt;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn every_carrier_is_accepted_in_precedence_order() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer sk_a")]), None),
            Some("sk_a")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  sk_a ")]), None),
            Some("sk_a")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "sk_b")]), None),
            Some("sk_b")
        );
        assert_eq!(
            presented_key(&headers(&[("x-goog-api-key", "sk_c")]), None),
            Some("sk_c")
        );
        assert_eq!(
            presented_key(&HeaderMap::new(), Some("alt=sse&key=sk_d")),
            Some("sk_d")
        );
        assert_eq!(
            presented_key(
                &headers(&[("authorization", "Bearer sk_a"), ("x-api-key", "sk_b")]),
                None
            ),
            Some("sk_a")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")]), None),
            None
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer ")]), None),
            None
        );
        assert_eq!(presented_key(&HeaderMap::new(), Some("key=")), None);
    }

    fn principal(revoked: bool, expires_at: Option<chrono::DateTime<Utc>>) -> Principal {
        Principal {
            api_key_id: "key1".into(),
            organisation_id: "org1".into(),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at,
            revoked,
        }
    }

    async fn run(
        store: InMemoryKeyStore,
        clock: ManualClock,
        key: &str,
    ) -> Result<String, GatewayError> {
        let svc = AuthLayer::new(Arc::new(store))
            .with_clock(Arc::new(clock))
            .layer(tower::service_fn(|req: Request<()>| async move {
                let p = req.extensions().get::<Principal>().cloned();
                Ok::<_, GatewayError>(Response::new(
                    p.map(|p| p.api_key_id.to_string()).unwrap_or_default(),
                ))
            }));
        let req = Request::builder()
            .header("authorization", format!("Bearer {key}"))
            .body(())
            .unwrap_or_default();
        svc.oneshot(req).await.map(|r| r.into_body())
    }

    #[tokio::test]
    async fn principal_reaches_inner_service_and_bad_keys_are_refused() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let clock = ManualClock::new(now);
        let store = InMemoryKeyStore::new();
        store.insert_key("sk_ok", principal(false, None));
        store.insert_key("sk_revoked", principal(true, None));
        store.insert_key(
            "sk_expiring",
            principal(false, Some(now + chrono::Duration::seconds(10))),
        );

        assert_eq!(
            run(store.clone(), clock.clone(), "sk_ok").await,
            Ok("key1".to_owned())
        );
        assert_eq!(
            run(store.clone(), clock.clone(), "sk_unknown").await,
            Err(AuthError::Unknown.into())
        );
        assert_eq!(
            run(store.clone(), clock.clone(), "sk_revoked").await,
            Err(AuthError::Revoked.into())
        );
        assert!(run(store.clone(), clock.clone(), "sk_expiring")
            .await
            .is_ok());
        clock.advance(chrono::Duration::seconds(10));
        assert_eq!(
            run(store, clock, "sk_expiring").await,
            Err(AuthError::Expired.into())
        );
    }
}
