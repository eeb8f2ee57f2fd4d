//! Email against the minimal SMTP receiver.

use ccgate_alerts::{ChannelConfig, DeliveryError, EmailConfig, SmtpSecurity};

use crate::common::{Reports, deliverer, fast_policy, notification};
use crate::smtp_server::{Options, start};

fn config(port: u16, security: SmtpSecurity, auth: Option<(&str, &str)>) -> ChannelConfig {
    ChannelConfig::Email(EmailConfig {
        host: "127.0.0.1".into(),
        port,
        security,
        username: auth.map(|(u, _)| u.to_owned()),
        password: auth.map(|(_, p)| p.into()),
        from: "ccgate alerts <alerts@ccgate.test>".into(),
        to: vec!["admin@ccgate.test".into(), "Ops <ops@ccgate.test>".into()],
    })
}

#[tokio::test]
async fn plain_smtp_with_auth_plain_delivers_headers_and_body() {
    let server = start(Options {
        mechanisms: "PLAIN LOGIN",
        credentials: Some(("alerts", "s3cret pw")),
        rcpt_reply: None,
    })
    .await;
    let n = notification();
    let channel = config(
        server.port,
        SmtpSecurity::None,
        Some(("alerts", "s3cret pw")),
    );
    let delivered = deliverer().deliver(&channel, &n).await.unwrap();
    assert_eq!(delivered.status, 250);
    assert!(delivered.detail.unwrap().contains("queued as 4F2A1"));

    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.auth, Some(("alerts".into(), "s3cret pw".into())));
    assert_eq!(mail.mechanism, "PLAIN");
    assert_eq!(mail.mail_from, "alerts@ccgate.test");
    assert_eq!(mail.rcpt_to, ["admin@ccgate.test", "ops@ccgate.test"]);
    assert_eq!(
        mail.header("From").as_deref(),
        Some("\"ccgate alerts\" <alerts@ccgate.test>")
    );
    let to = mail.header("To").unwrap();
    assert!(
        to.contains("admin@ccgate.test") && to.contains("Ops <ops@ccgate.test>"),
        "{to}"
    );
    assert_eq!(mail.header("Subject").as_deref(), Some("Quota at 90%"));
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<ccgate.{}@ccgate.test>", n.id.simple()))
    );
    let body = mail.body();
    assert!(
        body.contains("team-max is at 90% of its 5-hour window."),
        "{body}"
    );
    assert!(body.contains("Usage: 90% of the 5-hour window"), "{body}");
    assert!(body.contains("Severity: warning"), "{body}");
}

#[tokio::test]
async fn auth_login_is_used_when_it_is_the_only_mechanism() {
    let server = start(Options {
        mechanisms: "LOGIN",
        credentials: Some(("alerts", "pw")),
        rcpt_reply: None,
    })
    .await;
    let channel = config(server.port, SmtpSecurity::None, Some(("alerts", "pw")));
    deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap();
    assert_eq!(server.received()[0].mechanism, "LOGIN");
}

#[tokio::test]
async fn wrong_password_is_a_permanent_smtp_error() {
    let server = start(Options {
        mechanisms: "PLAIN",
        credentials: Some(("alerts", "pw")),
        rcpt_reply: None,
    })
    .await;
    let channel = config(server.port, SmtpSecurity::None, Some(("alerts", "nope")));
    let err = deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(535), "{err}");
    assert!(!err.is_retryable());
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn starttls_refuses_a_server_without_it() {
    let server = start(Options::default()).await;
    let channel = config(server.port, SmtpSecurity::Starttls, None);
    let err = deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Smtp { .. }), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(
        !err.is_retryable(),
        "a server without STARTTLS will not grow it"
    );
    assert!(server.received().is_empty(), "nothing may be sent in clear");
}

#[tokio::test]
async fn a_transient_rcpt_refusal_is_retried_and_a_permanent_one_is_not() {
    let server = start(Options {
        rcpt_reply: Some("451 4.3.0 Try again later"),
        ..Options::default()
    })
    .await;
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(
            &config(server.port, SmtpSecurity::None, None),
            &notification(),
            &fast_policy(2),
            reports.sink(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(451));
    assert!(err.is_retryable());
    assert_eq!(reports.get().len(), 2);

    let server = start(Options {
        rcpt_reply: Some("550 5.1.1 No such user"),
        ..Options::default()
    })
    .await;
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(
            &config(server.port, SmtpSecurity::None, None),
            &notification(),
            &fast_policy(3),
            reports.sink(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(550));
    assert!(!err.is_retryable());
    assert_eq!(reports.get().len(), 1);
}

#[tokio::test]
async fn implicit_tls_fails_cleanly_against_a_plain_server() {
    let server = start(Options::default()).await;
    let channel = config(server.port, SmtpSecurity::Tls, None);
    let err = deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap_err();
    // The server's plain greeting is not a TLS record: the handshake fails
    // and nothing is sent.
    assert!(matches!(err, DeliveryError::Smtp { .. }), "{err}");
    assert!(server.received().is_empty());
}
