//! The OpenID provider, through the `openidconnect` crate: discovery, the
//! authorization URL (state, nonce, PKCE), the code exchange with the ID
//! token checked against the provider's keys, and refreshes.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use super::OidcConfig;
use super::http::HttpClient;
use crate::db::identities::Claims;
use crate::error::error_chain;

/// How long discovered metadata and keys are trusted before they are
/// fetched again (keys rotate; a key not seen yet triggers a fetch too).
const METADATA_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the identity provider could not be reached or gave a bad answer: {0}")]
    Unavailable(String),
    /// The provider refused (a bad code, a revoked refresh token, a removed user).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// What came back did not pass the checks (signature, audience, expiry, nonce, …).
    #[error("the identity provider's answer failed its checks: {0}")]
    Invalid(String),
}

/// Claims besides the standard ones (the groups claim is named by configuration).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(HashMap<String, Value>);
impl AdditionalClaims for OtherClaims {}

/// A login about to be sent to the provider.
#[derive(Debug)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What a successful sign-in or refresh yields.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    /// Absent when the provider gave none (then the session is not re-checked).
    pub refresh_token: Option<String>,
}

/// What a refresh yields: new claims if the provider sent a new ID token.
#[derive(Debug)]
pub struct Refreshed {
    pub claims: Option<Claims>,
    pub refresh_token: String,
}

struct Discovered {
    client: Client,
    fetched: jiff::Timestamp,
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// One OpenID provider: its configuration and its cached metadata.
pub struct Provider {
    config: OidcConfig,
    http: HttpClient,
    discovered: Mutex<Option<Discovered>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> SsoError {
    SsoError::Unavailable(error.to_string())
}

impl Provider {
    pub fn new(config: OidcConfig) -> Result<Self, SsoError> {
        Ok(Self {
            http: HttpClient::new().map_err(unavailable)?,
            config,
            discovered: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The client built from the provider's discovery document, fetched
    /// again when older than [`METADATA_TTL`] or when `refetch`.
    async fn client(&self, now: jiff::Timestamp, refetch: bool) -> Result<Client, SsoError> {
        let mut cached = self.discovered.lock().await;
        if let Some(found) = cached.as_ref()
            && !refetch
            && now.duration_since(found.fetched).unsigned_abs() < METADATA_TTL
        {
            return Ok(found.client.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(unavailable)?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(self.config.redirect_url.clone()).map_err(unavailable)?);
        *cached = Some(Discovered {
            client: client.clone(),
            fetched: now,
        });
        Ok(client)
    }

    /// Where to send the browser, with a fresh state, nonce and PKCE verifier.
    pub async fn authorize(&self, now: jiff::Timestamp) -> Result<Authorization, SsoError> {
        let client = self.client(now, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges an authorization code and checks the ID token: signature
    /// with the provider's keys, issuer, audience, expiry (with the clock
    /// skew allowed), nonce and the access token's hash.
    pub async fn finish(
        &self,
        now: jiff::Timestamp,
        code: String,
        pkce_verifier: String,
        nonce: &str,
    ) -> Result<Verified, SsoError> {
        let client = self.client(now, false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(unavailable)?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let nonce = Nonce::new(nonce.to_owned());
        let verified = match self.verify(&client, now, &response, Some(&nonce)) {
            // A key not seen yet: the provider may have rotated; fetch once more.
            Err(SsoError::Invalid(_)) if self.has_unknown_key(&client, &response) => {
                let client = self.client(now, true).await?;
                self.verify(&client, now, &response, Some(&nonce))?
            }
            other => other?,
        };
        self.with_userinfo(&client, &response, verified).await
    }

    /// Uses a refresh token: the provider's refusal means the person is
    /// gone (or their grant revoked); the new ID token, if any, is checked
    /// like a sign-in's (without a nonce) and must name the same subject.
    pub async fn refresh(
        &self,
        now: jiff::Timestamp,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Refreshed, SsoError> {
        let client = self.client(now, false).await?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .map_err(unavailable)?
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let next_refresh = response
            .refresh_token()
            .map_or_else(|| refresh_token.to_owned(), |t| t.secret().clone());
        if response.id_token().is_none() {
            // No new claims: the caller keeps what it had.
            return Ok(Refreshed {
                claims: None,
                refresh_token: next_refresh,
            });
        }
        let verified = self.verify(&client, now, &response, None)?;
        if verified.claims.subject != subject {
            return Err(SsoError::Invalid(
                "a refreshed ID token names another subject".to_owned(),
            ));
        }
        let verified = self.with_userinfo(&client, &response, verified).await?;
        Ok(Refreshed {
            claims: Some(verified.claims),
            refresh_token: next_refresh,
        })
    }

    fn has_unknown_key(
        &self,
        client: &Client,
        response: &openidconnect::core::CoreTokenResponse,
    ) -> bool {
        let Some(id_token) = response.id_token() else {
            return false;
        };
        id_token.signing_key(&client.id_token_verifier()).is_err()
    }

    fn verify(
        &self,
        client: &Client,
        now: jiff::Timestamp,
        response: &openidconnect::core::CoreTokenResponse,
        nonce: Option<&Nonce>,
    ) -> Result<Verified, SsoError> {
        let id_token = response
            .id_token()
            .ok_or_else(|| SsoError::Invalid("the provider sent no ID token".to_owned()))?;
        // Expiry is checked against our clock less the allowed skew.
        let skewed = now
            .checked_sub(jiff::SignedDuration::try_from(self.config.clock_skew).unwrap_or_default())
            .unwrap_or(now);
        let at =
            chrono::DateTime::from_timestamp_millis(skewed.as_millisecond()).unwrap_or_default();
        let late_enough = chrono::DateTime::from_timestamp_millis(
            now.as_millisecond()
                + i64::try_from(self.config.clock_skew.as_millis()).unwrap_or(60_000),
        )
        .unwrap_or_default();
        let verifier = client
            .id_token_verifier()
            .set_time_fn(move || at)
            .set_issue_time_verifier_fn(move |issued| {
                if issued > late_enough {
                    Err(format!("issued in the future ({issued})"))
                } else {
                    Ok(())
                }
            });
        let claims = match nonce {
            Some(nonce) => id_token.claims(&verifier, nonce),
            None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        }
        .map_err(|e| SsoError::Invalid(error_chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let algorithm = id_token
                .signing_alg()
                .map_err(|e| SsoError::Invalid(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| SsoError::Invalid(e.to_string()))?;
            let actual = AccessTokenHash::from_token(response.access_token(), algorithm, key)
                .map_err(|e| SsoError::Invalid(e.to_string()))?;
            if actual != *expected {
                return Err(SsoError::Invalid(
                    "the access token does not match the ID token's at_hash".to_owned(),
                ));
            }
        }
        // Verified above, so its other claims can be read from the payload.
        let other = payload(&id_token.to_string()).unwrap_or_default();
        Ok(Verified {
            claims: Claims {
                issuer: claims.issuer().to_string(),
                subject: claims.subject().to_string(),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified().unwrap_or(false),
                name: claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string()),
                groups: groups_in(other.get(&self.config.groups_claim)),
            },
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        })
    }

    /// Asks the userinfo endpoint for the groups when the ID token had none
    /// (some providers put them only there).
    async fn with_userinfo(
        &self,
        client: &Client,
        response: &openidconnect::core::CoreTokenResponse,
        mut verified: Verified,
    ) -> Result<Verified, SsoError> {
        if !verified.claims.groups.is_empty() {
            return Ok(verified);
        }
        let Ok(request) = client.user_info(
            response.access_token().clone(),
            Some(openidconnect::SubjectIdentifier::new(
                verified.claims.subject.clone(),
            )),
        ) else {
            return Ok(verified);
        };
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = match request
            .request_async(&self.http)
            .await
        {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "the provider's userinfo answer could not be used; going on without its groups");
                return Ok(verified);
            }
        };
        verified.claims.groups =
            groups_in(info.additional_claims().0.get(&self.config.groups_claim));
        Ok(verified)
    }
}

/// A token endpoint error: the provider's own refusal, or a failure to talk to it.
fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    error: openidconnect::RequestTokenError<RE, T>,
) -> SsoError {
    match &error {
        openidconnect::RequestTokenError::ServerResponse(response) => {
            SsoError::Refused(response.to_string())
        }
        _ => unavailable(error_chain(&error)),
    }
}

/// The claims of a JWT's payload (unverified: call only on a verified token).
fn payload(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Groups as a list of names: a claim may hold one string or an array.
fn groups_in(value: Option<&Value>) -> Vec<String> {
    /// More groups than this are cut (a claim is not a place for thousands).
    const MAX_GROUPS: usize = 500;
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .take(MAX_GROUPS)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_a_string_or_an_array_of_strings() {
        assert_eq!(groups_in(Some(&serde_json::json!("ops"))), vec!["ops"]);
        assert_eq!(
            groups_in(Some(&serde_json::json!(["ops", 3, "devs"]))),
            vec!["ops", "devs"]
        );
        assert!(groups_in(Some(&serde_json::json!({"ops": true}))).is_empty());
        assert!(groups_in(None).is_empty());
    }
}
