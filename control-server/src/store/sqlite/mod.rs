//! The store's use cases on SQLite: each runs in one transaction on [`Db`].

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
