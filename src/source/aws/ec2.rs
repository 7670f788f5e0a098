//! EC2's side of EBS snapshots: DescribeSnapshots, owned by this account,
//! narrowed to a snapshot, a volume or a tag, as typed facts.

use std::collections::{BTreeMap, BTreeSet};

use super::query::{Node, describe};
use super::signed::{CallError, Client};
use super::snapshot_key;
use crate::source::facts::{CloudFacts, CloudResource, CloudSnapshot};

const VERSION: &str = "2016-11-15";

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct Select {
    pub snapshot: Option<String>,
    pub volume: Option<String>,
    pub tag: Option<(String, String)>,
}

/// The snapshots `select` names, oldest first, keys not yet assigned.
pub fn snapshots(ec2: &Client, select: &Select) -> Result<Vec<CloudSnapshot>, CallError> {
    let mut params: Vec<(&str, String)> = vec![("Owner.1", "self".to_string())];
    let mut filters: Vec<(String, String)> = Vec::new();
    match &select.snapshot {
        Some(id) => params.push(("SnapshotId.1", id.clone())),
        // MaxResults may not be combined with SnapshotId.
        None => params.push(("MaxResults", "1000".to_string())),
    }
    if let Some(v) = &select.volume {
        filters.push(("volume-id".to_string(), v.clone()));
    }
    if let Some((k, v)) = &select.tag {
        filters.push((format!("tag:{k}"), v.clone()));
    }
    let names: Vec<(String, String)> = filters
        .iter()
        .enumerate()
        .flat_map(|(i, (n, v))| {
            [
                (format!("Filter.{}.Name", i + 1), n.clone()),
                (format!("Filter.{}.Value.1", i + 1), v.clone()),
            ]
        })
        .collect();
    params.extend(names.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let items = describe(
        ec2,
        VERSION,
        "DescribeSnapshots",
        &params,
        "snapshotSet",
        "nextToken",
    )?;
    let mut out: Vec<CloudSnapshot> = items.iter().filter_map(snapshot).collect();
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

fn snapshot(n: &Node) -> Option<CloudSnapshot> {
    Some(CloudSnapshot {
        id: n.get("snapshotId")?.to_string(),
        arn: None,
        resource: n.get("volumeId").unwrap_or("vol-unknown").to_string(),
        key: String::new(),
        created: n.time("startTime")?,
        original_created: None,
        state: n.get("status").unwrap_or("unknown").to_string(),
        encrypted: n.flag("encrypted"),
        kms_key: n.get("kmsKeyId").map(str::to_string),
        size_gib: n.number("volumeSize").unwrap_or(0).max(0) as u64,
        kind: None,
        copied_from: None,
        description: n.get("description").map(str::to_string),
    })
}

/// The snapshots grouped by volume, each given its series key.
pub fn facts(region: &str, snapshots: Vec<CloudSnapshot>) -> CloudFacts {
    let mut by_volume: BTreeMap<String, Vec<CloudSnapshot>> = BTreeMap::new();
    for s in snapshots {
        by_volume.entry(s.resource.clone()).or_default().push(s);
    }
    let resources = by_volume
        .into_iter()
        .map(|(id, mut snaps)| {
            let mut taken = BTreeSet::new();
            for s in &mut snaps {
                s.key = snapshot_key(&id, s.created, ".img", &mut taken);
            }
            CloudResource {
                id,
                kind: "volume".to_string(),
                snapshots: snaps,
                db: None,
            }
        })
        .collect();
    CloudFacts {
        service: "ebs".to_string(),
        region: region.to_string(),
        resources,
    }
}
