//! Property: cutting a backup anywhere before its logical end is detected by
//! the structure check alone, with no manifest. Run through the library on
//! every cut point of a stride across each clean fixture, including cuts at
//! exact block boundaries (the tar and pg_dump cases that look complete).

mod common;

use std::io;

use backproof::inspect::{self, Subject};

/// Inspects `bytes` as a file named `name`, with random access to the same bytes.
fn check(bytes: &[u8], name: &str) -> Result<(), String> {
    let read_at = |off: u64, buf: &mut [u8]| -> io::Result<usize> {
        let off = (off as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - off);
        buf[..n].copy_from_slice(&bytes[off..off + n]);
        Ok(n)
    };
    let subject = Subject {
        name,
        size: bytes.len() as u64,
        read_at: Some(&read_at),
        local_path: None,
    };
    let mut stream = bytes;
    let i = inspect::inspect(&mut stream, &subject);
    i.result.map_err(|d| d.0)
}

/// Every cut in `cuts` must fail; the whole file must pass.
fn assert_cuts_fail(rel: &str, cuts: impl Iterator<Item = usize>) {
    let bytes = std::fs::read(common::corpus().join("clean").join(rel)).unwrap();
    let name = rel.rsplit('/').next().unwrap();
    check(&bytes, name).unwrap_or_else(|e| panic!("clean {rel} must pass: {e}"));
    let mut tried = 0;
    for cut in cuts.filter(|&c| c < bytes.len()) {
        tried += 1;
        assert!(
            check(&bytes[..cut], name).is_err(),
            "{rel} cut to {cut} of {} bytes passed",
            bytes.len()
        );
    }
    assert!(tried > 10, "{rel}: only {tried} cuts tried");
}

#[test]
fn any_cut_of_a_custom_dump_fails() {
    assert_cuts_fail(
        "postgres/appdb-2026-11-20T0300.dump",
        (1..86_000).step_by(241),
    );
}

#[test]
fn any_cut_of_compressed_dumps_fails() {
    for rel in [
        "postgres/appdb-2026-11-20T0300.sql.gz",
        "postgres/appdb-2026-11-20T0300.sql.zst",
        "mysql/shop-2026-11-20T0300.sql.gz",
        "mysql/shop-2026-11-20T0300.sql.zst",
        "disk/files-2026-11-20.tar.gz",
    ] {
        assert_cuts_fail(rel, (1..90_000).step_by(499));
    }
}

#[test]
fn any_cut_of_plain_dumps_before_the_trailer_fails() {
    // The last ~100 bytes hold the trailer lines; cutting inside them may
    // leave a complete-looking dump, which is what the trailer is for.
    let pg = std::fs::metadata(common::corpus().join("clean/postgres/appdb-2026-11-20T0300.sql"))
        .unwrap()
        .len() as usize;
    assert_cuts_fail(
        "postgres/appdb-2026-11-20T0300.sql",
        (1..pg - 150).step_by(997),
    );
    let my = std::fs::metadata(common::corpus().join("clean/mysql/shop-2026-11-20T0300.sql"))
        .unwrap()
        .len() as usize;
    assert_cuts_fail("mysql/shop-2026-11-20T0300.sql", (1..my - 60).step_by(997));
}

#[test]
fn tar_cut_at_a_member_boundary_fails() {
    // GNU tar itself accepts these: only the end-of-archive marker tells.
    let tar = std::fs::read(common::corpus().join("clean/disk/files-2026-11-20.tar")).unwrap();
    let data_end = tar.len() - tar.iter().rev().take_while(|&&b| b == 0).count();
    let boundaries = (512..data_end).step_by(512);
    assert_cuts_fail("disk/files-2026-11-20.tar", boundaries.clone());
    assert_cuts_fail(
        "postgres/appdb-2026-11-20T0300.tar",
        (512..120_000).step_by(512),
    );
}

#[test]
fn cuts_of_disk_images_fail() {
    assert_cuts_fail("disk/vm-2026-11-20.qcow2", (1..720_000).step_by(4099));
    assert_cuts_fail(
        "disk/vm-2026-11-20.img",
        (512..4_194_304).step_by(65_536 + 512),
    );
}

#[test]
fn any_cut_of_a_configuration_store_snapshot_fails() {
    // etcd: bbolt pages then the SHA-256 trailer; cuts at page boundaries
    // (a bbolt file that looks whole) and inside the trailer included. The
    // first 24 bytes (page header, magic, version) are what recognises it.
    let etcd = "etcd/etcd-2026-11-20T0300.db";
    assert_cuts_fail(
        etcd,
        (24..20_512).step_by(97).chain((1..=5).map(|p| p * 4096)),
    );
    assert_cuts_fail(etcd, 20_480..20_512);
    // Raft snapshot archives (gzip'd tar), from the gzip magic on.
    assert_cuts_fail(
        "openbao/openbao-2026-11-20T0300.snap",
        (2..21_000).step_by(89),
    );
    assert_cuts_fail("consul/consul-2026-11-20T0300.snap", (2..1_200).step_by(7));
}
