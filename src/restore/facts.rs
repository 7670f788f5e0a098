//! What one test restore established, typed: the restore finding's evidence
//! is this struct serialized, and every later stage (the restore promise,
//! the compliance export, the next night's row-drop check) reads it back
//! through [`RestoreFacts::from_evidence`], never by evidence key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The facts of one restore. Field names are the evidence keys reports have
/// always shown; absent facts are left out of the evidence (the evidence
/// map sorts its keys, so field order does not matter).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreFacts {
    /// The configured source (or the path named on the command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where the source lives (its location as reports name it): with the
    /// name, the source's identity, since two configs may both call a
    /// source "db". Records without it match no source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Set only on a restore promise's finding: the promise's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The engine's name: "postgres" or "mariadb".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The scratch server, redacted, or "ephemeral".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The scratch database (dropped since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// When the scratch login stops working (PostgreSQL) or may be swept by
    /// any run (every engine), had the teardown missed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_expires: Option<String>,
    /// Starting the ephemeral server, when this restore started it (else 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_start_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    /// Loading the dump, wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// The tool that loaded it (pg_restore, psql, mariadb, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tail of the tool's stderr; left out when it said nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_stderr: Option<String>,
    /// Reading or decoding the dump failed mid-way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// What backproof's sandbox refused (a statement or the tool's
    /// privilege error): the restore did not judge the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_refused: Option<String>,
    /// Full-server dumps: the databases of the dump, each restored into
    /// its own scratch database (row counts are keyed `database.table`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<String>>,
    /// Full-server dumps: the roles created for it, without any attribute
    /// (no SUPERUSER, REPLICATION, CREATEROLE, CREATEDB, BYPASSRLS, LOGIN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The sanity queries after loading, wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity_seconds: Option<f64>,
    /// Exact rows per restored table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_bytes: Option<u64>,
    /// The configured assertions and what each returned (only when some
    /// are configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assertions: Option<Vec<Assertion>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// The row counts of the previous restore of the same source, which the
    /// row-drop check compared against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_row_counts: Option<BTreeMap<String, u64>>,
    /// Why a restored database failed its expectations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
    /// The load failed because backproof's scratch disk filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_full: Option<ScratchFull>,
    /// A configuration-store snapshot: what the restored server holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotFacts>,
    /// A base backup recovered to a point in time: where the replay was
    /// asked to stop and where it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrFacts>,
}

/// What a point-in-time restore of a base backup established. Times are
/// as the server wrote them (UTC, `2026-11-20 03:00:00.123+00`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PitrFacts {
    /// `latest`, or the target time.
    pub target: String,
    /// Why this target when none was named: the latest recoverable instant
    /// of the paired archive, less a margin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_from: Option<String>,
    /// The archive replayed from (read-only); absent: none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_archive: Option<String>,
    /// No archive: recovered to the base backup's consistency point only,
    /// so the target was not tested.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub consistency_only: bool,
    /// The replay reached the target: the server's stop line for a time,
    /// the end of the archive (without a gap) for `latest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<bool>,
    /// `recovery stopping before commit of transaction 727, time ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_line: Option<String>,
    /// The first transaction not replayed (from the stop line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// `pg_last_xact_replay_timestamp()`: the last transaction replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_timestamp: Option<String>,
    /// The server said `archive recovery complete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_complete: Option<bool>,
    /// WAL segments restored from the archive, and the last of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments_restored: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<String>,
    /// The segment the replay asked for and the archive did not hold,
    /// when that cut the replay short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_segment: Option<String>,
    /// The server's own error, when it stopped (`FATAL: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Copying the base backup into the scratch cluster, and replaying
    /// until it was promoted (both inside `restore_seconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_seconds: Option<f64>,
    /// How long before the recovery point (the target time, else the last
    /// replayed transaction) the newest value of the freshness column is:
    /// the data lost at that point, measured from the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_loss_seconds: Option<f64>,
}

/// What a restored configuration store (etcd, OpenBao/Vault) was found to
/// hold. Secrets never appear: not the keys, not the token, not a value
/// read back; only where the operator's secrets were read from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotFacts {
    /// etcd: live keys on the restored member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// etcd: the restored member's revision, and the snapshot's as its
    /// verification decoded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_revision: Option<u64>,
    /// etcd: keys under each required prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<BTreeMap<String, u64>>,
    /// OpenBao/Vault: the mounted secrets engines (`secret/`: `kv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<BTreeMap<String, String>>,
    /// OpenBao/Vault: each required path and whether it read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<BTreeMap<String, bool>>,
    /// Where the unseal keys and the token came from (`file PATH`,
    /// `env NAME`), never the secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseal_keys_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_from: Option<String>,
    /// The restored server's version, as it reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// Where the scratch disk filled and how much the restore had used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScratchFull {
    /// The tool's or server's line that said so, if one did.
    pub sign: Option<String>,
    /// The ephemeral instance's dir (none on a `scratch_url` server).
    pub scratch_dir: Option<String>,
    /// Written under `scratch_dir` when the load failed: the restore
    /// needed more than this.
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub filesystem_bytes: Option<u64>,
}

/// One assertion: its SQL and whether it held, or why it could not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    pub sql: String,
    pub result: AssertionResult,
}

/// `true`/`false`, or the error text (the evidence has always shown either).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AssertionResult {
    Held(bool),
    Error(String),
}

/// The newest value of the freshness column and its age (null when the
/// table is empty or the value is no time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    pub column: String,
    pub newest: Option<String>,
    pub age_seconds: Option<f64>,
}

impl RestoreFacts {
    /// Decodes a restore finding's evidence (unknown keys are ignored, so a
    /// restore promise's finding decodes too: see [`Self::is_restore`]).
    pub fn from_evidence(evidence: &Map<String, Value>) -> Option<RestoreFacts> {
        serde_json::from_value::<RestoreFacts>(Value::Object(evidence.clone())).ok()
    }

    /// False for a restore promise's judgement, which repeats a restore
    /// rather than being one.
    pub fn is_restore(&self) -> bool {
        self.policy.is_none()
    }

    /// The finding's evidence: these facts, serialized.
    pub fn evidence(&self) -> Map<String, Value> {
        // Infallible for this struct (string keys, plain values); an empty
        // map rather than a panic if that ever changed.
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Load plus sanity checks: what the RTO is measured against.
    pub fn total_seconds(&self) -> Option<f64> {
        self.restore_seconds
            .map(|r| r + self.sanity_seconds.unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_round_trips_with_the_keys_reports_show() {
        let facts = RestoreFacts {
            source: Some("appdb".into()),
            engine: Some("postgres".into()),
            target: Some("ephemeral".into()),
            database: Some("backproof_scratch_1_00000000".into()),
            scratch_start_seconds: Some(0.0),
            timeout_seconds: Some(7200.0),
            rto_seconds: Some(3600.0),
            restore_seconds: Some(1.5),
            tool: Some("pg_restore".into()),
            sanity_seconds: Some(0.25),
            row_counts: Some([("orders".to_string(), 3000)].into()),
            table_count: Some(1),
            database_bytes: Some(8192),
            assertions: Some(vec![
                Assertion {
                    sql: "select true".into(),
                    result: AssertionResult::Held(true),
                },
                Assertion {
                    sql: "select x".into(),
                    result: AssertionResult::Error("ERROR: no x".into()),
                },
            ]),
            freshness: Some(Freshness {
                column: "orders.placed_at".into(),
                newest: None,
                age_seconds: None,
            }),
            previous_row_counts: Some([("orders".to_string(), 2900)].into()),
            problems: Some(vec!["a problem".into()]),
            pitr: Some(PitrFacts {
                target: "2026-11-20 03:00:00+00".into(),
                reached: Some(true),
                data_loss_seconds: Some(0.5),
                ..PitrFacts::default()
            }),
            ..RestoreFacts::default()
        };
        let ev = facts.evidence();
        assert_eq!(
            ev["assertions"][1],
            json!({"sql": "select x", "result": "ERROR: no x"})
        );
        assert_eq!(
            ev["freshness"],
            json!({"column": "orders.placed_at", "newest": null, "age_seconds": null})
        );
        assert!(!ev.contains_key("tool_stderr") && !ev.contains_key("input_error"));
        assert_eq!(
            ev["pitr"],
            json!({"target": "2026-11-20 03:00:00+00", "reached": true, "data_loss_seconds": 0.5})
        );
        assert_eq!(RestoreFacts::from_evidence(&ev), Some(facts.clone()));
        assert_eq!(facts.total_seconds(), Some(1.75));
        assert!(RestoreFacts::default().evidence().is_empty());
    }
}
