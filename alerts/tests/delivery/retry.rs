//! Retries: failing receivers that recover, Retry-After, timeouts, refused
//! connections, permanent errors.

use std::time::Duration;

use ccgate_alerts::{
    ChannelConfig, Deliverer, DeliveryError, DiscordConfig, RetryPolicy, WebhookMethod,
};

use crate::common::{Fault, Receiver, Reports, deliverer, fast_policy, notification};
use crate::{discord, webhook};

async fn webhook_channel(rx: Receiver) -> ChannelConfig {
    let base = webhook::webhook(rx).await;
    ChannelConfig::Webhook(webhook::config(&base, WebhookMethod::Post, None))
}

#[tokio::test]
async fn two_server_errors_then_success() {
    let rx = Receiver::with_faults([Fault::status(500, "oops"), Fault::status(503, "busy")]);
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    let delivered = deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(5), reports.sink())
        .await
        .unwrap();
    assert_eq!(delivered.status, 200);
    assert_eq!(rx.requests().len(), 3);

    let r = reports.get();
    assert_eq!(r.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    let first = r[0].outcome.as_ref().unwrap_err();
    assert_eq!((first.status, first.retryable), (Some(500), true));
    assert!(first.error.contains("HTTP 500: oops"), "{}", first.error);
    assert_eq!(r[0].next_delay, Some(Duration::from_millis(10)));
    assert_eq!(r[1].next_delay, Some(Duration::from_millis(20)));
    assert!(r[2].outcome.is_ok());
    assert_eq!(r[2].next_delay, None);
    assert_eq!(
        r[0].to_string(),
        "attempt 1/5: failed: webhook: HTTP 500: oops; retrying in 10ms"
    );
}

#[tokio::test]
async fn gives_up_after_the_policy_attempts() {
    let rx = Receiver::with_faults((0..10).map(|_| Fault::status(503, "down")));
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(3), reports.sink())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retryable());
    assert_eq!(rx.requests().len(), 3);
    let r = reports.get();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[2].next_delay, None,
        "no wait announced after the last attempt"
    );
    assert_eq!(r[2].attempts, 3);
}

#[tokio::test]
async fn a_permanent_error_stops_at_once() {
    let rx = Receiver::with_faults([Fault::status(400, "bad request"), Fault::status(500, "x")]);
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(5), reports.sink())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(rx.requests().len(), 1);
    let r = reports.get();
    assert_eq!(r.len(), 1);
    assert!(!r[0].outcome.as_ref().unwrap_err().retryable);
}

#[tokio::test]
async fn retry_after_header_is_honoured() {
    let rx = Receiver::with_faults([Fault::status(429, "slow down").header("retry-after", "1")]);
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(5),
        ..fast_policy(3)
    };
    let started = std::time::Instant::now();
    deliverer()
        .deliver_with_retry(&channel, &notification(), &policy, reports.sink())
        .await
        .unwrap();
    assert_eq!(reports.get()[0].next_delay, Some(Duration::from_secs(1)));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_capped_by_the_policy() {
    let rx = Receiver::with_faults([Fault::status(429, "").header("retry-after", "3600")]);
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(3), reports.sink())
        .await
        .unwrap();
    assert_eq!(
        reports.get()[0].next_delay,
        Some(Duration::from_millis(100))
    );
}

#[tokio::test]
async fn discord_rate_limit_uses_the_body_wait() {
    let rx = Receiver::with_faults([Fault::status(
        429,
        r#"{"message": "You are being rate limited.", "retry_after": 0.05, "global": false}"#,
    )
    .header("retry-after", "1")]);
    let base = discord::discord(rx.clone()).await;
    let reports = Reports::default();
    deliverer()
        .deliver_with_retry(
            &discord::config(&base, discord::TOKEN),
            &notification(),
            &fast_policy(3),
            reports.sink(),
        )
        .await
        .unwrap();
    let r = reports.get();
    assert_eq!(r[0].outcome.as_ref().unwrap_err().status, Some(429));
    assert_eq!(r[0].next_delay, Some(Duration::from_millis(50)));
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn a_hung_server_times_out_and_is_retried() {
    let rx = Receiver::with_faults([Fault::status(200, "late").delayed(Duration::from_secs(3))]);
    let channel = webhook_channel(rx.clone()).await;
    let reports = Reports::default();
    let deliverer = Deliverer::with_timeout(Duration::from_millis(300)).unwrap();
    let delivered = deliverer
        .deliver_with_retry(&channel, &notification(), &fast_policy(3), reports.sink())
        .await
        .unwrap();
    assert_eq!(delivered.status, 200);
    let r = reports.get();
    let first = r[0].outcome.as_ref().unwrap_err();
    assert!(
        first.retryable && first.error.contains("timed out"),
        "{}",
        first.error
    );
    assert!(r[0].elapsed < Duration::from_secs(2), "{:?}", r[0].elapsed);
}

#[tokio::test]
async fn refused_connections_are_retried_and_never_show_the_url() {
    // A port that was free a moment ago: nothing listens there now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let channel = ChannelConfig::Discord(DiscordConfig {
        webhook_url: format!("http://127.0.0.1:{port}/api/webhooks/1/TOPSECRET").into(),
    });
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(2), reports.sink())
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Http { .. }), "{err}");
    assert!(err.is_retryable());
    let r = reports.get();
    assert_eq!(r.len(), 2);
    for report in &r {
        let text = &report.outcome.as_ref().unwrap_err().error;
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(text.to_lowercase().contains("connect"), "{text}");
    }
    assert!(!format!("{err:?}").contains("TOPSECRET"));
}

#[tokio::test]
async fn a_bad_config_fails_once_without_sending() {
    let channel = ChannelConfig::Discord(DiscordConfig {
        webhook_url: "http://discord.com/api/webhooks/1/x".into(),
    });
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(&channel, &notification(), &fast_policy(5), reports.sink())
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Config { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(reports.get().len(), 1);
}
