//! The bundle endpoint (`bundle:META[:REF]`): ferry bundles with their bases, zstd
//! data files and image-transmit bundles. The read side is the one checking reader
//! every command goes through: each manifest is checked against its digest when it
//! is read, each blob as it streams out.

pub mod source;

pub use source::BundleSource;
