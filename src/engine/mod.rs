//! The copy engine shared by every command: resolve references, plan the blob set,
//! copy with bounded concurrency and retries, report.

pub mod cache;
pub mod copy;
pub mod docker_daemon;
pub mod expand;
pub mod export;
pub mod notify;
pub mod pace;
pub mod platform;
pub mod referrers;
pub mod registries;
pub mod report;
pub mod resolve;
pub mod retry;
pub mod save;
pub mod sync;
pub mod trusted;
pub mod upload;

/// A request that cannot be met as asked (a malformed reference, a platform choice
/// the destination cannot hold): the user's to fix, so the CLI exits with status 2,
/// as for clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
