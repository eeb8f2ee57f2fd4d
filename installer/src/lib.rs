//! ccgate: the installer CLI. `setup` registers a developer machine and
//! installs the daemon, its service and Claude Code's managed settings;
//! `status`, `sync`, `doctor` and `uninstall` look after it afterwards.

pub mod account;
pub mod ca_check;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod journal;
pub mod local;
pub mod server;
pub mod service;
pub mod setup;
pub mod status;
pub mod uninstall;
pub mod verify_release;
