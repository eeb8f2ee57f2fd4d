//! On PostgreSQL: Subscriptions and their sealed credentials.
