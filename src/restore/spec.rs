//! What the configuration (`[sources.restore]`) and the command line ask
//! of a restore.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::engine::SnapshotSpec;
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

/// Command-line overrides, applied on top of each source's spec.
#[derive(Clone, Debug, Default)]
pub struct RestoreOverrides {
    pub scratch_url: Option<String>,
    pub rto: Option<Duration>,
    pub timeout: Option<Duration>,
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
