//! The command line: argument structures and the handlers that turn them into engine calls.

pub mod args;
pub mod bundle_path;
pub mod copy;
pub mod help_zh;
pub mod info;
pub mod legacy;
pub mod oci_types;
pub mod output;
pub mod parse;
pub mod run;
pub mod signing;
