-- Subscriptions as first-class things (issue 11): every observation of
-- Anthropic's unified rate-limit headers, per subscription; the accounts
-- seen in personal-login traffic become subscriptions too; each request
-- knows the subscription it used, so that a window's rise can be shared
-- among the people whose requests caused it.

-- 'seen': an account named by personal-login traffic (`account_uuid`); it
-- has no credential (an empty sealed blob) and nobody can be assigned to it.
ALTER TABLE subscriptions ADD COLUMN origin TEXT NOT NULL DEFAULT 'enrolled'
    CHECK (origin IN ('enrolled', 'seen'));
ALTER TABLE subscriptions ADD COLUMN account_uuid TEXT;
CREATE UNIQUE INDEX subscriptions_account ON subscriptions (account_uuid)
    WHERE account_uuid IS NOT NULL;

-- The subscription a person's personal-login traffic last named.
ALTER TABLE users ADD COLUMN seen_subscription_id INTEGER
    REFERENCES subscriptions (id) ON DELETE SET NULL;

ALTER TABLE events ADD COLUMN subscription_id INTEGER;
CREATE INDEX events_subscription ON events (subscription_id, at)
    WHERE subscription_id IS NOT NULL;

-- `data` is the whole observation (SubscriptionUsage as JSON: every window,
-- overage, unknown headers); the columns are what charts and attribution read.
CREATE TABLE utilization_observations (
    id                  INTEGER PRIMARY KEY,
    subscription_id     INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    at                  INTEGER NOT NULL,
    user_id             INTEGER,
    device_id           INTEGER,
    five_hour           REAL,
    five_hour_resets_at INTEGER,
    seven_day           REAL,
    seven_day_resets_at INTEGER,
    status              TEXT,
    data                TEXT NOT NULL
);
CREATE INDEX utilization_observations_at ON utilization_observations (subscription_id, at);

-- The single latest-utilization row of before: its figure goes nowhere now.
DROP TABLE subscription_usage;
