//! Cloud snapshots as sources: `ebs://REGION[/snap-…|/vol-…][?tag:KEY=VALUE]`
//! and `rds://REGION[/DB-INSTANCE-OR-CLUSTER]`.
//!
//! [`signed`] makes SigV4-signed requests on the S3 source's credential
//! chain and profiles; [`query`] speaks EC2's and RDS's query protocol;
//! [`ec2`] and [`rds`] list volumes, databases and their snapshots as typed
//! facts; [`blocks`] reads an EBS snapshot block by block through the EBS
//! direct APIs, checking each block against the SHA-256 EBS stored for it;
//! [`ebs`] and [`rds`] are the two [`Storage`]s; [`copies`] lists the
//! snapshots in another region, for the region_copy promise.
//!
//! An EBS snapshot is an artifact whose bytes are the volume's image
//! (unallocated blocks read as zeros), so the raw-image inspector checks
//! its partition table and filesystem like any disk image. An RDS snapshot
//! has no bytes anyone can read: RDS sources yield facts only.
//!
//! Read-only: the calls are EC2 DescribeSnapshots, RDS DescribeDBInstances,
//! DescribeDBClusters, DescribeDBSnapshots, DescribeDBClusterSnapshots, and
//! EBS ListSnapshotBlocks, ListChangedBlocks and GetSnapshotBlock; a test
//! below keeps it so.
//!
//! In `run` with a history, a snapshot whose volume has an earlier one that
//! passed verification is read incrementally ([`ebs`]): ListChangedBlocks
//! against that base, and both snapshots' block listings (moto names no
//! block new in the second snapshot; a provider bug might not either), give
//! the blocks to read and check; the rest are carried from the base's
//! verification, and the raw-image inspector reads the new snapshot through
//! `read_at`, only the blocks it looks at.

mod blocks;
pub mod copies;
mod ebs;
mod ec2;
mod query;
mod rds;
mod signed;

use super::s3::S3Options;
use super::{SourceError, Storage};

pub use ebs::EbsSource;
pub use rds::RdsSource;

/// Which provider API a cloud location names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ebs,
    Rds,
}

/// A parsed `ebs://` or `rds://` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudUrl {
    pub kind: Kind,
    pub region: String,
    /// `snap-…`, `vol-…`, or the DB instance or cluster identifier.
    pub id: Option<String>,
    /// `?tag:KEY=VALUE`: only snapshots carrying that tag (EBS).
    pub tag: Option<(String, String)>,
}

/// A location that is not a usable cloud URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} names no region (ebs://REGION/… or rds://REGION/…)")]
    NoRegion(String),
    #[error(
        "{0:?}: after the region, name a snap-… or vol-… (ebs://) or one DB identifier (rds://)"
    )]
    BadId(String),
    #[error("{0:?}: the only query is ?tag:KEY=VALUE, on ebs:// sources")]
    BadQuery(String),
}

/// True for `ebs://` and `rds://` locations.
pub fn is_cloud(location: &str) -> bool {
    location.starts_with("ebs://") || location.starts_with("rds://")
}

impl CloudUrl {
    pub fn parse(url: &str) -> Result<CloudUrl, UrlError> {
        let (kind, rest) = if let Some(r) = url.strip_prefix("ebs://") {
            (Kind::Ebs, r)
        } else if let Some(r) = url.strip_prefix("rds://") {
            (Kind::Rds, r)
        } else {
            return Err(UrlError::NoRegion(url.to_string()));
        };
        let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parts = path.trim_end_matches('/').splitn(2, '/');
        let region = parts.next().unwrap_or("").to_string();
        if region.is_empty() {
            return Err(UrlError::NoRegion(url.to_string()));
        }
        let id = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(id) = &id {
            let ok = match kind {
                Kind::Ebs => {
                    (id.starts_with("snap-") || id.starts_with("vol-")) && !id.contains('/')
                }
                Kind::Rds => !id.contains('/'),
            };
            if !ok {
                return Err(UrlError::BadId(url.to_string()));
            }
        }
        let tag = match q {
            "" => None,
            q if kind == Kind::Ebs => {
                let (k, v) = q
                    .strip_prefix("tag:")
                    .and_then(|t| t.split_once('='))
                    .ok_or_else(|| UrlError::BadQuery(url.to_string()))?;
                Some((k.to_string(), v.to_string()))
            }
            _ => return Err(UrlError::BadQuery(url.to_string())),
        };
        Ok(CloudUrl {
            kind,
            region,
            id,
            tag,
        })
    }

    /// How reports name the source: the URL as given, normalised.
    fn scheme(&self) -> &'static str {
        match self.kind {
            Kind::Ebs => "ebs",
            Kind::Rds => "rds",
        }
    }

    /// `SCHEME://REGION/RESOURCE/SNAPSHOT-ID` for a snapshot's artifact key
    /// (`RESOURCE/snapshot-TIME…`), so that findings name the snapshot id;
    /// the key itself when the listing does not know it.
    pub fn snapshot_subject(
        &self,
        facts: Option<&crate::source::facts::CloudFacts>,
        key: &str,
    ) -> String {
        let id = facts.and_then(|f| f.snapshots().find(|s| s.key == key).map(|s| s.id.clone()));
        let resource = key.split('/').next().unwrap_or(key);
        match id {
            Some(id) => format!("{}://{}/{resource}/{id}", self.scheme(), self.region),
            None => format!("{}://{}/{key}", self.scheme(), self.region),
        }
    }

    pub fn location(&self) -> String {
        let mut s = format!("{}://{}", self.scheme(), self.region);
        if let Some(id) = &self.id {
            s.push('/');
            s.push_str(id);
        }
        if let Some((k, v)) = &self.tag {
            s.push_str(&format!("?tag:{k}={v}"));
        }
        s
    }
}

/// The source for a cloud location; `only` is always `None` (a snapshot
/// named in the URL is the whole source).
pub fn open(
    url: &str,
    opts: &S3Options,
) -> Result<(Box<dyn Storage>, Option<String>), SourceError> {
    let parsed = CloudUrl::parse(url).map_err(|e| SourceError {
        location: url.to_string(),
        reason: e.to_string(),
    })?;
    let profile = opts.profile.as_deref();
    Ok(match parsed.kind {
        Kind::Ebs => (Box::new(EbsSource::new(parsed, profile)), None),
        Kind::Rds => (Box::new(RdsSource::new(parsed, profile)), None),
    })
}

/// The artifact key of a snapshot: its resource, then its time in a form
/// the default timestamp pattern reads, so that one resource's snapshots
/// are one series ("vol-0abc/snapshot-*Z.img"). Two snapshots of one
/// resource within a second are named a second apart.
fn snapshot_key(
    resource: &str,
    created: chrono::DateTime<chrono::Utc>,
    suffix: &str,
    taken: &mut std::collections::BTreeSet<String>,
) -> String {
    let mut t = created;
    loop {
        let key = format!("{resource}/snapshot-{}Z{suffix}", t.format("%Y%m%dT%H%M%S"));
        if taken.insert(key.clone()) {
            return key;
        }
        t += chrono::Duration::seconds(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = CloudUrl::parse("ebs://ap-southeast-2/vol-0abc?tag:backup=nightly").unwrap();
        assert_eq!(u.kind, Kind::Ebs);
        assert_eq!(u.region, "ap-southeast-2");
        assert_eq!(u.id.as_deref(), Some("vol-0abc"));
        assert_eq!(u.tag, Some(("backup".into(), "nightly".into())));
        assert_eq!(
            u.location(),
            "ebs://ap-southeast-2/vol-0abc?tag:backup=nightly"
        );
        let r = CloudUrl::parse("rds://eu-west-1/appdb/").unwrap();
        assert_eq!((r.kind, r.id.as_deref()), (Kind::Rds, Some("appdb")));
        assert!(CloudUrl::parse("ebs://").is_err());
        assert!(CloudUrl::parse("ebs://r/ami-1").is_err());
        assert!(CloudUrl::parse("rds://r/a?tag:x=y").is_err());
        assert!(CloudUrl::parse("ebs://r?x=y").is_err());
    }

    #[test]
    fn one_series_per_resource() {
        let mut taken = Default::default();
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
            .unwrap()
            .to_utc();
        let a = snapshot_key("vol-1", t, ".img", &mut taken);
        let b = snapshot_key("vol-1", t, ".img", &mut taken);
        assert_eq!(a, "vol-1/snapshot-20261201T030000Z.img");
        assert_eq!(b, "vol-1/snapshot-20261201T030001Z.img");
        // Only the time differs, in a form the default timestamp pattern
        // reads (tests/cloud.rs sees the series promises group them).
        assert_eq!(a.replace("030000", "*"), b.replace("030001", "*"));
    }

    /// The read-only guarantee, in code: every AWS action these files name
    /// is a Describe, List or Get.
    #[test]
    fn no_call_that_writes() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("blocks.rs"),
            include_str!("copies.rs"),
            include_str!("ebs.rs"),
            include_str!("ec2.rs"),
            include_str!("query.rs"),
            include_str!("rds.rs"),
            include_str!("signed.rs"),
        ];
        // Query actions are named where `describe(` is called; EBS calls by
        // the path they GET, each with its action name in a `what` string.
        let action =
            regex::Regex::new(r#"(?:describe\(\s*[^,]+,\s*[^,]+,|ask\()\s*"(\w+)""#).unwrap();
        // And no string in these files names a writing action at all: an
        // action cannot be called without its name.
        let literal = regex::Regex::new(r#""([A-Z][a-z]+)[A-Z]\w*""#).unwrap();
        let writes = [
            "Create",
            "Delete",
            "Modify",
            "Put",
            "Start",
            "Complete",
            "Copy",
            "Restore",
            "Reboot",
            "Stop",
            "Terminate",
            "Update",
            "Attach",
            "Detach",
            "Enable",
            "Disable",
            "Register",
            "Deregister",
            "Reset",
            "Revoke",
            "Authorize",
            "Import",
            "Export",
            "Promote",
            "Failover",
            "Add",
            "Remove",
            "Cancel",
            "Associate",
            "Disassociate",
            "Replace",
            "Run",
            "Set",
            "Apply",
            "Release",
            "Allocate",
            "Lock",
            "Unlock",
            "Share",
            "Purchase",
        ];
        let ebs = regex::Regex::new(r#"call\(\s*"(\w+)",[^;]*?"(\w+)"\s*,?\s*\)"#).unwrap();
        let mut actions = std::collections::BTreeSet::new();
        let mut methods = std::collections::BTreeSet::new();
        for text in sources {
            let flat = text.replace('\n', " ");
            for c in action.captures_iter(&flat) {
                actions.insert(c[1].to_string());
            }
            for c in ebs.captures_iter(&flat) {
                methods.insert(c[1].to_string());
                actions.insert(c[2].to_string());
            }
            for c in literal.captures_iter(&flat) {
                assert!(!writes.contains(&&c[1]), "{} names a write", &c[0]);
            }
        }
        for a in [
            "DescribeSnapshots",
            "DescribeDBInstances",
            "DescribeDBClusters",
            "DescribeDBSnapshots",
            "DescribeDBClusterSnapshots",
            "ListSnapshotBlocks",
            "ListChangedBlocks",
            "GetSnapshotBlock",
        ] {
            assert!(actions.contains(a), "the scan finds {a}: {actions:?}");
        }
        for a in &actions {
            assert!(
                a.starts_with("Describe") || a.starts_with("List") || a.starts_with("Get"),
                "{a} is not a read"
            );
        }
        // EBS is REST: only GETs (the query services POST a Describe form).
        assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
    }
}
