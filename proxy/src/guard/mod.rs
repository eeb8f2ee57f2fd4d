//! ccgate's self-protection inside the daemon: the integrity manifest that
//! setup writes, the managed-settings keys, the watchdog that restores and
//! reports changes, and the kill switch's logout.

pub mod claude_home;
pub mod hooks;
pub mod integrity;
pub mod login;
pub mod logout;
pub use ccgate_machine::{manifest, settings};
pub mod watchdog;

pub use hooks::GuardHooks;
