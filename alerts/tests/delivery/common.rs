//! Shared test plumbing: serving a router on loopback, recording requests,
//! queueing failures a receiver answers before behaving normally.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ccgate_alerts::{AttemptReport, Deliverer, Notification, RetryPolicy, Severity};

/// Serves `router` on 127.0.0.1 (a free port) for the rest of the test.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query exactly as sent (still percent-encoded).
    pub raw_path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// A canned answer given instead of the normal one.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (to trigger client timeouts).
    pub delay: Duration,
}

impl Fault {
    pub fn status(status: u16, body: &str) -> Self {
        Fault {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What a receiver shares with its test.
#[derive(Clone, Default)]
pub struct Receiver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

impl Receiver {
    pub fn with_faults(faults: impl IntoIterator<Item = Fault>) -> Self {
        let r = Receiver::default();
        r.faults.lock().unwrap().extend(faults);
        r
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Records the request; answers with the next queued fault, if any.
    pub async fn record(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            raw_path: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let fault = self.faults.lock().unwrap().pop_front()?;
        tokio::time::sleep(fault.delay).await;
        let mut response =
            (StatusCode::from_u16(fault.status).unwrap(), fault.body).into_response();
        for (name, value) in fault.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        Some(response)
    }
}

/// A warning with every optional field set.
pub fn notification() -> Notification {
    Notification::new(
        Severity::Warning,
        "Quota at 90%",
        "team-max is at 90% of its 5-hour window.",
    )
    .with_subscription("team-max")
    .with_person("alice")
    .with_usage(90.0, "5-hour")
}

pub fn deliverer() -> Deliverer {
    Deliverer::with_timeout(Duration::from_secs(5)).unwrap()
}

/// Retries in milliseconds, so tests stay fast.
pub fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(10),
        factor: 2,
        max_delay: Duration::from_millis(100),
    }
}

/// Collects the attempt reports of one `deliver_with_retry`.
#[derive(Clone, Default)]
pub struct Reports(Arc<Mutex<Vec<AttemptReport>>>);

impl Reports {
    pub fn sink(&self) -> impl FnMut(AttemptReport) + use<> {
        let inner = Arc::clone(&self.0);
        move |r| inner.lock().unwrap().push(r)
    }

    pub fn get(&self) -> Vec<AttemptReport> {
        self.0.lock().unwrap().clone()
    }
}
