//! `docker-archive:FILE[:REF]`: the `docker save` / `docker load` tarball.
//!
//! [`ArchiveWriter`] writes one (docker ≥ 25's layout, which also carries an OCI
//! layout) to any non-seeking `Write`: a file, the docker engine's load request,
//! `ctr images import`'s stdin.

pub mod writer;

pub use writer::ArchiveWriter;
