//! On PostgreSQL: Single sign-on: identities, the logins under way, sign-ins and session
