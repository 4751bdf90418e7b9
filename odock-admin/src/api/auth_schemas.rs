//! OpenAPI schemas of the sign-in, user and invitation objects (merged into
//! [`super::openapi::schemas`]); they mirror `session.rs` and `crate::services::{users,
//! invitations}`.

use serde_json::{json, Value};

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `(name, schema)` of every schema the auth, user and invitation routes name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({ "type": "string" });
    let opt_string = json!({ "type": ["string", "null"] });
    let time = json!({ "type": "string", "format": "date-time" });
    let opt_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let role = json!({ "type": "string", "enum": ["SUPER_ADMIN", "ORG_ADMIN", "MANAGER", "USER"] });
    let org_role = json!({ "type": "string", "enum": ["ORG_ADMIN", "MANAGER", "USER"] });
    let status = json!({ "type": "string", "enum": ["PENDING", "ACTIVE", "REVOKED"] });
    let invitation_type =
        json!({ "type": "string", "enum": ["CREATE_ORGANISATION", "JOIN_ORGANISATION"] });
    let invitation_status =
        json!({ "type": "string", "enum": ["PENDING", "ACCEPTED", "EXPIRED", "REVOKED"] });
    let password =
        json!({ "type": "string", "minLength": 8, "maxLength": 1024, "writeOnly": true });
    let invitation_properties = json!({
        "id": string, "organisationId": opt_string, "organisationName": opt_string, "email": string,
        "role": role, "type": invitation_type, "status": invitation_status, "invitedBy": opt_string,
        "expiresAt": time, "acceptedAt": opt_time, "createdAt": time, "updatedAt": time,
    });
    let invitation_required = [
        "id",
        "email",
        "role",
        "type",
        "status",
        "expiresAt",
        "createdAt",
        "updatedAt",
    ];
    let mut issued_properties = invitation_properties.clone();
    issued_properties["token"] = json!({ "type": "string", "description": "The invitation token, shown only in this response." });
    issued_properties["url"] =
        json!({ "type": "string", "description": "The accept page's path for this token." });
    issued_properties["emailed"] = json!({ "type": "boolean", "description": "True when the invitation was e-mailed to its address (SMTP configured)." });
    let mut issued_required = invitation_required.to_vec();
    issued_required.extend(["token", "url", "emailed"]);

    vec![
        (
            "User",
            object(
                &["id", "email", "role", "status", "createdAt", "updatedAt"],
                json!({
                    "id": string, "organisationId": opt_string, "email": string, "name": opt_string,
                    "role": role, "status": status, "createdAt": time, "updatedAt": time,
                }),
            ),
        ),
        (
            "NewUser",
            object(
                &["email", "role"],
                json!({
                    "email": string, "name": string, "role": org_role, "password": password,
                    "status": status,
                }),
            ),
        ),
        (
            "UserPatch",
            object(
                &[],
                json!({
                    "email": string, "name": string, "role": org_role, "status": status,
                    "password": password,
                }),
            ),
        ),
        (
            "Invitation",
            object(&invitation_required, invitation_properties),
        ),
        (
            "IssuedInvitation",
            object(&issued_required, issued_properties),
        ),
        (
            "NewInvitation",
            object(
                &["email", "role"],
                json!({ "email": string, "role": org_role, "type": { "type": "string", "enum": ["JOIN_ORGANISATION"] } }),
            ),
        ),
        (
            "NewOrganisationInvitation",
            object(
                &["email", "organisationName"],
                json!({ "email": string, "organisationName": string }),
            ),
        ),
        (
            "PublicInvitation",
            object(
                &["email", "role", "type", "status", "expiresAt"],
                json!({
                    "email": string, "role": role, "type": invitation_type, "status": invitation_status,
                    "expiresAt": time, "organisationName": opt_string,
                }),
            ),
        ),
        (
            "AcceptInvitation",
            object(
                &["name", "password"],
                json!({ "name": string, "password": password }),
            ),
        ),
        (
            "Login",
            object(
                &["email", "password"],
                json!({ "email": string, "password": { "type": "string", "writeOnly": true } }),
            ),
        ),
        (
            "Session",
            object(
                &["token", "expiresAt", "user"],
                json!({
                    "token": { "type": "string", "description": "The session token (also set as the odock_session cookie)." },
                    "expiresAt": time, "user": schema_ref("User"),
                }),
            ),
        ),
        (
            "Me",
            object(
                &["role"],
                json!({
                    "user": { "oneOf": [schema_ref("User"), { "type": "null" }] },
                    "role": role,
                    "organisation": { "oneOf": [schema_ref("Organisation"), { "type": "null" }] },
                }),
            ),
        ),
        (
            "PasswordChange",
            object(
                &["currentPassword", "newPassword"],
                json!({ "currentPassword": { "type": "string", "writeOnly": true }, "newPassword": password }),
            ),
        ),
    ]
}
