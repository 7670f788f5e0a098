//! Which process reads what: `--shard I/N` splits a run's backups over N
//! processes (a Kubernetes Indexed Job, an AWS Batch array job) by a stable
//! hash of each backup's identity, so the N shards together read every
//! backup exactly once, whatever order the store lists them in.
//!
//! The unit is what must be judged together: a backup (a dump with its
//! sidecars and manifest entries, an object with all its versions, since
//! the catalog groups them under one key), or a whole source where one
//! backup's judgement depends on the others (a restore picks the newest
//! restorable dump of its series; base backups pair with their WAL
//! archive). Source-wide work (the store's settings, deleted objects, the
//! copy's parity, the provider's snapshot listing) belongs to the shard
//! that owns the source's own unit.

use sha2::{Digest, Sha256};

/// One shard of N (0-based, as Kubernetes and AWS Batch count), or the
/// whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Where the shard's index came from, for the run's log and report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexFrom {
    Flag,
    /// `JOB_COMPLETION_INDEX`: a Kubernetes Indexed Job.
    Kubernetes,
    /// `AWS_BATCH_JOB_ARRAY_INDEX`: an AWS Batch array job.
    AwsBatch,
}

impl IndexFrom {
    pub fn variable(self) -> Option<&'static str> {
        match self {
            IndexFrom::Flag => None,
            IndexFrom::Kubernetes => Some(K8S_INDEX),
            IndexFrom::AwsBatch => Some(BATCH_INDEX),
        }
    }
}

const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
const BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
const BATCH_SIZE: &str = "AWS_BATCH_JOB_ARRAY_SIZE";
const BATCH_JOB_ID: &str = "AWS_BATCH_JOB_ID";

/// `--shard` as written: `I/N`, `auto/N`, or `auto` (N from the engine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto(Option<u32>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard {0:?}: expected I/N (0 <= I < N, e.g. 0/4), auto/N or auto")]
    Syntax(String),
    #[error(
        "--shard auto: neither {K8S_INDEX} (Kubernetes Indexed Job) nor {BATCH_INDEX} (AWS Batch array job) is set"
    )]
    NoIndex,
    #[error("--shard auto: {variable}={value:?} is not a shard index")]
    BadIndex {
        variable: &'static str,
        value: String,
    },
    #[error("--shard auto: the shard count is unknown; write auto/N (AWS Batch sets {BATCH_SIZE})")]
    NoCount,
    #[error("shard {index} of {count}: the index must be below the count")]
    OutOfRange { index: u32, count: u32 },
}

impl ShardSpec {
    pub fn parse(text: &str) -> Result<ShardSpec, ShardError> {
        let bad = || ShardError::Syntax(text.to_string());
        if text == "auto" {
            return Ok(ShardSpec::Auto(None));
        }
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        if i == "auto" {
            return Ok(ShardSpec::Auto(Some(n)));
        }
        let i: u32 = i.parse().map_err(|_| bad())?;
        Shard::new(i, n).map(ShardSpec::Fixed)
    }

    /// The shard this process is, reading the engine's variables for `auto`.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, IndexFrom), ShardError> {
        let count = match self {
            ShardSpec::Fixed(s) => return Ok((*s, IndexFrom::Flag)),
            ShardSpec::Auto(n) => *n,
        };
        let (variable, from) = if env(K8S_INDEX).is_some() {
            (K8S_INDEX, IndexFrom::Kubernetes)
        } else if env(BATCH_INDEX).is_some() {
            (BATCH_INDEX, IndexFrom::AwsBatch)
        } else {
            return Err(ShardError::NoIndex);
        };
        let number = |variable: &'static str| -> Result<Option<u32>, ShardError> {
            env(variable)
                .map(|value| {
                    value.trim().parse().map_err(|_| ShardError::BadIndex {
                        variable,
                        value: value.clone(),
                    })
                })
                .transpose()
        };
        let index = number(variable)?.ok_or(ShardError::NoIndex)?;
        let count = match (count, from) {
            (Some(n), _) => n,
            (None, IndexFrom::AwsBatch) => number(BATCH_SIZE)?.ok_or(ShardError::NoCount)?,
            (None, _) => return Err(ShardError::NoCount),
        };
        Ok((Shard::new(index, count)?, from))
    }
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }

    /// Whether this shard owns the unit with this identity.
    pub fn owns(&self, unit: &str) -> bool {
        self.is_whole() || shard_of(unit, self.count) == self.index
    }

    /// A source's own unit: its source-wide work, and every backup of a
    /// source judged as a whole.
    pub fn owns_source(&self, location: &str) -> bool {
        self.owns(location)
    }

    /// One backup of a source whose backups are judged one by one.
    pub fn owns_backup(&self, location: &str, key: &str) -> bool {
        self.owns(&backup_unit(location, key))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn backup_unit(location: &str, key: &str) -> String {
    format!("{location}\n{key}")
}

/// The first 8 bytes of the SHA-256 of the identity, modulo N: stable
/// across processes, machines and releases (never `std`'s randomized hash).
pub fn shard_of(unit: &str, count: u32) -> u32 {
    let d = Sha256::digest(unit.as_bytes());
    let head = u64::from_be_bytes(d[..8].try_into().expect("a SHA-256 has 32 bytes"));
    (head % u64::from(count.max(1))) as u32
}

/// The fleet run a shard belongs to when `--run-group` is not given: an AWS
/// Batch array job's children share their parent's id (`ID:INDEX`).
pub fn group_from_engine(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let id = env(BATCH_JOB_ID)?;
    let parent = id.split_once(':').map_or(id.as_str(), |(p, _)| p);
    (!parent.is_empty()).then(|| parent.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!(
            ShardSpec::parse("2/4"),
            Ok(ShardSpec::Fixed(Shard { index: 2, count: 4 }))
        );
        assert_eq!(ShardSpec::parse("auto/8"), Ok(ShardSpec::Auto(Some(8))));
        assert_eq!(ShardSpec::parse("auto"), Ok(ShardSpec::Auto(None)));
        assert_eq!(
            ShardSpec::parse("4/4"),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
        for bad in ["", "1", "1/0", "a/4", "1/4/2", "-1/4", "auto/"] {
            assert!(ShardSpec::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn auto_reads_the_engine_and_says_which() {
        let k8s = ShardSpec::Auto(Some(4))
            .resolve(env(&[("JOB_COMPLETION_INDEX", "3")]))
            .unwrap();
        assert_eq!(k8s, (Shard { index: 3, count: 4 }, IndexFrom::Kubernetes));
        let batch = ShardSpec::Auto(None)
            .resolve(env(&[
                ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
                ("AWS_BATCH_JOB_ARRAY_SIZE", "6"),
            ]))
            .unwrap();
        assert_eq!(batch, (Shard { index: 1, count: 6 }, IndexFrom::AwsBatch));
        assert_eq!(
            ShardSpec::Auto(Some(4)).resolve(env(&[])),
            Err(ShardError::NoIndex)
        );
        assert_eq!(
            ShardSpec::Auto(None).resolve(env(&[("JOB_COMPLETION_INDEX", "0")])),
            Err(ShardError::NoCount)
        );
        assert!(matches!(
            ShardSpec::Auto(Some(4)).resolve(env(&[("JOB_COMPLETION_INDEX", "x")])),
            Err(ShardError::BadIndex { .. })
        ));
        assert_eq!(
            ShardSpec::Auto(Some(4)).resolve(env(&[("JOB_COMPLETION_INDEX", "4")])),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
    }

    /// Every unit is owned by exactly one shard, and the split is even
    /// enough to be worth having.
    #[test]
    fn every_unit_has_exactly_one_owner() {
        let n = 4;
        let mut per = [0usize; 4];
        for k in 0..10_000 {
            let key = format!("db/app-2026-11-{:02}-{k}.dump", k % 30);
            let owners: Vec<u32> = (0..n)
                .filter(|&i| Shard { index: i, count: n }.owns_backup("s3://b/p", &key))
                .collect();
            assert_eq!(owners.len(), 1, "{key}: owners {owners:?}");
            per[owners[0] as usize] += 1;
        }
        for c in per {
            assert!((2_200..2_800).contains(&c), "uneven split {per:?}");
        }
        assert!(Shard::WHOLE.owns_backup("x", "y"));
    }

    /// The hash is pinned: a release that changed it would split one
    /// night's fleet differently on machines running different versions.
    #[test]
    fn the_hash_is_stable() {
        assert_eq!(shard_of("s3://bucket/prefix\ndb/a.dump", 1_000_003), {
            let d = Sha256::digest(b"s3://bucket/prefix\ndb/a.dump");
            (u64::from_be_bytes(d[..8].try_into().unwrap()) % 1_000_003) as u32
        });
        assert_eq!(shard_of("", 7), (0xe3b0_c442_98fc_1c14_u64 % 7) as u32);
    }

    #[test]
    fn batch_children_share_their_parent_group() {
        assert_eq!(
            group_from_engine(env(&[("AWS_BATCH_JOB_ID", "7f3c-11:3")])),
            Some("7f3c-11".into())
        );
        assert_eq!(group_from_engine(env(&[])), None);
    }
}
