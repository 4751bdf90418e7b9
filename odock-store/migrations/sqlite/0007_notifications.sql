-- Notification channels, the alerts raised for an organisation and their deliveries.

-- Where an organisation's alerts go: a WEBHOOK (`url`, signed with `secret_envelope`, an AES-GCM
-- envelope under the master key, never returned) or EMAIL (`emails`, a JSON array). `events` is a
-- JSON array of event names (empty = every event).
CREATE TABLE notification_channels (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    channel_type    TEXT NOT NULL,
    url             TEXT,
    emails          TEXT NOT NULL,
    secret_envelope TEXT,
    events          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX notification_channels_organisation ON notification_channels(organisation_id);

-- One row per event: `dedupe_key` makes a threshold crossing (budget, window, threshold) or a
-- key's coming expiry an alert once, whichever replica reports it and however often.
CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    dedupe_key      TEXT NOT NULL,
    data            TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    UNIQUE (organisation_id, dedupe_key)
);
CREATE INDEX alerts_organisation_time ON alerts(organisation_id, occurred_at);

-- One row per alert and channel. PENDING → SENDING (claimed until `next_attempt_at`) →
-- DELIVERED, or back to PENDING with a later `next_attempt_at`, or FAILED after the last attempt.
-- `channel_id` has no foreign key: the history outlives a deleted channel.
CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    channel_id      TEXT NOT NULL,
    channel_type    TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(status, next_attempt_at);
CREATE INDEX alert_deliveries_alert ON alert_deliveries(alert_id);
