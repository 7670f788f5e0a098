//! Secondary-copy parity: every artifact of a source must be in its copy,
//! with the same bytes, and the copy holds nothing the source does not.
//! Either side may be a local directory or an S3 prefix ("was this
//! directory uploaded faithfully?").

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use serde_json::json;

use crate::digest::{Algorithm, Hashers, READ_BUF};
use crate::finding::{Check, Finding, Status};
use crate::shard::Shard;
use crate::source::{Artifact, SourceError, Storage};
use crate::verify::VerifyOptions;

/// What comparing a source with its copy found, as the promises about
/// copies read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParityFacts {
    /// Objects in the source.
    pub objects: usize,
    /// Of those, the ones the copy holds with the same bytes.
    pub identical: usize,
    /// Missing, stale, extra or unreadable objects of the copy.
    pub problems: usize,
    /// How far the stale objects of the copy lag behind the source.
    pub copy_lag_seconds: i64,
}

impl ParityFacts {
    /// Every object copied faithfully, and there was something to copy: an
    /// empty source proves no copy job works.
    pub fn complete(&self) -> bool {
        self.problems == 0 && self.objects > 0
    }

    /// The line the summary finding (and a kept copy promise) carries.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} object(s) identical in the copy; {} problem(s); copy lag {} s",
            self.identical, self.objects, self.problems, self.copy_lag_seconds
        )
    }
}

/// A comparison: the facts, and the findings for the report (the summary
/// first, then one per problem object).
#[derive(Clone, Debug)]
pub struct Parity {
    pub facts: ParityFacts,
    pub findings: Vec<Finding>,
    /// Bytes read from both sides where no stored checksum settled a pair.
    pub bytes_read: u64,
}

/// How two copies of one key compare.
#[derive(Debug, PartialEq)]
enum Verdict {
    Same {
        by: &'static str,
    },
    Differs {
        why: String,
    },
    /// One side could not be read: the comparison did not happen.
    Unread {
        why: String,
    },
}

/// A single-part ETag is the MD5 of the bytes; a multipart one ("-N")
/// depends on how the upload was cut, so only two identical layouts compare.
fn plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares by stored checksums when both sides have comparable ones.
fn by_checksums(src: &Artifact, dst: &Artifact) -> Option<Verdict> {
    let (a, b) = (src.etag.as_deref()?, dst.etag.as_deref()?);
    if a.eq_ignore_ascii_case(b) {
        return Some(Verdict::Same { by: "ETag" });
    }
    (plain_md5(a) && plain_md5(b)).then(|| Verdict::Differs {
        why: format!("MD5 (ETag) {a} in the source, {b} in the copy"),
    })
}

fn sha256_of(store: &dyn Storage, a: &Artifact) -> io::Result<(String, u64)> {
    let mut reader = store.open(a)?.reader;
    let mut hashers = Hashers::new([Algorithm::Sha256]);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hashers.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = hashers.bytes();
    Ok((hashers.finish()[&Algorithm::Sha256].clone(), n))
}

/// Reads both sides when no stored checksum settles it; with the bytes
/// read (what an unreadable side gave is not known, so not counted).
fn by_bytes(src: &dyn Storage, a: &Artifact, dst: &dyn Storage, b: &Artifact) -> (Verdict, u64) {
    let (x, y) = match (sha256_of(src, a), sha256_of(dst, b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), other) => {
            let n = other.map(|(_, n)| n).unwrap_or(0);
            let why = format!("source: {e}");
            return (Verdict::Unread { why }, n);
        }
        (Ok((_, n)), Err(e)) => {
            let why = format!("copy: {e}");
            return (Verdict::Unread { why }, n);
        }
    };
    let read = x.1 + y.1;
    if x == y {
        (Verdict::Same { by: "sha256" }, read)
    } else {
        let why = format!("sha256 {} in the source, {} in the copy", x.0, y.0);
        (Verdict::Differs { why }, read)
    }
}

/// How `dst` holds up as a copy of `src`.
pub fn compare_stores(
    src: &dyn Storage,
    dst: &dyn Storage,
    opts: &VerifyOptions,
    shard: Shard,
) -> Result<Parity, SourceError> {
    // A key is one unit, on both sides: with --shard, each shard compares
    // its own keys, and the shards together compare every key once.
    let (mut src_list, _) = src.list_scoped(None)?;
    let (mut dst_list, _) = dst.list_scoped(None)?;
    src_list.retain(|a| shard.owns(&a.key));
    dst_list.retain(|a| shard.owns(&a.key));
    let dst_by_key: BTreeMap<&str, &Artifact> =
        dst_list.iter().map(|a| (a.key.as_str(), a)).collect();
    let src_keys: std::collections::BTreeSet<&str> =
        src_list.iter().map(|a| a.key.as_str()).collect();

    let mut findings = Vec::new();
    let mut pairs: Vec<(&Artifact, &Artifact)> = Vec::new();
    for a in &src_list {
        match dst_by_key.get(a.key.as_str()) {
            None => findings.push(
                Finding::new(
                    dst.subject(&a.key),
                    Check::Parity,
                    Status::Fail,
                    "missing in the copy",
                )
                .with("source", src.subject(&a.key))
                .with("size", a.size)
                .with("source_modified", a.modified.to_rfc3339())
                .remedy("The copy job skipped or has not yet reached this object: check its logs, then copy it."),
            ),
            Some(b) => pairs.push((a, b)),
        }
    }
    for b in &dst_list {
        if !src_keys.contains(b.key.as_str()) {
            findings.push(
                Finding::new(
                    dst.subject(&b.key),
                    Check::Parity,
                    Status::Fail,
                    "extra in the copy: the source does not hold it",
                )
                .with("size", b.size)
                .with("modified", b.modified.to_rfc3339())
                .remedy("Deleted or renamed at the source but not in the copy, or written to the copy by something else: find out which."),
            );
        }
    }

    // Sizes first, then stored checksums; bytes are read only when neither
    // settles it, by a bounded pool of workers.
    let mut verdicts: Vec<Option<Verdict>> = pairs
        .iter()
        .map(|(a, b)| {
            if a.size != b.size {
                Some(Verdict::Differs {
                    why: format!("{} bytes in the source, {} in the copy", a.size, b.size),
                })
            } else {
                by_checksums(a, b)
            }
        })
        .collect();
    let to_read: Vec<usize> = (0..pairs.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    let next = AtomicUsize::new(0);
    let read: Vec<(usize, (Verdict, u64))> = thread::scope(|s| {
        let workers: Vec<_> = (0..opts.jobs.max(1).min(to_read.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while let Some(&i) = to_read.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let (a, b) = pairs[i];
                        // A time budget never turns into a silent pass: a
                        // pair not reached is "could not compare".
                        if opts
                            .deadline
                            .is_some_and(|d| std::time::Instant::now() >= d)
                        {
                            let why = "the run's deadline passed before it was reached".into();
                            out.push((i, (Verdict::Unread { why }, 0)));
                            continue;
                        }
                        out.push((i, by_bytes(src, a, dst, b)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("compare worker panicked"))
            .collect()
    });
    let mut bytes_read = 0;
    for (i, (v, n)) in read {
        verdicts[i] = Some(v);
        bytes_read += n;
    }

    let mut same = 0usize;
    let mut max_lag = 0i64;
    for ((a, b), v) in pairs.iter().zip(verdicts) {
        let lag = (a.modified - b.modified).num_seconds().max(0);
        match v.expect("every pair judged") {
            Verdict::Same { .. } => same += 1,
            Verdict::Differs { why } => {
                max_lag = max_lag.max(lag);
                findings.push(
                    Finding::new(
                        dst.subject(&b.key),
                        Check::Parity,
                        Status::Fail,
                        format!("stale in the copy: {why}"),
                    )
                    .with("source", src.subject(&a.key))
                    .with("source_modified", a.modified.to_rfc3339())
                    .with("copy_modified", b.modified.to_rfc3339())
                    .with("lag_seconds", lag)
                    .with("version_id", json!(b.version_id))
                    .remedy("The copy holds an older or damaged version: copy the object again and check the copy job."),
                );
            }
            Verdict::Unread { why } => findings.push(
                Finding::new(
                    dst.subject(&b.key),
                    Check::Parity,
                    Status::Error,
                    format!("could not compare: {why}"),
                )
                .remedy("Check permissions and the storage; this object's copy is unproven."),
            ),
        }
    }
    let facts = ParityFacts {
        objects: src_list.len(),
        identical: same,
        problems: findings.len(),
        copy_lag_seconds: max_lag,
    };
    // Objects that could not be compared prove nothing either way: the
    // copy is then unproven (error), not shown broken, unless something
    // else in it is.
    let unproven = findings.iter().all(|f| f.status == Status::Error);
    let (status, summary) = if facts.problems > 0 && unproven {
        (Status::Error, facts.summary())
    } else if facts.problems > 0 {
        (Status::Fail, facts.summary())
    } else if facts.objects == 0 {
        (
            Status::Warn,
            "the source holds no objects: nothing was compared, so the copy proves nothing"
                .to_string(),
        )
    } else {
        (Status::Pass, facts.summary())
    };
    findings.insert(
        0,
        Finding::new(dst.location(), Check::Parity, status, summary)
            .with("source", src.location())
            .with("objects", facts.objects)
            .with("identical", facts.identical)
            .with("copy_lag_seconds", facts.copy_lag_seconds),
    );
    Ok(Parity {
        facts,
        findings,
        bytes_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn art(etag: Option<&str>) -> Artifact {
        let mut a = Artifact::new("k", 3, Utc::now());
        a.etag = etag.map(str::to_string);
        a
    }

    #[test]
    fn stored_checksums_settle_only_comparable_pairs() {
        let md5a = "900150983cd24fb0d6963f7d28e17f72";
        let md5b = "0cc175b9c0f1b6a831c399e269772661";
        assert_eq!(
            by_checksums(&art(Some(md5a)), &art(Some(md5a))),
            Some(Verdict::Same { by: "ETag" })
        );
        assert!(matches!(
            by_checksums(&art(Some(md5a)), &art(Some(md5b))),
            Some(Verdict::Differs { .. })
        ));
        // Different multipart layouts: only the bytes can tell.
        assert_eq!(
            by_checksums(&art(Some(&format!("{md5a}-2"))), &art(Some(md5b))),
            None
        );
        assert_eq!(by_checksums(&art(None), &art(Some(md5b))), None);
    }
}
