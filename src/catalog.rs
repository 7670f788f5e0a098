//! Catalog: artifacts grouped into backups, with their timestamps and the
//! checksums that manifests and sidecars promise for them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde::Serialize;

use crate::digest::Algorithm;
use crate::expectation::Expectation;
use crate::manifest::{self, ManifestError};
use crate::source::{Artifact, Storage};

pub mod plan;

/// Manifests larger than this are refused rather than loaded into memory.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One file is one backup.
    File,
    /// A `pg_dump -Fd` directory: `toc.dat` plus one file per table.
    PgDirectory,
    /// A plain `pg_basebackup -Fp` directory: `PG_VERSION` and `global/`
    /// beside `backup_label` or `backup_manifest`; a copy of a data
    /// directory, so its thousand files are one backup.
    PgBaseBackup,
    /// A mariadb-backup / xtrabackup directory (`xtrabackup_checkpoints`,
    /// `backup-my.cnf`, `xtrabackup_info`).
    MariadbBackup,
    /// A `pg_basebackup -Ft` directory: `base.tar[.gz|.zst|.lz4]` beside
    /// `backup_manifest` or `pg_wal.tar`.
    PgBaseBackupTar,
    /// A WAL archive: mostly segment, `.history` and `.backup` names.
    WalArchive,
}

impl Layout {
    /// What a directory backup is, from its layout alone; `None` for a
    /// single file, which only its bytes tell.
    pub fn kind(self) -> Option<crate::inspect::Kind> {
        use crate::inspect::{Format, Kind};
        let format = match self {
            Layout::PgDirectory => Format::PgToc,
            Layout::PgBaseBackup => Format::PgBaseBackup,
            Layout::MariadbBackup => Format::MariadbBackup,
            Layout::PgBaseBackupTar => Format::PgBaseBackupTar,
            Layout::WalArchive => Format::WalArchive,
            Layout::File => return None,
        };
        Some(Kind {
            format,
            compression: None,
        })
    }

    /// Base backups and WAL archives: judged together (pairing, windows).
    pub fn is_physical(self) -> bool {
        matches!(
            self,
            Layout::PgBaseBackup | Layout::PgBaseBackupTar | Layout::WalArchive
        )
    }

    /// Which directory layout a directory's own file names announce.
    fn of_dir(names: &DirNames, has_global: bool) -> Option<Layout> {
        let has = |m: u8| names.markers & m != 0;
        if has(TOC) {
            Some(Layout::PgDirectory)
        } else if has(PG_VERSION) && has_global && (has(BACKUP_LABEL) || has(BACKUP_MANIFEST)) {
            Some(Layout::PgBaseBackup)
        } else if has(XTRABACKUP_CHECKPOINTS)
            // Two of the three markers: a backup whose checkpoints file is
            // lost is still that backup (and fails for it), not 200 files.
            || (has(BACKUP_MY_CNF) && has(XTRABACKUP_INFO))
        {
            Some(Layout::MariadbBackup)
        } else {
            crate::inspect::physical::layout_of_dir(&names.physical).map(|l| match l {
                crate::inspect::physical::DirLayout::BaseBackupTar => Layout::PgBaseBackupTar,
                crate::inspect::physical::DirLayout::WalArchive => Layout::WalArchive,
            })
        }
    }
}

// The file names that announce a directory layout, as bits of `DirNames`.
const TOC: u8 = 1;
const PG_VERSION: u8 = 2;
const BACKUP_LABEL: u8 = 4;
const BACKUP_MANIFEST: u8 = 8;
const XTRABACKUP_CHECKPOINTS: u8 = 16;
const BACKUP_MY_CNF: u8 = 32;
const XTRABACKUP_INFO: u8 = 64;

/// What a directory's own file names say about its layout, gathered one
/// name at a time: the marker names it holds and the counts the physical
/// layouts need, never the names themselves.
#[derive(Clone, Debug, Default)]
struct DirNames {
    markers: u8,
    physical: crate::inspect::physical::DirNames,
}

impl DirNames {
    fn add(&mut self, name: &str) {
        self.markers |= match name {
            "toc.dat" => TOC,
            "PG_VERSION" => PG_VERSION,
            "backup_label" => BACKUP_LABEL,
            "backup_manifest" => BACKUP_MANIFEST,
            "xtrabackup_checkpoints" => XTRABACKUP_CHECKPOINTS,
            "backup-my.cnf" => BACKUP_MY_CNF,
            "xtrabackup_info" => XTRABACKUP_INFO,
            _ => 0,
        };
        self.physical.add(name);
    }
}

/// Which directories of a listing are one backup each, learned one
/// artifact at a time: per directory its [`DirNames`], and which
/// directories have a `global/` subdirectory.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    dirs: HashMap<String, DirNames>,
    with_global: HashSet<String>,
}

impl Survey {
    pub(crate) fn add(&mut self, a: &Artifact) {
        let dir = a.dir();
        match self.dirs.get_mut(dir) {
            Some(names) => names.add(a.file_name()),
            None => {
                let mut names = DirNames::default();
                names.add(a.file_name());
                self.dirs.insert(dir.to_string(), names);
                if let Some(d) = dir
                    .strip_suffix("global")
                    .filter(|d| d.is_empty() || d.ends_with('/'))
                {
                    self.with_global
                        .insert(d.strip_suffix('/').unwrap_or(d).to_string());
                }
            }
        }
    }

    /// The directories listed so far.
    pub(crate) fn into_dirs(self) -> HashSet<String> {
        self.dirs.into_keys().collect()
    }

    /// Directories that are one backup each, with their layout: a
    /// directory whose own files announce a layout owns everything under
    /// it, and the outermost wins, so that e.g. base/1/PG_VERSION inside a
    /// base backup never starts a backup of its own.
    pub(crate) fn owners(&self) -> Owners {
        let mut found: Vec<(&str, Layout)> = self
            .dirs
            .iter()
            .filter_map(|(dir, names)| {
                let layout = Layout::of_dir(names, self.with_global.contains(dir))?;
                // A dump directory at the root is a source of loose files to
                // the old rules; only the directory kinds new here may be the
                // root.
                (layout != Layout::PgDirectory || !dir.is_empty()).then_some((dir.as_str(), layout))
            })
            .collect();
        found.sort_by_key(|(d, _)| (d.len(), *d));
        let mut outermost = Owners::default();
        for (d, l) in found {
            if outermost.of(d).is_none() {
                outermost.0.insert(d.to_string(), l);
            }
        }
        outermost
    }
}

/// The directories that are one backup each (outermost only).
#[derive(Debug, Default)]
pub(crate) struct Owners(HashMap<String, Layout>);

impl Owners {
    /// The directory backup `key` belongs to (the root, or a directory
    /// above it), looked up one path prefix at a time.
    pub(crate) fn of<'a>(&'a self, key: &str) -> Option<(&'a str, Layout)> {
        if self.0.is_empty() {
            return None;
        }
        let get = |d: &str| self.0.get_key_value(d).map(|(d, l)| (d.as_str(), *l));
        if let Some(root) = get("") {
            return (!key.is_empty()).then_some(root);
        }
        key.match_indices('/').find_map(|(i, _)| get(&key[..i]))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Layout)> {
        self.0.iter().map(|(d, l)| (d.as_str(), *l))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFrom {
    Name,
    Mtime,
    /// The backup's own record of when it started (`backup_label`'s START
    /// TIME, `xtrabackup_info`'s start_time).
    Label,
}

#[derive(Clone, Debug, Serialize)]
pub struct Backup {
    /// The file key, or the directory key for a directory-format dump.
    pub key: String,
    pub layout: Layout,
    pub members: Vec<Artifact>,
    pub size: u64,
    pub timestamp: DateTime<Utc>,
    pub timestamp_from: TimestampFrom,
    /// Per member key.
    pub expected: BTreeMap<String, Vec<Expectation>>,
}

impl Backup {
    /// The digests a verification pass must compute for one member: SHA-256
    /// always (it is the evidence reports carry), plus whatever a manifest uses.
    pub fn algorithms_for(&self, member: &str, extra: &[Algorithm]) -> BTreeSet<Algorithm> {
        let mut set: BTreeSet<Algorithm> = extra.iter().copied().collect();
        if extra.is_empty() {
            set.insert(Algorithm::Sha256);
        }
        for e in self.expected.get(member).into_iter().flatten() {
            set.insert(e.algorithm);
        }
        set
    }

    pub fn covered(&self) -> bool {
        self.members
            .iter()
            .all(|m| self.expected.get(&m.key).is_some_and(|v| !v.is_empty()))
    }
}

/// What happened to each manifest.
#[derive(Clone, Debug)]
pub enum ManifestState {
    Parsed { key: String, entries: usize },
    Unreadable(ManifestError),
}

/// A manifest line naming a file the source does not hold.
#[derive(Clone, Debug)]
pub struct MissingEntry {
    pub target: String,
    pub manifest: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub backups: Vec<Backup>,
    pub manifests: Vec<ManifestState>,
    pub missing: Vec<MissingEntry>,
}

impl Catalog {
    /// Keeps what `shard` owns. A backup is its own unit unless its
    /// judgement depends on the source's others (`whole`: a restore picks
    /// the newest restorable dump of its series; base backups pair with
    /// their WAL archive): then the source is one unit. The manifests' own
    /// findings are source-wide, so they stay with the source's owner.
    pub fn keep_shard(&mut self, shard: crate::shard::Shard, location: &str, whole: bool) {
        if shard.is_whole() {
            return;
        }
        let owns_source = shard.owns_source(location);
        if whole || self.backups.iter().any(|b| b.layout.is_physical()) {
            if !owns_source {
                self.backups.clear();
            }
        } else {
            self.backups.retain(|b| shard.owns_backup(location, &b.key));
        }
        if !owns_source {
            self.manifests.clear();
            self.missing.clear();
        }
    }
}

/// A `--timestamp-pattern` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("pattern ends with a lone %")]
    LonePercent,
    #[error("unsupported field %{0} (use %Y %m %d %H %M %S)")]
    Unsupported(char),
    #[error("field %{0} appears twice")]
    Twice(char),
    #[error("pattern {pattern:?} lacks %{field}")]
    Lacks { pattern: String, field: char },
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

/// Why a manifest's text could not be had.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0} bytes is too large for a manifest")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Turns a file name into a timestamp.
#[derive(Clone, Debug)]
pub struct TimestampPattern {
    regex: Regex,
}

impl Default for TimestampPattern {
    /// Finds `2026-11-20`, `20261120`, `2026-11-20T0300`, `2026-11-20_03-00-00`
    /// and the like anywhere in the name.
    fn default() -> Self {
        TimestampPattern {
            regex: Regex::new(
                r"(?P<Y>\d{4})-?(?P<m>\d{2})-?(?P<d>\d{2})(?:[T_ .-]?(?P<H>\d{2})[:-]?(?P<M>\d{2})(?:[:-]?(?P<S>\d{2}))?)?",
            )
            .expect("static regex"),
        }
    }
}

impl TimestampPattern {
    /// A strftime-like pattern (`%Y %m %d %H %M %S`, other text literal) found
    /// anywhere in the name, e.g. `appdb_%Y%m%d_%H%M`.
    pub fn from_strftime(pattern: &str) -> Result<Self, PatternError> {
        let mut re = String::new();
        let mut chars = pattern.chars();
        let mut seen = BTreeSet::new();
        while let Some(c) = chars.next() {
            if c != '%' {
                re.push_str(&regex::escape(&c.to_string()));
                continue;
            }
            let field = chars.next().ok_or(PatternError::LonePercent)?;
            let group = match field {
                'Y' => r"(?P<Y>\d{4})",
                'm' => r"(?P<m>\d{2})",
                'd' => r"(?P<d>\d{2})",
                'H' => r"(?P<H>\d{2})",
                'M' => r"(?P<M>\d{2})",
                'S' => r"(?P<S>\d{2})",
                '%' => "%",
                other => return Err(PatternError::Unsupported(other)),
            };
            if field != '%' && !seen.insert(field) {
                return Err(PatternError::Twice(field));
            }
            re.push_str(group);
        }
        for needed in ['Y', 'm', 'd'] {
            if !seen.contains(&needed) {
                return Err(PatternError::Lacks {
                    pattern: pattern.to_string(),
                    field: needed,
                });
            }
        }
        Ok(TimestampPattern {
            regex: Regex::new(&re)?,
        })
    }

    /// The series a key belongs to: the key with its timestamp replaced by
    /// `*` in the last component ("pg/appdb-2026-11-20T0300.dump" is in
    /// "pg/appdb-*.dump"). A name without a timestamp is a series of one.
    pub fn series(&self, key: &str) -> String {
        let (dir, name) = match key.rfind('/') {
            Some(i) => key.split_at(i + 1),
            None => ("", key),
        };
        let span = self.regex.captures_iter(name).find_map(|caps| {
            let num = |g: &str| caps.name(g).and_then(|m| m.as_str().parse::<u32>().ok());
            let (y, m, d) = (num("Y")?, num("m")?, num("d")?);
            NaiveDate::from_ymd_opt(y as i32, m, d)?;
            // From the first field to the last: a strftime pattern's
            // literal text ("shop_") is the series' name, not its time.
            let fields = ["Y", "m", "d", "H", "M", "S"].map(|g| caps.name(g));
            let start = fields.iter().flatten().map(|m| m.start()).min()?;
            let end = fields.iter().flatten().map(|m| m.end()).max()?;
            Some(start..end)
        });
        match span {
            Some(r) => format!("{dir}{}*{}", &name[..r.start], &name[r.end..]),
            None => key.to_string(),
        }
    }

    /// The first valid date in `name`, read as UTC.
    pub fn parse(&self, name: &str) -> Option<DateTime<Utc>> {
        for caps in self.regex.captures_iter(name) {
            let num = |g: &str| caps.name(g).and_then(|m| m.as_str().parse::<u32>().ok());
            let (Some(y), Some(m), Some(d)) = (num("Y"), num("m"), num("d")) else {
                continue;
            };
            let Some(date) = NaiveDate::from_ymd_opt(y as i32, m, d) else {
                continue;
            };
            let time = date.and_hms_opt(
                num("H").unwrap_or(0),
                num("M").unwrap_or(0),
                num("S").unwrap_or(0),
            );
            if let Some(t) = time.map(|t: NaiveDateTime| Utc.from_utc_datetime(&t)) {
                return Some(t);
            }
            // A valid date with an impossible time (e.g. a trailing serial
            // number read as hours): keep the date.
            return Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
        }
        None
    }
}

/// Which backups of a source count: `pattern` (a glob, matched against the
/// key or the file name) keeps, `exclude` globs drop.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pattern: Option<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

/// A `pattern` or `exclude` glob that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("glob {glob:?}: {source}")]
pub struct FilterError {
    pub glob: String,
    #[source]
    pub source: glob::PatternError,
}

impl Filter {
    pub fn new(pattern: Option<&str>, exclude: &[String]) -> Result<Filter, FilterError> {
        let compile = |g: &str| {
            glob::Pattern::new(g).map_err(|source| FilterError {
                glob: g.to_string(),
                source,
            })
        };
        Ok(Filter {
            pattern: pattern.map(compile).transpose()?,
            exclude: exclude
                .iter()
                .map(|g| compile(g))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.pattern.is_none() && self.exclude.is_empty()
    }

    pub fn keeps(&self, key: &str) -> bool {
        let name = key.rsplit('/').next().unwrap_or(key);
        let hit = |p: &glob::Pattern| p.matches(key) || p.matches(name);
        self.pattern.as_ref().is_none_or(hit) && !self.exclude.iter().any(hit)
    }
}

impl Catalog {
    /// Drops the backups the filter does not keep. Manifest lines naming
    /// them stay satisfied: the files exist, they are only not audited.
    pub fn retain(&mut self, filter: &Filter) {
        if !filter.is_empty() {
            self.backups.retain(|b| filter.keeps(&b.key));
        }
    }
}

/// Groups a source's artifacts into backups and loads its manifests.
/// `only`, when set, keeps the backups whose key is (or is under) that key:
/// a spot check of one file still uses the manifests beside it.
pub fn build(
    source: &dyn Storage,
    artifacts: Vec<Artifact>,
    pattern: &TimestampPattern,
    only: Option<&str>,
) -> Catalog {
    let mut catalog = Catalog::default();

    let mut survey = Survey::default();
    artifacts.iter().for_each(|a| survey.add(a));
    let owners = survey.owners();

    let mut manifests = Vec::new();
    let mut by_dir: BTreeMap<String, (Layout, Vec<Artifact>)> = BTreeMap::new();
    let mut singles = Vec::new();
    for a in artifacts {
        if let Some((dir, layout)) = owners.of(&a.key) {
            by_dir
                .entry(dir.to_string())
                .or_insert_with(|| (layout, Vec::new()))
                .1
                .push(a);
        } else if let Some(kind) = manifest::classify_name(a.file_name()) {
            manifests.push((a, kind));
        } else {
            singles.push(a);
        }
    }

    let mut backups: Vec<Backup> = singles
        .into_iter()
        .map(|a| {
            let (timestamp, timestamp_from) = stamp(pattern, a.file_name(), &a);
            Backup {
                key: a.key.clone(),
                layout: Layout::File,
                size: a.size,
                members: vec![a],
                timestamp,
                timestamp_from,
                expected: BTreeMap::new(),
            }
        })
        .collect();
    for (dir, (layout, members)) in by_dir {
        let name = dir.rsplit('/').next().unwrap_or(&dir).to_string();
        let (timestamp, timestamp_from) = dir_stamp(source, pattern, &name, layout, &members);
        backups.push(Backup {
            key: dir,
            layout,
            size: members.iter().map(|m| m.size).sum(),
            members,
            timestamp,
            timestamp_from,
            expected: BTreeMap::new(),
        });
    }
    backups.sort_by(|a, b| a.key.cmp(&b.key));

    if let Some(only) = only {
        backups
            .retain(|b| b.key == only || b.key.starts_with(&format!("{only}/")) || only.is_empty());
    }

    // Member key -> backup index, to attach expectations: borrowed from the
    // backups (a million keys are not copied), and only with manifests to
    // read. The expectations are attached once the index is done with.
    let index: HashMap<&str, usize> = match manifests.is_empty() {
        true => HashMap::new(),
        false => (backups.iter().enumerate())
            .flat_map(|(i, b)| b.members.iter().map(move |m| (m.key.as_str(), i)))
            .collect(),
    };
    let mut attach = Vec::new();
    let manifest_keys: BTreeSet<String> = manifests.iter().map(|(a, _)| a.key.clone()).collect();

    for (artifact, kind) in manifests {
        match load_manifest(source, &artifact, &kind) {
            Err(e) => catalog.manifests.push(ManifestState::Unreadable(e)),
            Ok(m) => {
                // A spot check reports only the manifests that speak of it.
                let relevant = only.is_none()
                    || m.entries
                        .iter()
                        .any(|e| index.contains_key(e.target.as_str()));
                if relevant {
                    catalog.manifests.push(ManifestState::Parsed {
                        key: m.key.clone(),
                        entries: m.entries.len(),
                    });
                }
                for e in m.entries {
                    match index.get(e.target.as_str()) {
                        Some(&i) => {
                            let expectation = e.expectation(&m.key);
                            attach.push((i, e.target, expectation));
                        }
                        None => {
                            // Outside the spot-checked scope, or a manifest
                            // listing another manifest: not missing.
                            let in_scope = only.is_none_or(|o| {
                                e.target == o || e.target.starts_with(&format!("{o}/"))
                            });
                            if in_scope && !manifest_keys.contains(&e.target) {
                                catalog.missing.push(MissingEntry {
                                    target: e.target,
                                    manifest: m.key.clone(),
                                    line: e.line,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    drop(index);
    for (i, target, expectation) in attach {
        backups[i]
            .expected
            .entry(target)
            .or_default()
            .push(expectation);
    }
    catalog.backups = backups;
    catalog
}

fn stamp(pattern: &TimestampPattern, name: &str, a: &Artifact) -> (DateTime<Utc>, TimestampFrom) {
    match pattern.parse(name) {
        Some(t) => (t, TimestampFrom::Name),
        None => (a.modified, TimestampFrom::Mtime),
    }
}

/// Backup-label files are a few hundred bytes; more is not a label.
const MAX_LABEL_BYTES: u64 = 64 * 1024;

/// A directory backup's time: the start time it records itself when it has
/// a zone (backup_label), else its name, else the start time it records
/// without a zone (xtrabackup_info, read as UTC), else the newest mtime.
fn dir_stamp(
    source: &dyn Storage,
    pattern: &TimestampPattern,
    name: &str,
    layout: Layout,
    members: &[Artifact],
) -> (DateTime<Utc>, TimestampFrom) {
    let read = |file: &str| -> Option<String> {
        let a = members
            .iter()
            .find(|m| m.file_name() == file && m.size <= MAX_LABEL_BYTES)?;
        let mut text = String::new();
        source
            .open(a)
            .and_then(|f| f.reader.take(MAX_LABEL_BYTES).read_to_string(&mut text))
            .ok()?;
        Some(text)
    };
    let newest = members
        .iter()
        .max_by_key(|m| m.modified)
        .map(|m| m.modified)
        .unwrap_or_default();
    let labelled = match layout {
        Layout::PgBaseBackup => read("backup_label").and_then(|t| label_start_time(&t)),
        _ => None,
    };
    if let Some(t) = labelled {
        return (t, TimestampFrom::Label);
    }
    if let Some(t) = pattern.parse(name) {
        return (t, TimestampFrom::Name);
    }
    let recorded = match layout {
        Layout::MariadbBackup => read("xtrabackup_info").and_then(|t| xtrabackup_start_time(&t)),
        _ => None,
    };
    match recorded {
        Some(t) => (t, TimestampFrom::Label),
        None => (newest, TimestampFrom::Mtime),
    }
}

/// `START TIME: 2026-11-20 03:00:00 UTC` (or a numeric offset).
pub fn label_start_time(label: &str) -> Option<DateTime<Utc>> {
    let value = label
        .lines()
        .find_map(|l| l.strip_prefix("START TIME:"))?
        .trim();
    if let Ok(t) = DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    // PostgreSQL writes the zone's abbreviation; only UTC/GMT are unambiguous.
    let (time, zone) = value.rsplit_once(' ')?;
    matches!(zone, "UTC" | "GMT")
        .then(|| NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").ok())
        .flatten()
        .map(|t| Utc.from_utc_datetime(&t))
}

/// `start_time = 2026-11-20 03:00:00`, the server's local time, read as UTC.
fn xtrabackup_start_time(info: &str) -> Option<DateTime<Utc>> {
    let value = info.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "start_time").then(|| v.trim())
    })?;
    NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Reads and parses one manifest; one that cannot be read is an error at
/// its line 0.
fn load_manifest(
    source: &dyn Storage,
    a: &Artifact,
    kind: &manifest::ManifestName,
) -> Result<manifest::Manifest, ManifestError> {
    let text = read_manifest(source, a).map_err(|e| ManifestError {
        key: a.key.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    manifest::parse(&a.key, kind, &text)
}

fn read_manifest(source: &dyn Storage, a: &Artifact) -> Result<String, ReadError> {
    if a.size > MAX_MANIFEST_BYTES {
        return Err(ReadError::TooLarge(a.size));
    }
    let mut text = String::new();
    source
        .open(a)
        .and_then(|f| f.reader.take(MAX_MANIFEST_BYTES).read_to_string(&mut text))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pattern_reads_common_names() {
        let p = TimestampPattern::default();
        let t = |s: &str| {
            p.parse(s)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        };
        assert_eq!(
            t("appdb-2026-11-20T0300.dump").as_deref(),
            Some("2026-11-20 03:00:00")
        );
        assert_eq!(
            t("db_20261120.sql.gz").as_deref(),
            Some("2026-11-20 00:00:00")
        );
        assert_eq!(
            t("db_2026-11-20_23-15-09.sql").as_deref(),
            Some("2026-11-20 23:15:09")
        );
        assert_eq!(t("db-9999-99-99.sql"), None);
        assert_eq!(t("latest.sql"), None);
    }

    #[test]
    fn series_names_replace_the_timestamp() {
        let p = TimestampPattern::default();
        assert_eq!(p.series("appdb-2026-11-20T0300.dump"), "appdb-*.dump");
        assert_eq!(p.series("pg/appdb-2026-11-21T0300.dump"), "pg/appdb-*.dump");
        assert_eq!(p.series("shop_20261120.sql.gz"), "shop_*.sql.gz");
        assert_eq!(p.series("latest.sql"), "latest.sql");
        let p = TimestampPattern::from_strftime("shop_%d.%m.%Y-%H").unwrap();
        assert_eq!(p.series("shop_20.11.2026-04.sql"), "shop_*.sql");
    }

    #[test]
    fn filters_keep_and_exclude() {
        let f = Filter::new(Some("appdb-*"), &["*.tmp".into()]).unwrap();
        assert!(f.keeps("pg/appdb-2026-11-20.dump"));
        assert!(!f.keeps("pg/appdb-2026-11-20.tmp"));
        assert!(!f.keeps("pg/other-2026-11-20.dump"));
        assert!(Filter::new(Some("[x"), &[]).is_err());
    }

    #[test]
    fn strftime_pattern() {
        let p = TimestampPattern::from_strftime("shop_%d.%m.%Y-%H").unwrap();
        let t = p.parse("nightly/shop_20.11.2026-04.sql").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T04:00:00+00:00");
        assert!(TimestampPattern::from_strftime("%Y-%m").is_err());
        assert!(TimestampPattern::from_strftime("%Y-%m-%d-%q").is_err());
    }
}
