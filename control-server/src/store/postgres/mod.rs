//! The store's use cases on PostgreSQL: each runs in one transaction on a
//! pooled connection of [`crate::postgres::PgDb`], so several replicas can
//! share the record.

mod accounts;
mod alerts;
mod devices;
mod events;
mod history;
mod identities;
mod people;
mod settings;
mod startup;
mod subscriptions;
mod upkeep;
