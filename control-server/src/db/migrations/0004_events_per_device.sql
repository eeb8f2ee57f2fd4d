-- Issue 9: an event id is the device's idempotency key, so it is unique per
-- device, not across the server (a device could otherwise make another
-- device's future events count as duplicates). The table is rebuilt without
-- its primary key on `id`; rowids are kept, so paging cursors stay valid.
CREATE TABLE events_new (
    id                          TEXT NOT NULL,
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
    detail                      TEXT,
    count_reason                TEXT,
    estimated                   INTEGER NOT NULL DEFAULT 0,
    credential                  TEXT
);
INSERT INTO events_new (rowid, id, user_id, device_id, at, received_at, type, model, family,
        prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens,
        cache_read_input_tokens, kind, turn_key, session_id, detail, count_reason, estimated,
        credential)
    SELECT rowid, id, user_id, device_id, at, received_at, type, model, family,
        prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens,
        cache_read_input_tokens, kind, turn_key, session_id, detail, count_reason, estimated,
        credential
    FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE UNIQUE INDEX events_device_id ON events (device_id, id);
CREATE INDEX events_user_at ON events (user_id, at);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_type_at ON events (type, at);
CREATE INDEX events_user_type_at ON events (user_id, type, at);
