//! On PostgreSQL: Alert channels, rules, their state, fired alerts and delivery attempts.
