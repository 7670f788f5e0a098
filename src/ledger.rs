//! The verification ledger: for every backup, when its bytes were last fully
//! read and with what result (from the history), and the nightly sample
//! that re-reads about 1/N of the unchanged archive, least recently verified
//! first, so every byte is re-read at least every N runs while new backups
//! are always read.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::finding::{Check, Finding, Status};

#[derive(Clone, Debug)]
pub struct LedgerEntry {
    pub run_id: i64,
    pub verified_at: DateTime<Utc>,
    pub size: u64,
    /// Worst integrity/structure status of that verification.
    pub result: Status,
    /// `run`s recorded since that verification (0: the latest run read it).
    pub runs_ago: usize,
}

pub type Ledger = HashMap<String, LedgerEntry>;

/// `--sample rotate:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub every: usize,
}

/// A `--sample` value that is not `rotate:N`.
#[derive(Debug, thiserror::Error)]
pub enum BadSample {
    #[error("{0:?}: expected rotate:N")]
    Form(String),
    #[error("{text:?}: {source}")]
    Number {
        text: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("rotate:N needs N >= 1")]
    Zero,
}

impl FromStr for Sample {
    type Err = BadSample;
    fn from_str(s: &str) -> Result<Sample, BadSample> {
        let n = s
            .strip_prefix("rotate:")
            .ok_or_else(|| BadSample::Form(s.to_string()))?
            .parse::<usize>()
            .map_err(|source| BadSample::Number {
                text: s.to_string(),
                source,
            })?;
        if n == 0 {
            return Err(BadSample::Zero);
        }
        Ok(Sample { every: n })
    }
}

/// Which backups (by subject and size) to read tonight.
pub fn plan(backups: &[(String, u64)], ledger: &Ledger, sample: Sample) -> Vec<bool> {
    let mut chosen = vec![false; backups.len()];
    let mut unchanged = Vec::new();
    for (i, (subject, size)) in backups.iter().enumerate() {
        match ledger.get(subject) {
            // New, rewritten, or last seen broken: always read.
            None => chosen[i] = true,
            Some(e) if e.size != *size || e.result >= Status::Fail => chosen[i] = true,
            // Due: one more night would exceed N runs between reads.
            Some(e) if e.runs_ago + 1 >= sample.every => {
                chosen[i] = true;
                unchanged.push((i, e.run_id));
            }
            Some(e) => unchanged.push((i, e.run_id)),
        }
    }
    let quota = unchanged.len().div_ceil(sample.every);
    let mut taken = unchanged.iter().filter(|(i, _)| chosen[*i]).count();
    unchanged.sort_by_key(|(_, run)| *run);
    for (i, _) in unchanged {
        if taken >= quota {
            break;
        }
        if !chosen[i] {
            chosen[i] = true;
            taken += 1;
        }
    }
    chosen
}

/// The finding for a backup left unread tonight: its last verified result,
/// carried over with its date, never a fresh pass.
pub fn carried(subject: &str, e: &LedgerEntry, sample: Sample) -> Finding {
    Finding::new(
        subject,
        Check::Integrity,
        e.result,
        format!(
            "not re-read tonight (sample rotate:{}): last fully verified {} ({})",
            sample.every,
            e.verified_at.format("%Y-%m-%d %H:%M UTC"),
            e.result.as_str()
        ),
    )
    .with("sampled_out", true)
    .with("last_verified_at", e.verified_at.to_rfc3339())
    .with("last_verified_run", e.run_id)
    .with("runs_ago", e.runs_ago)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run_id: i64, runs_ago: usize) -> LedgerEntry {
        LedgerEntry {
            run_id,
            verified_at: Utc::now(),
            size: 10,
            result: Status::Pass,
            runs_ago,
        }
    }

    #[test]
    fn new_changed_and_broken_are_always_read_and_a_quota_of_the_rest() {
        let backups: Vec<(String, u64)> = (0..10).map(|i| (format!("b{i}"), 10)).collect();
        let mut ledger = Ledger::new();
        for i in 0..10 {
            ledger.insert(format!("b{i}"), entry(i as i64, 1));
        }
        ledger.get_mut("b7").unwrap().size = 11;
        ledger.get_mut("b8").unwrap().result = Status::Fail;
        ledger.remove("b9");
        let chosen = plan(&backups, &ledger, Sample { every: 5 });
        assert!(chosen[7] && chosen[8] && chosen[9]);
        // 7 unchanged, quota ceil(7/5) = 2, least recently verified first.
        let picked: Vec<usize> = (0..7).filter(|&i| chosen[i]).collect();
        assert_eq!(picked, [0, 1]);
        assert_eq!("rotate:5".parse::<Sample>().ok(), Some(Sample { every: 5 }));
        assert!("rotate:0".parse::<Sample>().is_err() && "all".parse::<Sample>().is_err());
    }
}
