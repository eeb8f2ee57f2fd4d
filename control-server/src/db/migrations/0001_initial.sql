-- ccgate-server schema, version 1. Times are milliseconds since the Unix epoch (UTC).

-- Team-wide settings as key/value rows: team_name, time_zone, credit_weights
-- (JSON), unidentified_clients, admin_password_hash, policy_version (a counter
-- every policy change draws from), settings_version.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    slug           TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'killed')),
    time_zone      TEXT,            -- NULL: the team's
    policy_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

-- A user's rules, in order; `rule` is the flat JSON object of the quota crate.
CREATE TABLE limits (
    id       INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    rule     TEXT NOT NULL
);
CREATE INDEX limits_user ON limits (user_id, position);

CREATE TABLE install_codes (
    id         INTEGER PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  INTEGER
);

CREATE TABLE devices (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind               TEXT NOT NULL CHECK (kind IN ('proxy', 'hook')),
    token_hash         TEXT NOT NULL UNIQUE,
    pending_token_hash TEXT UNIQUE,
    hostname           TEXT,
    os                 TEXT,
    arch               TEXT,
    os_user            TEXT,
    os_version         TEXT,
    claude_version     TEXT,
    agent_version      TEXT,
    created_at         INTEGER NOT NULL,
    last_seen_at       INTEGER
);
CREATE INDEX devices_user ON devices (user_id);

-- Everything devices report, keyed by the event's own UUID (idempotency).
CREATE TABLE events (
    id                          TEXT PRIMARY KEY,
    user_id                     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id                   INTEGER,
    at                          INTEGER NOT NULL,
    received_at                 INTEGER NOT NULL,
    type                        TEXT NOT NULL,
    model                       TEXT,
    family                      TEXT,
    prompts                     INTEGER NOT NULL DEFAULT 0,
    credits                     INTEGER NOT NULL DEFAULT 0,
    input_tokens                INTEGER NOT NULL DEFAULT 0,
    output_tokens               INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
    kind                        TEXT,
    turn_key                    TEXT,
    session_id                  TEXT,
    detail                      TEXT
);
CREATE INDEX events_user_at ON events (user_id, at);
CREATE INDEX events_at ON events (at);

-- Admin actions, kills, tamper reports. No foreign keys: it outlives what it names.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT,
    user_id   INTEGER,
    device_id INTEGER,
    detail    TEXT
);
CREATE INDEX audit_at ON audit_log (at);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- Admin logins. account_id NULL: the built-in admin.
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The latest subscription utilization any device saw (one row).
CREATE TABLE subscription_usage (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    observed_at INTEGER NOT NULL,
    user_id     INTEGER,
    device_id   INTEGER,
    data        TEXT NOT NULL
);
