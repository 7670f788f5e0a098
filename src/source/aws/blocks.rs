//! An EBS snapshot read through the EBS direct APIs: ListSnapshotBlocks
//! page by page, GetSnapshotBlock for each allocated block, many in flight,
//! each block's SHA-256 compared with the checksum EBS stored for it. The
//! blocks come out in order, unallocated ones as zeros: the volume's image,
//! for the digest engine and the raw-image inspector.
//!
//! Memory is bounded by the window of blocks in flight (32 blocks of
//! 512 KiB on AWS) and one listing page (at most 10,000 entries), whatever
//! the volume's size. A block token that expired during a long read is
//! fetched again from the listing and the block read once more.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::signed::{CallError, Client, encode};
use crate::digest::Algorithm;
use crate::expectation::Expectation;
use crate::source::BackupReader;

/// Blocks requested ahead of the reader.
const WINDOW: usize = 32;
/// Threads issuing GetSnapshotBlock for one snapshot.
const WORKERS: usize = 8;
/// Listing page size (the API's maximum).
const PAGE: u32 = 10_000;
/// Failing blocks named one by one in the evidence; the rest are counted.
const NAMED: usize = 100;

/// One page of ListSnapshotBlocks.
pub struct Page {
    pub blocks: Vec<(u64, String)>,
    pub next: Option<String>,
    pub block_size: u64,
}

/// ListSnapshotBlocks from `start` (a block index) or a page token.
pub fn list_page(
    ebs: &Client,
    snapshot: &str,
    start: Option<u64>,
    token: Option<&str>,
    max: u32,
) -> Result<Page, CallError> {
    let mut q = vec![("maxResults", max.to_string())];
    if let Some(t) = token {
        q.push(("pageToken", t.to_string()));
    }
    if let Some(s) = start {
        q.push(("startingBlockIndex", s.to_string()));
    }
    let path = format!(
        "/snapshots/{}/blocks?{}",
        encode(snapshot),
        super::signed::query(&q)
    );
    let reply = ebs.call("GET", &path, None, "ListSnapshotBlocks")?;
    let bad = |why: String| CallError {
        service: "ebs",
        what: "ListSnapshotBlocks".into(),
        reason: why,
        code: None,
        status: None,
    };
    let v: serde_json::Value =
        serde_json::from_slice(&reply.body).map_err(|e| bad(format!("reply is not JSON: {e}")))?;
    let block_size = v["BlockSize"]
        .as_u64()
        .filter(|b| *b > 0)
        .ok_or_else(|| bad("reply gives no BlockSize".into()))?;
    let mut blocks: Vec<(u64, String)> = v["Blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                b["BlockIndex"].as_u64()?,
                b["BlockToken"].as_str()?.to_string(),
            ))
        })
        .collect();
    // AWS lists in index order; moto in the order blocks were written.
    blocks.sort_by_key(|(i, _)| *i);
    let next = v["NextToken"]
        .as_str()
        .filter(|t| !t.is_empty() && Some(*t) != token)
        .map(str::to_string);
    Ok(Page {
        blocks,
        next,
        block_size,
    })
}

/// Every block of a snapshot, page by page: index and token, in order.
pub fn list_all(ebs: &Client, snapshot: &str) -> Result<(Vec<(u64, String)>, u64), CallError> {
    let mut page = list_page(ebs, snapshot, None, None, PAGE)?;
    let block_size = page.block_size;
    let mut all = std::mem::take(&mut page.blocks);
    while let Some(token) = page.next.take() {
        page = list_page(ebs, snapshot, None, Some(&token), PAGE)?;
        all.append(&mut page.blocks);
    }
    all.sort_by_key(|(i, _)| *i);
    all.dedup_by_key(|(i, _)| *i);
    Ok((all, block_size))
}

/// One block ListChangedBlocks names: its index, and its token in the
/// second snapshot (`None`: in the first only, deallocated since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub index: u64,
    pub second: Option<String>,
}

/// One page of ListChangedBlocks.
#[derive(Debug, PartialEq, Eq)]
pub struct ChangedPage {
    pub blocks: Vec<Changed>,
    pub next: Option<String>,
    pub block_size: u64,
}

/// A ListChangedBlocks reply body, `token` the page token it was asked with.
pub fn parse_changed(body: &[u8], token: Option<&str>) -> Result<ChangedPage, CallError> {
    let bad = |reason: String| CallError {
        service: "ebs",
        what: "ListChangedBlocks".into(),
        reason,
        code: None,
        status: None,
    };
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("reply is not JSON: {e}")))?;
    let block_size = v["BlockSize"]
        .as_u64()
        .filter(|b| *b > 0)
        .ok_or_else(|| bad("reply gives no BlockSize".into()))?;
    let mut blocks = Vec::new();
    for b in v["ChangedBlocks"].as_array().into_iter().flatten() {
        let index = b["BlockIndex"]
            .as_u64()
            .ok_or_else(|| bad(format!("a changed block without a BlockIndex: {b}")))?;
        let second = b["SecondBlockToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        blocks.push(Changed { index, second });
    }
    blocks.sort_by_key(|c| c.index);
    let next = v["NextToken"]
        .as_str()
        .filter(|t| !t.is_empty() && Some(*t) != token)
        .map(str::to_string);
    Ok(ChangedPage {
        blocks,
        next,
        block_size,
    })
}

/// ListChangedBlocks of `second` against `first`, every page.
pub fn list_changed(
    ebs: &Client,
    first: &str,
    second: &str,
) -> Result<(Vec<Changed>, u64), CallError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![
            ("firstSnapshotId", first.to_string()),
            ("maxResults", PAGE.to_string()),
        ];
        if let Some(t) = &token {
            q.push(("pageToken", t.clone()));
        }
        let path = format!(
            "/snapshots/{}/changedblocks?{}",
            encode(second),
            super::signed::query(&q)
        );
        let reply = ebs.call("GET", &path, None, "ListChangedBlocks")?;
        let page = parse_changed(&reply.body, token.as_deref())?;
        all.extend(page.blocks);
        match page.next {
            Some(next) => token = Some(next),
            None => {
                all.sort_by_key(|c| c.index);
                all.dedup_by_key(|c| c.index);
                return Ok((all, page.block_size));
            }
        }
    }
}

/// Which blocks of the second snapshot an incremental read fetches.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Index and token in the second snapshot, in order: every block to read.
    pub read: Vec<(u64, String)>,
    /// Of those, the ones ListChangedBlocks named.
    pub changed: u64,
    /// Of those, in the second listing only, not named as changed (moto
    /// never names them; a provider bug might not either).
    pub new: u64,
    /// In the first snapshot only: deallocated, nothing to read.
    pub deallocated: u64,
    /// Allocated in the second, unchanged since the first: not read.
    pub carried: u64,
}

/// The rule: read every block ListChangedBlocks names with a token in the
/// second snapshot, and every block the second lists that the first does
/// not and that was not named; carry the rest of the second's blocks.
/// A changed block with no token in the second is deallocated unless the
/// second lists it (then it is read: the listing wins).
pub fn plan_read(
    first: &[(u64, String)],
    second: &[(u64, String)],
    changed: &[Changed],
) -> ReadPlan {
    use std::collections::{BTreeMap, BTreeSet};
    let in_first: BTreeSet<u64> = first.iter().map(|(i, _)| *i).collect();
    let named: BTreeMap<u64, Option<&str>> = changed
        .iter()
        .map(|c| (c.index, c.second.as_deref()))
        .collect();
    let mut plan = ReadPlan::default();
    for (index, token) in second {
        match named.get(index) {
            Some(Some(t)) => {
                plan.changed += 1;
                plan.read.push((*index, t.to_string()));
            }
            // Named as gone, yet listed: read it, from the listing.
            Some(None) => {
                plan.changed += 1;
                plan.read.push((*index, token.clone()));
            }
            None if !in_first.contains(index) => {
                plan.new += 1;
                plan.read.push((*index, token.clone()));
            }
            None => plan.carried += 1,
        }
    }
    let listed: BTreeSet<u64> = second.iter().map(|(i, _)| *i).collect();
    for (index, token) in &named {
        match token {
            // Named with a token the second listing does not have: read it
            // anyway (never carry what the provider says changed).
            Some(t) if !listed.contains(index) => {
                plan.changed += 1;
                plan.read.push((*index, t.to_string()));
            }
            None if !listed.contains(index) => plan.deallocated += 1,
            _ => {}
        }
    }
    plan.read.sort_by_key(|(i, _)| *i);
    plan
}

/// One block as GetSnapshotBlock returned it.
pub struct Block {
    pub data: Vec<u8>,
    /// Base64 SHA-256, as stored.
    pub checksum: Option<String>,
    pub algorithm: Option<String>,
}

/// A reply that says the block is not there (as opposed to "cannot ask").
fn is_missing(e: &CallError) -> bool {
    e.status == Some(404) || e.code.as_deref() == Some("ResourceNotFoundException")
}

/// A reply that says the token is no longer good.
fn is_stale_token(e: &CallError) -> bool {
    e.code.as_deref() == Some("ValidationException")
        && (e.reason.contains("INVALID_BLOCK_TOKEN") || e.reason.to_lowercase().contains("token"))
}

pub fn get_block(
    ebs: &Client,
    snapshot: &str,
    index: u64,
    token: &str,
) -> Result<Block, CallError> {
    let path = format!(
        "/snapshots/{}/blocks/{index}?blockToken={}",
        encode(snapshot),
        encode(token)
    );
    let reply = ebs.call("GET", &path, None, "GetSnapshotBlock")?;
    Ok(Block {
        checksum: reply.header("x-amz-Checksum").map(str::to_string),
        algorithm: reply.header("x-amz-Checksum-Algorithm").map(str::to_string),
        data: reply.body,
    })
}

/// GetSnapshotBlock, with one fresh token if the listed one went stale.
fn fetch(ebs: &Client, snapshot: &str, index: u64, token: &str) -> Result<Block, CallError> {
    match get_block(ebs, snapshot, index, token) {
        Err(e) if is_stale_token(&e) => {
            let page = list_page(ebs, snapshot, Some(index), None, 100)?;
            match page.blocks.iter().find(|(i, _)| *i == index) {
                Some((_, fresh)) => get_block(ebs, snapshot, index, fresh),
                None => Err(e),
            }
        }
        other => other,
    }
}

/// A block that did not match, or could not be found.
#[derive(Debug)]
struct Bad {
    index: u64,
    expected: String,
    actual: String,
}

/// What the blocks read so far proved.
#[derive(Default)]
struct Tally {
    checked: u64,
    /// SHA-256 over the stored checksums, in block order, and over the
    /// checksums of the bytes read: equal exactly when every block matched.
    stored: Sha256,
    computed: Sha256,
    bad: Vec<Bad>,
    bad_count: u64,
}

type Job = (u64, String);
type Done = (u64, Result<Block, CallError>);

/// The snapshot as one stream of bytes, each block checked on the way.
pub struct BlockReader {
    ebs: Arc<Client>,
    snapshot: String,
    size: u64,
    block_size: u64,
    /// Allocated blocks listed but not yet requested, in order.
    listed: VecDeque<(u64, String)>,
    next_page: Option<String>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    /// Requested, in order.
    in_flight: VecDeque<u64>,
    arrived: BTreeMap<u64, Result<Block, CallError>>,
    /// Bytes handed out.
    pos: u64,
    /// The current block's bytes and how far into them the reader is.
    current: Option<(Vec<u8>, usize)>,
    tally: Tally,
    /// An incremental read: only the listed blocks, back to back; what
    /// they were read against, in the evidence's words.
    scope: Option<String>,
}

impl BlockReader {
    /// Lists the first page and starts the workers.
    pub fn open(ebs: Arc<Client>, snapshot: &str, size: u64) -> Result<BlockReader, CallError> {
        let first = list_page(&ebs, snapshot, None, None, PAGE)?;
        let mut r = BlockReader::start(ebs, snapshot, size, first.block_size, first.blocks);
        r.next_page = first.next;
        Ok(r)
    }

    /// Only `blocks` (index and token, in order), their bytes one after
    /// the other with nothing between: an incremental read, `scope` saying
    /// against what (the evidence's words).
    pub fn open_blocks(
        ebs: Arc<Client>,
        snapshot: &str,
        size: u64,
        block_size: u64,
        blocks: Vec<(u64, String)>,
        scope: String,
    ) -> BlockReader {
        let mut r = BlockReader::start(ebs, snapshot, size, block_size, blocks);
        r.scope = Some(scope);
        r
    }

    fn start(
        ebs: Arc<Client>,
        snapshot: &str,
        size: u64,
        block_size: u64,
        blocks: Vec<(u64, String)>,
    ) -> BlockReader {
        let (jobs, inbox) = channel::<Job>();
        let (report, done) = channel::<Done>();
        let inbox = Arc::new(Mutex::new(inbox));
        for _ in 0..WORKERS {
            let (inbox, report, ebs) = (inbox.clone(), report.clone(), ebs.clone());
            let snapshot = snapshot.to_string();
            std::thread::spawn(move || {
                loop {
                    let job = inbox.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((index, token)) = job else { return };
                    let r = fetch(&ebs, &snapshot, index, &token);
                    if report.send((index, r)).is_err() {
                        return;
                    }
                }
            });
        }
        BlockReader {
            ebs,
            snapshot: snapshot.to_string(),
            size,
            block_size,
            listed: blocks.into(),
            next_page: None,
            jobs: Some(jobs),
            done,
            in_flight: VecDeque::new(),
            arrived: BTreeMap::new(),
            pos: 0,
            current: None,
            tally: Tally::default(),
            scope: None,
        }
    }

    /// The next allocated block not yet requested, fetching listing pages
    /// as needed.
    fn peek_listed(&mut self) -> io::Result<Option<u64>> {
        while self.listed.is_empty() {
            let Some(token) = self.next_page.take() else {
                return Ok(None);
            };
            let page = list_page(&self.ebs, &self.snapshot, None, Some(&token), PAGE)?;
            self.listed = page.blocks.into();
            self.next_page = page.next;
        }
        Ok(self.listed.front().map(|(i, _)| *i))
    }

    /// Keeps the window full.
    fn request_ahead(&mut self) -> io::Result<()> {
        while self.in_flight.len() < WINDOW {
            if self.peek_listed()?.is_none() {
                break;
            }
            let Some((index, token)) = self.listed.pop_front() else {
                break;
            };
            // A listed block beyond the volume's end is not part of the
            // image; one listed out of order (behind the reader) or twice
            // cannot be placed.
            if index.saturating_mul(self.block_size) >= self.size
                || (self.scope.is_none() && index < self.pos / self.block_size)
                || self.in_flight.back().is_some_and(|b| index <= *b)
            {
                continue;
            }
            if let Some(jobs) = &self.jobs {
                jobs.send((index, token))
                    .map_err(|_| io::Error::other("EBS block readers stopped"))?;
            }
            self.in_flight.push_back(index);
        }
        Ok(())
    }

    /// Waits for block `index`, checks it, and returns its bytes (zeros
    /// in place of a missing block, which is recorded as bad).
    fn take(&mut self, index: u64) -> io::Result<Vec<u8>> {
        while !self.arrived.contains_key(&index) {
            let (i, r) = self
                .done
                .recv()
                .map_err(|_| io::Error::other("EBS block readers stopped"))?;
            self.arrived.insert(i, r);
        }
        let bs = self.block_size as usize;
        match self.arrived.remove(&index).expect("arrived above") {
            Ok(block) => Ok(self.check(index, block)),
            Err(e) if is_missing(&e) => {
                self.note_bad(
                    index,
                    "a block the listing names".into(),
                    format!("missing: {}", e.reason),
                );
                Ok(vec![0; bs])
            }
            Err(e) => Err(io::Error::other(format!("block {index}: {e}"))),
        }
    }

    fn note_bad(&mut self, index: u64, expected: String, actual: String) {
        self.tally.bad_count += 1;
        if self.tally.bad.len() < NAMED {
            self.tally.bad.push(Bad {
                index,
                expected,
                actual,
            });
        }
    }

    fn check(&mut self, index: u64, mut block: Block) -> Vec<u8> {
        let bs = self.block_size as usize;
        let computed: [u8; 32] = Sha256::digest(&block.data).into();
        let stored = block
            .checksum
            .as_deref()
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
        self.tally.checked += 1;
        self.tally.computed.update(computed);
        match (&stored, block.algorithm.as_deref()) {
            (Some(s), Some("SHA256") | None) => {
                self.tally.stored.update(s);
                if s.as_slice() != computed {
                    self.note_bad(index, hex::encode(s), hex::encode(computed));
                }
            }
            (_, algorithm) => {
                self.tally.stored.update([0u8; 32]);
                let why = match algorithm {
                    Some(a) if a != "SHA256" => format!("a {a} checksum backproof cannot check"),
                    _ => "no stored checksum".to_string(),
                };
                self.note_bad(index, why, hex::encode(computed));
            }
        }
        if block.data.len() != bs {
            self.note_bad(
                index,
                format!("{bs} bytes"),
                format!("{} bytes", block.data.len()),
            );
            block.data.resize(bs, 0);
        }
        block.data
    }
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let want = buf.len().min((self.size - self.pos) as usize);
        if let Some((data, at)) = &mut self.current {
            let n = want.min(data.len() - *at);
            buf[..n].copy_from_slice(&data[*at..*at + n]);
            *at += n;
            if *at == data.len() {
                self.current = None;
            }
            self.pos += n as u64;
            return Ok(n);
        }
        self.request_ahead()?;
        if self.scope.is_some() {
            // Incremental: the listed blocks back to back, then the end.
            let Some(index) = self.in_flight.pop_front() else {
                return Ok(0);
            };
            let data = self.take(index)?;
            self.current = Some((data, 0));
            return self.read(buf);
        }
        let index = self.pos / self.block_size;
        // The window is filled from the listing in order: its front is the
        // next allocated block; empty, there is none.
        let next = self.in_flight.front().copied();
        if next == Some(index) {
            self.in_flight.pop_front();
            let data = self.take(index)?;
            // Where the block starts relative to pos (always 0: blocks are
            // read whole, zeros stop at block boundaries).
            let skip = (self.pos - index * self.block_size) as usize;
            self.current = Some((data, skip));
            return self.read(buf);
        }
        // Unallocated: zeros up to the next allocated block or the end.
        let until = next
            .map(|i| i.saturating_mul(self.block_size))
            .unwrap_or(self.size)
            .clamp(self.pos, self.size);
        let n = want.min((until - self.pos) as usize).max(1);
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for BlockReader {
    fn drop(&mut self) {
        // Workers stop when the queue closes.
        self.jobs.take();
    }
}

impl BackupReader for BlockReader {
    /// One expectation for all blocks when every one matched (SHA-256 over
    /// the stored checksums against the same over the bytes read), else one
    /// per failing block, naming the snapshot and the block index.
    fn finish(self: Box<Self>) -> Vec<(Expectation, String)> {
        let t = &self.tally;
        if t.bad.is_empty() {
            return vec![(
                Expectation {
                    algorithm: Algorithm::Sha256,
                    digest: hex::encode(t.stored.clone().finalize()),
                    manifest: match &self.scope {
                        None => format!(
                            "EBS stored checksums of {} blocks of {} ({} bytes each)",
                            t.checked, self.snapshot, self.block_size
                        ),
                        Some(scope) => format!(
                            "EBS stored checksums of {} blocks of {} ({} bytes each), {scope}",
                            t.checked, self.snapshot, self.block_size
                        ),
                    },
                    line: 0,
                },
                hex::encode(t.computed.clone().finalize()),
            )];
        }
        let mut out: Vec<(Expectation, String)> = t
            .bad
            .iter()
            .map(|b| {
                (
                    Expectation {
                        algorithm: Algorithm::Sha256,
                        digest: b.expected.clone(),
                        manifest: format!("EBS {} block {}", self.snapshot, b.index),
                        line: 0,
                    },
                    b.actual.clone(),
                )
            })
            .collect();
        if t.bad_count > t.bad.len() as u64 {
            out.push((
                Expectation {
                    algorithm: Algorithm::Sha256,
                    digest: format!("{} more failing blocks", t.bad_count - t.bad.len() as u64),
                    manifest: format!("EBS {} blocks not named", self.snapshot),
                    line: 0,
                },
                String::new(),
            ));
        }
        out
    }
}

/// Positional read for the inspector (the backup GPT header at the end of
/// the disk): one listing for the block size, one for the range's tokens,
/// then each allocated block in the range; zeros where nothing is.
pub fn read_at(
    ebs: &Client,
    snapshot: &str,
    size: u64,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    if offset >= size || buf.is_empty() {
        return Ok(0);
    }
    let want = buf.len().min((size - offset) as usize);
    let bs = list_page(ebs, snapshot, Some(0), None, 1)?.block_size;
    let first = offset / bs;
    let last = (offset + want as u64 - 1) / bs;
    let count = (last - first + 1).min(PAGE as u64) as u32;
    let page = list_page(ebs, snapshot, Some(first), None, count.max(1))?;
    let mut done = 0;
    while done < want {
        let at = offset + done as u64;
        let index = at / bs;
        let within = (at - index * bs) as usize;
        let n = (want - done).min(bs as usize - within);
        match page.blocks.iter().find(|(i, _)| *i == index) {
            Some((_, token)) => {
                let mut block = fetch(ebs, snapshot, index, token)?;
                block.data.resize(bs as usize, 0);
                buf[done..done + n].copy_from_slice(&block.data[within..within + n]);
            }
            // Past the range listed (more than a page): stop short, the
            // caller asks again.
            None if index > first + count as u64 - 1 => break,
            None => buf[done..done + n].fill(0),
        }
        done += n;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(ixs: &[u64], tag: &str) -> Vec<(u64, String)> {
        ixs.iter().map(|i| (*i, format!("{tag}{i}"))).collect()
    }

    #[test]
    fn changed_block_pages() {
        let body = br#"{"ChangedBlocks":[
            {"BlockIndex":7,"FirstBlockToken":"f7","SecondBlockToken":"s7"},
            {"BlockIndex":3,"FirstBlockToken":"f3"},
            {"BlockIndex":5,"SecondBlockToken":""}],
            "BlockSize":524288,"VolumeSize":8,"NextToken":"n2"}"#;
        let page = parse_changed(body, None).unwrap();
        assert_eq!(page.block_size, 524288);
        assert_eq!(page.next.as_deref(), Some("n2"));
        assert_eq!(
            page.blocks,
            [
                Changed {
                    index: 3,
                    second: None
                },
                Changed {
                    index: 5,
                    second: None
                },
                Changed {
                    index: 7,
                    second: Some("s7".into())
                },
            ]
        );
        // The same token again ends the walk; an empty page has no blocks.
        let last = parse_changed(br#"{"BlockSize":512,"NextToken":"n2"}"#, Some("n2")).unwrap();
        assert_eq!((last.blocks.len(), last.next), (0, None));
        assert!(parse_changed(br#"{"ChangedBlocks":[]}"#, None).is_err());
        assert!(parse_changed(br#"{"BlockSize":512,"ChangedBlocks":[{}]}"#, None).is_err());
        assert!(parse_changed(b"<xml/>", None).is_err());
    }

    #[test]
    fn which_blocks_an_incremental_read_fetches() {
        // First: 0..=5. Second: 0..=4 and 8, 9 (5 deallocated, 8 and 9
        // new). Changed as named: 1 and 3 (new tokens), 5 (gone). Moto
        // never names 8 or 9; the listings find them.
        let first = listed(&[0, 1, 2, 3, 4, 5], "a");
        let second = listed(&[0, 1, 2, 3, 4, 8, 9], "b");
        let changed = vec![
            Changed {
                index: 1,
                second: Some("c1".into()),
            },
            Changed {
                index: 3,
                second: Some("c3".into()),
            },
            Changed {
                index: 5,
                second: None,
            },
        ];
        let plan = plan_read(&first, &second, &changed);
        let read: Vec<(u64, &str)> = plan.read.iter().map(|(i, t)| (*i, t.as_str())).collect();
        assert_eq!(read, [(1, "c1"), (3, "c3"), (8, "b8"), (9, "b9")]);
        assert_eq!(
            (plan.changed, plan.new, plan.carried, plan.deallocated),
            (2, 2, 3, 1)
        );
        // A provider that names a block as gone that the second still lists,
        // or a changed one the listing lacks: read either way, never carried.
        let odd = vec![
            Changed {
                index: 2,
                second: None,
            },
            Changed {
                index: 6,
                second: Some("c6".into()),
            },
        ];
        let plan = plan_read(&first, &second, &odd);
        let read: Vec<u64> = plan.read.iter().map(|(i, _)| *i).collect();
        assert_eq!(read, [2, 6, 8, 9]);
        assert_eq!((plan.changed, plan.new, plan.carried), (2, 2, 4));
        // Nothing changed: everything carried, nothing read.
        let same = plan_read(&first, &first, &[]);
        assert_eq!((same.read.len(), same.carried), (0, 6));
    }
}
