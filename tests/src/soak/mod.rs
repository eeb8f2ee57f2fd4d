//! The parts of the fault soak (`ccgate-soak`, `src/bin/soak.rs`).

pub mod disk;
pub mod drive;
pub mod procs;
pub mod rng;
pub mod sim;
pub mod verify;
