//! Request extractors whose failures are JSON errors: bodies (content type,
//! size limit, malformed JSON), the client address and device tokens.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::live::devices::{DeviceLive, TokenUse};
use crate::live::users::UserLive;
use crate::model::DeviceKind;
use crate::secrets;
use crate::service;
use crate::state::AppState;

/// A JSON body. Wrong content type → 415, over the limit → 413, malformed → 400.
#[derive(Debug)]
pub struct Json<T>(pub T);

/// A JSON body that may be empty (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// The body, read within the idle timeout (a body that trickles in is cut
/// off with 408, so it cannot hold a connection for long).
async fn body_bytes(request: Request, state: &AppState) -> Result<(bool, Bytes), Error> {
    let json = is_json(request.headers());
    let read = tokio::time::timeout(
        state.config.idle_timeout,
        Bytes::from_request(request, state),
    )
    .await
    .map_err(|_| {
        Error::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    })?;
    let bytes = read.map_err(|rejection: BytesRejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request body is larger than {} bytes",
                    state.config.max_body_bytes
                ),
            )
        } else {
            Error::bad_request(format!("could not read the request body: {rejection}"))
        }
    })?;
    Ok((json, bytes))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| {
        Error::bad_request(format!("invalid JSON body: {error}")).with_code("invalid_json")
    })
}

pub(crate) fn wrong_type() -> Error {
    Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected Content-Type: application/json",
    )
}

/// The bytes of a JSON body, unparsed (415 for another type, 413 over the
/// route's limit).
#[derive(Debug)]
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        let (json, bytes) = body_bytes(request, state).await?;
        if !json {
            return Err(wrong_type());
        }
        Ok(JsonBytes(bytes))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        let (json, bytes) = body_bytes(request, state).await?;
        if !json {
            return Err(wrong_type());
        }
        parse(&bytes).map(Json)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        let (json, bytes) = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(wrong_type());
        }
        parse(&bytes).map(OptionalJson)
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says it
/// forwarded (`client_addr`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(
            state.config.trusted_proxies.client(peer, &parts.headers),
        ))
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves a device token to its device and user, switching to a
/// replacement token on its first use.
pub async fn device_by_token(
    state: &AppState,
    token: &str,
    kind: DeviceKind,
) -> Option<(Arc<DeviceLive>, Arc<UserLive>)> {
    let hash = secrets::hash_token(token);
    let (device, used) = state.live.devices.authenticate(&hash)?;
    if device.kind != kind {
        return None;
    }
    let user = state.live.user(device.user_id)?;
    if used == TokenUse::Pending
        && let Err(error) = service::users::promote_token(state, &device, hash).await
    {
        tracing::error!(
            device = device.id,
            ?error,
            "could not switch to the new device token"
        );
        return None;
    }
    device.seen(state.now().as_millisecond());
    Some((device, user))
}

/// A proxy authenticated by `Authorization: Bearer <device token>`.
#[derive(Debug, Clone)]
pub struct ProxyDevice {
    pub device: Arc<DeviceLive>,
    pub user: Arc<UserLive>,
}

impl FromRequestParts<AppState> for ProxyDevice {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| Error::unauthorized("device token required (Authorization: Bearer)"))?;
        let (device, user) = device_by_token(state, token, DeviceKind::Proxy)
            .await
            .ok_or_else(|| {
                Error::unauthorized(
                    "invalid device token: the device was removed or its token replaced; run ccgate setup again",
                )
                .with_code("invalid_device_token")
            })?;
        Ok(ProxyDevice { device, user })
    }
}
