//! Budgets and quotas: owners, schedules, metrics and limits validated; windows listed.

use chrono::{Duration, Utc};
use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::{json, Value};

use crate::common::{assert_error, assert_invalid, cmd, harness, insert_user};

#[tokio::test]
async fn budgets_validate_owners_schedules_and_list_windows() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let b = h.org("Beta").await;
    let budgets = format!("/api/organisations/{a}/budgets");
    let base = json!({ "name": "monthly", "ownerType": "ORG", "amountNanos": 5_000_000_000_i64, "period": "MONTHLY" });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    let reply = h.post(&budgets, base.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let budget = reply.body.clone();
    assert_eq!(budget["ownerType"], "ORG");
    assert_eq!(budget["ownerId"], Value::Null);
    assert_eq!(budget["currency"], "USD");
    assert_eq!(budget["timezone"], "UTC");
    assert_eq!(budget["thresholds"], json!([]));
    assert_eq!(budget["active"], true);
    assert_eq!(budget["rollover"], false);
    for key in [
        "id",
        "organisationId",
        "name",
        "amountNanos",
        "period",
        "startAt",
        "endAt",
        "createdAt",
        "updatedAt",
    ] {
        assert!(budget.get(key).is_some(), "{key} missing");
    }

    // Owners.
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerId": "x" }))).await,
        "ownerId",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerType": "TEAM" }))).await,
        "ownerId",
    );
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "ownerType": "APIKEY", "ownerId": "nope" })),
        )
        .await,
        "ownerId",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerType": "GROUP" })))
            .await,
        "ownerType",
    );
    let foreign_team = h
        .create(
            &format!("/api/organisations/{b}/teams"),
            json!({ "name": "core" }),
        )
        .await;
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "ownerType": "TEAM", "ownerId": foreign_team })),
        )
        .await,
        "ownerId",
    );
    let team = h
        .create(
            &format!("/api/organisations/{a}/teams"),
            json!({ "name": "core" }),
        )
        .await;
    let reply = h
        .post(&budgets, with(json!({ "ownerType": "TEAM", "ownerId": team, "thresholds": [90, 50, 90], "currency": "EUR" })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["ownerId"], team.as_str());
    assert_eq!(reply.body["thresholds"], json!([50, 90]));
    assert_eq!(reply.body["currency"], "EUR");
    let user = insert_user(&h.pool, &a, "u@acme.test").await;
    h.create(
        &budgets,
        with(json!({ "ownerType": "USER", "ownerId": user })),
    )
    .await;

    // Amount, timezone, thresholds, span, currency.
    assert_invalid(
        &h.post(&budgets, with(json!({ "amountNanos": 0 }))).await,
        "amountNanos",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "timezone": "Europe/Atlantis" })))
            .await,
        "timezone",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "thresholds": [50, 75] })))
            .await,
        "thresholds",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "currency": "JPY" }))).await,
        "currency",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "period": "YEARLY" }))).await,
        "period",
    );
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "startAt": "2025-02-01T00:00:00Z", "endAt": "2025-01-01T00:00:00Z" })),
        )
        .await,
        "endAt",
    );
    let reply = h
        .post(
            &budgets,
            with(json!({ "timezone": "Europe/Paris", "startAt": "2025-01-31T10:00:00Z" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["startAt"], "2025-01-31T10:00:00Z");

    // Filters and the cross-organisation list.
    let teams_only = h.get(&format!("{budgets}?ownerType=TEAM")).await;
    assert_eq!(teams_only.body["data"].as_array().unwrap().len(), 1);
    let id = budget["id"].as_str().unwrap();
    let path = format!("{budgets}/{id}");
    h.invalidated();
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "active": false, "amountNanos": 7 })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["amountNanos"], 7);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Budget, &a)]);
    let inactive = h.get(&format!("{budgets}?active=false")).await;
    assert_eq!(inactive.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive.body["data"][0]["id"], id);
    let reply = h
        .call(Method::PATCH, &path, Some(json!({ "ownerType": "TEAM" })))
        .await;
    assert_invalid(&reply, "ownerType");
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "endAt": "2000-01-01T00:00:00Z" })),
        )
        .await;
    assert_invalid(&reply, "endAt");
    assert_eq!(
        h.get("/api/admin/budgets").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let only_b = h
        .get(&format!("/api/admin/budgets?organisationId={b}"))
        .await;
    assert_eq!(only_b.body["data"], json!([]));

    // Another organisation cannot see it.
    let foreign = format!("/api/organisations/{b}/budgets/{id}");
    assert_error(&h.get(&foreign).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &h.get(&format!("{foreign}/windows")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // A fresh budget has one window: the one running now, computed from its schedule.
    let reply = h
        .post(&budgets, with(json!({ "name": "daily", "period": "DAILY", "timezone": "America/New_York", "startAt": "2025-03-01T05:00:00Z" })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let fresh = reply.body["id"].as_str().unwrap().to_owned();
    let windows = h.get(&format!("{budgets}/{fresh}/windows")).await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.text);
    let schedule = odock_core::windows::Schedule {
        start_at: "2025-03-01T05:00:00Z".parse().unwrap(),
        timezone: "America/New_York".parse().unwrap(),
        period: odock_core::BudgetPeriod::Daily,
        end_at: None,
    };
    let expected = schedule.window_at(Utc::now()).unwrap();
    let data = windows.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", windows.text);
    assert_eq!(data[0]["id"], Value::Null);
    assert_eq!(data[0]["usedNanos"], 0);
    assert_eq!(data[0]["reservedNanos"], 0);
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(at(&data[0]["startAt"]), expected.start);
    assert_eq!(at(&data[0]["endAt"]), expected.end);

    // A ledger row for an older window comes after the current one.
    let now = Utc::now().timestamp_millis();
    let day = 86_400_000;
    sqlx::query(
        "INSERT INTO budget_windows (id, budget_id, start_at, end_at, used_nanos, reserved_nanos, created_at, updated_at) \
         VALUES ('old', $1, $2, $3, 42, 0, $4, $5)",
    )
    .bind(&fresh)
    .bind(expected.start.timestamp_millis() - day)
    .bind(expected.start.timestamp_millis())
    .bind(now)
    .bind(now)
    .execute(&h.pool)
    .await
    .unwrap();
    let windows = h.get(&format!("{budgets}/{fresh}/windows")).await;
    assert_eq!(windows.body["data"][0]["id"], Value::Null);
    assert_eq!(windows.body["data"][1]["id"], "old");
    assert_eq!(windows.body["data"][1]["usedNanos"], 42);

    assert_eq!(
        h.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn quotas_validate_metrics_limits_and_list_windows() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let b = h.org("Beta").await;
    let quotas = format!("/api/organisations/{a}/quotas");
    let (key, _) = h.api_key(&a).await;
    let base = json!({ "name": "rpd", "ownerType": "APIKEY", "ownerId": key, "metric": "REQUESTS", "limit": 1000, "period": "DAILY" });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for metric in [
        "REQUESTS",
        "TOKENS",
        "TOKENS_IN",
        "TOKENS_OUT",
        "ERRORS",
        "COST",
        "LATENCY_MS",
    ] {
        let reply = h.post(&quotas, with(json!({ "metric": metric }))).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{metric}: {}",
            reply.text
        );
        assert_eq!(reply.body["metric"], metric);
        assert_eq!(reply.body["ownerType"], "APIKEY");
        assert_eq!(reply.body["ownerId"], key.as_str());
        assert_eq!(reply.body["limit"], 1000);
    }
    assert_invalid(
        &h.post(&quotas, with(json!({ "metric": "BYTES" }))).await,
        "metric",
    );
    assert_invalid(&h.post(&quotas, with(json!({ "limit": 0 }))).await, "limit");
    assert_invalid(
        &h.post(&quotas, with(json!({ "limit": -5 }))).await,
        "limit",
    );
    assert_invalid(
        &h.post(&quotas, with(json!({ "amountNanos": 5 }))).await,
        "amountNanos",
    );
    assert_invalid(
        &h.post(&quotas, with(json!({ "timezone": "Nowhere" })))
            .await,
        "timezone",
    );
    let (foreign_key, _) = h.api_key(&b).await;
    assert_invalid(
        &h.post(&quotas, with(json!({ "ownerId": foreign_key })))
            .await,
        "ownerId",
    );

    let reply = h
        .post(
            &quotas,
            with(json!({ "ownerType": "ORG", "ownerId": null, "metric": "TOKENS" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let start = reply.body["startAt"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    let windows = h.get(&format!("{quotas}/{id}/windows")).await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.text);
    let window = &windows.body["data"][0];
    assert_eq!(window["id"], Value::Null);
    assert_eq!(window["used"], 0);
    assert_eq!(window["reserved"], 0);
    assert_eq!(
        window["startAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        start
    );
    assert_eq!(
        window["endAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        start + Duration::days(1)
    );

    let path = format!("{quotas}/{id}");
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "limit": 5, "active": false })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["limit"], 5);
    assert_invalid(
        &h.call(Method::PATCH, &path, Some(json!({ "metric": "COST" })))
            .await,
        "metric",
    );
    let filtered = h.get(&format!("{quotas}?ownerType=ORG&active=false")).await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.get("/api/admin/quotas").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(
        h.get(&format!("/api/admin/quotas?organisationId={b}"))
            .await
            .body["data"],
        json!([])
    );
    assert_error(
        &h.get(&format!("/api/organisations/{b}/quotas/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        h.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
}
