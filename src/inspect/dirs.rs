//! Directory-shaped backups judged as one: a plain `pg_basebackup` copy of
//! a data directory and a mariadb-backup / xtrabackup directory. Their
//! files are mostly opaque to us (relation files, redo logs, Aria tables),
//! often empty, and that is normal; what the directory must hold, and the
//! files whose format we do know, are checked. The evidence lists what was
//! and was not checked, so a pass never claims more than that.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Format, Inspection};

/// The verdict on a directory backup.
#[derive(Debug, Default)]
pub struct DirJudgement {
    /// Empty when the directory passes.
    pub problems: Vec<String>,
    /// Unusual but not damage (files whose pages could not be judged).
    pub warnings: Vec<String>,
    /// What a pass vouches for, for the summary.
    pub checked: String,
    pub evidence: Map<String, Value>,
}

/// One member: its path inside the backup directory and its inspection.
pub type Member<'a> = (&'a str, &'a Inspection);

fn counts(members: &[Member<'_>], sizes: &[u64]) -> Map<String, Value> {
    let mut ev = Map::new();
    ev.insert("files".into(), json!(members.len()));
    ev.insert(
        "empty_files".into(),
        json!(sizes.iter().filter(|&&s| s == 0).count()),
    );
    ev
}

/// Members of a format we know (a dump someone left in the directory) that
/// are damaged. Unrecognised files (relation files, logs, empty tables)
/// are not judged: their bytes may look like anything.
fn damaged_known(members: &[Member<'_>], judged: &[Format]) -> Vec<String> {
    members
        .iter()
        .filter(|(_, i)| i.kind.format != Format::Unknown && !judged.contains(&i.kind.format))
        .filter_map(|(n, i)| {
            i.result
                .as_ref()
                .err()
                .map(|d| format!("{n}: {}: {d}", i.kind))
        })
        .collect()
}

/// `pg_basebackup -Fp`: PG_VERSION, global/pg_control and a sound
/// backup_label; every file read to its end. `sizes` are the members'
/// listed sizes, in the same order.
pub fn judge_pg_base_backup(members: &[Member<'_>], sizes: &[u64]) -> DirJudgement {
    let mut j = DirJudgement {
        evidence: counts(members, sizes),
        ..Default::default()
    };
    let names: BTreeSet<&str> = members.iter().map(|(n, _)| *n).collect();
    for (needed, why) in [
        ("PG_VERSION", "not a data directory"),
        ("global/pg_control", "the server cannot start from it"),
    ] {
        if !names.contains(needed) {
            j.problems.push(format!("{needed} missing: {why}"));
        }
    }
    match members.iter().find(|(n, _)| *n == "backup_label") {
        None => j.problems.push(
            "backup_label missing: the copy would start as a crashed server, from the wrong checkpoint, and be silently inconsistent".into(),
        ),
        Some((_, i)) => match (&i.result, i.kind.format) {
            (Err(d), _) => j.problems.push(format!("backup_label: {d}")),
            (Ok(()), Format::PgBackupLabel) => j.evidence.extend(i.evidence.clone()),
            (Ok(()), _) => j
                .problems
                .push("backup_label: not a backup label (no START WAL LOCATION)".into()),
        },
    }
    j.problems
        .extend(damaged_known(members, &[Format::PgBackupLabel]));
    j.evidence.insert(
        "checked".into(),
        json!([
            "every file read to its end",
            "PG_VERSION, global/pg_control and backup_label present",
            "backup_label complete",
        ]),
    );
    j.evidence.insert(
        "not_checked".into(),
        json!([
            "backup_manifest checksums (a later check)",
            "relation file contents and page checksums",
            "that the WAL needed to make the copy consistent is present",
        ]),
    );
    j.checked =
        "every file readable, backup_label sound; file contents not checked against backup_manifest"
            .into();
    j
}

/// mariadb-backup / xtrabackup: xtrabackup_checkpoints sane, backup-my.cnf
/// and a system tablespace present, every InnoDB page checksum verified.
pub fn judge_mariadb_backup(members: &[Member<'_>], sizes: &[u64]) -> DirJudgement {
    let mut j = DirJudgement {
        evidence: counts(members, sizes),
        ..Default::default()
    };
    match members
        .iter()
        .find(|(n, _)| *n == "xtrabackup_checkpoints")
    {
        None => j.problems.push(
            "xtrabackup_checkpoints missing: the backup's LSN range is unknown and it cannot be prepared".into(),
        ),
        Some((_, i)) => match (&i.result, i.kind.format) {
            (Err(d), _) => j.problems.push(format!("xtrabackup_checkpoints: {d}")),
            (Ok(()), Format::XtrabackupCheckpoints) => j.evidence.extend(i.evidence.clone()),
            (Ok(()), _) => j
                .problems
                .push("xtrabackup_checkpoints: no backup_type line".into()),
        },
    }
    if !members.iter().any(|(n, _)| *n == "backup-my.cnf") {
        j.problems
            .push("backup-my.cnf missing: prepare cannot know the InnoDB settings".into());
    }
    let continued = members.iter().any(|(n, _)| *n == "ibdata2");
    // An incremental backup holds page deltas (ibdata1.delta) instead.
    let incremental = j.evidence.get("backup_type") == Some(&json!("incremental"))
        || members.iter().any(|(n, _)| *n == "ibdata1.delta");
    if !incremental && !members.iter().any(|(n, _)| *n == "ibdata1") {
        j.problems
            .push("no system tablespace (ibdata1): the backup cannot be prepared".into());
    }
    let (mut spaces, mut pages) = (0u64, 0u64);
    for (name, i) in members {
        if i.kind.format != Format::InnodbTablespace {
            // Redo log, Aria/MyISAM/CSV tables (often empty): read, not judged.
            continue;
        }
        spaces += 1;
        match &i.result {
            Err(d) => j.problems.push(format!("{name}: {d}")),
            Ok(()) => {
                let count = |k: &str| i.evidence.get(k).and_then(Value::as_u64).unwrap_or(0);
                pages += count("pages_checksum_verified");
                if *name == "ibdata1" && !continued && count("pages") < count("declared_pages") {
                    j.problems.push(format!(
                        "ibdata1: holds {} pages but its header says the system tablespace has {} (and there is no ibdata2): truncated",
                        count("pages"),
                        count("declared_pages")
                    ));
                } else if let Some(w) = &i.warning {
                    j.warnings.push(format!("{name}: {w}"));
                }
            }
        }
    }
    j.problems.extend(damaged_known(
        members,
        &[Format::InnodbTablespace, Format::XtrabackupCheckpoints],
    ));
    j.evidence
        .insert("innodb_tablespaces".into(), json!(spaces));
    j.evidence
        .insert("innodb_pages_checksum_verified".into(), json!(pages));
    j.evidence.insert(
        "checked".into(),
        json!([
            "every file read to its end",
            "xtrabackup_checkpoints: backup_type and LSN range",
            "backup-my.cnf and the system tablespace present",
            "every InnoDB page: size, number and checksum",
        ]),
    );
    j.evidence.insert(
        "not_checked".into(),
        json!([
            "the redo log copy (only a prepare applies it)",
            "non-InnoDB tables (Aria, MyISAM, CSV)",
        ]),
    );
    j.checked = format!(
        "checkpoints sane, {pages} InnoDB page checksum(s) in {spaces} tablespace(s) verified; redo log and non-InnoDB tables only read (a test restore prepares it)"
    );
    j
}

/// `xtrabackup_checkpoints`: `key = value` lines.
pub fn check_checkpoints(text: &str) -> Result<Map<String, Value>, super::Damage> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim())
        })
    };
    let damage = |m: String| super::Damage(format!("xtrabackup_checkpoints: {m}"));
    let backup_type = get("backup_type").ok_or_else(|| damage("no backup_type".into()))?;
    if ![
        "full-backuped",
        "incremental",
        "log-applied",
        "full-prepared",
    ]
    .contains(&backup_type)
    {
        return Err(damage(format!("unknown backup_type {backup_type:?}")));
    }
    let lsn = |key: &str| -> Result<Option<u64>, super::Damage> {
        get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| damage(format!("{key} = {v:?} is not an LSN")))
            })
            .transpose()
    };
    let from = lsn("from_lsn")?.ok_or_else(|| damage("no from_lsn".into()))?;
    let to = lsn("to_lsn")?.ok_or_else(|| damage("no to_lsn".into()))?;
    let last = lsn("last_lsn")?;
    if from > to {
        return Err(damage(format!("from_lsn {from} is after to_lsn {to}")));
    }
    if backup_type == "full-backuped" && from != 0 {
        return Err(damage(format!(
            "a full backup must start at LSN 0, not {from}"
        )));
    }
    if let Some(last) = last.filter(|&l| l < to) {
        return Err(damage(format!("last_lsn {last} is before to_lsn {to}")));
    }
    let mut ev = Map::new();
    ev.insert("backup_type".into(), json!(backup_type));
    ev.insert("from_lsn".into(), json!(from));
    ev.insert("to_lsn".into(), json!(to));
    if let Some(l) = last {
        ev.insert("last_lsn".into(), json!(l));
    }
    Ok(ev)
}

/// `backup_label`: the lines PostgreSQL needs to start from the copy.
pub fn check_backup_label(text: &str) -> Result<Map<String, Value>, super::Damage> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let mut missing = Vec::new();
    for key in ["START WAL LOCATION:", "CHECKPOINT LOCATION:", "START TIME:"] {
        if get(key).is_none() {
            missing.push(key.trim_end_matches(':'));
        }
    }
    if !missing.is_empty() {
        return Err(super::Damage(format!(
            "backup_label lacks {}: cut short or not written by PostgreSQL",
            missing.join(", ")
        )));
    }
    let mut ev = Map::new();
    for (key, field) in [
        ("START WAL LOCATION:", "start_wal_location"),
        ("CHECKPOINT LOCATION:", "checkpoint_location"),
        ("BACKUP METHOD:", "backup_method"),
        ("BACKUP FROM:", "backup_from"),
        ("START TIME:", "start_time"),
        ("LABEL:", "label"),
    ] {
        if let Some(v) = get(key) {
            ev.insert(field.into(), json!(v));
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoints(text: &str) -> Inspection {
        let mut i = Inspection::new(super::super::Kind {
            format: Format::XtrabackupCheckpoints,
            compression: None,
        });
        i.evidence = check_checkpoints(text).unwrap();
        i
    }

    #[test]
    fn an_incremental_backup_needs_no_ibdata1() {
        let other = Inspection::new(super::super::Kind::UNKNOWN);
        let inc = checkpoints("backup_type = incremental\nfrom_lsn = 100\nto_lsn = 200\n");
        let members = [
            ("xtrabackup_checkpoints", &inc),
            ("backup-my.cnf", &other),
            ("ibdata1.delta", &other),
        ];
        let j = judge_mariadb_backup(&members, &[80, 200, 0]);
        assert!(j.problems.is_empty(), "{:?}", j.problems);
        let full = checkpoints("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 200\n");
        let members = [("xtrabackup_checkpoints", &full), ("backup-my.cnf", &other)];
        let j = judge_mariadb_backup(&members, &[80, 200]);
        assert!(j.problems[0].contains("ibdata1"), "{:?}", j.problems);
    }

    #[test]
    fn a_damaged_dump_inside_a_directory_backup_still_fails() {
        let empty = Inspection {
            result: Err(super::super::Damage("empty file (0 bytes)".into())),
            ..Inspection::new(super::super::Kind::UNKNOWN)
        };
        let mut cut = Inspection::new(super::super::Kind {
            format: Format::MysqlDump,
            compression: None,
        });
        cut.result = Err(super::super::Damage("no trailer".into()));
        let full = checkpoints("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 200\n");
        let other = Inspection::new(super::super::Kind::UNKNOWN);
        let members = [
            ("xtrabackup_checkpoints", &full),
            ("backup-my.cnf", &other),
            ("ibdata1.delta", &other),
            ("mysql/general_log.CSV", &empty),
        ];
        assert!(
            judge_mariadb_backup(&members, &[80, 200, 0, 0])
                .problems
                .is_empty()
        );
        let mut with_dump = members.to_vec();
        with_dump.push(("left-here.sql", &cut));
        let j = judge_mariadb_backup(&with_dump, &[80, 200, 0, 0, 9]);
        assert_eq!(j.problems.len(), 1, "{:?}", j.problems);
        assert!(j.problems[0].starts_with("left-here.sql: mysqldump"));
    }

    #[test]
    fn checkpoints_sanity() {
        let ok = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 47170\nlast_lsn = 47179\n";
        assert_eq!(check_checkpoints(ok).unwrap()["to_lsn"], 47170);
        let bad = "backup_type = full-backuped\nfrom_lsn = 900\nto_lsn = 47170\n";
        assert!(check_checkpoints(bad).is_err());
        let bad = "backup_type = incremental\nfrom_lsn = 900\nto_lsn = 100\n";
        assert!(check_checkpoints(bad).is_err());
        assert!(check_checkpoints("backup_type = weird\n").is_err());
    }
}
