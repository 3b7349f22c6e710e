//! The command line: argument structures and the handlers that turn them into engine calls.

pub mod args;
pub mod info;
pub mod legacy;
pub mod run;
