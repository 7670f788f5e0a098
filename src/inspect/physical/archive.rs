//! A WAL archive directory judged from its files' decodings: which
//! segments are sound, which are damaged (truncated, renamed, altered),
//! which belong to another cluster, and the timeline history files and
//! base backup `.backup` files beside them. Continuity and the window are
//! [`super::window`]'s, once base backups are known.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use super::control::{Branch, LabelFacts};
use super::names::WalName;
use super::wal::{MAGIC_PG15, SegmentFacts};
use crate::finding::{Check, Finding, Status};
use crate::inspect::{Decoded, Inspection};

/// A sound segment of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArchivedSegment {
    pub name: String,
    pub facts: SegmentFacts,
}

/// What one WAL archive holds, for pairing with base backups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveFacts {
    pub key: String,
    /// The system identifier most segments carry.
    pub system_id: Option<u64>,
    pub seg_size: u64,
    pub pg_version: Option<u32>,
    /// Sound segments of this cluster, by (timeline, segment number).
    pub segments: Vec<ArchivedSegment>,
    /// Names of files that failed their checks (not usable for recovery).
    pub damaged: Vec<String>,
    /// Sound segments of another cluster: name and system identifier.
    pub foreign: Vec<(String, u64)>,
    /// Timeline -> its history (where each ancestor ended).
    pub histories: BTreeMap<u32, Vec<Branch>>,
    /// Archived `.backup` files: the server's record of each base backup.
    pub backups: Vec<LabelFacts>,
}

impl ArchiveFacts {
    /// The sound segment with this timeline and number.
    pub fn segment(&self, tli: u32, segno: u64) -> Option<&ArchivedSegment> {
        self.segments
            .binary_search_by(|s| {
                (s.facts.tli, s.facts.segno, s.facts.partial).cmp(&(tli, segno, false))
            })
            .ok()
            .map(|i| &self.segments[i])
    }
}

/// One archive file: its path inside the archive and its inspection.
pub type Member<'a> = (&'a str, &'a Inspection);

/// The archive's structure and integrity findings, and its facts.
pub fn judge(subject: &str, key: &str, members: &[Member<'_>]) -> (Vec<Finding>, ArchiveFacts) {
    let mut facts = ArchiveFacts {
        key: key.to_string(),
        ..Default::default()
    };
    let mut problems: Vec<String> = Vec::new();
    let mut altered: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut sound: Vec<ArchivedSegment> = Vec::new();
    let mut records = 0u64;
    for (path, i) in members {
        let name = path.rsplit('/').next().unwrap_or(path);
        let named = WalName::parse(name);
        match (&i.decoded, &named) {
            (Some(Decoded::WalSegment(s)), _) => {
                records += s.records;
                if s.problems.is_empty() && i.result.is_ok() {
                    sound.push(ArchivedSegment {
                        name: name.to_string(),
                        facts: (**s).clone(),
                    });
                } else {
                    for p in &s.problems {
                        if p.contains("CRC mismatch") {
                            altered.push(format!("{path}: {p}"));
                        } else {
                            problems.push(format!("{path}: {p}"));
                        }
                    }
                    facts.damaged.push(name.to_string());
                }
                if s.magic != MAGIC_PG15 {
                    warnings.push(format!(
                        "{path}: WAL of PostgreSQL {} (page magic {:#06X}), not of PostgreSQL 15",
                        s.pg_version.map(|v| v.to_string()).unwrap_or("?".into()),
                        s.magic
                    ));
                }
            }
            (Some(Decoded::History(h)), Some(WalName::History(tli))) => match h {
                Ok(b) => {
                    facts.histories.insert(*tli, b.clone());
                }
                Err(e) => {
                    problems.push(format!("{path}: {e}"));
                    facts.damaged.push(name.to_string());
                }
            },
            (Some(Decoded::Label(l)), Some(WalName::BackupHistory)) => {
                facts.backups.push(l.clone())
            }
            (_, Some(WalName::Segment { .. })) => {
                let why = match (&i.result, &i.unjudged) {
                    (_, Some(u)) => format!("not judged: {u}"),
                    (Err(d), _) => d.to_string(),
                    (Ok(()), None) => {
                        format!("named like a WAL segment, but holds no WAL ({})", i.kind)
                    }
                };
                problems.push(format!("{path}: {why}"));
                facts.damaged.push(name.to_string());
            }
            (_, Some(WalName::History(_))) => {
                problems.push(format!("{path}: not a timeline history file"));
                facts.damaged.push(name.to_string());
            }
            _ => {}
        }
    }
    // The archive's cluster: the system identifier most segments carry.
    let mut ids: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &sound {
        *ids.entry(s.facts.system_id).or_default() += 1;
    }
    facts.system_id = ids.iter().max_by_key(|(_, n)| **n).map(|(id, _)| *id);
    for s in sound {
        if Some(s.facts.system_id) == facts.system_id {
            facts.seg_size = s.facts.seg_size;
            facts.pg_version = s.facts.pg_version;
            facts.segments.push(s);
        } else {
            problems.push(format!(
                "{}: a segment of another cluster (system identifier {}, the archive's is {}): recovery would refuse it",
                s.name,
                s.facts.system_id,
                facts.system_id.unwrap_or_default()
            ));
            facts.foreign.push((s.name.clone(), s.facts.system_id));
            facts.damaged.push(s.name);
        }
    }
    facts
        .segments
        .sort_by_key(|s| (s.facts.tli, s.facts.segno, s.facts.partial));
    facts.damaged.sort();

    let timelines: BTreeSet<u32> = facts.segments.iter().map(|s| s.facts.tli).collect();
    let evidence = json!({
        "kind": "wal_archive",
        "segments": facts.segments.len(),
        "timelines": timelines,
        "history_files": facts.histories.keys().collect::<Vec<_>>(),
        "backup_files": facts.backups.len(),
        "records_crc_checked": records,
        "system_identifier": facts.system_id.map(|i| i.to_string()),
        "damaged": facts.damaged,
    });
    let ev = evidence.as_object().cloned().unwrap_or_default();
    let remedy = "These WAL files cannot be replayed: point-in-time recovery stops before them. Find out what altered or replaced them, restore them from a copy if one exists, and take a fresh base backup now so the window starts after them.";
    let structure = if !problems.is_empty() {
        Finding::new(
            subject,
            Check::Structure,
            Status::Fail,
            format!("wal_archive: {}", problems.join("; ")),
        )
        .with("problems", problems)
        .with_evidence(ev.clone())
        .remedy(remedy)
    } else if !warnings.is_empty() {
        Finding::new(
            subject,
            Check::Structure,
            Status::Warn,
            format!("wal_archive: {}", warnings.join("; ")),
        )
        .with("warnings", warnings)
        .with_evidence(ev.clone())
        .remedy("Check that the archive belongs to the server version its base backups are of.")
    } else {
        Finding::new(
            subject,
            Check::Structure,
            Status::Pass,
            format!(
                "wal_archive: {} segment(s) on timeline(s) {:?}: every page header checked against its name (timeline, address, system identifier, segment size)",
                facts.segments.len(),
                timelines
            ),
        )
        .with_evidence(ev.clone())
    };
    let integrity = if altered.is_empty() {
        Finding::new(
            subject,
            Check::Integrity,
            Status::Pass,
            format!("wal_archive: {records} record(s), every record's CRC matches"),
        )
        .with_evidence(ev)
    } else {
        Finding::new(
            subject,
            Check::Integrity,
            Status::Fail,
            format!(
                "wal_archive: {} ({} altered record(s))",
                altered[0],
                altered.len()
            ),
        )
        .with("altered", altered)
        .with_evidence(ev)
        .remedy(remedy)
    };
    (vec![structure, integrity], facts)
}
