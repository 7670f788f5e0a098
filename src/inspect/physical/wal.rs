//! One WAL segment judged by its content: every page header (magic,
//! flags, timeline, page address), the long header of the first page
//! (system identifier, segment size, page size), and every record's CRC,
//! read as a stream of records across pages. The commit records'
//! timestamps are kept: they are the instants a `recovery_target_time` can
//! reach. A renamed, cut or foreign segment is found by what it holds, not
//! by its name.

use std::io::{self, Read};

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use super::names::{Lsn, WalName, segment_name, segno};

/// `XLOG_PAGE_MAGIC` of PostgreSQL 15 (src/include/access/xlog_internal.h).
pub const MAGIC_PG15: u16 = 0xD110;
/// Other releases' magic, so a segment of another version is named as such.
const MAGICS: &[(u16, u32)] = &[
    (0xD093, 9),
    (0xD097, 10),
    (0xD098, 11),
    (0xD101, 12),
    (0xD106, 13),
    (0xD10D, 14),
    (MAGIC_PG15, 15),
    (0xD113, 16),
    (0xD116, 17),
];
pub const PAGE: usize = 8192;
const SHORT_HEADER: usize = 24;
const LONG_HEADER: usize = 40;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const XLP_LONG_HEADER: u16 = 0x0002;
const XLP_ALL_FLAGS: u16 = 0x000F;
const RECORD_HEADER: usize = 24;
/// PostgreSQL refuses records above 1 GB (XLogRecordMaxSize).
const MAX_RECORD: u32 = 1020 * 1024 * 1024;
/// Commit records are kept whole up to this size to read their time.
const MAX_KEPT: u32 = 64 * 1024;
const RM_XLOG: u8 = 0;
const RM_XACT: u8 = 1;
const XLOG_SWITCH: u8 = 0x40;
/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH: i64 = 946_684_800;

/// The PostgreSQL release whose WAL carries this page magic.
pub fn version_of_magic(magic: u16) -> Option<u32> {
    MAGICS.iter().find(|(m, _)| *m == magic).map(|(_, v)| *v)
}

/// A segment's first page, by content: a known magic with the long-header
/// flag, a power-of-two segment size and 8 kB pages.
pub fn looks_like(head: &[u8]) -> bool {
    if head.len() < LONG_HEADER {
        return false;
    }
    let magic = u16le(head, 0);
    let info = u16le(head, 2);
    let seg = u32le(head, 32);
    version_of_magic(magic).is_some()
        && info & XLP_LONG_HEADER != 0
        && seg.is_power_of_two()
        && (1 << 20..=1 << 30).contains(&seg)
        && u32le(head, 36) as usize == PAGE
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A transaction commit: where and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub lsn: Lsn,
    pub at: DateTime<Utc>,
}

/// What one segment holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentFacts {
    pub magic: u16,
    pub pg_version: Option<u32>,
    /// The file name's timeline (else the first page's).
    pub tli: u32,
    /// The segment number its first page's address says.
    pub segno: u64,
    pub system_id: u64,
    pub seg_size: u64,
    /// Bytes read (a full segment is `seg_size`).
    pub bytes: u64,
    pub partial: bool,
    /// Records whose CRC was checked.
    pub records: u64,
    /// End of the last whole record (the WAL's end inside this segment).
    pub end: Lsn,
    /// Ends with an XLOG_SWITCH record (the rest of the segment is unused).
    pub switched: bool,
    pub commits: u64,
    pub first_commit: Option<Commit>,
    pub last_commit: Option<Commit>,
    /// Damage, worded for the report; empty when sound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl SegmentFacts {
    pub fn start(&self) -> Lsn {
        Lsn(self.segno * self.seg_size)
    }
    /// The name its content says it should have.
    pub fn content_name(&self) -> String {
        segment_name(self.tli, self.segno, self.seg_size)
    }
}

/// Where the record stream is.
enum State {
    /// The continuation of a record begun in the previous segment.
    Skip(u64),
    Align,
    Header {
        lsn: u64,
        buf: [u8; RECORD_HEADER],
        have: usize,
    },
    Body {
        lsn: u64,
        head: [u8; RECORD_HEADER],
        remaining: u64,
        crc: u32,
        kept: Option<Vec<u8>>,
    },
    Ended,
}

impl State {
    /// Bytes of the current record still to come, when inside one.
    fn remaining(&self) -> Option<u64> {
        match self {
            State::Skip(n) => Some(*n),
            State::Header { buf, have, .. } if *have > 0 => {
                Some((u32le(buf, 0) as u64).saturating_sub(*have as u64))
            }
            State::Body { remaining, .. } => Some(*remaining),
            _ => None,
        }
    }
}

struct Decoder {
    state: State,
    facts: SegmentFacts,
}

impl Decoder {
    fn feed(&mut self, start: u64, data: &[u8]) {
        let mut i = 0usize;
        while i < data.len() {
            let at = start + i as u64;
            match &mut self.state {
                State::Ended => return,
                State::Skip(n) => {
                    let take = (*n).min((data.len() - i) as u64);
                    *n -= take;
                    i += take as usize;
                    if *n == 0 {
                        self.state = State::Align;
                    }
                }
                State::Align => {
                    let aligned = (at + 7) & !7;
                    i += (aligned - at) as usize;
                    self.state = State::Header {
                        lsn: 0,
                        buf: [0; RECORD_HEADER],
                        have: 0,
                    };
                }
                State::Header { lsn, buf, have } => {
                    if *have == 0 {
                        // Padding may end a page: the record starts here.
                        *lsn = at;
                    }
                    let take = (RECORD_HEADER - *have).min(data.len() - i);
                    buf[*have..*have + take].copy_from_slice(&data[i..i + take]);
                    *have += take;
                    i += take;
                    if *have >= 4 && u32le(buf, 0) == 0 {
                        // Zeros where a record would start: the WAL ends here.
                        self.state = State::Ended;
                        return;
                    }
                    if *have < RECORD_HEADER {
                        continue;
                    }
                    let total = u32le(buf, 0);
                    if !(RECORD_HEADER as u32..=MAX_RECORD).contains(&total) {
                        self.facts
                            .problems
                            .push(format!("record at {}: invalid length {total}", Lsn(*lsn)));
                        self.state = State::Ended;
                        return;
                    }
                    let keep = buf[17] == RM_XACT && total <= MAX_KEPT;
                    let (lsn, head) = (*lsn, *buf);
                    self.state = State::Body {
                        lsn,
                        head,
                        remaining: (total as usize - RECORD_HEADER) as u64,
                        crc: 0,
                        kept: keep.then(Vec::new),
                    };
                    self.finish_if_done();
                }
                State::Body {
                    remaining,
                    crc,
                    kept,
                    ..
                } => {
                    let take = (*remaining).min((data.len() - i) as u64) as usize;
                    let bytes = &data[i..i + take];
                    *crc = crc32c::crc32c_append(*crc, bytes);
                    if let Some(k) = kept {
                        k.extend_from_slice(bytes);
                    }
                    *remaining -= take as u64;
                    i += take;
                    self.finish_if_done();
                }
            }
        }
    }

    /// A record whose last byte was read: its CRC, and what it says.
    fn finish_if_done(&mut self) {
        let State::Body {
            lsn,
            head,
            remaining: 0,
            crc,
            kept,
        } = &mut self.state
        else {
            return;
        };
        let (lsn, head, kept) = (*lsn, *head, kept.take());
        let crc = crc32c::crc32c_append(*crc, &head[..20]);
        let total = u32le(&head, 0) as u64;
        self.facts.records += 1;
        if crc != u32le(&head, 20) {
            self.facts.problems.push(format!(
                "record at {}: CRC mismatch (the bytes were altered)",
                Lsn(lsn)
            ));
            self.state = State::Ended;
            return;
        }
        self.facts.end = Lsn(lsn + total);
        let (info, rmid) = (head[16], head[17]);
        if rmid == RM_XLOG && info & 0xF0 == XLOG_SWITCH {
            self.facts.switched = true;
            self.state = State::Ended;
            return;
        }
        if rmid == RM_XACT
            && matches!(info & 0x70, 0x00 | 0x30)
            && let Some(at) = kept.as_deref().and_then(commit_time)
        {
            let c = Commit { lsn: Lsn(lsn), at };
            self.facts.commits += 1;
            self.facts.first_commit.get_or_insert(c);
            self.facts.last_commit = Some(c);
        }
        self.state = State::Align;
    }
}

/// `xl_xact_commit.xact_time`: the first 8 bytes of the record's main
/// data, which ends the record; the block headers before it say how long it is.
fn commit_time(body: &[u8]) -> Option<DateTime<Utc>> {
    let mut p = 0usize;
    let main_len = loop {
        let id = *body.get(p)?;
        p += 1;
        match id {
            255 => break *body.get(p)? as usize,
            254 => break u32le(body.get(p..p + 4)?, 0) as usize,
            253 => p += 2,
            252 => p += 4,
            0..=32 => {
                let flags = *body.get(p)?;
                p += 3;
                if flags & 0x10 != 0 {
                    let bimg_info = *body.get(p + 4)?;
                    p += 5;
                    if bimg_info & 0x01 != 0 && bimg_info & 0x1C != 0 {
                        p += 2;
                    }
                }
                if flags & 0x80 == 0 {
                    p += 12;
                }
                p += 4;
            }
            _ => return None,
        }
    };
    let main = body.get(body.len().checked_sub(main_len)?..)?;
    let us = i64::from_le_bytes(main.get(..8)?.try_into().ok()?);
    Utc.timestamp_micros(PG_EPOCH * 1_000_000 + us).single()
}

fn read_page(r: &mut dyn Read, page: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < page.len() {
        match r.read(&mut page[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads one segment to its end. `name` is its file name (compression
/// suffix allowed); the content is checked against it.
pub fn check(r: &mut dyn Read, name: &str) -> io::Result<SegmentFacts> {
    let named = WalName::parse(name);
    let partial = matches!(named, Some(WalName::Segment { partial: true, .. }));
    let mut page = vec![0u8; PAGE];
    let n = read_page(r, &mut page)?;
    let mut facts = SegmentFacts {
        magic: 0,
        pg_version: None,
        tli: 0,
        segno: 0,
        system_id: 0,
        seg_size: 0,
        bytes: n as u64,
        partial,
        records: 0,
        end: Lsn(0),
        switched: false,
        commits: 0,
        first_commit: None,
        last_commit: None,
        problems: Vec::new(),
    };
    if n < LONG_HEADER || !looks_like(&page[..n]) {
        facts
            .problems
            .push("the first page is not a WAL segment's first page".into());
        return Ok(facts);
    }
    facts.magic = u16le(&page, 0);
    facts.pg_version = version_of_magic(facts.magic);
    let first_tli = u32le(&page, 4);
    facts.tli = first_tli;
    facts.system_id = u64le(&page, 24);
    facts.seg_size = u32le(&page, 32) as u64;
    let first_addr = u64le(&page, 8);
    facts.segno = first_addr / facts.seg_size;
    facts.end = Lsn(first_addr);
    if !first_addr.is_multiple_of(facts.seg_size) {
        facts.problems.push(format!(
            "the first page's address {} is not a segment boundary",
            Lsn(first_addr)
        ));
    }
    if let Some(WalName::Segment { tli, log, seg, .. }) = named {
        let expected = segno(log, seg, facts.seg_size);
        if expected != facts.segno || first_tli > tli {
            facts.problems.push(format!(
                "its pages are those of segment {} (timeline {first_tli}), not of {}: renamed or copied into the wrong place",
                segment_name(first_tli, facts.segno, facts.seg_size),
                segment_name(tli, expected, facts.seg_size),
            ));
            return Ok(facts);
        }
        facts.tli = tli;
    }
    let rem = u32le(&page, 16) as u64;
    let mut dec = Decoder {
        state: if u16le(&page, 2) & XLP_FIRST_IS_CONTRECORD != 0 {
            State::Skip(rem)
        } else {
            State::Align
        },
        facts,
    };
    let seg_start = first_addr;
    let pages = dec.facts.seg_size as usize / PAGE;
    let mut last_tli = first_tli;
    let mut empty_from: Option<usize> = None;
    let mut got = n;
    for pageno in 0..pages {
        if pageno > 0 {
            got = read_page(r, &mut page)?;
            dec.facts.bytes += got as u64;
        }
        if got < PAGE {
            if !dec.facts.partial {
                // Keep reading counts honest; the cut is the finding.
                dec.facts.problems.push(format!(
                    "truncated: {} of {} bytes (cut inside page {pageno})",
                    dec.facts.bytes, dec.facts.seg_size
                ));
            }
            break;
        }
        let addr = seg_start + (pageno * PAGE) as u64;
        if page[..SHORT_HEADER].iter().all(|&b| b == 0) {
            empty_from.get_or_insert(pageno);
            if dec.state.remaining().is_some() && !dec.facts.partial {
                dec.facts.problems.push(format!(
                    "the record continuing at {} is cut by an empty page",
                    Lsn(addr)
                ));
            }
            dec.state = State::Ended;
            continue;
        }
        if empty_from.is_some() || matches!(dec.state, State::Ended) {
            // After the WAL's end (a switch, or zeros): not WAL any more.
            continue;
        }
        let (magic, info, tli) = (u16le(&page, 0), u16le(&page, 2), u32le(&page, 4));
        let page_addr = u64le(&page, 8);
        let mut bad = Vec::new();
        if magic != dec.facts.magic {
            bad.push(format!(
                "magic {magic:#06X} (the segment began with {:#06X})",
                dec.facts.magic
            ));
        }
        if info & !XLP_ALL_FLAGS != 0 || (pageno > 0 && info & XLP_LONG_HEADER != 0) {
            bad.push(format!("invalid flags {info:#06X}"));
        }
        if page_addr != addr {
            bad.push(format!(
                "address {} where {} belongs",
                Lsn(page_addr),
                Lsn(addr)
            ));
        }
        if tli < last_tli || tli > dec.facts.tli {
            bad.push(format!("timeline {tli} after {last_tli}"));
        }
        if !bad.is_empty() {
            if dec.facts.partial {
                // A .partial's tail may be a recycled file's old pages.
                dec.state = State::Ended;
                continue;
            }
            dec.facts
                .problems
                .push(format!("page at {}: {}", Lsn(addr), bad.join(", ")));
            dec.state = State::Ended;
            continue;
        }
        last_tli = tli;
        let header = if pageno == 0 {
            LONG_HEADER
        } else {
            SHORT_HEADER
        };
        if pageno > 0 {
            let cont = info & XLP_FIRST_IS_CONTRECORD != 0;
            let rem = u32le(&page, 16) as u64;
            match dec.state.remaining() {
                Some(left) if !cont || left != rem => {
                    dec.facts.problems.push(format!(
                        "page at {}: should continue a record with {left} bytes left, says {}",
                        Lsn(addr),
                        if cont {
                            format!("{rem}")
                        } else {
                            "none".into()
                        }
                    ));
                    dec.state = State::Ended;
                    continue;
                }
                None if cont => {
                    dec.facts.problems.push(format!(
                        "page at {}: continues a record no page began",
                        Lsn(addr)
                    ));
                    dec.state = State::Ended;
                    continue;
                }
                _ => {}
            }
        }
        dec.feed(addr + header as u64, &page[header..]);
    }
    // Drain what is left of a longer file, so the size is known.
    let mut rest = 0u64;
    loop {
        let k = read_page(r, &mut page)?;
        if k == 0 {
            break;
        }
        rest += k as u64;
    }
    if rest > 0 {
        dec.facts.bytes += rest;
        dec.facts.problems.push(format!(
            "{} bytes long, but its segment size is {}",
            dec.facts.bytes, dec.facts.seg_size
        ));
    }
    Ok(dec.facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_time_reads_the_main_data() {
        // A commit with no block references: 0xFF, length 8, xact_time.
        let us: i64 = 1_000_000 * 86_400;
        let mut body = vec![255u8, 8];
        body.extend_from_slice(&us.to_le_bytes());
        assert_eq!(
            commit_time(&body).map(|t| t.to_rfc3339()),
            Some("2000-01-02T00:00:00+00:00".into())
        );
        assert_eq!(commit_time(&[77, 0]), None);
    }

    #[test]
    fn other_versions_are_named() {
        assert_eq!(version_of_magic(0xD10D), Some(14));
        assert_eq!(version_of_magic(MAGIC_PG15), Some(15));
        assert_eq!(version_of_magic(0x1234), None);
    }
}
