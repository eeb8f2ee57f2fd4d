//! Replies forwarded but not yet settled in the books, per session.
//!
//! Claude Code sends a tool's result as soon as it has the reply's last
//! byte; the recorder learns the reply's tool calls a moment later. A result
//! whose tool calls the books do not know yet waits here for its session's
//! open replies to settle, instead of counting as a new prompt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct OpenReplies {
    open: Mutex<HashMap<String, usize>>,
    settled: Notify,
}

/// One forwarded reply; settled when dropped (after the recorder has put it
/// in the books, or when it never got that far).
#[derive(Debug)]
pub struct OpenReply {
    replies: Arc<OpenReplies>,
    session: String,
}

impl OpenReplies {
    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().expect("open replies")
    }

    pub fn open(self: &Arc<Self>, session: &str) -> OpenReply {
        *self.open_map().entry(session.to_owned()).or_default() += 1;
        OpenReply {
            replies: Arc::clone(self),
            session: session.to_owned(),
        }
    }

    pub fn any_open(&self, session: &str) -> bool {
        self.open_map().contains_key(session)
    }

    /// Waits (at most `limit`) until no reply of `session` is open; returns
    /// whether it got there.
    pub async fn settled(&self, session: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a settlement in between wakes it.
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.any_open(session) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

impl Drop for OpenReply {
    fn drop(&mut self) {
        let mut open = self.replies.open_map();
        if let Some(count) = open.get_mut(&self.session) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.session);
            }
        }
        drop(open);
        self.replies.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_its_own_session_only() {
        let replies = Arc::new(OpenReplies::default());
        let first = replies.open("s1");
        let second = replies.open("s1");
        let _other = replies.open("s2");
        assert!(!replies.settled("s1", Duration::from_millis(10)).await);
        let mut waiting = {
            let replies = Arc::clone(&replies);
            tokio::spawn(async move { replies.settled("s1", Duration::from_secs(10)).await })
        };
        drop(first);
        let early = tokio::time::timeout(Duration::from_millis(50), &mut waiting).await;
        assert!(early.is_err(), "one reply of s1 is still open");
        drop(second);
        assert!(waiting.await.unwrap());
        assert!(replies.any_open("s2"));
        assert!(replies.settled("s3", Duration::ZERO).await);
    }
}
