//! On PostgreSQL: Admin accounts, API tokens and login sessions (single sign-on's are in
