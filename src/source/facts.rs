//! What stores say about themselves, as data: bucket settings, deleted
//! objects and old versions; for cloud snapshot sources (EBS, RDS), the
//! volumes and databases with their snapshot series. Each value
//! that could not be read says so, and why; no finding or advice here (the
//! verifier, `verify::store`, judges these facts).

use chrono::{DateTime, Utc};

use super::Artifact;

/// Everything a whole-source audit learns about the store itself.
#[derive(Debug, Default)]
pub struct StoreFacts {
    /// Object stores only: the bucket's settings.
    pub bucket: Option<BucketFacts>,
    /// Where versioning was ever enabled: deleted objects and (when asked
    /// for) every noncurrent version, each read back. `Err` when the
    /// versions could not be listed.
    pub versions: Option<Result<VersionFacts, Unread>>,
}

/// A bucket's settings that decide whether its objects can be recovered.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BucketFacts {
    pub bucket: String,
    /// The region the client addresses, where it has one.
    pub region: Option<String>,
    /// `Err` when even the versioning could not be read: then nothing else
    /// was asked.
    pub settings: Result<BucketSettings, Unread>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BucketSettings {
    pub versioning: Versioning,
    pub object_lock: Result<ObjectLock, Unread>,
    /// How long noncurrent versions are kept.
    pub noncurrent: Result<NoncurrentExpiry, Unread>,
    /// The default server-side encryption ("AES256", "aws:kms"); `None`
    /// when the bucket has none.
    pub default_encryption: Result<Option<String>, Unread>,
}

/// Bucket versioning as S3 reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
    /// No status at all: versioning was never turned on.
    NeverEnabled,
    /// A status this version does not know, as the store spelled it.
    Other(String),
}

impl Versioning {
    /// S3's own word for it ("Enabled", "Suspended"), or "never enabled".
    pub fn as_str(&self) -> &str {
        match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
            Versioning::NeverEnabled => "never enabled",
            Versioning::Other(s) => s,
        }
    }

    /// Whether the bucket may hold old versions and delete markers.
    pub fn ever_enabled(&self) -> bool {
        *self != Versioning::NeverEnabled
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ObjectLock {
    NotEnabled,
    Enabled {
        default_retention: Option<Retention>,
    },
}

/// Object Lock's default retention rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    /// "GOVERNANCE" or "COMPLIANCE", where the store says.
    pub mode: Option<String>,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

/// What the lifecycle rules do to noncurrent versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NoncurrentExpiry {
    /// The shortest enabled NoncurrentVersionExpiration rule.
    AfterDays(i32),
    /// Lifecycle rules exist, none of them expires noncurrent versions.
    NoExpiringRule,
    NoLifecycleRules,
}

impl NoncurrentExpiry {
    /// Days a noncurrent version lives; `None` when no rule expires it.
    pub fn days(self) -> Option<i32> {
        match self {
            NoncurrentExpiry::AfterDays(d) => Some(d),
            _ => None,
        }
    }
}

/// A fact the store would not give: the reason, as the store put it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{reason}")]
pub struct Unread {
    pub reason: String,
}

/// The version history under a source's prefix, as listed: which versions
/// exist. Reading them back is the verifier's job (through the same checks
/// as current objects).
#[derive(Debug, Default)]
pub struct VersionFacts {
    /// Keys whose latest version is a delete marker, in listing order.
    pub deleted: Vec<DeletedObject>,
    /// Noncurrent versions (with --all-versions), in listing order,
    /// without a deleted object's last version (that one is `previous`).
    pub noncurrent: Vec<Artifact>,
}

/// A key deleted by a delete marker.
#[derive(Debug)]
pub struct DeletedObject {
    /// Relative to the source's prefix.
    pub key: String,
    pub deleted_at: DateTime<Utc>,
    /// The newest version older than the marker; `None` when the listing
    /// shows none.
    pub previous: Option<Artifact>,
}

/// A cloud snapshot source's resources (EBS volumes, RDS instances and
/// clusters), each with its snapshot series, as the provider lists them.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CloudFacts {
    /// "ebs" or "rds".
    pub service: String,
    pub region: String,
    pub resources: Vec<CloudResource>,
}

impl CloudFacts {
    /// Every snapshot of every resource.
    pub fn snapshots(&self) -> impl Iterator<Item = &CloudSnapshot> {
        self.resources.iter().flat_map(|r| &r.snapshots)
    }
}

/// One volume, DB instance or DB cluster.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CloudResource {
    /// `vol-…`, or the DB instance or cluster identifier.
    pub id: String,
    /// "volume", "db instance" or "db cluster".
    pub kind: String,
    /// Oldest first.
    pub snapshots: Vec<CloudSnapshot>,
    /// RDS only: the database's backup settings.
    pub db: Option<DbFacts>,
}

/// One snapshot (EBS, RDS DB or DB cluster snapshot).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CloudSnapshot {
    pub id: String,
    /// RDS: the snapshot's ARN, what a copy names as its source.
    pub arn: Option<String>,
    /// The volume or database it was taken of.
    pub resource: String,
    /// Its key within the source (`RESOURCE/snapshot-TIME…`): how the
    /// series promises see it.
    pub key: String,
    /// When it was started (EBS) or created (RDS).
    pub created: DateTime<Utc>,
    /// For a copy: when the original was created, where the provider says.
    pub original_created: Option<DateTime<Utc>>,
    /// "completed", "pending", "error" (EBS); "available", "creating",
    /// "failed"… (RDS).
    pub state: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub size_gib: u64,
    /// RDS: "manual", "automated", "awsbackup"….
    pub kind: Option<String>,
    /// For a copy: the source snapshot's ARN or ID, where the provider
    /// says (RDS `SourceDBSnapshotIdentifier`).
    pub copied_from: Option<String>,
    pub description: Option<String>,
}

impl CloudSnapshot {
    /// A state the provider calls finished and usable.
    pub fn is_complete(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "available")
    }

    /// A state that will never become usable.
    pub fn is_failed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "error" | "failed" | "incompatible-restore" | "incompatible-parameters"
        )
    }
}

/// An RDS instance's or cluster's backup settings.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DbFacts {
    /// Days automated backups are kept (`BackupRetentionPeriod`); 0 turns
    /// them off.
    pub retention_days: i64,
    /// The newest point in time a restore can reach.
    pub latest_restorable: Option<DateTime<Utc>>,
    pub multi_az: bool,
    pub storage_encrypted: bool,
    pub kms_key: Option<String>,
    pub deletion_protection: bool,
    pub status: String,
    pub engine: Option<String>,
}
