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
//!
//! [[sources]]
//! name = "dumps-in-s3"
//! path = "s3://backups/nightly"      # S3 URLs work wherever paths do
//! copy = "s3://offsite/nightly"       # a copy that must match it (missing, stale, extra)
//!
//! [sources.restore]                  # test-restore the newest dump of the source
//! rto = "1h"                         # a restore (load + sanity) over it fails
//! required_tables = ["users"]
//! min_rows = { users = 1 }
//! assertions = ["select count(*) > 0 from users"]
//! freshness_column = "orders.created_at"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::TimestampPattern;
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
}

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
    #[serde(default)]
    pub digests: Vec<String>,
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
    /// A secondary copy of this source (directory or S3 URL) that must hold
    /// the same objects: checked like `backproof compare path copy`.
    pub copy: Option<PathBuf>,
    /// Where the source lives, for separation checks: the region (S3
    /// sources default to the client's) and the account that owns it.
    pub region: Option<String>,
    pub account: Option<String>,
    /// Test restores of this source (see [`crate::restore::RestoreSpec`]).
    pub restore: Option<crate::restore::RestoreSpec>,
}

/// A config that cannot be used: the audit cannot run (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError {
            file: file.clone(),
            message,
        })?;
        // Relative paths mean relative to the config file, not to wherever
        // cron happened to start us.
        let base = path.parent().unwrap_or(Path::new("."));
        for s in &mut config.sources {
            for p in std::iter::once(&mut s.path).chain(s.copy.as_mut()) {
                if p.is_relative() && !crate::source::is_s3(&p.to_string_lossy()) {
                    *p = base.join(&*p);
                }
            }
        }
        if config.report.dir.is_relative() {
            config.report.dir = base.join(&config.report.dir);
        }
        for inc in config.policy.include.clone() {
            let path = if inc.is_relative() {
                base.join(&inc)
            } else {
                inc
            };
            let checks = policy::load_pack(&path).map_err(|message| ConfigError {
                file: file.clone(),
                message: format!("policy.include: {message}"),
            })?;
            for c in &checks {
                config.check_refs(c).map_err(|message| ConfigError {
                    file: path.display().to_string(),
                    message,
                })?;
            }
            config.checks.extend(checks);
        }
        Ok(config)
    }

    /// Parses and validates; errors name the line and key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        if config.sources.is_empty() {
            return Err("no [[sources]] defined: nothing to audit".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &config.sources {
            if !names.insert(&s.name) {
                return Err(format!("source name {:?} is used twice", s.name));
            }
            if let Some(p) = &s.timestamp_pattern {
                TimestampPattern::from_strftime(p)
                    .map_err(|e| format!("sources.{}.timestamp_pattern: {e}", s.name))?;
            }
            if let Some(r) = &s.restore {
                r.validate()
                    .map_err(|e| format!("sources.{}.restore: {e}", s.name))?;
            }
        }
        config.digests()?;
        if let Some(p) = &config.defaults.timestamp_pattern {
            TimestampPattern::from_strftime(p)
                .map_err(|e| format!("defaults.timestamp_pattern: {e}"))?;
        }
        for (i, c) in config.checks.iter().enumerate() {
            config
                .check_refs(c)
                .map_err(|e| format!("checks[{i}]: {e}"))?;
        }
        if config.defaults.jobs == Some(0) {
            return Err("defaults.jobs must be at least 1".into());
        }
        Ok(config)
    }

    /// A check's own values are sane and the sources it names exist.
    fn check_refs(&self, c: &CheckDef) -> Result<(), String> {
        c.validate()?;
        for s in c.sources() {
            if !self.sources.iter().any(|src| src.name == s) {
                let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(format!(
                    "check names source {s:?}, which the config does not define (sources: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub fn digests(&self) -> Result<Vec<Algorithm>, String> {
        self.defaults
            .digests
            .iter()
            .map(|d| d.parse().map_err(|e| format!("defaults.digests: {e}")))
            .collect()
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
        let e =
            Config::parse("[[sources]]\nname = \"a\"\npath = \"/x\"\nretention = 3\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("retention"), "{e}");
    }

    #[test]
    fn restore_section_is_strict() {
        let ok = "[[sources]]\nname=\"a\"\npath=\"/x\"\n[sources.restore]\nrto=\"1h\"\nmin_rows={ users = 1 }\n";
        let c = Config::parse(ok).unwrap();
        let r = c.sources[0].restore.as_ref().unwrap();
        assert_eq!(r.rto, Some(std::time::Duration::from_secs(3600)));
        let e = Config::parse(&format!("{ok}rows = 3\n")).unwrap_err();
        assert!(e.contains("line 7") && e.contains("rows"), "{e}");
        let e = Config::parse(&format!("{ok}freshness_column = \"x\"\n")).unwrap_err();
        assert!(e.contains("sources.a.restore"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::parse("").unwrap_err().contains("no [[sources]]"));
        let e =
            Config::parse("[defaults]\ndigests=[\"sha3\"]\n[[sources]]\nname=\"a\"\npath=\"/x\"\n")
                .unwrap_err();
        assert!(e.contains("sha3"), "{e}");
        let e = Config::parse("[[sources]]\nname=\"a\"\npath=\"/x\"\ntimestamp_pattern=\"%Y\"\n")
            .unwrap_err();
        assert!(e.contains("lacks %m"), "{e}");
    }
}
