//! The bundle format (v1): N tar data files of `blobs/sha256/<hex>` entries plus a
//! `meta.yaml`. See DESIGN.md for the rules this module enforces.

pub mod base;
pub mod compress;
pub mod layout;
pub mod meta;
pub mod names;
pub mod naming;
pub mod plan;
pub mod reader;
pub mod space;
pub mod transmit;
pub mod writer;
