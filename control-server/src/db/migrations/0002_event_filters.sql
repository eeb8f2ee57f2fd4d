-- The admin event log filters by type, alone or with a user, newest first.
CREATE INDEX events_type_at ON events (type, at);
CREATE INDEX events_user_type_at ON events (user_id, type, at);
