//! ccgate-proxy: the daemon on each developer machine that Claude Code is
//! forced through. It intercepts api.anthropic.com only, classifies every
//! Messages API call by the turn model, gates new prompts, meters every
//! reply and keeps a durable ledger of what it saw.

// The machine's layout and ccgate's own files live in ccgate-machine, shared
// with the installer; re-exported under their old paths.
pub use ccgate_machine::{config, fsutil, os, paths};

pub mod accounting;
pub mod backoff;
pub mod ca;
pub mod classify;
pub mod credential;
pub mod credential_task;
pub mod daemon;
pub mod egress;
pub mod gate;
pub mod guard;
pub mod handler;
pub mod health;
pub mod housekeeping;
pub mod key_locks;
pub mod ledger;
pub mod link;
pub mod live;
pub mod local;
pub mod local_usage;
pub mod meter;
pub mod open_replies;
pub mod outbox;
pub mod policy;
pub mod recorder;
pub mod replies;
pub mod request_body;
pub mod routes;
pub mod sender;
pub mod sse;
pub mod state;
pub mod status;
pub mod tap;
#[cfg(test)]
mod test_support;
pub mod turns;
pub mod update;
pub mod upstream;

/// Resolves once the daemon's stop signal is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
