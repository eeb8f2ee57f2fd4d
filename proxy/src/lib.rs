//! ccgate-proxy: the daemon on each developer machine that Claude Code is
//! forced through. It intercepts api.anthropic.com only, classifies every
//! Messages API call by the turn model, gates new prompts, meters every
//! reply and keeps a durable ledger of what it saw.

pub mod ca;
pub mod classify;
pub mod config;
pub mod fsutil;
pub mod paths;
pub mod turns;
pub mod meter;
pub mod sse;
pub mod tap;
pub mod upstream;
