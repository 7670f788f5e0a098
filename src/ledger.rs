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
///
/// New, rewritten and last-seen-broken backups are always read, and so is
/// every backup one more skipped night would leave unread for N runs: that
/// alone keeps the promise. On top, tonight reads the least recently
/// verified of the rest up to the fewest bytes per night that keeps the
/// load level: for each horizon of k nights, the backups due within it
/// need `bytes_due(k) / k` a night, and the largest of these is tonight's
/// quota (a steady archive: 1/N of its bytes a night, not one backup more).
pub fn plan(backups: &[(String, u64)], ledger: &Ledger, sample: Sample) -> Vec<bool> {
    let mut chosen = vec![false; backups.len()];
    // Unchanged backups: (index, run id of their last reading, nights
    // they may still be skipped, size).
    let mut unchanged = Vec::new();
    for (i, (subject, size)) in backups.iter().enumerate() {
        match ledger.get(subject) {
            None => chosen[i] = true,
            Some(e) if e.size != *size || e.result >= Status::Fail => chosen[i] = true,
            Some(e) => {
                let slack = sample.every.saturating_sub(e.runs_ago + 1);
                chosen[i] = slack == 0;
                unchanged.push((i, e.run_id, slack, *size));
            }
        }
    }
    // Bytes whose slack is s nights (s < N).
    let mut due_by = vec![0u128; sample.every];
    for &(_, _, slack, size) in &unchanged {
        due_by[slack] += u128::from(size);
    }
    // quota = max over k of (bytes due within k nights) / k, as a fraction.
    let (mut due, mut quota) = (0u128, (0u128, 1u128));
    for k in 1..=sample.every {
        due += due_by[k - 1];
        if due * quota.1 > quota.0 * k as u128 {
            quota = (due, k as u128);
        }
    }
    let mut taken: u128 = (unchanged.iter())
        .filter(|(i, ..)| chosen[*i])
        .map(|&(.., size)| u128::from(size))
        .sum();
    unchanged.sort_by_key(|&(_, run, ..)| run);
    for (i, _, _, size) in unchanged {
        if chosen[i] {
            continue;
        }
        // Nearest to the quota: a backup is taken while at least half of
        // it fits (`taken + size / 2 <= quota`, in whole numbers).
        if (2 * taken + u128::from(size)) * quota.1 > 2 * quota.0 {
            break;
        }
        chosen[i] = true;
        taken += u128::from(size);
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

    /// Sixty nights of an archive of 30 equal backups kept plus one new
    /// each night, rotate:7: every backup is re-read within 7 runs, and the
    /// unchanged bytes read a night average 1/7 of them (the first design's
    /// one-backup-rounded-up quota read 5 of 30, a sixth).
    #[test]
    fn a_steady_archive_is_re_read_at_one_nth_a_night() {
        let every = 7;
        let mut ledger = Ledger::new();
        let mut backups: Vec<(String, u64)> = (0..31).map(|i| (format!("b{i}"), 100)).collect();
        let (mut read_share, mut nights) = (0.0, 0);
        for night in 1..=60i64 {
            // Thirty kept: the oldest goes as the new one comes.
            backups.remove(0);
            backups.push((format!("n{night}"), 100));
            for e in ledger.values_mut() {
                e.runs_ago = (night - 1 - e.run_id) as usize;
            }
            let chosen = plan(&backups, &ledger, Sample { every });
            let old = backups.len() - 1;
            assert!(chosen[old], "night {night}: the new backup is read");
            let unchanged_read = chosen[..old].iter().filter(|c| **c).count();
            for (i, (subject, size)) in backups.iter().enumerate() {
                match (chosen[i], ledger.get(subject)) {
                    (true, _) => {
                        let mut e = entry(night, 0);
                        e.size = *size;
                        e.result = Status::Pass;
                        ledger.insert(subject.clone(), e);
                    }
                    (false, Some(e)) => assert!(
                        night - e.run_id < every as i64,
                        "night {night}: {subject} last read on night {}",
                        e.run_id
                    ),
                    (false, None) => panic!("{subject} never read"),
                }
            }
            if night > 2 * every as i64 {
                read_share += unchanged_read as f64 / old as f64;
                nights += 1;
            }
        }
        let mean = read_share / f64::from(nights);
        assert!(
            (mean - 1.0 / every as f64).abs() < 0.1 / every as f64,
            "unchanged bytes read a night: {mean:.4} of the archive, not 1/{every}"
        );
    }
}
