//! ccgate's keys in Claude Code's managed settings: what they are, merging
//! them in (keeping every other key), checking them, and taking them out
//! again so the file is what it was before setup.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use ccgate_quota::{CredentialKind, PersonalApiKeys};
use serde_json::{Map, Value};

/// Every proxy variable Claude Code reads; lowercase wins over uppercase, so
/// all of them are set.
pub const PROXY_VARIABLES: [&str; 6] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Hosts that bypass the proxy: loopback only.
pub const NO_PROXY_LOOPBACK: &str = "localhost,127.0.0.1,::1";

pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// Variables that would let a person add headers to Claude Code's requests
/// or send them elsewhere (another transport, another provider, another
/// endpoint): managed settings switch each off, whatever the shell says.
pub const PINNED_OFF: [&str; 20] = [
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_UNIX_SOCKET",
    "ANTHROPIC_API_HOST",
    "CLAUDE_CODE_API_BASE_URL",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_USE_ANTHROPIC_AWS",
    "CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD",
    "CLAUDE_CODE_USE_MANTLE",
    "CLAUDE_CODE_USE_GATEWAY",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_FOUNDRY_RESOURCE",
    "ANTHROPIC_AWS_BASE_URL",
    "ANTHROPIC_GOOGLE_CLOUD_BASE_URL",
    "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
    "CLAUDE_CODE_SKIP_VERTEX_AUTH",
];

/// Where Claude Code takes a login from the environment; in team-credential
/// mode one holds the placeholder and the others are switched off.
pub const CREDENTIAL_VARIABLES: [&str; 3] = [
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
];

/// What managed settings say about the login in team-credential mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamLogin<'a> {
    pub kind: CredentialKind,
    pub placeholder: &'a str,
    pub personal_api_keys: PersonalApiKeys,
}

/// `base` (ccgate's entries as setup wrote them) with the pins and, in
/// team-credential mode, the placeholder login.
pub fn with_login(
    base: &BTreeMap<String, String>,
    team: Option<TeamLogin<'_>>,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    for name in CREDENTIAL_VARIABLES {
        env.remove(name);
    }
    for name in PINNED_OFF {
        env.insert(name.to_owned(), String::new());
    }
    if let Some(team) = team {
        let placeholder_in = match team.kind {
            CredentialKind::OauthToken => "CLAUDE_CODE_OAUTH_TOKEN",
            CredentialKind::ApiKey => "ANTHROPIC_API_KEY",
        };
        for name in CREDENTIAL_VARIABLES {
            let own_key_allowed =
                name == "ANTHROPIC_API_KEY" && team.personal_api_keys == PersonalApiKeys::Allow;
            if name == placeholder_in {
                env.insert(name.to_owned(), team.placeholder.to_owned());
            } else if !own_key_allowed {
                env.insert(name.to_owned(), String::new());
            }
        }
    }
    env
}

/// Moves `current` from ccgate's entries `old` to `new`: entries ccgate no
/// longer sets get their value from before setup back (or go), then `new`
/// is merged in. Every other key stays.
pub fn retarget(
    current: Option<&[u8]>,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    original: Option<&[u8]>,
) -> Result<Vec<u8>, SettingsError> {
    let dropped: BTreeMap<String, String> = old
        .iter()
        .filter(|(name, _)| !new.contains_key(*name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let without = match unmerge(current, &dropped, original) {
        Unmerged::Write(bytes) => Some(bytes),
        Unmerged::Delete => None,
        Unmerged::Keep => current.map(<[u8]>::to_vec),
    };
    merge(without.as_deref(), new)
}

/// The `env` entries ccgate owns in managed settings (personal-login mode).
pub fn ccgate_env(listen: SocketAddr, ca_cert: &Path) -> BTreeMap<String, String> {
    let proxy = format!("http://127.0.0.1:{}", listen.port());
    let mut env = BTreeMap::new();
    for name in PROXY_VARIABLES {
        env.insert(name.to_owned(), proxy.clone());
    }
    env.insert("no_proxy".to_owned(), NO_PROXY_LOOPBACK.to_owned());
    env.insert("NO_PROXY".to_owned(), NO_PROXY_LOOPBACK.to_owned());
    env.insert(
        "NODE_EXTRA_CA_CERTS".to_owned(),
        ca_cert.display().to_string(),
    );
    env.insert(
        "ANTHROPIC_BASE_URL".to_owned(),
        ANTHROPIC_BASE_URL.to_owned(),
    );
    with_login(&env, None)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("it is not valid JSON: {0}")]
    NotJson(String),
    #[error("it is not a JSON object")]
    NotAnObject,
    #[error("its \"env\" is not a JSON object")]
    EnvNotAnObject,
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, SettingsError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SettingsError::NotAnObject),
        Err(e) => Err(SettingsError::NotJson(e.to_string())),
    }
}

fn to_bytes(map: &Map<String, Value>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(map).expect("settings serialize");
    bytes.push(b'\n');
    bytes
}

/// `existing` (or an empty file) with ccgate's entries set under `env`.
pub fn merge(
    existing: Option<&[u8]>,
    env: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SettingsError> {
    let mut map = match existing {
        Some(bytes) => parse_object(bytes)?,
        None => Map::new(),
    };
    let entry = map
        .entry("env")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(target) = entry else {
        return Err(SettingsError::EnvNotAnObject);
    };
    for (name, value) in env {
        target.insert(name.clone(), Value::String(value.clone()));
    }
    Ok(to_bytes(&map))
}

/// ccgate's keys that are missing or changed in `current`.
pub fn drifted_keys(
    current: &[u8],
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, SettingsError> {
    let map = parse_object(current)?;
    let target = match map.get("env") {
        Some(Value::Object(target)) => Some(target),
        Some(_) => return Err(SettingsError::EnvNotAnObject),
        None => None,
    };
    Ok(env
        .iter()
        .filter(|(name, value)| {
            target.and_then(|t| t.get(name.as_str())) != Some(&Value::String((*value).clone()))
        })
        .map(|(name, _)| name.clone())
        .collect())
}

/// What uninstall does with the managed-settings file.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmerged {
    Write(Vec<u8>),
    Delete,
    /// The file is not ccgate's to repair (it does not parse); left alone.
    Keep,
}

/// Takes ccgate's entries out of `current`. Entries ccgate replaced get the
/// original's value back; keys someone added since setup stay. When nothing
/// else changed, the result is the original, byte for byte (or no file).
pub fn unmerge(
    current: Option<&[u8]>,
    env: &BTreeMap<String, String>,
    original: Option<&[u8]>,
) -> Unmerged {
    let original_map = original.and_then(|bytes| parse_object(bytes).ok());
    let Some(current) = current else {
        return match original {
            Some(bytes) => Unmerged::Write(bytes.to_vec()),
            None => Unmerged::Delete,
        };
    };
    let Ok(mut map) = parse_object(current) else {
        return Unmerged::Keep;
    };
    let original_env = original_map
        .as_ref()
        .and_then(|m| m.get("env"))
        .and_then(Value::as_object);
    if let Some(Value::Object(target)) = map.get_mut("env") {
        for (name, value) in env {
            if target.get(name) != Some(&Value::String(value.clone())) {
                continue; // someone else's value now: theirs to keep
            }
            match original_env.and_then(|e| e.get(name)) {
                Some(before) => target.insert(name.clone(), before.clone()),
                None => target.remove(name),
            };
        }
        let had_env = original_map.as_ref().is_some_and(|m| m.contains_key("env"));
        if target.is_empty() && !had_env {
            map.remove("env");
        }
    }
    match (&original_map, original) {
        (Some(before), Some(bytes)) if *before == map => Unmerged::Write(bytes.to_vec()),
        (None, None) if map.is_empty() => Unmerged::Delete,
        _ => Unmerged::Write(to_bytes(&map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        ccgate_env(
            "127.0.0.1:47770".parse().unwrap(),
            Path::new("/etc/ccgate/ca.pem"),
        )
    }

    #[test]
    fn the_env_covers_every_bypass_variable() {
        let env = env();
        for name in PROXY_VARIABLES {
            assert_eq!(env[name], "http://127.0.0.1:47770");
        }
        assert_eq!(env["NO_PROXY"], "localhost,127.0.0.1,::1");
        assert_eq!(env["no_proxy"], env["NO_PROXY"]);
        assert_eq!(env["NODE_EXTRA_CA_CERTS"], "/etc/ccgate/ca.pem");
        assert_eq!(env["ANTHROPIC_BASE_URL"], "https://api.anthropic.com");
        for name in PINNED_OFF {
            assert_eq!(env[name], "", "{name} is switched off");
        }
        assert_eq!(env.len(), 10 + PINNED_OFF.len());
        assert!(
            CREDENTIAL_VARIABLES
                .iter()
                .all(|name| !env.contains_key(*name))
        );
    }

    #[test]
    fn team_mode_puts_the_placeholder_where_the_cli_looks_and_switches_the_rest_off() {
        let team = |kind, personal_api_keys| TeamLogin {
            kind,
            placeholder: "ccgate-placeholder-1",
            personal_api_keys,
        };
        let oauth = with_login(
            &env(),
            Some(team(CredentialKind::OauthToken, PersonalApiKeys::Deny)),
        );
        assert_eq!(oauth["CLAUDE_CODE_OAUTH_TOKEN"], "ccgate-placeholder-1");
        assert_eq!(oauth["ANTHROPIC_API_KEY"], "");
        assert_eq!(oauth["ANTHROPIC_AUTH_TOKEN"], "");
        let lenient = with_login(
            &env(),
            Some(team(CredentialKind::OauthToken, PersonalApiKeys::Allow)),
        );
        assert!(
            !lenient.contains_key("ANTHROPIC_API_KEY"),
            "a person's own key may pass"
        );
        let api = with_login(
            &env(),
            Some(team(CredentialKind::ApiKey, PersonalApiKeys::Deny)),
        );
        assert_eq!(api["ANTHROPIC_API_KEY"], "ccgate-placeholder-1");
        assert_eq!(api["CLAUDE_CODE_OAUTH_TOKEN"], "");
        // Back to personal logins: the login variables are ccgate's no more.
        assert_eq!(with_login(&oauth, None), env());
    }

    #[test]
    fn retargeting_adds_and_takes_back_only_ccgates_entries() {
        let original = b"{\"env\": {\"ANTHROPIC_API_KEY\": \"sk-team-wide\", \"FOO\": \"1\"}}";
        let installed = merge(Some(original), &env()).unwrap();
        let team = with_login(
            &env(),
            Some(TeamLogin {
                kind: CredentialKind::OauthToken,
                placeholder: "ccgate-placeholder-1",
                personal_api_keys: PersonalApiKeys::Deny,
            }),
        );
        let in_team = retarget(Some(&installed), &env(), &team, Some(original)).unwrap();
        let value: Value = serde_json::from_slice(&in_team).unwrap();
        assert_eq!(
            value["env"]["CLAUDE_CODE_OAUTH_TOKEN"],
            "ccgate-placeholder-1"
        );
        assert_eq!(value["env"]["ANTHROPIC_API_KEY"], "");
        assert_eq!(value["env"]["FOO"], "1");
        let back = retarget(Some(&in_team), &team, &env(), Some(original)).unwrap();
        let value: Value = serde_json::from_slice(&back).unwrap();
        assert!(value["env"].get("CLAUDE_CODE_OAUTH_TOKEN").is_none());
        assert_eq!(
            value["env"]["ANTHROPIC_API_KEY"], "sk-team-wide",
            "the admin's own value is back"
        );
        assert!(drifted_keys(&back, &env()).unwrap().is_empty());
    }

    #[test]
    fn merge_keeps_other_keys_and_unmerge_gives_the_original_bytes_back() {
        let original = b"{\"permissions\":{\"deny\":[\"WebFetch\"]},\n \"env\": {\"FOO\": \"1\", \"HTTPS_PROXY\": \"http://corp:3128\"}}";
        let merged = merge(Some(original), &env()).unwrap();
        let value: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(value["permissions"]["deny"][0], "WebFetch");
        assert_eq!(value["env"]["FOO"], "1");
        assert_eq!(value["env"]["HTTPS_PROXY"], "http://127.0.0.1:47770");
        assert!(drifted_keys(&merged, &env()).unwrap().is_empty());

        let back = unmerge(Some(&merged), &env(), Some(original));
        assert_eq!(back, Unmerged::Write(original.to_vec()));
    }

    #[test]
    fn unmerge_keeps_what_the_admin_added_since() {
        let original = b"{\"model\": \"sonnet\"}";
        let merged = merge(Some(original), &env()).unwrap();
        let mut value: Value = serde_json::from_slice(&merged).unwrap();
        value["cleanupPeriodDays"] = 7.into();
        value["env"]["TEAM"] = "x".into();
        let edited = serde_json::to_vec(&value).unwrap();
        let Unmerged::Write(back) = unmerge(Some(&edited), &env(), Some(original)) else {
            panic!("expected a write");
        };
        let back: Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"model": "sonnet", "cleanupPeriodDays": 7, "env": {"TEAM": "x"}})
        );
    }

    #[test]
    fn without_an_original_file_unmerge_deletes_it() {
        let merged = merge(None, &env()).unwrap();
        assert_eq!(unmerge(Some(&merged), &env(), None), Unmerged::Delete);
        assert_eq!(unmerge(None, &env(), None), Unmerged::Delete);
        assert_eq!(
            unmerge(None, &env(), Some(b"{}")),
            Unmerged::Write(b"{}".to_vec())
        );
        assert_eq!(unmerge(Some(b"{oops"), &env(), None), Unmerged::Keep);
    }

    #[test]
    fn drift_names_the_changed_keys_and_refuses_garbage() {
        let merged = merge(None, &env()).unwrap();
        let mut value: Value = serde_json::from_slice(&merged).unwrap();
        value["env"]["https_proxy"] = "http://elsewhere:1".into();
        value["env"]
            .as_object_mut()
            .unwrap()
            .remove("NODE_EXTRA_CA_CERTS");
        let drifted = drifted_keys(&serde_json::to_vec(&value).unwrap(), &env()).unwrap();
        assert_eq!(drifted, ["NODE_EXTRA_CA_CERTS", "https_proxy"]);
        assert!(matches!(
            drifted_keys(b"[1]", &env()),
            Err(SettingsError::NotAnObject)
        ));
        assert!(matches!(
            merge(Some(b"{\"env\": 3}"), &env()),
            Err(SettingsError::EnvNotAnObject)
        ));
    }
}
