//! The checksums S3 records for an object (ETag, `x-amz-checksum-*`,
//! checksum metadata) as expectations, and the multipart ones rebuilt from
//! the bytes and the part layout.

use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use bytes::Bytes;

use super::S3Source;
use super::client::{RequestError, runtime, unquote};
use crate::digest::{Algorithm, Hashers};
use crate::expectation::Expectation;
use crate::source::Unchecked;

/// What a GET or HEAD says about an object's bytes.
pub(super) struct ObjectFacts {
    pub version_id: Option<String>,
    pub etag: Option<String>,
    kms_or_customer_key: bool,
    /// Server-side encryption: "AES256", "aws:kms", "SSE-C" or "none".
    pub encryption: String,
    sha256: Option<String>,
    sha1: Option<String>,
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    metadata: Vec<(String, String)>,
}

/// The facts a HEAD reply carries (a macro, as GET replies carry the same
/// under the same accessor names).
macro_rules! object_facts {
    ($o:expr) => {{
        let o = $o;
        ObjectFacts {
            version_id: o.version_id().map(str::to_string),
            etag: o.e_tag().map(unquote),
            kms_or_customer_key: matches!(
                o.server_side_encryption(),
                Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
            ) || o.sse_customer_algorithm().is_some(),
            encryption: match (o.server_side_encryption(), o.sse_customer_algorithm()) {
                (Some(a), _) => a.as_str().to_string(),
                (None, Some(_)) => "SSE-C".to_string(),
                (None, None) => "none".to_string(),
            },
            sha256: o.checksum_sha256().map(str::to_string),
            sha1: o.checksum_sha1().map(str::to_string),
            crc32: o.checksum_crc32().map(str::to_string),
            crc32c: o.checksum_crc32_c().map(str::to_string),
            crc64nvme: o.checksum_crc64_nvme().map(str::to_string),
            metadata: o
                .metadata()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }};
}

impl ObjectFacts {
    pub fn of_head(o: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Self {
        object_facts!(o)
    }
}

/// A promise over parts: the multipart ETag (MD5 of the part MD5s) or a
/// composite checksum (the algorithm over the part checksums), both "-N".
pub(super) struct PartPromise {
    pub expectation: Expectation,
    /// The digest of each part, and of their concatenation.
    pub algorithm: Algorithm,
}

/// The checksums the store records for one object, from a GET or HEAD
/// reply (checksum mode enabled): those over the whole bytes, and those
/// over the parts of a multipart upload.
pub(super) fn promises_of(reply: &ObjectFacts) -> (Vec<Expectation>, Vec<PartPromise>) {
    let version = match reply.version_id.as_deref() {
        Some(v) if v != "null" => format!(" (version {v})"),
        _ => String::new(),
    };
    let mut parted = Vec::new();
    let mut part_promise = |algorithm: Algorithm, digest: String, origin: String| {
        parted.push(PartPromise {
            expectation: Expectation {
                algorithm,
                digest,
                manifest: format!("{origin}{version}"),
                line: 0,
            },
            algorithm,
        });
    };
    let mut out = Vec::new();
    let mut push = |algorithm: Algorithm, digest: String, origin: String| {
        out.push(Expectation {
            algorithm,
            digest,
            manifest: format!("{origin}{version}"),
            line: 0,
        });
    };
    for (algorithm, header, value) in [
        (Algorithm::Sha256, "x-amz-checksum-sha256", &reply.sha256),
        (Algorithm::Sha1, "x-amz-checksum-sha1", &reply.sha1),
        (Algorithm::Crc32, "x-amz-checksum-crc32", &reply.crc32),
        (Algorithm::Crc32c, "x-amz-checksum-crc32c", &reply.crc32c),
        (
            Algorithm::Crc64nvme,
            "x-amz-checksum-crc64nvme",
            &reply.crc64nvme,
        ),
    ] {
        let Some(v) = value else { continue };
        // "xxxx-N" is a checksum of the part checksums (a multipart
        // upload's composite checksum), rebuilt from the part layout.
        let (b64, parts) = match v.split_once('-') {
            Some((b, n)) => (b, Some(n)),
            None => (v.as_str(), None),
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        match parts {
            None => push(algorithm, hex::encode(raw), format!("S3 {header}")),
            Some(n) => part_promise(
                algorithm,
                format!("{}-{n}", hex::encode(raw)),
                format!("S3 {header} (composite of {n} parts)"),
            ),
        }
    }
    // A single-part ETag is the MD5 of the bytes, unless SSE-KMS or a
    // customer key encrypted them.
    // A multipart one is the MD5 of the part MD5s, "-N".
    if let Some(etag) = &reply.etag
        && !reply.kms_or_customer_key
    {
        let etag = etag.to_ascii_lowercase();
        match etag.split_once('-') {
            None if etag.len() == 32 => push(Algorithm::Md5, etag, "S3 ETag".into()),
            Some((md5, n)) if md5.len() == 32 => {
                let origin = format!("S3 multipart ETag ({n} parts)");
                part_promise(Algorithm::Md5, etag.clone(), origin);
            }
            _ => {}
        }
    }
    // Checksums recorded as user metadata at upload (x-amz-meta-sha256).
    for (name, value) in &reply.metadata {
        // rclone's base64 MD5 of the whole object: the only whole-object
        // MD5 of its multipart uploads.
        if name == "md5chksum" {
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(value.trim())
                && raw.len() == 16
            {
                push(
                    Algorithm::Md5,
                    hex::encode(raw),
                    format!("S3 metadata x-amz-meta-{name}"),
                );
            }
            continue;
        }
        let Ok(algorithm) = name.parse::<Algorithm>() else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        if value.len() == algorithm.hex_len() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            push(algorithm, value, format!("S3 metadata x-amz-meta-{name}"));
        }
    }
    (out, parted)
}

/// The MD5s a store records (ETags, rclone's `md5chksum`) beside a SHA-256
/// it computed itself (`x-amz-checksum-sha256`), when that SHA-256 will be
/// checked: it proves the same bytes, and MD5 is the slowest digest of the
/// pass. They are left out, with why, unless MD5 was asked for. A
/// composite SHA-256 counts only when the part layout is known
/// (`parts_checked`); a SHA-256 from user metadata never does.
pub(super) fn leave_out_md5(
    promises: Vec<Expectation>,
    parted: Vec<PartPromise>,
    parts_checked: bool,
    md5_wanted: bool,
) -> (Vec<Expectation>, Vec<PartPromise>, Vec<Unchecked>) {
    let native = |e: &&Expectation| {
        e.algorithm == Algorithm::Sha256 && e.manifest.starts_with("S3 x-amz-checksum-sha256")
    };
    let by = (promises.iter().find(native))
        .or_else(|| (parted.iter().map(|p| &p.expectation)).find(|e| parts_checked && native(e)))
        .map(|e| e.manifest.clone());
    let Some(by) = by.filter(|_| !md5_wanted) else {
        return (promises, parted, Vec::new());
    };
    let reason = format!(
        "not computed: the store's own SHA-256 of the same bytes ({by}) is checked instead; --digest md5 checks this too"
    );
    let left = |expectation| Unchecked {
        expectation,
        reason: reason.clone(),
    };
    let (md5s, promises): (Vec<_>, Vec<_>) = promises
        .into_iter()
        .partition(|e| e.algorithm == Algorithm::Md5);
    let (md5_parts, parted): (Vec<_>, Vec<_>) = parted
        .into_iter()
        .partition(|p| p.algorithm == Algorithm::Md5);
    let skipped = (md5s.into_iter())
        .chain(md5_parts.into_iter().map(|p| p.expectation))
        .map(left)
        .collect();
    (promises, parted, skipped)
}

/// How a multipart object was cut: the true size of every part, in order.
/// Uploaders may cut parts of any size (boto3 callers, copies), so no part
/// is assumed as large as the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PartLayout {
    pub sizes: Vec<u64>,
}

/// Why the part layout of a multipart object could not be learnt: its part
/// promises then stay unchecked, and say so.
#[derive(Debug, thiserror::Error)]
pub(super) enum LayoutError {
    #[error(
        "the store gives neither GetObjectAttributes parts ({attributes}) nor part sizes by HEAD ?partNumber ({head})"
    )]
    Unavailable {
        attributes: PartSizeError,
        #[source]
        head: PartSizeError,
    },
    #[error("the store's part checksums disagree on the part count")]
    PartCounts,
    #[error(
        "the store reports {got} part(s) of {bytes} bytes in all, but the object has {size} bytes in {parts} part(s)"
    )]
    Inconsistent {
        got: usize,
        bytes: u64,
        size: u64,
        parts: u64,
    },
}

/// One way of asking for part sizes that did not work.
#[derive(Debug, thiserror::Error)]
pub(super) enum PartSizeError {
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error("no ObjectParts in the reply")]
    NoParts,
    #[error("part {part}: {source}")]
    Part {
        part: u64,
        #[source]
        source: RequestError,
    },
    #[error("part {0}: no Content-Length")]
    NoLength(u64),
}

impl S3Source {
    /// The part layout of a multipart object of `parts` parts:
    /// GetObjectAttributes (ObjectParts) where the store has it, else one
    /// HEAD ?partNumber=N per part. Checked against the object's size.
    pub(super) fn part_layout(
        &self,
        key: &str,
        version: Option<String>,
        size: u64,
        parts: u64,
    ) -> Result<PartLayout, LayoutError> {
        let sizes = match self.part_sizes_by_attributes(key, version.clone()) {
            Ok(s) => s,
            Err(attributes) => self
                .part_sizes_by_head(key, version, parts)
                .map_err(|head| LayoutError::Unavailable { attributes, head })?,
        };
        let bytes: u64 = sizes.iter().sum();
        if sizes.len() as u64 != parts || bytes != size || sizes.contains(&0) {
            return Err(LayoutError::Inconsistent {
                got: sizes.len(),
                bytes,
                size,
                parts,
            });
        }
        Ok(PartLayout { sizes })
    }

    fn part_sizes_by_attributes(
        &self,
        key: &str,
        version: Option<String>,
    ) -> Result<Vec<u64>, PartSizeError> {
        use aws_sdk_s3::types::ObjectAttributes;
        let mut sizes = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let reply = runtime()
                .block_on(
                    self.client
                        .get_object_attributes()
                        .bucket(&self.bucket)
                        .key(key)
                        .set_version_id(version.clone())
                        .object_attributes(ObjectAttributes::ObjectParts)
                        .set_part_number_marker(marker.clone())
                        .send(),
                )
                .map_err(RequestError::new)?;
            let Some(parts) = reply.object_parts() else {
                return Err(PartSizeError::NoParts);
            };
            let mut page: Vec<(i32, u64)> = parts
                .parts()
                .iter()
                .map(|p| {
                    (
                        p.part_number().unwrap_or(0),
                        p.size().unwrap_or(0).max(0) as u64,
                    )
                })
                .collect();
            page.sort_by_key(|(n, _)| *n);
            sizes.extend(page.into_iter().map(|(_, s)| s));
            match (parts.is_truncated(), parts.next_part_number_marker()) {
                (Some(true), Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(sizes)
    }

    fn part_sizes_by_head(
        &self,
        key: &str,
        version: Option<String>,
        parts: u64,
    ) -> Result<Vec<u64>, PartSizeError> {
        (1..=parts)
            .map(|n| {
                let head = runtime()
                    .block_on(
                        self.client
                            .head_object()
                            .bucket(&self.bucket)
                            .key(key)
                            .set_version_id(version.clone())
                            .part_number(n as i32)
                            .send(),
                    )
                    .map_err(|e| PartSizeError::Part {
                        part: n,
                        source: RequestError::new(e),
                    })?;
                head.content_length()
                    .map(|l| l.max(0) as u64)
                    .ok_or(PartSizeError::NoLength(n))
            })
            .collect()
    }
}

/// Rebuilds multipart ETags and composite checksums from the bytes, on a
/// thread of its own so the main pass does not slow down.
pub(super) struct PartChecks {
    /// Dropped at the end of the bytes, which lets the thread finish.
    tx: Option<std::sync::mpsc::SyncSender<Bytes>>,
    handle: std::thread::JoinHandle<Vec<(Expectation, String)>>,
}

impl PartChecks {
    /// `depth` chunks may wait for the part hashers: the body's chunks are
    /// small, but a ranged read's are whole ranges, so fewer of them.
    pub fn start(layout: PartLayout, promises: Vec<PartPromise>, depth: usize) -> PartChecks {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(depth);
        let handle = std::thread::spawn(move || {
            let algorithms: Vec<Algorithm> = promises.iter().map(|p| p.algorithm).collect();
            let mut joined: Vec<Vec<u8>> = vec![Vec::new(); algorithms.len()];
            let mut part = Hashers::new(algorithms.clone());
            let mut in_part = 0u64;
            let mut parts = 0u64;
            let close = |part: Hashers, joined: &mut Vec<Vec<u8>>| {
                let d = part.finish();
                for (i, a) in algorithms.iter().enumerate() {
                    joined[i].extend(hex::decode(&d[a]).expect("hex digest"));
                }
            };
            // Past the last part, bytes go into one more "part": the part
            // count then disagrees with the promise's "-N".
            let part_size = |i: u64| layout.sizes.get(i as usize).copied().unwrap_or(u64::MAX);
            for mut chunk in rx {
                while !chunk.is_empty() {
                    let room = (part_size(parts) - in_part).min(usize::MAX as u64) as usize;
                    let take = chunk.split_to(room.min(chunk.len()));
                    part.update(&take);
                    in_part += take.len() as u64;
                    if in_part == part_size(parts) {
                        close(
                            std::mem::replace(&mut part, Hashers::new(algorithms.clone())),
                            &mut joined,
                        );
                        parts += 1;
                        in_part = 0;
                    }
                }
            }
            if in_part > 0 {
                close(part, &mut joined);
                parts += 1;
            }
            promises
                .into_iter()
                .zip(joined)
                .map(|(p, bytes)| {
                    let mut h = Hashers::new([p.algorithm]);
                    h.update(&bytes);
                    let actual = format!("{}-{parts}", h.finish()[&p.algorithm]);
                    (p.expectation, actual)
                })
                .collect()
        });
        PartChecks {
            tx: Some(tx),
            handle,
        }
    }

    pub fn feed(&self, chunk: Bytes) {
        // Fails only if the thread died; finish() then reports nothing.
        if let Some(tx) = &self.tx {
            let _ = tx.send(chunk);
        }
    }

    /// No more bytes: the thread works out the last part.
    pub fn end(&mut self) {
        self.tx = None;
    }

    /// Each part promise with the value the bytes gave.
    pub fn finish(mut self) -> Vec<(Expectation, String)> {
        self.end();
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promise(algorithm: Algorithm, manifest: &str) -> Expectation {
        Expectation {
            algorithm,
            digest: "00".into(),
            manifest: manifest.into(),
            line: 0,
        }
    }

    fn parted(algorithm: Algorithm, manifest: &str) -> PartPromise {
        PartPromise {
            expectation: promise(algorithm, manifest),
            algorithm,
        }
    }

    #[test]
    fn md5s_are_left_out_only_beside_a_sha256_the_store_computed_and_that_is_checked() {
        let etag = || promise(Algorithm::Md5, "S3 ETag");
        let native = || promise(Algorithm::Sha256, "S3 x-amz-checksum-sha256");
        let (kept, _, skipped) = leave_out_md5(vec![etag(), native()], vec![], false, false);
        assert_eq!((kept.len(), kept[0].algorithm), (1, Algorithm::Sha256));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].reason.contains("--digest md5"),
            "{}",
            skipped[0].reason
        );
        // Asked for, or beside a SHA-256 from user metadata: checked.
        let (kept, _, skipped) = leave_out_md5(vec![etag(), native()], vec![], false, true);
        assert_eq!((kept.len(), skipped.len()), (2, 0));
        let meta = promise(Algorithm::Sha256, "S3 metadata x-amz-meta-sha256");
        let (kept, _, skipped) = leave_out_md5(vec![etag(), meta], vec![], false, false);
        assert_eq!((kept.len(), skipped.len()), (2, 0));
        // A composite SHA-256 vouches only when its parts can be checked.
        let parts = || {
            vec![
                parted(Algorithm::Md5, "S3 multipart ETag (3 parts)"),
                parted(
                    Algorithm::Sha256,
                    "S3 x-amz-checksum-sha256 (composite of 3 parts)",
                ),
            ]
        };
        let (_, kept, skipped) = leave_out_md5(vec![], parts(), false, false);
        assert_eq!((kept.len(), skipped.len()), (2, 0));
        let (_, kept, skipped) = leave_out_md5(vec![], parts(), true, false);
        assert_eq!((kept.len(), skipped.len()), (1, 1));
        assert_eq!(kept[0].algorithm, Algorithm::Sha256);
    }
}
