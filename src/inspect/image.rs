//! Disk images: qcow2 (header sane, every allocated cluster inside the file,
//! plus `qemu-img check` when installed) and raw images (GPT primary and
//! backup headers with their CRCs, partitions and ext filesystems inside the
//! image).

use std::io::Read;
use std::process::Command;

use serde_json::{Map, Value, json};

use super::{Damage, Subject};

const SECTOR: u64 = 512;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_exact_at(
    subject: &Subject<'_>,
    offset: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<(), Damage> {
    let read_at = subject.read_at.expect("callers check read_at");
    let n = read_at(offset, buf).map_err(|e| Damage::io(e, what))?;
    if n < buf.len() {
        return Err(Damage(format!(
            "{what} at byte {offset} lies beyond the end of the file ({} bytes)",
            subject.size
        )));
    }
    Ok(())
}

pub fn check_qcow2(r: &mut dyn Read, subject: &Subject<'_>) -> Result<Map<String, Value>, Damage> {
    let mut h = [0u8; 104];
    r.read_exact(&mut h[..72])
        .map_err(|e| Damage::io(e, "qcow2 header"))?;
    let version = be32(&h, 4);
    if !(2..=3).contains(&version) {
        return Err(Damage(format!("qcow2 version {version} (expected 2 or 3)")));
    }
    if version == 3 {
        r.read_exact(&mut h[72..104])
            .map_err(|e| Damage::io(e, "qcow2 v3 header"))?;
    }
    let cluster_bits = be32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(Damage(format!(
            "implausible cluster_bits {cluster_bits} in qcow2 header"
        )));
    }
    let cluster = 1u64 << cluster_bits;
    let virtual_size = be64(&h, 24);
    let l1_size = be32(&h, 36) as u64;
    let l1_offset = be64(&h, 40);
    let refcount_offset = be64(&h, 48);
    let mut ev = Map::new();
    ev.insert("qcow2_version".into(), json!(version));
    ev.insert("cluster_size".into(), json!(cluster));
    ev.insert("virtual_size".into(), json!(virtual_size));
    // Each L2 table maps cluster/8 clusters; L1 must reach the virtual size.
    let per_l2 = cluster * (cluster / 8);
    let needed_l1 = virtual_size.div_ceil(per_l2);
    if l1_size < needed_l1 {
        return Err(Damage(format!(
            "L1 table of {l1_size} entries cannot map the virtual size of {virtual_size} bytes (needs {needed_l1})"
        )));
    }
    if !l1_offset.is_multiple_of(cluster)
        || !refcount_offset.is_multiple_of(cluster)
        || refcount_offset == 0
    {
        return Err(Damage(format!(
            "qcow2 table offsets not cluster-aligned (L1 at {l1_offset}, refcount table at {refcount_offset})"
        )));
    }
    if version == 3 {
        let incompatible = be64(&h, 72);
        if incompatible & 2 != 0 {
            return Err(Damage("qcow2 header marks the image corrupt".into()));
        }
        if incompatible & 1 != 0 {
            ev.insert("dirty".into(), json!(true));
        }
        if incompatible & !0x1f != 0 {
            return Err(Damage(format!(
                "unknown incompatible feature bits {incompatible:#x}"
            )));
        }
    }
    // qemu's own limits: a 32 MiB L1 table, an 8 MiB refcount table.
    if l1_size * 8 > 32 << 20 || be32(&h, 56) as u64 * cluster > 8 << 20 {
        return Err(Damage("implausible qcow2 table sizes in header".into()));
    }
    if subject.read_at.is_some() {
        let size = subject.size;
        for (what, off, len) in [
            ("L1 table", l1_offset, l1_size * 8),
            (
                "refcount table",
                refcount_offset,
                be32(&h, 56) as u64 * cluster,
            ),
        ] {
            // Offsets are untrusted: near u64::MAX they must not wrap.
            if off.saturating_add(len) > size {
                return Err(Damage(format!(
                    "{what} ({len} bytes at {off}) extends past the end of the file ({size} bytes): truncated, or a corrupt header"
                )));
            }
        }
        let refcount_clusters = be32(&h, 56) as u64;
        let mut refcount_table = vec![0u8; (refcount_clusters * cluster) as usize];
        read_exact_at(
            subject,
            refcount_offset,
            &mut refcount_table,
            "refcount table",
        )?;
        for (k, e) in refcount_table.chunks_exact(8).enumerate() {
            let block = u64::from_be_bytes(e.try_into().unwrap()) & !(cluster - 1);
            if block != 0 && block.saturating_add(cluster) > size {
                return Err(Damage(format!(
                    "refcount block {k} at byte {block} lies beyond the end of the file ({size} bytes): truncated"
                )));
            }
        }
        let mut l1 = vec![0u8; (l1_size * 8) as usize];
        read_exact_at(subject, l1_offset, &mut l1, "L1 table")?;
        let mut l2 = vec![0u8; cluster as usize];
        let (mut allocated, mut l2_tables) = (0u64, 0u64);
        // Each L2 table is read once: a table shared by two L1 entries is
        // itself damage, and refusing it keeps the work within the bytes
        // of the file (a crafted image pointing 4M entries at one table
        // otherwise costs an hour of CPU).
        let mut seen: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for i in 0..l1_size as usize {
            let l2_offset = be64(&l1, i * 8) & 0x00ff_ffff_ffff_fe00;
            if l2_offset == 0 {
                continue;
            }
            if let Some(first) = seen.insert(l2_offset, i) {
                return Err(Damage(format!(
                    "L2 table at byte {l2_offset} is referenced by L1 entries {first} and {i}: tables are never shared, so the image is corrupt or crafted"
                )));
            }
            if l2_offset + cluster > size {
                return Err(Damage(format!(
                    "L2 table {i} at byte {l2_offset} lies beyond the end of the file ({size} bytes): truncated"
                )));
            }
            read_exact_at(subject, l2_offset, &mut l2, "L2 table")?;
            l2_tables += 1;
            for j in 0..(cluster / 8) as usize {
                let e = be64(&l2, j * 8);
                let compressed = e & (1 << 62) != 0;
                let host = if compressed {
                    e & ((1u64 << (62 - (cluster_bits - 8))) - 1)
                } else {
                    e & 0x00ff_ffff_ffff_fe00
                };
                if host == 0 {
                    continue;
                }
                allocated += 1;
                // qemu writes whole standard clusters; compressed ones are
                // variable-sized, so only their start is known here.
                let end = if compressed { host + 1 } else { host + cluster };
                if end > size {
                    let guest = (i as u64 * (cluster / 8) + j as u64) * cluster;
                    return Err(Damage(format!(
                        "cluster for guest offset {guest} is stored at byte {host}, beyond the end of the file ({size} bytes): truncated"
                    )));
                }
            }
        }
        ev.insert("l2_tables".into(), json!(l2_tables));
        ev.insert("allocated_clusters".into(), json!(allocated));
    }
    if let Some(path) = subject.local_path {
        qemu_img_check(path, subject.size, &mut ev)?;
    }
    Ok(ev)
}

/// Second opinion from `qemu-img check` (read-only without `-r`), when
/// installed. Its exit codes: 0 clean, 2 corruptions, 3 leaks only.
fn qemu_img_check(
    path: &std::path::Path,
    size: u64,
    ev: &mut Map<String, Value>,
) -> Result<(), Damage> {
    // A hostile image can make qemu-img spin: it runs under a limit that
    // grows with the file (30 s, plus 1 s per 32 MiB), and hitting it is
    // stated in the evidence rather than waited out. Our own walk above
    // already vouched for the tables.
    let limit = std::time::Duration::from_secs(30 + size / (32 << 20));
    let child = Command::new("qemu-img")
        .args(["check", "--output=json", "-f", "qcow2"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) => {
            ev.insert("qemu_img_check".into(), json!("not installed"));
            return Ok(());
        }
    };
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        ev.insert(
            "qemu_img_check".into(),
            json!(format!("killed after its {} s limit", limit.as_secs())),
        );
        return Ok(());
    };
    let report: Value = serde_json::from_slice(&stdout).unwrap_or(Value::Null);
    ev.insert("qemu_img_check".into(), report.clone());
    match status.code() {
        Some(0) | Some(3) => Ok(()),
        code => Err(Damage(format!(
            "qemu-img check exit {}: {}",
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "by signal".into()),
            String::from_utf8_lossy(&stderr).trim()
        ))),
    }
}

pub fn looks_raw(head: &[u8], name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let by_name = [".img", ".raw", ".iso", ".disk"]
        .iter()
        .any(|e| lower.ends_with(e));
    let gpt = head.len() >= 520 && &head[512..520] == b"EFI PART";
    let ext = head.len() >= 1082 && le16(head, 1080) == 0xEF53;
    let mbr = head.len() >= 512 && head[510] == 0x55 && head[511] == 0xAA;
    gpt || ext || (by_name && (mbr || head.len() >= 512))
}

/// Returns evidence and, when nothing inside could be recognised, a warning.
pub fn check_raw(
    r: &mut dyn Read,
    subject: &Subject<'_>,
) -> Result<(Map<String, Value>, Option<String>), Damage> {
    let mut ev = Map::new();
    // First 34 sectors: protective MBR, GPT header and the usual 128 entries.
    let mut head = Vec::with_capacity(34 * 512);
    r.take(34 * SECTOR)
        .read_to_end(&mut head)
        .map_err(|e| Damage::io(e, "image head"))?;
    let size = subject.size;
    if subject.read_at.is_some() && !size.is_multiple_of(SECTOR) {
        return Err(Damage(format!(
            "image size {size} is not a whole number of 512-byte sectors: truncated or padded"
        )));
    }
    let mut recognised = false;
    let mut fs_start = None;
    // MBR partition entries (a GPT disk's protective entry among them) must
    // fit the image; 0xFFFFFFFF sectors means "the rest of a large disk".
    if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xAA && subject.read_at.is_some() {
        for k in 0..4 {
            let e = &head[446 + 16 * k..462 + 16 * k];
            let (kind, start, count) = (e[4], le32(e, 8) as u64, le32(e, 12) as u64);
            if kind == 0 || count == 0 || count == u32::MAX as u64 {
                continue;
            }
            recognised = true;
            if (start + count) * SECTOR > size {
                return Err(Damage(format!(
                    "MBR partition {} ends at sector {}, beyond the end of the image ({} sectors): truncated",
                    k + 1,
                    start + count - 1,
                    size / SECTOR
                )));
            }
        }
    }
    if head.len() >= 1024 && &head[512..520] == b"EFI PART" {
        recognised = true;
        let gpt = check_gpt_header(&head[512..1024], "primary GPT header")?;
        // Sector numbers are untrusted: none may wrap when made bytes.
        let entries_len = (gpt.entries * gpt.entry_size) as usize;
        let entries = gpt
            .entries_lba
            .checked_mul(SECTOR)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| head.get(off..off.checked_add(entries_len)?));
        if let Some(table) = entries {
            if crc32fast::hash(table) != gpt.entries_crc {
                return Err(Damage("GPT partition entry array CRC mismatch".into()));
            }
            let mut parts = 0;
            for k in 0..gpt.entries as usize {
                let e = &table[k * gpt.entry_size as usize..];
                if e[..16].iter().all(|&b| b == 0) {
                    continue;
                }
                parts += 1;
                let (first, last) = (le64(e, 32), le64(e, 40));
                if last < first {
                    return Err(Damage(format!(
                        "partition {} ends at sector {last}, before its first sector {first}",
                        k + 1
                    )));
                }
                let Some(end) = last.checked_add(1).and_then(|n| n.checked_mul(SECTOR)) else {
                    return Err(Damage(format!(
                        "partition {} ends at sector {last}, beyond what any disk holds",
                        k + 1
                    )));
                };
                if subject.read_at.is_some() && end > size {
                    return Err(Damage(format!(
                        "partition {} ends at sector {last}, beyond the end of the image ({} sectors): truncated",
                        k + 1,
                        size / SECTOR
                    )));
                }
                if fs_start.is_none() {
                    fs_start = Some((first * SECTOR, end - first * SECTOR));
                }
            }
            ev.insert("gpt_partitions".into(), json!(parts));
        }
        if subject.read_at.is_some() {
            let backup_at = gpt.alternate_lba.saturating_mul(SECTOR);
            if backup_at.saturating_add(SECTOR) > size {
                return Err(Damage(format!(
                    "backup GPT header belongs at sector {}, beyond the end of the image ({} sectors): truncated",
                    gpt.alternate_lba,
                    size / SECTOR
                )));
            }
            let mut backup = vec![0u8; SECTOR as usize];
            read_exact_at(subject, backup_at, &mut backup, "backup GPT header")?;
            if &backup[..8] != b"EFI PART" {
                return Err(Damage(format!(
                    "no backup GPT header at sector {}",
                    gpt.alternate_lba
                )));
            }
            check_gpt_header(&backup, "backup GPT header")?;
            ev.insert("gpt_backup_header".into(), json!("valid"));
        }
    } else if head.len() >= 1082 && le16(&head, 1080) == 0xEF53 {
        fs_start = Some((0, size));
    }
    if let Some((start, room)) = fs_start {
        let mut sb = vec![0u8; 1024];
        let got = if start.saturating_add(2048) <= head.len() as u64 {
            sb.copy_from_slice(&head[start as usize + 1024..start as usize + 2048]);
            true
        } else if subject.read_at.is_some() {
            read_exact_at(
                subject,
                start.saturating_add(1024),
                &mut sb,
                "filesystem superblock",
            )?;
            true
        } else {
            false
        };
        if got && le16(&sb, 56) == 0xEF53 {
            recognised = true;
            let log = le32(&sb, 24);
            if log > 6 {
                return Err(Damage(format!(
                    "ext superblock: implausible block size 2^{} KiB",
                    log
                )));
            }
            let block = 1024u64 << log;
            // s_blocks_count_hi only counts with the 64bit feature.
            let hi = if le32(&sb, 0x60) & 0x80 != 0 {
                le32(&sb, 0x150) as u64
            } else {
                0
            };
            let blocks = le32(&sb, 4) as u64 | (hi << 32);
            let fs_bytes = blocks.saturating_mul(block);
            ev.insert("ext_filesystem_bytes".into(), json!(fs_bytes));
            if subject.read_at.is_some() && fs_bytes > room {
                return Err(Damage(format!(
                    "ext filesystem of {fs_bytes} bytes does not fit the {room} bytes left for it: truncated"
                )));
            }
        }
    }
    let warning = (!recognised).then(|| {
        "no partition table or filesystem recognised in this raw image: only its size and checksums vouch for it".to_string()
    });
    Ok((ev, warning))
}

struct Gpt {
    alternate_lba: u64,
    entries_lba: u64,
    entries: u64,
    entry_size: u64,
    entries_crc: u32,
}

fn check_gpt_header(h: &[u8], what: &str) -> Result<Gpt, Damage> {
    let header_size = le32(h, 12) as usize;
    if !(92..=512).contains(&header_size) {
        return Err(Damage(format!(
            "{what}: implausible header size {header_size}"
        )));
    }
    let mut copy = h[..header_size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le32(h, 16) {
        return Err(Damage(format!("{what}: CRC mismatch")));
    }
    let gpt = Gpt {
        alternate_lba: le64(h, 32),
        entries_lba: le64(h, 72),
        entries: le32(h, 80) as u64,
        entry_size: le32(h, 84) as u64,
        entries_crc: le32(h, 88),
    };
    if gpt.entry_size < 128 || gpt.entries > 1024 {
        return Err(Damage(format!(
            "{what}: implausible partition entry layout"
        )));
    }
    Ok(gpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A qcow2 v2 header with 512-byte clusters, an empty L1 table at
    /// cluster 1 and a one-cluster refcount table at cluster 2.
    fn qcow2(l1_size: u32, l1_offset: u64, refcount_entry: u64) -> Vec<u8> {
        let mut f = vec![0u8; 3 * 512];
        f[..4].copy_from_slice(b"QFI\xfb");
        f[4..8].copy_from_slice(&2u32.to_be_bytes());
        f[20..24].copy_from_slice(&9u32.to_be_bytes());
        f[36..40].copy_from_slice(&l1_size.to_be_bytes());
        f[40..48].copy_from_slice(&l1_offset.to_be_bytes());
        f[48..56].copy_from_slice(&1024u64.to_be_bytes());
        f[56..60].copy_from_slice(&1u32.to_be_bytes());
        f[1024..1032].copy_from_slice(&refcount_entry.to_be_bytes());
        f
    }

    fn check(f: &[u8]) -> Result<Map<String, Value>, Damage> {
        let at = |off: u64, buf: &mut [u8]| -> std::io::Result<usize> {
            let rest = f.get(off as usize..).unwrap_or(&[]);
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        };
        let subject = Subject {
            name: "x.qcow2",
            size: f.len() as u64,
            read_at: Some(&at),
            local_path: None,
        };
        check_qcow2(&mut &f[..], &subject)
    }

    /// A 64-sector GPT disk with one partition, both headers' and the entry
    /// array's CRCs right; the backup header is written where `alternate`
    /// points when that lies inside the disk.
    fn gpt(first: u64, last: u64, entries_lba: u64, alternate: u64) -> Vec<u8> {
        let mut d = vec![0u8; 64 * 512];
        let table = 2 * 512;
        d[table..table + 16].fill(0xaa);
        d[table + 32..table + 40].copy_from_slice(&first.to_le_bytes());
        d[table + 40..table + 48].copy_from_slice(&last.to_le_bytes());
        let entries_crc = crc32fast::hash(&d[table..table + 128 * 128]);
        let mut h = [0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        d[512..512 + 92].copy_from_slice(&h);
        if alternate < 64 {
            let at = alternate as usize * 512;
            d[at..at + 92].copy_from_slice(&h);
        }
        d
    }

    fn raw(f: &[u8], random: bool) -> Result<Map<String, Value>, Damage> {
        let at = |off: u64, buf: &mut [u8]| -> std::io::Result<usize> {
            let rest = f.get(off as usize..).unwrap_or(&[]);
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        };
        let subject = Subject {
            name: "x.img",
            size: f.len() as u64,
            read_at: if random { Some(&at) } else { None },
            local_path: None,
        };
        check_raw(&mut &f[..], &subject).map(|(ev, _)| ev)
    }

    /// Fuzzing (issue 10, item 15): GPT sector numbers near u64::MAX (the
    /// entry array's, a partition's, the backup header's) overflowed when
    /// made bytes, and a partition ending before it starts underflowed:
    /// each panicked. Now each is damage, or (an entry array outside the
    /// head, which is not read) no concern.
    #[test]
    fn gpt_sector_numbers_that_overflow_are_damage_not_a_panic() {
        let ok = raw(&gpt(34, 63, 2, 63), true).unwrap();
        assert_eq!(ok["gpt_partitions"], 1, "{ok:?}");
        for random in [true, false] {
            let e = raw(&gpt(34, u64::MAX, 2, 63), random).unwrap_err().0;
            assert!(e.contains("beyond what any disk holds"), "{e}");
            let e = raw(&gpt(1 << 60, 1 << 60, 2, 63), random).unwrap_err().0;
            assert!(e.contains("beyond what any disk holds"), "{e}");
            let e = raw(&gpt(40, 34, 2, 63), random).unwrap_err().0;
            assert!(e.contains("before its first sector"), "{e}");
            assert!(raw(&gpt(34, 63, u64::MAX / 256, 63), random).is_ok());
        }
        let e = raw(&gpt(34, 63, 2, u64::MAX / 256), true).unwrap_err().0;
        assert!(e.contains("backup GPT header"), "{e}");
    }

    /// Fuzzing (issue 10, item 15): table offsets near u64::MAX overflowed
    /// the "past the end of the file" sums and panicked.
    #[test]
    fn qcow2_offsets_near_the_top_of_u64_are_damage_not_a_panic() {
        assert!(check(&qcow2(1, 512, 0)).is_ok());
        let e = check(&qcow2(1, 512, 0xffff_ffff_ffff_ff00)).unwrap_err().0;
        assert!(e.contains("refcount block 0"), "{e}");
        let e = check(&qcow2(128, 0xffff_ffff_ffff_fe00, 0)).unwrap_err().0;
        assert!(e.contains("L1 table"), "{e}");
    }
}
