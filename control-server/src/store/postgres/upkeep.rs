//! On PostgreSQL: Housekeeping: what the server forgets or thins as time passes.
