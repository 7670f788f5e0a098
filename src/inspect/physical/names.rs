//! LSNs and WAL file names: `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline, then the
//! segment number split into "log" and "seg" parts), `.partial`,
//! `TTTTTTTT.history`, `…​.XXXXXXXX.backup`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A WAL position, printed as PostgreSQL does (`0/3000028`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `X/Y` in hex, as `backup_label`, `backup_manifest` and history files write it.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn(((hi as u64) << 32) | lo as u64))
    }

    /// The segment holding this position.
    pub fn segment(self, seg_size: u64) -> u64 {
        self.0 / seg_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let text = String::deserialize(d)?;
        Lsn::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an LSN")))
    }
}

/// What a WAL archive file's name says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalName {
    /// A segment, `partial` for a `.partial` one (the old timeline's last
    /// segment, archived at a promotion).
    Segment {
        tli: u32,
        log: u32,
        seg: u32,
        partial: bool,
    },
    /// `TTTTTTTT.history`.
    History(u32),
    /// `…​.backup`: a base backup's start and stop, written by the server.
    BackupHistory,
}

fn hex8(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// Strips a compression suffix archive_command scripts add.
pub fn strip_compression(name: &str) -> &str {
    for ext in [".gz", ".zst", ".lz4", ".zstd"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s;
        }
    }
    name
}

impl WalName {
    pub fn parse(name: &str) -> Option<WalName> {
        let name = strip_compression(name);
        if let Some(t) = name.strip_suffix(".history") {
            return hex8(t).map(WalName::History);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, off) = rest.split_once('.')?;
            WalName::parse(seg)?;
            hex8(off)?;
            return Some(WalName::BackupHistory);
        }
        let (body, partial) = match name.strip_suffix(".partial") {
            Some(b) => (b, true),
            None => (name, false),
        };
        if body.len() != 24 {
            return None;
        }
        Some(WalName::Segment {
            tli: hex8(&body[0..8])?,
            log: hex8(&body[8..16])?,
            seg: hex8(&body[16..24])?,
            partial,
        })
    }
}

/// Segments per "log" (the middle 8 hex digits) for a segment size.
pub fn segments_per_log(seg_size: u64) -> u64 {
    0x1_0000_0000 / seg_size
}

/// The segment number a name's log/seg parts stand for.
pub fn segno(log: u32, seg: u32, seg_size: u64) -> u64 {
    log as u64 * segments_per_log(seg_size) + seg as u64
}

/// The file name of segment `segno` on timeline `tli`.
pub fn segment_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per = segments_per_log(seg_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lsns() {
        assert_eq!(Lsn::parse("0/3000028"), Some(Lsn(0x3000028)));
        assert_eq!(Lsn(0x1_0300_0028).to_string(), "1/3000028");
        assert_eq!(
            WalName::parse("000000010000000000000007.partial"),
            Some(WalName::Segment {
                tli: 1,
                log: 0,
                seg: 7,
                partial: true
            })
        );
        assert_eq!(
            WalName::parse("00000002.history"),
            Some(WalName::History(2))
        );
        assert_eq!(
            WalName::parse("000000010000000000000003.00000028.backup"),
            Some(WalName::BackupHistory)
        );
        assert_eq!(WalName::parse("00000001000000000000000G"), None);
        let s = 16 << 20;
        assert_eq!(
            segment_name(1, segno(1, 0xFF, s), s),
            "0000000100000001000000FF"
        );
        assert_eq!(segno(1, 0, s), 256);
    }
}
