//! The demo behind `backproof run --demo`: a week of nightly backups made by
//! the real tools (PostgreSQL and MariaDB dumps, a qcow2 disk image, a tar),
//! written under `reports/demo/corpus` night by night, audited with the
//! packs in `checks/` as each night was, so that the history holds seven
//! nights. One MariaDB night never arrived, one PostgreSQL dump was cut off
//! mid-upload, and tonight's MariaDB dump is a third of its usual size.
//! Tonight's newest dumps are test-restored into scratch servers when their
//! binaries are on the machine.

mod corpus;
mod story;

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, ReportConfig};
use crate::policy::CheckDef;

pub use corpus::{MISSING_NIGHT, SMALL_NIGHT, TRUNCATED_NIGHT};
pub use story::{Servers, closing, missing_servers};

/// Nights recorded in the history: six earlier ones, then tonight.
pub const NIGHTS: i64 = 7;

/// The packs applied to the demo's sources, as shipped in `checks/`.
const PACKS: [&str; 2] = [
    include_str!("../../checks/heroku-postgres.toml"),
    include_str!("../../checks/lms-hosting.toml"),
];

/// The sources, named as the packs expect them; the restore sections are
/// kept only for the servers found.
const SOURCES: &str = r#"
[[sources]]
name = "postgres"
path = "postgres"
[sources.restore]
rto = "1h"
required_tables = ["customers", "orders"]

[[sources]]
name = "mysql"
path = "mysql"
[sources.restore]
rto = "1h"
required_tables = ["products", "sales"]

[[sources]]
name = "snapshots"
path = "snapshots"
"#;

/// The demo week on disk: its corpus, where reports go, and the demo's now.
pub struct Week {
    dir: PathBuf,
    corpus: corpus::Corpus,
    now: DateTime<Utc>,
}

impl Week {
    /// A fresh corpus under `dir/corpus` holding the backups that existed
    /// before the first recorded night (an earlier demo's corpus replaced).
    pub fn prepare(dir: &Path, now: DateTime<Utc>) -> io::Result<Week> {
        let mut corpus = corpus::Corpus::new(dir.join("corpus"), now)?;
        for k in (NIGHTS..NIGHTS + corpus::KEPT - 1).rev() {
            corpus.night(k)?;
        }
        Ok(Week {
            dir: dir.to_path_buf(),
            corpus,
            now,
        })
    }

    /// When night `k`'s audit ran (days before tonight).
    pub fn audited(&self, k: i64) -> DateTime<Utc> {
        self.now - Duration::days(k)
    }

    /// Night `k`'s backups arrive (and the oldest rotate out).
    pub fn night(&mut self, k: i64) -> io::Result<()> {
        self.corpus.night(k)
    }

    pub fn corpus(&self) -> &Path {
        &self.corpus.root
    }

    /// The config of a night: the sources, the packs' promises about them,
    /// and restores only for the servers in `restore` (the earlier nights
    /// are replayed without: test restores run tonight).
    pub fn config(&self, restore: &Servers) -> Config {
        let mut text = SOURCES.to_string();
        // The LMS pack's Consul promise needs a Consul source and a change
        // log, which the demo does not have.
        for pack in PACKS {
            for (i, block) in pack.split("[[checks]]").enumerate() {
                if i > 0 && !block.contains("source = \"consul\"") {
                    text.push_str("[[checks]]");
                    text.push_str(block);
                }
            }
        }
        let mut config = Config::parse(&text).expect("the demo config is valid");
        let names: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
        for s in &mut config.sources {
            s.path = self.corpus.root.join(&s.path);
            let keep = match s.name.as_str() {
                "postgres" => restore.postgres,
                "mysql" => restore.mariadb,
                _ => false,
            };
            if !keep {
                s.restore = None;
            }
        }
        let restored: Vec<String> = config
            .sources
            .iter()
            .filter(|s| s.restore.is_some())
            .map(|s| s.name.clone())
            .collect();
        config.checks.retain(|c| {
            let known = c.sources().iter().all(|s| names.iter().any(|n| n == s));
            let restore_ok = match c {
                CheckDef::Restore { source, .. } => restored.contains(source),
                _ => true,
            };
            known && restore_ok
        });
        config.report = ReportConfig {
            dir: self.dir.clone(),
            formats: vec![crate::report::Format::Json, crate::report::Format::Text],
        };
        config
    }
}

/// The demo's own history starts over with each demo, so that it always
/// holds the same week.
pub fn forget_history(history: &Path) -> io::Result<()> {
    let name = history.file_name().unwrap_or_default().to_string_lossy();
    for suffix in ["", "-wal", "-shm", "-journal", ".anchor"] {
        let p = history.with_file_name(format!("{name}{suffix}"));
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packs_apply_to_the_demo_sources_and_restores_follow_the_servers() {
        let tmp = tempfile::tempdir().unwrap();
        let week = Week::prepare(tmp.path(), Utc::now()).unwrap();
        let both = Servers {
            postgres: true,
            mariadb: true,
        };
        let c = week.config(&both);
        assert_eq!(c.sources.len(), 3);
        assert!(c.sources.iter().all(|s| s.path.starts_with(week.corpus())));
        assert!(c.checks.iter().all(|c| c.sources() != ["consul"]));
        let restores = |c: &Config| {
            c.checks
                .iter()
                .filter(|c| matches!(c, CheckDef::Restore { .. }))
                .count()
        };
        assert_eq!(restores(&c), 1);
        assert!(c.checks.len() >= 12, "{}", c.checks.len());
        let none = week.config(&Servers::none());
        assert_eq!(restores(&none), 0);
        assert!(none.sources.iter().all(|s| s.restore.is_none()));
        assert_eq!(none.checks.len(), c.checks.len() - 1);
    }

    #[test]
    fn the_corpus_keeps_eight_nights_with_one_dump_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut week = Week::prepare(tmp.path(), Utc::now()).unwrap();
        for k in (0..NIGHTS).rev() {
            week.night(k).unwrap();
        }
        let count = |dir: &str, ext: &str| {
            std::fs::read_dir(week.corpus().join(dir))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
                .count()
        };
        assert_eq!(count("postgres", ".dump"), 8);
        assert_eq!(count("mysql", ".sql.gz"), 7);
        assert_eq!(count("snapshots", ".qcow2"), 8);
        let sums = std::fs::read_to_string(week.corpus().join("mysql/SHA256SUMS")).unwrap();
        assert_eq!(sums.lines().count(), 7);
    }
}
