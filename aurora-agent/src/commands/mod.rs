//! One module per subcommand; `main.rs` only dispatches.
pub mod live;
pub mod record;
pub mod settings;
pub mod signals;
