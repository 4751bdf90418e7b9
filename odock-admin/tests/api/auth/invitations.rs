//! Invitations: invite, accept, sign in and act with the invited role; expiry, resending and
//! revocation; the invitation that comes with a new organisation.

use chrono::Duration;
use http::{Method, StatusCode};
use odock_admin::testing::{assert_error, harness};
use serde_json::json;

use super::{accept, acme, invite, login, lookup, me, token_of, ALICE_PASSWORD};

#[tokio::test]
async fn invitation_invite_accept_sign_in_and_act_with_the_invited_role() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);

    let invited = invite(&h, &org, &alice, "Mona@acme.test", "MANAGER").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let token = invited.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("odi_"));
    assert_eq!(invited.body["url"], format!("/invitations/{token}"));
    assert_eq!(invited.body["status"], "PENDING");
    assert_eq!(invited.body["type"], "JOIN_ORGANISATION");
    assert_eq!(
        invited.body["expiresAt"], "2026-03-04T12:00:00Z",
        "72 hours"
    );
    let id = invited.body["id"].as_str().unwrap().to_owned();
    // The token is shown once: reads of the invitation never carry it.
    let read = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invitations/{id}"),
            None,
        )
        .await;
    assert!(read.body.get("token").is_none(), "{}", read.text);
    assert!(!read.text.contains(&token));

    let public = lookup(&h, &token).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);
    assert_eq!(
        public.body,
        json!({"email": "mona@acme.test", "role": "MANAGER", "type": "JOIN_ORGANISATION",
               "status": "PENDING", "expiresAt": "2026-03-04T12:00:00Z", "organisationName": "Acme"})
    );

    let accepted = accept(&h, &token, "Mona", "mona's passphrase").await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(accepted.body["user"]["role"], "MANAGER");
    assert_eq!(accepted.body["user"]["status"], "ACTIVE");
    assert_eq!(accepted.body["user"]["name"], "Mona");
    assert!(accepted.headers.contains_key("set-cookie"));

    // Sign in and act as a MANAGER: read providers, but not create one or see settings.
    let mona = token_of(&login(&h, "mona@acme.test", "mona's passphrase").await);
    let providers = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/providers"),
            Some(&mona),
            None,
        )
        .await;
    assert_eq!(providers.status, StatusCode::OK, "{}", providers.text);
    let create = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/providers"),
            Some(&mona),
            Some(&json!({"type": "OPENAI", "name": "Mine"})),
        )
        .await;
    assert_error(&create, StatusCode::FORBIDDEN, "forbidden");

    // Used up: reading and accepting again are 410 invitation_used.
    assert_error(
        &lookup(&h, &token).await,
        StatusCode::GONE,
        "invitation_used",
    );
    assert_error(
        &accept(&h, &token, "Mona", "mona's passphrase").await,
        StatusCode::GONE,
        "invitation_used",
    );
    let read = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invitations/{id}"),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "ACCEPTED");
    assert_error(
        &lookup(&h, "odi_never-issued").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn expired_resent_and_revoked_invitations() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    let base = format!("/api/organisations/{org}/invitations");

    // One pending invitation per email; an existing account cannot be invited.
    let first = invite(&h, &org, &alice, "nina@acme.test", "USER").await;
    let old_token = first.body["token"].as_str().unwrap().to_owned();
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_error(
        &invite(&h, &org, &alice, "nina@acme.test", "USER").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &invite(&h, &org, &alice, "alice@acme.test", "USER").await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // Expired after 72 hours (Alice's session too: she signs in again).
    h.clock.advance(Duration::hours(72));
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    assert_error(
        &lookup(&h, &old_token).await,
        StatusCode::GONE,
        "invitation_expired",
    );
    assert_error(
        &accept(&h, &old_token, "Nina", "nina's passphrase").await,
        StatusCode::GONE,
        "invitation_expired",
    );
    let listed = h.call(Method::GET, &base, Some(&alice), None).await;
    assert_eq!(
        listed.body["data"][0]["status"], "EXPIRED",
        "{}",
        listed.text
    );

    // Resent: a new token with a new expiry; the old token is dead.
    let resent = h
        .call(
            Method::POST,
            &format!("{base}/{id}/resend"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    let new_token = resent.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);
    assert_eq!(resent.body["status"], "PENDING");
    assert_eq!(resent.body["expiresAt"], "2026-03-07T12:00:00Z");
    assert_error(
        &lookup(&h, &old_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Resending again kills the previous resend's token too.
    let again = h
        .call(
            Method::POST,
            &format!("{base}/{id}/resend"),
            Some(&alice),
            None,
        )
        .await;
    let newest = again.body["token"].as_str().unwrap().to_owned();
    assert_error(
        &lookup(&h, &new_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let accepted = accept(&h, &newest, "Nina", "nina's passphrase").await;
    assert_eq!(accepted.body["user"]["role"], "USER", "{}", accepted.text);

    // Revoked: the link dies; a revoked invitation cannot be resent or revoked again.
    let third = invite(&h, &org, &alice, "omar@acme.test", "ORG_ADMIN").await;
    let token = third.body["token"].as_str().unwrap().to_owned();
    let third_id = third.body["id"].as_str().unwrap().to_owned();
    let revoked = h
        .call(
            Method::POST,
            &format!("{base}/{third_id}/revoke"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(revoked.body["status"], "REVOKED", "{}", revoked.text);
    assert_error(
        &lookup(&h, &token).await,
        StatusCode::GONE,
        "invitation_revoked",
    );
    assert_error(
        &accept(&h, &token, "Omar", "omar's passphrase").await,
        StatusCode::GONE,
        "invitation_revoked",
    );
    for action in ["resend", "revoke"] {
        let refused = h
            .call(
                Method::POST,
                &format!("{base}/{third_id}/{action}"),
                Some(&alice),
                None,
            )
            .await;
        assert_error(&refused, StatusCode::CONFLICT, "conflict");
    }

    // CREATE_ORGANISATION only through /api/admin/invitations.
    let wrong_type = h
        .call(
            Method::POST,
            &base,
            Some(&alice),
            Some(&json!({"email": "x@y.test", "role": "USER", "type": "CREATE_ORGANISATION"})),
        )
        .await;
    assert_eq!(
        wrong_type.body["error"]["field"], "type",
        "{}",
        wrong_type.text
    );
}

#[tokio::test]
async fn a_create_organisation_invitation_makes_its_invitee_the_first_org_admin() {
    let h = harness().await;
    let invited = h
        .admin(
            Method::POST,
            "/api/admin/invitations",
            Some(&json!({"email": "founder@initech.test", "organisationName": "Initech"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    assert_eq!(invited.body["type"], "CREATE_ORGANISATION");
    assert_eq!(invited.body["role"], "ORG_ADMIN");
    let token = invited.body["token"].as_str().unwrap().to_owned();
    assert_eq!(lookup(&h, &token).await.body["organisationName"], "Initech");
    let accepted = accept(&h, &token, "Founder", "founder passphrase").await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let session = accepted.body["token"].as_str().unwrap().to_owned();
    let who = me(&h, &session).await;
    assert_eq!(who.body["role"], "ORG_ADMIN");
    assert_eq!(who.body["organisation"]["name"], "Initech");
    let org = who.body["organisation"]["id"].as_str().unwrap().to_owned();
    let teams = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/teams"),
            Some(&session),
            Some(&json!({"name": "founders"})),
        )
        .await;
    assert_eq!(teams.status, StatusCode::CREATED, "{}", teams.text);
}
