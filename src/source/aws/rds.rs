//! `rds://REGION[/ID]`: DB instances and clusters with their backup
//! settings and snapshot series (manual, automated, copies), as facts. RDS
//! snapshots have no bytes a client can read, so the source lists no
//! artifacts; the promises judge what RDS reports.

use std::collections::BTreeSet;
use std::io;

use super::query::{Node, describe};
use super::signed::{CallError, Client, Service};
use super::{CloudUrl, snapshot_key};
use crate::source::facts::{CloudFacts, CloudResource, CloudSnapshot, DbFacts, Unread};
use crate::source::{Artifact, Opened, SourceError, Storage};

const VERSION: &str = "2014-10-31";

pub struct RdsSource {
    url: CloudUrl,
    rds: Client,
    listed: std::sync::Mutex<Option<Result<CloudFacts, Unread>>>,
}

fn db_facts(n: &Node, status: &str) -> DbFacts {
    DbFacts {
        retention_days: n.number("BackupRetentionPeriod").unwrap_or(0),
        latest_restorable: n.time("LatestRestorableTime"),
        multi_az: n.flag("MultiAZ"),
        storage_encrypted: n.flag("StorageEncrypted"),
        kms_key: n.get("KmsKeyId").map(str::to_string),
        deletion_protection: n.flag("DeletionProtection"),
        status: n.get(status).unwrap_or("unknown").to_string(),
        engine: n.get("Engine").map(str::to_string),
    }
}

/// A DB snapshot or DB cluster snapshot, by the field names of its kind.
fn snapshot(n: &Node, cluster: bool) -> Option<CloudSnapshot> {
    let (id, arn, resource, source) = if cluster {
        (
            "DBClusterSnapshotIdentifier",
            "DBClusterSnapshotArn",
            "DBClusterIdentifier",
            "SourceDBClusterSnapshotArn",
        )
    } else {
        (
            "DBSnapshotIdentifier",
            "DBSnapshotArn",
            "DBInstanceIdentifier",
            "SourceDBSnapshotIdentifier",
        )
    };
    Some(CloudSnapshot {
        id: n.get(id)?.to_string(),
        arn: n.get(arn).map(str::to_string),
        resource: n.get(resource)?.to_string(),
        key: String::new(),
        created: n.time("SnapshotCreateTime")?,
        original_created: n.time("OriginalSnapshotCreateTime"),
        state: n.get("Status").unwrap_or("unknown").to_string(),
        encrypted: n.flag("Encrypted") || n.flag("StorageEncrypted"),
        kms_key: n.get("KmsKeyId").map(str::to_string),
        size_gib: n.number("AllocatedStorage").unwrap_or(0).max(0) as u64,
        kind: n.get("SnapshotType").map(str::to_string),
        copied_from: n.get(source).map(str::to_string),
        description: None,
    })
}

/// Every DB snapshot and DB cluster snapshot in the region (of `id`, when
/// given), oldest first.
pub fn snapshots(rds: &Client, id: Option<&str>) -> Result<Vec<CloudSnapshot>, CallError> {
    let one = |k: &'static str| -> Vec<(&'static str, String)> {
        let mut p = vec![("MaxRecords", "100".to_string())];
        if let Some(id) = id {
            p.push((k, id.to_string()));
        }
        p
    };
    // An identifier of the other kind is "not found" to some servers.
    let found = |r: Result<Vec<Node>, CallError>| match r {
        Err(e) if id.is_some() && not_found(&e) => Ok(Vec::new()),
        other => other,
    };
    let mut out: Vec<CloudSnapshot> = found(describe(
        rds,
        VERSION,
        "DescribeDBSnapshots",
        &one("DBInstanceIdentifier"),
        "DBSnapshots",
        "Marker",
    ))?
    .iter()
    .filter_map(|n| snapshot(n, false))
    .collect();
    out.extend(
        found(describe(
            rds,
            VERSION,
            "DescribeDBClusterSnapshots",
            &one("DBClusterIdentifier"),
            "DBClusterSnapshots",
            "Marker",
        ))?
        .iter()
        .filter_map(|n| snapshot(n, true)),
    );
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// "Not found" for one identifier: the other kind may have it.
fn not_found(e: &CallError) -> bool {
    matches!(
        e.code.as_deref(),
        Some(
            "DBInstanceNotFound"
                | "DBInstanceNotFoundFault"
                | "DBClusterNotFoundFault"
                | "DBClusterNotFound"
        )
    )
}

impl RdsSource {
    pub fn new(url: CloudUrl, profile: Option<&str>) -> RdsSource {
        RdsSource {
            rds: Client::new(Service::Rds, &url.region, profile),
            url,
            listed: std::sync::Mutex::new(None),
        }
    }

    fn list(&self) -> Result<CloudFacts, CallError> {
        let id = self.url.id.as_deref();
        let ask = |action: &str, key: &'static str, list: &str| {
            let mut p = vec![("MaxRecords", "100".to_string())];
            if let Some(id) = id {
                p.push((key, id.to_string()));
            }
            match describe(&self.rds, VERSION, action, &p, list, "Marker") {
                Err(e) if id.is_some() && not_found(&e) => Ok(Vec::new()),
                other => other,
            }
        };
        let instances = ask("DescribeDBInstances", "DBInstanceIdentifier", "DBInstances")?;
        let clusters = ask("DescribeDBClusters", "DBClusterIdentifier", "DBClusters")?;
        let mut resources: Vec<CloudResource> = Vec::new();
        for n in &instances {
            // Cluster members are backed up by their cluster.
            if n.get("DBClusterIdentifier").is_some() {
                continue;
            }
            if let Some(id) = n.get("DBInstanceIdentifier") {
                resources.push(CloudResource {
                    id: id.to_string(),
                    kind: "db instance".into(),
                    snapshots: Vec::new(),
                    db: Some(db_facts(n, "DBInstanceStatus")),
                });
            }
        }
        for n in &clusters {
            if let Some(id) = n.get("DBClusterIdentifier") {
                resources.push(CloudResource {
                    id: id.to_string(),
                    kind: "db cluster".into(),
                    snapshots: Vec::new(),
                    db: Some(db_facts(n, "Status")),
                });
            }
        }
        if let (Some(id), true) = (id, resources.is_empty()) {
            return Err(CallError {
                service: "rds",
                what: "DescribeDBInstances".into(),
                reason: format!("no DB instance or cluster {id:?} in {}", self.url.region),
                code: None,
                status: None,
            });
        }
        for s in snapshots(&self.rds, id)? {
            // Snapshots of a deleted database still count: under their own
            // resource, without settings.
            match resources.iter_mut().find(|r| r.id == s.resource) {
                Some(r) => r.snapshots.push(s),
                None => resources.push(CloudResource {
                    id: s.resource.clone(),
                    kind: "db (deleted)".into(),
                    snapshots: vec![s],
                    db: None,
                }),
            }
        }
        for r in &mut resources {
            let mut taken = BTreeSet::new();
            for s in &mut r.snapshots {
                s.key = snapshot_key(&r.id, s.created, "", &mut taken);
            }
        }
        resources.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(CloudFacts {
            service: "rds".into(),
            region: self.url.region.clone(),
            resources,
        })
    }

    fn facts(&self) -> Result<CloudFacts, Unread> {
        let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        if listed.is_none() {
            *listed = Some(self.list().map_err(|e| Unread {
                reason: e.to_string(),
            }));
        }
        listed.clone().expect("set above")
    }
}

impl Storage for RdsSource {
    fn location(&self) -> String {
        self.url.location()
    }

    /// `rds://REGION/DB/SNAPSHOT-ID`.
    fn subject(&self, key: &str) -> String {
        self.url.snapshot_subject(self.facts().ok().as_ref(), key)
    }

    /// No artifacts: nothing of an RDS snapshot can be read. A listing that
    /// fails is still the source failing.
    fn list_scoped(
        &self,
        _only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        self.facts().map_err(|e| SourceError {
            location: self.location(),
            reason: e.reason,
        })?;
        Ok((Vec::new(), Vec::new()))
    }

    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: RDS snapshots cannot be read", artifact.key),
        ))
    }

    fn read_at(&self, artifact: &Artifact, _offset: u64, _buf: &mut [u8]) -> io::Result<usize> {
        self.open(artifact).map(|_| 0)
    }

    fn cloud_facts(&self) -> Option<Result<CloudFacts, Unread>> {
        Some(self.facts())
    }

    fn region(&self) -> Option<String> {
        Some(self.url.region.clone())
    }
}
