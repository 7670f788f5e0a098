//! The small files a physical backup is anchored by: `global/pg_control`
//! (the cluster's system identifier), `backup_label` and the archive's
//! `*.backup` files (where the backup starts and stops in the WAL), and
//! timeline `.history` files (where each timeline branched off).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use super::names::Lsn;

/// Why one of these small files cannot be used, worded for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// What `global/pg_control` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ControlFacts {
    pub system_id: u64,
    /// `pg_control_version` (1300 for PostgreSQL 13 to 16).
    pub version: u32,
    /// The timeline of its latest checkpoint.
    pub timeline: u32,
}

/// Reads pg_control's fixed head and checks its CRC. The CRC sits right
/// after the struct, whose size differs between releases, so the offset
/// is found where the CRC of the bytes before it matches.
pub fn pg_control(bytes: &[u8]) -> Result<ControlFacts, Unusable> {
    if bytes.len() < 64 {
        return Err(Unusable(format!(
            "{} bytes is too short for pg_control",
            bytes.len()
        )));
    }
    let u32at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4"));
    let crc_ok = (56..bytes.len().min(1024) - 4)
        .step_by(4)
        .any(|o| crc32c::crc32c(&bytes[..o]) == u32at(o));
    if !crc_ok {
        return Err(Unusable(
            "its CRC does not match its contents (damaged)".into(),
        ));
    }
    Ok(ControlFacts {
        system_id: u64::from_le_bytes(bytes[..8].try_into().expect("8")),
        version: u32at(8),
        timeline: u32at(48),
    })
}

/// `backup_label` or an archived `*.backup` file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LabelFacts {
    pub start_lsn: Option<Lsn>,
    pub stop_lsn: Option<Lsn>,
    pub checkpoint_lsn: Option<Lsn>,
    pub start_time: Option<DateTime<Utc>>,
    pub stop_time: Option<DateTime<Utc>>,
    pub start_timeline: Option<u32>,
    pub stop_timeline: Option<u32>,
    pub label: Option<String>,
}

/// `2026-11-20 03:00:00 UTC` (PostgreSQL writes the zone's abbreviation;
/// only UTC/GMT and numeric offsets are unambiguous).
fn label_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    let (time, zone) = value.rsplit_once(' ')?;
    matches!(zone, "UTC" | "GMT")
        .then(|| NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").ok())
        .flatten()
        .map(|t| Utc.from_utc_datetime(&t))
}

pub fn label(text: &str) -> LabelFacts {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    // "0/3000028 (file 000000010000000000000003)"
    let lsn = |key: &str| get(key).and_then(|v| Lsn::parse(v.split(' ').next()?));
    LabelFacts {
        start_lsn: lsn("START WAL LOCATION:"),
        stop_lsn: lsn("STOP WAL LOCATION:"),
        checkpoint_lsn: lsn("CHECKPOINT LOCATION:"),
        start_time: get("START TIME:").and_then(label_time),
        stop_time: get("STOP TIME:").and_then(label_time),
        start_timeline: get("START TIMELINE:").and_then(|v| v.parse().ok()),
        stop_timeline: get("STOP TIMELINE:").and_then(|v| v.parse().ok()),
        label: get("LABEL:").map(str::to_string),
    }
}

/// One line of a timeline history file: timeline `parent` ended at
/// `switchpoint`, where the file's own timeline begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Branch {
    pub parent: u32,
    pub switchpoint: Lsn,
}

/// `TTTTTTTT.history`: `parentTLI <tab> X/Y <tab> reason` lines, oldest
/// first; blank lines and `#` comments allowed, as the server reads it.
pub fn history(text: &str) -> Result<Vec<Branch>, Unusable> {
    let mut out: Vec<Branch> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let parent = fields.next().and_then(|t| t.parse::<u32>().ok());
        let switchpoint = fields.next().and_then(Lsn::parse);
        let (Some(parent), Some(switchpoint)) = (parent, switchpoint) else {
            return Err(Unusable(format!(
                "line {}: not `timeline LSN reason`",
                n + 1
            )));
        };
        if out.last().is_some_and(|b| b.parent >= parent) {
            return Err(Unusable(format!(
                "line {}: timeline IDs must increase",
                n + 1
            )));
        }
        out.push(Branch {
            parent,
            switchpoint,
        });
    }
    if out.is_empty() {
        return Err(Unusable("no timeline lines".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_histories() {
        let l = label(
            "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nSTOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)\nSTART TIME: 2026-12-02 10:21:51 UTC\nSTART TIMELINE: 1\n",
        );
        assert_eq!(l.start_lsn, Some(Lsn(0x5000028)));
        assert_eq!(l.stop_lsn, Some(Lsn(0x5000100)));
        assert_eq!(l.start_timeline, Some(1));
        assert!(l.start_time.is_some());
        let h = history("1\t0/70000D8\tno recovery target specified\n").unwrap();
        assert_eq!(h[0].switchpoint, Lsn(0x70000D8));
        assert!(history("garbage\n").is_err());
        assert!(history("2\t0/1\tx\n1\t0/2\ty\n").is_err());
    }
}
