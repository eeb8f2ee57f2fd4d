//! On PostgreSQL: Recording what devices observed: events (each stored once, by id), the
