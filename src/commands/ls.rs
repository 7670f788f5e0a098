//! `backproof ls PATH`: what backups are there, newest first.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::CommandError;
use crate::catalog::{self, Backup, Layout, TimestampFrom};
use crate::inspect::{self, Kind};
use crate::source::{self, S3Options};

pub struct LsRequest<'a> {
    pub path: &'a Path,
    pub timestamp_pattern: Option<&'a str>,
    pub s3: &'a S3Options,
    /// Only what this shard would read (a preview of a `--shard` split).
    pub shard: crate::shard::Shard,
    /// Tell a single-file backup's kind from its first bytes (one read, a
    /// GET on S3, per backup); else only the listing is read.
    pub read_heads: bool,
}

/// One line of `backproof ls`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub path: String,
    /// `None`: a single-file backup whose bytes were not read (`--no-read`).
    pub kind: Option<Kind>,
    pub layout: Layout,
    pub timestamp: DateTime<Utc>,
    pub timestamp_from: TimestampFrom,
    pub age_hours: f64,
    pub size: u64,
    pub files: usize,
    /// Checksums that manifests promise: "sha256 (SHA256SUMS)".
    pub checksums: Vec<String>,
}

/// `backproof ls PATH`: what backups are there, newest first. Reads only the
/// first bytes of each file to tell its kind, and none with `read_heads` off.
pub fn list(req: &LsRequest) -> Result<Vec<Listed>, CommandError> {
    let pattern = &super::timestamp_pattern(req.timestamp_pattern)?;
    let target = source::resolve(req.path, req.s3)?;
    let scope = catalog::plan::Scope {
        pattern,
        filter: &catalog::Filter::default(),
        shard: req.shard,
        whole: false,
    };
    // `ls` holds what it lists, to sort it: a stream (two listings) only
    // pays when a shard drops most of it.
    let limit = match req.shard.is_whole() {
        true => usize::MAX,
        false => catalog::plan::IN_MEMORY_UP_TO,
    };
    let catalog = catalog::plan::plan(
        target.source.as_ref(),
        target.only.as_deref(),
        &scope,
        limit,
    )?
    .catalog;
    let now = Utc::now();
    let mut out = Vec::new();
    let heads = match req.read_heads {
        true => sniff_files(target.source.as_ref(), &catalog.backups),
        false => vec![None; catalog.backups.len()],
    };
    for (b, head) in catalog.backups.iter().zip(heads) {
        // One entry per backup, whatever its layout.
        let kind = match b.layout.kind() {
            Some(k) => Some(k),
            None if b.layout == Layout::File && !req.read_heads => None,
            None => Some(head.unwrap_or(Kind::UNKNOWN)),
        };
        let mut checksums: Vec<String> = b
            .expected
            .values()
            .flatten()
            .map(|e| {
                format!(
                    "{} ({})",
                    e.algorithm,
                    e.manifest.rsplit('/').next().unwrap_or(&e.manifest)
                )
            })
            .collect();
        checksums.sort();
        checksums.dedup();
        out.push(Listed {
            path: target.source.subject(&b.key),
            kind,
            layout: b.layout,
            timestamp: b.timestamp,
            timestamp_from: b.timestamp_from,
            age_hours: (now - b.timestamp).num_seconds() as f64 / 3600.0,
            size: b.size,
            files: b.members.len(),
            checksums,
        });
    }
    // Snapshots with no bytes to read (RDS): listed from the provider's
    // facts, their checksums the provider's own business.
    if let Some(Ok(facts)) = target.source.cloud_facts() {
        let shown: std::collections::BTreeSet<String> =
            catalog.backups.iter().map(|b| b.key.clone()).collect();
        for s in facts.snapshots().filter(|s| !shown.contains(&s.key)) {
            out.push(Listed {
                path: target.source.subject(&s.key),
                kind: Some(Kind::UNKNOWN),
                layout: Layout::File,
                timestamp: s.created,
                timestamp_from: TimestampFrom::Label,
                age_hours: (now - s.created).num_seconds() as f64 / 3600.0,
                size: s.size_gib << 30,
                files: 0,
                checksums: vec![format!(
                    "{} {}",
                    s.kind.as_deref().unwrap_or("snapshot"),
                    s.state
                )],
            });
        }
    }
    out.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// `backproof ls --count`: what a shard owns of a source.
#[derive(Debug, Serialize)]
pub struct Counted {
    pub location: String,
    pub shard: String,
    /// Backups this shard owns.
    pub backups: usize,
    pub bytes: u64,
    /// Backups the source holds, across every shard.
    pub listed: usize,
    /// Planned as a stream (a listing too long to hold).
    pub streamed: bool,
}

/// Plans a source as `run --shard` does and counts what the shard owns,
/// keeping no backup: the plan's own time and memory.
pub fn count(req: &LsRequest) -> Result<Counted, CommandError> {
    let pattern = &super::timestamp_pattern(req.timestamp_pattern)?;
    let target = source::resolve(req.path, req.s3)?;
    let scope = catalog::plan::Scope {
        pattern,
        filter: &catalog::Filter::default(),
        shard: req.shard,
        whole: false,
    };
    let (mut backups, mut bytes) = (0, 0);
    let planned = catalog::plan::plan_each(
        target.source.as_ref(),
        target.only.as_deref(),
        &scope,
        catalog::plan::IN_MEMORY_UP_TO,
        &mut |b| {
            backups += 1;
            bytes += b.size;
        },
    )?;
    Ok(Counted {
        location: target.source.location(),
        shard: req.shard.to_string(),
        backups,
        bytes,
        listed: planned.listed,
        streamed: planned.streamed,
    })
}

/// `ls --count` as JSON for `--format json`, else as one line.
pub fn render_count(c: &Counted, format: crate::report::Format) -> String {
    match format {
        crate::report::Format::Json => serde_json::to_string_pretty(c).unwrap_or_default() + "\n",
        _ => format!(
            "shard {} owns {} of {} backups ({}) in {}\n",
            c.shard,
            c.backups,
            c.listed,
            crate::report::text::human_bytes(c.bytes),
            crate::escape::printable(&c.location),
        ),
    }
}

/// The kind of each single-file backup (`None` for the others), from its
/// first 64 KiB. Heads are small reads, so the backups are split between
/// threads, each reusing one buffer and reading no more than the listed size.
fn sniff_files(source: &dyn source::Storage, backups: &[Backup]) -> Vec<Option<Kind>> {
    const HEAD: usize = 64 * 1024;
    // A remote head costs a round trip, so many requests in flight. A local
    // one costs system calls when cached, but a disk read when not (the
    // usual case for a store's many heads): 8 threads per core read 1,000,000
    // cold heads in 41 s against 49-53 s with 2, and cost 5% when cached.
    let remote = (backups.iter().flat_map(|b| b.members.first()))
        .next()
        .is_some_and(|m| source.local_path(&m.key).is_none());
    let threads = match remote {
        true => 16,
        false => std::thread::available_parallelism().map_or(2, |n| n.get() * 8),
    };
    let per = backups.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = backups
            .chunks(per)
            .map(|part| {
                let len = part.len();
                let thread = scope.spawn(move || {
                    let mut head = vec![0u8; HEAD];
                    part.iter()
                        .map(|b| {
                            let m = b.members.first().filter(|_| b.layout == Layout::File)?;
                            let want = usize::try_from(m.size).map_or(HEAD, |s| s.min(HEAD));
                            let n = match want {
                                0 => 0,
                                _ => source.read_at(m, 0, &mut head[..want]).unwrap_or(0),
                            };
                            Some(inspect::sniff(&head[..n], m.file_name()))
                        })
                        .collect::<Vec<_>>()
                });
                (len, thread)
            })
            .collect();
        // A thread that panicked leaves its part unknown, in its place.
        parts
            .into_iter()
            .flat_map(|(len, t)| t.join().unwrap_or_else(|_| vec![None; len]))
            .collect()
    })
}

/// The listing as JSON for `--format json`, else as the table.
pub fn render(list: &[Listed], format: crate::report::Format) -> String {
    match format {
        crate::report::Format::Json => {
            serde_json::to_string_pretty(list).unwrap_or_default() + "\n"
        }
        _ => render_listing(list),
    }
}

/// `ls` as a table, newest first. Written row by row into one buffer,
/// with the time format parsed once: a million rows are a million lines.
pub fn render_listing(list: &[Listed]) -> String {
    use std::fmt::Write;
    let stamp_format: Vec<chrono::format::Item> =
        chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M").collect();
    let mut out = String::with_capacity(list.len() * 100 + 128);
    let _ = writeln!(
        out,
        "{:<17} {:<17} {:>10} {:>8}  {:<24} PATH",
        "KIND", "TIMESTAMP", "SIZE", "AGE", "CHECKSUMS"
    );
    let (mut kind, mut stamp, mut age, mut sums) =
        (String::new(), String::new(), String::new(), String::new());
    for l in list {
        kind.clear();
        let _ = match l.kind {
            Some(k) => write!(kind, "{k}"),
            None => write!(kind, "-"),
        };
        stamp.clear();
        let _ = write!(
            stamp,
            "{}",
            l.timestamp.format_with_items(stamp_format.iter())
        );
        if l.timestamp_from == TimestampFrom::Mtime {
            stamp.push('*');
        }
        age.clear();
        let _ = match l.age_hours < 48.0 {
            true => write!(age, "{:.0}h", l.age_hours),
            false => write!(age, "{:.0}d", l.age_hours / 24.0),
        };
        sums.clear();
        match l.checksums.is_empty() {
            true => sums.push('-'),
            false => {
                for (i, c) in l.checksums.iter().enumerate() {
                    if i > 0 {
                        sums.push_str(", ");
                    }
                    sums.push_str(c);
                }
            }
        }
        let _ = writeln!(
            out,
            "{kind:<17} {stamp:<17} {:>10} {age:>8}  {sums:<24} {}",
            crate::report::text::human_bytes(l.size),
            crate::escape::printable(&l.path)
        );
    }
    if list
        .iter()
        .any(|l| l.timestamp_from == TimestampFrom::Mtime)
    {
        out.push_str("* timestamp from modification time: no date found in the name\n");
    }
    if list.iter().any(|l| l.kind.is_none()) {
        out.push_str("- kind not read (--no-read)\n");
    }
    out
}
