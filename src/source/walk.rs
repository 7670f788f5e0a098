//! The walk of a local tree: every entry below a directory, depth first,
//! the names of each directory in key order (what `compare`'s merge join of
//! two listings relies on), symbolic links followed, loops refused.
//!
//! Written for a million files: each directory is listed once and its names
//! sorted by a key computed once per name; each entry is looked up relative
//! to its open directory (no walk of its full path); and a large
//! directory's entries are looked up on one thread per core. More threads
//! did not read uncached inodes faster: 1,000,000 of them cold took 17.1-17.8 s
//! with 4 per core, 15.9-16.8 s with 1, and `find -printf '%s'` 16.5 s.

use std::ffi::OsStr;
use std::fs::{self, DirEntry, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A path component as a key: UTF-8 as it is, other bytes as `\xNN`;
/// `true` when something had to be escaped.
pub fn key_part(name: &OsStr) -> (String, bool) {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    let mut escaped = false;
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
            escaped = true;
        }
    }
    (out, escaped)
}

/// Hands `each` every entry below `dir` that is not a directory, with its
/// metadata (links followed), in key order; and, as errors at their paths,
/// what could not be read: a directory that cannot be listed, a dangling
/// link, a link back to a directory above it.
pub fn walk(dir: &Path, each: &mut dyn FnMut(&Path, io::Result<Metadata>)) {
    let mut above = Vec::new();
    if let Ok(m) = fs::metadata(dir) {
        above.push((m.dev(), m.ino()));
    }
    walk_below(dir, &mut above, each);
}

fn walk_below(
    dir: &Path,
    above: &mut Vec<(u64, u64)>,
    each: &mut dyn FnMut(&Path, io::Result<Metadata>),
) {
    let listed = match fs::read_dir(dir) {
        Ok(listed) => listed,
        Err(e) => return each(dir, Err(e)),
    };
    let mut entries = Vec::new();
    for entry in listed {
        match entry {
            Ok(e) => entries.push((key_part(&e.file_name()).0, e)),
            Err(e) => each(dir, Err(e)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for ((_, entry), meta) in entries.iter().zip(look_up_all(&entries)) {
        let path = entry.path();
        match meta {
            Ok(m) if m.is_dir() => {
                let id = (m.dev(), m.ino());
                if above.contains(&id) {
                    each(
                        &path,
                        Err(io::Error::other(
                            "a link to a directory above it (a loop): not walked",
                        )),
                    );
                    continue;
                }
                above.push(id);
                walk_below(&path, above, each);
                above.pop();
            }
            meta => each(&path, meta),
        }
    }
}

/// An entry's metadata, looked up relative to its open directory; a link's
/// is its target's.
fn look_up(entry: &DirEntry) -> io::Result<Metadata> {
    let m = entry.metadata()?;
    match m.file_type().is_symlink() {
        true => fs::metadata(entry.path()),
        false => Ok(m),
    }
}

/// Below this many entries a directory is looked up on the walking thread:
/// starting threads would cost more than the lookups.
const ONE_THREAD_UP_TO: usize = 256;

/// The metadata of each entry, in order.
fn look_up_all(entries: &[(String, DirEntry)]) -> Vec<io::Result<Metadata>> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = (entries.len() / ONE_THREAD_UP_TO).clamp(1, cores);
    if threads == 1 {
        return entries.iter().map(|(_, e)| look_up(e)).collect();
    }
    let per = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = entries
            .chunks(per)
            .map(|part| {
                let thread =
                    scope.spawn(move || part.iter().map(|(_, e)| look_up(e)).collect::<Vec<_>>());
                (part, thread)
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(part, thread)| {
                thread.join().unwrap_or_else(|_| {
                    // A lookup does not panic; were it to, its part is
                    // reported unread, never dropped.
                    part.iter()
                        .map(|_| Err(io::Error::other("looked up on a thread that failed")))
                        .collect()
                })
            })
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// The walk as (relative path, size or error) pairs.
    fn walked(root: &Path) -> Vec<(String, Result<u64, String>)> {
        let mut out = Vec::new();
        walk(root, &mut |path, meta| {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, meta.map(|m| m.len()).map_err(|e| e.to_string())));
        });
        out
    }

    #[test]
    fn names_in_key_order_depth_first_with_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("b/c/z"), "zz").unwrap();
        fs::write(root.join("b/a"), "a").unwrap();
        fs::write(root.join("a"), "").unwrap();
        fs::write(root.join("c"), "ccc").unwrap();
        // A name that is not UTF-8 sorts by its escaped key: `\xff` < `a`.
        fs::write(root.join(OsStr::from_bytes(b"b/\xff")), "f").unwrap();
        // Enough entries for the lookups to be split between threads.
        fs::create_dir(root.join("many")).unwrap();
        for i in (0..1000).rev() {
            fs::write(root.join(format!("many/{i:04}")), vec![b'x'; i % 7]).unwrap();
        }
        let got = walked(root);
        let mut want: Vec<(String, Result<u64, String>)> = vec![
            ("a".into(), Ok(0)),
            ("b/\u{fffd}".into(), Ok(1)),
            ("b/a".into(), Ok(1)),
            ("b/c/z".into(), Ok(2)),
            ("c".into(), Ok(3)),
        ];
        want.extend((0..1000).map(|i| (format!("many/{i:04}"), Ok((i % 7) as u64))));
        assert_eq!(got, want);
    }

    #[test]
    fn links_are_followed_and_loops_and_dangling_links_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(root.join("d/e/f"), "ff").unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("d/e/up")).unwrap();
        std::os::unix::fs::symlink(root.join("d/e"), root.join("latest")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
        let got = walked(root);
        let looped = || Err("a link to a directory above it (a loop): not walked".to_string());
        let expected: Vec<(String, Result<u64, String>)> = vec![
            ("d/e/f".into(), Ok(2)),
            ("d/e/up".into(), looped()),
            (
                "dangling".into(),
                Err(io::Error::from_raw_os_error(2).to_string()),
            ),
            // Through a link, the tree it leads to; `up` then leads to
            // `d`, whose `e` is above on this path (as `latest`).
            ("latest/f".into(), Ok(2)),
            ("latest/up/e".into(), looped()),
        ];
        assert_eq!(got, expected);
    }
}
