//! Structure checks: is the backup complete and self-consistent, judged from
//! its own bytes? Each inspector reads the stream to its end (decompressing
//! where needed) so that a truncated or bit-flipped file fails here even when
//! no manifest exists.
//!
//! The kind of a backup is recognised from its first bytes, not its name.

pub mod bbolt;
pub mod consul;
pub mod dirs;
pub mod etcd;
pub(crate) mod gzip;
pub(crate) mod image;
pub(crate) mod innodb;
mod msgpack;
pub mod pgdump;
pub mod physical;
pub mod raft;
pub(crate) mod tar;
pub(crate) mod text;
pub mod vault;

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::digest::READ_BUF;

/// Format-level damage, worded for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage(pub String);

impl Damage {
    pub fn io(e: io::Error, context: &str) -> Damage {
        // A bare end-of-file says only "failed to fill whole buffer".
        let what = match (e.kind(), e.get_ref()) {
            (io::ErrorKind::UnexpectedEof, None) => "unexpected end of data".to_string(),
            _ => e.to_string(),
        };
        Damage(format!("{context}: {what}"))
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `pg_dump -Fc`.
    PgCustom,
    /// `toc.dat` of a `pg_dump -Fd` directory.
    PgToc,
    /// `pg_dump -Ft`.
    PgTar,
    /// `pg_dump` plain SQL.
    PgPlain,
    /// `pg_dumpall`: roles, then one plain dump per database.
    PgCluster,
    /// mysqldump / mariadb-dump SQL.
    MysqlDump,
    Tar,
    Qcow2,
    RawImage,
    /// A `pg_basebackup -Fp` directory (judged in [`dirs`]).
    PgBaseBackup,
    /// `backup_label` of a base backup.
    PgBackupLabel,
    /// A mariadb-backup / xtrabackup directory (judged in [`dirs`]).
    MariadbBackup,
    /// `xtrabackup_checkpoints` of such a directory.
    XtrabackupCheckpoints,
    /// An InnoDB tablespace (`ibdata1`, `*.ibd`).
    InnodbTablespace,
    /// A HashiCorp raft snapshot archive whose `state.bin` is Consul's.
    ConsulSnapshot,
    /// A raft snapshot archive from OpenBao or Vault (integrated storage).
    VaultSnapshot,
    /// A raft snapshot archive of an FSM not decoded here.
    RaftSnapshot,
    /// `etcdctl snapshot save`: a bbolt database and its SHA-256.
    EtcdSnapshot,
    /// A PostgreSQL WAL segment, recognised by its first page's header.
    WalSegment,
    /// A base backup's `backup_manifest`.
    PgBackupManifest,
    /// A data directory's `global/pg_control`.
    PgControl,
    /// A timeline history file (`TTTTTTTT.history`).
    PgTimelineHistory,
    /// A `pg_basebackup -Ft` directory (judged in [`crate::inspect::physical`]).
    PgBaseBackupTar,
    /// A WAL archive directory (judged in [`crate::inspect::physical`]).
    WalArchive,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub format: Format,
    pub compression: Option<Compression>,
}

impl Kind {
    pub const UNKNOWN: Kind = Kind {
        format: Format::Unknown,
        compression: None,
    };
}

/// Each format's name in reports and the history, both ways.
const FORMAT_NAMES: &[(Format, &str)] = &[
    (Format::PgCustom, "pg_custom"),
    (Format::PgToc, "pg_directory"),
    (Format::PgTar, "pg_tar"),
    (Format::PgPlain, "pg_plain"),
    (Format::PgCluster, "pg_dumpall"),
    (Format::MysqlDump, "mysqldump"),
    (Format::Tar, "tar"),
    (Format::Qcow2, "qcow2"),
    (Format::RawImage, "raw_image"),
    (Format::PgBaseBackup, "pg_basebackup"),
    (Format::PgBackupLabel, "pg_backup_label"),
    (Format::MariadbBackup, "mariadb-backup"),
    (Format::XtrabackupCheckpoints, "xtrabackup_checkpoints"),
    (Format::InnodbTablespace, "innodb_tablespace"),
    (Format::ConsulSnapshot, "consul_snapshot"),
    (Format::VaultSnapshot, "vault_raft_snapshot"),
    (Format::RaftSnapshot, "raft_snapshot"),
    (Format::EtcdSnapshot, "etcd_snapshot"),
    (Format::WalSegment, "wal_segment"),
    (Format::PgBackupManifest, "pg_backup_manifest"),
    (Format::PgControl, "pg_control"),
    (Format::PgTimelineHistory, "pg_timeline_history"),
    (Format::PgBaseBackupTar, "pg_basebackup_tar"),
    (Format::WalArchive, "wal_archive"),
    (Format::Unknown, "unknown"),
];

const COMPRESSION_SUFFIXES: &[(Compression, &str)] =
    &[(Compression::Gzip, "+gzip"), (Compression::Zstd, "+zstd")];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = FORMAT_NAMES
            .iter()
            .find(|(k, _)| *k == self.format)
            .map_or("unknown", |(_, n)| n);
        f.write_str(name)?;
        match COMPRESSION_SUFFIXES
            .iter()
            .find(|(c, _)| Some(*c) == self.compression)
        {
            Some((_, suffix)) => f.write_str(suffix),
            None => Ok(()),
        }
    }
}

impl Kind {
    /// The kind a report names (`pg_custom+zstd`); `None` for a name this
    /// version does not know.
    pub fn parse(text: &str) -> Option<Kind> {
        let (name, compression) = COMPRESSION_SUFFIXES
            .iter()
            .find_map(|(c, suffix)| Some((text.strip_suffix(suffix)?, Some(*c))))
            .unwrap_or((text, None));
        let format = FORMAT_NAMES.iter().find(|(_, n)| *n == name)?.0;
        Some(Kind {
            format,
            compression,
        })
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Kind::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a backup kind")))
    }
}

/// Random access to the same artifact, for formats whose metadata is
/// scattered (qcow2 tables, GPT backup header). `None` when the bytes are
/// only available as a stream (inside a compressed file).
pub type ReadAt<'a> = Option<&'a (dyn Fn(u64, &mut [u8]) -> io::Result<usize> + Sync)>;

/// What the artifact is and where it lives, as far as inspectors care.
pub struct Subject<'a> {
    /// File name, for the few formats only a name can suggest (raw images).
    pub name: &'a str,
    pub size: u64,
    pub read_at: ReadAt<'a>,
    /// Local path, when external tools (`qemu-img check`) may look at it.
    pub local_path: Option<&'a std::path::Path>,
}

/// The verdict of a structure check on one artifact.
#[derive(Debug)]
pub struct Inspection {
    pub kind: Kind,
    pub result: Result<(), Damage>,
    /// Unusual but not damaged, e.g. content not recognised.
    pub warning: Option<String>,
    pub evidence: Map<String, Value>,
    /// Directory-format `toc.dat`: the data files it names.
    pub toc_files: Option<Vec<String>>,
    /// The check could not be made within backproof's own limits (a zstd
    /// window larger than allowed): `error` with this reason, never `fail`.
    pub unjudged: Option<String>,
    /// What a configuration-store snapshot was decoded to, for later stages.
    pub decoded: Option<Decoded>,
}

/// Typed facts a structure check decoded from a snapshot: what a restore
/// of it should find again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Raft(raft::RaftFacts),
    Etcd(etcd::EtcdFacts),
    /// Physical PostgreSQL files ([`crate::inspect::physical`]), per file…
    WalSegment(Box<crate::inspect::physical::wal::SegmentFacts>),
    BackupManifest(Box<crate::inspect::physical::manifest::BaseManifest>),
    Control(Result<physical::control::ControlFacts, physical::control::Unusable>),
    /// `backup_label`, or an archived `*.backup` file.
    Label(crate::inspect::physical::control::LabelFacts),
    History(Result<Vec<physical::control::Branch>, physical::control::Unusable>),
    BaseTar(Box<crate::inspect::physical::basetar::TarFacts>),
    /// … and per directory (on `BackupRecord::decoded`).
    BaseBackup(Box<crate::inspect::physical::BaseBackupInfo>),
    WalArchive(Box<crate::inspect::physical::archive::ArchiveFacts>),
}

impl Inspection {
    /// What a passing check vouches for, and what it does not: never
    /// "consistent" for content no check looked at (a tar re-packed with
    /// an altered member passes every check a tar allows).
    pub fn pass_summary(&self) -> String {
        let compression = self
            .kind
            .compression
            .map(|c| format!("{}; ", compression_checked(c)))
            .unwrap_or_default();
        let format = match self.kind.format {
            Format::PgCustom => {
                "table of contents and every data block read and decompressed to the end"
            }
            Format::PgToc => "table of contents read",
            Format::PgTar => {
                "tar headers, member lengths and end-of-archive marker checked, every data member toc.dat names present"
            }
            Format::PgPlain | Format::MysqlDump => {
                "complete (ends with the dump's closing trailer); the statements themselves not checked"
            }
            Format::PgCluster => {
                "complete (every database section's \\restrict pair closed, the cluster trailer at the end); the statements themselves not checked"
            }
            Format::Tar => {
                "header checksums, member lengths and end-of-archive marker checked; member contents not vouched for (tar records no checksum of them)"
            }
            Format::Qcow2 => "image header and cluster tables checked; guest data not vouched for",
            Format::RawImage => {
                "partition table and filesystems checked; file contents not vouched for"
            }
            Format::PgBackupLabel | Format::XtrabackupCheckpoints => "complete",
            Format::InnodbTablespace => "every page's size, number and checksum checked",
            Format::ConsulSnapshot => {
                "archive members and SHA256SUMS checked, meta.json's size matched, state.bin decoded record by record to its end"
            }
            Format::VaultSnapshot => {
                "archive members and SHA256SUMS checked, meta.json's size matched, state.bin's entries framed to its end (values sealed, not decoded; SHA256SUMS.sealed not checked)"
            }
            Format::RaftSnapshot => {
                "archive members and SHA256SUMS checked, meta.json's size matched; state.bin's contents not decoded"
            }
            Format::EtcdSnapshot => {
                "SHA-256 trailer matched, both meta pages and every page of the bucket tree checked"
            }
            Format::WalSegment => {
                "every page header (magic, timeline, address) and every record's CRC checked"
            }
            Format::PgBackupManifest => "parsed, its Manifest-Checksum matched",
            Format::PgControl => "CRC matched",
            Format::PgTimelineHistory => "parsed",
            Format::PgBaseBackupTar | Format::WalArchive => "read to its end",
            Format::PgBaseBackup | Format::MariadbBackup | Format::Unknown => "read to its end",
        };
        format!("{}: {compression}{format}", self.kind)
    }

    fn new(kind: Kind) -> Self {
        Inspection {
            kind,
            result: Ok(()),
            warning: None,
            evidence: Map::new(),
            toc_files: None,
            unjudged: None,
            decoded: None,
        }
    }

    /// Damage from the decoder, unless it is our own memory limit talking.
    fn stream_failed(&mut self, e: io::Error) {
        if e.to_string().contains("too much memory") {
            let limit = 1u64 << ZSTD_WINDOW_LOG_MAX.load(Ordering::Relaxed);
            self.unjudged = Some(format!(
                "the zstd frame needs a larger window than the {} MiB backproof may use: raise --zstd-window-max to decode it",
                limit >> 20
            ));
        } else {
            self.result = Err(Damage::io(e, "decompressing"));
        }
    }
}

/// The largest zstd window (as a power of two) decoders may allocate: the
/// format's maximum by default, so `zstd --long=31` dumps decode; memory
/// grows with the window only as far as the content fills it.
static ZSTD_WINDOW_LOG_MAX: AtomicU32 = AtomicU32::new(31);

/// Lowers (or raises, up to 2 GiB) the zstd window a decoder may use.
pub fn set_zstd_window_max(bytes: u64) {
    let log = (63 - bytes.max(1 << 10).leading_zeros()).min(31);
    ZSTD_WINDOW_LOG_MAX.store(log, Ordering::Relaxed);
}

fn sniff_compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// Recognises a format from the first bytes of (decompressed) content.
pub fn sniff_format(head: &[u8], name: &str) -> Format {
    if head.starts_with(b"PGDMP") {
        // Format code follows magic(5), version(3), int size, offset size.
        return match head.get(10) {
            Some(&pgdump::FORMAT_DIRECTORY) | Some(&pgdump::FORMAT_TAR) => Format::PgToc,
            _ if name == "toc.dat" => Format::PgToc,
            _ => Format::PgCustom,
        };
    }
    if head.starts_with(b"QFI\xfb") {
        return Format::Qcow2;
    }
    if bbolt::looks_like(head) {
        return Format::EtcdSnapshot;
    }
    if crate::inspect::physical::wal::looks_like(head) {
        return Format::WalSegment;
    }
    if crate::inspect::physical::manifest::looks_like(head) {
        return Format::PgBackupManifest;
    }
    if name == "pg_control" && head.len() >= 64 {
        return Format::PgControl;
    }
    if matches!(
        crate::inspect::physical::names::WalName::parse(name),
        Some(crate::inspect::physical::names::WalName::History(_))
    ) {
        return Format::PgTimelineHistory;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        if let Some(f) = raft::sniff(head) {
            return f;
        }
        let first = &head[..100];
        let first = &first[..first.iter().position(|&b| b == 0).unwrap_or(100)];
        return if first == b"toc.dat" {
            Format::PgTar
        } else {
            Format::Tar
        };
    }
    if head.starts_with(b"backup_type = ") {
        return Format::XtrabackupCheckpoints;
    }
    if head.starts_with(b"START WAL LOCATION: ") {
        return Format::PgBackupLabel;
    }
    // InnoDB pages carry no magic; the names are InnoDB's own.
    if innodb::is_tablespace_name(name) && head.len() >= 64 {
        return Format::InnodbTablespace;
    }
    let text = &head[..head.len().min(4096)];
    if contains(text, b"-- PostgreSQL database cluster dump") {
        return Format::PgCluster;
    }
    if contains(text, b"-- PostgreSQL database dump") {
        return Format::PgPlain;
    }
    if contains(text, b"-- MySQL dump") || contains(text, b"-- MariaDB dump") {
        return Format::MysqlDump;
    }
    if image::looks_raw(head, name) {
        return Format::RawImage;
    }
    Format::Unknown
}

/// Sniffs the kind from a head buffer, decompressing a little if needed.
pub fn sniff(head: &[u8], name: &str) -> Kind {
    let compression = sniff_compression(head);
    let inner_name = strip_compression_ext(name);
    let format = match compression {
        None => sniff_format(head, name),
        Some(c) => {
            let mut out = Vec::new();
            let _ = decoder(c, head).and_then(|d| d.take(READ_BUF as u64).read_to_end(&mut out));
            sniff_format(&out, inner_name)
        }
    };
    Kind {
        format,
        compression,
    }
}

/// The compression a name promises.
fn compression_promise(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".tgz") {
        Some("gzip")
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        Some("zstd")
    } else {
        None
    }
}

/// The backup format a name promises, for files whose content matches none.
fn name_promise(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let promises = [
        (".dump", "a pg_dump archive"),
        (".pgdump", "a pg_dump archive"),
        (".backup", "a pg_dump archive"),
        (".sql", "an SQL dump"),
        (".tar", "a tar archive"),
        (".qcow2", "a qcow2 image"),
        ("toc.dat", "a pg_dump table of contents"),
    ];
    promises
        .iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map(|(_, p)| *p)
}

fn strip_compression_ext(name: &str) -> &str {
    for ext in [".gz", ".zst", ".zstd", ".tgz"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s;
        }
    }
    name
}

fn decoder<'a, R: BufRead + 'a>(c: Compression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        // Multi-member (`cat a.gz b.gz`, pigz), then zero padding, as gzip reads it.
        Compression::Gzip => Box::new(gzip::Members::new(r)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(r)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX.load(Ordering::Relaxed))?;
            Box::new(d)
        }
    })
}

/// The same decoding for a restore tool's input: what the inspection
/// accepted (gzip members and zero padding, long zstd windows) restores too.
pub fn decompress<'a, R: Read + Send + 'a>(
    c: Compression,
    r: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::Gzip => Box::new(gzip::Members::new(BufReader::with_capacity(READ_BUF, r))),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(r)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX.load(Ordering::Relaxed))?;
            Box::new(d)
        }
    })
}

/// Inspects one artifact, reading `stream` to the end of whatever the
/// format defines. The caller drains the rest so digests see every byte.
pub fn inspect(stream: &mut dyn Read, subject: &Subject<'_>) -> Inspection {
    // The first bytes are sniffed, then yielded again ahead of the rest:
    // sniffing costs no second read.
    let mut head = Vec::with_capacity(HEAD);
    if let Err(e) = (&mut *stream).take(HEAD as u64).read_to_end(&mut head) {
        let mut i = Inspection::new(Kind::UNKNOWN);
        i.result = Err(Damage::io(e, "reading the first bytes"));
        return i;
    }
    if head.is_empty() {
        let mut i = Inspection::new(Kind::UNKNOWN);
        i.result = Err(Damage("empty file (0 bytes)".into()));
        return i;
    }
    let rest = io::Cursor::new(&head[..]).chain(stream);
    let mut outer = BufReader::with_capacity(READ_BUF, rest);
    let Some(c) = sniff_compression(&head) else {
        if let Some(promised) = compression_promise(subject.name) {
            let mut i = Inspection::new(Kind {
                format: sniff_format(&head, subject.name),
                compression: None,
            });
            i.result = Err(Damage(format!(
                "named like a {promised} file, but has no {promised} header"
            )));
            return i;
        }
        return inspect_format(&mut outer, &head, subject, None);
    };
    let kind = Kind {
        format: Format::Unknown,
        compression: Some(c),
    };
    let dec = match decoder(c, outer) {
        Ok(d) => d,
        Err(e) => {
            let mut i = Inspection::new(kind);
            i.stream_failed(e);
            return i;
        }
    };
    let mut counted = CountingReader {
        inner: dec,
        count: 0,
        label: compression_name(c),
    };
    let (inner_head, inner_rest) = match peek_head_then_error(&mut counted) {
        Ok(x) => x,
        Err(e) => {
            let mut i = Inspection::new(kind);
            i.stream_failed(e);
            return i;
        }
    };
    let mut inner = BufReader::with_capacity(READ_BUF, inner_rest);
    let inner_subject = Subject {
        name: strip_compression_ext(subject.name),
        size: subject.size,
        read_at: None,
        local_path: None,
    };
    let mut i = inspect_format(&mut inner, &inner_head, &inner_subject, Some(c));
    // Decode to the very end: the trailer checksum (gzip CRC32 and length,
    // zstd content checksum) is only checked there.
    if i.result.is_ok()
        && let Err(e) = io::copy(&mut inner, &mut io::sink())
    {
        i.stream_failed(e);
    }
    drop(inner);
    i.evidence
        .insert("decompressed_bytes".into(), json!(counted.count));
    i
}

/// What reading a compressed stream to its end proved.
fn compression_checked(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip CRC and length checked",
        Compression::Zstd => {
            "zstd stream decoded to its end (frame checksums checked where written)"
        }
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// Bytes the sniffers look at: tar's magic sits at 257, an ext superblock's
/// at 1080, dump banners within the first lines.
const HEAD: usize = 4096;

/// Like the sniffing of [`inspect`]'s first bytes, for a decoder's output: when the stream breaks
/// inside the first bytes (a small compressed file cut short), the bytes
/// before the break are still sniffed, and the inspector meets the error
/// where it happened, so it can say which part of the format was cut.
fn peek_head_then_error<'a, R: Read + 'a>(mut r: R) -> io::Result<(Vec<u8>, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(HEAD);
    match (&mut r).take(HEAD as u64).read_to_end(&mut head) {
        Ok(_) => Ok((head.clone(), Box::new(io::Cursor::new(head).chain(r)))),
        Err(e) if head.is_empty() => Err(e),
        Err(e) => {
            let failing = Failing(e.kind(), e.to_string());
            Ok((head.clone(), Box::new(io::Cursor::new(head).chain(failing))))
        }
    }
}

/// A reader that keeps failing with the error a stream broke with.
struct Failing(io::ErrorKind, String);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(self.0, self.1.clone()))
    }
}

/// Counts decompressed bytes and words decoder errors, so that whichever
/// inspector meets them reports a cut or corrupt stream as such.
struct CountingReader<R> {
    inner: R,
    count: u64,
    label: &'static str,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::new(
                e.kind(),
                format!(
                    "{} stream ends early after {} decompressed bytes: truncated",
                    self.label, self.count
                ),
            )),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("corrupt {} stream: {e}", self.label),
            )),
        }
    }
}

/// Substring search: sniffing runs on every file of a tree, and a naive
/// window compare over 4 KiB per banner showed up as a fifth of the time
/// of verifying 20,000 small files.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Small text records (labels, checkpoints) are refused above this.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

fn read_small_text(r: &mut dyn BufRead) -> Result<String, Damage> {
    let mut text = String::new();
    r.take(MAX_RECORD_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| Damage::io(e, "reading the text"))?;
    Ok(text)
}

fn inspect_format(
    r: &mut dyn BufRead,
    head: &[u8],
    subject: &Subject<'_>,
    compression: Option<Compression>,
) -> Inspection {
    let format = sniff_format(head, subject.name);
    let mut i = Inspection::new(Kind {
        format,
        compression,
    });
    let result = match format {
        Format::PgCustom => pgdump::check_custom(r).map(|ev| i.evidence.extend(ev)),
        Format::PgToc => pgdump::read_toc_file(r).map(|(h, toc)| {
            i.evidence.extend(pgdump::header_evidence(&h, &toc));
            i.toc_files = Some(toc.into_iter().filter_map(|e| e.filename).collect());
        }),
        Format::PgPlain => {
            text::check_trailer(r, text::Dialect::Postgres).map(|ev| i.evidence.extend(ev))
        }
        Format::PgCluster => text::check_cluster(r).map(|ev| i.evidence.extend(ev)),
        Format::MysqlDump => {
            text::check_trailer(r, text::Dialect::Mysql).map(|ev| i.evidence.extend(ev))
        }
        Format::Tar | Format::PgTar => {
            tar::check(r, format == Format::PgTar).map(|ev| i.evidence.extend(ev))
        }
        Format::Qcow2 => image::check_qcow2(r, subject).map(|ev| i.evidence.extend(ev)),
        Format::ConsulSnapshot | Format::VaultSnapshot | Format::RaftSnapshot => {
            raft::check(r).map(|facts| {
                // state.bin's content decides, where the head did not reach it.
                i.kind.format = facts.format();
                i.evidence.extend(facts.evidence());
                i.decoded = Some(Decoded::Raft(facts));
            })
        }
        Format::EtcdSnapshot => etcd::check(r).map(|(facts, warning)| {
            i.evidence.extend(facts.evidence());
            i.warning = warning;
            i.decoded = Some(Decoded::Etcd(facts));
        }),
        Format::InnodbTablespace => innodb::check(r).map(|(ev, warning)| {
            i.evidence.extend(ev);
            i.warning = warning;
        }),
        Format::XtrabackupCheckpoints | Format::PgBackupLabel => {
            read_small_text(r).and_then(|text| {
                let ev = if format == Format::PgBackupLabel {
                    i.decoded = Some(Decoded::Label(crate::inspect::physical::control::label(
                        &text,
                    )));
                    dirs::check_backup_label(&text)?
                } else {
                    dirs::check_checkpoints(&text)?
                };
                i.evidence.extend(ev);
                Ok(())
            })
        }
        Format::WalSegment => match crate::inspect::physical::wal::check(r, subject.name) {
            Err(e) => Err(Damage::io(e, "reading the segment")),
            Ok(facts) => {
                i.evidence.insert("records".into(), json!(facts.records));
                i.evidence
                    .insert("end_lsn".into(), json!(facts.end.to_string()));
                let problems = facts.problems.join("; ");
                i.decoded = Some(Decoded::WalSegment(Box::new(facts)));
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(Damage(problems))
                }
            }
        },
        Format::PgBackupManifest => {
            let m = crate::inspect::physical::manifest::parse(r);
            let problems = m.problems.join("; ");
            i.evidence.insert("files".into(), json!(m.files.len()));
            i.decoded = Some(Decoded::BackupManifest(Box::new(m)));
            if problems.is_empty() {
                Ok(())
            } else {
                Err(Damage(problems))
            }
        }
        Format::PgControl | Format::PgTimelineHistory => {
            let mut bytes = Vec::new();
            match r.take(MAX_RECORD_BYTES).read_to_end(&mut bytes) {
                Err(e) => Err(Damage::io(e, "reading")),
                Ok(_) if format == Format::PgControl => {
                    let c = crate::inspect::physical::control::pg_control(&bytes);
                    let result = c.as_ref().map(|_| ()).map_err(|e| Damage(e.to_string()));
                    i.decoded = Some(Decoded::Control(c));
                    result
                }
                Ok(_) => {
                    let h = crate::inspect::physical::control::history(&String::from_utf8_lossy(
                        &bytes,
                    ));
                    let result = h.as_ref().map(|_| ()).map_err(|e| Damage(e.to_string()));
                    i.decoded = Some(Decoded::History(h));
                    result
                }
            }
        }
        // Only directories are these; a file never sniffs as one.
        Format::PgBaseBackup
        | Format::MariadbBackup
        | Format::PgBaseBackupTar
        | Format::WalArchive => Ok(()),
        Format::RawImage => image::check_raw(r, subject).map(|(ev, warning)| {
            i.evidence.extend(ev);
            i.warning = warning;
        }),
        Format::Unknown => match name_promise(subject.name) {
            // A file named like a backup that does not hold one is a broken
            // backup (cut to a few bytes, overwritten), not an unknown file.
            Some(promised) => Err(Damage(format!(
                "named like {promised}, but the content is not: {} bytes of unrecognised data",
                head.len()
            ))),
            None => {
                i.warning = Some(match compression {
                    // The stream's own check did run: say so.
                    Some(c) => format!(
                        "{}, but the content's format is not known: only checksums can vouch for what it holds",
                        compression_checked(c)
                    ),
                    None => "content not recognised as a known backup format: only checksums can vouch for it".into(),
                });
                Ok(())
            }
        },
    };
    i.result = result;
    i
}
