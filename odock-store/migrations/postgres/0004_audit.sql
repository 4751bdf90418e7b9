-- Audit log of admin writes, and the indexes the usage analytics and invoices read through.

-- One row per successful admin write (POST/PUT/PATCH/DELETE of the admin API). `summary` is JSON
-- with the path ids, the request body and the before/after state, all with secrets removed.
CREATE TABLE audit_log (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT,
    actor_kind      TEXT NOT NULL,
    actor_user_id   TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT,
    summary         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX audit_log_organisation ON audit_log(organisation_id, id);

-- Usage analytics and invoices filter an organisation's period by team, user or key.
CREATE INDEX usage_records_org_team_time ON usage_records(organisation_id, team_id, created_at);
CREATE INDEX usage_records_org_user_time ON usage_records(organisation_id, user_id, created_at);
