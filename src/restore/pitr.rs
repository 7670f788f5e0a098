//! Point-in-time test restores of PostgreSQL base backups: the base backup
//! (a `pg_basebackup -Fp` directory, or `-Ft` `base.tar[.gz|.zst]` with its
//! `pg_wal.tar`) is copied into a private scratch data directory owned by
//! the server's user — the backup itself is never written — and a scratch
//! `postgres` of the backup's major version recovers it the way an
//! operator would: `recovery.signal`, a `restore_command` that only reads
//! the archive (and exits non-zero for a missing file, noting its name in
//! the scratch dir), `archive_mode = off` (it must never write into the
//! archive), `recovery_target_time` or the end of the archive, and
//! `recovery_target_action = promote`. Its own configuration is kept, but
//! everything that could reach outside the scratch dir (data_directory,
//! hba and ident files, TCP, replication to a primary, SSL files) is
//! overridden on the command line, which wins over every config file.
//!
//! Once promoted, what the replay reached is read from the server's log
//! (`recovery stopping before commit ...`, `archive recovery complete`)
//! and from `pg_last_xact_replay_timestamp()`; sessions for the shared
//! sanity checks are opened as a throwaway login that may only read.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};
use rustix::process::Signal;

use crate::catalog::{Backup, Layout};
use crate::inspect::{Compression, Kind};

use super::engine::{
    Endpoint, EngineError, EngineKind, PhysicalEngine, PitrSpec, PitrTarget, Recovered, ScratchDb,
    Sessions,
};
use super::facts::PitrFacts;
use super::postgres::Postgres;
use super::scratch::{self, Instance, LOG_FILE, RunAs};
use super::tools::ToolRun;

pub struct Pitr;

/// The port that names the socket file in the private scratch dir.
const PORT: u16 = 5432;
/// Where `restore_command` notes each file the archive did not hold.
const MISSING_FILE: &str = "missing-wal";

#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    #[error(
        "PostgreSQL {version} server binaries not found (the base backup is of PostgreSQL {version}): install postgresql-{version}"
    )]
    NoServer { version: String },
    #[error("{0} has no PG_VERSION: not a base backup")]
    NoVersion(PathBuf),
    #[error("a point-in-time restore needs the base backup on a local filesystem")]
    NotLocal,
    #[error("copying the base backup to {path}: {source}")]
    Copy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unpacking {path}: {source}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: lz4 tar members are not supported; compress base backups with gzip or zstd")]
    Lz4(PathBuf),
    #[error(
        "the base backup uses tablespaces or links ({0}): backproof recovers the main data directory only"
    )]
    Tablespaces(String),
    #[error("the WAL archive {path} is not a directory the server's user can read: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("no administrative role found in the recovered cluster (tried {tried}): {source}")]
    NoAdmin {
        tried: String,
        #[source]
        source: postgres::Error,
    },
    #[error("database {0:?} (the `database` key) is not in the recovered cluster: it holds {1}")]
    NoDatabase(String, String),
    #[error(
        "the target {target} is before this base backup started ({start}): it can only be recovered to later instants; restore an older base backup"
    )]
    TargetBeforeBackup { target: String, start: String },
    #[error("{}", server_words(.0))]
    Server(#[source] postgres::Error),
}

impl From<PitrError> for EngineError {
    fn from(e: PitrError) -> Self {
        EngineError::engine(e)
    }
}

fn server_words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// A base backup as the engine chooses it: what the catalog recognised by
/// content as a plain (`-Fp`) or tar-format (`-Ft`) base backup directory,
/// or a lone `base.tar[.gz|.zst]` file.
pub fn is_base_backup(backup: &Backup) -> bool {
    if matches!(
        backup.layout,
        Layout::PgBaseBackup | Layout::PgBaseBackupTar
    ) {
        return true;
    }
    let name = backup.key.rsplit('/').next().unwrap_or(&backup.key);
    backup.layout == Layout::File && BASE_TARS.contains(&name)
}

/// The names of a tar-format base backup's main tar this engine unpacks.
const BASE_TARS: [&str; 3] = ["base.tar", "base.tar.gz", "base.tar.zst"];

/// What the base backup is on disk.
enum Source {
    Plain(PathBuf),
    /// `base.tar*`, and `pg_wal.tar*` beside it when the WAL was streamed.
    Tar {
        base: PathBuf,
        wal: Option<PathBuf>,
    },
}

impl Source {
    fn of(path: &Path) -> Source {
        let (dir, base) = if path.is_dir() {
            // A `-Ft` directory: its base.tar* beside pg_wal.tar*.
            match BASE_TARS.iter().map(|n| path.join(n)).find(|p| p.is_file()) {
                Some(base) => (path, base),
                None => return Source::Plain(path.to_path_buf()),
            }
        } else {
            (path.parent().unwrap_or(Path::new(".")), path.to_path_buf())
        };
        let wal = ["pg_wal.tar", "pg_wal.tar.gz", "pg_wal.tar.zst"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
        Source::Tar { base, wal }
    }
}

/// Files of a base backup that are not part of a data directory, or that
/// would make the scratch server something else than a recovering copy
/// (a standby of the real primary, a stale pid).
const LEFT_OUT: [&str; 6] = [
    "backup_manifest",
    "standby.signal",
    "recovery.signal",
    "postmaster.pid",
    "postmaster.opts",
    "recovery.conf",
];

/// A copy of a plain base backup; symlinks (tablespaces) are refused by
/// [`check_tree`] afterwards, never followed.
fn copy_tree(from: &Path, to: &Path) -> Result<(), PitrError> {
    for e in walkdir::WalkDir::new(from).follow_links(false) {
        let e = e.map_err(|e| PitrError::Copy {
            path: to.to_path_buf(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(from).expect("under the root");
        let dst = to.join(rel);
        let io = |source| PitrError::Copy {
            path: dst.clone(),
            source,
        };
        if e.file_type().is_dir() {
            fs::create_dir_all(&dst).map_err(io)?;
        } else if e.file_type().is_file() {
            fs::copy(e.path(), &dst).map_err(io)?;
        } else if e.file_type().is_symlink() {
            let target = fs::read_link(e.path()).map_err(io)?;
            std::os::unix::fs::symlink(target, &dst).map_err(io)?;
        }
    }
    Ok(())
}

/// Unpacks one tar of a tar-format base backup, streamed.
fn unpack(tar: &Path, into: &Path) -> Result<(), PitrError> {
    let err = |source| PitrError::Unpack {
        path: tar.to_path_buf(),
        source,
    };
    let name = tar.file_name().unwrap_or_default().to_string_lossy();
    if name.ends_with(".lz4") {
        return Err(PitrError::Lz4(tar.to_path_buf()));
    }
    let file = fs::File::open(tar).map_err(err)?;
    let reader: Box<dyn Read + Send> = if name.ends_with(".gz") {
        crate::inspect::decompress(Compression::Gzip, file).map_err(err)?
    } else if name.ends_with(".zst") {
        crate::inspect::decompress(Compression::Zstd, file).map_err(err)?
    } else {
        Box::new(io::BufReader::with_capacity(256 * 1024, file))
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    // `unpack` keeps every member inside `into` (no `..`, no absolute path).
    archive.unpack(into).map_err(err)
}

/// The copied tree, made a data directory the server's user owns: links
/// (tablespaces, an external pg_wal) would reach outside the scratch dir,
/// and a non-empty tablespace_map names tablespaces we do not have.
fn check_tree(data: &Path, run_as: RunAs) -> Result<(), EngineError> {
    let map = fs::read_to_string(data.join("tablespace_map")).unwrap_or_default();
    if !map.trim().is_empty() {
        return Err(PitrError::Tablespaces(format!("tablespace_map: {}", map.trim())).into());
    }
    for name in LEFT_OUT {
        let _ = fs::remove_file(data.join(name));
    }
    for e in walkdir::WalkDir::new(data).follow_links(false) {
        let e = e.map_err(|e| PitrError::Copy {
            path: data.to_path_buf(),
            source: e.into(),
        })?;
        if e.file_type().is_symlink() {
            let rel = e.path().strip_prefix(data).unwrap_or(e.path());
            return Err(PitrError::Tablespaces(rel.display().to_string()).into());
        }
        run_as.chown(e.path())?;
    }
    let wal = data.join("pg_wal");
    if !wal.exists() {
        fs::create_dir(&wal).map_err(|source| PitrError::Copy {
            path: wal.clone(),
            source,
        })?;
        run_as.chown(&wal)?;
    }
    // A Debian-style cluster keeps its configuration in /etc: the backup
    // has none, and the server wants a file (empty: defaults and ours).
    let conf = data.join("postgresql.conf");
    if !conf.exists() {
        fs::write(&conf, "").map_err(|source| PitrError::Copy {
            path: conf.clone(),
            source,
        })?;
        run_as.chown(&conf)?;
    }
    fs::set_permissions(data, fs::Permissions::from_mode(0o700)).map_err(|source| {
        PitrError::Copy {
            path: data.to_path_buf(),
            source,
        }
    })?;
    Ok(())
}

/// The server binaries of the backup's major version: a cluster only
/// starts under its own.
fn bindir(version: &str) -> Result<PathBuf, PitrError> {
    let has = |d: &Path| d.join("postgres").is_file();
    let mut candidates = vec![
        PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")),
        PathBuf::from(format!("/usr/pgsql-{version}/bin")),
    ];
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates
        .into_iter()
        .filter(|d| has(d))
        .find(|d| {
            Command::new(d.join("postgres"))
                .arg("-V")
                .output()
                .map(|o| {
                    // "postgres (PostgreSQL) 15.18 (Debian ...)"
                    let v = String::from_utf8_lossy(&o.stdout);
                    v.split_whitespace()
                        .nth(2)
                        .and_then(|n| n.split('.').next())
                        == Some(version)
                })
                .unwrap_or(false)
        })
        .ok_or_else(|| PitrError::NoServer {
            version: version.to_string(),
        })
}

/// A shell word: single-quoted, so that no character of the path means
/// anything to `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `restore_command`: copies `%f` out of the archive (or decompresses its
/// `.gz` / `.zst` twin) and never writes there; a file it does not hold
/// is noted in the scratch dir and answered with exit 1, which the server
/// reads as "not archived" (the end of the archive, or a gap).
fn restore_command(archive: &Path, missing: &Path) -> String {
    // `%` is the server's own escape in this setting.
    let q = |p: &Path| sh_quote(&p.to_string_lossy()).replace('%', "%%");
    format!(
        "f={a}/%f; if test -f \"$f\"; then exec cp \"$f\" \"%p\"; \
         elif test -f \"$f.gz\"; then exec gzip -dc \"$f.gz\" > \"%p\"; \
         elif test -f \"$f.zst\"; then exec zstd -dcq \"$f.zst\" > \"%p\"; \
         else echo %f >> {m}; exit 1; fi",
        a = q(archive),
        m = q(missing)
    )
}

/// The server's settings for a recovery in the scratch dir. Given on the
/// command line, they win over the backup's postgresql.conf and
/// postgresql.auto.conf.
fn settings(dir: &Path, data: &Path, spec: &PitrSpec) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let mut s = vec![
        format!("data_directory={}", p(data)),
        format!("hba_file={}", p(&dir.join("pg_hba.conf"))),
        format!("ident_file={}", p(&dir.join("pg_ident.conf"))),
        format!("unix_socket_directories={}", p(dir)),
        format!("port={PORT}"),
        "listen_addresses=".into(),
        // Not the real server's pid file, wherever its config puts it.
        format!("external_pid_file={}", p(&dir.join("external.pid"))),
        // Never into the archive, never to the real primary.
        "archive_mode=off".into(),
        "archive_command=".into(),
        "primary_conninfo=".into(),
        "primary_slot_name=".into(),
        "synchronous_standby_names=".into(),
        // Key and certificate files of the source are not here.
        "ssl=off".into(),
        // Connections only once promoted; no parameter checks against
        // the primary's (they only matter to a hot standby).
        "hot_standby=off".into(),
        // Its data is dropped afterwards: durability is pointless.
        "fsync=off".into(),
        "synchronous_commit=off".into(),
        // Nothing changes the restored data before it is checked.
        "autovacuum=off".into(),
        // A log in known words and zone, to read what the replay reached.
        "logging_collector=off".into(),
        "log_destination=stderr".into(),
        "log_line_prefix=%m [%p] ".into(),
        "lc_messages=C".into(),
        "log_timezone=UTC".into(),
        "timezone=UTC".into(),
        "cluster_name=backproof-pitr".into(),
    ];
    if let Some(archive) = &spec.wal_archive {
        s.push(format!(
            "restore_command={}",
            restore_command(archive, &dir.join(MISSING_FILE))
        ));
        s.push("recovery_target_timeline=latest".into());
        s.push("recovery_target_action=promote".into());
        if let PitrTarget::Time(_) = spec.target {
            s.push(format!("recovery_target_time={}", spec.target.describe()));
        }
    }
    s
}

/// What the server's log says of the replay; read line by line, kept small.
#[derive(Debug, Default, PartialEq)]
struct Replay {
    restored: u64,
    last_restored: Option<String>,
    stop_line: Option<String>,
    stopped_at: Option<String>,
    last_completed: Option<String>,
    complete: bool,
    fatal: Option<String>,
}

impl Replay {
    fn read(log: &Path) -> Replay {
        let mut r = Replay::default();
        if let Ok(f) = fs::File::open(log) {
            for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
                r.line(&String::from_utf8_lossy(&line));
            }
        }
        r
    }

    fn line(&mut self, line: &str) {
        let level = |tag: &str| line.split_once(tag).map(|(_, m)| m.trim());
        if let Some(m) = level("LOG:  ") {
            if let Some(rest) = m.strip_prefix("restored log file \"") {
                self.restored += 1;
                let name = rest.split('"').next().unwrap_or_default();
                if is_segment(name) {
                    self.last_restored = Some(name.to_string());
                }
            } else if m.starts_with("recovery stopping ") {
                self.stop_line = Some(m.to_string());
                self.stopped_at = m.split_once(", time ").map(|(_, t)| t.to_string());
            } else if let Some(t) = m.strip_prefix("last completed transaction was at log time ") {
                self.last_completed = Some(t.to_string());
            } else if m == "archive recovery complete" {
                self.complete = true;
            }
        } else if let Some(m) = level("FATAL:  ").or_else(|| level("PANIC:  "))
            // Connection attempts while it starts, not the recovery.
            && !m.starts_with("the database system is")
            && self.fatal.is_none()
        {
            self.fatal = Some(m.to_string());
        }
    }
}

/// When the base backup started, from its `backup_label` (`START TIME:
/// 2026-11-20 03:00:00 UTC`): a target before it cannot be reached from it.
fn label_start(data: &Path) -> Option<chrono::DateTime<chrono::Utc>> {
    let label = fs::read_to_string(data.join("backup_label")).ok()?;
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIME: "))
        .and_then(super::engine::parse_instant)
}

/// A WAL segment's name: 24 hex digits (timeline, log, segment).
fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last segment the archive was asked for and did not hold.
fn last_missing(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(MISSING_FILE)).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .rfind(|n| is_segment(n))
        .map(str::to_string)
}

/// A segment of `missing`'s timeline after it in the archive (the newest),
/// unless a later timeline's history explains why that timeline stopped
/// being replayed: then the replay stopped at a gap, not at the end.
fn later_in_archive(archive: &Path, missing: &str) -> Option<String> {
    let (tli, pos) = missing.split_at(8);
    let mut newest: Option<String> = None;
    for e in fs::read_dir(archive).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(t) = name.strip_suffix(".history")
            && t.len() == 8
            && t > tli
        {
            return None;
        }
        let seg = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        if is_segment(seg)
            && seg.starts_with(tli)
            && seg[8..].to_ascii_uppercase() > pos.to_ascii_uppercase()
            && newest.as_deref().is_none_or(|n| seg > n)
        {
            newest = Some(seg.to_string());
        }
    }
    newest
}

/// The server does not accept connections yet.
#[derive(Debug, thiserror::Error)]
#[error("still recovering")]
struct NotYet;

/// An administrative connection to the recovered cluster, as whichever
/// of the usual bootstrap superusers it has.
fn admin(dir: &Path, candidates: &[String]) -> Result<(Client, String), PitrError> {
    let mut last = None;
    for user in candidates {
        let mut c = Config::new();
        c.host_path(dir)
            .port(PORT)
            .user(user)
            .dbname("template1")
            .application_name("backproof")
            .connect_timeout(Duration::from_secs(10));
        match c.connect(NoTls) {
            Ok(client) => return Ok((client, user.clone())),
            Err(e) => last = Some(e),
        }
    }
    Err(PitrError::NoAdmin {
        tried: candidates.join(", "),
        source: last.expect("at least one candidate"),
    })
}

/// `postgres`, the OS user that owned the backup's files (initdb's
/// default superuser name), and ourselves.
fn admin_candidates(backup: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut names = vec!["postgres".to_string()];
    let owners = [
        fs::metadata(backup).ok().map(|m| m.uid()),
        Some(rustix::process::geteuid().as_raw()),
    ];
    for uid in owners.into_iter().flatten() {
        if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            && !names.contains(&u.name)
        {
            names.push(u.name);
        }
    }
    names
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl PhysicalEngine for Pitr {
    fn name(&self) -> &'static str {
        "postgres-pitr"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["pitr", "pg_basebackup"]
    }

    fn recognises(&self, _kind: Kind, backup: &Backup) -> bool {
        is_base_backup(backup)
    }

    fn recover(
        &self,
        path: &Path,
        spec: &PitrSpec,
        deadline: Instant,
    ) -> Result<Recovered, EngineError> {
        let started = Instant::now();
        let run_as = RunAs::for_user("postgres")?;
        // SIGQUIT is an immediate shutdown.
        let mut inst = Instance::new(self.name(), run_as, Signal::QUIT)?;
        let dir = inst.dir().to_path_buf();
        let data = dir.join("data");
        fs::create_dir(&data).map_err(|source| PitrError::Copy {
            path: data.clone(),
            source,
        })?;
        match Source::of(path) {
            Source::Plain(from) => copy_tree(&from, &data)?,
            Source::Tar { base, wal } => {
                unpack(&base, &data)?;
                if let Some(wal) = wal {
                    unpack(&wal, &data.join("pg_wal"))?;
                }
            }
        }
        check_tree(&data, run_as)?;
        let version = fs::read_to_string(data.join("PG_VERSION"))
            .map_err(|_| PitrError::NoVersion(path.to_path_buf()))?
            .trim()
            .to_string();
        let bin = bindir(&version)?;
        if let PitrTarget::Time(target) = spec.target
            && spec.wal_archive.is_some()
            && let Some(start) = label_start(&data)
            && target < start
        {
            return Err(PitrError::TargetBeforeBackup {
                target: spec.target.describe(),
                start: start.to_rfc3339(),
            }
            .into());
        }
        if let Some(archive) = &spec.wal_archive {
            // Readable by the server's user, or every segment would look
            // missing: that is our setup, not a gap in the archive.
            let mut test = run_as.command(Path::new("/bin/sh"), Signal::KILL);
            test.args([
                "-c",
                "test -d \"$1\" && test -r \"$1\" && test -x \"$1\"",
                "sh",
            ])
            .arg(archive);
            scratch::run_setup(test, "test -r").map_err(|e| PitrError::Archive {
                path: archive.clone(),
                reason: e.to_string(),
            })?;
            let signal = data.join("recovery.signal");
            fs::write(&signal, "").map_err(|source| PitrError::Copy {
                path: signal.clone(),
                source,
            })?;
            run_as.chown(&signal)?;
        }
        // Only our own connections reach the socket (a 0700 dir).
        for (name, text) in [
            ("pg_hba.conf", "local all all trust\n"),
            ("pg_ident.conf", ""),
        ] {
            let p = dir.join(name);
            fs::write(&p, text).map_err(|source| PitrError::Copy {
                path: p.clone(),
                source,
            })?;
            run_as.chown(&p)?;
        }
        let copy_seconds = started.elapsed().as_secs_f64();

        let mut pg = run_as.command(&bin.join("postgres"), Signal::QUIT);
        pg.arg("-D").arg(&data);
        for s in settings(&dir, &data, spec) {
            pg.arg("-c").arg(s);
        }
        inst.spawn(pg)?;
        // The postmaster marks its pid file "ready" once it accepts
        // connections: with hot_standby off, only after the promotion.
        // (Small, unlike the log of a long replay.)
        let pid_file = data.join("postmaster.pid");
        let waited = inst.wait_ready_until(deadline, || match fs::read_to_string(&pid_file) {
            Ok(t) if t.lines().any(|l| l.trim() == "ready") => Ok(()),
            _ => Err(NotYet),
        });
        let log = dir.join(LOG_FILE);
        let replay = Replay::read(&log);
        let mut facts = PitrFacts {
            target: spec.target.describe(),
            target_from: spec.target_from.clone(),
            wal_archive: spec.wal_archive.as_ref().map(|p| p.display().to_string()),
            consistency_only: spec.wal_archive.is_none(),
            stop_line: replay.stop_line.clone(),
            stopped_at: replay.stopped_at.clone(),
            recovery_complete: spec.wal_archive.as_ref().map(|_| replay.complete),
            segments_restored: spec.wal_archive.as_ref().map(|_| replay.restored),
            last_segment: replay.last_restored.clone(),
            replay_timestamp: replay.last_completed.clone(),
            copy_seconds: Some(round3(copy_seconds)),
            replay_seconds: Some(round3(started.elapsed().as_secs_f64() - copy_seconds)),
            ..PitrFacts::default()
        };
        let endpoint = Endpoint::Socket {
            path: dir.clone(),
            port: PORT,
            admin: String::new(),
        };
        let failed = |facts: &mut PitrFacts, status: String, stderr: String, timed_out| {
            facts.server_error = replay.fatal.clone();
            facts.missing_segment = last_missing(&dir);
            if spec.wal_archive.is_some() {
                facts.reached = Some(false);
            }
            ToolRun {
                tool: "postgres (recovery)".into(),
                ok: false,
                status,
                stderr,
                timed_out,
                ..ToolRun::default()
            }
        };
        if let Err(e) = waited {
            let timed_out = Instant::now() >= deadline;
            let status = match &e {
                scratch::ScratchError::Exited { status, .. } => {
                    format!("stopped during recovery ({status})")
                }
                _ => "did not finish recovery".to_string(),
            };
            let run = failed(&mut facts, status, e.to_string(), timed_out);
            return Ok(Recovered {
                instance: inst,
                run,
                facts,
                problems: Vec::new(),
                endpoint,
            });
        }

        let (mut client, user) = admin(&dir, &admin_candidates(path))?;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()::text, \
                 current_setting('server_version')",
                &[],
            )
            .map_err(PitrError::Server)?;
        let (in_recovery, replayed, version): (bool, Option<String>, String) =
            (row.get(0), row.get(1), row.get(2));
        facts.server_version = Some(version);
        facts.replay_timestamp = replayed.or(facts.replay_timestamp);
        let mut problems = Vec::new();
        if in_recovery {
            problems.push("the recovered cluster is still in recovery (not promoted)".to_string());
        }
        if let Some(archive) = &spec.wal_archive {
            let gap = last_missing(&dir)
                .and_then(|m| later_in_archive(archive, &m).map(|later| (m, later)));
            match (&spec.target, &gap) {
                (_, Some((missing, later))) if replay.stop_line.is_none() => {
                    facts.missing_segment = Some(missing.clone());
                    facts.reached = Some(false);
                    problems.push(format!(
                        "the replay stopped at {missing}, missing from the archive, which holds later segments up to {later}: a gap cuts the recoverable window"
                    ));
                }
                (PitrTarget::Time(target), _) => {
                    let replayed = facts
                        .replay_timestamp
                        .as_deref()
                        .and_then(super::engine::parse_instant);
                    let past = replayed.filter(|r| r > target);
                    facts.reached = Some(replay.stop_line.is_some() && past.is_none());
                    if replay.stop_line.is_none() {
                        problems.push(format!(
                            "the server was promoted without stopping at the target {}: it may not have been reached",
                            spec.target.describe()
                        ));
                    }
                    if past.is_some() {
                        problems.push(format!(
                            "the last replayed transaction ({}) is after the target {}",
                            facts.replay_timestamp.clone().unwrap_or_default(),
                            spec.target.describe()
                        ));
                    }
                }
                (PitrTarget::Latest, _) => facts.reached = Some(replay.complete),
            }
        }
        Ok(Recovered {
            instance: inst,
            run: ToolRun {
                tool: "postgres (recovery)".into(),
                ok: true,
                status: "promoted".into(),
                ..ToolRun::default()
            },
            facts,
            problems,
            endpoint: Endpoint::Socket {
                path: dir,
                port: PORT,
                admin: user,
            },
        })
    }

    fn sessions(
        &self,
        recovered: &Recovered,
        database: Option<&str>,
    ) -> Result<Sessions, EngineError> {
        let Endpoint::Socket {
            path, admin: user, ..
        } = &recovered.endpoint
        else {
            return Err(PitrError::NotLocal.into());
        };
        let (mut admin, _) = admin(path, std::slice::from_ref(user))?;
        let names: Vec<String> = admin
            .query(
                "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
                &[],
            )
            .map_err(PitrError::Server)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let main = match database {
            Some(d) if names.iter().any(|n| n == d) => d.to_string(),
            Some(d) => return Err(PitrError::NoDatabase(d.to_string(), names.join(", ")).into()),
            None => {
                let user_dbs: Vec<&String> = names.iter().filter(|n| *n != "postgres").collect();
                match user_dbs[..] {
                    [only] => only.clone(),
                    _ => "postgres".to_string(),
                }
            }
        };
        // The checks read as a login that can read everything and change
        // nothing (pg_read_all_data, read-only transactions); restored
        // functions never run with a superuser's rights.
        let (login, _) = scratch::database_name(Duration::from_secs(24 * 3600))?;
        let password = scratch::password()?;
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut sql = vec![
            format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS PASSWORD '{password}'",
                q(&login)
            ),
            format!(
                "ALTER ROLE {} SET default_transaction_read_only = on",
                q(&login)
            ),
            format!("GRANT pg_read_all_data TO {}", q(&login)),
        ];
        sql.extend(
            names
                .iter()
                .map(|d| format!("GRANT CONNECT ON DATABASE {} TO {}", q(d), q(&login))),
        );
        for s in sql {
            admin.batch_execute(&s).map_err(PitrError::Server)?;
        }
        let mut sessions = Vec::new();
        for name in names {
            let db = ScratchDb {
                name: name.clone(),
                user: login.clone(),
                password: password.clone(),
                endpoint: recovered.endpoint.clone(),
                expires: chrono::Utc::now(),
            };
            sessions.push((name, Postgres.connect(&db)?));
        }
        Ok(Sessions {
            main,
            parts: sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_says_where_the_replay_stopped() {
        let log = "\
2026-12-02 10:22:53.679 UTC [17127] FATAL:  the database system is starting up
2026-12-02 10:22:56.594 UTC [17125] LOG:  restored log file \"000000010000000000000002\" from archive
2026-12-02 10:22:56.633 UTC [17125] LOG:  restored log file \"000000010000000000000003\" from archive
2026-12-02 10:22:56.634 UTC [17125] LOG:  restored log file \"00000002.history\" from archive
2026-12-02 10:22:56.667 UTC [17125] LOG:  recovery stopping before commit of transaction 727, time 2026-12-02 10:22:48.037467+00
2026-12-02 10:22:56.667 UTC [17125] LOG:  last completed transaction was at log time 2026-12-02 10:22:46.7113+00
2026-12-02 10:22:56.729 UTC [17125] LOG:  archive recovery complete
2026-12-02 10:22:56.842 UTC [17118] LOG:  database system is ready to accept connections
";
        let mut r = Replay::default();
        log.lines().for_each(|l| r.line(l));
        assert_eq!(
            r,
            Replay {
                restored: 3,
                last_restored: Some("000000010000000000000003".into()),
                stop_line: Some("recovery stopping before commit of transaction 727, time 2026-12-02 10:22:48.037467+00".into()),
                stopped_at: Some("2026-12-02 10:22:48.037467+00".into()),
                last_completed: Some("2026-12-02 10:22:46.7113+00".into()),
                complete: true,
                fatal: None,
            }
        );
        let mut r = Replay::default();
        r.line("2026-12-02 10:23:07.491 UTC [17542] FATAL:  recovery ended before configured recovery target was reached");
        assert_eq!(
            r.fatal.as_deref(),
            Some("recovery ended before configured recovery target was reached")
        );
    }

    #[test]
    fn restore_command_quotes_the_archive_and_escapes_percent() {
        let c = restore_command(Path::new("/a b/it's 100%"), Path::new("/s/missing-wal"));
        assert!(
            c.starts_with("f='/a b/it'\\''s 100%%'/%f; if test -f"),
            "{c}"
        );
        assert!(
            c.ends_with("else echo %f >> '/s/missing-wal'; exit 1; fi"),
            "{c}"
        );
        // Only the server's own placeholders are left unescaped.
        let unescaped: Vec<&str> = c.split("%%").flat_map(|p| p.split('%').skip(1)).collect();
        assert!(
            unescaped
                .iter()
                .all(|p| p.starts_with('f') || p.starts_with('p')),
            "{c}"
        );
    }

    #[test]
    fn a_gap_is_a_later_segment_of_the_same_timeline_without_a_newer_history() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |n: &str| fs::write(dir.path().join(n), "").unwrap();
        touch("000000010000000000000002");
        touch("000000010000000000000004.gz");
        touch("000000020000000000000009");
        assert_eq!(
            later_in_archive(dir.path(), "000000010000000000000003").as_deref(),
            Some("000000010000000000000004")
        );
        assert_eq!(
            later_in_archive(dir.path(), "000000010000000000000005"),
            None
        );
        touch("00000002.history");
        assert_eq!(
            later_in_archive(dir.path(), "000000010000000000000003"),
            None
        );
    }

    #[test]
    fn base_backups_are_recognised_by_layout_or_tar_name() {
        let b = |key: &str, layout| Backup {
            key: key.into(),
            layout,
            members: vec![],
            size: 0,
            timestamp: chrono::DateTime::UNIX_EPOCH,
            timestamp_from: crate::catalog::TimestampFrom::Name,
            expected: Default::default(),
        };
        assert!(is_base_backup(&b("x/base", Layout::PgBaseBackup)));
        assert!(is_base_backup(&b("x/tar", Layout::PgBaseBackupTar)));
        assert!(!is_base_backup(&b("x/wal", Layout::WalArchive)));
        assert!(is_base_backup(&b("x/base.tar.gz", Layout::File)));
        assert!(!is_base_backup(&b("x/pg_wal.tar.gz", Layout::File)));
        assert!(!is_base_backup(&b("x/base.dump", Layout::File)));
    }
}
