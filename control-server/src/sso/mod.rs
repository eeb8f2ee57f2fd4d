//! Single sign-on through one OpenID Connect provider: its configuration,
//! the roles its groups give, and the protocol (discovery, authorization
//! code with PKCE, ID token checks, refreshes). What a sign-in does to
//! identities and sessions is in [`crate::service::sso`].

mod config;
mod http;
mod provider;

pub use config::{OidcArgs, OidcConfig};
pub use provider::{Authorization, Provider, Refreshed, SsoError, Verified};
