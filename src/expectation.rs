//! What a checksum source promises about some bytes. A leaf: manifests
//! (through the catalog) and stores (S3's own checksums) both produce
//! expectations, and verification checks them, without either side
//! importing the other.

use serde::Serialize;

use crate::digest::Algorithm;

/// A checksum some manifest (or the store itself) promises for one artifact.
#[derive(Clone, Debug, Serialize)]
pub struct Expectation {
    pub algorithm: Algorithm,
    pub digest: String,
    /// Key of the manifest or sidecar (or the store's header that carried
    /// it), and the line; 0 where there are no lines.
    pub manifest: String,
    pub line: usize,
}
