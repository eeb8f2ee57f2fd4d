//! On PostgreSQL: Team settings and the built-in admin's password.
