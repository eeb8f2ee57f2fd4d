//! Admin accounts, API tokens, sessions, single-sign-on identities and logins.
