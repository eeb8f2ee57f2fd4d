//! `GET /ws`: live events for admins over a websocket. Authenticated by the
//! session cookie (then the Origin must match the Host, against cross-site
//! websocket hijacking), a `?token=` query, or `Authorization: Bearer`.

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::admin::{principal_from, session_cookie};
use super::extract::bearer;
use crate::error::{Error, Result};
use crate::hub::Published;
use crate::model::Role;
use crate::service::admin_auth::{self, AuthVia, Principal};
use crate::state::AppState;

const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    #[serde(default)]
    token: Option<String>,
}

/// Whether the `Origin` header names the same host as `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser: cross-site hijacking needs one.
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// The credential a socket was opened with, to check it again later.
struct Credential {
    token: String,
    via: AuthVia,
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &WsQuery,
) -> Result<(Principal, Credential)> {
    let credential = if let Some(token) = query.token.as_deref().filter(|t| !t.is_empty()) {
        Credential {
            token: token.to_owned(),
            via: AuthVia::Bearer,
        }
    } else if let Some(token) = bearer(headers) {
        Credential {
            token: token.to_owned(),
            via: AuthVia::Bearer,
        }
    } else if let Some(token) = session_cookie(headers) {
        if !same_origin(headers) {
            return Err(Error::forbidden("the Origin does not match this server"));
        }
        Credential {
            token: token.to_owned(),
            via: AuthVia::Cookie,
        }
    } else {
        // No credential: the shared extractor gives the usual 401.
        return Err(principal_from(state, headers)
            .await
            .err()
            .unwrap_or_else(|| {
                Error::unauthorized("login required (session cookie or Authorization: Bearer)")
            }));
    };
    let principal = admin_auth::authenticate(state, &credential.token, credential.via)
        .await?
        .ok_or_else(|| {
            Error::unauthorized("the session has expired or the token is invalid; log in again")
                .with_code("invalid_session")
        })?;
    if principal.role == Role::Member {
        return Err(Error::forbidden("live events are for admins and viewers").with_code("member"));
    }
    Ok((principal, credential))
}

async fn still_valid(state: &AppState, credential: &Credential) -> bool {
    matches!(
        admin_auth::authenticate(state, &credential.token, credential.via).await,
        Ok(Some(_))
    )
}

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response> {
    let (principal, credential) = authenticate(&state, &headers, &query).await?;
    // Subscribed before the upgrade, so nothing after `connected` is missed.
    let events = state.hub.subscribe();
    Ok(upgrade.on_upgrade(move |socket| relay(socket, state, principal, credential, events)))
}

async fn relay(
    mut socket: WebSocket,
    state: AppState,
    principal: Principal,
    credential: Credential,
    mut events: tokio::sync::broadcast::Receiver<std::sync::Arc<Published>>,
) {
    let hello = json!({
        "type": "connected", "role": principal.role, "actor": principal.actor,
        "timestamp": state.now(),
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut shutdown = state.shutdown.clone();
    // A logout, a password change or a revoked token closes the socket.
    let every = state.config.live_session_recheck;
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A ping now and then finds peers that vanished (their slot among
    // MAX_CONNECTIONS is freed when the write fails).
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = recheck.tick() => {
                if !still_valid(&state, &credential).await {
                    let note = json!({ "type": "session_ended" });
                    let _ = socket.send(Message::Text(note.to_string().into())).await;
                    break;
                }
            }
            event = events.recv() => match event {
                Ok(published) => {
                    if socket.send(Message::Text(published.json().as_ref().into())).await.is_err() {
                        break;
                    }
                }
                // A slow client misses messages; it is never waited for.
                Err(RecvError::Lagged(missed)) => {
                    let note = json!({ "type": "lagged", "missed": missed });
                    if socket.send(Message::Text(note.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = crate::state::stopped(&mut shutdown) => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
