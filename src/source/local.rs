//! Local directory source.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::walk::{self, key_part};
use super::{Artifact, Opened, SourceError, Storage};

/// A directory tree of backups. Read-only: nothing here opens for writing.
#[derive(Debug)]
pub struct LocalSource {
    root: PathBuf,
    /// Files the prefetcher opened, handed to `open` so that a file is
    /// opened once (at most the prefetch window's worth are held).
    prefetched: Mutex<HashMap<String, File>>,
    /// The real paths of files whose names are not UTF-8: their keys show
    /// the odd bytes escaped (`\xff`), and opening goes by the real name, so
    /// backproof never opens a different file from the one it lists.
    raw_names: Mutex<HashMap<String, PathBuf>>,
}

/// Below this, asking the kernel for sequential readahead costs a system
/// call and gains nothing: the first read takes the whole file.
const SEQUENTIAL_HINT_FROM: u64 = 256 * 1024;
/// Up to this size a file is read whole at once (`whole`).
const WHOLE_UP_TO: u64 = 1024 * 1024;
/// From this size a file is read through a mapping (`mapped`): the copy
/// out of the page cache it saves outweighs the mapping's set-up.
const MAP_FROM: u64 = 4 * 1024 * 1024;
/// Prefetched files kept open for `open`, well under the usual fd limit.
const MAX_HELD: usize = 256;

/// The one form a local path takes in reports and the history: absolute,
/// with `.` and `..` folded lexically, so `verify backups`, `verify
/// ./backups/` and a config's `path = "backups"` name the same source.
/// Symlinks are left as the user wrote them (a resolved link would name a
/// directory the user never typed).
pub fn canonical(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSource {
            root: canonical(&root.into()),
            prefetched: Mutex::default(),
            raw_names: Mutex::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How reports name this source.
    pub fn location(&self) -> String {
        self.root.display().to_string()
    }

    /// Every regular file under the root, sorted by key, and the entries
    /// that could not be read (a dangling symlink, a directory without
    /// permission): those become findings while the rest is still audited.
    /// Symlinks are followed, since backup trees often link "latest" into
    /// place.
    pub fn list(&self) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        self.list_files(None)
    }

    /// With `only`, lists just the root's own files (where the manifests
    /// for `only` live) and everything under `only` when it is a directory:
    /// a spot check of one file must not walk its parent's whole tree.
    pub fn list_files(
        &self,
        only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        self.walk(only, &mut |found| match found {
            Ok(a) => out.push(a),
            Err(p) => problems.push(p),
        })?;
        Ok((out, problems))
    }

    /// The walk behind [`list_files`](Self::list_files), each entry handed
    /// over as it is found: directory by directory, names in byte order.
    fn walk(
        &self,
        only: Option<&str>,
        each: &mut dyn FnMut(Result<Artifact, SourceError>),
    ) -> Result<(), SourceError> {
        let meta = std::fs::metadata(&self.root).map_err(|e| SourceError {
            location: self.location(),
            reason: e.to_string(),
        })?;
        if !meta.is_dir() {
            return Err(SourceError {
                location: self.location(),
                reason: "not a directory".into(),
            });
        }
        let named = only.map(|o| self.root.join(o));
        // One listed path (links followed, as the walk follows them): an
        // artifact, a problem, or nothing (a directory, or a special file
        // beside a spot-checked backup).
        let consider = |path: &Path,
                        meta: io::Result<std::fs::Metadata>|
         -> Option<Result<Artifact, SourceError>> {
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    return Some(Err(SourceError {
                        location: path.display().to_string(),
                        reason: e.to_string(),
                    }));
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                return None;
            }
            if !ft.is_file() {
                // A spot check lists its directory only for the manifests
                // beside the backup: what else lives there is not audited.
                if named.as_ref().is_some_and(|n| !path.starts_with(n)) {
                    return None;
                }
                // Opening a FIFO blocks and a device reads forever: never
                // opened, and never skipped silently either.
                use std::os::unix::fs::FileTypeExt;
                let what = if ft.is_fifo() {
                    "a FIFO"
                } else if ft.is_socket() {
                    "a socket"
                } else if ft.is_block_device() {
                    "a block device"
                } else if ft.is_char_device() {
                    "a character device"
                } else {
                    "not a regular file"
                };
                return Some(Err(SourceError {
                    location: path.display().to_string(),
                    reason: format!("{what}, not a regular file: not read"),
                }));
            }
            let rel = path
                .strip_prefix(&self.root)
                .expect("listing stays under its root");
            // A walk's paths are clean joins, so a UTF-8 one is its key.
            let key = match rel.to_str() {
                Some(key) => key.to_string(),
                None => {
                    let parts: Vec<(String, bool)> =
                        rel.components().map(|c| key_part(c.as_os_str())).collect();
                    let key = parts
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join("/");
                    self.raw_names
                        .lock()
                        .expect("raw names lock")
                        .insert(key.clone(), path.to_path_buf());
                    key
                }
            };
            let modified: DateTime<Utc> = meta
                .modified()
                .map(DateTime::from)
                .unwrap_or_else(|_| Utc::now());
            Some(Ok(Artifact::new(key, meta.len(), modified)))
        };
        let mut take = |found: Option<Result<Artifact, SourceError>>| {
            if let Some(found) = found {
                each(found)
            }
        };
        match &named {
            None => walk::walk(&self.root, &mut |path, meta| take(consider(path, meta))),
            Some(named) => {
                // A spot check: the files beside the named backup, read
                // with one directory listing. A walk limited to depth 1
                // would still list (and sort) every subdirectory in full.
                let unlisted = |e: io::Error| SourceError {
                    location: self.location(),
                    reason: e.to_string(),
                };
                let mut beside: Vec<std::fs::DirEntry> = Vec::new();
                match std::fs::read_dir(&self.root) {
                    Ok(entries) => {
                        for entry in entries {
                            match entry {
                                Ok(e) => beside.push(e),
                                Err(e) => take(Some(Err(unlisted(e)))),
                            }
                        }
                    }
                    Err(e) => take(Some(Err(unlisted(e)))),
                }
                beside.sort_by_key(|e| e.file_name());
                for e in beside {
                    let path = e.path();
                    take(consider(&path, std::fs::metadata(&path)));
                }
                if named.is_dir() {
                    walk::walk(named, &mut |path, meta| take(consider(path, meta)));
                }
            }
        }
        Ok(())
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        if let Some(raw) = self.raw_names.lock().expect("raw names lock").get(key) {
            return raw.clone();
        }
        self.root.join(key)
    }
}

impl Storage for LocalSource {
    fn location(&self) -> String {
        LocalSource::location(self)
    }

    fn subject(&self, key: &str) -> String {
        if key.is_empty() {
            self.location()
        } else {
            // `root.join(key)` shown, without a path built per backup.
            let mut subject = self.root.display().to_string();
            if !subject.ends_with('/') {
                subject.push('/');
            }
            subject.push_str(key);
            subject
        }
    }

    fn list_scoped(
        &self,
        only: Option<&str>,
    ) -> Result<(Vec<Artifact>, Vec<SourceError>), SourceError> {
        self.list_files(only)
    }

    fn list_each(
        &self,
        each: &mut dyn FnMut(Result<Artifact, SourceError>),
    ) -> Result<(), SourceError> {
        self.walk(None, each)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path_of(key))
    }

    /// Opens an artifact for one sequential pass, telling the kernel so: it
    /// then reads ahead further.
    fn open(&self, artifact: &Artifact) -> io::Result<Opened<'_>> {
        let held = self
            .prefetched
            .lock()
            .expect("prefetch lock")
            .remove(&artifact.key);
        let f = match held {
            Some(f) => f,
            None => open_quietly(&self.path_of(&artifact.key))?,
        };
        let reader: Box<dyn super::BackupReader> = if artifact.size <= WHOLE_UP_TO {
            Box::new(super::whole::WholeFile::read(f, artifact.size)?)
        } else if artifact.size >= MAP_FROM && super::mapped::available() {
            Box::new(super::mapped::MappedFile::new(f, artifact.size))
        } else {
            if artifact.size >= SEQUENTIAL_HINT_FROM {
                let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
            }
            Box::new(f)
        };
        Ok(Opened {
            skipped: Vec::new(),
            reader,
            promises: Vec::new(),
            version_id: None,
            encryption: None,
            unchecked: Vec::new(),
            scope: None,
        })
    }

    /// Asks the kernel to start reading a file in the background, so that many
    /// reads are in flight while the workers hash: cold trees of small files
    /// read about twice as fast with a deep queue as with one read per core.
    fn prefetch(&self, artifact: &Artifact) {
        if let Ok(f) = open_quietly(&self.path_of(&artifact.key)) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::WillNeed);
            let mut held = self.prefetched.lock().expect("prefetch lock");
            // Full means mostly files a worker opened before the prefetcher
            // got to them (or a directory dump of many tables): start over
            // rather than hold descriptors nobody will take.
            if held.len() >= MAX_HELD {
                held.clear();
            }
            held.insert(artifact.key.clone(), f);
        }
    }

    /// Positional read for formats whose metadata is scattered (qcow2 tables).
    fn read_at(&self, artifact: &Artifact, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let f = open_quietly(&self.path_of(&artifact.key))?;
        let mut done = 0;
        while done < buf.len() {
            let n = f.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// Opens a backup file for reading without updating its access time
/// (`O_NOATIME`), so an audit leaves no trace on the store. The kernel
/// allows that flag to the file's owner (or with CAP_FOWNER); anyone else
/// gets a plain open.
fn open_quietly(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let quiet = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path);
    match quiet {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}

/// A directory of backups as a whole, or one backup file (or
/// directory-format dump) named within its parent.
pub fn resolve(path: &Path) -> Result<(LocalSource, Option<String>), SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| SourceError {
        location: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let is_pg_dir = meta.is_dir() && path.join("toc.dat").is_file();
    if meta.is_dir() && !is_pg_dir {
        return Ok((LocalSource::new(path), None));
    }
    let name = path
        .file_name()
        .map(|n| key_part(n).0)
        .ok_or_else(|| SourceError {
            location: path.display().to_string(),
            reason: "names no file".into(),
        })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((LocalSource::new(parent), Some(name)))
}
