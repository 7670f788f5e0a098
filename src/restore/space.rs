//! Is a failed load backproof's own sandbox running out of disk? A full
//! scratch filesystem says nothing about the backup: it is an `error` with
//! the space used and left, never a failed backup.

use std::path::{Path, PathBuf};

use super::engine::Endpoint;
use super::scratch::{DIR_PREFIX, LOG_FILE};

/// What the tools and servers print when the disk is full: PostgreSQL
/// ("could not extend file …: No space left on device", "could not write
/// to file"), MariaDB (1114 "The table … is full", Errcode 28, 1021 "Disk
/// full"), and the kernel's ENOSPC/EDQUOT wording in any tool.
const SIGNS: [&str; 6] = [
    "No space left on device",
    "Disk quota exceeded",
    "could not extend file",
    "ERROR 1114",
    "Errcode: 28",
    "ERROR 1021",
];

/// One of [`SIGNS`], or InnoDB's "… failed with error 28" (ENOSPC).
fn says_full(line: &str) -> bool {
    SIGNS.iter().any(|s| line.contains(s))
        || line
            .match_indices("error 28")
            .any(|(i, m)| !line[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Less than this left on the scratch filesystem after a failed load, and
/// the failure is put down to the full disk even without one of [`SIGNS`]
/// (a PostgreSQL server that PANICs on a WAL write leaves the client only
/// "server closed the connection unexpectedly").
const NEARLY_FULL: u64 = 16 << 20;

/// A load that failed because the scratch disk filled.
#[derive(Clone, Debug, PartialEq)]
pub struct Exhausted {
    /// The line of the tool's or server's output that said so, if one did.
    pub sign: Option<String>,
    /// The ephemeral instance's dir; `None` on a `--scratch-url` server,
    /// whose disk backproof cannot see.
    pub scratch_dir: Option<PathBuf>,
    /// What the instance's dir had grown to when the load failed: the
    /// restore needed more than this.
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub filesystem_bytes: Option<u64>,
}

/// Looks at a failed load: the tool's output, and for an ephemeral
/// instance its server log and the filesystem it is on.
pub fn exhausted(output: &str, endpoint: &Endpoint) -> Option<Exhausted> {
    let scratch_dir = instance_dir(endpoint);
    let log = scratch_dir
        .as_deref()
        .map(|d| super::tools::tail(&std::fs::read(d.join(LOG_FILE)).unwrap_or_default()))
        .unwrap_or_default();
    let sign = [output, log.as_str()]
        .iter()
        .flat_map(|t| t.lines())
        .find(|l| says_full(l))
        .map(|l| l.trim().to_string());
    let (free, size) = scratch_dir.as_deref().and_then(free_space).unzip();
    let nearly_full = free.is_some_and(|f| f < NEARLY_FULL);
    if sign.is_none() && !nearly_full {
        return None;
    }
    Some(Exhausted {
        sign,
        used_bytes: scratch_dir.as_deref().map(dir_bytes),
        scratch_dir,
        free_bytes: free,
        filesystem_bytes: size,
    })
}

/// A scratch server that could not start for want of disk (initdb, or
/// MariaDB creating its redo log): where it was to run, and what was left.
pub fn at_start(error: &str) -> Option<Exhausted> {
    let sign = error.lines().find(|l| says_full(l))?.trim().to_string();
    let dir = std::env::temp_dir();
    let (free, size) = free_space(&dir).unzip();
    Some(Exhausted {
        sign: Some(sign),
        scratch_dir: Some(dir),
        used_bytes: None,
        free_bytes: free,
        filesystem_bytes: size,
    })
}

fn free_space(dir: &Path) -> Option<(u64, u64)> {
    let v = rustix::fs::statvfs(dir).ok()?;
    let unit = v.f_frsize.max(1);
    Some((v.f_bavail * unit, v.f_blocks * unit))
}

impl From<Exhausted> for super::facts::ScratchFull {
    fn from(e: Exhausted) -> Self {
        super::facts::ScratchFull {
            sign: e.sign,
            scratch_dir: e.scratch_dir.map(|d| d.display().to_string()),
            used_bytes: e.used_bytes,
            free_bytes: e.free_bytes,
            filesystem_bytes: e.filesystem_bytes,
        }
    }
}

impl Exhausted {
    /// Where the space ran out and how much the restore had taken.
    pub fn describe(&self, target: &str) -> String {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        let Some(dir) = &self.scratch_dir else {
            return format!("the scratch server {target} ran out of disk space");
        };
        let mut s = format!("the scratch disk holding {} filled", dir.display());
        if let Some(used) = self.used_bytes {
            s += &format!(
                ": the restore needed more than the {} it had written there",
                mib(used)
            );
        }
        if let (Some(free), Some(size)) = (self.free_bytes, self.filesystem_bytes) {
            s += &format!(" ({} free of {})", mib(free), mib(size));
        }
        s
    }
}

/// The ephemeral instance's own dir (`backproof-scratch-…`), from the
/// socket dir or file its endpoint names.
fn instance_dir(endpoint: &Endpoint) -> Option<PathBuf> {
    let Endpoint::Socket { path, .. } = endpoint else {
        return None;
    };
    path.ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(DIR_PREFIX))
        })
        .map(Path::to_path_buf)
}

/// Bytes of the files under `dir` (as allocated: a sparse file counts what
/// it holds).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signs_of_a_full_disk_are_recognised_and_others_are_not() {
        let url = Endpoint::Url("postgres://x@h/db".into());
        for out in [
            "psql:<stdin>:12: ERROR:  could not extend file \"base/16384/16390\": No space left on device",
            "ERROR 1114 (HY000) at line 40: The table 'sales' is full",
            "mariadb: Error writing file '/tmp/x' (Errcode: 28 \"No space left on device\")",
            "[ERROR] InnoDB: preallocating 100663296 bytes for file ./ib_logfile101 failed with error 28",
        ] {
            let e = exhausted(out, &url).unwrap_or_else(|| panic!("{out}"));
            assert_eq!(e.sign.as_deref(), Some(out));
            assert_eq!(e.scratch_dir, None);
            assert!(
                e.describe("postgres://x@h/db")
                    .contains("ran out of disk space")
            );
        }
        for other in [
            "ERROR:  syntax error at or near \"CREAT\"",
            "ERROR 1146 (42S02) at line 280: Table 'shop.x' doesn't exist",
        ] {
            assert_eq!(exhausted(other, &url), None, "{other}");
        }
    }

    #[test]
    fn the_instance_dir_is_found_from_a_socket_dir_or_file() {
        let d = PathBuf::from("/tmp/backproof-scratch-12-ab/run");
        let e = Endpoint::Socket {
            path: d.join("mysqld.sock"),
            port: 0,
            admin: "root".into(),
        };
        assert_eq!(
            instance_dir(&e),
            Some(PathBuf::from("/tmp/backproof-scratch-12-ab"))
        );
    }
}
