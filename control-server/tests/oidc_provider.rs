//! The OpenID provider the single sign-on tests run against (`common::oidc`,
//! `tests/oidc/provider.mjs`): a real `oidc-provider` on 127.0.0.1 serves its
//! discovery document and keys, signs a user in through its login form with
//! the authorization code and PKCE, and its ID token carries what the server
//! will map roles from.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::oidc::{
    ClientAuth, ClientConfig, HttpAgent, IdTokenTamper, LoginError, OidcProvider, ProviderConfig,
    UserConfig, decode_jwt_unverified,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/oidc/callback";

fn config() -> ProviderConfig {
    ProviderConfig::new(
        vec![
            ClientConfig::new("ccgate", "ccgate-secret", REDIRECT_URI),
            ClientConfig::new("other-app", "other-secret", "http://127.0.0.1:9/other")
                .with_auth(ClientAuth::SecretPost),
        ],
        vec![
            UserConfig::new("alice", "alice-password")
                .with_name("Alice Admin")
                .with_groups(&["ccgate-admins", "staff"]),
            UserConfig::new("bob", "bob-password").with_groups(&["staff"]),
        ],
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn discovery_and_keys_are_served() {
    let provider = OidcProvider::start(config()).await;
    eprintln!("the provider started in {:?}", provider.startup);
    let issuer = provider.issuer().to_owned();
    assert_eq!(issuer, format!("http://127.0.0.1:{}", provider.port()));

    let discovery = provider.discovery().await;
    assert_eq!(discovery["issuer"], issuer);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "end_session_endpoint",
    ] {
        let url = discovery[endpoint].as_str().unwrap();
        assert!(url.starts_with(&format!("{issuer}/")), "{endpoint}: {url}");
    }
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let scopes = discovery["scopes_supported"].as_array().unwrap();
    for scope in ["openid", "email", "profile", "groups"] {
        assert!(scopes.contains(&json!(scope)), "{scope} in {scopes:?}");
    }

    let jwks: serde_json::Value = reqwest::get(discovery["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(
        keys[0]["n"].as_str().unwrap().len() > 300,
        "a 2048-bit modulus"
    );
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");
}

#[tokio::test]
async fn a_login_gives_a_code_and_the_code_an_id_token_with_the_groups() {
    let provider = OidcProvider::start(config()).await;
    let began = std::time::Instant::now();
    let login = provider
        .login(
            "ccgate",
            "openid email profile groups",
            "alice",
            "alice-password",
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    eprintln!("the sign-in took {:?}", began.elapsed());
    assert!(!login.code.is_empty());
    assert_eq!(login.state, login.request.state);
    assert_eq!(login.iss.as_deref(), Some(provider.issuer()));
    assert!(login.callback.as_str().starts_with(REDIRECT_URI));

    // Another verifier than the challenge's: no tokens (PKCE is required).
    let (status, body) = provider
        .exchange_code(
            "ccgate",
            &login.code,
            REDIRECT_URI,
            &common::oidc::random_token(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // Signed in again (with the e-mail), the right verifier gets the tokens.
    let login = provider
        .login(
            "ccgate",
            "openid email profile groups",
            "alice@example.test",
            "alice-password",
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (status, tokens) = provider
        .exchange_code(
            "ccgate",
            &login.code,
            REDIRECT_URI,
            &login.request.code_verifier,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["access_token"].is_string());
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    let (header, claims) = decode_jwt_unverified(tokens["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "ccgate");
    assert_eq!(claims["nonce"], login.request.nonce.as_str());
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Admin");
    assert_eq!(claims["groups"], json!(["ccgate-admins", "staff"]));
    let exp = claims["exp"].as_i64().unwrap();
    assert!((exp - now() - 3600).abs() < 60, "exp {exp}, now {}", now());

    // The access token reaches the userinfo endpoint.
    let userinfo: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/me", provider.issuer()))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], "alice");
    assert_eq!(userinfo["groups"], json!(["ccgate-admins", "staff"]));
}

#[tokio::test]
async fn a_wrong_password_gives_no_code() {
    let provider = OidcProvider::start(config()).await;
    for (username, password) in [
        ("alice", "bob-password"),
        ("alice", ""),
        ("mallory", "alice-password"),
    ] {
        match provider.login("ccgate", "openid", username, password).await {
            Err(LoginError::Refused { status, message }) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                assert_eq!(message, "Wrong username or password.");
            }
            Err(other) => panic!("{username}/{password}: {other}"),
            Ok(login) => panic!("{username}/{password} got a code: {}", login.callback),
        }
    }
}

#[tokio::test]
async fn groups_without_their_scope_and_a_client_posting_its_secret() {
    let provider = OidcProvider::start(config()).await;
    // The client authenticates with client_secret_post.
    let login = provider
        .login("other-app", "openid email", "bob", "bob-password")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (status, tokens) = provider
        .exchange_code(
            "other-app",
            &login.code,
            "http://127.0.0.1:9/other",
            &login.request.code_verifier,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, claims) = decode_jwt_unverified(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "other-app");
    assert_eq!(claims["email"], "bob@example.test");
    assert!(claims.get("groups").is_none(), "no scope groups: {claims}");
    assert!(claims.get("name").is_none(), "no scope profile: {claims}");

    // With groups in every token, under another claim's name.
    let mut config = config();
    config.groups_always = true;
    config.groups_claim = "roles".to_owned();
    let provider = OidcProvider::start(config).await;
    let login = provider
        .login("ccgate", "openid", "bob", "bob-password")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (_, tokens) = provider
        .exchange_code(
            "ccgate",
            &login.code,
            REDIRECT_URI,
            &login.request.code_verifier,
        )
        .await;
    let (_, claims) = decode_jwt_unverified(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["roles"], json!(["staff"]));
}

#[tokio::test]
async fn short_lifetimes_a_moved_clock_a_changed_and_a_removed_user() {
    let mut config = config();
    config.id_token_ttl = Duration::from_secs(30);
    config.access_token_ttl = Duration::from_secs(20);
    let provider = OidcProvider::start(config).await;
    let scope = "openid groups";

    let login = provider
        .login("ccgate", scope, "bob", "bob-password")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (_, tokens) = provider
        .exchange_code(
            "ccgate",
            &login.code,
            REDIRECT_URI,
            &login.request.code_verifier,
        )
        .await;
    assert_eq!(tokens["expires_in"], 20, "{tokens}");
    let (_, claims) = decode_jwt_unverified(tokens["id_token"].as_str().unwrap());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 30);

    // Bob joins the admins: the refreshed ID token says so.
    provider
        .upsert_user(
            &UserConfig::new("bob", "bob-password").with_groups(&["staff", "ccgate-admins"]),
        )
        .await;
    let (status, refreshed) = provider
        .refresh("ccgate", tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, claims) = decode_jwt_unverified(refreshed["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["staff", "ccgate-admins"]));

    // The provider's clock ten minutes behind: its tokens are expired on arrival.
    provider.set_clock_offset(-600).await;
    let login = provider
        .login("ccgate", scope, "bob", "bob-password")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (status, late) = provider
        .exchange_code(
            "ccgate",
            &login.code,
            REDIRECT_URI,
            &login.request.code_verifier,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{late}");
    let (_, claims) = decode_jwt_unverified(late["id_token"].as_str().unwrap());
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp < now() - 500, "exp {exp}, now {}", now());
    provider.set_clock_offset(0).await;

    // Bob is gone: his refresh token fails, and he cannot sign in.
    provider.remove_user("bob").await;
    let (status, body) = provider
        .refresh("ccgate", refreshed["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    match provider.login("ccgate", scope, "bob", "bob-password").await {
        Err(LoginError::Refused { .. }) => {}
        Err(other) => panic!("a removed user: {other}"),
        Ok(login) => panic!("a removed user got a code: {}", login.callback),
    }
}

#[tokio::test]
async fn sign_in_stops_at_the_redirect_uri_and_keeps_the_session() {
    let provider = OidcProvider::start(config()).await;
    let request = provider.authorization_request("ccgate", "openid");
    let mut agent = HttpAgent::new();
    let callback = provider
        .sign_in(
            &mut agent,
            request.url.as_str(),
            "alice",
            "alice-password",
            REDIRECT_URI,
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(callback.query_pairs().any(|(key, _)| key == "code"));
    assert!(
        agent.cookie(provider.issuer(), "_session").is_some(),
        "the provider's session cookie"
    );

    // Signed in already: a second request comes back without the form.
    let again = provider.authorization_request("ccgate", "openid");
    let callback = provider
        .sign_in(&mut agent, again.url.as_str(), "-", "-", REDIRECT_URI)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let state = callback
        .query_pairs()
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned());
    assert_eq!(state.as_deref(), Some(again.state.as_str()));

    // An unknown redirect URI is refused by the provider on its own page.
    let mut bad = provider.authorization_request("ccgate", "openid");
    let query = bad
        .url
        .query()
        .unwrap()
        .replace("%2Fauth%2Foidc%2Fcallback", "%2Felsewhere");
    bad.url.set_query(Some(&query));
    match provider
        .sign_in(
            &mut agent,
            bad.url.as_str(),
            "alice",
            "alice-password",
            "http://127.0.0.1:9/",
        )
        .await
    {
        Err(LoginError::Page { status, body, .. }) => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(body.contains("redirect_uri"), "{body}");
        }
        other => panic!("{:?}", other.map(|url| url.to_string())),
    }
}

/// Whether the RS256 signature of `token` verifies with `jwk`, a public key
/// from the provider's JWKS (checked by node:crypto in a process of its own).
async fn rs256_signature_valid(jwk: &Value, token: &str) -> bool {
    const SCRIPT: &str = "const { createPublicKey, verify } = require('node:crypto');
const [jwk, token] = process.argv.slice(1);
const [header, claims, signature] = token.split('.');
const key = createPublicKey({ key: JSON.parse(jwk), format: 'jwk' });
const valid = verify('sha256', Buffer.from(`${header}.${claims}`), key, Buffer.from(signature, 'base64url'));
process.stdout.write(valid ? 'valid' : 'invalid');";
    let node = std::env::var("CCGATE_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let output = tokio::process::Command::new(node)
        .arg("-e")
        .arg(SCRIPT)
        .arg(jwk.to_string())
        .arg(token)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match stdout.as_ref() {
        "valid" => true,
        "invalid" => false,
        other => panic!("node answered {other}"),
    }
}

/// Each mode breaks the one thing it names in the ID tokens of both grants
/// (the signature is checked with the provider's published key: re-signed
/// tokens pass, the forged claims do not), the rest of the token as issued;
/// `none` gives good tokens again.
#[tokio::test]
async fn the_token_endpoint_hands_out_tampered_id_tokens_on_demand() {
    let provider = OidcProvider::start(config()).await;
    let issuer = provider.issuer().to_owned();
    let discovery = provider.discovery().await;
    let jwks: Value = reqwest::get(discovery["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"][0].clone();

    let modes = IdTokenTamper::ALL.into_iter().chain([IdTokenTamper::None]);
    for mode in modes {
        provider.set_id_token_tamper(mode).await;
        let login = provider
            .login("ccgate", "openid email", "alice", "alice-password")
            .await
            .unwrap_or_else(|error| panic!("{mode:?}: {error}"));
        let nonce = login.request.nonce.as_str();
        let (status, tokens) = provider
            .exchange_code(
                "ccgate",
                &login.code,
                REDIRECT_URI,
                &login.request.code_verifier,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {tokens}");
        let (status, refreshed) = provider
            .refresh("ccgate", tokens["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {refreshed}");

        for (grant, tokens) in [("code", &tokens), ("refresh", &refreshed)] {
            let what = format!("{mode:?}, {grant}");
            let id_token = tokens["id_token"].as_str().unwrap();
            let (header, claims) = decode_jwt_unverified(id_token);
            assert_eq!(header["alg"], "RS256", "{what}");
            assert_eq!(header["kid"], jwk["kid"], "{what}: the provider's key");
            assert_eq!(
                rs256_signature_valid(&jwk, id_token).await,
                mode != IdTokenTamper::Signature,
                "{what}: the signature"
            );

            let (sub, email) = match mode {
                IdTokenTamper::Signature => {
                    (IdTokenTamper::FORGED_SUB, IdTokenTamper::FORGED_EMAIL)
                }
                _ => ("alice", "alice@example.test"),
            };
            assert_eq!(claims["sub"], sub, "{what}");
            assert_eq!(claims["email"], email, "{what}");
            let aud = match mode {
                IdTokenTamper::Audience => IdTokenTamper::FOREIGN_AUDIENCE,
                _ => "ccgate",
            };
            assert_eq!(claims["aud"], aud, "{what}");
            let iss = match mode {
                IdTokenTamper::Issuer => IdTokenTamper::FOREIGN_ISSUER,
                _ => issuer.as_str(),
            };
            assert_eq!(claims["iss"], iss, "{what}");
            match (mode, grant) {
                (IdTokenTamper::Nonce, _) => {
                    assert_eq!(claims["nonce"], IdTokenTamper::REPLAYED_NONCE, "{what}");
                }
                (_, "code") => assert_eq!(claims["nonce"], nonce, "{what}"),
                // A refreshed ID token need not repeat the nonce.
                _ => assert!(
                    claims.get("nonce").is_none_or(|got| got == nonce),
                    "{what}: {claims}"
                ),
            }
            let now = now();
            let (exp, iat) = match mode {
                IdTokenTamper::Expired => (now - 3600, now - 7200),
                _ => (now + 3600, now),
            };
            let (got_exp, got_iat) = (
                claims["exp"].as_i64().unwrap(),
                claims["iat"].as_i64().unwrap(),
            );
            assert!(
                (got_exp - exp).abs() < 60,
                "{what}: exp {got_exp}, now {now}"
            );
            assert!(
                (got_iat - iat).abs() < 60,
                "{what}: iat {got_iat}, now {now}"
            );
        }
    }
}
