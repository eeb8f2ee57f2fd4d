//! The proxy's own endpoints on its port, for `ccgate status`, `sync` and
//! `doctor` on this machine: `GET /ccgate/status` and `POST /ccgate/sync`.
//! They answer only requests addressed to the loopback port itself (a web
//! page that rebinds its own host name to 127.0.0.1 is refused), and a
//! sync wake-up is taken at most once every two seconds.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Method, Request, StatusCode};
use hudsucker::{Body, RequestOrResponse};

use crate::replies::{error_reply, json_reply};
use crate::state::Shared;

pub use ccgate_machine::local_api::{STATUS_PATH, SYNC_PATH};
/// Local sync wake-ups are taken at most this often.
pub const SYNC_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct LocalEndpoints {
    last_sync: Mutex<Option<Instant>>,
}

impl LocalEndpoints {
    pub fn answer(&self, shared: &Shared, request: &Request<Body>) -> RequestOrResponse {
        if !addressed_to(request, shared.address) {
            return error_reply(
                StatusCode::MISDIRECTED_REQUEST,
                "permission_error",
                "ccgate's local endpoints answer only requests to 127.0.0.1 or localhost on its own port.",
            );
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET, STATUS_PATH) => {
                json_reply(StatusCode::OK, &crate::status::collect(shared))
            }
            // Harmless, so no auth; but not a way to hammer the server.
            (&Method::POST, SYNC_PATH) => {
                if !self.take_sync() {
                    let mut reply = error_reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        "ccgate synced a moment ago; try again in two seconds.",
                    );
                    if let RequestOrResponse::Response(response) = &mut reply {
                        response
                            .headers_mut()
                            .insert("retry-after", HeaderValue::from_static("2"));
                    }
                    return reply;
                }
                shared.sync_wakeup.notify_one();
                json_reply(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"sync": "requested"}),
                )
            }
            _ => error_reply(
                StatusCode::NOT_FOUND,
                "not_found_error",
                "This is ccgate's proxy. Local endpoints: GET /ccgate/status, POST /ccgate/sync.",
            ),
        }
    }

    fn take_sync(&self) -> bool {
        let mut last = self.last_sync.lock().expect("local sync lock");
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < SYNC_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Whether the request names this proxy's loopback port as its host.
fn addressed_to(request: &Request<Body>, address: SocketAddr) -> bool {
    let Some(host) = request.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = address.port();
    [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
    .iter()
    .any(|allowed| host.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder().uri(STATUS_PATH);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_the_loopback_port_itself_is_an_address() {
        let address: SocketAddr = "127.0.0.1:47770".parse().unwrap();
        for host in [
            "127.0.0.1:47770",
            "localhost:47770",
            "LOCALHOST:47770",
            "[::1]:47770",
        ] {
            assert!(addressed_to(&request(Some(host)), address), "{host}");
        }
        for host in [
            Some("evil.example:47770"),
            Some("127.0.0.1:80"),
            Some("127.0.0.1"),
            None,
        ] {
            assert!(!addressed_to(&request(host), address), "{host:?}");
        }
    }

    #[test]
    fn sync_wake_ups_are_spaced() {
        let endpoints = LocalEndpoints::default();
        assert!(endpoints.take_sync());
        assert!(!endpoints.take_sync());
        *endpoints.last_sync.lock().unwrap() = Some(Instant::now() - SYNC_EVERY);
        assert!(endpoints.take_sync());
    }
}
