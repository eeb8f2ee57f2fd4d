-- Prompts a check allowed and no event has settled yet, shared by every
-- replica: a check counts them in every window while they are pending.
CREATE TABLE reservations (
    device_id  BIGINT NOT NULL,
    key        TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family     TEXT NOT NULL,
    model      TEXT NOT NULL,
    prompts    BIGINT NOT NULL,
    credits    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, key)
);
CREATE INDEX reservations_user ON reservations (user_id, expires_at);
