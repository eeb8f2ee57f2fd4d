use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::paths::Platform;

const SECRET: &str = "sk-ant-oat01-team-secret-0123456789";

struct Machine {
    paths: Paths,
    ledger: Ledger,
    _root: tempfile::TempDir,
}

fn machine() -> Machine {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path(), Platform::Linux);
    crate::fsutil::create_dir_with_mode(&paths.state_dir(), 0o700).unwrap();
    let ledger = Ledger::open(&paths.state_db()).unwrap();
    Machine {
        paths,
        ledger,
        _root: root,
    }
}

fn policy(credential: CredentialMode) -> Policy {
    Policy {
        credential,
        ..crate::test_support::policy(serde_json::json!([]))
    }
}

fn team(kind: CredentialKind) -> Policy {
    policy(CredentialMode::TeamCredential {
        subscription_id: 7,
        kind,
        version: 2,
    })
}

fn fetched(kind: CredentialKind) -> CredentialResponse {
    CredentialResponse {
        subscription_id: 7,
        kind,
        version: 2,
        secret: SECRET.into(),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, value.parse().unwrap());
    }
    map
}

#[test]
fn personal_logins_pass_untouched() {
    let m = machine();
    let vault = CredentialVault::load(&m.paths, &m.ledger, 1);
    let mut request = headers(&[("authorization", "Bearer sk-ant-oat01-mine")]);
    let used = vault.apply(Some(&policy(CredentialMode::PersonalLogin)), &mut request);
    assert_eq!(used, Ok(Some(CredentialUse::Personal)));
    assert_eq!(request["authorization"], "Bearer sk-ant-oat01-mine");
}

#[test]
fn the_placeholder_becomes_the_team_credential_and_nothing_else_does() {
    let m = machine();
    let vault = CredentialVault::load(&m.paths, &m.ledger, 1);
    let placeholder = vault.placeholder().to_owned();
    let oauth = team(CredentialKind::OauthToken);
    let bearer = format!("Bearer {placeholder}");

    // Not fetched yet: refused with a reason, nothing swapped.
    let mut request = headers(&[("authorization", &bearer)]);
    assert_eq!(
        vault.apply(Some(&oauth), &mut request),
        Err(CredentialRefusal::NotReceived)
    );
    assert!(vault.needs_fetch(&oauth.credential));

    vault.store(fetched(CredentialKind::OauthToken)).unwrap();
    assert!(!vault.needs_fetch(&oauth.credential));
    let mut request = headers(&[("authorization", &bearer)]);
    assert_eq!(
        vault.apply(Some(&oauth), &mut request),
        Ok(Some(CredentialUse::Team))
    );
    assert_eq!(
        request["authorization"],
        format!("Bearer {SECRET}").as_str()
    );
    assert!(request["authorization"].is_sensitive());

    // The placeholder in the other header still gets the right one.
    let mut request = headers(&[("x-api-key", &placeholder)]);
    vault.apply(Some(&oauth), &mut request).unwrap();
    assert!(request.get("x-api-key").is_none());
    assert_eq!(
        request["authorization"],
        format!("Bearer {SECRET}").as_str()
    );

    // Someone's own login or key: refused.
    for own in [
        headers(&[("authorization", "Bearer sk-ant-oat01-copied")]),
        headers(&[("x-api-key", "sk-ant-api03-mine")]),
    ] {
        let mut own = own;
        assert_eq!(
            vault.apply(Some(&oauth), &mut own),
            Err(CredentialRefusal::Foreign)
        );
    }
    // Unless the team lets personal API keys through, metered as such.
    let mut lenient = team(CredentialKind::OauthToken);
    lenient.personal_api_keys = PersonalApiKeys::Allow;
    let mut own = headers(&[("x-api-key", "sk-ant-api03-mine")]);
    assert_eq!(
        vault.apply(Some(&lenient), &mut own),
        Ok(Some(CredentialUse::PersonalApiKey))
    );
    assert_eq!(own["x-api-key"], "sk-ant-api03-mine");
    // Calls without any credential pass as they are.
    assert_eq!(vault.apply(Some(&oauth), &mut HeaderMap::new()), Ok(None));

    // An API key subscription travels as x-api-key.
    let mut request = headers(&[("x-api-key", &placeholder)]);
    vault.store(fetched(CredentialKind::ApiKey)).unwrap();
    vault
        .apply(Some(&team(CredentialKind::ApiKey)), &mut request)
        .unwrap();
    assert_eq!(request["x-api-key"], SECRET);
}

#[test]
fn paused_and_killed_people_get_no_swap() {
    let m = machine();
    let vault = CredentialVault::load(&m.paths, &m.ledger, 1);
    vault.store(fetched(CredentialKind::OauthToken)).unwrap();
    let bearer = format!("Bearer {}", vault.placeholder());
    for status in [UserStatus::Paused, UserStatus::Killed] {
        let mut stopped = team(CredentialKind::OauthToken);
        stopped.status = status;
        let mut request = headers(&[("authorization", &bearer)]);
        assert_eq!(
            vault.apply(Some(&stopped), &mut request),
            Err(CredentialRefusal::Stopped(status))
        );
        assert_eq!(request["authorization"], bearer.as_str());
    }
}

#[test]
fn the_cache_is_sealed_root_only_and_survives_a_restart() {
    let m = machine();
    let placeholder = {
        let vault = CredentialVault::load(&m.paths, &m.ledger, 1);
        vault.store(fetched(CredentialKind::OauthToken)).unwrap();
        vault.placeholder().to_owned()
    };
    let cache = m.paths.state_dir().join("credential.sealed");
    let bytes = std::fs::read(&cache).unwrap();
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    for file in [cache.clone(), m.paths.state_dir().join("machine.key")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let vault = CredentialVault::load(&m.paths, &m.ledger, 1);
    assert_eq!(
        vault.placeholder(),
        placeholder,
        "the placeholder is per device, stable"
    );
    assert!(vault.holds_secret());
    // Sealed for this device: another device id cannot open it.
    assert!(!CredentialVault::load(&m.paths, &m.ledger, 2).holds_secret());
    vault.forget();
    assert!(!cache.exists());
    assert!(!CredentialVault::load(&m.paths, &m.ledger, 1).holds_secret());
}
