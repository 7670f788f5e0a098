//! Where backups live. An [`Artifact`] is one stored file or object; a
//! [`Storage`] lists them and opens them for reading. Real stores behind
//! the seam: local directories ([`LocalSource`]), S3 buckets
//! ([`S3Source`]), and cloud snapshots ([`aws`]: EBS snapshots read block
//! by block, RDS snapshots listed); a location string picks one
//! ([`open_location`]).
//! Stores answer with data: bytes, and [`StoreFacts`] about themselves;
//! turning facts into findings is the verifier's job.

pub mod aws;
pub mod facts;
pub mod local;
pub mod mapped;
pub mod s3;
mod walk;
pub mod whole;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::expectation::Expectation;

pub use facts::{BucketFacts, CloudFacts, StoreFacts};
pub use local::LocalSource;
pub use s3::{S3Options, S3Source};

/// One stored file, as listed by its source.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    /// Path relative to the source root, `/`-separated: the name manifests use.
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// Object stores only: the ETag, the version read and whether it is the
    /// current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl Artifact {
    pub fn new(key: impl Into<String>, size: u64, modified: DateTime<Utc>) -> Self {
        Artifact {
            key: key.into(),
            size,
            modified,
            etag: None,
            version_id: None,
        }
    }

    /// The last path component.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The directory part of the key, "" at the root.
    pub fn dir(&self) -> &str {
        match self.key.rfind('/') {
            Some(i) => &self.key[..i],
            None => "",
        }
    }
}

/// Why a source could not be listed: the audit cannot run on it (exit 2).
#[derive(Clone, Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("cannot read {location}: {reason}")]
pub struct SourceError {
    pub location: String,
    pub reason: String,
}

impl SourceError {
    /// The audit could not read this: an `error` finding, never a pass.
    pub fn finding(&self) -> crate::finding::Finding {
        use crate::finding::{Check, Finding, Status};
        Finding::new(
            &self.location,
            Check::Source,
            Status::Error,
            format!("cannot read: {}", self.reason),
        )
        .remedy("Check that the path or bucket exists, that backproof may read it, and (for S3) the endpoint, region and credentials.")
    }
}

/// The bytes of an opened artifact. Some checks only the store can work
/// out while the bytes stream past (a multipart ETag needs the part
/// layout): `finish` hands them over once the reader has reached the end.
pub trait BackupReader: Read + Send {
    /// Each store-side promise with the value the bytes gave; empty when
    /// the store has none, or the reader stopped before the end.
    fn finish(self: Box<Self>) -> Vec<(Expectation, String)> {
        Vec::new()
    }

    /// The reader's bytes lent in place, where it can (a mapped file).
    fn lender(&mut self) -> Option<&mut dyn crate::digest::Lend> {
        None
    }
}

/// Plain files: the digests say it all.
impl BackupReader for std::fs::File {}

/// An artifact opened for one sequential pass.
pub struct Opened<'a> {
    pub reader: Box<dyn BackupReader + 'a>,
    /// Checksums the store itself records for these bytes (S3's ETag,
    /// `x-amz-checksum-*`, checksum metadata): checked like manifest lines.
    pub promises: Vec<Expectation>,
    /// The object version being read, where the store has versions: a
    /// mismatch must name it.
    pub version_id: Option<String>,
    /// Server-side encryption the store reports for these bytes ("AES256",
    /// "aws:kms", "none"); `None` where the store has no such notion.
    pub encryption: Option<String>,
    /// Store checksums that cannot be checked (a multipart ETag whose part
    /// layout the store will not give), with why: never silently skipped.
    pub unchecked: Vec<Unchecked>,
    /// Store checksums left out because another of the same bytes says
    /// more (an MD5 ETag beside a SHA-256 checksum), with why: evidence,
    /// not a gap.
    pub skipped: Vec<Unchecked>,
    /// How much of the artifact the reader yields, where the store chose
    /// (an EBS snapshot in a `run` with a history); `None`: all of it.
    pub scope: Option<ReadScope>,
}

/// What a store read of an artifact, where it read less than all of it or
/// had to say why it did not.
#[derive(Clone, Debug, Serialize)]
pub struct ReadScope {
    /// True: the reader yields only the parts changed since a backup
    /// verified before (the rest carried from that verification), so the
    /// stream is not the artifact: its inspector reads through `read_at`,
    /// and no whole-artifact digest is computed. False: a full read after
    /// all, `note` saying why.
    pub partial: bool,
    /// For the evidence and the summary ("incremental against snap-…").
    pub note: String,
}

/// A checksum the store records that could not be rebuilt from the bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Unchecked {
    pub expectation: Expectation,
    pub reason: String,
}

/// A place backups are stored. Read-only by contract: no implementation
/// holds a call that writes, deletes or changes metadata.
pub trait Storage: Sync {
    /// How reports name the source.
    fn location(&self) -> String;

    /// How reports name one artifact of it.
    fn subject(&self, key: &str) -> String;

    /// Every artifact under the root, sorted by key, plus the entries that
    /// could not be read (findings, while the rest is audited). With `only`,
    /// just the root's own files (where the manifests for `only` live) and
    /// everything under `only`: a spot check must not walk a whole tree.
    fn list_scoped(
        &self,
        only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError>;

    /// Every artifact under the root, handed to `each` as it is listed,
    /// with the entries that could not be read: for a consumer that keeps
    /// no listing (`compare`). The order is the store's own, and consumers
    /// may not rely on one: AWS S3 lists keys in byte order, a directory
    /// walk (and SeaweedFS) a directory at a time, by path components.
    fn list_each(
        &self,
        each: &mut dyn FnMut(Result<Artifact, SourceError>),
    ) -> Result<(), SourceError> {
        let (artifacts, problems) = self.list_scoped(None)?;
        problems.into_iter().map(Err).for_each(&mut *each);
        artifacts.into_iter().map(Ok).for_each(each);
        Ok(())
    }

    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>>;

    /// Positional read for formats whose metadata is scattered (qcow2 tables).
    fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// A hint that `artifact` will be read soon.
    fn prefetch(&self, _artifact: &Artifact) {}

    /// Facts about the store itself rather than one backup (bucket
    /// versioning and retention, deleted objects and old versions read
    /// back), for a whole-source audit. Local directories have none.
    fn store_facts(&self) -> StoreFacts {
        StoreFacts::default()
    }

    /// Cloud snapshot sources (EBS, RDS): the volumes or databases and
    /// their snapshot series as the provider lists them; `None` for stores
    /// of files. `Err` when the listing failed.
    fn cloud_facts(&self) -> Option<Result<CloudFacts, facts::Unread>> {
        None
    }

    /// The region the store lives in, where it has one (separation checks).
    fn region(&self) -> Option<String> {
        None
    }

    /// Earlier verifications (`run` with a history), before any artifact
    /// is opened: a store that can read just what changed since a backup
    /// verified before (EBS snapshots) reads only that. Others ignore it.
    fn use_ledger(&self, _ledger: &crate::ledger::Ledger) {}

    /// The digests the audit asks for (`--digest`), before any artifact is
    /// opened: a store that leaves out checks that add no evidence (an MD5
    /// ETag beside a verified SHA-256) makes them when asked.
    fn want_digests(&self, _digests: &[crate::digest::Algorithm]) {}

    /// A local path external tools (`qemu-img check`) may open, if any.
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// A resolved command-line target: the source, and within it the one
/// backup to check when a single file (or dump directory) was named.
pub struct Target {
    pub source: Box<dyn Storage>,
    pub only: Option<String>,
    /// The part of the source this process reads (`--shard`).
    pub shard: crate::shard::Shard,
}

impl Target {
    pub fn new(source: Box<dyn Storage>, only: Option<String>) -> Target {
        Target {
            source,
            only,
            shard: crate::shard::Shard::WHOLE,
        }
    }

    pub fn sharded(self, shard: crate::shard::Shard) -> Target {
        Target { shard, ..self }
    }
}

/// How reports and the history name a location: an `s3://` URL as given, a
/// local path in its one canonical form ([`local::canonical`]).
pub fn location_name(location: &Path) -> String {
    match is_s3(&location.to_string_lossy()) {
        true => location.display().to_string(),
        false => local::canonical(location).display().to_string(),
    }
}

/// True for `s3://` locations.
pub fn is_s3(location: &str) -> bool {
    location.starts_with("s3://")
}

/// True for locations that are no local path: `s3://`, `ebs://`, `rds://`.
pub fn is_remote(location: &str) -> bool {
    is_s3(location) || aws::is_cloud(location)
}

/// A location (path or `s3://bucket/prefix`) as a whole source, without
/// narrowing to one backup: config sources.
pub fn open_location(location: &Path, s3: &S3Options) -> Result<Box<dyn Storage>, SourceError> {
    let text = location.to_string_lossy();
    if aws::is_cloud(&text) {
        let (source, _) = aws::open(&text, s3)?;
        Ok(source)
    } else if is_s3(&text) {
        Ok(Box::new(S3Source::connect(&text, s3)?))
    } else {
        Ok(Box::new(LocalSource::new(location)))
    }
}

/// Resolves a command-line target: a directory of backups, one backup file
/// or directory-format dump (then `only` names it within its parent), or an
/// S3 prefix or object.
pub fn resolve(location: &Path, s3: &S3Options) -> Result<Target, SourceError> {
    let text = location.to_string_lossy();
    if aws::is_cloud(&text) {
        let (source, only) = aws::open(&text, s3)?;
        return Ok(Target::new(source, only));
    }
    if is_s3(&text) {
        let (source, only) = S3Source::resolve(&text, s3)?;
        return Ok(Target::new(Box::new(source), only));
    }
    let (source, only) = local::resolve(location)?;
    Ok(Target::new(Box::new(source), only))
}
