//! The bytes of the demo week: real backups made by the real tools (the
//! clean fixtures, embedded at build time, one copy each), written out night
//! by night under new names, with a SHA256SUMS per directory as a backup job
//! writes them. Three nights go wrong on purpose.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

/// pg_dump -Fc of appdb (customers, orders).
const PG_DUMP: &[u8] =
    include_bytes!("../../fixtures/corpus/clean/postgres/appdb-2026-11-20T0300.dump");
/// mariadb-dump of shop (products, sales), gzipped.
const MY_DUMP: &[u8] =
    include_bytes!("../../fixtures/corpus/clean/mysql/shop-2026-11-20T0300.sql.gz");
/// A qcow2 disk image of the application server.
const QCOW2: &[u8] = include_bytes!("../../fixtures/corpus/clean/disk/vm-2026-11-20.qcow2");
/// A tar.gz of its files.
const TAR_GZ: &[u8] = include_bytes!("../../fixtures/corpus/clean/disk/files-2026-11-20.tar.gz");

/// Nights kept in the corpus at any time (the backup job's rotation).
pub const KEPT: i64 = 8;
/// The night (days before tonight) whose MariaDB dump never arrived.
pub const MISSING_NIGHT: i64 = 4;
/// The night whose PostgreSQL dump was cut off mid-upload.
pub const TRUNCATED_NIGHT: i64 = 2;
/// Tonight's MariaDB dump lacks its biggest table: valid, restorable, small.
pub const SMALL_NIGHT: i64 = 0;

/// One backup file of a night: directory, name, bytes on disk, and the
/// bytes the manifest records when they differ (a damaged copy).
type File = (&'static str, String, Vec<u8>, Option<Vec<u8>>);

/// The corpus on disk and the manifests written so far.
pub struct Corpus {
    pub root: PathBuf,
    /// directory → file name → the SHA-256 the backup job recorded.
    sums: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// The minute the demo calls "now".
    now: DateTime<Utc>,
}

/// The directories, one per source.
pub const DIRS: [&str; 3] = ["postgres", "mysql", "snapshots"];

impl Corpus {
    /// An empty corpus under `root` (an earlier demo's removed).
    pub fn new(root: PathBuf, now: DateTime<Utc>) -> io::Result<Corpus> {
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        for d in DIRS {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Corpus {
            root,
            sums: BTreeMap::new(),
            now,
        })
    }

    /// When night `k` (days before tonight) was backed up: an hour before
    /// that night's audit.
    pub fn backed_up(&self, k: i64) -> DateTime<Utc> {
        self.now - Duration::days(k) - Duration::hours(1)
    }

    /// The files of night `k`.
    fn files(&self, k: i64) -> Vec<File> {
        let ts = self.backed_up(k).format("%Y-%m-%dT%H%M").to_string();
        let mut out = Vec::new();
        let pg = format!("appdb-{ts}.dump");
        if k == TRUNCATED_NIGHT {
            // The manifest records the intact bytes; the file holds 60% of them.
            let cut = PG_DUMP[..PG_DUMP.len() * 6 / 10].to_vec();
            out.push(("postgres", pg, cut, Some(PG_DUMP.to_vec())));
        } else {
            out.push(("postgres", pg, PG_DUMP.to_vec(), None));
        }
        if k != MISSING_NIGHT {
            let bytes = if k == SMALL_NIGHT {
                without_sales(MY_DUMP)
            } else {
                MY_DUMP.to_vec()
            };
            out.push(("mysql", format!("shop-{ts}.sql.gz"), bytes, None));
        }
        out.push(("snapshots", format!("vm-{ts}.qcow2"), QCOW2.to_vec(), None));
        out.push((
            "snapshots",
            format!("files-{ts}.tar.gz"),
            TAR_GZ.to_vec(),
            None,
        ));
        out
    }

    /// Night `k`'s backups arrive; the night `KEPT` before it rotates out;
    /// every manifest is rewritten.
    pub fn night(&mut self, k: i64) -> io::Result<()> {
        for (dir, name, bytes, recorded) in self.files(k) {
            fs::write(self.root.join(dir).join(&name), &bytes)?;
            let hash = hex::encode(Sha256::digest(recorded.as_deref().unwrap_or(&bytes)));
            self.sums.entry(dir).or_default().insert(name, hash);
        }
        for (dir, name, _, _) in self.files(k + KEPT) {
            let path = self.root.join(dir).join(&name);
            if path.exists() {
                fs::remove_file(path)?;
            }
            if let Some(s) = self.sums.get_mut(dir) {
                s.remove(&name);
            }
        }
        for (dir, files) in &self.sums {
            let text: String = files.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
            fs::write(self.root.join(dir).join("SHA256SUMS"), text)?;
        }
        Ok(())
    }
}

/// A partial shop dump, as from a job pointed at a half-loaded replica: the
/// `sales` rows left out and only the first 100 products kept, still a
/// complete, restorable mariadb-dump (every table and the view are there),
/// a small fraction of the usual size.
fn without_sales(gz: &[u8]) -> Vec<u8> {
    let mut sql = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut sql)
        .expect("the embedded dump is valid gzip text");
    let start = sql
        .find("--\n-- Dumping data for table `sales`")
        .expect("the shop dump has a sales table");
    let end = sql[start..]
        .find("--\n-- Dumping routines")
        .map(|i| start + i)
        .expect("the shop dump has routines after its tables");
    let mut small = format!("{}{}", &sql[..start], &sql[end..]);
    // And only the first 100 of the 1,000 products.
    let cut = small
        .find(",\n(101,'")
        .expect("the shop dump has 1,000 products");
    let stop = small[cut..]
        .find(");\n")
        .map(|i| cut + i + 2)
        .expect("the products insert ends");
    small.replace_range(cut..stop, ";");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(small.as_bytes()).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_dump_is_complete_and_under_half() {
        let small = without_sales(MY_DUMP);
        assert!(
            small.len() * 5 < MY_DUMP.len(),
            "{} vs {}",
            small.len(),
            MY_DUMP.len()
        );
        let mut sql = String::new();
        flate2::read::GzDecoder::new(small.as_slice())
            .read_to_string(&mut sql)
            .unwrap();
        assert!(sql.contains("CREATE TABLE `products`"));
        assert!(sql.contains("CREATE TABLE `sales`"));
        assert!(!sql.contains("INSERT INTO `sales`"));
        assert!(sql.contains("(100,'") && !sql.contains("(101,'"));
        assert!(
            sql.trim_end()
                .lines()
                .last()
                .unwrap()
                .starts_with("-- Dump completed")
        );
    }
}
