-- Live events too large for a NOTIFY payload (8000 bytes): stored here,
-- and the notification carries the row's id. Rows are read within
-- seconds; those older than a minute are removed as new ones arrive.
CREATE TABLE live_overflow (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload JSONB NOT NULL
);
