//! Single sign-on settings (flags and environment) and the roles groups give.

use std::time::Duration;

use crate::config::{ConfigError, SecretText};
use crate::model::Role;

/// `OIDC_*` flags; SSO is on when `OIDC_ISSUER` is set.
#[derive(Debug, Clone, clap::Args)]
pub struct OidcArgs {
    /// The OpenID provider's issuer URL (discovery at
    /// ISSUER/.well-known/openid-configuration); unset: no single sign-on.
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Absent: a public client (PKCE only).
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<SecretText>,
    /// Scopes asked for, space- or comma-separated (`openid` is always added).
    #[arg(long, env = "OIDC_SCOPES", default_value = "openid email profile")]
    pub oidc_scopes: String,
    /// The claim listing a person's groups (ID token, else userinfo).
    #[arg(long, env = "OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Groups whose members are admins (comma-separated).
    #[arg(long, env = "OIDC_ADMIN_GROUPS", default_value = "")]
    pub oidc_admin_groups: String,
    /// Groups whose members are viewers (comma-separated).
    #[arg(long, env = "OIDC_VIEWER_GROUPS", default_value = "")]
    pub oidc_viewer_groups: String,
    /// Groups whose members see their own page (comma-separated; empty:
    /// everyone the provider signs in who is not an admin or viewer).
    #[arg(long, env = "OIDC_MEMBER_GROUPS", default_value = "")]
    pub oidc_member_groups: String,
    /// Where the provider sends browsers back [default:
    /// PUBLIC_URL/auth/oidc/callback].
    #[arg(long, env = "OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
    /// Minutes between checks of a signed-in session with the provider.
    #[arg(long, env = "OIDC_RECHECK_MINS", default_value_t = 10)]
    pub oidc_recheck_mins: u64,
}

/// How ccgate signs people in through one OpenID provider.
#[derive(Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub admin_groups: Vec<String>,
    pub viewer_groups: Vec<String>,
    pub member_groups: Vec<String>,
    pub redirect_url: String,
    /// How often a session is checked again with the provider.
    pub recheck: Duration,
    /// Tolerated difference between the provider's clock and ours.
    pub clock_skew: Duration,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// Comma-separated names (group names may hold spaces).
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Scopes, space- or comma-separated.
fn scopes(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl OidcConfig {
    /// A configuration with the defaults for everything but the provider.
    pub fn new(issuer: &str, client_id: &str, redirect_url: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            scopes: scopes("openid email profile"),
            groups_claim: "groups".to_owned(),
            admin_groups: Vec::new(),
            viewer_groups: Vec::new(),
            member_groups: Vec::new(),
            redirect_url: redirect_url.to_owned(),
            recheck: Duration::from_secs(600),
            clock_skew: Duration::from_secs(60),
        }
    }

    /// The role a person in `groups` gets: admin groups win over viewer
    /// groups over member groups; with no member groups configured, every
    /// other person the provider signs in is a member.
    pub fn role_for_groups(&self, groups: &[String]) -> Option<Role> {
        let in_any = |wanted: &[String]| groups.iter().any(|g| wanted.contains(g));
        if in_any(&self.admin_groups) {
            Some(Role::Admin)
        } else if in_any(&self.viewer_groups) {
            Some(Role::Viewer)
        } else if self.member_groups.is_empty() || in_any(&self.member_groups) {
            Some(Role::Member)
        } else {
            None
        }
    }
}

impl OidcArgs {
    /// The configuration, `None` without an issuer.
    pub fn into_config(self, public_url: Option<&str>) -> Result<Option<OidcConfig>, ConfigError> {
        let Some(issuer) = self.oidc_issuer.filter(|i| !i.trim().is_empty()) else {
            return Ok(None);
        };
        let issuer = issuer.trim().to_owned();
        let client_id = self
            .oidc_client_id
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| ConfigError("OIDC_ISSUER is set but OIDC_CLIENT_ID is not".into()))?;
        let redirect_url = match (self.oidc_redirect_url, public_url) {
            (Some(url), _) => url,
            (None, Some(base)) => format!("{}/auth/oidc/callback", base.trim_end_matches('/')),
            (None, None) => {
                return Err(ConfigError(
                    "single sign-on needs PUBLIC_URL (or OIDC_REDIRECT_URL) to tell the provider where to send people back".into(),
                ));
            }
        };
        let mut config = OidcConfig::new(&issuer, client_id.trim(), &redirect_url);
        config.client_secret = self
            .oidc_client_secret
            .map(|s| s.0)
            .filter(|s| !s.is_empty());
        config.scopes = scopes(&self.oidc_scopes);
        if !config.scopes.iter().any(|s| s == "openid") {
            config.scopes.insert(0, "openid".to_owned());
        }
        config.groups_claim = self.oidc_groups_claim.trim().to_owned();
        config.admin_groups = list(&self.oidc_admin_groups);
        config.viewer_groups = list(&self.oidc_viewer_groups);
        config.member_groups = list(&self.oidc_member_groups);
        config.recheck = Duration::from_secs(self.oidc_recheck_mins.max(1) * 60);
        config.validate()?;
        Ok(Some(config))
    }
}

impl OidcConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, url) in [
            ("OIDC_ISSUER", &self.issuer),
            ("OIDC_REDIRECT_URL", &self.redirect_url),
        ] {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError(format!("{name} is not a URL ({url:?}): {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(ConfigError(format!("{name} must be an http(s) URL")));
            }
            if parsed.scheme() == "http" && crate::config::plain_http_off_machine(url) {
                return Err(ConfigError(format!(
                    "{name} must use https (plain http only on this machine)"
                )));
            }
        }
        if self.groups_claim.is_empty() {
            return Err(ConfigError("OIDC_GROUPS_CLAIM must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn admin_groups_win_over_viewer_over_member() {
        let mut config = OidcConfig::new("https://idp", "ccgate", "https://ccgate/cb");
        config.admin_groups = groups(&["ops"]);
        config.viewer_groups = groups(&["leads"]);
        config.member_groups = groups(&["devs"]);
        assert_eq!(
            config.role_for_groups(&groups(&["devs", "leads", "ops"])),
            Some(Role::Admin)
        );
        assert_eq!(
            config.role_for_groups(&groups(&["devs", "leads"])),
            Some(Role::Viewer)
        );
        assert_eq!(
            config.role_for_groups(&groups(&["devs"])),
            Some(Role::Member)
        );
        assert_eq!(config.role_for_groups(&groups(&["sales"])), None);
        assert_eq!(config.role_for_groups(&[]), None);
        config.member_groups.clear();
        assert_eq!(
            config.role_for_groups(&groups(&["sales"])),
            Some(Role::Member)
        );
    }

    fn args(issuer: Option<&str>) -> OidcArgs {
        OidcArgs {
            oidc_issuer: issuer.map(str::to_owned),
            oidc_client_id: Some("ccgate".to_owned()),
            oidc_client_secret: None,
            oidc_scopes: "email,profile".to_owned(),
            oidc_groups_claim: "groups".to_owned(),
            oidc_admin_groups: "ccgate admins, ops".to_owned(),
            oidc_viewer_groups: String::new(),
            oidc_member_groups: String::new(),
            oidc_redirect_url: None,
            oidc_recheck_mins: 5,
        }
    }

    #[test]
    fn flags_become_a_configuration_with_the_callback_under_public_url() {
        assert!(args(None).into_config(None).unwrap().is_none());
        let error = args(Some("https://idp.example.com"))
            .into_config(None)
            .unwrap_err();
        assert!(error.0.contains("PUBLIC_URL"), "{error}");
        let config = args(Some("https://idp.example.com"))
            .into_config(Some("https://ccgate.example.com/"))
            .unwrap()
            .unwrap();
        assert_eq!(
            config.redirect_url,
            "https://ccgate.example.com/auth/oidc/callback"
        );
        assert_eq!(config.scopes, ["openid", "email", "profile"]);
        // Group names may hold spaces; only commas separate them.
        assert_eq!(config.admin_groups, ["ccgate admins", "ops"]);
        assert_eq!(config.recheck, Duration::from_secs(300));
        let mut no_client = args(Some("https://idp.example.com"));
        no_client.oidc_client_id = None;
        assert!(
            no_client
                .into_config(Some("https://ccgate.example.com"))
                .is_err()
        );
    }

    #[test]
    fn plain_http_issuers_off_this_machine_are_refused() {
        let config = OidcConfig::new("http://idp.example.com", "c", "https://ccgate/cb");
        assert!(config.validate().is_err());
        let config = OidcConfig::new("http://127.0.0.1:9", "c", "http://127.0.0.1:8/cb");
        assert!(config.validate().is_ok());
    }
}
