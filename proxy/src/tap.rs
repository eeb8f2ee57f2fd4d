//! The response body wrapper: passes every frame through as it arrives,
//! feeds a copy to the [`Meter`], and reports how the reply ended exactly
//! once — at its end, on an upstream error, when the client goes away, or
//! when the kill switch cuts it.

use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use ccgate_quota::UserStatus;
use ccgate_quota::wire::Outcome;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hudsucker::Body;
use tokio::sync::mpsc::UnboundedSender;

use crate::meter::{Meter, Reading};

/// The SSE event sent to the client when a stream is cut: the CLI drops the
/// partial text and resends the turn, which the gate then refuses with the
/// full pause or kill message.
fn cut_event(status: UserStatus) -> Bytes {
    let why = match status {
        UserStatus::Paused => {
            "your ccgate admin paused your Claude Code access; nothing more goes to Anthropic until they resume it"
        }
        _ => "your ccgate admin revoked your Claude Code access (the kill switch)",
    };
    let data = serde_json::json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": format!("ccgate stopped this reply: {why}.")},
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

/// A switch the kill switch flips on every open stream.
#[derive(Debug, Default)]
pub struct CutSwitch {
    cut: AtomicBool,
    why: OnceLock<UserStatus>,
    waker: AtomicWaker,
}

impl CutSwitch {
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    fn cut(&self, status: UserStatus) {
        let _ = self.why.set(status);
        self.cut.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Every open reply's switch, so that all can be cut at once.
#[derive(Debug, Default)]
pub struct OpenStreams {
    switches: Mutex<Vec<Weak<CutSwitch>>>,
}

impl OpenStreams {
    pub fn register(&self) -> Arc<CutSwitch> {
        let switch = Arc::new(CutSwitch::default());
        let mut switches = self.switches.lock().expect("open streams lock");
        switches.retain(|s| s.strong_count() > 0);
        switches.push(Arc::downgrade(&switch));
        switch
    }

    /// Cuts every reply in flight because the person is now `status`;
    /// returns how many were cut.
    pub fn cut_all(&self, status: UserStatus) -> usize {
        let switches = self.switches.lock().expect("open streams lock");
        switches
            .iter()
            .filter_map(Weak::upgrade)
            .inspect(|s| s.cut(status))
            .count()
    }

    pub fn open_count(&self) -> usize {
        let switches = self.switches.lock().expect("open streams lock");
        switches.iter().filter(|s| s.strong_count() > 0).count()
    }
}

/// Where endings go; counts those sent but not yet written to the ledger,
/// so callers can tell when everything seen is on disk.
pub struct EndingSink<T> {
    sender: UnboundedSender<Ending<T>>,
    pending_writes: Arc<AtomicUsize>,
}

impl<T> Clone for EndingSink<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            pending_writes: self.pending_writes.clone(),
        }
    }
}

impl<T> EndingSink<T> {
    pub fn new(sender: UnboundedSender<Ending<T>>, pending_writes: Arc<AtomicUsize>) -> Self {
        Self {
            sender,
            pending_writes,
        }
    }

    pub fn send(&self, ending: Ending<T>) {
        self.pending_writes.fetch_add(1, Ordering::AcqRel);
        if self.sender.send(ending).is_err() {
            self.pending_writes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// How a reply ended, sent to the recorder.
#[derive(Debug)]
pub struct Ending<T> {
    pub exchange: T,
    pub status: u16,
    pub outcome: Outcome,
    pub reading: Reading,
    pub elapsed_ms: u64,
}

pub struct TapBody<T: Send + Sync + Unpin + 'static> {
    inner: Body,
    meter: Option<Meter>,
    /// The last frame passed on, read by the meter at the next poll: the
    /// client gets each frame before the meter spends time on it.
    unread: Option<Bytes>,
    exchange: Option<T>,
    status: u16,
    started: Instant,
    endings: EndingSink<T>,
    switch: Arc<CutSwitch>,
    cut_event_sent: bool,
}

impl<T: Send + Sync + Unpin + 'static> TapBody<T> {
    pub fn new(
        inner: Body,
        content_type: Option<&str>,
        status: u16,
        exchange: T,
        started: Instant,
        endings: EndingSink<T>,
        switch: Arc<CutSwitch>,
    ) -> Self {
        Self {
            inner,
            meter: Some(Meter::new(content_type)),
            unread: None,
            exchange: Some(exchange),
            status,
            started,
            endings,
            switch,
            cut_event_sent: false,
        }
    }

    /// Lets the meter read the frame passed on last.
    fn read_unread(&mut self) {
        if let (Some(data), Some(meter)) = (self.unread.take(), self.meter.as_mut()) {
            meter.feed(&data);
        }
    }

    fn end(&mut self, outcome: impl FnOnce(&Reading) -> Outcome) {
        self.read_unread();
        let (Some(exchange), Some(meter)) = (self.exchange.take(), self.meter.take()) else {
            return;
        };
        let reading = meter.finish();
        let outcome = outcome(&reading);
        self.endings.send(Ending {
            exchange,
            status: self.status,
            outcome,
            reading,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// How a reply that reached its end went.
fn natural_outcome(status: u16, reading: &Reading) -> Outcome {
    if !(200..300).contains(&status) || reading.error.is_some() {
        Outcome::UpstreamError
    } else if reading.started && !reading.finished {
        // The stream stopped without message_stop: the connection broke.
        Outcome::UpstreamCut
    } else {
        Outcome::Completed
    }
}

impl<T: Send + Sync + Unpin + 'static> HttpBody for TapBody<T> {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.exchange.is_none() {
            return Poll::Ready(None);
        }
        this.switch.waker.register(cx.waker());
        if this.switch.is_cut() {
            let sse = this.meter.as_ref().is_some_and(Meter::is_sse);
            if sse && !this.cut_event_sent {
                this.cut_event_sent = true;
                let status = this.switch.why.get().copied().unwrap_or(UserStatus::Killed);
                return Poll::Ready(Some(Ok(Frame::data(cut_event(status)))));
            }
            this.end(|_| Outcome::CutByCcgate);
            return Poll::Ready(None);
        }
        // The previous frame is on its way to the client: read it now.
        this.read_unread();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    // A reference-counted copy: no bytes are copied.
                    this.unread = Some(data.clone());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.end(|_| Outcome::UpstreamCut);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                let status = this.status;
                this.end(|reading| natural_outcome(status, reading));
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.switch.is_cut() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

impl<T: Send + Sync + Unpin + 'static> Drop for TapBody<T> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (Esc, Ctrl-C).
        self.end(|_| Outcome::ClientAborted);
    }
}
