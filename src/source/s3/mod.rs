//! S3 source: buckets (or prefixes of them) on AWS S3 or any S3-compatible
//! store, read through the official SDK. [`client`] reaches the store,
//! [`list`] lists objects and versions, [`read`] streams bytes,
//! [`checksums`] turns what S3 records into expectations, and [`bucket`]
//! reads the bucket's settings. Everything comes back as data: bytes,
//! expectations and [`StoreFacts`]; `verify::store` judges the facts.
//!
//! Read-only: these files call ListObjectsV2, ListObjectVersions,
//! HeadObject, GetObject and the bucket configuration getters, and nothing
//! else; a test below keeps it so.

mod bucket;
mod checksums;
pub mod client;
mod list;
mod read;

use std::io;

use aws_sdk_s3::Client;

use super::facts::{DeletedObject, StoreFacts, Unread, VersionFacts};
use super::{Artifact, Opened, SourceError, Storage};
pub use client::{S3Options, UrlError, describe, parse_url};

/// A bucket, or a prefix within it, as a source of backups.
#[derive(Clone, Debug)]
pub struct S3Source {
    client: Client,
    bucket: String,
    /// "" or ending with '/': keys relative to it are what manifests name.
    prefix: String,
    all_versions: bool,
    /// Digests the audit asked for: an MD5 asked for is checked against
    /// the ETag even beside a SHA-256 checksum.
    wanted: std::sync::Arc<std::sync::RwLock<Vec<crate::digest::Algorithm>>>,
}

impl S3Source {
    /// The source for `s3://bucket/prefix`, every object under it.
    pub fn connect(url: &str, opts: &S3Options) -> Result<S3Source, SourceError> {
        let (bucket, key) = parse_url(url).map_err(|e| SourceError {
            location: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(S3Source::at(client::client(opts), bucket, &key).with(opts))
    }

    fn at(client: Client, bucket: String, prefix: &str) -> S3Source {
        let prefix = match prefix.trim_end_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        S3Source {
            client,
            bucket,
            prefix,
            all_versions: false,
            wanted: Default::default(),
        }
    }

    /// Per-audit settings from the options.
    fn with(mut self, opts: &S3Options) -> S3Source {
        self.all_versions = opts.all_versions;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Like a local path: a prefix is a directory of backups; an object (or
    /// a prefix holding a `toc.dat`) is one backup, checked with the
    /// manifests beside it, so its parent becomes the source.
    pub fn resolve(url: &str, opts: &S3Options) -> Result<(S3Source, Option<String>), SourceError> {
        let (bucket, key) = parse_url(url).map_err(|e| SourceError {
            location: url.to_string(),
            reason: e.to_string(),
        })?;
        let client = client::client(opts);
        if key.is_empty() || key.ends_with('/') {
            return Ok((S3Source::at(client, bucket, &key).with(opts), None));
        }
        let probe = S3Source::at(client.clone(), bucket.clone(), "");
        let is_single = probe.exists(&key)? || probe.exists(&format!("{key}/toc.dat"))?;
        if !is_single {
            let prefix = S3Source::at(client, bucket, &key).with(opts);
            // Like a missing local path: a name that is neither an object
            // nor a prefix holding any is an error, never "0 backups".
            if !prefix.holds_any()? {
                return Err(
                    prefix.error(format!("no object {key:?} and no objects under {key:?}/"))
                );
            }
            return Ok((prefix, None));
        }
        let (parent, name) = key.rsplit_once('/').unwrap_or(("", &key));
        Ok((
            S3Source::at(client, bucket, parent).with(opts),
            Some(name.to_string()),
        ))
    }

    fn error(&self, reason: String) -> SourceError {
        SourceError {
            location: self.location(),
            reason,
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Deleted objects with their last version, and (with --all-versions)
    /// every noncurrent version.
    fn version_facts(&self) -> Result<VersionFacts, Unread> {
        let listing = self.list_versions()?;
        let deleted = listing
            .deleted
            .into_iter()
            .map(|(key, deleted_at, previous)| DeletedObject {
                key,
                deleted_at,
                previous,
            })
            .collect();
        Ok(VersionFacts {
            deleted,
            noncurrent: listing.noncurrent,
        })
    }
}

impl Storage for S3Source {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn subject(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    fn list_scoped(
        &self,
        only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        let mut out = Vec::new();
        let mut push = |a| out.push(a);
        client::runtime().block_on(async {
            match only {
                None => self.list_prefix(&self.prefix, false, &mut push).await,
                Some(o) => {
                    self.list_prefix(&self.prefix, true, &mut push).await?;
                    self.list_prefix(&format!("{}{o}/", self.prefix), false, &mut push)
                        .await
                }
            }
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, Vec::new()))
    }

    /// Page by page as ListObjectsV2 returns them, in the server's order.
    fn list_each(
        &self,
        each: &mut dyn FnMut(Result<Artifact, SourceError>),
    ) -> Result<(), SourceError> {
        client::runtime().block_on(self.list_prefix(&self.prefix, false, &mut |a| each(Ok(a))))
    }

    fn want_digests(&self, digests: &[crate::digest::Algorithm]) {
        *self.wanted.write().expect("wanted digests lock") = digests.to_vec();
    }

    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        self.open_object(artifact)
    }

    fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    fn store_facts(&self) -> StoreFacts {
        let bucket = self.bucket_facts();
        // Without versioning ever enabled there are no delete markers.
        let versions = match &bucket.settings {
            Ok(s) if s.versioning.ever_enabled() => Some(self.version_facts()),
            _ => None,
        };
        StoreFacts {
            bucket: Some(bucket),
            versions,
        }
    }

    fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.read_range(artifact, offset, buf)
    }
}

#[cfg(test)]
mod tests {
    /// The read-only guarantee, in code: every S3 operation this crate
    /// calls is a list, a head or a get.
    #[test]
    fn no_call_that_writes() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("client.rs"),
            include_str!("list.rs"),
            include_str!("read.rs"),
            include_str!("checksums.rs"),
            include_str!("bucket.rs"),
            include_str!("../../compare.rs"),
            include_str!("../../commands/target.rs"),
            include_str!("../../verify/mod.rs"),
            include_str!("../../verify/store.rs"),
            include_str!("../../catalog.rs"),
        ];
        let call = regex::Regex::new(r"\.(\w+)\(\)\s*\.bucket\(").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for text in sources {
            // The operation names, wherever a request builder is started.
            for c in call.captures_iter(&text.replace(['\n', ' '], "")) {
                seen.insert(c[1].to_string());
            }
        }
        for op in [
            "get_object",
            "head_object",
            "list_objects_v2",
            "list_object_versions",
            "get_bucket_versioning",
        ] {
            assert!(seen.contains(op), "the scan finds {op}: {seen:?}");
        }
        for op in &seen {
            assert!(
                op.starts_with("get_") || op.starts_with("head_") || op.starts_with("list_"),
                "{op} is not a read"
            );
        }
    }
}
