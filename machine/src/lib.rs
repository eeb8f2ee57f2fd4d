//! A developer machine as ccgate lays it out, shared by the daemon
//! (`ccgate-proxy`) and the installer (`ccgate`) so that neither carries the
//! other's internals: where every file lives under a root prefix
//! ([`paths`]), ccgate's own files and their integrity manifest
//! ([`manifest`]), the keys ccgate owns in Claude Code's managed settings
//! ([`settings`]), the daemon's `config.toml` ([`config`]), the machine CA
//! ([`ca`]), atomic writes
//! and hashes ([`fsutil`]), the few OS calls std lacks ([`os`]), and the
//! daemon's local endpoints as the `ccgate` command reads them ([`local_api`]).

pub mod ca;
pub mod config;
pub mod fsutil;
pub mod local_api;
pub mod manifest;
pub mod os;
pub mod paths;
pub mod settings;
pub mod token;
