//! The route table as a whole: every route needs the admin token, malformed bodies and queries get
//! JSON errors, pagination walks every item once, and the OpenAPI document lists every route.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use odock_admin::api::openapi;
use odock_admin::api::routes::{operations, Reply};
use serde_json::{json, Value};

use crate::common::{assert_error, assert_invalid, assert_invalid_without_field, harness, TOKEN};

#[tokio::test]
async fn every_route_but_the_document_needs_the_admin_token() {
    let h = harness().await;
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdA=="),
        Some(TOKEN),
    ] {
        let mut request = Request::builder().uri("/api/admin/organisations");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let reply = h.send(request.body(Body::empty()).unwrap()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(reply.body["error"]["type"], "authentication_error");
    }
    // Refused before the body is looked at, and before the organisation is looked up.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/organisations/nope/apikeys")
        .body(Body::from("{not json"))
        .unwrap();
    assert_error(
        &h.send(request).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let reply = h.get("/api/admin/organisations").await;
    assert_eq!(reply.status, StatusCode::OK);
    let request = Request::builder()
        .uri("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn malformed_bodies_and_queries_get_json_errors() {
    let h = harness().await;
    let orgs = "/api/admin/organisations";
    let syntax = h.raw(Method::POST, orgs, "{\"name\": ").await;
    assert_invalid_without_field(&syntax);
    let not_object = h.raw(Method::POST, orgs, "[1, 2]").await;
    assert_error(&not_object, StatusCode::BAD_REQUEST, "invalid_request");
    let wrong_type = h.post(orgs, json!({ "name": 42 })).await;
    assert_invalid(&wrong_type, "name");
    let missing = h.call(Method::POST, orgs, None).await;
    assert_invalid(&missing, "name");
    let unknown = h.post(orgs, json!({ "name": "x", "nmae": "y" })).await;
    assert_invalid(&unknown, "nmae");
    let blank = h.post(orgs, json!({ "name": "   " })).await;
    assert_invalid(&blank, "name");
    let bad_limit = h.get("/api/admin/organisations?limit=many").await;
    assert_invalid(&bad_limit, "limit");

    // Without a JSON content type the body is still parsed (automation often forgets the header).
    let request = Request::builder()
        .method(Method::POST)
        .uri(orgs)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(r#"{"name":"Plain"}"#))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::CREATED);

    let wrong_method = h.call(Method::PUT, orgs, None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn pagination_with_limit_one_walks_every_item_once() {
    let h = harness().await;
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(h.org(&format!("Org {i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/admin/organisations?limit=1&cursor={c}"),
            None => "/api/admin/organisations?limit=1".to_owned(),
        };
        let page = h.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 1);
        seen.extend(data.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    created.sort();
    assert_eq!(seen, created, "every organisation once, in id order");

    let org = &created[0];
    let provider = h.provider(org).await;
    for name in ["a", "b", "c"] {
        h.model(org, &provider, name).await;
    }
    let first = h
        .get(&format!("/api/organisations/{org}/models?limit=2"))
        .await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = h
        .get(&format!(
            "/api/organisations/{org}/models?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["nextCursor"], Value::Null);
}

#[tokio::test]
async fn openapi_documents_every_registered_route() {
    let h = harness().await;
    let operations = operations();
    let document = openapi::document(&operations);
    let schemas = document["components"]["schemas"].as_object().unwrap();

    // Every route of the table is in the document, with its parameters and schemas.
    for operation in &operations {
        let item = &document["paths"][operation.path][operation.verb.as_str()];
        assert!(item.is_object(), "{operation:?} is not documented");
        assert_eq!(item["operationId"], operation.operation_id);
        let params: Vec<&str> = item["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            params,
            openapi::path_parameters(operation.path),
            "{operation:?}"
        );
        if let Some(request) = operation.request {
            assert!(schemas.contains_key(request), "{request}");
        }
        match operation.reply {
            Reply::Created(s) | Reply::Ok(s) | Reply::List(s) => {
                assert!(schemas.contains_key(s), "{s}")
            }
            Reply::NoContent => {}
        }
    }
    // And nothing else.
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, operations.len());

    // Every $ref resolves.
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }

    // Every route of the table is registered: a request reaches a handler (which answers JSON), not
    // the router's empty "no such route" 404 or its 405.
    for operation in &operations {
        let path = operation
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let reply = h.call(operation.verb.method(), &path, None).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{operation:?}"
        );
        assert!(
            reply.body.is_object() || reply.status == StatusCode::NO_CONTENT,
            "{operation:?} answered {} {}",
            reply.status,
            reply.text
        );
    }

    // The served document is the same one.
    let served = h.get("/api/openapi.json").await;
    assert_eq!(served.body, document);
}
