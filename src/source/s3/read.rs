//! Reading objects: one streamed GET for small objects, parallel ranged
//! GETs pinned to the version and ETag for large ones, and positional reads.
//!
//! Network I/O is async on the shared runtime; hashing stays on the
//! verification threads. A body crosses over through a bounded channel,
//! so memory stays bounded whatever the object's size.

use std::io::{self, Read};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, ByteStreamError};
use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;

use super::S3Source;
use super::checksums::{LayoutError, ObjectFacts, PartChecks, leave_out_md5, promises_of};
use super::client::{RequestError, runtime};
use crate::digest::Algorithm;
use crate::expectation::Expectation;
use crate::source::{Artifact, BackupReader, Opened, Unchecked};

/// Body chunks queued between the network task and the hashing thread. The
/// SDK hands out chunks of at most a few tens of KiB, so this bounds each
/// open object to a few MiB in flight.
const CHANNEL_DEPTH: usize = 64;

/// Objects from this size on are read as parallel ranged GETs.
const RANGED_FROM: u64 = 16 * 1024 * 1024;
const RANGE_SIZE: u64 = 8 * 1024 * 1024;
const RANGES_IN_FLIGHT: usize = 3;

/// Why the bytes of an object stopped coming.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("reading the object body: {}", DisplayErrorContext(.0))]
    Body(#[source] ByteStreamError),
    #[error("bytes {start}-{end}: {source}")]
    Range {
        start: u64,
        end: u64,
        #[source]
        source: RequestError,
    },
    #[error("bytes {start}-{end}: {}", DisplayErrorContext(.source))]
    RangeBody {
        start: u64,
        end: u64,
        #[source]
        source: ByteStreamError,
    },
    #[error("bytes {start}-{end}: got {got} bytes: object changed during verification")]
    Short { start: u64, end: u64, got: usize },
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The hashing thread's end of a streamed object body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, FetchError>>,
    current: Bytes,
    /// Multipart checks, fed the same chunks on a thread of their own.
    parts: Option<PartChecks>,
    /// The end of the bytes was reached: only then are part checks valid.
    ended: bool,
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
                    self.ended = true;
                    if let Some(p) = &mut self.parts {
                        p.end();
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

impl BackupReader for ChannelReader {
    fn finish(self: Box<Self>) -> Vec<(Expectation, String)> {
        match self.parts {
            Some(p) if self.ended => p.finish(),
            _ => Vec::new(),
        }
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
                Some(Err(e)) => Err(FetchError::Body(e)),
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
        ended: false,
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
    async fn fetch(&self, start: u64) -> Result<Bytes, FetchError> {
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
            .map_err(|e| FetchError::Range {
                start,
                end,
                source: RequestError::new(e),
            })?;
        let bytes = reply
            .body
            .collect()
            .await
            .map_err(|source| FetchError::RangeBody { start, end, source })?
            .into_bytes();
        if bytes.len() as u64 != end - start + 1 {
            return Err(FetchError::Short {
                start,
                end,
                got: bytes.len(),
            });
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
            let item = task.await.unwrap_or_else(|e| Err(e.into()));
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
        ended: false,
    }
}

impl S3Source {
    /// [`Storage::open`]. A HEAD (checksum mode) gives the facts and the
    /// store's checksums; the bytes come from GETs pinned to that version
    /// and ETag: one streamed GET for small objects, parallel ranges for
    /// large ones. The GETs ask for no checksum, so the SDK validates
    /// nothing: a stored checksum that disagrees with the bytes is checked
    /// here, in the one pass, and becomes a finding with both values
    /// rather than a read error.
    pub(super) fn open_object(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        let key = self.full_key(&artifact.key);
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
            .map_err(RequestError::new)?;
        let facts = ObjectFacts::of_head(&head);
        let version_id = facts.version_id.clone().filter(|v| v != "null");
        let etag = facts.etag.as_ref().map(|e| format!("\"{e}\""));
        let body = if artifact.size >= RANGED_FROM {
            None
        } else {
            let reply = runtime()
                .block_on(
                    self.client
                        .get_object()
                        .bucket(&self.bucket)
                        .key(&key)
                        .set_version_id(version_id.clone())
                        .set_if_match(etag.clone())
                        .send(),
                )
                .map_err(RequestError::new)?;
            Some(reply.body)
        };
        let (promises, parted) = promises_of(&facts);
        let layout = (!parted.is_empty()).then(|| {
            let counts: std::collections::BTreeSet<Option<u64>> = parted
                .iter()
                .map(|p| {
                    p.expectation
                        .digest
                        .rsplit_once('-')
                        .and_then(|(_, n)| n.parse().ok())
                })
                .collect();
            match counts.into_iter().collect::<Vec<_>>()[..] {
                [Some(n)] => self.part_layout(&key, version_id.clone(), artifact.size, n),
                _ => Err(LayoutError::PartCounts),
            }
        });
        let md5_wanted = (self.wanted.read()).is_ok_and(|w| w.contains(&Algorithm::Md5));
        let parts_checked = layout.as_ref().is_some_and(|l| l.is_ok());
        let (promises, parted, skipped) =
            leave_out_md5(promises, parted, parts_checked, md5_wanted);
        let mut unchecked = Vec::new();
        let parts = match layout {
            None => None,
            Some(Ok(_)) if parted.is_empty() => None,
            Some(Ok(layout)) => {
                let depth = if body.is_some() { CHANNEL_DEPTH } else { 2 };
                Some(PartChecks::start(layout, parted, depth))
            }
            Some(Err(why)) => {
                unchecked.extend(parted.into_iter().map(|p| Unchecked {
                    expectation: p.expectation,
                    reason: format!("part layout unknown: {why}"),
                }));
                None
            }
        };
        let reader = match body {
            Some(body) => bridge(body, parts),
            None => ranged(
                RangedObject {
                    client: self.client.clone(),
                    bucket: self.bucket.clone(),
                    key,
                    version_id: version_id.clone(),
                    etag,
                    size: artifact.size,
                },
                parts,
            ),
        };
        Ok(Opened {
            encryption: Some(facts.encryption.clone()),
            version_id,
            reader: Box::new(reader),
            promises,
            unchecked,
            skipped,
            scope: None,
        })
    }

    /// [`Storage::read_at`]: one ranged GET.
    pub(super) fn read_range(
        &self,
        artifact: &Artifact,
        offset: u64,
        buf: &mut [u8],
    ) -> io::Result<usize> {
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
                .map_err(RequestError::new)?;
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
    use crate::digest::{Algorithm, Hashers};
    use crate::source::s3::checksums::{PartLayout, PartPromise};

    /// A reader fed `chunks`, checking a multipart ETag of 4-byte parts.
    fn reader(chunks: &[&[u8]], promised: &str) -> ChannelReader {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        for c in chunks {
            tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
        }
        drop(tx);
        let promise = PartPromise {
            expectation: Expectation {
                algorithm: Algorithm::Md5,
                digest: promised.into(),
                manifest: "S3 multipart ETag (3 parts)".into(),
                line: 0,
            },
            algorithm: Algorithm::Md5,
        };
        let layout = PartLayout {
            sizes: vec![4, 4, 2],
        };
        ChannelReader {
            rx,
            current: Bytes::new(),
            parts: Some(PartChecks::start(layout, vec![promise], 2)),
            ended: false,
        }
    }

    fn md5(b: &[u8]) -> Vec<u8> {
        let mut h = Hashers::new([Algorithm::Md5]);
        h.update(b);
        hex::decode(&h.finish()[&Algorithm::Md5]).unwrap()
    }

    #[test]
    fn part_checks_come_back_from_finish_once_the_end_is_read() {
        let data = b"0123456789";
        let joined = [md5(b"0123"), md5(b"4567"), md5(b"89")].concat();
        let etag = format!("{}-3", hex::encode(md5(&joined)));
        let mut r = Box::new(reader(&[b"012", b"34567", b"89"], &etag));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let settled = r.finish();
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].0.digest, etag);
        assert_eq!(settled[0].1, etag, "the bytes give the promised ETag");
    }

    #[test]
    fn a_reader_stopped_early_settles_nothing() {
        let mut r = Box::new(reader(&[b"012", b"34567", b"89"], "x-3"));
        let mut first = [0u8; 4];
        r.read_exact(&mut first).unwrap();
        assert!(r.finish().is_empty());
    }
}
