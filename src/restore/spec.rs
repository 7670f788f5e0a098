//! What the configuration (`[sources.restore]`) and the command line ask
//! of a restore.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::engine::{PitrSpec, PitrTarget, SnapshotSpec, TargetTimeError};
use super::registry::Engine;
use crate::redact::redact;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("freshness_column {0:?} must be \"table.column\"")]
    FreshnessColumn(String),
    #[error("max_row_drop {0} must be between 0 and 1")]
    MaxRowDrop(f64),
    /// The URL is shown redacted.
    #[error("scratch_url must be a {schemes} URL, not {url:?}")]
    ScratchUrl { schemes: String, url: String },
    /// The value is never shown: it may be the secret itself.
    #[error(
        "{0} must be the name of an environment variable (letters, digits, _), not a key or token (the value is not shown)"
    )]
    EnvName(&'static str),
    #[error("target_time {0}")]
    TargetTime(#[source] TargetTimeError),
    #[error("target must be \"latest\", not {0:?} (a point in time is target_time = \"...\")")]
    Target(String),
    #[error("target = \"latest\" and target_time {0:?} contradict each other: give one")]
    BothTargets(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// The newest restorable backup of each series (nightly cost).
    #[default]
    Newest,
    All,
}

/// `[sources.restore]`: how to restore a source and what the result must
/// look like.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    /// Default: from the dump kind (PostgreSQL formats, or mysqldump SQL).
    pub engine: Option<Engine>,
    /// A server where backproof may create and drop its own databases;
    /// without it an ephemeral instance is started.
    pub scratch_url: Option<String>,
    /// Promised recovery time: a restore (load plus sanity) over it fails.
    #[serde(default, with = "humantime_serde")]
    pub rto: Option<Duration>,
    /// Restore timeout; default twice the RTO, else 6 h.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub which: Which,
    /// Restore targets: only backups matching this glob (key or name);
    /// validated with the config (see `config.rs`).
    pub pattern: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub required_tables: Vec<String>,
    #[serde(default)]
    pub min_rows: BTreeMap<String, u64>,
    /// SQL that must return true (first column of the first row).
    #[serde(default)]
    pub assertions: Vec<String>,
    /// `table.column`: the newest value and its age go into the evidence.
    pub freshness_column: Option<String>,
    /// Share of rows a table may lose against the previous restore.
    pub max_row_drop: Option<f64>,
    /// etcd snapshots: key prefixes that must hold at least one key.
    #[serde(default)]
    pub required_prefixes: Vec<String>,
    /// etcd snapshots: the fewest live keys the restored member may hold.
    pub min_keys: Option<u64>,
    /// OpenBao/Vault snapshots: mounts that must exist (`secret/`).
    #[serde(default)]
    pub required_mounts: Vec<String>,
    /// OpenBao/Vault snapshots: paths that must read back
    /// (`secret/data/app/db`).
    #[serde(default)]
    pub required_paths: Vec<String>,
    /// OpenBao/Vault snapshots: a file holding the snapshot's unseal key
    /// shares (one per line, or `bao operator init -format=json` output).
    pub unseal_keys_file: Option<std::path::PathBuf>,
    /// ... or the name of an environment variable holding them.
    pub unseal_keys_env: Option<String>,
    /// A token of the snapshot's cluster to read mounts and paths with (a
    /// file, or an environment variable's name); without it, the
    /// `root_token` of an init-JSON unseal keys file.
    pub root_token_file: Option<std::path::PathBuf>,
    pub root_token_env: Option<String>,
    /// Base backups: replay the WAL archive to its end (`"latest"`, the
    /// default) ...
    pub target: Option<String>,
    /// ... or to this time (`"2026-11-20 03:00:00+00"`, offset required).
    pub target_time: Option<String>,
    /// Base backups: the database of the cluster that assertions and the
    /// freshness column run in (default: the only one besides `postgres`).
    pub database: Option<String>,
}

impl RestoreSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(c) = &self.freshness_column
            && c.split('.').count() < 2
        {
            return Err(SpecError::FreshnessColumn(c.clone()));
        }
        if let Some(d) = self.max_row_drop
            && !(0.0..=1.0).contains(&d)
        {
            return Err(SpecError::MaxRowDrop(d));
        }
        for (key, name) in [
            ("unseal_keys_env", &self.unseal_keys_env),
            ("root_token_env", &self.root_token_env),
        ] {
            if let Some(n) = name
                && (n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(SpecError::EnvName(key));
            }
        }
        self.pitr_target()?;
        if let Some(u) = &self.scratch_url
            && !Engine::takes_url(u)
        {
            return Err(SpecError::ScratchUrl {
                schemes: Engine::url_schemes_text(),
                url: redact(u),
            });
        }
        Ok(())
    }
}

impl RestoreSpec {
    /// `target` / `target_time`, checked.
    fn pitr_target(&self) -> Result<PitrTarget, SpecError> {
        if let Some(t) = &self.target
            && t != "latest"
        {
            return Err(SpecError::Target(t.clone()));
        }
        match (&self.target, &self.target_time) {
            (Some(_), Some(t)) => Err(SpecError::BothTargets(t.clone())),
            (_, Some(t)) => PitrTarget::parse_time(t).map_err(SpecError::TargetTime),
            _ => Ok(PitrTarget::Latest),
        }
    }

    /// What a point-in-time restore is asked for: the command line first,
    /// then the config, then what the verification paired the backup with.
    /// `latest` (the default) is the latest instant the paired archive
    /// recovers to, less [`LATEST_MARGIN`], so that the replay must stop
    /// at a named time and say so; without a window (or one too short for
    /// the margin), the end of the archive.
    pub fn pitr(&self, overrides: &RestoreOverrides, paired: Option<&PitrPairing>) -> PitrSpec {
        // Validated with the config; an invalid one never gets here.
        let asked = overrides
            .target
            .unwrap_or_else(|| self.pitr_target().unwrap_or_default());
        let margin = chrono::Duration::from_std(LATEST_MARGIN).unwrap_or_default();
        let (target, target_from) = match (asked, paired) {
            (PitrTarget::Latest, Some(p)) => match (p.earliest, p.latest) {
                (Some(first), Some(last)) if last - margin >= first => {
                    let t = last - margin;
                    (
                        PitrTarget::Time(t),
                        Some(format!(
                            "latest: the latest recoverable instant {} less {}",
                            last.format("%Y-%m-%d %H:%M:%S%.f+00"),
                            humantime::format_duration(LATEST_MARGIN)
                        )),
                    )
                }
                _ => (PitrTarget::Latest, None),
            },
            (t, _) => (t, None),
        };
        PitrSpec {
            target,
            target_from,
            // Only an archive verified and paired by system identifier:
            // replaying a foreign cluster's WAL would prove nothing.
            wal_archive: paired.and_then(|p| p.wal_archive.clone()),
        }
    }

    /// What a snapshot engine is asked for.
    pub fn snapshot(&self) -> SnapshotSpec {
        SnapshotSpec {
            required_prefixes: self.required_prefixes.clone(),
            min_keys: self.min_keys,
            required_mounts: self.required_mounts.clone(),
            required_paths: self.required_paths.clone(),
            unseal_keys_file: self.unseal_keys_file.clone(),
            unseal_keys_env: self.unseal_keys_env.clone(),
            root_token_file: self.root_token_file.clone(),
            root_token_env: self.root_token_env.clone(),
        }
    }
}

/// How far before the latest recoverable instant a `latest` restore stops:
/// far enough that the replay stops at a commit, not at the archive's end.
pub const LATEST_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// What the verification paired a base backup with (by system identifier):
/// its WAL archive and the window a recovery from it can stop in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PitrPairing {
    /// A local archive; an archive elsewhere (S3) is not replayed from.
    pub wal_archive: Option<std::path::PathBuf>,
    pub earliest: Option<chrono::DateTime<chrono::Utc>>,
    pub latest: Option<chrono::DateTime<chrono::Utc>>,
}

/// Command-line overrides, applied on top of each source's spec.
#[derive(Clone, Debug, Default)]
pub struct RestoreOverrides {
    pub scratch_url: Option<String>,
    pub rto: Option<Duration>,
    pub timeout: Option<Duration>,
    /// `--target-time`: where point-in-time restores stop.
    pub target: Option<PitrTarget>,
    /// `--restore-slots`: at most this many restore sessions with scratch
    /// servers at once on this machine.
    pub slots: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_url_of_no_engine_is_refused_redacted() {
        let spec = RestoreSpec {
            scratch_url: Some("http://u:p@ss@host/x".into()),
            ..RestoreSpec::default()
        };
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            r#"scratch_url must be a postgres:// or mysql:// URL, not "http://u:***@host/x""#
        );
        for ok in [
            "postgres://h/db",
            "postgresql://h/db",
            "mysql://h/",
            "mariadb://h/",
        ] {
            let spec = RestoreSpec {
                scratch_url: Some(ok.into()),
                ..RestoreSpec::default()
            };
            assert_eq!(spec.validate(), Ok(()), "{ok}");
        }
    }

    #[test]
    fn point_in_time_targets_are_checked_naming_their_key() {
        let spec = |target: Option<&str>, time: Option<&str>| RestoreSpec {
            target: target.map(str::to_string),
            target_time: time.map(str::to_string),
            ..RestoreSpec::default()
        };
        let err = |s: RestoreSpec| s.validate().unwrap_err().to_string();
        assert!(
            err(spec(None, Some("2026-11-20 03:00")))
                .starts_with("target_time \"2026-11-20 03:00\" is not a time with a UTC offset"),
            "{}",
            err(spec(None, Some("2026-11-20 03:00")))
        );
        assert!(err(spec(None, Some("2026-11-20 03:00:00"))).contains("UTC offset"));
        assert!(err(spec(Some("newest"), None)).starts_with("target must be \"latest\""));
        assert!(err(spec(Some("latest"), Some("2026-11-20 03:00:00+00"))).contains("contradict"));
        let none = RestoreOverrides::default();
        assert_eq!(
            spec(None, None).pitr(&none, None).target,
            PitrTarget::Latest
        );
        assert_eq!(
            spec(Some("latest"), None).pitr(&none, None).target,
            PitrTarget::Latest
        );
        let at = |t: &str| spec(None, Some(t)).pitr(&none, None).target.describe();
        assert_eq!(at("2026-11-20 03:00:00+00"), "2026-11-20 03:00:00+00");
        assert_eq!(
            at("2026-11-20 05:30:00.25+02:30"),
            "2026-11-20 03:00:00.250+00"
        );
        assert_eq!(at("2026-11-20T03:00:00Z"), "2026-11-20 03:00:00+00");
        assert_eq!(at("2026-11-20 03:00:00 UTC"), "2026-11-20 03:00:00+00");
        assert_eq!(at("2026-11-20 04:00:00+0100"), "2026-11-20 03:00:00+00");
        // The command line wins over the config.
        let cli = RestoreOverrides {
            target: Some(PitrTarget::Latest),
            ..RestoreOverrides::default()
        };
        let s = spec(None, Some("2026-11-20 03:00:00+00"));
        assert_eq!(
            s.pitr(&cli, None),
            PitrSpec {
                target: PitrTarget::Latest,
                target_from: None,
                wal_archive: None
            }
        );
    }

    #[test]
    fn latest_is_the_paired_window_s_end_less_a_margin() {
        let t = |s: &str| crate::restore::engine::parse_instant(s).unwrap();
        let paired = PitrPairing {
            wal_archive: Some("/paired".into()),
            earliest: Some(t("2026-11-20 01:00:00+00")),
            latest: Some(t("2026-11-20 03:00:00.5+00")),
        };
        let none = RestoreOverrides::default();
        let got = RestoreSpec::default().pitr(&none, Some(&paired));
        assert_eq!(got.target, PitrTarget::Time(t("2026-11-20 02:59:59.5+00")));
        assert_eq!(got.wal_archive, Some("/paired".into()));
        assert!(
            got.target_from
                .as_deref()
                .is_some_and(|f| f.contains("2026-11-20 03:00:00.500+00 less 1s")),
            "{got:?}"
        );
        // A named time wins over the window.
        let named = RestoreSpec {
            target_time: Some("2026-11-20 02:00:00+00".into()),
            ..RestoreSpec::default()
        }
        .pitr(&none, Some(&paired));
        assert_eq!(named.target, PitrTarget::Time(t("2026-11-20 02:00:00+00")));
        assert_eq!(named.target_from, None);
        assert_eq!(named.wal_archive, Some("/paired".into()));
        // A window shorter than the margin: the end of the archive.
        let short = PitrPairing {
            earliest: paired.latest,
            ..paired.clone()
        };
        assert_eq!(
            RestoreSpec::default().pitr(&none, Some(&short)).target,
            PitrTarget::Latest
        );
    }

    #[test]
    fn secret_settings_name_a_variable_not_hold_a_secret() {
        let spec = RestoreSpec {
            unseal_keys_env: Some("abc+def=".into()),
            ..RestoreSpec::default()
        };
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "unseal_keys_env must be the name of an environment variable (letters, digits, _), not a key or token (the value is not shown)"
        );
        let spec = RestoreSpec {
            unseal_keys_env: Some("VAULT_UNSEAL".into()),
            root_token_env: Some("VAULT_TOKEN_1".into()),
            required_paths: vec!["secret/data/app".into()],
            ..RestoreSpec::default()
        };
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.snapshot().required_paths, ["secret/data/app"]);
    }
}
