-- Team-credential mode (issue 8): subscriptions whose credential the server
-- holds, who uses which, the agent-turn override, and what events say about
-- why a prompt counted, estimated usage and the credential a request used.
-- New `settings` keys (no schema change): agent_turns, turn_limits (JSON),
-- personal_api_keys.

-- `credential` is sealed with the server key (XChaCha20-Poly1305, context
-- 'ccgate subscription credential'); only its last four characters are kept
-- in the clear. `credential_version` grows with every rotation.
CREATE TABLE subscriptions (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind               TEXT NOT NULL CHECK (kind IN ('oauth_token', 'api_key')),
    credential         BLOB NOT NULL,
    credential_hint    TEXT NOT NULL,
    credential_version INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- NULL: the person signs in with their own login. A deleted subscription
-- leaves its users there.
ALTER TABLE users ADD COLUMN subscription_id INTEGER
    REFERENCES subscriptions (id) ON DELETE SET NULL;
-- NULL: the team's setting.
ALTER TABLE users ADD COLUMN agent_turns TEXT CHECK (agent_turns IN ('count', 'free'));
CREATE INDEX users_subscription ON users (subscription_id);

ALTER TABLE events ADD COLUMN count_reason TEXT;
ALTER TABLE events ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN credential TEXT;
