//! `ebs://REGION[/snap-…|/vol-…][?tag:KEY=VALUE]`: each completed EBS
//! snapshot is one artifact, `VOLUME/snapshot-TIME.img`, whose bytes are
//! the volume image read block by block ([`super::blocks`]). Snapshots
//! still pending or in error are not artifacts; the facts keep them, and
//! the verifier reports them.

use std::io;
use std::sync::{Arc, Mutex};

use super::CloudUrl;
use super::blocks::{self, BlockReader};
use super::ec2::{self, Select};
use super::signed::{Client, Service};
use crate::source::facts::{CloudFacts, CloudSnapshot, Unread};
use crate::source::{Artifact, Opened, SourceError, Storage};

const GIB: u64 = 1 << 30;

pub struct EbsSource {
    url: CloudUrl,
    ec2: Client,
    ebs: Arc<Client>,
    /// The listing, once made: facts for the promises, and the snapshot
    /// behind each artifact key.
    listed: Mutex<Option<Result<CloudFacts, Unread>>>,
}

impl EbsSource {
    pub fn new(url: CloudUrl, profile: Option<&str>) -> EbsSource {
        EbsSource {
            ec2: Client::new(Service::Ec2, &url.region, profile),
            ebs: Arc::new(Client::new(Service::Ebs, &url.region, profile)),
            url,
            listed: Mutex::new(None),
        }
    }

    fn select(&self) -> Select {
        let id = self.url.id.clone();
        Select {
            snapshot: id.clone().filter(|i| i.starts_with("snap-")),
            volume: id.filter(|i| i.starts_with("vol-")),
            tag: self.url.tag.clone(),
        }
    }

    /// The listing, made on first use and kept for the run.
    fn facts(&self) -> Result<CloudFacts, Unread> {
        let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        if listed.is_none() {
            let r = ec2::snapshots(&self.ec2, &self.select())
                .map(|s| ec2::facts(&self.url.region, s))
                .map_err(|e| Unread {
                    reason: e.to_string(),
                });
            *listed = Some(r);
        }
        listed.clone().expect("set above")
    }

    fn snapshot_of(&self, key: &str) -> io::Result<CloudSnapshot> {
        let facts = self.facts().map_err(io::Error::other)?;
        facts
            .snapshots()
            .find(|s| s.key == key)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no snapshot {key}")))
    }
}

impl Storage for EbsSource {
    fn location(&self) -> String {
        self.url.location()
    }

    /// `ebs://REGION/VOLUME/SNAPSHOT`: findings name the snapshot id.
    fn subject(&self, key: &str) -> String {
        let id = self
            .facts()
            .ok()
            .and_then(|f| f.snapshots().find(|s| s.key == key).map(|s| s.id.clone()));
        let volume = key.split('/').next().unwrap_or(key);
        match id {
            Some(id) => format!("ebs://{}/{volume}/{id}", self.url.region),
            None => format!("ebs://{}/{key}", self.url.region),
        }
    }

    fn list_scoped(
        &self,
        _only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        let facts = self.facts().map_err(|e| SourceError {
            location: self.location(),
            reason: e.reason,
        })?;
        let mut out: Vec<Artifact> = facts
            .snapshots()
            .filter(|s| s.is_complete())
            .map(|s| Artifact::new(s.key.clone(), s.size_gib * GIB, s.created))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, Vec::new()))
    }

    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        let s = self.snapshot_of(&artifact.key)?;
        let reader = BlockReader::open(self.ebs.clone(), &s.id, artifact.size)?;
        Ok(Opened {
            reader: Box::new(reader),
            promises: Vec::new(),
            version_id: None,
            // EBS encryption is always KMS (the AWS-managed key or one's own).
            encryption: Some(if s.encrypted { "aws:kms" } else { "none" }.to_string()),
            unchecked: Vec::new(),
        })
    }

    fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.snapshot_of(&artifact.key)?;
        blocks::read_at(&self.ebs, &s.id, artifact.size, offset, buf)
    }

    fn cloud_facts(&self) -> Option<Result<CloudFacts, Unread>> {
        Some(self.facts())
    }

    fn region(&self) -> Option<String> {
        Some(self.url.region.clone())
    }
}
