-- The default alert rules every team gets, as SQLite's migration 8 adds
-- them (no channel yet: they show on the Activity page until one is added).

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
