//! Live events between replicas through PostgreSQL's LISTEN/NOTIFY: what
//! one replica publishes, the others receive within a moment and hand to
//! their own hub (so `/ws` and device streams on every replica see it).
//! Delivery is at most once, like the hub's: a replica that is
//! reconnecting misses what was sent meanwhile, and so does one whose
//! queue was full. The listener says so ([`Heard::Missed`]), so that the
//! replica can read again what it may have missed.

use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::{PgDb, PgError, Target};

/// The NOTIFY channel of live events.
pub const CHANNEL: &str = "ccgate_live";
/// PostgreSQL refuses payloads of 8000 bytes and more; larger events go
/// through `live_overflow`.
const MAX_PAYLOAD: usize = 7900;
/// Events waiting for the receiver before new ones are dropped (and the
/// receiver told it missed some).
const QUEUE: usize = 4096;
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const LISTENER_NAME: &str = "ccgate live listener";

/// What goes over the channel: the sending replica, and the event or the
/// id of the overflow row that holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    origin: Uuid,
    #[serde(flatten)]
    body: Body<T>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Body<T> {
    Event(T),
    Overflow(i64),
}

impl PgDb {
    /// Sends `event` to every other replica listening.
    pub async fn notify<T: Serialize>(&self, origin: Uuid, event: &T) -> Result<(), PgError> {
        let payload = serde_json::to_string(&Envelope {
            origin,
            body: Body::Event(event),
        })
        .map_err(PgError::Encode)?;
        let client = self.connection().await?;
        let payload = if payload.len() <= MAX_PAYLOAD {
            payload
        } else {
            let value = serde_json::to_value(event).map_err(PgError::Encode)?;
            let id: i64 = client
                .query_one(
                    "WITH gone AS (DELETE FROM live_overflow WHERE at < now() - interval '1 minute')
                     INSERT INTO live_overflow (payload) VALUES ($1) RETURNING id",
                    &[&tokio_postgres::types::Json(value)],
                )
                .await?
                .get(0);
            serde_json::to_string(&Envelope::<()> {
                origin,
                body: Body::Overflow(id),
            })
            .map_err(PgError::Encode)?
        };
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
        Ok(())
    }
}

/// What a [`Listener`] hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard<T> {
    /// An event another replica sent.
    Event(T),
    /// Events may have been lost here: the connection dropped and came
    /// back, or the queue was full.
    Missed,
}

/// Receives the events other replicas send, on its own connection (a
/// listening connection cannot be pooled), reconnecting when it drops.
pub struct Listener<T> {
    events: mpsc::Receiver<Heard<T>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Listener<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: DeserializeOwned + Send + 'static> Listener<T> {
    /// Listens as replica `origin` (its own events are skipped).
    pub async fn start(target: &Target, origin: Uuid) -> Result<Self, PgError> {
        let target = target.clone();
        let (sender, events) = mpsc::channel(QUEUE);
        // The first connection is made here, so a wrong URL is an error now.
        let first = connect(&target).await?;
        let task = tokio::spawn(async move {
            let mut connected = Some(first);
            let mut missed = false;
            loop {
                let session = match connected.take() {
                    Some(session) => session,
                    None => match connect(&target).await {
                        Ok(session) => {
                            // What was sent while this replica did not
                            // listen is lost.
                            missed = true;
                            session
                        }
                        Err(error) => {
                            tracing::warn!(?error, "could not listen for other replicas' events");
                            tokio::time::sleep(RECONNECT_AFTER).await;
                            continue;
                        }
                    },
                };
                if relay(session, origin, &sender, &mut missed).await.is_err() {
                    return; // The listener was dropped.
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
        Ok(Self { events, task })
    }

    /// The next event from another replica, or word that some were lost.
    pub async fn recv(&mut self) -> Option<Heard<T>> {
        self.events.recv().await
    }
}

type Session = (
    tokio_postgres::Client,
    mpsc::UnboundedReceiver<tokio_postgres::Notification>,
);

/// A connection that LISTENs, with its notifications on a channel.
async fn connect(target: &Target) -> Result<Session, PgError> {
    // Named, so operators see it in pg_stat_activity.
    let (client, mut connection) = target.connect(LISTENER_NAME).await?;
    let (notifications, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message
                && notifications.send(notification).is_err()
            {
                break;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, received))
}

/// Hands the session's events to `sender` until the connection ends
/// (`Ok`) or nobody receives any more (`Err`). `missed`: events were lost
/// and the receiver has not been told yet.
async fn relay<T: DeserializeOwned>(
    (client, mut notifications): Session,
    origin: Uuid,
    sender: &mpsc::Sender<Heard<T>>,
    missed: &mut bool,
) -> Result<(), ()> {
    loop {
        if *missed {
            match sender.try_send(Heard::Missed) {
                Ok(()) => *missed = false,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
        }
        let Some(notification) = notifications.recv().await else {
            break;
        };
        let envelope: Envelope<serde_json::Value> =
            match serde_json::from_str(notification.payload()) {
                Ok(envelope) => envelope,
                Err(error) => {
                    tracing::warn!(%error, "a live event from another replica could not be read");
                    continue;
                }
            };
        if envelope.origin == origin {
            continue;
        }
        let value = match envelope.body {
            Body::Event(value) => value,
            Body::Overflow(id) => {
                match client
                    .query_opt("SELECT payload FROM live_overflow WHERE id = $1", &[&id])
                    .await
                {
                    Ok(Some(row)) => {
                        row.get::<_, tokio_postgres::types::Json<serde_json::Value>>(0)
                            .0
                    }
                    Ok(None) => continue,
                    Err(_) => return Ok(()),
                }
            }
        };
        match serde_json::from_value(value) {
            Ok(event) => match sender.try_send(Heard::Event(event)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
                Err(mpsc::error::TrySendError::Full(_)) => *missed = true,
            },
            Err(error) => {
                tracing::warn!(%error, "a live event from another replica has an unknown shape");
            }
        }
    }
    Ok(())
}
