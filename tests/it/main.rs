//! ferry's integration tests: one binary (one link) with the shared harness in `common`.

mod batch;
mod bundle_hardening;
mod cache;
mod common;
mod compress;
mod copy;
mod engines;
mod events;
mod harbor;
mod harness;
mod incremental;
mod interop;
mod lang;
mod properties;
mod referrers;
mod registry_hardening;
mod reliability;
mod save_upload;
mod select;
mod serve_hardening;
mod signing;
mod sync;
mod transmit;
mod transports;
mod ui;
mod ux;
