//! `history prune --before DATE`: the oldest runs give up their reports,
//! findings and backup rows, and keep only their links (id, time, command,
//! exit code, previous hash, hash) in `pruned_runs`, sealed by a checkpoint
//! holding the digest of those links. `verify` walks the kept links, checks
//! the checkpoint's digest over them, then recomputes the rest of the chain
//! from the last pruned hash: a pruned run that is edited or deleted, or a
//! checkpoint that is, breaks the chain as an edited report would. A head
//! an auditor kept from an earlier report is still found among the links.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::db::Sql;
use super::{History, HistoryError, Problem};

/// What a prune did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pruned {
    /// Runs pruned now.
    pub runs: usize,
    /// The newest pruned run: runs 1..=through are links only.
    pub through: i64,
    /// The checkpoint's digest over every pruned link.
    pub digest: String,
}

/// The digest a checkpoint seals: every pruned link, in id order.
pub(super) fn links_digest(links: &[Vec<Sql>]) -> String {
    let mut h = Sha256::new();
    for l in links {
        h.update(format!("{} {} {}\n", l[0].int(), l[1].text(), l[2].text()).as_bytes());
    }
    hex::encode(h.finalize())
}

impl History {
    /// Prunes the oldest runs started before `before`, never the newest
    /// run, and only from an intact chain (pruning must not launder an
    /// edit). SQLite files are vacuumed afterwards to give the space back.
    pub fn prune(&mut self, before: DateTime<Utc>) -> Result<Pruned, HistoryError> {
        let check = self.verify()?;
        if !check.problems.is_empty() {
            return Err(self.err(Problem::Tampered {
                problems: check.problems,
            }));
        }
        let runs = self.query("SELECT id, started_at FROM runs ORDER BY id", &[])?;
        // A prefix of the chain, up to the first run at or after `before`.
        let mut through = 0;
        for r in runs.iter().take(runs.len().saturating_sub(1)) {
            let started = DateTime::parse_from_rfc3339(&r[1].text()).map(|t| t.with_timezone(&Utc));
            match started {
                Ok(t) if t < before => through = r[0].int(),
                _ => break,
            }
        }
        let pruned = runs.iter().filter(|r| r[0].int() <= through).count();
        if pruned == 0 {
            return Ok(Pruned {
                runs: 0,
                through: self.pruned_through()?,
                digest: String::new(),
            });
        }
        let db = self.db.get_mut();
        let begin = if db.is_postgres() {
            "BEGIN; LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE"
        } else {
            "BEGIN IMMEDIATE"
        };
        let t: [Sql; 1] = [through.into()];
        let out = db
            .batch(begin)
            .and_then(|_| {
                db.execute(
                    "INSERT INTO pruned_runs (id, started_at, command, exit_code, prev_hash, hash)
                     SELECT id, started_at, command, exit_code, prev_hash, hash FROM runs WHERE id <= ?1",
                    &t,
                )?;
                db.execute("DELETE FROM findings WHERE run_id <= ?1", &t)?;
                db.execute("DELETE FROM backups WHERE run_id <= ?1", &t)?;
                db.execute("DELETE FROM fleet_runs WHERE run_id <= ?1", &t)?;
                db.execute("DELETE FROM runs WHERE id <= ?1", &t)?;
                let links = db.query(
                    "SELECT id, prev_hash, hash FROM pruned_runs ORDER BY id",
                    &[],
                )?;
                let digest = links_digest(&links);
                let next = db.query("SELECT count(*) FROM checkpoints", &[])?[0][0].int() + 1;
                db.execute(
                    "INSERT INTO checkpoints (id, through_run, pruned_before, created_at, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[
                        next.into(),
                        through.into(),
                        before.to_rfc3339().into(),
                        Utc::now().to_rfc3339().into(),
                        digest.as_str().into(),
                    ],
                )?;
                Ok(digest)
            })
            .and_then(|digest| db.batch("COMMIT").map(|_| digest));
        let digest = match out {
            Ok(d) => d,
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                return Err(self.err(e));
            }
        };
        if !db.is_postgres() {
            db.batch("VACUUM").map_err(|e| self.err(e))?;
        }
        Ok(Pruned {
            runs: pruned,
            through,
            digest,
        })
    }

    /// The newest pruned run's id (0: nothing pruned).
    fn pruned_through(&self) -> Result<i64, HistoryError> {
        Ok(self
            .query("SELECT max(id) FROM pruned_runs", &[])?
            .first()
            .map_or(0, |r| r[0].int()))
    }
}
