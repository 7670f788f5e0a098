//! Secrets never leak (issue 10): a password in any form libpq or the MySQL
//! URL syntax accepts is masked on stdout, stderr and in the history.

mod common;

use std::fs;

use common::*;

const SECRET: &str = "SeCrEt4711";

fn assert_hidden(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
}

/// Regression: `?password=` in a URL was printed and stored for good.
#[test]
fn a_password_query_parameter_never_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.sqlite");
    let dump = corpus().join("clean/postgres/appdb-2026-11-20T0300.dump");
    // Port 1 on loopback: nothing listens, so the restore is an error that
    // names its target.
    let url = format!("postgres://app@127.0.0.1:1/scratch?password={SECRET}&connect_timeout=2");
    let o = bin()
        .args([
            "verify",
            "--restore",
            "--scratch-url",
            &url,
            "--format",
            "json",
        ])
        .arg("--history")
        .arg(&history)
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let restore = findings(&report)
        .iter()
        .find(|f| f["check"] == "restore")
        .expect("a restore finding");
    assert_eq!(restore["status"], "error");
    assert!(
        restore["evidence"]["target"]
            .as_str()
            .unwrap()
            .contains("password=***"),
        "{restore}"
    );
    assert_hidden("stdout", &o.stdout);
    assert_hidden("stderr", &o.stderr);
    assert_hidden("the history", &fs::read(&history).unwrap());

    // The same form in a history URL: the error names it masked.
    let url = format!("postgres://app@127.0.0.1:1/h?password={SECRET}&connect_timeout=2");
    let o = run(&["history", "verify", "--history", &url]);
    assert_eq!(code(&o), 2);
    assert_hidden("stderr", &o.stderr);
    assert!(String::from_utf8_lossy(&o.stderr).contains("password=***"));
}

/// Regression: a TOML syntax error echoed the offending line, secret included.
#[test]
fn a_toml_syntax_error_does_not_echo_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            "[[sources]]\nname = \"db\"\npath = \"/srv/x\"\n[sources.restore]\nscratch_url = \"postgres://u:{SECRET}@db/x\nrto = \"1h\"\n"
        ),
    )
    .unwrap();
    let o = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("backproof.toml") && err.contains("line 5"),
        "{err}"
    );
    assert_hidden("stderr", &o.stderr);
}

/// Regression (issue 10): `verify` took no `--deadline`; a spot check of a
/// large tree had no time budget. Backups not reached are errors, never
/// skipped silently.
#[test]
fn verify_accepts_a_deadline_and_unreached_backups_are_errors() {
    let dir = corpus().join("clean/mysql");
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--format",
            "json",
            "--deadline",
            "0s",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unreached = findings(&report)
        .iter()
        .filter(|f| f["status"] == "error" && f["summary"].as_str().unwrap().contains("deadline"))
        .count();
    assert_eq!(unreached, 3, "{}", describe(&report));
    // compare takes the same budget: with time it passes, without it the
    // pairs it had to read are errors.
    let o = bin()
        .args(["compare", "--no-history", "--deadline", "1h"])
        .arg(&dir)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .args([
            "compare",
            "--no-history",
            "--format",
            "json",
            "--deadline",
            "0s",
        ])
        .arg(&dir)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stdout));
}

/// Regression (issue 10): a file name could forge lines of the text report.
#[test]
fn a_file_name_cannot_forge_a_report_line() {
    let tmp = tempfile::tempdir().unwrap();
    let forged =
        "FAIL \nOK: 99 backup(s), 0 B read; 99 pass, 0 warn, 0 fail, 0 error\n\u{1b}[2J.sql";
    fs::write(tmp.path().join(forged), b"not a dump\n").unwrap();
    for args in [&["verify", "--no-history"][..], &["ls"][..]] {
        let o = bin().args(args).arg(tmp.path()).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.lines().any(|l| l.starts_with("OK: 99")) && !out.contains('\u{1b}'),
            "{args:?} printed a forged line:\n{out}"
        );
        assert!(
            out.contains("\\nOK: 99"),
            "{args:?}: the name is shown escaped:\n{out}"
        );
    }
}

/// Regression (issue 10): non-UTF-8 names were converted lossily, so
/// backproof opened a different file from the one it listed: a corrupt
/// `nightly\xff.sql.gz` beside a clean `nightly\u{fffd}.sql.gz` passed twice.
#[test]
fn a_non_utf8_name_opens_the_file_it_names() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let corrupt = tmp
        .path()
        .join(std::ffi::OsStr::from_bytes(b"nightly\xff.sql.gz"));
    fs::copy(
        corpus().join("corrupt/mysql-gz-truncated/shop-2026-11-20T0300.sql.gz"),
        &corrupt,
    )
    .unwrap();
    fs::copy(
        corpus().join("clean/mysql/shop-2026-11-20T0300.sql.gz"),
        tmp.path().join("nightly\u{fffd}.sql.gz"),
    )
    .unwrap();
    let (code, report) = verify_json(&[tmp.path()]);
    assert_eq!(code, 1, "{}", describe(&report));
    let failed: Vec<&str> = findings(&report)
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|s| s.ends_with("nightly\\xff.sql.gz")),
        "{}",
        describe(&report)
    );
    // Named on its own, it fails too; the clean twin passes.
    let (code, report) = verify_json(&[&corrupt]);
    assert_eq!(code, 1, "{}", describe(&report));
    let (code, report) = verify_json(&[&tmp.path().join("nightly\u{fffd}.sql.gz")]);
    assert_eq!(code, 0, "{}", describe(&report));
}

/// Regression (issue 10): FIFOs and device files named like backups were
/// skipped silently (`verify dir/nightly.dump` on a FIFO: exit 0, "no
/// backups found"). They are never opened, and each is a finding naming it.
#[test]
fn a_fifo_named_like_a_backup_is_a_finding_not_a_hang_or_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("nightly.dump");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    fs::copy(
        corpus().join("clean/mysql/shop-2026-11-20T0300.sql"),
        tmp.path().join("shop-2026-11-20T0300.sql"),
    )
    .unwrap();
    for target in [&fifo, &tmp.path().to_path_buf()] {
        let (code, report) = verify_json(&[target]);
        assert_eq!(code, 2, "{}", describe(&report));
        assert!(
            findings(&report).iter().any(|f| f["status"] == "error"
                && f["subject"].as_str().unwrap().ends_with("nightly.dump")
                && f["summary"].as_str().unwrap().contains("FIFO")),
            "{}",
            describe(&report)
        );
    }
}

/// Regression (issue 10): a 5 KB pg custom dump declaring a 256 MiB chunk
/// allocated 256 MiB before reading (1.58 GB at -j 8). Memory follows the
/// bytes that arrive, not the lengths a file claims.
#[test]
fn a_small_dump_declaring_a_huge_chunk_costs_little_memory() {
    let clean = fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.dump")).unwrap();
    // The first data chunk: a zero sign byte and a 4-byte length right
    // before a zlib header.
    let at = (5..clean.len() - 1)
        .find(|&i| {
            clean[i] == 0x78
                && matches!(clean[i + 1], 0x01 | 0x5e | 0x9c | 0xda)
                && clean[i - 5] == 0
                && (u32::from_le_bytes(clean[i - 4..i].try_into().unwrap()) as usize) < clean.len()
        })
        .expect("a data chunk in the clean dump")
        - 5;
    let mut hostile = clean[..at + 5 + 2048].to_vec();
    hostile[at + 1..at + 5].copy_from_slice(&(255u32 * 1024 * 1024).to_le_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("appdb-2026-11-20T0300.dump");
    fs::write(&path, &hostile).unwrap();
    let (code, report) = verify_json(&[&path]);
    assert_eq!(code, 1, "{}", describe(&report));
    // Every child this test binary waited for, at its largest.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(
        peak_mib < 128,
        "peak RSS {peak_mib} MiB for a {} B dump",
        hostile.len()
    );
}

/// Regression (issue 10): a qcow2 whose L1 entries all point at one L2
/// table kept a core busy for an hour (work grew with L1 entries x cluster
/// size, not with the file). A shared table is itself the finding.
#[test]
fn a_qcow2_with_a_shared_l2_table_fails_at_once() {
    let mut img = fs::read(corpus().join("clean/disk/vm-2026-11-20.qcow2")).unwrap();
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let l1_offset = u64::from_be_bytes(img[40..48].try_into().unwrap()) as usize;
    let cluster = 1usize << be32(&img, 20);
    let entry: [u8; 8] = img[l1_offset..l1_offset + 8].try_into().unwrap();
    assert_ne!(entry, [0; 8], "the clean image maps its first L2 table");
    // As many L1 entries as its cluster holds, every one at the same table.
    let entries = cluster / 8;
    img[36..40].copy_from_slice(&(entries as u32).to_be_bytes());
    for i in 0..entries {
        img[l1_offset + i * 8..l1_offset + i * 8 + 8].copy_from_slice(&entry);
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vm-2026-11-20.qcow2");
    fs::write(&path, &img).unwrap();
    let (code, report) = verify_json(&[&path]);
    assert_eq!(code, 1, "{}", describe(&report));
    let structure = findings(&report)
        .iter()
        .find(|f| f["check"] == "structure")
        .unwrap();
    assert_eq!(structure["status"], "fail");
    let summary = structure["summary"].as_str().unwrap();
    assert!(
        summary.contains("L2 table") && summary.contains("referenced by L1 entries 0 and 1"),
        "{summary}"
    );
}

/// Regression (issue 10): gzip members followed by zero padding (which
/// `gzip -t` accepts) failed as "invalid gzip header"; other trailing bytes
/// still fail.
#[test]
fn gzip_zero_padding_passes_as_gzip_t_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = fs::read(corpus().join("clean/mysql/shop-2026-11-20T0300.sql.gz")).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    let padded = tmp.path().join("shop-2026-11-20T0300.sql.gz");
    fs::write(&padded, &bytes).unwrap();
    let t = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&padded)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "gzip -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let (code, report) = verify_json(&[&padded]);
    assert_eq!(code, 0, "{}", describe(&report));
    bytes.push(b'x');
    fs::write(&padded, &bytes).unwrap();
    let (code, report) = verify_json(&[&padded]);
    assert_eq!(code, 1, "{}", describe(&report));
}

/// Regression (issue 10): a valid `zstd --long=31` dump was reported as
/// damaged ("Frame requires too much memory"). It decodes by default; under
/// a lower configured limit it is an error naming that limit, never a fail.
#[test]
fn a_zstd_long_window_dump_decodes_and_a_limit_is_an_error_not_a_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("shop-2026-11-20T0300.sql.zst");
    // From a pipe, so zstd cannot shrink the window to the input's size.
    let dump = fs::read(corpus().join("clean/mysql/shop-2026-11-20T0300.sql")).unwrap();
    let mut z = std::process::Command::new("zstd")
        .args(["--long=31", "-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        z.stdin.take().unwrap().write_all(&dump).unwrap();
    }
    let out = z.wait_with_output().unwrap();
    assert!(out.status.success());
    fs::write(&path, &out.stdout).unwrap();
    // zstd itself needs to be told: the window is 2 GiB.
    let plain = std::process::Command::new("zstd")
        .arg("-t")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!plain.status.success(), "the frame asks for a long window");

    let (exit, report) = verify_json(&[&path]);
    assert_eq!(exit, 0, "{}", describe(&report));
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--format",
            "json",
            "--zstd-window-max",
            "64MiB",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let structure = findings(&report)
        .iter()
        .find(|f| f["check"] == "structure")
        .unwrap();
    assert_eq!(structure["status"], "error", "{}", describe(&report));
    assert!(
        structure["summary"]
            .as_str()
            .unwrap()
            .contains("--zstd-window-max")
    );
}

/// What the inspection accepts restores too: a zero-padded gzip SQL dump
/// is fed to psql through the same decoder (issue 10, item 9).
#[test]
fn a_zero_padded_gzip_dump_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.sql.gz")).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    let padded = tmp.path().join("appdb-2026-11-20T0300.sql.gz");
    fs::write(&padded, &bytes).unwrap();
    let o = bin()
        .args(["verify", "--no-history", "--format", "json", "--restore"])
        .arg(&padded)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(code(&o), 0, "{}", describe(&report));
    let restore = findings(&report)
        .iter()
        .find(|f| f["check"] == "restore")
        .expect("a restore");
    assert_eq!(restore["status"], "pass", "{restore:#}");
}
