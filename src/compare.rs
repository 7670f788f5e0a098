//! Secondary-copy parity: every artifact of a source must be in its copy,
//! with the same bytes, and the copy holds nothing the source does not.
//! Either side may be a local directory or an S3 prefix ("was this
//! directory uploaded faithfully?").

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, mpsc};
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
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_BUF]);
    }
    let mut reader = store.open(a)?.reader;
    let mut hashers = Hashers::new([Algorithm::Sha256]);
    // Bytes a reader holds already (a small file read whole, a mapping)
    // are hashed where they are.
    if let Some(lender) = reader.lender() {
        lender.lend_rest(&mut |b| hashers.update(b))?;
    } else {
        BUF.with_borrow_mut(|buf| {
            loop {
                match reader.read(buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => hashers.update(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })?;
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
///
/// Both listings stream and are joined as they come, so memory holds the
/// problems found and the keys one side has listed and the other not yet
/// reached, never a listing. Stores list in different orders (byte order on
/// AWS S3; path components on a directory walk and SeaweedFS), so a key is
/// declared missing only once the other side has passed it in every order
/// that side's listing is still consistent with; a listing in neither order
/// keeps its keys until the end, and is then judged all the same.
pub fn compare_stores(
    src: &dyn Storage,
    dst: &dyn Storage,
    opts: &VerifyOptions,
    shard: Shard,
) -> Result<Parity, SourceError> {
    match compare_once(src, dst, opts, shard, true) {
        Err(JoinError::Unordered(key)) => {
            tracing::warn!(
                key,
                "a listing of {} or {} is sorted neither by bytes nor by path: comparing again, holding the listings",
                src.location(),
                dst.location()
            );
            compare_once(src, dst, opts, shard, false)
        }
        other => other,
    }
    .map_err(|e| match e {
        JoinError::Source(e) => e,
        JoinError::Unordered(key) => unreachable!("an untrusted join never stops at {key}"),
    })
}

/// One comparison; `trusted` as in [`join`].
fn compare_once(
    src: &dyn Storage,
    dst: &dyn Storage,
    opts: &VerifyOptions,
    shard: Shard,
    trusted: bool,
) -> Result<Parity, JoinError> {
    // Pairs go to the workers in batches: one hand-over per pair of small
    // files cost more than reading them.
    const BATCH: usize = 32;
    let (to_read, pairs_in) = mpsc::sync_channel::<Vec<(Artifact, Artifact)>>(opts.jobs.max(1) * 4);
    let pairs_in = Mutex::new(pairs_in);
    let read_out: Mutex<Vec<Judged>> = Mutex::default();
    let read_same = AtomicUsize::new(0);
    let bytes_read = AtomicU64::new(0);
    let joined = thread::scope(|s| {
        let (src_tx, src_rx) = mpsc::sync_channel(8);
        let (dst_tx, dst_rx) = mpsc::sync_channel(8);
        s.spawn(move || stream(src, src_tx));
        s.spawn(move || stream(dst, dst_tx));
        // Sizes and stored checksums settle most pairs as they are joined;
        // the rest are read by a bounded pool of workers.
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = pairs_in.lock().expect("pairs lock").recv();
                    let Ok(batch) = next else { break };
                    for (a, b) in batch {
                        // A time budget never turns into a silent pass: a pair
                        // not reached is "could not compare".
                        let (v, n) = if opts
                            .deadline
                            .is_some_and(|d| std::time::Instant::now() >= d)
                        {
                            let why = "the run's deadline passed before it was reached".into();
                            (Verdict::Unread { why }, 0)
                        } else {
                            by_bytes(src, &a, dst, &b)
                        };
                        bytes_read.fetch_add(n, AtomicOrdering::Relaxed);
                        match v {
                            Verdict::Same { .. } => {
                                read_same.fetch_add(1, AtomicOrdering::Relaxed);
                            }
                            v => read_out.lock().expect("results lock").push((a, b, v)),
                        }
                    }
                }
            });
        }
        let mut batch = Vec::with_capacity(BATCH);
        let joined = join(src_rx, dst_rx, shard, trusted, |a, b| {
            if a.size != b.size {
                let why = format!("{} bytes in the source, {} in the copy", a.size, b.size);
                Some((a, b, Verdict::Differs { why }))
            } else if let Some(v) = by_checksums(&a, &b) {
                Some((a, b, v))
            } else {
                batch.push((a, b));
                if batch.len() == BATCH {
                    // A worker gone means a panic, which the scope re-raises.
                    let _ = to_read.send(std::mem::take(&mut batch));
                }
                None
            }
        });
        let _ = to_read.send(batch);
        drop(to_read);
        joined
    })?;
    let mut joined = joined;
    joined.same += read_same.into_inner();
    joined
        .judged
        .extend(read_out.into_inner().expect("results lock"));
    Ok(parity(src, dst, joined, bytes_read.into_inner()))
}

/// A pair of copies of one key and how they compare.
type Judged = (Artifact, Artifact, Verdict);

/// What a listing thread hands the join: a batch of entries, then the end.
enum Listed {
    Batch(Vec<Result<Artifact, SourceError>>),
    End(Result<(), SourceError>),
}

/// Lists `store` into `tx` in batches (one message per entry would cost
/// more than the entry).
fn stream(store: &dyn Storage, tx: mpsc::SyncSender<Listed>) {
    const BATCH: usize = 512;
    let mut batch = Vec::with_capacity(BATCH);
    let end = store.list_each(&mut |entry| {
        batch.push(entry);
        if batch.len() == BATCH {
            // The join gone (it failed): the rest is not needed.
            let _ = tx.send(Listed::Batch(std::mem::replace(
                &mut batch,
                Vec::with_capacity(BATCH),
            )));
        }
    });
    let _ = tx.send(Listed::Batch(batch));
    let _ = tx.send(Listed::End(end));
}

/// The orders a store may list in, as far as its listing so far allows.
struct Orders {
    last: String,
    started: bool,
    bytes: bool,
    components: bool,
    done: bool,
    /// False: the listing's order proves nothing until its end (the run
    /// after a listing turned out to be in neither order).
    trusted: bool,
}

fn by_components(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

impl Orders {
    fn new(trusted: bool) -> Orders {
        Orders {
            last: String::new(),
            started: false,
            bytes: true,
            components: true,
            done: false,
            trusted,
        }
    }

    /// A listing sorted in neither order: what was concluded from its
    /// order may be wrong.
    fn broken(&self) -> bool {
        self.trusted && !self.bytes && !self.components
    }

    fn see(&mut self, key: &str) {
        if self.started {
            self.bytes &= self.last.as_str() < key;
            self.components &= by_components(&self.last, key) == Ordering::Less;
        }
        self.started = true;
        self.last.clear();
        self.last.push_str(key);
    }

    /// True once `key` can no longer be listed: the listing ended, or it
    /// is past `key` in every order it may be in.
    fn passed(&self, key: &str) -> bool {
        self.done
            || (self.trusted
                && self.started
                && (self.bytes || self.components)
                && (!self.bytes || key < self.last.as_str())
                && (!self.components || by_components(key, &self.last) == Ordering::Less))
    }
}

/// One side of the join: its listing's state, the keys it listed that the
/// other side has not reached, and the entries it could not read.
struct Side {
    rx: mpsc::Receiver<Listed>,
    queue: std::vec::IntoIter<Result<Artifact, SourceError>>,
    orders: Orders,
    pending: BTreeMap<String, Artifact>,
    /// Pending size at which every pending key is checked, not only the
    /// first in byte order (a listing in component order passes keys out
    /// of byte order); doubles so the sweeps cost O(1) per key.
    sweep_at: usize,
    listed: usize,
    unlisted: Vec<SourceError>,
}

impl Side {
    fn new(rx: mpsc::Receiver<Listed>, trusted: bool) -> Side {
        Side {
            rx,
            queue: Vec::new().into_iter(),
            orders: Orders::new(trusted),
            pending: BTreeMap::new(),
            sweep_at: 64,
            listed: 0,
            unlisted: Vec::new(),
        }
    }

    /// The next entry in this shard, `Ok(None)` at the end.
    fn next(&mut self, shard: Shard) -> Result<Option<Artifact>, JoinError> {
        loop {
            match self.queue.next() {
                Some(Ok(a)) if shard.owns(&a.key) => {
                    self.orders.see(&a.key);
                    if self.orders.broken() {
                        return Err(JoinError::Unordered(a.key));
                    }
                    self.listed += 1;
                    return Ok(Some(a));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => self.unlisted.push(e),
                None => match self.rx.recv() {
                    Ok(Listed::Batch(b)) => self.queue = b.into_iter(),
                    Ok(Listed::End(end)) => {
                        end.map_err(JoinError::Source)?;
                        self.orders.done = true;
                        return Ok(None);
                    }
                    // The listing thread died (its panic surfaces at the
                    // scope's end): never a complete listing.
                    Err(_) => {
                        return Err(JoinError::Source(SourceError {
                            location: "listing".into(),
                            reason: "the listing stopped before its end".into(),
                        }));
                    }
                },
            }
        }
    }

    /// Takes the pending keys `other` has passed: they are not there.
    fn settle(&mut self, other: &Orders, absent: &mut Vec<Artifact>) {
        while let Some(e) = self.pending.first_entry() {
            if !other.passed(e.key()) {
                break;
            }
            absent.push(e.remove());
        }
        if self.pending.len() >= self.sweep_at {
            let (gone, kept) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|(k, _)| other.passed(k));
            self.pending = kept;
            absent.extend(gone.into_values());
            self.sweep_at = (self.pending.len() * 2).max(64);
        }
    }
}

/// The two listings joined by key: the pairs judged on the spot, and what
/// one side holds and the other does not.
struct Joined {
    judged: Vec<Judged>,
    missing: Vec<Artifact>,
    extra: Vec<Artifact>,
    objects: usize,
    unlisted: Vec<(bool, SourceError)>,
    same: usize,
}

/// Why a join stopped short.
#[derive(Debug)]
enum JoinError {
    Source(SourceError),
    /// A listing in neither order, at this key: start over without
    /// trusting the order.
    Unordered(String),
}

/// Joins the two listings. `pair` judges a pair at once (Some) or hands it
/// on to be read (None); only pairs with a problem are kept. `trusted`:
/// keys are settled as the listings pass them, else only at their end.
fn join(
    src_rx: mpsc::Receiver<Listed>,
    dst_rx: mpsc::Receiver<Listed>,
    shard: Shard,
    trusted: bool,
    mut pair: impl FnMut(Artifact, Artifact) -> Option<Judged>,
) -> Result<Joined, JoinError> {
    let mut sides = [Side::new(src_rx, trusted), Side::new(dst_rx, trusted)];
    let mut judged = Vec::new();
    let mut absent: [Vec<Artifact>; 2] = [Vec::new(), Vec::new()];
    let mut same = 0;
    loop {
        let (s, d) = (&sides[0], &sides[1]);
        // Read the side that is behind: the other's pending keys wait on it.
        let from = match (s.orders.done, d.orders.done) {
            (true, true) => break,
            (true, false) => 1,
            (false, true) => 0,
            _ => usize::from(s.pending.len() > d.pending.len()),
        };
        let other = 1 - from;
        let Some(a) = sides[from].next(shard)? else {
            // The end passes every key the other side still holds.
            let (this, that) = split(&mut sides, other);
            that.settle(&this.orders, &mut absent[other]);
            continue;
        };
        match sides[other].pending.remove(&a.key) {
            Some(b) => {
                let (a, b) = if from == 0 { (a, b) } else { (b, a) };
                if let Some(j) = pair(a, b) {
                    match j.2 {
                        Verdict::Same { .. } => same += 1,
                        _ => judged.push(j),
                    }
                }
            }
            None => {
                sides[from].pending.insert(a.key.clone(), a);
            }
        }
        let (this, that) = split(&mut sides, other);
        that.settle(&this.orders, &mut absent[other]);
    }
    // Both listings over: what is still pending is not on the other side.
    let [s, d] = sides;
    let [mut missing, mut extra] = absent;
    missing.extend(s.pending.into_values());
    extra.extend(d.pending.into_values());
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    extra.sort_by(|a, b| a.key.cmp(&b.key));
    let mut unlisted: Vec<(bool, SourceError)> =
        s.unlisted.into_iter().map(|e| (true, e)).collect();
    unlisted.extend(d.unlisted.into_iter().map(|e| (false, e)));
    Ok(Joined {
        judged,
        missing,
        extra,
        objects: s.listed,
        unlisted,
        same,
    })
}

/// `(sides[1 - i], sides[i])` as two borrows.
fn split(sides: &mut [Side; 2], i: usize) -> (&mut Side, &mut Side) {
    let [a, b] = sides;
    if i == 0 { (b, a) } else { (a, b) }
}

/// The findings: the summary first, then the entries that could not be
/// listed, the missing, the extra, and the pairs that differ or could not
/// be compared, each in key order.
fn parity(src: &dyn Storage, dst: &dyn Storage, joined: Joined, bytes_read: u64) -> Parity {
    let Joined {
        mut judged,
        missing,
        extra,
        objects,
        unlisted,
        same,
    } = joined;
    // An entry one side could not list is unproven (said below); the
    // other side's file of that name is then neither missing nor extra.
    let unlisted_at: std::collections::HashSet<(bool, String)> = (unlisted.iter())
        .map(|(in_source, e)| (*in_source, e.location.clone()))
        .collect();
    let missing =
        (missing.into_iter()).filter(|a| !unlisted_at.contains(&(false, dst.subject(&a.key))));
    let extra = (extra.into_iter()).filter(|b| !unlisted_at.contains(&(true, src.subject(&b.key))));
    let mut findings = Vec::new();
    for (in_source, e) in unlisted {
        let side = if in_source { "the source" } else { "the copy" };
        findings.push(
            Finding::new(
                &e.location,
                Check::Parity,
                Status::Error,
                format!("could not list in {side}: {}", e.reason),
            )
            .remedy(
                "Check permissions and the storage; whether this entry was copied is unproven.",
            ),
        );
    }
    for a in missing {
        findings.push(
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
        );
    }
    for b in extra {
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
    judged.sort_by(|x, y| x.0.key.cmp(&y.0.key));
    let mut max_lag = 0i64;
    for (a, b, v) in judged {
        let lag = (a.modified - b.modified).num_seconds().max(0);
        match v {
            Verdict::Same { .. } => {}
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
        objects,
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
    Parity {
        facts,
        findings,
        bytes_read,
    }
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

    /// Feeds `keys` to a join side in the order given, in small batches.
    fn side(keys: Vec<String>) -> mpsc::Receiver<Listed> {
        let (tx, rx) = mpsc::sync_channel(keys.len() + 2);
        for chunk in keys.chunks(3) {
            let batch = chunk
                .iter()
                .map(|k| Ok(Artifact::new(k.clone(), 1, Utc::now())))
                .collect();
            tx.send(Listed::Batch(batch)).unwrap();
        }
        tx.send(Listed::End(Ok(()))).unwrap();
        rx
    }

    /// Source and copy listed in byte order, in component order (a
    /// directory walk, SeaweedFS) and in no order at all, every pairing:
    /// the join finds exactly the pairs, the missing and the extra keys that
    /// sets of the two listings give.
    #[test]
    fn the_join_finds_the_same_whatever_order_each_side_lists_in() {
        use std::collections::BTreeSet;
        // Names that sort differently by bytes and by components: "a.txt"
        // and "a b" come before "a/x" by bytes, after it by components.
        let parts = ["a", "a b", "a-b", "a.txt", "a0", "b", "ab"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let mut all = BTreeSet::new();
            for _ in 0..40 {
                let depth = 1 + next() % 3;
                let key: Vec<&str> = (0..depth)
                    .map(|_| parts[(next() % parts.len() as u64) as usize])
                    .collect();
                all.insert(key.join("/"));
            }
            // A key and a directory of the same name cannot both exist.
            let all: Vec<String> = all
                .iter()
                .filter(|k| !all.iter().any(|o| o.starts_with(&format!("{k}/"))))
                .cloned()
                .collect();
            let src: Vec<String> = all.iter().filter(|_| next() % 4 != 0).cloned().collect();
            let dst: Vec<String> = all.iter().filter(|_| next() % 4 != 0).cloned().collect();
            let order = |mut keys: Vec<String>, how: u64, salt: u64| {
                match how {
                    0 => keys.sort(),
                    1 => keys.sort_by(|a, b| by_components(a, b)),
                    _ => keys.sort_by_key(|k| {
                        k.bytes()
                            .fold(salt, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
                    }),
                }
                keys
            };
            let (hs, hd) = (round % 3, (round / 3) % 3);
            let (so, dor) = (
                order(src.clone(), hs, next()),
                order(dst.clone(), hd, next()),
            );
            let same = |a, b| Some((a, b, Verdict::Same { by: "test" }));
            let joined = match join(
                side(so.clone()),
                side(dor.clone()),
                Shard::WHOLE,
                true,
                same,
            ) {
                Ok(j) => j,
                Err(JoinError::Unordered(_)) => {
                    // Only a listing in neither order may stop a join.
                    assert!(hs == 2 || hd == 2, "round {round}: {hs}/{hd}");
                    join(side(so), side(dor), Shard::WHOLE, false, same).unwrap()
                }
                Err(e) => panic!("{e:?}"),
            };
            let (s, d): (BTreeSet<_>, BTreeSet<_>) = (src.iter().collect(), dst.iter().collect());
            let keys = |v: &[Artifact]| v.iter().map(|a| a.key.clone()).collect::<Vec<_>>();
            let missing: Vec<String> = s.difference(&d).map(|k| k.to_string()).collect();
            let extra: Vec<String> = d.difference(&s).map(|k| k.to_string()).collect();
            assert_eq!(keys(&joined.missing), missing, "round {round}: {hs}/{hd}");
            assert_eq!(keys(&joined.extra), extra, "round {round}: {hs}/{hd}");
            assert_eq!(joined.same, s.intersection(&d).count(), "round {round}");
            assert_eq!(joined.objects, src.len());
        }
    }
}
