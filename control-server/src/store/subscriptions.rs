//! Subscriptions and their sealed credentials.
