//! ferry: carry container images into air-gapped networks.
//!
//! Layout: `registry` is the HTTP client, `bundle` the on-disk format, `engine`
//! the copy algorithm shared by every command, `cli` the command line.

pub mod bundle;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod digest;
pub mod engine;
pub mod i18n;
pub mod manifest;
pub mod manifest_convert;
pub mod reference;
pub mod registry;
pub mod serve;
pub mod server;
pub mod sign;
pub mod text;
pub mod transport;
pub mod ui;
