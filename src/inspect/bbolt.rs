//! bbolt (BoltDB) files, page by page as they stream: both meta pages
//! (magic, version, page size, FNV-64a checksum), then every page's header,
//! each branch's child page ids and each leaf's elements, and at the end a
//! walk of the bucket tree from the newest meta page's root: every page it
//! reaches must lie inside the file, carry its own id, be reached once, and
//! not be on the freelist. Leaf elements are counted per bucket.
//!
//! One pass and no random access: a page's summary is kept until the end
//! (the tree is written children first, so parents arrive after the pages
//! they name), about 24 bytes per page, for at most [`MAX_PAGES`] pages;
//! a node spanning several pages is held until its last page arrives, at
//! most [`MAX_NODE_BYTES`]. Nothing is allocated from a declared size.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use super::Damage;

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
/// A leaf element whose value is a bucket.
const BUCKET_LEAF: u32 = 0x01;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
/// The meta's freelist page id when the freelist is not persisted
/// (`NoFreelistSync`, etcd's setting): bbolt rebuilds it on open.
const NO_FREELIST: u64 = u64::MAX;
/// Pages whose summary is kept for the tree walk: 8 GiB of 4 KiB pages,
/// etcd's largest supported database.
pub const MAX_PAGES: u64 = 1 << 21;
/// The largest node (one page plus its overflow pages) held whole.
pub const MAX_NODE_BYTES: u64 = 64 << 20;
/// Bucket statistics kept; further buckets are counted together.
const MAX_BUCKETS: usize = 10_000;
/// Deeper than any bbolt tree of a database that fits on a disk.
const MAX_DEPTH: u32 = 64;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The first 8 bytes of a key, big-endian, zero-padded: enough to order
/// etcd's revision keys and to name a key in a message.
fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// Whether the first bytes are a bbolt meta page (its flags, magic and
/// version: 24 bytes, so that a file cut soon after is still recognised).
pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 24
        && le16(head, 8) & META != 0
        && le32(head, 16) == MAGIC
        && le32(head, 20) == VERSION
}

/// One meta page, as bbolt writes it at pages 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    /// The root bucket's root page.
    pub root: u64,
    /// The freelist's page, `None` when it is not persisted.
    pub freelist: Option<u64>,
    /// Pages in use: the file's size is this many pages.
    pub pages: u64,
    pub txid: u64,
}

/// A meta page's own flaws, worded for the report.
pub fn parse_meta(page: &[u8], id: u64) -> Result<Meta, Damage> {
    if page.len() < 80 {
        return Err(Damage("shorter than a meta page".into()));
    }
    let (pid, flags) = (le64(page, 0), le16(page, 8));
    if flags & META == 0 {
        return Err(Damage(format!(
            "not flagged as a meta page (flags 0x{flags:02x})"
        )));
    }
    if pid != id {
        return Err(Damage(format!("carries page id {pid}")));
    }
    let magic = le32(page, 16);
    if magic != MAGIC {
        return Err(Damage(format!("magic 0x{magic:08x}, not 0x{MAGIC:08x}")));
    }
    let version = le32(page, 20);
    if version != VERSION {
        return Err(Damage(format!("version {version}, not {VERSION}")));
    }
    let stored = le64(page, 72);
    let sum = fnv64a(&page[16..72]);
    if stored != sum {
        return Err(Damage(format!(
            "checksum 0x{stored:016x} does not match its contents (0x{sum:016x})"
        )));
    }
    let page_size = le32(page, 24);
    if !page_size.is_power_of_two() || !(1024..=65536).contains(&page_size) {
        return Err(Damage(format!(
            "page size {page_size} is not one bbolt writes"
        )));
    }
    let freelist = le64(page, 48);
    Ok(Meta {
        page_size,
        flags: le32(page, 28),
        root: le64(page, 32),
        freelist: (freelist != NO_FREELIST).then_some(freelist),
        pages: le64(page, 56),
        txid: le64(page, 64),
    })
}

fn fnv64a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why a page that names itself cannot be a node, kept small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    /// The node's pages run past the pages the meta accounts for.
    SpanBeyondFile,
    /// Its element table or an element's key or value lies outside it.
    ElementOutside,
    /// A branch names a page outside the file (the id is kept).
    ChildOutside,
    /// A freelist id outside the file (the id is kept).
    FreeOutside,
    /// An inline bucket that is not a leaf page.
    BadInline,
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flaw::SpanBeyondFile => "its overflow pages run past the end of the database",
            Flaw::ElementOutside => "an element lies outside the page",
            Flaw::ChildOutside => "it names a child page outside the file",
            Flaw::FreeOutside => "it lists a free page outside the file",
            Flaw::BadInline => "an inline bucket's page is not a leaf",
        })
    }
}

/// What the pass kept of one page.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// No header naming this page: an overflow page, a free page, or damage.
    Unseen,
    Bad {
        flaw: Flaw,
        arg: u64,
    },
    /// Larger than [`MAX_NODE_BYTES`]: not read as a node.
    TooLarge,
    Branch {
        overflow: u32,
        first: u32,
        n: u16,
    },
    Leaf {
        overflow: u32,
        entries: u16,
        first_bucket: u32,
        buckets: u16,
        last: u64,
    },
    Freelist,
}

/// A bucket named in a leaf.
#[derive(Debug)]
struct BucketRef {
    name: String,
    /// 0 for an inline bucket, whose leaf sits in the value.
    root: u64,
    inline_entries: u32,
    inline_last: Option<u64>,
}

/// Counts for one bucket, by its path from the root (`a/b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketStats {
    pub path: String,
    /// Key/value entries (not counting sub-buckets).
    pub entries: u64,
    pub sub_buckets: u64,
    /// The first 8 bytes (big-endian) of the bucket's largest key.
    pub last_key: Option<u64>,
}

/// What a complete pass proved about the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoltFacts {
    /// The meta page in force (the higher transaction id).
    pub meta: Meta,
    /// Both meta pages' transaction ids.
    pub txids: [u64; 2],
    /// Pages the bucket tree reaches (nodes and their overflow pages).
    pub pages_in_use: u64,
    /// Pages on the persisted freelist.
    pub free_pages: Option<u64>,
    /// Every bucket, top-level first, in the order the walk met them.
    pub buckets: Vec<BucketStats>,
}

impl BoltFacts {
    pub fn bucket(&self, path: &str) -> Option<&BucketStats> {
        self.buckets.iter().find(|b| b.path == path)
    }

    pub fn evidence(&self) -> Map<String, Value> {
        let mut ev = Map::new();
        ev.insert("page_size".into(), json!(self.meta.page_size));
        ev.insert("pages".into(), json!(self.meta.pages));
        ev.insert("pages_in_use".into(), json!(self.pages_in_use));
        ev.insert("txid".into(), json!(self.meta.txid));
        ev.insert(
            "freelist".into(),
            match (self.meta.freelist, self.free_pages) {
                (Some(p), Some(n)) => json!(format!("page {p}, {n} free pages")),
                _ => json!("not persisted (rebuilt on open)"),
            },
        );
        let buckets: Map<String, Value> = self
            .buckets
            .iter()
            .take(64)
            .map(|b| (b.path.clone(), json!(b.entries)))
            .collect();
        ev.insert("bucket_entries".into(), Value::Object(buckets));
        ev
    }
}

/// How far a sound file was judged.
#[derive(Debug)]
pub enum Walk {
    Walked(BoltFacts),
    /// Pages and meta checked, but the tree not walked, and why.
    NotWalked(String),
}

/// The page-by-page check. Feed it every page in order with [`Pages::page`],
/// then [`Pages::finish`].
pub struct Pages {
    page_size: usize,
    metas: [Option<Meta>; 2],
    meta: Option<Meta>,
    /// Pages fed so far.
    seen: u64,
    nodes: Vec<Node>,
    children: Vec<u64>,
    buckets: Vec<BucketRef>,
    /// Ids on the meta's freelist page.
    free: Option<Vec<u64>>,
    /// Pages from `window_first` on, while a node spanning them is pending.
    window: Vec<u8>,
    window_first: u64,
    /// Multi-page nodes waiting for their last page, by the page after it.
    pending_by_end: BTreeMap<u64, Vec<u64>>,
    /// Their first pages (with a count), for the oldest page still needed.
    pending_starts: BTreeMap<u64, u32>,
    /// Elements and page ids parsed: nodes that overlap (stale headers of
    /// free pages, or crafted ones) may not cost more than the bytes allow.
    work: u64,
    /// Why the tree is not walked (too many pages, or too much overlap).
    untracked: Option<String>,
}

impl Pages {
    pub fn new(page_size: u32) -> Pages {
        Pages {
            page_size: page_size as usize,
            metas: [None, None],
            meta: None,
            seen: 0,
            nodes: Vec::new(),
            children: Vec::new(),
            buckets: Vec::new(),
            free: None,
            window: Vec::new(),
            window_first: 0,
            pending_by_end: BTreeMap::new(),
            pending_starts: BTreeMap::new(),
            work: 0,
            untracked: None,
        }
    }

    pub fn pages_seen(&self) -> u64 {
        self.seen
    }

    /// The meta page in force, once both have been fed.
    pub fn meta(&self) -> Option<Meta> {
        self.meta
    }

    /// Feeds the next page (exactly one page size long).
    pub fn page(&mut self, page: &[u8]) -> Result<(), Damage> {
        debug_assert_eq!(page.len(), self.page_size);
        let id = self.seen;
        self.seen += 1;
        if id < 2 {
            let meta = parse_meta(page, id).map_err(|e| Damage(format!("meta page {id}: {e}")))?;
            if meta.page_size as usize != self.page_size {
                return Err(Damage(format!(
                    "meta page {id}: page size {} differs from meta page 0's {}",
                    meta.page_size, self.page_size
                )));
            }
            self.metas[id as usize] = Some(meta);
            self.nodes.push(Node::Unseen);
            if id == 1 {
                return self.choose_meta();
            }
            return Ok(());
        }
        let meta = self.meta.expect("chosen after page 1");
        if id >= MAX_PAGES && self.untracked.is_none() {
            self.untracked = Some(format!(
                "more than {MAX_PAGES} pages: the bucket tree was not walked"
            ));
        }
        if self.untracked.is_some() {
            return Ok(());
        }
        self.nodes.push(Node::Unseen);
        if self.pending_starts.is_empty() {
            self.window.clear();
            self.window_first = id;
        }
        self.window.extend_from_slice(page);
        let (pid, flags, overflow) = (le64(page, 0), le16(page, 8), le32(page, 12));
        if pid == id && matches!(flags, BRANCH | LEAF | FREELIST) {
            let span = 1 + u64::from(overflow);
            if id + span > meta.pages {
                self.nodes[id as usize] = Node::Bad {
                    flaw: Flaw::SpanBeyondFile,
                    arg: 0,
                };
            } else if span * self.page_size as u64 > MAX_NODE_BYTES {
                self.nodes[id as usize] = Node::TooLarge;
            } else {
                self.pending_by_end.entry(id + span).or_default().push(id);
                *self.pending_starts.entry(id).or_default() += 1;
            }
        }
        if let Some(done) = self.pending_by_end.remove(&(id + 1)) {
            let ps = self.page_size;
            let window = std::mem::take(&mut self.window);
            for first in done {
                if let Some(n) = self.pending_starts.get_mut(&first) {
                    *n -= 1;
                    if *n == 0 {
                        self.pending_starts.remove(&first);
                    }
                }
                let at = (first - self.window_first) as usize * ps;
                let node = self.parse_node(
                    first,
                    &window[at..(id + 1 - self.window_first) as usize * ps],
                    meta,
                );
                self.nodes[first as usize] = node;
            }
            self.window = window;
        }
        // Pages no pending node needs are dropped, amortised: only once
        // they are at least half the window.
        let keep_from = self.pending_starts.keys().next().copied().unwrap_or(id + 1);
        let dead =
            ((keep_from - self.window_first) as usize * self.page_size).min(self.window.len());
        if dead == self.window.len() || dead * 2 > self.window.len() {
            self.window.drain(..dead);
            self.window_first = keep_from;
        }
        Ok(())
    }

    /// Parsing work allowed so far: legitimate nodes never overlap, so their
    /// elements (16 bytes each and a key) and freelist ids (8 bytes each)
    /// fit, with room to spare, in the bytes read.
    fn over_budget(&self) -> bool {
        self.work > self.seen * self.page_size as u64 / 4 + (1 << 20)
    }

    fn choose_meta(&mut self) -> Result<(), Damage> {
        let [Some(a), Some(b)] = self.metas else {
            unreachable!("both parsed or failed");
        };
        let meta = if b.txid > a.txid { b } else { a };
        if meta.pages < 2 {
            return Err(Damage(format!(
                "meta page says the database has {} pages (at least 2)",
                meta.pages
            )));
        }
        for (what, p) in [
            ("root bucket", Some(meta.root)),
            ("freelist", meta.freelist),
        ] {
            if let Some(p) = p
                && (p < 2 || p >= meta.pages)
            {
                return Err(Damage(format!(
                    "meta page: {what} page {p} outside the database's {} pages",
                    meta.pages
                )));
            }
        }
        self.meta = Some(meta);
        Ok(())
    }

    fn parse_node(&mut self, id: u64, b: &[u8], meta: Meta) -> Node {
        let (flags, count) = (le16(b, 8), le16(b, 10) as usize);
        let overflow = le32(b, 12);
        // A leaf's elements are counted in parse_leaf.
        self.work += if flags == LEAF { 1 } else { count as u64 + 1 };
        if self.over_budget() {
            self.untracked = Some(
                "page headers overlap more than a bbolt file's can: the bucket tree was not walked"
                    .into(),
            );
            return Node::Unseen;
        }
        let bad = |flaw, arg| Node::Bad { flaw, arg };
        match flags {
            FREELIST => {
                let (n, at) = if count == 0xFFFF {
                    if b.len() < HEADER + 8 {
                        return bad(Flaw::ElementOutside, 0);
                    }
                    (le64(b, HEADER), HEADER + 8)
                } else {
                    (count as u64, HEADER)
                };
                let room = ((b.len() - at) / 8) as u64;
                if n > room {
                    return bad(Flaw::ElementOutside, 0);
                }
                let ids = (0..n as usize).map(|i| le64(b, at + i * 8));
                if meta.freelist == Some(id) {
                    let ids: Vec<u64> = ids.collect();
                    if let Some(&out) = ids.iter().find(|&&p| p < 2 || p >= meta.pages) {
                        return bad(Flaw::FreeOutside, out);
                    }
                    self.free = Some(ids);
                }
                Node::Freelist
            }
            BRANCH => {
                if HEADER + count * ELEMENT > b.len() {
                    return bad(Flaw::ElementOutside, 0);
                }
                let first = self.children.len() as u32;
                for i in 0..count {
                    let child = le64(b, HEADER + i * ELEMENT + 8);
                    if child < 2 || child >= meta.pages {
                        self.children.truncate(first as usize);
                        return bad(Flaw::ChildOutside, child);
                    }
                    self.children.push(child);
                }
                Node::Branch {
                    overflow,
                    first,
                    n: count as u16,
                }
            }
            _ => match self.parse_leaf(b, 0, true) {
                Ok((entries, first_bucket, buckets, last)) => Node::Leaf {
                    overflow,
                    entries,
                    first_bucket,
                    buckets,
                    last,
                },
                Err(flaw) => bad(flaw, 0),
            },
        }
    }

    /// A leaf page at `b[at..]`: (plain entries, first bucket ref, bucket
    /// refs, first 8 bytes of the last key). Inline buckets nest one level.
    fn parse_leaf(&mut self, b: &[u8], at: usize, top: bool) -> Result<(u16, u32, u16, u64), Flaw> {
        let count = le16(b, at + 10) as usize;
        // Inline buckets' elements count too: values may overlap in a
        // crafted page.
        self.work += count as u64;
        if self.over_budget() {
            self.untracked = Some(
                "elements overlap more than a bbolt file's can: the bucket tree was not walked"
                    .into(),
            );
            return Err(Flaw::ElementOutside);
        }
        let table = at + HEADER;
        if table + count * ELEMENT > b.len() {
            return Err(Flaw::ElementOutside);
        }
        let first_bucket = self.buckets.len() as u32;
        let (mut entries, mut buckets, mut last) = (0u16, 0u16, 0u64);
        for i in 0..count {
            let e = table + i * ELEMENT;
            let (flags, pos) = (le32(b, e), le32(b, e + 4) as usize);
            let (ksize, vsize) = (le32(b, e + 8) as usize, le32(b, e + 12) as usize);
            let k = e.checked_add(pos).ok_or(Flaw::ElementOutside)?;
            let v = k.checked_add(ksize).ok_or(Flaw::ElementOutside)?;
            let end = v.checked_add(vsize).ok_or(Flaw::ElementOutside)?;
            if end > b.len() {
                return Err(Flaw::ElementOutside);
            }
            let key = &b[k..v];
            last = key_prefix(key);
            if flags & BUCKET_LEAF == 0 {
                entries += 1;
                continue;
            }
            if vsize < 16 {
                return Err(Flaw::ElementOutside);
            }
            if !top {
                // bbolt never inlines a bucket that holds buckets.
                return Err(Flaw::BadInline);
            }
            let root = le64(b, v);
            let name = String::from_utf8_lossy(&key[..key.len().min(255)]).into_owned();
            let mut r = BucketRef {
                name,
                root,
                inline_entries: 0,
                inline_last: None,
            };
            if root == 0 {
                let page = v + 16;
                if page + HEADER > end || le16(b, page + 8) != LEAF {
                    return Err(Flaw::BadInline);
                }
                let inner = &b[..end];
                let (n, _, _, l) = self.parse_leaf(inner, page, false)?;
                r.inline_entries = u32::from(n);
                r.inline_last = (n > 0).then_some(l);
            }
            if self.buckets.len() < u32::MAX as usize {
                self.buckets.push(r);
                buckets += 1;
            }
        }
        Ok((entries, first_bucket, buckets, last))
    }

    /// Ends the pass: the page count against the meta, then the tree walk.
    pub fn finish(mut self) -> Result<Walk, Damage> {
        let Some(meta) = self.meta else {
            return Err(Damage(format!(
                "ends after {} page(s), before both meta pages",
                self.seen
            )));
        };
        if self.seen < meta.pages {
            return Err(Damage(format!(
                "ends after {} pages, but the meta page (txid {}) says the database has {}: truncated",
                self.seen, meta.txid, meta.pages
            )));
        }
        if self.seen > meta.pages {
            return Err(Damage(format!(
                "{} pages, but the meta page (txid {}) accounts for only {}",
                self.seen, meta.txid, meta.pages
            )));
        }
        if let Some(why) = self.untracked.take() {
            // Judged as far as the pages go; the tree was not kept.
            return Ok(Walk::NotWalked(why));
        }
        self.pending_by_end.clear();
        self.window = Vec::new();
        Ok(Walk::Walked(self.walk(meta)?))
    }

    fn walk(&self, meta: Meta) -> Result<BoltFacts, Damage> {
        let pages = meta.pages as usize;
        let mut used = vec![0u64; pages.div_ceil(64)];
        let mut in_use = 0u64;
        let mut stats: Vec<BucketStats> = vec![BucketStats {
            path: String::new(),
            entries: 0,
            sub_buckets: 0,
            last_key: None,
        }];
        let mut overflowed: Option<usize> = None;
        // (page, bucket index, depth, referenced by)
        let mut stack: Vec<(u64, usize, u32, Option<u64>)> = vec![(meta.root, 0, 0, None)];
        let by = |from: Option<u64>| match from {
            Some(p) => format!("referenced by page {p}"),
            None => "the root bucket".to_string(),
        };
        while let Some((id, bucket, depth, from)) = stack.pop() {
            let path = &stats[bucket].path;
            let whose = if path.is_empty() {
                "the root bucket".to_string()
            } else {
                format!("bucket {path:?}")
            };
            if id < 2 || id >= meta.pages {
                return Err(Damage(format!(
                    "page {id} ({}, {whose}) lies outside the database's {} pages",
                    by(from),
                    meta.pages
                )));
            }
            if depth > MAX_DEPTH {
                return Err(Damage(format!(
                    "page {id} ({whose}): tree deeper than {MAX_DEPTH}"
                )));
            }
            let node = self.nodes[id as usize];
            let overflow = match node {
                Node::Branch { overflow, .. } | Node::Leaf { overflow, .. } => overflow,
                Node::Freelist => {
                    return Err(Damage(format!(
                        "page {id} ({}, {whose}) is a freelist page, not a tree node",
                        by(from)
                    )));
                }
                Node::Unseen => {
                    return Err(Damage(format!(
                        "page {id} ({}, {whose}) has no valid page header (wrong id or type)",
                        by(from)
                    )));
                }
                Node::Bad { flaw, arg } => {
                    let arg = if arg != 0 {
                        format!(" ({arg})")
                    } else {
                        String::new()
                    };
                    return Err(Damage(format!("page {id} ({whose}): {flaw}{arg}")));
                }
                Node::TooLarge => {
                    return Err(Damage(format!(
                        "page {id} ({whose}) spans more than the {} MiB backproof holds for one node",
                        MAX_NODE_BYTES >> 20
                    )));
                }
            };
            for p in id..=id + u64::from(overflow) {
                let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
                if used[w] & bit != 0 {
                    return Err(Damage(format!(
                        "page {p} ({whose}, {}) is reached twice in the tree",
                        by(from)
                    )));
                }
                used[w] |= bit;
                in_use += 1;
            }
            match node {
                Node::Branch { first, n, .. } => {
                    let kids = &self.children[first as usize..first as usize + n as usize];
                    for &c in kids.iter().rev() {
                        stack.push((c, bucket, depth + 1, Some(id)));
                    }
                }
                Node::Leaf {
                    entries,
                    first_bucket,
                    buckets,
                    last,
                    ..
                } => {
                    let s = &mut stats[bucket];
                    s.entries += u64::from(entries);
                    s.sub_buckets += u64::from(buckets);
                    if entries + buckets > 0 {
                        s.last_key = Some(s.last_key.map_or(last, |l| l.max(last)));
                    }
                    let parent_path = s.path.clone();
                    let refs = &self.buckets
                        [first_bucket as usize..first_bucket as usize + buckets as usize];
                    for r in refs {
                        let child = if stats.len() < MAX_BUCKETS {
                            let path = if parent_path.is_empty() {
                                r.name.clone()
                            } else {
                                format!("{parent_path}/{}", r.name)
                            };
                            stats.push(BucketStats {
                                path,
                                entries: 0,
                                sub_buckets: 0,
                                last_key: None,
                            });
                            stats.len() - 1
                        } else {
                            *overflowed.get_or_insert_with(|| {
                                stats.push(BucketStats {
                                    path: "(further buckets)".into(),
                                    entries: 0,
                                    sub_buckets: 0,
                                    last_key: None,
                                });
                                stats.len() - 1
                            })
                        };
                        if r.root == 0 {
                            let s = &mut stats[child];
                            s.entries += u64::from(r.inline_entries);
                            s.last_key = r.inline_last.or(s.last_key);
                        } else {
                            stack.push((r.root, child, depth + 1, Some(id)));
                        }
                    }
                }
                _ => unreachable!("only nodes get here"),
            }
        }
        let free_pages = match (&self.free, meta.freelist) {
            (Some(ids), Some(p)) => {
                for &f in ids {
                    if used[(f / 64) as usize] & (1 << (f % 64)) != 0 {
                        return Err(Damage(format!(
                            "page {f} is on the freelist (page {p}) and in use in the tree"
                        )));
                    }
                }
                Some(ids.len() as u64)
            }
            (None, Some(p)) => {
                let why = match self.nodes.get(p as usize) {
                    Some(Node::Bad { flaw, arg }) => format!(": {flaw} (page {arg})"),
                    _ => String::new(),
                };
                return Err(Damage(format!(
                    "freelist page {p} named by the meta page is not a valid freelist page{why}"
                )));
            }
            (_, None) => None,
        };
        // The root bucket itself holds only buckets; report those.
        stats.remove(0);
        Ok(BoltFacts {
            meta,
            txids: [
                self.metas[0].map_or(0, |m| m.txid),
                self.metas[1].map_or(0, |m| m.txid),
            ],
            pages_in_use: in_use,
            free_pages,
            buckets: stats,
        })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const PS: usize = 4096;

    pub fn meta_page(id: u64, root: u64, freelist: u64, pages: u64, txid: u64) -> Vec<u8> {
        let mut p = vec![0u8; PS];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&META.to_le_bytes());
        p[16..20].copy_from_slice(&MAGIC.to_le_bytes());
        p[20..24].copy_from_slice(&VERSION.to_le_bytes());
        p[24..28].copy_from_slice(&(PS as u32).to_le_bytes());
        p[32..40].copy_from_slice(&root.to_le_bytes());
        p[48..56].copy_from_slice(&freelist.to_le_bytes());
        p[56..64].copy_from_slice(&pages.to_le_bytes());
        p[64..72].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv64a(&p[16..72]);
        p[72..80].copy_from_slice(&sum.to_le_bytes());
        p
    }

    /// A leaf page: (key, value, is bucket).
    pub fn leaf_page(id: u64, elems: &[(&[u8], &[u8], bool)]) -> Vec<u8> {
        let mut p = vec![0u8; PS];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&LEAF.to_le_bytes());
        p[10..12].copy_from_slice(&(elems.len() as u16).to_le_bytes());
        let mut data = HEADER + elems.len() * ELEMENT;
        for (i, (k, v, bucket)) in elems.iter().enumerate() {
            let e = HEADER + i * ELEMENT;
            p[e..e + 4].copy_from_slice(&u32::from(*bucket).to_le_bytes());
            p[e + 4..e + 8].copy_from_slice(&((data - e) as u32).to_le_bytes());
            p[e + 8..e + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            p[e + 12..e + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            p[data..data + k.len()].copy_from_slice(k);
            data += k.len();
            p[data..data + v.len()].copy_from_slice(v);
            data += v.len();
        }
        p
    }

    pub fn bucket_value(root: u64) -> Vec<u8> {
        let mut v = root.to_le_bytes().to_vec();
        v.extend(0u64.to_le_bytes());
        v
    }

    /// A small bbolt file: root bucket at page 2 naming bucket "key" at
    /// page 3 with `n` revisions, and an inline bucket "meta" with one key.
    pub fn small_db(n: u64) -> Vec<u8> {
        let mut inline = bucket_value(0);
        let inner = leaf_page(
            0,
            &[(b"consistent_index", &[0, 0, 0, 0, 0, 0, 0, 9], false)],
        );
        let used = HEADER + ELEMENT + 16 + 8;
        inline.extend(&inner[..used]);
        let root = leaf_page(
            2,
            &[(b"key", &bucket_value(3), true), (b"meta", &inline, true)],
        );
        let revs: Vec<Vec<u8>> = (1..=n)
            .map(|r| {
                let mut k = r.to_be_bytes().to_vec();
                k.push(b'_');
                k.extend(0u64.to_be_bytes());
                k
            })
            .collect();
        let elems: Vec<(&[u8], &[u8], bool)> = revs
            .iter()
            .map(|k| (k.as_slice(), &b"v"[..], false))
            .collect();
        let mut db = meta_page(0, 2, NO_FREELIST, 4, 7);
        db.extend(meta_page(1, 2, NO_FREELIST, 4, 6));
        db.extend(root);
        db.extend(leaf_page(3, &elems));
        db
    }

    fn run(db: &[u8]) -> Result<Walk, Damage> {
        let mut p = Pages::new(PS as u32);
        for page in db.chunks(PS) {
            p.page(page)?;
        }
        p.finish()
    }

    fn walked(db: &[u8]) -> BoltFacts {
        match run(db) {
            Ok(Walk::Walked(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_small_tree_is_walked_and_counted() {
        let facts = walked(&small_db(5));
        assert_eq!(facts.meta.txid, 7);
        assert_eq!(facts.txids, [7, 6]);
        assert_eq!(facts.pages_in_use, 2);
        let key = facts.bucket("key").unwrap();
        assert_eq!(key.entries, 5);
        assert_eq!(key.last_key, Some(5));
        assert_eq!(facts.bucket("meta").unwrap().entries, 1);
    }

    #[test]
    fn meta_damage_names_the_page() {
        let mut db = small_db(3);
        db[PS + 40] ^= 1;
        let e = run(&db).unwrap_err();
        assert!(e.0.contains("meta page 1: checksum"), "{e}");
    }

    #[test]
    fn a_page_with_a_wrong_id_or_outside_the_file_is_damage() {
        let mut db = small_db(3);
        db[3 * PS] = 9; // page 3 says it is page 9
        let e = run(&db).unwrap_err();
        assert!(
            e.0.contains("page 3") && e.0.contains("no valid page header"),
            "{e}"
        );

        let mut db = small_db(3);
        // The "key" bucket's root moved to page 40 of a 4-page file.
        let at = 2 * PS + HEADER + 2 * ELEMENT + 3;
        db[at..at + 8].copy_from_slice(&40u64.to_le_bytes());
        let e = run(&db).unwrap_err();
        assert!(e.0.contains("page 40") && e.0.contains("outside"), "{e}");
    }

    /// small_db(3) plus page 4, a persisted freelist of `ids`.
    fn with_freelist(ids: &[u64]) -> Vec<u8> {
        let mut db = small_db(3);
        db[..PS].copy_from_slice(&meta_page(0, 2, 4, 5, 7));
        db[PS..2 * PS].copy_from_slice(&meta_page(1, 2, 4, 5, 6));
        let mut p = vec![0u8; PS];
        p[0..8].copy_from_slice(&4u64.to_le_bytes());
        p[8..10].copy_from_slice(&FREELIST.to_le_bytes());
        p[10..12].copy_from_slice(&(ids.len() as u16).to_le_bytes());
        for (i, id) in ids.iter().enumerate() {
            p[HEADER + i * 8..HEADER + i * 8 + 8].copy_from_slice(&id.to_le_bytes());
        }
        db.extend(p);
        db
    }

    #[test]
    fn a_persisted_freelist_is_checked_against_the_tree() {
        // A free page 5 would be outside the 5-page file; page 3 is in use.
        assert_eq!(walked(&with_freelist(&[])).free_pages, Some(0));
        let e = run(&with_freelist(&[3])).unwrap_err();
        assert!(e.0.contains("page 3 is on the freelist"), "{e}");
        let e = run(&with_freelist(&[5])).unwrap_err();
        assert!(
            e.0.contains("freelist page 4") && e.0.contains("(page 5)"),
            "{e}"
        );
    }

    #[test]
    fn missing_pages_are_truncation() {
        let db = small_db(3);
        let e = run(&db[..3 * PS]).unwrap_err();
        assert!(e.0.contains("truncated"), "{e}");
    }

    #[test]
    fn overlapping_crafted_nodes_cost_what_the_bytes_allow() {
        // Every page a leaf of 65535 (empty) elements spanning the next 256
        // pages: each page would start a 1 MiB node.
        let n = 600u64;
        let mut db = meta_page(0, 2, NO_FREELIST, n, 7);
        db.extend(meta_page(1, 2, NO_FREELIST, n, 6));
        for id in 2..n {
            let mut p = vec![0u8; PS];
            p[0..8].copy_from_slice(&id.to_le_bytes());
            p[8..10].copy_from_slice(&LEAF.to_le_bytes());
            p[10..12].copy_from_slice(&0xFFFFu16.to_le_bytes());
            let overflow = 256.min(n - 1 - id) as u32;
            p[12..16].copy_from_slice(&overflow.to_le_bytes());
            db.extend(p);
        }
        let started = std::time::Instant::now();
        let Ok(Walk::NotWalked(why)) = run(&db) else {
            panic!("walked a crafted file")
        };
        assert!(why.contains("overlap"), "{why}");
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn hostile_counts_cost_nothing() {
        let mut db = small_db(3);
        // Leaf 3 claims 65535 elements and a huge overflow.
        db[3 * PS + 10..3 * PS + 12].copy_from_slice(&0xFFFFu16.to_le_bytes());
        let e = run(&db).unwrap_err();
        assert!(
            e.0.contains("page 3") && e.0.contains("outside the page"),
            "{e}"
        );
        let mut db = small_db(3);
        db[3 * PS + 12..3 * PS + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = run(&db).unwrap_err();
        assert!(e.0.contains("page 3") && e.0.contains("overflow"), "{e}");
    }
}
