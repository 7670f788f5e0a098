//! Listing: current objects (ListObjectsV2), whether one exists (HEAD),
//! and the version history with its delete markers (ListObjectVersions).

use aws_sdk_s3::error::SdkError;
use chrono::{DateTime, Utc};

use super::S3Source;
use super::client::{describe, runtime, to_utc, unquote};
use crate::source::facts::Unread;
use crate::source::{Artifact, SourceError};

/// What ListObjectVersions says under a prefix.
pub(super) struct VersionListing {
    /// Key whose latest version is a delete marker, when it was deleted,
    /// and the newest version older than the marker.
    pub deleted: Vec<(String, DateTime<Utc>, Option<Artifact>)>,
    /// Noncurrent versions, when every version is to be read; without a
    /// deleted object's last version (read once, for its recovery).
    pub noncurrent: Vec<Artifact>,
}

impl S3Source {
    /// Whether an object exists (HEAD), telling "no" apart from "cannot ask".
    pub(super) fn exists(&self, key: &str) -> Result<bool, SourceError> {
        let r = runtime().block_on(
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send(),
        );
        match r {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 404 => Ok(false),
            Err(e) => Err(self.error(describe(&e))),
        }
    }

    /// Whether any object, old version or delete marker lies under the
    /// source's prefix (one key of a listing is enough).
    pub(super) fn holds_any(&self) -> Result<bool, SourceError> {
        let page = runtime()
            .block_on(
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&self.prefix)
                    .max_keys(1)
                    .send(),
            )
            .map_err(|e| self.error(describe(&e)))?;
        if !page.contents().is_empty() {
            return Ok(true);
        }
        // Deleted objects still have a history to audit.
        let versions = runtime()
            .block_on(
                self.client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(&self.prefix)
                    .max_keys(1)
                    .send(),
            )
            .map_err(|e| self.error(describe(&e)))?;
        Ok(!versions.versions().is_empty() || !versions.delete_markers().is_empty())
    }

    /// Every current object under `prefix` (ListObjectsV2, all pages);
    /// with `delimiter`, only those directly under it.
    pub(super) async fn list_prefix(
        &self,
        prefix: &str,
        delimiter: bool,
        each: &mut dyn FnMut(Artifact),
    ) -> Result<(), SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.then(|| "/".to_string()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(describe(&e)))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some(rel) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                // Zero-byte "directory" placeholders some tools create.
                if rel.is_empty() || rel.ends_with('/') {
                    continue;
                }
                let mut a = Artifact::new(
                    rel,
                    o.size().unwrap_or(0).max(0) as u64,
                    to_utc(o.last_modified()),
                );
                a.etag = o.e_tag().map(unquote);
                each(a);
            }
        }
        Ok(())
    }

    /// Every key under the prefix whose latest version is a delete marker,
    /// with the newest earlier version; and the noncurrent versions when
    /// all versions are to be read. ListObjectVersions has no paginator in
    /// the SDK, so pages follow the key and version-id markers by hand;
    /// versions come newest first per key, so one pass holds one key.
    pub(super) fn list_versions(&self) -> Result<VersionListing, Unread> {
        let mut deleted: Vec<(String, DateTime<Utc>, Option<Artifact>)> = Vec::new();
        let mut noncurrent: Vec<Artifact> = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = runtime()
                .block_on(
                    self.client
                        .list_object_versions()
                        .bucket(&self.bucket)
                        .prefix(&self.prefix)
                        .set_key_marker(key_marker.clone())
                        .set_version_id_marker(version_marker.clone())
                        .send(),
                )
                .map_err(|e| Unread {
                    reason: describe(&e),
                })?;
            for m in page.delete_markers() {
                if m.is_latest() == Some(true)
                    && let Some(key) = m.key().and_then(|k| k.strip_prefix(&self.prefix))
                {
                    deleted.push((key.to_string(), to_utc(m.last_modified()), None));
                }
            }
            for v in page.versions() {
                let Some(key) = v.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let modified = to_utc(v.last_modified());
                let artifact = || {
                    let mut a = Artifact::new(key, v.size().unwrap_or(0).max(0) as u64, modified);
                    a.etag = v.e_tag().map(unquote);
                    a.version_id = v.version_id().map(str::to_string);
                    a
                };
                if self.all_versions && v.is_latest() != Some(true) {
                    noncurrent.push(artifact());
                }
                // The newest version older than the marker.
                if let Some(d) = deleted.iter_mut().find(|d| d.0 == key)
                    && modified <= d.1
                    && d.2.as_ref().is_none_or(|a| a.modified < modified)
                {
                    d.2 = Some(artifact());
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        // A deleted object's last version is read once, for its recovery.
        noncurrent.retain(|a| {
            !deleted.iter().any(|d| {
                d.2.as_ref()
                    .is_some_and(|p| p.version_id == a.version_id && p.key == a.key)
            })
        });
        Ok(VersionListing {
            deleted,
            noncurrent,
        })
    }
}
