//! InnoDB tablespaces (`ibdata1`, `*.ibd`) as mariadb-backup copies them:
//! whole pages, each carrying its own checksum and page number, and a
//! header (page 0) that says how many pages the space holds. A cut file or
//! a flipped byte in any written page is caught here, before any restore.

use std::io::{self, Read};

use serde_json::{Map, Value, json};

use super::Damage;

/// Where page 0 keeps the space's size (pages) and flags:
/// FIL_PAGE_DATA (38) + FSP_SIZE (8) / FSP_SPACE_FLAGS (16).
const FSP_SIZE: usize = 38 + 8;
const FSP_FLAGS: usize = 38 + 16;
/// FSP_SPACE_ID: 0 is the system tablespace.
const FSP_SPACE_ID: usize = 38;
/// FIL_PAGE_OFFSET: the page's own number.
const PAGE_NO: usize = 4;
/// full_crc32 format (MariaDB 10.5+ default): flag bit 4.
const FCRC32_MARKER: u32 = 1 << 4;
/// full_crc32: compression algorithm bits 5..7 (then the checksum moves).
const FCRC32_COMPRESSED: u32 = 7 << 5;
/// Legacy formats: compressed ("zip") page size bits 1..4.
const ZIP_SSIZE: u32 = 15 << 1;
/// `innodb_checksum_algorithm=none` writes this instead of a checksum.
const NO_CHECKSUM: u32 = 0xDEAD_BEEF;

/// Whether a name is one InnoDB gives its tablespaces.
pub fn is_tablespace_name(name: &str) -> bool {
    // ibdata2 and later continue ibdata1's pages: no header of their own.
    name.ends_with(".ibd")
        || name == "ibdata1"
        || name
            .strip_prefix("undo")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How the pages of a space are to be checked, from page 0's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checksum {
    /// crc32c of all but the last 4 bytes, stored in them.
    FullCrc32,
    /// crc32c of bytes 4..26 xor 38..size-8, stored in the first 4.
    LegacyCrc32,
}

fn page_size(flags: u32) -> Option<usize> {
    let ssize = if flags & FCRC32_MARKER != 0 {
        flags & 15
    } else {
        (flags >> 6) & 15
    };
    match ssize {
        0 if flags & FCRC32_MARKER == 0 => Some(16384),
        3..=7 => Some(512 << ssize),
        _ => None,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Legacy formats: the low 32 bits of the page LSN (bytes 20..24) again in
/// the last 4 bytes.
fn lsn_tail_ok(page: &[u8]) -> bool {
    page[20..24] == page[page.len() - 4..]
}

fn legacy_crc32(page: &[u8]) -> u32 {
    let n = page.len();
    crc32c::crc32c(&page[4..26]) ^ crc32c::crc32c(&page[38..n - 8])
}

fn page_ok(page: &[u8], how: Checksum) -> bool {
    let n = page.len();
    match how {
        Checksum::FullCrc32 => be32(page, n - 4) == crc32c::crc32c(&page[..n - 4]),
        Checksum::LegacyCrc32 => {
            let stored = be32(page, 0);
            stored == NO_CHECKSUM || stored == legacy_crc32(page)
        }
    }
}

/// Reads the whole space; returns evidence and, when some pages could not
/// be judged (legacy checksum algorithms, compressed pages), a warning.
pub fn check(r: &mut dyn Read) -> Result<(Map<String, Value>, Option<String>), Damage> {
    let mut first = vec![0u8; 64];
    r.read_exact(&mut first)
        .map_err(|e| Damage::io(e, "InnoDB page 0 header"))?;
    let flags = be32(&first, FSP_FLAGS);
    let declared = be32(&first, FSP_SIZE) as u64;
    let system = be32(&first, FSP_SPACE_ID) == 0;
    let size = page_size(flags).ok_or_else(|| {
        Damage(format!(
            "InnoDB page 0: flags {flags:#x} name no valid page size"
        ))
    })?;
    let mut page = vec![0u8; size];
    page[..64].copy_from_slice(&first);
    let mut filled = 64;
    let fcrc32 = flags & FCRC32_MARKER != 0;
    // Compressed pages keep their checksum elsewhere: read them, judge none.
    let judged = if fcrc32 && flags & FCRC32_COMPRESSED != 0 || !fcrc32 && flags & ZIP_SSIZE != 0 {
        None
    } else if fcrc32 {
        Some(Checksum::FullCrc32)
    } else {
        Some(Checksum::LegacyCrc32)
    };
    let how = judged;
    // The system tablespace's doublewrite buffer (its 2nd and 3rd extents)
    // holds copies of other spaces' pages, checksummed as those pages.
    let extent = ((1u64 << 20) / size as u64).max(64);
    let doublewrite = if system { extent..3 * extent } else { 0..0 };
    let (mut pages, mut empty, mut checked, mut unjudged) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let n = read_full(r, &mut page[filled..]).map_err(|e| Damage::io(e, "InnoDB page"))?;
        filled += n;
        if filled == 0 {
            break;
        }
        if filled < size {
            return Err(Damage(format!(
                "ends {filled} bytes into page {pages} (pages are {size} bytes): truncated"
            )));
        }
        if doublewrite.contains(&pages) {
            // Read (it is part of the file), not judged.
        } else if page.iter().all(|&b| b == 0) {
            // Allocated, never written: InnoDB itself accepts these.
            empty += 1;
        } else {
            let own = be32(&page, PAGE_NO) as u64;
            if how == Some(Checksum::LegacyCrc32) && !lsn_tail_ok(&page) {
                // Whatever the algorithm, a page's two copies of its LSN
                // agree unless it was torn or damaged.
                return Err(Damage(format!(
                    "page {pages}: its header and trailer LSNs disagree (torn or corrupt page)"
                )));
            }
            match how {
                Some(h) if page_ok(&page, h) => checked += 1,
                // Older formats keep each page's own algorithm (crc32,
                // innodb, none): a page not in crc32 is not ours to judge.
                Some(Checksum::LegacyCrc32) => unjudged += 1,
                Some(Checksum::FullCrc32) => {
                    return Err(Damage(format!(
                        "page {pages}: checksum does not match its contents (corrupt page)"
                    )));
                }
                None => unjudged += 1,
            }
            if how.is_some() && own != pages {
                return Err(Damage(format!(
                    "page {pages} says it is page {own}: pages out of place"
                )));
            }
        }
        pages += 1;
        filled = 0;
    }
    let mut warnings = Vec::new();
    if pages < declared {
        let cut = format!("holds {pages} pages but its header says the space has {declared}");
        if !system {
            return Err(Damage(format!("{cut}: truncated")));
        }
        // The system tablespace may go on in ibdata2: only the directory
        // holding it can tell (see `dirs`).
        warnings.push(format!("{cut}: truncated, unless it continues in ibdata2"));
    }
    if unjudged > 0 {
        warnings.push(format!(
            "{unjudged} page(s) use a checksum backproof does not check (compressed pages or a legacy algorithm): their size, number and LSNs checked only"
        ));
    }
    let mut ev = Map::new();
    ev.insert("system_tablespace".into(), json!(system));
    ev.insert("declared_pages".into(), json!(declared));
    ev.insert("pages_checksum_unjudged".into(), json!(unjudged));
    ev.insert("page_size".into(), json!(size));
    ev.insert("pages".into(), json!(pages));
    ev.insert("pages_never_written".into(), json!(empty));
    ev.insert("pages_checksum_verified".into(), json!(checked));
    ev.insert(
        "checksum".into(),
        json!(match how {
            Some(Checksum::FullCrc32) => "full_crc32",
            Some(Checksum::LegacyCrc32) => "crc32",
            None => "not checked",
        }),
    );
    Ok((ev, (!warnings.is_empty()).then(|| warnings.join("; "))))
}

/// Like `read_exact`, but a clean end (0 bytes) or a short last read is
/// the caller's to judge.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(space: u32, pages: usize) -> Vec<u8> {
        let size = 16384;
        let mut v = vec![0u8; size * pages];
        for (i, p) in v.chunks_mut(size).enumerate() {
            p[PAGE_NO..PAGE_NO + 4].copy_from_slice(&(i as u32).to_be_bytes());
            if i == 0 {
                p[FSP_SPACE_ID..FSP_SPACE_ID + 4].copy_from_slice(&space.to_be_bytes());
                p[FSP_SIZE..FSP_SIZE + 4].copy_from_slice(&(pages as u32).to_be_bytes());
                // full_crc32, page ssize 5 (16 KiB).
                p[FSP_FLAGS..FSP_FLAGS + 4].copy_from_slice(&(FCRC32_MARKER | 5).to_be_bytes());
            }
            p[100] = 7;
            let c = crc32c::crc32c(&p[..size - 4]);
            p[size - 4..].copy_from_slice(&c.to_be_bytes());
        }
        v
    }

    #[test]
    fn sound_truncated_and_flipped_spaces() {
        let good = space(7, 4);
        let (ev, w) = check(&mut &good[..]).unwrap();
        assert_eq!(ev["pages_checksum_verified"], 4);
        assert!(w.is_none());
        let cut = &good[..16384 * 3];
        assert!(check(&mut &cut[..]).unwrap_err().0.contains("header says"));
        let cut = &good[..16384 * 2 + 10];
        assert!(check(&mut &cut[..]).unwrap_err().0.contains("truncated"));
        let mut flipped = good.clone();
        flipped[16384 * 2 + 5000] ^= 1;
        assert!(check(&mut &flipped[..]).unwrap_err().0.contains("page 2"));
        // The system tablespace may continue in ibdata2: a warning here,
        // judged by the directory.
        let system = space(0, 4);
        let (ev, w) = check(&mut &system[..16384 * 3]).unwrap();
        assert_eq!(ev["declared_pages"], 4);
        assert!(w.unwrap().contains("ibdata2"));
    }

    #[test]
    fn tablespace_names() {
        assert!(is_tablespace_name("sales.ibd"));
        assert!(is_tablespace_name("ibdata1"));
        assert!(is_tablespace_name("undo001"));
        assert!(!is_tablespace_name("ibdata"));
        assert!(!is_tablespace_name("ibdata2"));
        assert!(!is_tablespace_name("ib_logfile0"));
    }
}
