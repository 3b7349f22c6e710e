//! The copy engine shared by every command: resolve references, plan the blob set,
//! copy with bounded concurrency and retries, report.

pub mod cache;
pub mod copy;
pub mod docker_daemon;
pub mod expand;
pub mod export;
pub mod notify;
pub mod platform;
pub mod referrers;
pub mod registries;
pub mod report;
pub mod resolve;
pub mod retry;
pub mod save;
pub mod sync;
pub mod upload;
