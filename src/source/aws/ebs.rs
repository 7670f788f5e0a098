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
use crate::ledger::{Ledger, LedgerEntry};
use crate::source::facts::{CloudFacts, CloudSnapshot, Unread};
use crate::source::{Artifact, Opened, ReadScope, SourceError, Storage};

const GIB: u64 = 1 << 30;

pub struct EbsSource {
    url: CloudUrl,
    ec2: Client,
    ebs: Arc<Client>,
    /// The listing, once made: facts for the promises, and the snapshot
    /// behind each artifact key.
    listed: Mutex<Option<Result<CloudFacts, Unread>>>,
    /// Earlier verifications (`run` with a history): a snapshot with a
    /// base among them is read incrementally.
    ledger: std::sync::OnceLock<Ledger>,
}

/// The snapshot an incremental read builds on, with its verification.
#[derive(Debug)]
struct Base {
    id: String,
    entry: LedgerEntry,
}

/// Why a snapshot is read in full although a history exists, as the
/// evidence says it.
#[derive(Debug, thiserror::Error)]
enum FullRead {
    #[error("read in full: {0}")]
    Unlisted(String),
    #[error("read in full: no earlier snapshot of {0} to compare with")]
    NoEarlier(String),
    #[error(
        "read in full: no earlier snapshot of {resource} passed verification in the history (the newest, {newest}, {why})"
    )]
    NonePassed {
        resource: String,
        newest: String,
        why: String,
    },
    #[error("read in full: {what} against {base} failed: {reason}")]
    Failed {
        what: &'static str,
        base: String,
        reason: String,
    },
}

/// The base for `this`: the newest earlier completed snapshot of the same
/// volume whose latest verification in the ledger passed (read in full, or
/// itself incrementally against a base that passed: a chain every link of
/// which checked all its changed blocks and its structure). `Err`: why
/// there is none, in the evidence's words.
fn choose_base(
    snapshots: &[CloudSnapshot],
    this: &CloudSnapshot,
    subject: &dyn Fn(&CloudSnapshot) -> String,
    ledger: &Ledger,
) -> Result<Base, FullRead> {
    let mut earlier: Vec<&CloudSnapshot> = snapshots
        .iter()
        .filter(|s| s.resource == this.resource && s.is_complete() && s.id != this.id)
        .filter(|s| (s.created, &s.id) < (this.created, &this.id))
        .collect();
    earlier.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let Some(newest) = earlier.first() else {
        return Err(FullRead::NoEarlier(this.resource.clone()));
    };
    for s in &earlier {
        if let Some(e) = ledger.get(&subject(s))
            && e.result == crate::finding::Status::Pass
        {
            return Ok(Base {
                id: s.id.clone(),
                entry: e.clone(),
            });
        }
    }
    let why = match ledger.get(&subject(newest)) {
        None => "not in the history".to_string(),
        Some(e) => format!(
            "last verified {} ({})",
            e.verified_at.format("%Y-%m-%d %H:%M UTC"),
            e.result.as_str()
        ),
    };
    Err(FullRead::NonePassed {
        resource: this.resource.clone(),
        newest: newest.id.clone(),
        why,
    })
}

impl EbsSource {
    pub fn new(url: CloudUrl, profile: Option<&str>) -> EbsSource {
        EbsSource {
            ec2: Client::new(Service::Ec2, &url.region, profile),
            ebs: Arc::new(Client::new(Service::Ebs, &url.region, profile)),
            url,
            listed: Mutex::new(None),
            ledger: std::sync::OnceLock::new(),
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

impl EbsSource {
    /// With a ledger: the incremental reader of `s` and its evidence note,
    /// or why it is read in full (`Err`). Without one: `None`, a full read
    /// as always. Never "carried" on an error: any failed call means a
    /// full read.
    fn incremental(
        &self,
        s: &CloudSnapshot,
        size: u64,
    ) -> Option<Result<(BlockReader, String), FullRead>> {
        let ledger = self.ledger.get()?;
        let facts = match self.facts() {
            Ok(f) => f,
            Err(e) => return Some(Err(FullRead::Unlisted(e.reason))),
        };
        let all: Vec<CloudSnapshot> = facts.snapshots().cloned().collect();
        let subject = |c: &CloudSnapshot| self.subject(&c.key);
        let base = match choose_base(&all, s, &subject, ledger) {
            Ok(b) => b,
            Err(why) => return Some(Err(why)),
        };
        let full = |what: &'static str, reason: String| {
            Err(FullRead::Failed {
                what,
                base: base.id.clone(),
                reason,
            })
        };
        let (changed, changed_bs) = match blocks::list_changed(&self.ebs, &base.id, &s.id) {
            Ok(c) => c,
            Err(e) => return Some(full("ListChangedBlocks", e.to_string())),
        };
        let (first, first_bs) = match blocks::list_all(&self.ebs, &base.id) {
            Ok(l) => l,
            Err(e) => return Some(full("listing the base's blocks", e.to_string())),
        };
        let (second, bs) = match blocks::list_all(&self.ebs, &s.id) {
            Ok(l) => l,
            Err(e) => return Some(full("listing the snapshot's blocks", e.to_string())),
        };
        if first_bs != bs || changed_bs != bs {
            return Some(full(
                "comparing block sizes",
                format!("{first_bs}, {changed_bs} and {bs} bytes"),
            ));
        }
        let plan = blocks::plan_read(&first, &second, &changed);
        let mut note = format!(
            "incremental against {} (verified {}): {} changed blocks read and checked, {} new, {} carried",
            base.id,
            base.entry.verified_at.format("%Y-%m-%d %H:%M UTC"),
            plan.changed,
            plan.new,
            plan.carried
        );
        if plan.deallocated > 0 {
            note.push_str(&format!(", {} deallocated", plan.deallocated));
        }
        let reader =
            BlockReader::open_blocks(self.ebs.clone(), &s.id, size, bs, plan.read, note.clone());
        Some(Ok((reader, note)))
    }
}

impl Storage for EbsSource {
    fn location(&self) -> String {
        self.url.location()
    }

    /// `ebs://REGION/VOLUME/SNAPSHOT`: findings name the snapshot id.
    fn subject(&self, key: &str) -> String {
        self.url.snapshot_subject(self.facts().ok().as_ref(), key)
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
        let (reader, scope) = match self.incremental(&s, artifact.size) {
            None => (
                BlockReader::open(self.ebs.clone(), &s.id, artifact.size)?,
                None,
            ),
            Some(Ok((reader, note))) => (
                reader,
                Some(ReadScope {
                    partial: true,
                    note,
                }),
            ),
            Some(Err(why)) => (
                BlockReader::open(self.ebs.clone(), &s.id, artifact.size)?,
                Some(ReadScope {
                    partial: false,
                    note: why.to_string(),
                }),
            ),
        };
        Ok(Opened {
            skipped: Vec::new(),
            scope,
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

    fn use_ledger(&self, ledger: &Ledger) {
        // Given once, before the first open.
        let _ = self.ledger.set(ledger.clone());
    }

    fn cloud_facts(&self) -> Option<Result<CloudFacts, Unread>> {
        Some(self.facts())
    }

    fn region(&self) -> Option<String> {
        Some(self.url.region.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Status;

    fn snap(id: &str, volume: &str, minute: u32, state: &str) -> CloudSnapshot {
        CloudSnapshot {
            id: id.into(),
            arn: None,
            resource: volume.into(),
            key: format!("{volume}/{id}"),
            created: chrono::DateTime::parse_from_rfc3339(&format!(
                "2026-12-01T03:{minute:02}:00Z"
            ))
            .unwrap()
            .to_utc(),
            original_created: None,
            state: state.into(),
            encrypted: false,
            kms_key: None,
            size_gib: 1,
            kind: None,
            copied_from: None,
            description: None,
        }
    }

    fn entry(result: Status) -> LedgerEntry {
        LedgerEntry {
            run_id: 1,
            verified_at: chrono::Utc::now(),
            size: 1 << 30,
            result,
            runs_ago: 0,
        }
    }

    #[test]
    fn the_base_is_the_newest_earlier_passed_snapshot_of_the_volume() {
        let all = vec![
            snap("snap-a", "vol-1", 1, "completed"),
            snap("snap-b", "vol-1", 2, "completed"),
            snap("snap-c", "vol-1", 3, "completed"),
            snap("snap-p", "vol-1", 4, "pending"),
            snap("snap-o", "vol-2", 4, "completed"),
            snap("snap-d", "vol-1", 5, "completed"),
        ];
        let subject = |s: &CloudSnapshot| s.id.clone();
        let mut ledger = Ledger::new();
        ledger.insert("snap-a".into(), entry(Status::Pass));
        ledger.insert("snap-b".into(), entry(Status::Pass));
        ledger.insert("snap-c".into(), entry(Status::Fail));
        ledger.insert("snap-o".into(), entry(Status::Pass));
        // snap-c failed, snap-p is pending, snap-o is another volume.
        let base = choose_base(&all, &all[5], &subject, &ledger).unwrap();
        assert_eq!(base.id, "snap-b");
        let base = choose_base(&all, &all[2], &subject, &ledger).unwrap();
        assert_eq!(base.id, "snap-b");
        // The oldest has nothing before it; none earlier passed: full reads.
        let why = choose_base(&all, &all[0], &subject, &ledger)
            .unwrap_err()
            .to_string();
        assert!(why.contains("no earlier snapshot of vol-1"), "{why}");
        ledger.remove("snap-a");
        ledger.remove("snap-b");
        let why = choose_base(&all, &all[5], &subject, &ledger)
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("the newest, snap-c, last verified") && why.contains("(fail)"),
            "{why}"
        );
        let why = choose_base(&all, &all[1], &subject, &Ledger::new())
            .unwrap_err()
            .to_string();
        assert!(why.contains("snap-a, not in the history"), "{why}");
    }
}
