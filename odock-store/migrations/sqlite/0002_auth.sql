-- Sign-in for admin users: sessions and sign-in throttling; invitations that create an organisation.
-- Conventions as in 0001: ids TEXT, timestamps INTEGER unix ms, tokens stored only as SHA-256 hex.

-- One row per signed-in browser or client. The opaque token is never stored, only its hash.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Failed sign-ins per scope (`account:<email>` or `ip:<address>`): failures in the current window
-- and, once the limit is reached, the instant the lock ends. Shared by every replica.
CREATE TABLE sign_in_throttle (
    scope        TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
);

-- The name of the organisation a CREATE_ORGANISATION invitation creates when accepted.
ALTER TABLE organisation_invitations ADD COLUMN organisation_name TEXT;
