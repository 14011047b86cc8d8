//! One program per file, like kunai's `probes/`.
pub mod deny;
pub mod dns;
pub mod exec;
pub mod exit;
pub mod file;
pub mod open;
pub mod sock;
pub mod uring;
