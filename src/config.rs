//! `backproof.toml`: the sources to audit and where reports go.
//!
//! ```toml
//! [defaults]
//! jobs = 2                          # worker threads (default: cores)
//! digests = ["sha256", "blake3"]    # computed for every file
//! timestamp_pattern = "%Y-%m-%dT%H%M"
//!
//! [report]
//! dir = "/var/lib/backproof/reports"   # relative paths are relative to this file
//! formats = ["json", "text"]
//!
//! [[sources]]
//! name = "postgres"
//! path = "/srv/backups/postgres"
//! timestamp_pattern = "appdb-%Y%m%d"  # overrides the default
//! pattern = "appdb-*"                 # only these backups (a glob on key or name)
//! exclude = ["*.partial"]             # and not these
//!
//! [[sources]]
//! name = "dumps-in-s3"
//! path = "s3://backups/nightly"      # S3 URLs work wherever paths do
//! copy = "s3://offsite/nightly"       # a copy that must match it (missing, stale, extra)
//!
//! [sources.restore]                  # test-restore the newest dump of each series
//! pattern = "*.dump"                 # optional: only these are restore targets
//! exclude = ["*-schema-*"]
//! rto = "1h"                         # a restore (load + sanity) over it fails
//! required_tables = ["users"]
//! min_rows = { users = 1 }
//! assertions = ["select count(*) > 0 from users"]
//! freshness_column = "orders.created_at"
//!
//! [[sources]]
//! name = "consul"
//! path = "/srv/backups/consul"
//! changes = "/var/log/deploys.log"   # its change log, for snapshot_before_change checks
//!
//! [[sources]]
//! name = "pg-physical"
//! path = "/srv/backups/basebackups"  # pg_basebackup -Fp / -Ft directories
//! wal_archive = "/srv/wal-archive"   # where archive_command copies WAL (or s3://…)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::{Filter, TimestampPattern};
use crate::digest::Algorithm;
use crate::policy::{self, CheckDef};
use crate::report::Format;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub report: ReportConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Promises to check, from the config itself and the included packs.
    #[serde(default)]
    pub checks: Vec<CheckDef>,
    /// A webhook told of failures (and recoveries) of the nightly run.
    pub notify: Option<crate::notify::NotifyConfig>,
    /// The files this config was read from (itself, then its packs), each
    /// with its SHA-256: every run records what it ran.
    #[serde(skip)]
    pub files: Vec<ConfigFile>,
}

pub use crate::report::ConfigFile;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy packs (files holding `[[checks]]`), relative to this file.
    #[serde(default)]
    pub include: Vec<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub jobs: Option<usize>,
    /// Computed for every file on top of those manifests need; the command
    /// line's `--digest` replaces them.
    #[serde(default, deserialize_with = "algorithms")]
    pub digests: Vec<Algorithm>,
    pub timestamp_pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(default = "default_report_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_formats", deserialize_with = "run_report_formats")]
    pub formats: Vec<Format>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            dir: default_report_dir(),
            formats: default_formats(),
        }
    }
}

/// Digest names as `--digest` takes them, refused at their own line.
fn algorithms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Algorithm>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| n.parse().map_err(serde::de::Error::custom))
        .collect()
}

fn default_report_dir() -> PathBuf {
    PathBuf::from("reports")
}
fn default_formats() -> Vec<Format> {
    vec![Format::Json, Format::Text]
}

fn run_report_formats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Format>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|f| {
            Format::parse_among(f, Format::REPORT_FILES)
                .map_err(|e| serde::de::Error::custom(format!("report.formats: {e}")))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub path: PathBuf,
    pub timestamp_pattern: Option<String>,
    /// Only backups whose key or file name match this glob are audited.
    pub pattern: Option<String>,
    /// Backups matching any of these globs are not audited.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A secondary copy of this source (directory or S3 URL) that must hold
    /// the same objects: checked like `backproof compare path copy`.
    pub copy: Option<PathBuf>,
    /// Where the source lives, for separation checks: the region (S3
    /// sources default to the client's) and the account that owns it.
    pub region: Option<String>,
    pub account: Option<String>,
    /// Test restores of this source (see [`crate::restore::RestoreSpec`]).
    pub restore: Option<crate::restore::RestoreSpec>,
    /// The change log of what this source backs up (a deploy log, an audit
    /// log), for `snapshot_before_change` checks that name none: packs
    /// promise the snapshots, the config says where the changes are logged.
    pub changes: Option<PathBuf>,
    /// A WAL archive kept apart from this source's base backups (a
    /// directory or S3 prefix archive_command copies into): read once and
    /// paired with them, for the `pitr` promise.
    pub wal_archive: Option<PathBuf>,
}

/// A config that cannot be used: the audit cannot run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {problem}")]
    Invalid {
        file: String,
        #[source]
        problem: Invalid,
    },
}

/// What is wrong inside a config or pack; messages name the line or key.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// At the key's own line, quoting it with secrets masked (issue 10: a
    /// broken scratch_url line echoed its password).
    #[error("{at}")]
    Syntax {
        at: Box<crate::tomlerr::Located>,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("no [[sources]] defined: nothing to audit")]
    NoSources,
    #[error("source name {0:?} is used twice")]
    DuplicateSource(String),
    /// A value serde accepted but its own check refused.
    #[error("{key}: {reason}")]
    Value {
        key: String,
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("report.formats: unknown format {name:?} (known: {known})")]
    UnknownFormat { name: String, known: String },
    #[error("check names source {name:?}, which the config does not define (sources: {known})")]
    UnknownSource { name: String, known: String },
    #[error("{key}: {problem}")]
    Check {
        key: String,
        #[source]
        problem: Box<Invalid>,
    },
    #[error(transparent)]
    Policy(#[from] policy::InvalidCheck),
    #[error("policy.include: {0}")]
    Include(#[source] policy::PackError),
    #[error("defaults.jobs must be at least 1")]
    NoJobs,
    /// Without a restore spec nothing restores the source, and a restore
    /// found elsewhere (another config's run) must not stand in for one.
    #[error(
        "check {check:?} judges changes of source {source_name:?}, but names no change log: set `changes` on the check or on the source"
    )]
    NoChangeLog { check: String, source_name: String },
    #[error(
        "check {check:?} promises restores of source {source_name:?}, which has no [sources.restore] section: add one so backproof restores it"
    )]
    RestoreWithoutSpec { check: String, source_name: String },
}

impl Invalid {
    fn value(key: impl Into<String>, reason: impl std::fmt::Display) -> Invalid {
        Invalid::Value {
            key: key.into(),
            reason: reason.to_string().into(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let invalid = |file: &str, problem| ConfigError::Invalid {
            file: file.to_string(),
            problem,
        };
        let mut config = Config::parse(&text).map_err(|p| invalid(&file, p))?;
        config.files.push(ConfigFile::of(path, text.as_bytes()));
        // Relative paths mean relative to the config file, not to wherever
        // cron happened to start us.
        let base = path.parent().unwrap_or(Path::new("."));
        for s in &mut config.sources {
            for p in std::iter::once(&mut s.path)
                .chain(s.copy.as_mut())
                .chain(s.wal_archive.as_mut())
            {
                if p.is_relative() && !crate::source::is_remote(&p.to_string_lossy()) {
                    *p = base.join(&*p);
                }
            }
        }
        if config.report.dir.is_relative() {
            config.report.dir = base.join(&config.report.dir);
        }
        for s in &mut config.sources {
            if let Some(p) = s.changes.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        for c in &mut config.checks {
            c.resolve_paths(base);
        }
        let mut named_in = vec![file.clone(); config.checks.len()];
        for inc in config.policy.include.clone() {
            let path = if inc.is_relative() {
                base.join(&inc)
            } else {
                inc
            };
            let (mut checks, text) =
                policy::load_pack(&path).map_err(|e| invalid(&file, Invalid::Include(e)))?;
            config.files.push(ConfigFile::of(&path, text.as_bytes()));
            let pack_dir = path.parent().unwrap_or(Path::new("."));
            for c in &mut checks {
                config
                    .check_refs(c)
                    .map_err(|p| invalid(&path.display().to_string(), p))?;
                c.resolve_paths(pack_dir);
            }
            named_in.extend(std::iter::repeat_n(
                path.display().to_string(),
                checks.len(),
            ));
            config.checks.extend(checks);
        }
        let Config {
            sources, checks, ..
        } = &mut config;
        for (c, named_in) in checks.iter_mut().zip(&named_in) {
            let Some(source) = c.sources().first().map(|s| s.to_string()) else {
                continue;
            };
            let own = sources
                .iter()
                .find(|s| s.name == source)
                .and_then(|s| s.changes.as_deref());
            if !c.default_changes(own) {
                return Err(invalid(
                    named_in,
                    Invalid::NoChangeLog {
                        check: c.name(),
                        source_name: source,
                    },
                ));
            }
        }
        Ok(config)
    }

    /// Parses and validates; errors name the line and key.
    pub fn parse(text: &str) -> Result<Config, Invalid> {
        let config: Config = toml::from_str(text).map_err(|e| Invalid::Syntax {
            at: Box::new(crate::tomlerr::Located::new(text, &e)),
            source: Box::new(e),
        })?;
        if config.sources.is_empty() {
            return Err(Invalid::NoSources);
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &config.sources {
            if !names.insert(&s.name) {
                return Err(Invalid::DuplicateSource(s.name.clone()));
            }
            if let Some(p) = &s.timestamp_pattern {
                TimestampPattern::from_strftime(p).map_err(|e| {
                    Invalid::value(format!("sources.{}.timestamp_pattern", s.name), e)
                })?;
            }
            Filter::new(s.pattern.as_deref(), &s.exclude)
                .map_err(|e| Invalid::value(format!("sources.{}.pattern", s.name), e))?;
            if let Some(r) = &s.restore {
                r.validate()
                    .map_err(|e| Invalid::value(format!("sources.{}.restore", s.name), e))?;
                Filter::new(r.pattern.as_deref(), &r.exclude).map_err(|e| {
                    Invalid::value(format!("sources.{}.restore.pattern", s.name), e)
                })?;
            }
        }
        if let Some(p) = &config.defaults.timestamp_pattern {
            TimestampPattern::from_strftime(p)
                .map_err(|e| Invalid::value("defaults.timestamp_pattern", e))?;
        }
        for (i, c) in config.checks.iter().enumerate() {
            config.check_refs(c).map_err(|p| Invalid::Check {
                key: format!("checks[{i}]"),
                problem: Box::new(p),
            })?;
        }
        if config.defaults.jobs == Some(0) {
            return Err(Invalid::NoJobs);
        }
        Ok(config)
    }

    /// A check's own values are sane and the sources it names exist.
    fn check_refs(&self, c: &CheckDef) -> Result<(), Invalid> {
        c.validate()?;
        for s in c.sources() {
            if !self.sources.iter().any(|src| src.name == s) {
                let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(Invalid::UnknownSource {
                    name: s.to_string(),
                    known: known.join(", "),
                });
            }
        }
        if let CheckDef::Restore { name, source, .. } = c
            && self
                .sources
                .iter()
                .any(|s| &s.name == source && s.restore.is_none())
        {
            return Err(Invalid::RestoreWithoutSpec {
                check: name.clone().unwrap_or_else(|| format!("restore:{source}")),
                source_name: source.clone(),
            });
        }
        Ok(())
    }

    /// The source's `pattern` / `exclude` (validated when loaded).
    pub fn filter_for(source: &SourceConfig) -> Filter {
        Filter::new(source.pattern.as_deref(), &source.exclude).unwrap_or_default()
    }

    pub fn pattern_for(&self, source: &SourceConfig) -> TimestampPattern {
        source
            .timestamp_pattern
            .as_deref()
            .or(self.defaults.timestamp_pattern.as_deref())
            .and_then(|p| TimestampPattern::from_strftime(p).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = Config::parse("[[sources]]\nname = \"a\"\npath = \"/x\"\nretention = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("retention"), "{e}");
    }

    #[test]
    fn restore_section_is_strict() {
        let ok = "[[sources]]\nname=\"a\"\npath=\"/x\"\n[sources.restore]\nrto=\"1h\"\nmin_rows={ users = 1 }\n";
        let c = Config::parse(ok).unwrap();
        let r = c.sources[0].restore.as_ref().unwrap();
        assert_eq!(r.rto, Some(std::time::Duration::from_secs(3600)));
        let e = Config::parse(&format!("{ok}rows = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 7") && e.contains("rows"), "{e}");
        let e = Config::parse(&format!("{ok}freshness_column = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.a.restore"), "{e}");
    }

    #[test]
    fn source_and_restore_patterns_are_globs() {
        let ok = "[[sources]]\nname=\"a\"\npath=\"/x\"\npattern=\"appdb-*\"\nexclude=[\"*.tmp\"]\n[sources.restore]\npattern=\"*.dump\"\n";
        let c = Config::parse(ok).unwrap();
        assert!(Config::filter_for(&c.sources[0]).keeps("appdb-1.dump"));
        let e = Config::parse("[[sources]]\nname=\"a\"\npath=\"/x\"\nexclude=[\"[x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.a.pattern") && e.contains("[x"), "{e}");
        let e = Config::parse(
            "[[sources]]\nname=\"a\"\npath=\"/x\"\n[sources.restore]\npattern=\"[x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sources.a.restore.pattern"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(
            Config::parse("")
                .unwrap_err()
                .to_string()
                .contains("no [[sources]]")
        );
        let e =
            Config::parse("[defaults]\ndigests=[\"sha3\"]\n[[sources]]\nname=\"a\"\npath=\"/x\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("sha3"), "{e}");
        let e = Config::parse("[[sources]]\nname=\"a\"\npath=\"/x\"\ntimestamp_pattern=\"%Y\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks %m"), "{e}");
    }
}
