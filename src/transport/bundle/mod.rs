//! The bundle endpoint (`bundle:META[:REF]`): ferry bundles with their bases, zstd
//! data files and image-transmit bundles. The read side is the one checking reader
//! every command goes through: each manifest is checked against its digest when it
//! is read, each blob as it streams out. The write side ([`BundleSink`]) is what
//! `save` copies into: today's N balanced data files, journal and resume.

mod fill;
pub mod sink;
pub mod source;

pub use sink::BundleSink;
pub use source::BundleSource;
