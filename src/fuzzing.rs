//! Entry points for the fuzz targets (`fuzz/`, docs/FUZZING.md) and for
//! `tests/fuzz_corpus.rs`: each feeds arbitrary bytes to the real parsers of
//! untrusted input and ignores the verdict. Errors are the expected outcome;
//! a panic, a hang or work out of proportion to the input is the bug.

use std::io::{self, BufReader, Read};

use crate::config::Config;
use crate::inspect::{self, Compression, Subject, dirs, gzip, image, innodb, pgdump, tar, text};
use crate::manifest::{self, ManifestName};

/// Names the `inspect` target gives its input (chosen by the first byte),
/// so that paths only a name reaches are fuzzed too.
pub const INSPECT_NAMES: &[&str] = &[
    "x.dump",
    "x.sql",
    "x.sql.gz",
    "x.sql.zst",
    "x.tar",
    "x.tar.gz",
    "x.qcow2",
    "x.img",
    "x.ibd",
    "ibdata1",
    "toc.dat",
    "backup_label",
    "xtrabackup_checkpoints",
    "x.bin",
    "x.zst",
    "undo001",
];

/// Most a decoder may produce per input: a decompression bomb is cheap to
/// write and linear to decode, not a hang.
const DECODED_CAP: u64 = 64 << 20;

/// The whole pipeline `verify` runs on a file: sniffing, decompression and
/// the inspector the content selects. Byte 0 picks the name (low 4 bits)
/// and whether random access is offered (bit 7 clear), as it is for a
/// local file, or not, as inside a compressed stream. A GPT disk is also
/// inspected with its CRCs made right (see [`image`]).
pub fn inspect(data: &[u8]) {
    let Some((&sel, content)) = data.split_first() else {
        return;
    };
    let name = INSPECT_NAMES[(sel & 0x0f) as usize % INSPECT_NAMES.len()];
    let at =
        |offset: u64, buf: &mut [u8]| -> io::Result<usize> { Ok(read_at(content, offset, buf)) };
    let subject = Subject {
        name,
        size: content.len() as u64,
        read_at: if sel & 0x80 == 0 { Some(&at) } else { None },
        local_path: None,
    };
    let mut stream = content;
    let _ = inspect::inspect(&mut stream, &subject);
    if let Some(fixed) = gpt_crcs_fixed(content) {
        let at =
            |offset: u64, buf: &mut [u8]| -> io::Result<usize> { Ok(read_at(&fixed, offset, buf)) };
        let subject = Subject {
            read_at: subject.read_at.map(|_| &at as _),
            ..subject
        };
        let _ = inspect::inspect(&mut &fixed[..], &subject);
    }
}

/// `pg_dump` custom archives and `toc.dat` files.
pub fn pgdump(data: &[u8]) {
    let _ = pgdump::read_header(&mut &data[..]);
    let _ = pgdump::check_custom(&mut &data[..]);
    if let Ok((h, toc)) = pgdump::read_toc_file(&mut &data[..]) {
        let _ = pgdump::header_evidence(&h, &toc);
    }
}

/// Tar archives, plain and `pg_dump -Ft`.
pub fn tar(data: &[u8]) {
    let _ = tar::check(&mut &data[..], false);
    let _ = tar::check(&mut &data[..], true);
}

/// Disk images (qcow2 tables, MBR/GPT/ext) with and without random access,
/// and InnoDB tablespaces. A GPT input is also checked with its CRCs made
/// right, so that mutations reach what lies behind them.
pub fn image(data: &[u8]) {
    image_once(data);
    if let Some(fixed) = gpt_crcs_fixed(data) {
        image_once(&fixed);
    }
}

fn image_once(data: &[u8]) {
    let at = |offset: u64, buf: &mut [u8]| -> io::Result<usize> { Ok(read_at(data, offset, buf)) };
    for random in [true, false] {
        let subject = Subject {
            name: "x.img",
            size: data.len() as u64,
            read_at: if random { Some(&at) } else { None },
            local_path: None,
        };
        let _ = image::check_qcow2(&mut &data[..], &subject);
        let _ = image::check_raw(&mut &data[..], &subject);
    }
    let _ = image::looks_raw(data, "x.img");
    let _ = innodb::check(&mut &data[..]);
}

/// SQL dump trailers, `pg_dumpall` sections, `backup_label` and
/// `xtrabackup_checkpoints`.
pub fn text(data: &[u8]) {
    // A small buffer as well as the usual one: lines and trailers cross
    // buffer boundaries.
    for cap in [7, 8192] {
        let _ = text::check_trailer(
            &mut BufReader::with_capacity(cap, data),
            text::Dialect::Postgres,
        );
        let _ = text::check_trailer(
            &mut BufReader::with_capacity(cap, data),
            text::Dialect::Mysql,
        );
        let _ = text::check_cluster(&mut BufReader::with_capacity(cap, data));
    }
    let s = String::from_utf8_lossy(data);
    let _ = dirs::check_backup_label(&s);
    let _ = dirs::check_checkpoints(&s);
}

/// Gzip members and zstd frames, decoded to the end (up to a cap). Byte 0
/// picks the decoder; both the restore-side `decompress` and the members
/// reader over a tiny buffer are driven.
pub fn compressed(data: &[u8]) {
    let Some((&sel, content)) = data.split_first() else {
        return;
    };
    let c = if sel & 1 == 0 {
        Compression::Gzip
    } else {
        Compression::Zstd
    };
    if let Ok(d) = inspect::decompress(c, content) {
        drain(d);
    }
    if c == Compression::Gzip {
        drain(gzip::Members::new(BufReader::with_capacity(7, content)));
    }
    let _ = inspect::sniff(&content[..content.len().min(4096)], "x.gz");
}

/// The config file, and checksum manifests of every kind.
pub fn config(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = Config::parse(&s);
    for kind in [
        ManifestName::Sums(None),
        ManifestName::Sums(Some(crate::digest::Algorithm::Sha256)),
        ManifestName::Sums(Some(crate::digest::Algorithm::Md5)),
        ManifestName::Sidecar {
            target: "x.dump".into(),
            algorithm: crate::digest::Algorithm::Blake3,
        },
    ] {
        let _ = manifest::parse("dir/SHA256SUMS", &kind, &s);
    }
    if let Some(first) = s.lines().next() {
        let _ = manifest::classify_name(first);
    }
}

/// A fuzz target: bytes in, any verdict out.
pub type Target = fn(&[u8]);

/// Every target by name, for the in-suite replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("inspect", inspect),
    ("snapshots", snapshots),
    ("pgdump", pgdump),
    ("tar", tar),
    ("image", image),
    ("text", text),
    ("compressed", compressed),
    ("config", config),
];

/// Configuration-store snapshots (issue 12): etcd's bbolt file with its
/// SHA-256 trailer, and raft archives (gzip'd tar of meta.json, state.bin,
/// SHA256SUMS) with Consul's msgpack or OpenBao's protobuf-framed state,
/// reached through the pipeline as `verify` reaches them (by content).
pub fn snapshots(data: &[u8]) {
    let at = |offset: u64, buf: &mut [u8]| -> io::Result<usize> { Ok(read_at(data, offset, buf)) };
    let subject = Subject {
        name: "snapshot-2026-11-20T0300.snap",
        size: data.len() as u64,
        read_at: Some(&at),
        local_path: None,
    };
    let mut stream = data;
    let _ = inspect::inspect(&mut stream, &subject);
}

fn read_at(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let Ok(start) = usize::try_from(offset) else {
        return 0;
    };
    let Some(rest) = data.get(start..) else {
        return 0;
    };
    let n = rest.len().min(buf.len());
    buf[..n].copy_from_slice(&rest[..n]);
    n
}

fn drain(r: impl Read) {
    let _ = io::copy(&mut r.take(DECODED_CAP), &mut io::sink());
}

/// A copy of a GPT disk with the primary header's entry-array and header
/// CRCs, and the backup header's CRC, recomputed; `None` if not GPT.
fn gpt_crcs_fixed(data: &[u8]) -> Option<Vec<u8>> {
    const SECTOR: usize = 512;
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    if data.len() < 2 * SECTOR || &data[SECTOR..SECTOR + 8] != b"EFI PART" {
        return None;
    }
    let mut d = data.to_vec();
    let fix_header = |d: &mut [u8], at: usize| {
        let size = (le32(d, at + 12) as usize).clamp(92, SECTOR);
        d[at + 16..at + 20].fill(0);
        let crc = crc32fast::hash(&d[at..at + size]);
        d[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    };
    let h = SECTOR;
    let entries_at = usize::try_from(le64(&d, h + 72)).ok()?.checked_mul(SECTOR);
    let entries_len = (le32(&d, h + 80) as usize).checked_mul(le32(&d, h + 84) as usize);
    if let (Some(from), Some(len)) = (entries_at, entries_len)
        && let Some(table) = from.checked_add(len).and_then(|end| d.get(from..end))
    {
        let crc = crc32fast::hash(table);
        d[h + 88..h + 92].copy_from_slice(&crc.to_le_bytes());
    }
    fix_header(&mut d, h);
    if let Some(backup) = usize::try_from(le64(&d, h + 32))
        .ok()
        .and_then(|lba| lba.checked_mul(SECTOR))
        .filter(|&b| b.checked_add(SECTOR).is_some_and(|end| end <= d.len()))
        && &d[backup..backup + 8] == b"EFI PART"
    {
        fix_header(&mut d, backup);
    }
    Some(d)
}
