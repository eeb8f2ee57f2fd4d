//! `GET /api/agent/v1/stream`: server-sent events. A `sync` event at once,
//! another whenever something concerning the user changes (status, limits,
//! zone, team settings, a replacement token), and `: ping` every 15 s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use super::extract::ProxyDevice;
use crate::live::devices::DeviceLive;
use crate::service::sync::sync_response;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(15);

/// Marks the device online while its stream is open.
struct OpenStream(Arc<DeviceLive>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}

struct Cursor {
    state: AppState,
    open: OpenStream,
    user_id: i64,
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    first: bool,
}

pub async fn stream(
    State(state): State<AppState>,
    auth: ProxyDevice,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    auth.device.stream_opened();
    let cursor = Cursor {
        shutdown: state.shutdown.clone(),
        changes: auth.user.subscribe(),
        user_id: auth.user.id,
        open: OpenStream(Arc::clone(&auth.device)),
        state,
        first: true,
    };
    let events = futures_util::stream::unfold(cursor, |mut cursor| async move {
        if !cursor.first {
            tokio::select! {
                changed = cursor.changes.changed() => changed.ok()?,
                _ = crate::state::stopped(&mut cursor.shutdown) => return None,
            }
        }
        cursor.first = false;
        // A deleted user (or device) ends the stream; the proxy then finds its token refused.
        let user = cursor.state.live.user(cursor.user_id)?;
        cursor.state.live.devices.get(cursor.open.0.id)?;
        let payload = sync_response(
            &cursor.open.0,
            &user,
            cursor.state.agent_release(),
            cursor.state.now(),
        );
        let event = Event::default().event("sync").json_data(&payload).ok()?;
        Some((Ok(event), cursor))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(PING_EVERY).text("ping"))
}
