-- Alerts (issue 11): channels (their settings sealed with the server key:
-- webhook URLs, tokens and passwords are secrets), rules, each rule's state
-- per subject (armed, last fired), the alerts fired and every delivery
-- attempt.

CREATE TABLE alert_channels (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind       TEXT NOT NULL,
    -- ChannelConfig as JSON, sealed (context 'ccgate alert channel').
    config     BLOB NOT NULL,
    -- Where it delivers, without secrets ("discord", "ntfy.sh/team", …).
    target     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- `condition` is the rule's AlertCondition as JSON; `channels` a JSON array
-- of channel ids; `owner_user_id` a person who subscribed to alerts about
-- their own usage.
CREATE TABLE alert_rules (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    condition     TEXT NOT NULL,
    channels      TEXT NOT NULL DEFAULT '[]',
    cooldown_secs INTEGER NOT NULL DEFAULT 14400,
    enabled       INTEGER NOT NULL DEFAULT 1,
    owner_user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- One row per rule and subject (a subscription's window, a person, a device).
CREATE TABLE alert_state (
    rule_id        INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    armed          INTEGER NOT NULL DEFAULT 1,
    last_fired_at  INTEGER,
    -- Condition-specific memory (e.g. the reset a hit waits for).
    memo           TEXT,
    PRIMARY KEY (rule_id, subject)
);

CREATE TABLE alert_events (
    id         INTEGER PRIMARY KEY,
    rule_id    INTEGER REFERENCES alert_rules (id) ON DELETE SET NULL,
    subject    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    severity   TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX alert_events_at ON alert_events (at);

CREATE TABLE alert_deliveries (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER REFERENCES alert_events (id) ON DELETE CASCADE,
    channel_id  INTEGER REFERENCES alert_channels (id) ON DELETE SET NULL,
    at          INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX alert_deliveries_at ON alert_deliveries (at);

-- When the held credential was last set (a `claude setup-token` login
-- lasts about a year): rotations move it, renames do not.
ALTER TABLE subscriptions ADD COLUMN credential_set_at INTEGER;
UPDATE subscriptions SET credential_set_at = updated_at;

-- The defaults every team gets (no channel yet: they show on the Activity
-- page until one is added).
INSERT INTO alert_rules (name, condition, created_at, updated_at) VALUES
    ('5-hour window at 75 %', '{"type":"utilization","window":"five_hour","threshold":75}', 0, 0),
    ('5-hour window at 90 %', '{"type":"utilization","window":"five_hour","threshold":90}', 0, 0),
    ('5-hour window at 95 %', '{"type":"utilization","window":"five_hour","threshold":95}', 0, 0),
    ('Weekly window at 75 %', '{"type":"utilization","window":"seven_day","threshold":75}', 0, 0),
    ('Weekly window at 90 %', '{"type":"utilization","window":"seven_day","threshold":90}', 0, 0),
    ('Weekly window at 95 %', '{"type":"utilization","window":"seven_day","threshold":95}', 0, 0),
    ('5-hour window hit and reset', '{"type":"window_hit","window":"five_hour"}', 0, 0),
    ('Weekly window hit and reset', '{"type":"window_hit","window":"seven_day"}', 0, 0),
    ('Kill switch', '{"type":"kill"}', 0, 0),
    ('Tamper report', '{"type":"tamper"}', 0, 0),
    ('Quarantined events', '{"type":"quarantined_events"}', 0, 0),
    ('Credential refused by Anthropic', '{"type":"credential_refused"}', 0, 0),
    ('Credential expires within 30 days', '{"type":"credential_expiring","days":30}', 0, 0),
    ('Device silent for 24 hours', '{"type":"device_silent","hours":24}', 0, 0),
    ('Use outside ccgate', '{"type":"unattributed_use","points":3}', 0, 0);
