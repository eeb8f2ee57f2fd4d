-- Hook clients' reservations (claude-code-limiter's API) count as a prompt
-- when they lapse or when their session checks again, as on SQLite: the
-- flag that says so, and the session the counted prompt belongs to.
ALTER TABLE reservations
    ADD COLUMN counts_on_expiry BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN session_id TEXT;
CREATE INDEX reservations_lapsing ON reservations (expires_at) WHERE counts_on_expiry;
