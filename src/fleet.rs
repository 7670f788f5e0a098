//! Fleet runs, as data: a shard's share of one night (`run --shard I/N
//! --run-group ID`) and the fleet run's record over its shards. A shard's
//! share travels as typed data (`ShardPart`: the promises' view of each
//! source, as far as the shard saw it) inside its chained run record, so
//! the judgement (`commands::fleet`) is as tamper-evident as the rest of
//! the history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::SourceView;

/// The command a shard's record carries: it holds no promise, and the
/// compliance export and later runs read the fleet run's record instead.
pub const SHARD_COMMAND: &str = "run-shard";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum FleetMark {
    Shard(ShardPart),
    Final(FleetSummary),
}

/// One shard's share of a fleet run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardPart {
    pub group: String,
    pub shard: u32,
    pub of: u32,
    /// Where the index came from: `--shard`, or the engine's variable.
    pub index_from: String,
    /// What the promises need of each configured source (by name), as far
    /// as this shard saw it: its own backups and restores; the source-wide
    /// facts only on the shard that owns the source.
    pub views: BTreeMap<String, SourceView>,
    /// Sources this shard could not open or list: the promises about them
    /// cannot be judged over the union (its share of them is missing).
    #[serde(default)]
    pub unread: Vec<String>,
}

/// The fleet run's record: which shard runs it judged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FleetSummary {
    pub group: String,
    pub shards: u32,
    /// The history run of each shard judged.
    pub shard_runs: Vec<ShardRun>,
    /// Shards that never reported: the fleet run is then `error`, and no
    /// promise was judged.
    pub missing: Vec<u32>,
    /// Shards that read under other config files than the judgement's:
    /// `error` too.
    #[serde(default)]
    pub drifted: Vec<u32>,
}

/// A shard, and the history run that recorded it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardRun {
    pub shard: u32,
    pub run: i64,
}

impl FleetSummary {
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.drifted.is_empty() && self.shards > 0
    }
}
