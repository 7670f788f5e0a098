//! S3 source: buckets (or prefixes of them) on AWS S3 or any S3-compatible
//! store, read through the official SDK.
//!
//! Network I/O is async on a small tokio runtime; hashing stays on the
//! verification threads. A streamed object body crosses over through a
//! bounded channel, so memory stays bounded whatever the object's size.
//!
//! Read-only: this file calls ListObjectsV2, ListObjectVersions,
//! HeadObject, GetObject and the bucket configuration getters, and nothing
//! else; a test below keeps it so.

use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumMode, ServerSideEncryption};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{Artifact, Opened, Settled, SourceError, Storage};
use crate::expectation::Expectation;
use crate::digest::{Algorithm, Hashers};
use crate::finding::{Check, Finding, Status};

/// Body chunks queued between the network task and the hashing thread. The
/// SDK hands out chunks of at most a few tens of KiB, so this bounds each
/// open object to a few MiB in flight.
const CHANNEL_DEPTH: usize = 64;

/// Objects from this size on are read as parallel ranged GETs.
const RANGED_FROM: u64 = 16 * 1024 * 1024;
const RANGE_SIZE: u64 = 8 * 1024 * 1024;
const RANGES_IN_FLIGHT: usize = 3;
/// Noncurrent versions read at once with --all-versions.
const VERSIONS_IN_FLIGHT: usize = 4;

/// How to reach S3: each `None` leaves the choice to the SDK's standard
/// chain (environment, profile files, SSO, instance roles).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and the profile's.
    pub endpoint_url: Option<String>,
    /// Path-style addressing; implied for IP and localhost endpoints.
    pub path_style: bool,
    /// Also read every noncurrent version and check it against the
    /// checksums S3 stored for it.
    pub all_versions: bool,
}

/// One runtime for every S3 source of a run: two workers are plenty for
/// network I/O, which only waits.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("backproof-s3")
            .enable_all()
            .build()
            .expect("tokio runtime starts")
    })
}

/// `s3://bucket/prefix` split into bucket and key part.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// Stores reached by IP or as localhost have no per-bucket DNS names.
fn wants_path_style(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok()
}

/// An SDK error as one readable line: the service's code and message when
/// the server answered, the transport's cause chain otherwise.
/// An error and its causes on one line, without the SDK's debug dump.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let status = s.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
                (Some(c), None) => format!("{c} (HTTP {status})"),
                // HEAD replies carry no error body: the status must do.
                _ => match status {
                    401 | 403 => format!(
                        "access denied (HTTP {status}): wrong credentials, or no permission to read"
                    ),
                    404 => "not found (HTTP 404)".to_string(),
                    _ => format!("HTTP {status}: {}", chain(e)),
                },
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let why = chain(e);
            // The credential chain runs inside dispatch: say which failed.
            if why.contains("credentials") {
                format!("no usable AWS credentials: {why}")
            } else {
                format!("cannot reach the S3 endpoint: {why}")
            }
        }
        _ => chain(e),
    }
}

/// Builds an S3 client from the standard chain plus the options.
pub fn client(opts: &S3Options) -> Client {
    let rt = runtime();
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &opts.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let sdk = rt.block_on(loader.load());
    // The endpoint the SDK will use, as far as path style cares.
    let endpoint = opts
        .endpoint_url
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let path_style = opts.path_style || endpoint.as_deref().is_some_and(wants_path_style);
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(path_style)
        // Transient failures (timeouts, 5xx, throttling) are retried with
        // exponential backoff; what persists becomes a finding.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .read_timeout(std::time::Duration::from_secs(60))
                .build(),
        );
    // S3-compatible stores rarely care about the region, but the signer
    // needs one.
    if sdk.region().is_none() {
        b = b.region(Region::new("us-east-1"));
    }
    Client::from_conf(b.build())
}

fn to_utc(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now)
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// A bucket, or a prefix within it, as a source of backups.
#[derive(Clone, Debug)]
pub struct S3Source {
    client: Client,
    bucket: String,
    /// "" or ending with '/': keys relative to it are what manifests name.
    prefix: String,
    all_versions: bool,
}

impl S3Source {
    /// The source for `s3://bucket/prefix`, every object under it.
    pub fn connect(url: &str, opts: &S3Options) -> Result<S3Source, SourceError> {
        let (bucket, key) = parse_url(url).map_err(|reason| SourceError {
            location: url.to_string(),
            reason,
        })?;
        Ok(S3Source::at(client(opts), bucket, &key).with(opts))
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
        let (bucket, key) = parse_url(url).map_err(|reason| SourceError {
            location: url.to_string(),
            reason,
        })?;
        let client = client(opts);
        if key.is_empty() || key.ends_with('/') {
            return Ok((S3Source::at(client, bucket, &key).with(opts), None));
        }
        let probe = S3Source::at(client.clone(), bucket.clone(), "");
        let is_single = probe.exists(&key)? || probe.exists(&format!("{key}/toc.dat"))?;
        if !is_single {
            return Ok((S3Source::at(client, bucket, &key).with(opts), None));
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

    /// Whether an object exists (HEAD), telling "no" apart from "cannot ask".
    fn exists(&self, key: &str) -> Result<bool, SourceError> {
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

    /// Every current object under `prefix` (ListObjectsV2, all pages);
    /// with `delimiter`, only those directly under it.
    async fn list_prefix(
        &self,
        prefix: &str,
        delimiter: bool,
        out: &mut Vec<Artifact>,
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
                out.push(a);
            }
        }
        Ok(())
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The checksums the store records for one object, from a GET or HEAD
    /// reply (checksum mode enabled).
    fn promises_of(&self, reply: &ObjectFacts) -> (Vec<Expectation>, Vec<PartPromise>) {
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

    /// Bucket versioning, Object Lock and noncurrent-version lifecycle, as
    /// one retention finding; replies a store does not implement are noted
    /// in the evidence rather than failing the run.
    fn retention_finding(&self) -> (Finding, Option<BucketVersioningStatus>) {
        let subject = format!("s3://{}", self.bucket);
        let rt = runtime();
        let versioning = rt.block_on(
            self.client
                .get_bucket_versioning()
                .bucket(&self.bucket)
                .send(),
        );
        let status = match versioning {
            Ok(v) => v.status().cloned(),
            Err(e) => {
                let f = Finding::new(
                    subject,
                    Check::Retention,
                    Status::Error,
                    format!("cannot read the bucket's versioning: {}", describe(&e)),
                )
                .remedy("Grant s3:GetBucketVersioning to backproof's credentials.");
                return (f, None);
            }
        };
        let mut lock_enabled = Some(false);
        let lock = match rt.block_on(
            self.client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(l) => match l.object_lock_configuration() {
                Some(c) if c.object_lock_enabled().is_some() => {
                    lock_enabled = Some(true);
                    match c.rule().and_then(|r| r.default_retention()) {
                        Some(d) => format!(
                            "enabled, default {} retention of {}",
                            d.mode().map(|m| m.as_str()).unwrap_or("?"),
                            match (d.days(), d.years()) {
                                (Some(n), _) => format!("{n} day(s)"),
                                (_, Some(n)) => format!("{n} year(s)"),
                                _ => "unspecified length".into(),
                            }
                        ),
                        None => "enabled, no default retention".into(),
                    }
                }
                _ => "not enabled".into(),
            },
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ObjectLockConfigurationNotFoundError")
                    || e.raw().status().as_u16() == 404 =>
            {
                "not enabled".into()
            }
            Err(e) => {
                lock_enabled = None;
                format!("unknown ({})", describe(&e))
            }
        };
        // Days noncurrent versions live: None while unknown, Some(None)
        // when no rule expires them.
        let mut noncurrent_days: Option<Option<i32>> = None;
        let noncurrent = match rt.block_on(
            self.client
                .get_bucket_lifecycle_configuration()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(l) => {
                let days: Vec<i32> = l
                    .rules()
                    .iter()
                    .filter(|r| r.status().as_str() == "Enabled")
                    .filter_map(|r| r.noncurrent_version_expiration())
                    .filter_map(|n| n.noncurrent_days())
                    .collect();
                noncurrent_days = Some(days.iter().min().copied());
                match days.iter().min() {
                    Some(d) => format!("expire after {d} day(s)"),
                    None => "kept until deleted by hand (no expiring rule)".into(),
                }
            }
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("NoSuchLifecycleConfiguration")
                    || e.raw().status().as_u16() == 404 =>
            {
                noncurrent_days = Some(None);
                "kept until deleted by hand (no lifecycle rules)".into()
            }
            Err(e) => format!("unknown ({})", describe(&e)),
        };
        let default_encryption = match rt.block_on(
            self.client
                .get_bucket_encryption()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(e) => {
                let algorithms: Vec<&str> = e
                    .server_side_encryption_configuration()
                    .map(|c| c.rules())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r.apply_server_side_encryption_by_default())
                    .map(|d| d.sse_algorithm().as_str())
                    .collect();
                algorithms.first().copied().unwrap_or("none").to_string()
            }
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ServerSideEncryptionConfigurationNotFoundError")
                    || e.raw().status().as_u16() == 404 =>
            {
                "none".into()
            }
            Err(e) => format!("unknown ({})", describe(&e)),
        };
        let (st, summary, remedy) = match &status {
            Some(BucketVersioningStatus::Enabled) => (
                Status::Pass,
                format!("versioning enabled; noncurrent versions {noncurrent}"),
                None,
            ),
            Some(BucketVersioningStatus::Suspended) => (
                Status::Warn,
                "versioning suspended: objects overwritten or deleted from now on cannot be recovered".to_string(),
                Some("Re-enable versioning on the bucket (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled)."),
            ),
            _ => (
                Status::Warn,
                "versioning never enabled: an overwritten or deleted object cannot be recovered".to_string(),
                Some("Enable versioning on the bucket, with a lifecycle rule that expires noncurrent versions after your retention period."),
            ),
        };
        let mut f = Finding::new(subject, Check::Retention, st, summary)
            .with(
                "versioning",
                status
                    .as_ref()
                    .map(|s| s.as_str())
                    .unwrap_or("never enabled"),
            )
            .with("object_lock", lock)
            .with("object_lock_enabled", lock_enabled)
            .with("noncurrent_versions", noncurrent)
            .with("noncurrent_known", noncurrent_days.is_some())
            .with("noncurrent_days", noncurrent_days.flatten())
            .with("default_encryption", default_encryption);
        if let Some(r) = remedy {
            f = f.remedy(r);
        }
        (f, status)
    }

    /// For every key under the prefix whose latest version is a delete
    /// marker: the newest earlier version must exist and read back with the
    /// checksums S3 records for it. ListObjectVersions has no paginator in
    /// the SDK, so pages follow the key and version-id markers by hand;
    /// versions come newest first per key, so one pass holds one key.
    fn recovery_findings(&self) -> Vec<Finding> {
        let mut deleted: Vec<(String, DateTime<Utc>, Option<Artifact>)> = Vec::new();
        let mut noncurrent: Vec<Artifact> = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = runtime().block_on(
                self.client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(&self.prefix)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send(),
            );
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    return vec![
                        Finding::new(
                            self.location(),
                            Check::Recovery,
                            Status::Error,
                            format!("cannot list object versions: {}", describe(&e)),
                        )
                        .remedy("Grant s3:ListBucketVersions to backproof's credentials."),
                    ];
                }
            };
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
        let mut out: Vec<Finding> = deleted
            .into_iter()
            .map(|(key, when, previous)| self.recovery_finding(&key, when, previous))
            .collect();
        out.extend(self.version_findings(&noncurrent));
        out
    }

    /// Every noncurrent version read back and checked against the
    /// checksums S3 stored for it, a few at a time.
    fn version_findings(&self, versions: &[Artifact]) -> Vec<Finding> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let found = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..VERSIONS_IN_FLIGHT.min(versions.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(a) = versions.get(i) else { break };
                        let f = self.version_finding(a);
                        found.lock().expect("findings lock").push((i, f));
                    }
                });
            }
        });
        let mut found = found.into_inner().expect("findings lock");
        found.sort_by_key(|(i, _)| *i);
        found.into_iter().map(|(_, f)| f).collect()
    }

    fn version_finding(&self, a: &Artifact) -> Finding {
        let version = a.version_id.clone().unwrap_or_default();
        let base = |status, summary: String| {
            Finding::new(self.subject(&a.key), Check::Integrity, status, summary)
                .with("version_id", version.clone())
                .with("modified", a.modified.to_rfc3339())
                .with("size", a.size)
        };
        match self.read_version(a) {
            Err(e) => base(Status::Error, format!("noncurrent version {version}: {e}"))
                .remedy("Check permissions (s3:GetObjectVersion) and the storage; this version is unproven."),
            Ok(r) if r.read != a.size => base(
                Status::Fail,
                format!("noncurrent version {version} read {} of {} bytes", r.read, a.size),
            )
            .remedy("This old version is damaged: it will not restore the object as it was."),
            Ok(r) if !r.bad.is_empty() => base(
                Status::Fail,
                format!("noncurrent version {version} does not match its checksum: {}", r.bad.join("; ")),
            )
            .with("mismatches", r.bad)
            .remedy("This old version is damaged: it will not restore the object as it was."),
            Ok(r) if r.checks.is_empty() => base(
                Status::Warn,
                format!("noncurrent version {version} reads back, but S3 records no checksum to check it against"),
            )
            .remedy("Upload with a checksum (x-amz-checksum-*) so every version can be proven intact."),
            Ok(r) => base(
                Status::Pass,
                format!("noncurrent version {version} matches {} stored checksum(s)", r.checks.len()),
            )
            .with("checks", r.checks),
        }
    }

    /// Reads one version to its end through the checksums S3 stores for it.
    fn read_version(&self, a: &Artifact) -> Result<VersionRead, String> {
        let opened = self.open(a).map_err(|e| format!("cannot be read: {e}"))?;
        let mut hashers = Hashers::new(opened.promises.iter().map(|p| p.algorithm));
        let mut reader = opened.reader;
        let mut buf = vec![0u8; crate::digest::READ_BUF];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hashers.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading failed: {e}")),
            }
        }
        drop(reader);
        let read = hashers.bytes();
        let digests = hashers.finish();
        let mut checks: Vec<(Expectation, String)> = opened
            .promises
            .into_iter()
            .map(|e| {
                let actual = digests.get(&e.algorithm).cloned().unwrap_or_default();
                (e, actual)
            })
            .collect();
        checks.extend(std::mem::take(
            &mut *opened.settled.lock().expect("settled lock"),
        ));
        Ok(VersionRead {
            read,
            bad: checks
                .iter()
                .filter(|(e, actual)| &e.digest != actual)
                .map(|(e, actual)| format!("{}: expected {} got {actual}", e.manifest, e.digest))
                .collect(),
            checks: checks.into_iter().map(|(e, _)| e.manifest).collect(),
        })
    }

    fn recovery_finding(
        &self,
        key: &str,
        deleted: DateTime<Utc>,
        previous: Option<Artifact>,
    ) -> Finding {
        let subject = self.subject(key);
        let Some(a) = previous else {
            return Finding::new(
                subject,
                Check::Recovery,
                Status::Fail,
                "deleted, and no earlier version exists: it cannot be restored",
            )
            .with("deleted_at", deleted.to_rfc3339())
            .remedy("Restore it from another copy; keep versioning enabled and noncurrent versions long enough.");
        };
        let version = a.version_id.clone().unwrap_or_default();
        let base = |status, summary: String| {
            Finding::new(&subject, Check::Recovery, status, summary)
                .with("deleted_at", deleted.to_rfc3339())
                .with("version_id", version.clone())
                .with("size", a.size)
        };
        let (read, bad, names) = match self.read_version(&a) {
            Ok(r) => (r.read, r.bad, r.checks),
            Err(e) => {
                return base(
                    Status::Error,
                    format!("deleted; previous version {version} {e}"),
                );
            }
        };
        if read != a.size {
            base(
                Status::Fail,
                format!("deleted; previous version {version} read {read} of {} bytes", a.size),
            )
            .remedy("The version that should restore this object is damaged: restore from another copy.")
        } else if !bad.is_empty() {
            base(
                Status::Fail,
                format!("deleted; previous version {version} does not match its checksum: {}", bad.join("; ")),
            )
            .with("mismatches", bad)
            .remedy("The version that should restore this object is damaged: restore from another copy.")
        } else if names.is_empty() {
            base(
                Status::Warn,
                format!("deleted; previous version {version} reads back, but S3 records no checksum to check it against"),
            )
            .remedy("Upload with a checksum (x-amz-checksum-*) so the copy can be proven intact.")
        } else {
            base(
                Status::Pass,
                format!("deleted; previous version {version} reads back and matches {} stored checksum(s)", names.len()),
            )
            .with("checks", names)
        }
    }

    /// The part layout of a multipart object: HEAD of part 1 gives its size
    /// and the part count. `None` when the store will not say, or the
    /// layout is not uniform (then the part promises go unchecked).
    fn part_layout(&self, key: &str, version: Option<String>, size: u64) -> Option<PartLayout> {
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

/// One version read back: bytes read, the stored checksums it was checked
/// against, and those it failed.
struct VersionRead {
    read: u64,
    checks: Vec<String>,
    bad: Vec<String>,
}

/// What a GET or HEAD says about an object's bytes.
struct ObjectFacts {
    version_id: Option<String>,
    etag: Option<String>,
    kms_or_customer_key: bool,
    /// Server-side encryption: "AES256", "aws:kms", "SSE-C" or "none".
    encryption: String,
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
    fn of_get(o: &aws_sdk_s3::operation::get_object::GetObjectOutput) -> Self {
        object_facts!(o)
    }

    fn of_head(o: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Self {
        object_facts!(o)
    }
}

/// The hashing thread's end of a streamed object body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    /// Multipart checks, fed the same chunks on a thread of their own.
    parts: Option<PartChecks>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    if let Some(p) = &self.parts {
                        p.feed(b.clone());
                    }
                    self.current = b
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => {
                    if let Some(p) = self.parts.take() {
                        p.settle();
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Streams `body` into a bounded channel from the runtime; the task stops
/// when the reader is dropped.
fn bridge(mut body: ByteStream, parts: Option<PartChecks>) -> ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
    runtime().spawn(async move {
        loop {
            let item = match body.next().await {
                None => break,
                Some(Ok(b)) => Ok(b),
                Some(Err(e)) => Err(format!(
                    "reading the object body: {}",
                    DisplayErrorContext(e)
                )),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
        parts,
    }
}

/// One object version, fetched by byte ranges.
struct RangedObject {
    client: Client,
    bucket: String,
    key: String,
    version_id: Option<String>,
    /// Quoted, for If-Match: a range of a replaced object is refused
    /// rather than spliced into the old one's bytes.
    etag: Option<String>,
    size: u64,
}

impl RangedObject {
    async fn fetch(&self, start: u64) -> Result<Bytes, String> {
        let end = (start + RANGE_SIZE).min(self.size) - 1;
        let reply = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_version_id(self.version_id.clone())
            .set_if_match(self.etag.clone())
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(|e| format!("bytes {start}-{end}: {}", describe(&e)))?;
        let bytes = reply
            .body
            .collect()
            .await
            .map_err(|e| format!("bytes {start}-{end}: {}", DisplayErrorContext(e)))?
            .into_bytes();
        if bytes.len() as u64 != end - start + 1 {
            return Err(format!(
                "bytes {start}-{end}: got {} bytes: object changed during verification",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// Fetches `object` as RANGE_SIZE ranges, RANGES_IN_FLIGHT at a time, and
/// hands them to the reader in order: one HTTP stream rarely fills the link
/// to S3, several do. Memory stays bounded at RANGES_IN_FLIGHT ranges plus
/// the channel, whatever the object's size.
fn ranged(object: RangedObject, parts: Option<PartChecks>) -> ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    runtime().spawn(async move {
        let object = std::sync::Arc::new(object);
        let mut next = 0u64;
        let mut in_flight = std::collections::VecDeque::new();
        let mut spawn_next = |in_flight: &mut std::collections::VecDeque<_>| {
            if next < object.size {
                let (o, start) = (object.clone(), next);
                in_flight.push_back(tokio::spawn(async move { o.fetch(start).await }));
                next += RANGE_SIZE;
            }
        };
        for _ in 0..RANGES_IN_FLIGHT {
            spawn_next(&mut in_flight);
        }
        while let Some(task) = in_flight.pop_front() {
            let item = task.await.unwrap_or_else(|e| Err(e.to_string()));
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
            spawn_next(&mut in_flight);
        }
        for task in in_flight {
            task.abort();
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
        parts,
    }
}

/// How a multipart object was cut: every part `part_size` bytes but the
/// last, as every uploader (SDKs, aws cli, rclone) does.
#[derive(Clone, Copy, Debug)]
struct PartLayout {
    part_size: u64,
    parts: u64,
}

/// A promise over parts: the multipart ETag (MD5 of the part MD5s) or a
/// composite checksum (the algorithm over the part checksums), both "-N".
struct PartPromise {
    expectation: Expectation,
    /// The digest of each part, and of their concatenation.
    algorithm: Algorithm,
}

/// Rebuilds multipart ETags and composite checksums from the bytes, on a
/// thread of its own so the main pass does not slow down.
struct PartChecks {
    tx: std::sync::mpsc::SyncSender<Bytes>,
    handle: std::thread::JoinHandle<Vec<(Expectation, String)>>,
    settled: Settled,
}

impl PartChecks {
    /// `depth` chunks may wait for the part hashers: the body's chunks are
    /// small, but a ranged read's are whole ranges, so fewer of them.
    fn start(
        layout: PartLayout,
        promises: Vec<PartPromise>,
        settled: Settled,
        depth: usize,
    ) -> PartChecks {
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
            tx,
            handle,
            settled,
        }
    }

    fn feed(&self, chunk: Bytes) {
        // Fails only if the thread died; settle() then reports nothing.
        let _ = self.tx.send(chunk);
    }

    fn settle(self) {
        drop(self.tx);
        if let Ok(results) = self.handle.join() {
            self.settled.lock().expect("settled lock").extend(results);
        }
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
        runtime().block_on(async {
            match only {
                None => self.list_prefix(&self.prefix, false, &mut out).await,
                Some(o) => {
                    self.list_prefix(&self.prefix, true, &mut out).await?;
                    self.list_prefix(&format!("{}{o}/", self.prefix), false, &mut out)
                        .await
                }
            }
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, Vec::new()))
    }

    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        let key = self.full_key(&artifact.key);
        // Small objects: one GET gives facts and bytes. Large ones: a HEAD
        // for the facts (a ranged GET carries no whole-object checksum),
        // then ranges fetched in parallel, pinned to the version and ETag.
        let (facts, body) = if artifact.size >= RANGED_FROM {
            let head = runtime()
                .block_on(
                    self.client
                        .head_object()
                        .bucket(&self.bucket)
                        .key(&key)
                        .set_version_id(artifact.version_id.clone())
                        .checksum_mode(ChecksumMode::Enabled)
                        .send(),
                )
                .map_err(|e| io::Error::other(describe(&e)))?;
            (ObjectFacts::of_head(&head), None)
        } else {
            let reply = runtime()
                .block_on(
                    self.client
                        .get_object()
                        .bucket(&self.bucket)
                        .key(&key)
                        .set_version_id(artifact.version_id.clone())
                        .checksum_mode(ChecksumMode::Enabled)
                        .send(),
                )
                .map_err(|e| io::Error::other(describe(&e)))?;
            (ObjectFacts::of_get(&reply), Some(reply.body))
        };
        let (promises, parted) = self.promises_of(&facts);
        let settled = Settled::default();
        let parts = if parted.is_empty() {
            None
        } else {
            self.part_layout(&key, facts.version_id.clone(), artifact.size)
                .filter(|l| {
                    parted
                        .iter()
                        .all(|p| p.expectation.digest.ends_with(&format!("-{}", l.parts)))
                })
                .map(|layout| {
                    let depth = if body.is_some() { CHANNEL_DEPTH } else { 2 };
                    PartChecks::start(layout, parted, settled.clone(), depth)
                })
        };
        let reader = match body {
            Some(body) => bridge(body, parts),
            None => ranged(
                RangedObject {
                    client: self.client.clone(),
                    bucket: self.bucket.clone(),
                    key,
                    version_id: facts.version_id.clone().filter(|v| v != "null"),
                    etag: facts.etag.as_ref().map(|e| format!("\"{e}\"")),
                    size: artifact.size,
                },
                parts,
            ),
        };
        Ok(Opened {
            encryption: Some(facts.encryption.clone()),
            version_id: facts.version_id.filter(|v| v != "null"),
            reader: Box::new(reader),
            promises,
            settled,
        })
    }

    fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    fn store_findings(&self) -> Vec<Finding> {
        let (retention, versioning) = self.retention_finding();
        let mut out = vec![retention];
        // Without versioning ever enabled there are no delete markers.
        if versioning.is_some() {
            out.extend(self.recovery_findings());
        }
        out
    }

    fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || offset >= artifact.size {
            return Ok(0);
        }
        let last = (offset + buf.len() as u64).min(artifact.size) - 1;
        let key = self.full_key(&artifact.key);
        let bytes = runtime().block_on(async {
            let reply = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .set_version_id(artifact.version_id.clone())
                .range(format!("bytes={offset}-{last}"))
                .send()
                .await
                .map_err(|e| io::Error::other(describe(&e)))?;
            reply
                .body
                .collect()
                .await
                .map(|b| b.into_bytes())
                .map_err(io::Error::other)
        })?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-only guarantee, in code: every S3 operation this crate
    /// calls is a list, a head or a get.
    #[test]
    fn no_call_that_writes() {
        let sources = [
            include_str!("s3.rs"),
            include_str!("../compare.rs"),
            include_str!("../audit.rs"),
            include_str!("../verify.rs"),
            include_str!("../catalog.rs"),
        ];
        let call = regex::Regex::new(r"\.(\w+)\(\)\s*\.bucket\(").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for text in sources {
            // The operation names, wherever a request builder is started.
            for c in call.captures_iter(&text.replace(['\n', ' '], "")) {
                seen.insert(c[1].to_string());
            }
        }
        assert!(
            seen.contains("get_object"),
            "the scan finds calls: {seen:?}"
        );
        for op in &seen {
            assert!(
                op.starts_with("get_") || op.starts_with("head_") || op.starts_with("list_"),
                "{op} is not a read"
            );
        }
    }

    #[test]
    fn urls_and_path_style() {
        assert_eq!(
            parse_url("s3://b/x/y").unwrap(),
            ("b".to_string(), "x/y".to_string())
        );
        assert_eq!(
            parse_url("s3://b").unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(parse_url("s3:///x").is_err());
        assert!(wants_path_style("http://127.0.0.1:8333"));
        assert!(wants_path_style("http://localhost:9000/"));
        assert!(wants_path_style("http://[::1]:9000"));
        assert!(!wants_path_style("https://s3.eu-west-1.amazonaws.com"));
    }
}
