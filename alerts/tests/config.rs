//! Channel configs as the admin API sees them: JSON shape, defaults,
//! validation, redaction and merging secrets back.

use std::collections::BTreeMap;

use ccgate_alerts::{
    ChannelConfig, ChannelKind, ConfigError, EmailConfig, MatrixConfig, NtfyConfig, REDACTED,
    Secret, SmtpSecurity, WebhookConfig, WebhookMethod,
};
use serde_json::json;

fn parse(v: serde_json::Value) -> ChannelConfig {
    serde_json::from_value(v).unwrap()
}

fn all_kinds() -> Vec<ChannelConfig> {
    vec![
        parse(json!({"kind": "discord", "webhook_url": "https://discord.com/api/webhooks/1/tok"})),
        parse(json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"})),
        parse(json!({"kind": "pushover", "token": "apptoken", "user": "userkey"})),
        parse(
            json!({"kind": "matrix", "homeserver": "https://m.example.org", "access_token": "syt_x", "room_id": "!r:m.example.org"}),
        ),
        parse(json!({"kind": "ntfy", "topic": "ccgate-alerts", "token": "tk_x"})),
        parse(
            json!({"kind": "email", "host": "smtp.example.org", "port": 587, "security": "starttls",
                     "username": "u", "password": "pw", "from": "alerts@example.org", "to": ["a@example.org"]}),
        ),
        parse(
            json!({"kind": "webhook", "url": "https://n8n.example.org/webhook/abc",
                     "headers": {"X-Api-Key": "k"}, "body_template": "{\"text\": \"{title}\"}"}),
        ),
    ]
}

#[test]
fn every_kind_round_trips_and_validates() {
    let kinds: Vec<ChannelKind> = all_kinds().iter().map(ChannelConfig::kind).collect();
    assert_eq!(kinds.len(), 7);
    for c in all_kinds() {
        c.validate().unwrap_or_else(|e| panic!("{}: {e}", c.kind()));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["kind"], c.kind().as_str());
        let back: ChannelConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn defaults_are_filled_in() {
    let ChannelConfig::Pushover(p) = parse(json!({"kind": "pushover", "token": "t", "user": "u"}))
    else {
        panic!()
    };
    assert_eq!(p.api_url, "https://api.pushover.net/1/messages.json");
    let ChannelConfig::Ntfy(n) = parse(json!({"kind": "ntfy", "topic": "t"})) else {
        panic!()
    };
    assert_eq!(n.server, "https://ntfy.sh");
    assert_eq!(n.token, None);
    let ChannelConfig::Webhook(w) =
        parse(json!({"kind": "webhook", "url": "https://x.example.org/"}))
    else {
        panic!()
    };
    assert_eq!(w.method, WebhookMethod::Post);
    assert!(w.headers.is_empty());
    assert_eq!(w.body_template, None);
}

#[test]
fn unknown_kinds_and_fields_are_rejected() {
    assert!(serde_json::from_value::<ChannelConfig>(json!({"kind": "telegram", "x": 1})).is_err());
    // A typo must not silently drop an optional field.
    assert!(
        serde_json::from_value::<ChannelConfig>(json!({"kind": "ntfy", "topic": "t", "tokn": "x"}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<ChannelConfig>(
            json!({"kind": "webhook", "url": "https://x/", "method": "DELETE"})
        )
        .is_err()
    );
}

#[test]
fn validation_names_the_problem() {
    let err = |v| parse(v).validate().unwrap_err();
    assert!(matches!(
        err(json!({"kind": "discord", "webhook_url": "http://discord.com/api/webhooks/1/x"})),
        ConfigError::InsecureUrl { field } if field == "webhook_url"
    ));
    assert!(matches!(
        err(json!({"kind": "slack", "webhook_url": ""})),
        ConfigError::Empty { field } if field == "webhook_url"
    ));
    assert!(matches!(
        err(json!({"kind": "matrix", "homeserver": "https://m.example.org", "access_token": "t", "room_id": "#alias:m.example.org"})),
        ConfigError::Invalid { field, .. } if field == "room_id"
    ));
    assert!(matches!(
        err(json!({"kind": "ntfy", "topic": "has space"})),
        ConfigError::Invalid { field, .. } if field == "topic"
    ));
    assert!(matches!(
        err(json!({"kind": "pushover", "token": "t", "user": "u", "api_url": "not a url"})),
        ConfigError::InvalidUrl { field, .. } if field == "api_url"
    ));
    let e = err(
        json!({"kind": "email", "host": "smtp.example.org", "port": 25, "security": "none",
                       "from": "a@example.org", "to": ["b@example.org"]}),
    );
    assert!(matches!(e, ConfigError::PlainSmtpNotLoopback { .. }));
    assert!(e.to_string().contains("smtp.example.org"), "{e}");
    let e = err(
        json!({"kind": "webhook", "url": "https://x.example.org/", "body_template": "{\"t\": {title}}"}),
    );
    assert!(matches!(e, ConfigError::Template { .. }), "{e}");
}

#[test]
fn redacted_copy_hides_every_secret_and_keeps_the_rest() {
    for c in all_kinds() {
        let r = c.redacted();
        let text = serde_json::to_string(&r).unwrap();
        for secret in [
            "/1/tok",
            "services/T/B/x",
            "apptoken",
            "userkey",
            "syt_x",
            "tk_x",
            "\"pw\"",
            "webhook/abc",
            "\"k\"",
        ] {
            assert!(!text.contains(secret), "{}: {secret} in {text}", c.kind());
        }
        assert!(text.contains(REDACTED), "{text}");
        // Every advertised secret field is among the redacted ones.
        let v = serde_json::to_value(&r).unwrap();
        for field in c.secret_fields() {
            match &v[*field] {
                serde_json::Value::String(s) => assert_eq!(s, REDACTED, "{}.{field}", c.kind()),
                serde_json::Value::Object(m) => assert!(m.values().all(|s| s == REDACTED)),
                other => panic!("{}.{field} = {other}", c.kind()),
            }
        }
        // A redacted config is never sendable as is.
        assert!(
            matches!(r.validate(), Err(ConfigError::Redacted { .. })),
            "{}",
            c.kind()
        );
        // Debug output (logs) never shows secrets either.
        assert!(!format!("{c:?}").contains("syt_x"));
    }
    // Non-secret fields survive.
    let ChannelConfig::Email(e) = all_kinds()[5].redacted() else {
        panic!()
    };
    assert_eq!(
        (e.host.as_str(), e.port, e.username.as_deref()),
        ("smtp.example.org", 587, Some("u"))
    );
}

#[test]
fn merge_restores_unchanged_secrets() {
    for previous in all_kinds() {
        let mut edited = previous.redacted();
        edited.merge_secrets(&previous);
        assert_eq!(edited, previous, "{}", previous.kind());
        edited.validate().unwrap();
    }
}

#[test]
fn merge_keeps_a_newly_typed_secret() {
    let previous = all_kinds()[3].clone();
    let mut edited = previous.redacted();
    let ChannelConfig::Matrix(m) = &mut edited else {
        panic!()
    };
    m.access_token = Secret::new("syt_new");
    m.room_id = "!other:m.example.org".into();
    edited.merge_secrets(&previous);
    let ChannelConfig::Matrix(m) = &edited else {
        panic!()
    };
    assert_eq!(m.access_token.expose(), "syt_new");
    assert_eq!(m.room_id, "!other:m.example.org");
}

#[test]
fn merge_does_not_send_an_old_token_to_a_new_host() {
    let previous = ChannelConfig::Matrix(MatrixConfig {
        homeserver: "https://m.example.org".into(),
        access_token: "syt_old".into(),
        room_id: "!r:m.example.org".into(),
    });
    let mut edited = previous.redacted();
    let ChannelConfig::Matrix(m) = &mut edited else {
        panic!()
    };
    m.homeserver = "https://evil.example.net".into();
    edited.merge_secrets(&previous);
    let text = serde_json::to_string(&edited).unwrap();
    assert!(!text.contains("syt_old"), "{text}");
    assert!(
        matches!(edited.validate(), Err(ConfigError::Redacted { field }) if field == "access_token")
    );

    let previous = ChannelConfig::Email(EmailConfig {
        host: "smtp.example.org".into(),
        port: 587,
        security: SmtpSecurity::Starttls,
        username: Some("u".into()),
        password: Some("pw".into()),
        from: "a@example.org".into(),
        to: vec!["b@example.org".into()],
    });
    let mut edited = previous.redacted();
    let ChannelConfig::Email(e) = &mut edited else {
        panic!()
    };
    e.host = "smtp.other.example".into();
    edited.merge_secrets(&previous);
    assert!(edited.validate().is_err());

    let previous = ChannelConfig::Ntfy(NtfyConfig {
        server: "https://ntfy.example.org".into(),
        topic: "t".into(),
        token: Some("tk_old".into()),
    });
    let mut edited = previous.redacted();
    let ChannelConfig::Ntfy(n) = &mut edited else {
        panic!()
    };
    n.server = "https://ntfy.sh".into();
    edited.merge_secrets(&previous);
    assert!(!serde_json::to_string(&edited).unwrap().contains("tk_old"));
}

#[test]
fn webhook_headers_merge_per_name_and_only_for_the_same_url() {
    let previous = WebhookConfig {
        url: "https://hooks.example.org/a".into(),
        method: WebhookMethod::Post,
        headers: BTreeMap::from([
            ("X-Api-Key".into(), "k1".into()),
            ("X-Other".into(), "k2".into()),
        ]),
        body_template: None,
    };
    let prev = ChannelConfig::Webhook(previous.clone());
    // Same URL: kept header keeps its value, a new header keeps what was typed.
    let mut edited = prev.redacted();
    let ChannelConfig::Webhook(w) = &mut edited else {
        panic!()
    };
    w.headers.remove("X-Other");
    w.headers.insert("X-New".into(), "k3".into());
    edited.merge_secrets(&prev);
    let ChannelConfig::Webhook(w) = &edited else {
        panic!()
    };
    assert_eq!(w.url, previous.url);
    assert_eq!(w.headers["X-Api-Key"].expose(), "k1");
    assert_eq!(w.headers["X-New"].expose(), "k3");
    assert!(!w.headers.contains_key("X-Other"));
    // New URL: header secrets are not carried to it.
    let mut edited = prev.redacted();
    let ChannelConfig::Webhook(w) = &mut edited else {
        panic!()
    };
    w.url = "https://elsewhere.example.org/".into();
    edited.merge_secrets(&prev);
    let ChannelConfig::Webhook(w) = &edited else {
        panic!()
    };
    assert!(w.headers["X-Api-Key"].is_redacted());
}

#[test]
fn merge_across_kinds_carries_nothing() {
    let previous = all_kinds()[0].clone();
    let mut edited = all_kinds()[1].redacted();
    edited.merge_secrets(&previous);
    assert!(matches!(
        edited.validate(),
        Err(ConfigError::Redacted { .. })
    ));
}

#[test]
fn target_has_no_secret() {
    let c = &all_kinds()[0];
    assert_eq!(c.target(), "discord (discord.com)");
    assert_eq!(all_kinds()[5].target(), "email (smtp.example.org:587)");
    assert_eq!(all_kinds()[4].target(), "ntfy (ntfy.sh/ccgate-alerts)");
}
