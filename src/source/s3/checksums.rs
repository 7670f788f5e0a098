//! The checksums S3 records for an object (ETag, `x-amz-checksum-*`,
//! checksum metadata) as expectations, and the multipart ones rebuilt from
//! the bytes and the part layout.

use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use bytes::Bytes;

use super::S3Source;
use super::client::{runtime, unquote};
use crate::digest::{Algorithm, Hashers};
use crate::expectation::Expectation;

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

/// GET and HEAD replies carry the same facts under the same accessor
/// names but are distinct types.
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
    pub fn of_get(o: &aws_sdk_s3::operation::get_object::GetObjectOutput) -> Self {
        object_facts!(o)
    }

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

/// How a multipart object was cut: every part `part_size` bytes but the
/// last, as every uploader (SDKs, aws cli, rclone) does.
#[derive(Clone, Copy, Debug)]
pub(super) struct PartLayout {
    pub part_size: u64,
    pub parts: u64,
}

impl S3Source {
    /// The part layout of a multipart object: HEAD of part 1 gives its size
    /// and the part count. `None` when the store will not say, or the
    /// layout is not uniform (then the part promises go unchecked).
    pub(super) fn part_layout(
        &self,
        key: &str,
        version: Option<String>,
        size: u64,
    ) -> Option<PartLayout> {
        let head = runtime()
            .block_on(
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_version_id(version)
                    .part_number(1)
                    .send(),
            )
            .ok()?;
        let part_size = head.content_length()?.max(0) as u64;
        let parts = head.parts_count()?.max(0) as u64;
        let fits = part_size > 0
            && parts > 0
            && part_size * (parts - 1) < size
            && size <= part_size * parts;
        fits.then_some(PartLayout { part_size, parts })
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
            for mut chunk in rx {
                while !chunk.is_empty() {
                    let room = (layout.part_size - in_part) as usize;
                    let take = chunk.split_to(room.min(chunk.len()));
                    part.update(&take);
                    in_part += take.len() as u64;
                    if in_part == layout.part_size {
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
