//! One program per file, like kunai's `probes/`.
pub mod deny;
pub mod dns;
pub mod exec;
pub mod exit;
pub mod file;
pub mod lsm_exec;
pub mod lsm_open;
pub mod open;
pub mod sock;
pub mod uring;
