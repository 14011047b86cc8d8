//! One module per subcommand; `main.rs` only dispatches.
pub mod assets;
pub mod console;
pub mod consume;
pub mod fleet;
pub mod live;
pub mod record;
pub mod replay;
pub mod respond;
pub mod rules_check;
pub mod run;
pub mod settings;
pub mod signals;
