-- Failed logins and registrations per client address, as every replica
-- saw them, so that the limit holds across replicas (`ratelimit`). Rows
-- older than the window are deleted by each replica's sweep.
CREATE TABLE login_failures (
    scope  TEXT NOT NULL,
    client TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX login_failures_client_at ON login_failures (scope, client, at);
