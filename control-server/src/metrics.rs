//! Prometheus metrics (`GET /metrics`).

use std::sync::atomic::AtomicU64;

use ccgate_quota::wire::SubscriptionUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every label comes from a fixed set, so clients cannot grow the metrics:
/// known methods else `OTHER`, route templates else `unmatched`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// The `method` label: a standard method, else `OTHER`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `agent` or `hook`.
    pub api: &'static str,
    /// `allowed` or `denied`.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `accepted`, `duplicate` or `refused`.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub subscription: String,
    /// As in the headers: `5h`, `7d`, `7d_opus`, ….
    pub window: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub checks: Family<CheckLabels, Counter>,
    pub blocks: Family<ReasonLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
    /// Rows waiting for the background writer.
    pub event_queue_rows: Gauge,
    /// Seconds spent deciding a check, inside the server.
    pub check_latency: Histogram,
    pub utilization: Family<WindowLabels, Gauge<f64, AtomicU64>>,
    pub window_resets: Family<WindowLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ccgate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let checks = Family::<CheckLabels, Counter>::default();
        let blocks = Family::<ReasonLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let event_queue_rows = Gauge::default();
        // 10 µs to about 80 ms.
        let check_latency = Histogram::new(exponential_buckets(0.000_01, 2.0, 14));
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register("checks", "Prompt checks by result", checks.clone());
        registry.register("blocks", "Denied prompts by reason", blocks.clone());
        registry.register(
            "events",
            "Device events received: new, duplicate or refused",
            events.clone(),
        );
        registry.register(
            "event_queue_rows",
            "Event rows waiting for the database writer",
            event_queue_rows.clone(),
        );
        registry.register(
            "check_duration_seconds",
            "Time to decide a check",
            check_latency.clone(),
        );
        let utilization = Family::<WindowLabels, Gauge<f64, AtomicU64>>::default();
        let window_resets = Family::<WindowLabels, Gauge>::default();
        registry.register(
            "subscription_utilization_ratio",
            "A subscription's utilization of one window as Anthropic last reported it (1 is the limit)",
            utilization.clone(),
        );
        registry.register(
            "subscription_window_resets_at_seconds",
            "When a subscription's window resets (Unix time)",
            window_resets.clone(),
        );
        Self {
            registry,
            utilization,
            window_resets,
            http_requests,
            checks,
            blocks,
            events,
            event_queue_rows,
            check_latency,
        }
    }
}

impl Metrics {
    /// Replaces the subscription gauges with each one's newest figures.
    pub fn set_subscriptions<'a>(
        &self,
        subscriptions: impl IntoIterator<Item = (&'a str, &'a SubscriptionUsage)>,
    ) {
        self.utilization.clear();
        self.window_resets.clear();
        for (name, usage) in subscriptions {
            for (window, figures) in &usage.windows {
                let labels = WindowLabels {
                    subscription: name.to_owned(),
                    window: window.clone(),
                };
                if let Some(value) = figures.utilization {
                    self.utilization.get_or_create(&labels).set(value);
                }
                if let Some(at) = figures.resets_at {
                    self.window_resets
                        .get_or_create(&labels)
                        .set(at.as_second());
                }
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn count_events(&self, result: &'static str, n: u64) {
        if n > 0 {
            self.events.get_or_create(&EventLabels { result }).inc_by(n);
        }
    }

    pub fn count_check(&self, api: &'static str, allowed: bool, reason: Option<&'static str>) {
        let result = if allowed { "allowed" } else { "denied" };
        self.checks
            .get_or_create(&CheckLabels { api, result })
            .inc();
        if let Some(reason) = reason {
            self.blocks.get_or_create(&ReasonLabels { reason }).inc();
        }
    }
}
