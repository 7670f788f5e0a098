//! A base backup judged from its members' decodings: every file of
//! `backup_manifest` present with its size and checksum, nothing else
//! present but what pg_verifybackup also ignores, the manifest's own
//! checksum, `backup_label` and `global/pg_control` sound. Plain backups'
//! files are the directory's; tar backups' are the tars' members.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::control::{ControlFacts, LabelFacts};
use super::manifest::{self, BaseManifest};
use super::names::WalName;
use super::wal::SegmentFacts;
use super::{BaseBackupInfo, BaseFormat};
use crate::digest::DigestSet;
use crate::finding::{Check, Finding, Status};
use crate::inspect::{Decoded, Format, Inspection};

/// One member of a base backup directory: its path inside it, what its
/// inspection decoded, the digests its read computed, its size.
pub struct BaseMember<'a> {
    pub name: &'a str,
    pub inspection: &'a Inspection,
    pub digests: &'a DigestSet,
    pub size: u64,
}

/// A data-directory file as the backup holds it.
struct Held {
    size: u64,
    /// Per algorithm name, the digest the read computed.
    digest: Option<String>,
}

const REMEDY: &str = "The base backup is damaged or incomplete: take a fresh base backup now, and find out what cut or altered this one (disk, copy job, storage).";

/// The structure and integrity findings of one base backup, and its facts.
pub fn judge(
    subject: &str,
    key: &str,
    format: BaseFormat,
    members: &[BaseMember<'_>],
) -> (Vec<Finding>, BaseBackupInfo) {
    let mut problems: Vec<String> = Vec::new();
    let mut manifest: Option<&BaseManifest> = None;
    let mut label: Option<LabelFacts> = None;
    let mut control: Option<Result<ControlFacts, super::control::Unusable>> = None;
    let mut segments: Vec<(String, SegmentFacts)> = Vec::new();
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut algorithm = None;
    for m in members {
        if let Some(Decoded::BackupManifest(bm)) = &m.inspection.decoded
            && m.name == "backup_manifest"
        {
            manifest = Some(bm);
            algorithm = bm.files.iter().find_map(|f| f.kind.algorithm());
        }
    }
    let mut tars = 0;
    for m in members {
        let i = m.inspection;
        match &i.decoded {
            Some(Decoded::BaseTar(t)) => {
                tars += 1;
                for f in &t.files {
                    held.insert(
                        f.path.clone(),
                        Held {
                            size: f.size,
                            digest: f.digest.clone(),
                        },
                    );
                }
                if t.label.is_some() {
                    label.clone_from(&t.label);
                }
                if t.control.is_some() {
                    control.clone_from(&t.control);
                }
                segments.extend(t.segments.iter().cloned());
            }
            Some(Decoded::Label(l)) if m.name == "backup_label" => label = Some(l.clone()),
            Some(Decoded::Control(c)) if m.name == "global/pg_control" => control = Some(c.clone()),
            Some(Decoded::WalSegment(s)) if m.name.starts_with("pg_wal/") => {
                segments.push((
                    m.name.rsplit('/').next().unwrap_or(m.name).to_string(),
                    (**s).clone(),
                ));
            }
            _ => {}
        }
        if format == BaseFormat::Plain {
            held.insert(
                m.name.to_string(),
                Held {
                    size: m.size,
                    digest: algorithm.and_then(|a| m.digests.get(&a).cloned()),
                },
            );
        }
        if let (Err(d), true) = (
            &i.result,
            i.kind.format != Format::Unknown || i.unjudged.is_some(),
        ) {
            problems.push(format!("{}: {d}", m.name));
        }
        if let Some(why) = &i.unjudged {
            problems.push(format!("{}: not judged: {why}", m.name));
        }
    }
    if format == BaseFormat::Tar
        && !members
            .iter()
            .any(|m| super::basetar::is_backup_tar(m.name) && m.name.starts_with("base.tar"))
    {
        problems.push("base.tar missing: the data directory itself is not in the backup".into());
    }
    if format == BaseFormat::Tar && tars == 0 {
        problems.push("no tar of the backup could be read".into());
    }
    if !held.contains_key("PG_VERSION") {
        problems.push("PG_VERSION missing: not a data directory".into());
    }
    match &control {
        None => problems.push("global/pg_control missing: the server cannot start from it".into()),
        Some(Err(e)) => problems.push(format!("global/pg_control: {e}")),
        Some(Ok(_)) => {}
    }
    match &label {
        None => problems.push("backup_label missing: the copy would start as a crashed server, from the wrong checkpoint, and be silently inconsistent".into()),
        Some(l) if l.start_lsn.is_none() => problems.push("backup_label: no START WAL LOCATION".into()),
        Some(_) => {}
    }
    for (name, s) in &segments {
        if !s.problems.is_empty() && !problems.iter().any(|p| p.contains(name.as_str())) {
            problems.push(format!("pg_wal/{name}: {}", s.problems.join("; ")));
        }
    }

    // Integrity: the manifest against what the backup holds.
    let mut mismatches: Vec<String> = Vec::new();
    let mut checked = 0usize;
    if let Some(m) = manifest {
        for p in &m.problems {
            problems.push(format!("backup_manifest: {p}"));
        }
        let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        for f in &m.files {
            let Some(h) = held.get(&f.path) else {
                mismatches.push(format!(
                    "{}: listed in backup_manifest (line {}) but missing from the backup",
                    f.path, f.line
                ));
                continue;
            };
            if h.size != f.size {
                mismatches.push(format!(
                    "{}: {} bytes, backup_manifest (line {}) says {}",
                    f.path, h.size, f.line, f.size
                ));
                continue;
            }
            match (&f.checksum, &h.digest) {
                (Some(want), Some(got)) if want != got => mismatches.push(format!(
                    "{}: {:?} checksum {got} does not match backup_manifest (line {}): {want}",
                    f.path, f.kind, f.line
                )),
                (Some(_), None) => {
                    mismatches.push(format!("{}: its checksum was not computed", f.path))
                }
                _ => checked += 1,
            }
        }
        for path in held.keys() {
            if !listed.contains(path.as_str()) && !manifest::ignored(path) {
                mismatches.push(format!(
                    "{path}: present in the backup but not in backup_manifest"
                ));
            }
        }
    }

    let system_id = control
        .as_ref()
        .and_then(|c| c.as_ref().ok())
        .map(|c| c.system_id);
    let wal_ranges = manifest.map(|m| m.wal_ranges.clone()).unwrap_or_default();
    let label = label.unwrap_or_default();
    let mut included: Vec<String> = segments
        .iter()
        .filter(|(n, s)| {
            s.problems.is_empty()
                && matches!(
                    WalName::parse(n),
                    Some(WalName::Segment { partial: false, .. })
                )
        })
        .map(|(n, _)| n.clone())
        .collect();
    included.sort();
    let info = BaseBackupInfo {
        key: key.to_string(),
        format,
        system_id,
        timeline: label
            .start_timeline
            .or(wal_ranges.first().map(|r| r.timeline))
            .unwrap_or(1),
        start_lsn: label.start_lsn.or(wal_ranges.first().map(|r| r.start)),
        stop_lsn: wal_ranges.iter().map(|r| r.end).max().or(label.stop_lsn),
        wal_ranges,
        start_time: label.start_time,
        end_time: label.stop_time,
        wal_included: included,
        sound: problems.is_empty() && mismatches.is_empty(),
    };

    let kind = match format {
        BaseFormat::Plain => "pg_basebackup",
        BaseFormat::Tar => "pg_basebackup_tar",
    };
    let mut ev = Map::new();
    // backup_label's lines, as the label inspector words them.
    if let Some(m) = members.iter().find(|m| m.name == "backup_label") {
        ev.extend(m.inspection.evidence.clone());
    }
    ev.insert("kind".into(), json!(kind));
    ev.insert("files".into(), json!(held.len()));
    ev.insert(
        "empty_files".into(),
        json!(held.values().filter(|h| h.size == 0).count()),
    );
    ev.insert(
        "checked".into(),
        json!([
            "every file read to its end",
            "every backup_manifest entry present, with its size and checksum; no file the manifest does not list",
            "backup_manifest's own Manifest-Checksum",
            "backup_label, global/pg_control (CRC) and PG_VERSION present",
            "WAL segments carried in pg_wal: page headers and record CRCs",
        ]),
    );
    ev.insert(
        "not_checked".into(),
        json!(["relation page checksums (a test restore vouches for them)"]),
    );
    ev.insert(
        "base_backup".into(),
        serde_json::to_value(&info).unwrap_or(Value::Null),
    );
    if let Some(id) = system_id {
        // As text: JSON numbers lose 64-bit precision in many readers.
        ev.insert("system_identifier".into(), json!(id.to_string()));
    }
    let structure = if problems.is_empty() {
        Finding::new(
            subject,
            Check::Structure,
            Status::Pass,
            format!(
                "{kind}: backup_label, global/pg_control and PG_VERSION sound{}; relation pages not checked",
                if manifest.is_some() { ", backup_manifest's own checksum matches" } else { "" }
            ),
        )
        .with_evidence(ev.clone())
    } else {
        Finding::new(
            subject,
            Check::Structure,
            Status::Fail,
            format!("{kind}: {}", problems.join("; ")),
        )
        .with("problems", problems.clone())
        .with_evidence(ev.clone())
        .remedy(REMEDY)
    };
    let integrity = match manifest {
        None => Finding::new(
            subject,
            Check::Integrity,
            Status::Warn,
            format!("{kind}: no backup_manifest (made with --no-manifest?): {} file(s) read, their contents not vouched for", held.len()),
        )
        .with_evidence(ev)
        .remedy("Take base backups with a manifest (pg_basebackup's default since PostgreSQL 13), so corruption of any file can be proven."),
        Some(_) if mismatches.is_empty() => Finding::new(
            subject,
            Check::Integrity,
            Status::Pass,
            format!("{kind}: {checked} file(s) match backup_manifest (size and checksum), none missing, none extra"),
        )
        .with("manifest_files_checked", checked)
        .with_evidence(ev),
        Some(_) => Finding::new(
            subject,
            Check::Integrity,
            Status::Fail,
            format!("{kind}: {} ({} problem(s))", mismatches[0], mismatches.len()),
        )
        .with("mismatches", mismatches)
        .with_evidence(ev)
        .remedy(REMEDY),
    };
    (vec![structure, integrity], info)
}
