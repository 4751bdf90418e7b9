-- Odock data model (PostgreSQL): the same tables, columns and indexes as migrations/sqlite/0001_init.sql.
-- Conventions: ids are TEXT; timestamps are BIGINT unix milliseconds (UTC); money is BIGINT nanos
-- USD; booleans are BIGINT 0/1; JSON is TEXT. Secrets are stored only as AES-256-GCM envelopes
-- (provider keys, MCP auth config and stdio env) or as hashes (virtual keys, tokens, passwords).

CREATE TABLE organisations (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL UNIQUE,
    contact         TEXT,
    status          TEXT NOT NULL DEFAULT 'active',
    routing_enabled BIGINT NOT NULL DEFAULT 0,
    policies        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT REFERENCES organisations(id) ON DELETE CASCADE,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT,
    role            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'PENDING',
    password_hash   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX users_organisation ON users(organisation_id);

CREATE TABLE organisation_invitations (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT REFERENCES organisations(id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    role            TEXT NOT NULL,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'PENDING',
    token_hash      TEXT NOT NULL UNIQUE,
    invited_by      TEXT REFERENCES users(id) ON DELETE SET NULL,
    expires_at      BIGINT NOT NULL,
    accepted_at     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX organisation_invitations_organisation ON organisation_invitations(organisation_id);

CREATE TABLE teams (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    policies        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organisation_id, name)
);

CREATE TABLE team_members (
    team_id    TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members(user_id);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    team_id         TEXT REFERENCES teams(id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    key_hash        TEXT NOT NULL UNIQUE,
    preview         TEXT NOT NULL,
    expires_at      BIGINT,
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    revoked         BIGINT NOT NULL DEFAULT 0,
    revealed        BIGINT NOT NULL DEFAULT 1,
    rotations       BIGINT NOT NULL DEFAULT 0,
    policies        TEXT,
    routing         TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX api_keys_organisation ON api_keys(organisation_id);

CREATE TABLE api_key_rotations (
    id                  TEXT PRIMARY KEY,
    api_key_id          TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    previous_preview    TEXT NOT NULL,
    previous_expires_at BIGINT,
    new_expires_at      BIGINT,
    rotated_by          TEXT,
    rotated_at          BIGINT NOT NULL
);
CREATE INDEX api_key_rotations_key ON api_key_rotations(api_key_id);

CREATE TABLE providers (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    base_url        TEXT NOT NULL,
    timeout_ms      BIGINT,
    enabled         BIGINT NOT NULL DEFAULT 1,
    config          TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX providers_organisation ON providers(organisation_id);

CREATE TABLE provider_api_keys (
    id              TEXT PRIMARY KEY,
    provider_id     TEXT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    preview         TEXT NOT NULL,
    revoked         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX provider_api_keys_provider ON provider_api_keys(provider_id);

CREATE TABLE models (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL,
    type            TEXT NOT NULL,
    provider_id     TEXT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    provider_key_id TEXT REFERENCES provider_api_keys(id) ON DELETE SET NULL,
    capabilities    TEXT NOT NULL DEFAULT '[]',
    pricing         TEXT,
    policies        TEXT,
    config          TEXT,
    enabled         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organisation_id, name)
);

CREATE TABLE api_key_model_access (
    api_key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    model_id   TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, model_id)
);
CREATE INDEX api_key_model_access_model ON api_key_model_access(model_id);

CREATE TABLE mcp_servers (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    slug             TEXT NOT NULL,
    description      TEXT,
    transport        TEXT NOT NULL,
    endpoint_url     TEXT,
    stdio_command    TEXT,
    stdio_args       TEXT NOT NULL DEFAULT '[]',
    stdio_env        TEXT,
    auth_type        TEXT NOT NULL DEFAULT 'NONE',
    auth_config      TEXT,
    enabled          BIGINT NOT NULL DEFAULT 1,
    public_internet  BIGINT NOT NULL DEFAULT 0,
    oauth_required   BIGINT NOT NULL DEFAULT 0,
    team_id          TEXT REFERENCES teams(id) ON DELETE SET NULL,
    api_key_id       TEXT REFERENCES api_keys(id) ON DELETE SET NULL,
    allowed_tools    TEXT NOT NULL DEFAULT '[]',
    blocked_tools    TEXT NOT NULL DEFAULT '[]',
    semantic_filter  TEXT,
    metadata         TEXT,
    pricing          TEXT,
    policies         TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (organisation_id, slug)
);

CREATE TABLE api_key_mcp_access (
    api_key_id    TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    mcp_server_id TEXT NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, mcp_server_id)
);
CREATE INDEX api_key_mcp_access_server ON api_key_mcp_access(mcp_server_id);

-- Daily rollup per organisation, key and model (maintained by the usage writer).
CREATE TABLE usage (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL,
    api_key_id       TEXT NOT NULL,
    model_id         TEXT NOT NULL DEFAULT '',
    day              TEXT NOT NULL,
    requests         BIGINT NOT NULL DEFAULT 0,
    errors           BIGINT NOT NULL DEFAULT 0,
    input_tokens     BIGINT NOT NULL DEFAULT 0,
    output_tokens    BIGINT NOT NULL DEFAULT 0,
    cost_nanos_usd   BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL,
    UNIQUE (organisation_id, api_key_id, model_id, day)
);

CREATE TABLE usage_records (
    id                  TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL,
    organisation_id     TEXT NOT NULL,
    team_id             TEXT,
    user_id             TEXT,
    api_key_id          TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT,
    model_id            TEXT,
    endpoint            TEXT NOT NULL,
    http_status         BIGINT NOT NULL,
    error_code          TEXT,
    latency_ms          BIGINT NOT NULL,
    gateway_overhead_us BIGINT NOT NULL,
    stream              BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cached_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    billable_tokens     BIGINT NOT NULL,
    cost_nanos_usd      BIGINT NOT NULL,
    tokens              TEXT NOT NULL,
    billing             TEXT,
    provider_usage      TEXT,
    routing             TEXT,
    metadata            TEXT,
    provider_request_id TEXT,
    trace_id            TEXT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX usage_records_org_time ON usage_records(organisation_id, created_at);
CREATE INDEX usage_records_key_time ON usage_records(api_key_id, created_at);
CREATE INDEX usage_records_request ON usage_records(request_id);

CREATE TABLE mcp_usage_records (
    id               TEXT PRIMARY KEY,
    usage_record_id  TEXT NOT NULL,
    organisation_id  TEXT NOT NULL,
    team_id          TEXT,
    user_id          TEXT,
    api_key_id       TEXT NOT NULL,
    mcp_server_id    TEXT NOT NULL,
    slug             TEXT NOT NULL,
    transport        TEXT NOT NULL,
    rpc_method       TEXT,
    tool_name        TEXT,
    tool_call_count  BIGINT NOT NULL DEFAULT 0,
    input_bytes      BIGINT NOT NULL DEFAULT 0,
    output_bytes     BIGINT NOT NULL DEFAULT 0,
    http_status      BIGINT NOT NULL,
    latency_ms       BIGINT NOT NULL,
    cost_nanos_usd   BIGINT NOT NULL DEFAULT 0,
    pricing          TEXT,
    breakdown        TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX mcp_usage_records_org_time ON mcp_usage_records(organisation_id, created_at);
CREATE INDEX mcp_usage_records_usage ON mcp_usage_records(usage_record_id);

CREATE TABLE budgets (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    owner_type      TEXT NOT NULL,
    team_id         TEXT REFERENCES teams(id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    api_key_id      TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    amount_nanos    BIGINT NOT NULL,
    currency        TEXT NOT NULL DEFAULT 'USD',
    period          TEXT NOT NULL,
    start_at        BIGINT NOT NULL,
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    end_at          BIGINT,
    thresholds      TEXT NOT NULL DEFAULT '[]',
    rollover        BIGINT NOT NULL DEFAULT 0,
    active          BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX budgets_organisation ON budgets(organisation_id);

CREATE TABLE budget_windows (
    id             TEXT PRIMARY KEY,
    budget_id      TEXT NOT NULL REFERENCES budgets(id) ON DELETE CASCADE,
    start_at       BIGINT NOT NULL,
    end_at         BIGINT NOT NULL,
    used_nanos     BIGINT NOT NULL DEFAULT 0,
    reserved_nanos BIGINT NOT NULL DEFAULT 0,
    currency       TEXT NOT NULL DEFAULT 'USD',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (budget_id, start_at)
);

CREATE TABLE quotas (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    owner_type      TEXT NOT NULL,
    team_id         TEXT REFERENCES teams(id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    api_key_id      TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    metric          TEXT NOT NULL,
    limit_value     BIGINT NOT NULL,
    period          TEXT NOT NULL,
    start_at        BIGINT NOT NULL,
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    end_at          BIGINT,
    active          BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX quotas_organisation ON quotas(organisation_id);

CREATE TABLE quota_windows (
    id         TEXT PRIMARY KEY,
    quota_id   TEXT NOT NULL REFERENCES quotas(id) ON DELETE CASCADE,
    metric     TEXT NOT NULL,
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    used       BIGINT NOT NULL DEFAULT 0,
    reserved   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (quota_id, start_at)
);

-- One row per governed request holding reservations (idempotency key: request_id).
CREATE TABLE budget_requests (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL UNIQUE,
    organisation_id TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    estimate_nanos  BIGINT NOT NULL DEFAULT 0,
    actual_nanos    BIGINT,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX budget_requests_expiry ON budget_requests(status, expires_at);

CREATE TABLE budget_reservations (
    id                TEXT PRIMARY KEY,
    budget_request_id TEXT NOT NULL REFERENCES budget_requests(id) ON DELETE CASCADE,
    budget_window_id  TEXT NOT NULL REFERENCES budget_windows(id) ON DELETE CASCADE,
    amount_nanos      BIGINT NOT NULL,
    status            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX budget_reservations_request ON budget_reservations(budget_request_id);

CREATE TABLE quota_reservations (
    id                TEXT PRIMARY KEY,
    budget_request_id TEXT NOT NULL REFERENCES budget_requests(id) ON DELETE CASCADE,
    quota_window_id   TEXT NOT NULL REFERENCES quota_windows(id) ON DELETE CASCADE,
    amount            BIGINT NOT NULL,
    status            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX quota_reservations_request ON quota_reservations(budget_request_id);
