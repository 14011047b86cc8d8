//! One module per subcommand; `main.rs` only dispatches.
pub mod live;
pub mod record;
pub mod rules_check;
pub mod settings;
pub mod signals;
