//! State the agent publishes for tools and tests (never log text): the ready file.
pub mod ready;
