//! Planning a source: its listing grouped into backups, filtered, and cut
//! down to what one shard owns.
//!
//! A listing of up to [`IN_MEMORY_UP_TO`] artifacts is held and grouped by
//! [`build`](super::build). A larger one is planned as a stream, so memory
//! does not grow with the number of backups the shard does not own:
//!
//! 1. survey: the first listing keeps, per directory, only what its file
//!    names say about its layout ([`Survey`]), and the manifests;
//! 2. the manifests are read, their promises kept by target;
//! 3. group: a second listing hands each artifact to its backup. A file is
//!    a backup the moment it is listed; a directory backup when the listing
//!    leaves it, since every store lists a directory's keys together (in
//!    byte order and in path-component order alike, all keys under `d/`
//!    are adjacent). A store that does not is caught, never trusted: a
//!    directory backup met twice makes the plan an error.
//!
//! Each backup is judged against the filter and the shard as it is made;
//! those another shard owns are counted and dropped.

use std::collections::{HashMap, HashSet};

use super::{Backup, Catalog, Filter, Layout, ManifestState, MissingEntry, Owners, Survey};
use super::{TimestampPattern, dir_stamp, load_manifest, stamp};
use crate::expectation::Expectation;
use crate::manifest;
use crate::shard::Shard;
use crate::source::{Artifact, SourceError, Storage};

/// Listings this long are grouped in memory (about 430 bytes an artifact at
/// peak); longer ones are planned as a stream.
pub const IN_MEMORY_UP_TO: usize = 100_000;

/// Which of a source's backups a run keeps.
pub struct Scope<'a> {
    pub pattern: &'a TimestampPattern,
    pub filter: &'a Filter,
    pub shard: Shard,
    /// The source is one unit, owned by one shard (a restore picks among
    /// its dumps). Base backups and WAL archives make it one anyway.
    pub whole: bool,
}

/// A source's plan.
#[derive(Debug)]
pub struct Planned {
    /// The backups this shard owns, by key (empty from [`plan_each`]), with
    /// the manifests' states and missing entries when it owns the source's
    /// own work.
    pub catalog: Catalog,
    /// Entries the listing could not read.
    pub problems: Vec<SourceError>,
    /// Backups the filter keeps, across every shard.
    pub listed: usize,
    /// Planned as a stream (the listing was longer than the limit).
    pub streamed: bool,
}

/// Lists and plans a source, its kept backups sorted by key.
pub fn plan(
    source: &dyn Storage,
    only: Option<&str>,
    scope: &Scope,
    in_memory_up_to: usize,
) -> Result<Planned, SourceError> {
    let mut kept = Vec::new();
    let mut planned = plan_each(source, only, scope, in_memory_up_to, &mut |b| kept.push(b))?;
    // A stream keeps them in the store's order.
    kept.sort_by(|a, b| a.key.cmp(&b.key));
    planned.catalog.backups = kept;
    Ok(planned)
}

/// Lists and plans a source, handing each kept backup to `keep` as it is
/// made (the returned catalog's `backups` is left empty). `only` (a spot
/// check) lists the scoped part and groups it in memory; otherwise a
/// listing longer than `in_memory_up_to` is planned as a stream (the
/// module's comment says how).
pub fn plan_each(
    source: &dyn Storage,
    only: Option<&str>,
    scope: &Scope,
    in_memory_up_to: usize,
    keep: &mut dyn FnMut(Backup),
) -> Result<Planned, SourceError> {
    if only.is_some() {
        let (artifacts, problems) = source.list_scoped(only)?;
        return Ok(in_memory(source, artifacts, problems, only, scope, keep));
    }
    let mut problems = Vec::new();
    let mut held = Some(Vec::new());
    let mut survey = Survey::default();
    let mut manifests = Vec::new();
    let mut surveyed = |a: Artifact, survey: &mut Survey| {
        survey.add(&a);
        if let Some(kind) = manifest::classify_name(a.file_name()) {
            manifests.push((a, kind));
        }
    };
    source.list_each(&mut |found| match found {
        Err(p) => problems.push(p),
        Ok(a) => match &mut held {
            Some(h) if h.len() < in_memory_up_to => h.push(a),
            Some(_) => {
                for a in held.take().into_iter().flatten() {
                    surveyed(a, &mut survey);
                }
                surveyed(a, &mut survey);
            }
            None => surveyed(a, &mut survey),
        },
    })?;
    if let Some(mut artifacts) = held {
        artifacts.sort_by(|a, b| a.key.cmp(&b.key));
        return Ok(in_memory(source, artifacts, problems, None, scope, keep));
    }
    let owners = survey.owners();
    // The directories the survey listed: a file in any other one appeared
    // since, and its directory's layout was never learned.
    let surveyed: HashSet<String> = survey.into_dirs();
    // Manifests inside a directory backup are its members.
    manifests.retain(|(a, _)| owners.of(&a.key).is_none());
    manifests.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let location = source.location();
    let owns_source = scope.shard.owns_source(&location);
    // As `Catalog::keep_shard`: a kept base backup or WAL archive makes
    // the source one unit.
    let whole = scope.whole
        || owners
            .iter()
            .any(|(d, l)| l.is_physical() && scope.filter.keeps(d));
    let mut grouper = Grouper {
        source,
        scope,
        owners: &owners,
        owns: |key: &str| {
            scope.shard.is_whole()
                || if whole {
                    owns_source
                } else {
                    scope.shard.owns_backup(&location, key)
                }
        },
        promised: HashMap::new(),
        open: None,
        closed: HashSet::new(),
        split: None,
        keep,
        listed: 0,
    };
    let mut catalog = Catalog::default();
    for (artifact, kind) in &manifests {
        match load_manifest(source, artifact, kind) {
            Err(e) => catalog.manifests.push(ManifestState::Unreadable(e)),
            Ok(m) => {
                catalog.manifests.push(ManifestState::Parsed {
                    key: m.key.clone(),
                    entries: m.entries.len(),
                });
                for e in m.entries {
                    let expected = e.expectation(&m.key);
                    grouper
                        .promised
                        .entry(e.target)
                        .or_default()
                        .0
                        .push(expected);
                }
            }
        }
    }
    // An entry the second listing cannot read is a problem once, whichever
    // listing met it: never an artifact that silently went missing.
    let mut known: HashSet<String> = problems.iter().map(|p| p.location.clone()).collect();
    let mut appeared = 0usize;
    source.list_each(&mut |found| match found {
        Ok(a) if surveyed.contains(a.dir()) => grouper.take(a),
        // Written while the source was planned, like a file created after
        // a listing: the next run audits it, with its directory's layout
        // known (a dump directory half seen would be files of no format).
        Ok(_) => appeared += 1,
        Err(p) => {
            if known.insert(p.location.clone()) {
                problems.push(p);
            }
        }
    })?;
    grouper.close();
    if appeared > 0 {
        tracing::info!(
            appeared,
            "files in directories created while the source was planned: left to the next run"
        );
    }
    if let Some(dir) = grouper.split {
        return Err(SourceError {
            location: source.subject(&dir),
            reason: "the store listed this directory backup's keys apart, not together: \
                     its members cannot be gathered without holding the whole listing"
                .into(),
        });
    }
    // A manifest line naming a manifest is not a missing backup.
    let manifest_keys: HashSet<&str> = manifests.iter().map(|(a, _)| a.key.as_str()).collect();
    let mut missing: Vec<MissingEntry> = grouper
        .promised
        .iter()
        .filter(|(target, (_, found))| !found && !manifest_keys.contains(target.as_str()))
        .flat_map(|(target, (expected, _))| {
            expected.iter().map(|e| MissingEntry {
                target: target.clone(),
                manifest: e.manifest.clone(),
                line: e.line,
            })
        })
        .collect();
    // In the order the manifests name them, as `build` reports them.
    missing.sort_by(|a, b| (&a.manifest, a.line).cmp(&(&b.manifest, b.line)));
    catalog.missing = missing;
    let listed = grouper.listed;
    if !scope.shard.is_whole() && !owns_source {
        catalog.manifests.clear();
        catalog.missing.clear();
    }
    Ok(Planned {
        catalog,
        problems,
        listed,
        streamed: true,
    })
}

fn in_memory(
    source: &dyn Storage,
    artifacts: Vec<Artifact>,
    problems: Vec<SourceError>,
    only: Option<&str>,
    scope: &Scope,
    keep: &mut dyn FnMut(Backup),
) -> Planned {
    let mut catalog = super::build(source, artifacts, scope.pattern, only);
    catalog.retain(scope.filter);
    let listed = catalog.backups.len();
    catalog.keep_shard(scope.shard, &source.location(), scope.whole);
    catalog.backups.drain(..).for_each(keep);
    Planned {
        catalog,
        problems,
        listed,
        streamed: false,
    }
}

/// The second listing's state: the directory backup being gathered, and
/// the backups kept so far.
struct Grouper<'a, F> {
    source: &'a dyn Storage,
    scope: &'a Scope<'a>,
    owners: &'a Owners,
    owns: F,
    /// Manifest promises by target, and whether the target was listed.
    promised: HashMap<String, (Vec<Expectation>, bool)>,
    open: Option<(String, Layout, Vec<Artifact>)>,
    /// Directory backups already gathered: met again, the store does not
    /// list a directory's keys together.
    closed: HashSet<String>,
    split: Option<String>,
    keep: &'a mut dyn FnMut(Backup),
    listed: usize,
}

impl<F: Fn(&str) -> bool> Grouper<'_, F> {
    fn take(&mut self, a: Artifact) {
        let owner = self.owners.of(&a.key).map(|(d, l)| (d.to_string(), l));
        match owner {
            Some((dir, layout)) => {
                if let Some((open, _, members)) = &mut self.open
                    && *open == dir
                {
                    members.push(a);
                    return;
                }
                self.close();
                if self.closed.contains(&dir) {
                    self.split.get_or_insert_with(|| dir.clone());
                }
                self.open = Some((dir, layout, vec![a]));
            }
            None => {
                self.close();
                // Manifests were read from the survey; one that appeared
                // since is still no backup.
                if manifest::classify_name(a.file_name()).is_some() {
                    return;
                }
                let (timestamp, timestamp_from) = stamp(self.scope.pattern, a.file_name(), &a);
                self.judge(Backup {
                    key: a.key.clone(),
                    layout: Layout::File,
                    size: a.size,
                    members: vec![a],
                    timestamp,
                    timestamp_from,
                    expected: Default::default(),
                });
            }
        }
    }

    /// The directory backup being gathered is complete.
    fn close(&mut self) {
        let Some((dir, layout, mut members)) = self.open.take() else {
            return;
        };
        members.sort_by(|a, b| a.key.cmp(&b.key));
        let name = dir.rsplit('/').next().unwrap_or(&dir);
        let (timestamp, timestamp_from) =
            dir_stamp(self.source, self.scope.pattern, name, layout, &members);
        self.closed.insert(dir.clone());
        self.judge(Backup {
            key: dir,
            layout,
            size: members.iter().map(|m| m.size).sum(),
            members,
            timestamp,
            timestamp_from,
            expected: Default::default(),
        });
    }

    /// Marks the manifests' promises for `b` as listed, and keeps `b` if
    /// the filter keeps it and this shard owns it.
    fn judge(&mut self, mut b: Backup) {
        let keep = self.scope.filter.keeps(&b.key) && {
            self.listed += 1;
            (self.owns)(&b.key)
        };
        for m in &b.members {
            if let Some((expected, found)) = self.promised.get_mut(&m.key) {
                *found = true;
                if keep {
                    b.expected.insert(m.key.clone(), std::mem::take(expected));
                } else {
                    expected.clear();
                }
            }
        }
        if keep {
            (self.keep)(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::Path;

    use super::*;
    use crate::source::Opened;
    use crate::source::local::LocalSource;

    /// How the test store hands its listing over.
    #[derive(Clone, Copy, Debug)]
    enum Order {
        /// The directory walk's own: by path components.
        Walk,
        /// AWS S3's: by key bytes.
        Bytes,
        /// Every other key first, then the rest: splits directories.
        Interleaved,
    }

    /// A local tree listed in a chosen order.
    struct Listed {
        inner: LocalSource,
        order: Order,
        /// The second listing differs: one file unreadable, and a dump
        /// directory written since the first.
        changes: bool,
        listings: std::sync::atomic::AtomicUsize,
    }

    impl Listed {
        fn new(root: &Path, order: Order) -> Listed {
            Listed {
                inner: LocalSource::new(root),
                order,
                changes: false,
                listings: Default::default(),
            }
        }
    }

    impl Storage for Listed {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn subject(&self, key: &str) -> String {
            Storage::subject(&self.inner, key)
        }
        fn list_scoped(
            &self,
            only: Option<&str>,
        ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
            self.inner.list_scoped(only)
        }
        fn list_each(
            &self,
            each: &mut dyn FnMut(Result<Artifact, SourceError>),
        ) -> Result<(), SourceError> {
            let mut all = Vec::new();
            self.inner
                .list_each(&mut |a| all.push(a.expect("test tree lists")))?;
            match self.order {
                Order::Walk => {}
                Order::Bytes => all.sort_by(|a, b| a.key.cmp(&b.key)),
                Order::Interleaved => {
                    let (even, odd): (Vec<_>, Vec<_>) =
                        all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
                    all = even.into_iter().chain(odd).map(|(_, a)| a).collect();
                }
            }
            let second = self
                .listings
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                == 1;
            if self.changes && second {
                let t = chrono::Utc::now();
                all.push(Artifact::new("late/app-2026-11-22.dir/toc.dat", 3, t));
                all.push(Artifact::new("late/app-2026-11-22.dir/3001.dat.gz", 4, t));
                for a in all {
                    each(match a.key.as_str() {
                        "dumps/loose-2026-11-18.sql" => Err(SourceError {
                            location: Storage::subject(self, &a.key),
                            reason: "Permission denied".into(),
                        }),
                        _ => Ok(a),
                    });
                }
                return Ok(());
            }
            all.into_iter().map(Ok).for_each(each);
            Ok(())
        }
        fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
            self.inner.open(artifact)
        }
        fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read_at(artifact, offset, buf)
        }
    }

    fn write(root: &Path, key: &str, body: &str) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// Every layout, manifests at several levels (one naming a file that is
    /// not there, one naming another manifest), sidecars, and sibling
    /// names that byte order and component order sort differently.
    fn tree(root: &Path) {
        let sha = "0".repeat(64);
        for d in ["a", "a b", "a.b", "a-b"] {
            write(root, &format!("{d}/app-2026-11-20T0300.dump"), "x");
            write(root, &format!("{d}/deep/app-2026-11-21T0300.dump"), "yy");
        }
        write(
            root,
            "a/app-2026-11-20T0300.dump.sha256",
            &format!("{sha}  app-2026-11-20T0300.dump\n"),
        );
        // A directory-format dump, in a directory that also has loose files.
        write(root, "dumps/app-2026-11-19.dir/toc.dat", "toc");
        write(root, "dumps/app-2026-11-19.dir/3001.dat.gz", "data");
        write(root, "dumps/app-2026-11-19.dir/sub/3002.dat.gz", "data");
        write(root, "dumps/app-2026-11-19.dir/sub.x.dat.gz", "data");
        write(root, "dumps/loose-2026-11-18.sql", "sql");
        // Base backups and a WAL archive: physical, excluded by `phys-*`.
        write(root, "phys-base/PG_VERSION", "15\n");
        write(
            root,
            "phys-base/backup_label",
            "START TIME: 2026-11-20 03:00:00 UTC\n",
        );
        write(root, "phys-base/global/pg_control", "ctl");
        write(root, "phys-base/base/1/1259", "rel");
        write(root, "phys-base/base/1/PG_VERSION", "15\n");
        write(root, "phys-tar/base.tar.gz", "tar");
        write(root, "phys-tar/backup_manifest", "{}");
        write(root, "phys-wal/000000010000000000000001", "w");
        write(root, "phys-wal/000000010000000000000002", "w");
        write(root, "phys-wal/00000002.history", "h");
        write(root, "mdb/2026-11-20/xtrabackup_checkpoints", "c");
        write(root, "mdb/2026-11-20/ibdata1", "i");
        write(root, "mdb/2026-11-20/db/t.ibd", "t");
        write(root, "mdb/2026-11-21/backup-my.cnf", "c");
        write(
            root,
            "mdb/2026-11-21/xtrabackup_info",
            "start_time = 2026-11-21 03:00:00\n",
        );
        write(root, "mdb/2026-11-21/ibdata1", "i");
        write(
            root,
            "SHA256SUMS",
            &format!(
                "{sha}  a/app-2026-11-20T0300.dump\n{sha}  gone-2026-11-01.dump\n\
                 {sha}  dumps/app-2026-11-19.dir/toc.dat\n{sha}  a/app-2026-11-20T0300.dump.sha256\n\
                 {sha}  a b/deep/app-2026-11-21T0300.dump\n"
            ),
        );
        write(
            root,
            "dumps/B3SUMS",
            &format!("{sha}  loose-2026-11-18.sql\n{sha}  lost.sql\n"),
        );
        for i in 0..40 {
            write(
                root,
                &format!("many/n{i:02}/db-2026-11-{:02}.dump", i % 28 + 1),
                "z",
            );
        }
    }

    fn planned(
        store: &Listed,
        scope: &Scope,
        limit: usize,
    ) -> Result<(String, usize), SourceError> {
        plan(store, None, scope, limit).map(|p| {
            assert_eq!(p.streamed, limit == 0);
            (format!("{:?}", p.catalog), p.listed)
        })
    }

    #[test]
    fn a_streamed_plan_equals_the_plan_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let pattern = TimestampPattern::default();
        let everything = Filter::default();
        let logical = Filter::new(None, &["phys-*".to_string()]).unwrap();
        let mut per_shard_kept = 0;
        for order in [Order::Walk, Order::Bytes] {
            let store = Listed::new(dir.path(), order);
            for filter in [&everything, &logical] {
                for whole in [false, true] {
                    for shard in [
                        Shard::WHOLE,
                        Shard::new(0, 3).unwrap(),
                        Shard::new(2, 3).unwrap(),
                    ] {
                        let scope = Scope {
                            pattern: &pattern,
                            filter,
                            shard,
                            whole,
                        };
                        let held = planned(&store, &scope, usize::MAX).unwrap();
                        let streamed = planned(&store, &scope, 0).unwrap();
                        assert_eq!(held, streamed, "{order:?} whole={whole} shard {shard}");
                    }
                }
            }
            // Per backup, the shards split the logical backups between them.
            let keys = |shard| {
                let scope = Scope {
                    pattern: &pattern,
                    filter: &logical,
                    shard,
                    whole: false,
                };
                plan(&store, None, &scope, 0)
                    .unwrap()
                    .catalog
                    .backups
                    .into_iter()
                    .map(|b| b.key)
                    .collect::<Vec<_>>()
            };
            let all = keys(Shard::WHOLE);
            let mut union: Vec<String> = (0..3)
                .flat_map(|i| keys(Shard::new(i, 3).unwrap()))
                .collect();
            per_shard_kept = union.len().max(per_shard_kept);
            union.sort();
            assert_eq!(union, all, "{order:?}: every backup in exactly one shard");
        }
        assert!(per_shard_kept > 50, "the tree has backups to shard");
    }

    #[test]
    fn the_streamed_plan_holds_what_the_catalog_should() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let store = Listed::new(dir.path(), Order::Walk);
        let pattern = TimestampPattern::default();
        let scope = Scope {
            pattern: &pattern,
            filter: &Filter::default(),
            shard: Shard::WHOLE,
            whole: false,
        };
        let p = plan(&store, None, &scope, 0).unwrap();
        let layout = |key: &str| {
            p.catalog
                .backups
                .iter()
                .find(|b| b.key == key)
                .map(|b| (b.layout, b.members.len()))
        };
        assert_eq!(
            layout("dumps/app-2026-11-19.dir"),
            Some((Layout::PgDirectory, 4))
        );
        assert_eq!(layout("phys-base"), Some((Layout::PgBaseBackup, 5)));
        assert_eq!(layout("phys-tar"), Some((Layout::PgBaseBackupTar, 2)));
        assert_eq!(layout("phys-wal"), Some((Layout::WalArchive, 3)));
        assert_eq!(layout("mdb/2026-11-20"), Some((Layout::MariadbBackup, 3)));
        assert_eq!(layout("mdb/2026-11-21"), Some((Layout::MariadbBackup, 3)));
        assert_eq!(
            layout("a b/deep/app-2026-11-21T0300.dump"),
            Some((Layout::File, 1))
        );
        // Manifests are no backups; their lines are the backups' promises.
        assert_eq!(layout("SHA256SUMS"), None);
        let dump = p
            .catalog
            .backups
            .iter()
            .find(|b| b.key == "a/app-2026-11-20T0300.dump")
            .unwrap();
        assert_eq!(
            dump.expected["a/app-2026-11-20T0300.dump"].len(),
            2,
            "SHA256SUMS and the sidecar"
        );
        let missing: Vec<_> = p
            .catalog
            .missing
            .iter()
            .map(|m| (m.target.as_str(), m.line))
            .collect();
        assert_eq!(
            missing,
            [("gone-2026-11-01.dump", 2), ("dumps/lost.sql", 2)]
        );
        assert_eq!(p.catalog.manifests.len(), 3);
    }

    #[test]
    fn a_store_that_lists_a_directory_apart_makes_the_plan_an_error() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let store = Listed::new(dir.path(), Order::Interleaved);
        let pattern = TimestampPattern::default();
        let scope = Scope {
            pattern: &pattern,
            filter: &Filter::default(),
            shard: Shard::WHOLE,
            whole: false,
        };
        let err = planned(&store, &scope, 0).unwrap_err().to_string();
        assert!(
            err.contains("listed this directory backup's keys apart"),
            "{err}"
        );
        // Held in memory, the order does not matter.
        assert!(planned(&store, &scope, usize::MAX).is_ok());
    }

    #[test]
    fn what_changes_between_the_two_listings_is_never_lost_silently() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let store = Listed {
            changes: true,
            ..Listed::new(dir.path(), Order::Walk)
        };
        let pattern = TimestampPattern::default();
        let scope = Scope {
            pattern: &pattern,
            filter: &Filter::default(),
            shard: Shard::WHOLE,
            whole: false,
        };
        let p = plan(&store, None, &scope, 0).unwrap();
        // Readable in the survey, not when grouped: a problem, not a gap.
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(
            p.problems[0]
                .location
                .ends_with("dumps/loose-2026-11-18.sql")
        );
        let keys: Vec<&str> = p.catalog.backups.iter().map(|b| b.key.as_str()).collect();
        assert!(!keys.contains(&"dumps/loose-2026-11-18.sql"));
        // A dump directory written since the survey is left to the next
        // run, never taken for two files of no format.
        assert!(!keys.iter().any(|k| k.starts_with("late/")), "{keys:?}");
    }
}
