//! Cloud snapshot sources (`ebs://`, `rds://`) against a real AWS API
//! server: moto in server mode (PyPI `moto[server]`, which scripts/test.sh
//! installs) on 127.0.0.1, seeded by fixtures/moto_seed.py through boto3
//! with EBS direct snapshots of a disk image the real tools made, RDS
//! instances and their snapshots, and copies in a second region.
//!
//! One server for the whole file, its scenarios as separate tests
//! (libtest-mimic, `harness = false`), one at a time. moto records every
//! request made after seeding; after the scenarios, one more test reads
//! that record and finds nothing but describe, list and get calls.
//!
//! moto cannot date a snapshot, so the clock moves instead: `faketime`
//! (Debian's libfaketime) runs backproof a day ahead for the RPO scenario.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

use common::*;

const REGION: &str = "ap-southeast-2";
const READ_ONLY: &str = "moto_saw_only_describe_list_and_get_calls";

/// A running moto server; killed and reaped on drop.
struct Moto {
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fixture {
    server: Mutex<Option<Moto>>,
    endpoint: String,
    port: u16,
    /// What the seed script made: snapshot ids, block counts, ARNs.
    made: Value,
    recording: PathBuf,
    dir: tempfile::TempDir,
}

static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request by hand (no HTTP client crate just for this): the status.
fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn start() -> Result<Fixture, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let recording = dir.path().join("requests.jsonl");
    let log = std::fs::File::create(dir.path().join("moto.log")).map_err(|e| e.to_string())?;
    // moto's own server, with StartSnapshot's ParentSnapshotId honoured.
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/moto_server.py");
    let child = Command::new("python3")
        .arg(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_RECORDER_FILEPATH", &recording)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| {
            format!("`moto_server` runs (pip install 'moto[server]'; scripts/test.sh does): {e}")
        })?;
    let mut moto = Moto { child };
    let started = Instant::now();
    while http(port, "GET", "/moto-api/").is_none() {
        if let Some(status) = moto.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("moto.log"));
            return Err(format!("moto_server exited with {status}: {log:?}"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("moto not ready after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/moto_seed.py");
    let o = Command::new("python3")
        .arg(&seed)
        .arg(&endpoint)
        .arg(dir.path())
        .output()
        .map_err(|e| format!("python3 runs: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "seeding failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let made: Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
    // From here on moto records every request: backproof's only.
    if http(port, "POST", "/moto-api/recorder/start-recording") != Some(200) {
        return Err("moto would not start recording".into());
    }
    Ok(Fixture {
        server: Mutex::new(Some(moto)),
        endpoint,
        port,
        made,
        recording,
        dir,
    })
}

fn fixture() -> &'static Fixture {
    match FIXTURE.get_or_init(start) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

impl Fixture {
    /// backproof on this server, `ahead` (a faketime offset like "+25h")
    /// moving its clock.
    fn backproof(&self, ahead: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = match ahead {
            Some(offset) => {
                let mut c = Command::new("faketime");
                c.args(["-f", offset]).arg(env!("CARGO_BIN_EXE_backproof"));
                // Timeouts and backoff keep real time.
                c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                    .env("BACKPROOF_HISTORY", self.dir.path().join("history.sqlite"));
                c
            }
            None => bin(),
        };
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "backproof-test")
            .env("AWS_SECRET_ACCESS_KEY", "backproof-test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .output()
            .expect("backproof runs")
    }

    fn json(&self, ahead: Option<&str>, args: &[&str]) -> (i32, Value) {
        let o = self.backproof(ahead, args);
        let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (code(&o), report)
    }

    fn verify(&self, location: &str) -> (i32, Value) {
        self.json(
            None,
            &[
                "verify",
                "--format",
                "json",
                "--no-progress",
                "--no-history",
                location,
            ],
        )
    }

    /// `run` with the AWS pack on these two sources; findings by subject.
    fn run_pack(
        &self,
        ahead: Option<&str>,
        volumes: &str,
        databases: &str,
    ) -> (i32, BTreeMap<String, Value>, Value) {
        let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/aws-snapshots.toml");
        let dir = tempfile::tempdir_in(self.dir.path()).unwrap();
        let config = dir.path().join("backproof.toml");
        std::fs::write(
            &config,
            format!(
                "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[policy]\ninclude = [\"{}\"]\n\n\
                 [[sources]]\nname = \"volumes\"\npath = \"{volumes}\"\n\n\
                 [[sources]]\nname = \"databases\"\npath = \"{databases}\"\n",
                pack.display()
            ),
        )
        .unwrap();
        let history = dir.path().join("h.sqlite");
        let (code, report) = self.json(
            ahead,
            &[
                "run",
                "--format",
                "json",
                "--no-progress",
                "--config",
                config.to_str().unwrap(),
                "--history",
                history.to_str().unwrap(),
            ],
        );
        let by_subject = findings(&report)
            .iter()
            .map(|f| (f["subject"].as_str().unwrap().to_string(), f.clone()))
            .collect();
        (code, by_subject, report)
    }

    fn id(&self, what: &str) -> &str {
        self.made[what].as_str().unwrap()
    }
}

fn tagged(tag: &str) -> String {
    format!("ebs://{REGION}?tag:backup={tag}")
}

fn the<'a>(report: &'a Value, check: &str) -> &'a Value {
    let all: Vec<&Value> = findings(report)
        .iter()
        .filter(|f| f["check"] == check)
        .collect();
    assert_eq!(all.len(), 1, "one {check} finding:\n{}", describe(report));
    all[0]
}

fn status<'a>(by: &'a BTreeMap<String, Value>, name: &str) -> &'a str {
    by.get(name)
        .unwrap_or_else(|| panic!("no finding {name:?}: {:?}", by.keys()))["status"]
        .as_str()
        .unwrap()
}

/// A clean snapshot: every allocated block read and checked against the
/// checksum EBS stored, the image's GPT and ext4 found sound.
fn clean_snapshot_passes_with_every_block_checked(f: &Fixture) {
    let (code, report) = f.verify(&tagged("clean"));
    assert_eq!(code, 0, "{}", describe(&report));
    let snap = f.id("clean");
    let integrity = the(&report, "integrity");
    assert_eq!(integrity["status"], "pass", "{integrity:#}");
    assert!(integrity["subject"].as_str().unwrap().ends_with(snap));
    let blocks = f.made["blocks"].as_u64().unwrap();
    assert!(blocks > 30, "the image has blocks to check: {blocks}");
    let matched = &integrity["evidence"]["matched"][0];
    assert_eq!(
        matched["manifest"],
        format!("EBS stored checksums of {blocks} blocks of {snap} (512 bytes each)"),
        "{integrity:#}"
    );
    let structure = the(&report, "structure");
    assert_eq!(structure["status"], "pass", "{structure:#}");
    assert_eq!(structure["evidence"]["gpt_partitions"], 1);
    assert_eq!(structure["evidence"]["gpt_backup_header"], "valid");
    assert_eq!(structure["evidence"]["ext_filesystem_bytes"], 8 << 20);
    // The whole 1 GiB image streamed through, byte for byte the disk the
    // tools made (blocks in order, zeros where unallocated).
    assert_eq!(report["summary"]["bytes_read"], 1u64 << 30);
    assert_eq!(
        integrity["evidence"]["sha256"], f.made["image_sha256"],
        "{integrity:#}"
    );
}

/// A block whose bytes no longer match its stored checksum fails the
/// integrity check, naming the snapshot and the block index.
fn wrong_checksum_fails_naming_snapshot_and_block(f: &Fixture) {
    let (code, report) = f.verify(&tagged("corrupt"));
    assert_eq!(code, 1, "{}", describe(&report));
    let snap = f.id("corrupt");
    let block = f.made["corrupt_block"].as_u64().unwrap();
    let integrity = the(&report, "integrity");
    assert_eq!(integrity["status"], "fail", "{integrity:#}");
    let summary = integrity["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("EBS {snap} block {block}")) && summary.contains("1 mismatch"),
        "{summary}"
    );
    let m = &integrity["evidence"]["mismatches"];
    assert_eq!(m.as_array().unwrap().len(), 1, "{m:#}");
    assert_ne!(m[0]["expected"], m[0]["actual"]);
}

/// A snapshot that faithfully holds a broken partition table: every block
/// matches, the raw-image inspector fails the GPT.
fn damaged_partition_table_fails_structure(f: &Fixture) {
    let (code, report) = f.verify(&tagged("damaged"));
    assert_eq!(code, 1, "{}", describe(&report));
    let structure = the(&report, "structure");
    assert_eq!(structure["status"], "fail", "{structure:#}");
    assert!(
        structure["summary"]
            .as_str()
            .unwrap()
            .contains("GPT partition entry array CRC mismatch"),
        "{structure:#}"
    );
    assert_eq!(the(&report, "integrity")["status"], "pass");
}

/// The AWS pack on a sound plan (db-ret3: 3 days, multi-AZ, copied) and a
/// broken one (db-ret1: 1 day, single-AZ, no copy; the corrupt volume, not
/// copied).
fn pack_on_retention_copies_and_zones(f: &Fixture) {
    let rds3 = format!("rds://{REGION}/db-ret3");
    let (_, good, report) = f.run_pack(None, &tagged("clean"), &rds3);
    for name in [
        "volumes: newest snapshot at most 24 h old (RPO)",
        "volumes: every snapshot's blocks match their checksums, partition table sound",
        "volumes: newest snapshot copied to ap-southeast-1 within 24 h",
        "databases: automated backups kept 3 days",
        "databases: newest snapshot at most 24 h old (RPO)",
        "databases: restorable to a point at most 24 h ago (PITR)",
        "databases: newest snapshot copied to ap-southeast-1 within 24 h",
        "databases: multi-AZ",
    ] {
        assert_eq!(
            status(&good, name),
            "pass",
            "{name}:\n{}",
            describe(&report)
        );
    }
    // Snapshots made minutes ago cannot be 3 days old.
    assert_eq!(status(&good, "volumes: 3 days of snapshots kept"), "fail");
    let db = &good["rds://ap-southeast-2/db-ret3"];
    assert_eq!(db["evidence"]["backup_retention_days"], 3, "{db:#}");
    assert_eq!(db["evidence"]["multi_az"], true);
    assert_eq!(db["evidence"]["storage_encrypted"], true);

    let rds1 = format!("rds://{REGION}/db-ret1");
    // Minutes old, not copied: still within the 24 h the copy may take.
    let (_, fresh, _) = f.run_pack(None, &tagged("corrupt"), &rds1);
    let copy = &fresh["databases: newest snapshot copied to ap-southeast-1 within 24 h"];
    assert_eq!(copy["status"], "warn", "{copy:#}");
    assert!(
        copy["summary"]
            .as_str()
            .unwrap()
            .contains("not yet in ap-southeast-1")
    );
    // A day later, still not copied: broken, like the rest of this plan.
    let (code, bad, report) = f.run_pack(Some("+25h"), &tagged("corrupt"), &rds1);
    assert_eq!(code, 1, "{}", describe(&report));
    let retention = &bad["databases: automated backups kept 3 days"];
    assert_eq!(retention["status"], "fail", "{retention:#}");
    assert!(
        retention["summary"]
            .as_str()
            .unwrap()
            .contains("db-ret1 keeps automated backups 1 day(s)"),
        "{retention:#}"
    );
    let copy = &bad["databases: newest snapshot copied to ap-southeast-1 within 24 h"];
    assert_eq!(copy["status"], "fail", "{copy:#}");
    assert!(
        copy["summary"]
            .as_str()
            .unwrap()
            .contains("has no copy in ap-southeast-1")
    );
    let vcopy = &bad["volumes: newest snapshot copied to ap-southeast-1 within 24 h"];
    assert_eq!(vcopy["status"], "fail", "{vcopy:#}");
    assert!(vcopy["summary"].as_str().unwrap().contains(f.id("corrupt")));
    assert_eq!(status(&bad, "databases: multi-AZ"), "fail");
    assert_eq!(
        status(
            &bad,
            "volumes: every snapshot's blocks match their checksums, partition table sound"
        ),
        "fail"
    );
}

/// A day later (the clock moved, the snapshots not): no snapshot younger
/// than 24 h, and the point-in-time window no newer either.
fn rpo_fails_when_no_snapshot_is_younger_than_a_day(f: &Fixture) {
    let rds3 = format!("rds://{REGION}/db-ret3");
    let (code, by, report) = f.run_pack(Some("+25h"), &tagged("clean"), &rds3);
    assert_eq!(code, 1, "{}", describe(&report));
    for name in [
        "volumes: newest snapshot at most 24 h old (RPO)",
        "databases: newest snapshot at most 24 h old (RPO)",
    ] {
        let finding = &by[name];
        assert_eq!(finding["status"], "fail", "{finding:#}");
        assert!(
            finding["summary"].as_str().unwrap().contains("1day 1h"),
            "{finding:#}"
        );
    }
    // moto reports LatestRestorableTime as its own now: a day behind ours.
    assert_eq!(
        status(
            &by,
            "databases: restorable to a point at most 24 h ago (PITR)"
        ),
        "fail"
    );
    // Copies made at once stay within their lag, however old.
    assert_eq!(
        status(
            &by,
            "volumes: newest snapshot copied to ap-southeast-1 within 24 h"
        ),
        "pass"
    );
}

/// `ls` shows EBS snapshots as raw images and RDS snapshots from the
/// listing; a database that does not exist is an error naming it.
fn ls_and_unknown_database(f: &Fixture) {
    let o = f.backproof(None, &["ls", &tagged("clean")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{text}");
    assert!(
        text.contains("raw_image") && text.contains(f.id("clean")),
        "{text}"
    );
    let o = f.backproof(None, &["ls", &format!("rds://{REGION}/db-ret1")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("db-ret1-manual-1") && text.contains("manual available"),
        "{text}"
    );
    let (code, report) = f.verify(&format!("rds://{REGION}/no-such-db"));
    assert_eq!(code, 2, "{}", describe(&report));
    let error = &findings(&report)[0];
    assert_eq!(error["status"], "error", "{error:#}");
    assert!(
        error["summary"]
            .as_str()
            .unwrap()
            .contains("no DB instance or cluster \"no-such-db\" in ap-southeast-2"),
        "{error:#}"
    );
}

/// The block indices of every GetSnapshotBlock of `snapshot` moto recorded
/// from line `from` of its record on.
fn blocks_got(f: &Fixture, snapshot: &str, from: usize) -> Vec<u64> {
    let text = std::fs::read_to_string(&f.recording).unwrap_or_default();
    let marker = format!("/snapshots/{snapshot}/blocks/");
    text.lines()
        .skip(from)
        .filter_map(|line| {
            let r: Value = serde_json::from_str(line).ok()?;
            let url = r["url"].as_str()?;
            let rest = &url[url.find(&marker)? + marker.len()..];
            rest.split(['?', '/']).next()?.parse().ok()
        })
        .collect()
}

/// The `check` finding of the snapshot `snap`.
fn finding_of(report: &Value, snap: &str, check: &str) -> Value {
    findings(report)
        .iter()
        .find(|x| x["check"] == check && x["subject"].as_str().unwrap().ends_with(snap))
        .unwrap_or_else(|| panic!("no {check} of {snap}:\n{}", describe(report)))
        .clone()
}

fn recorded(f: &Fixture) -> usize {
    std::fs::read_to_string(&f.recording)
        .unwrap_or_default()
        .lines()
        .count()
}

/// `run` with a history on one volume's chain of snapshots: the first run
/// reads them all in full; the second reads the oldest in full (nothing
/// before it), and each later one only in the blocks changed since the
/// one before it, the rest carried; a wrong checksum among the changed
/// blocks still fails, naming the snapshot and the block.
fn incremental_run_reads_only_changed_blocks(f: &Fixture) {
    let dir = tempfile::tempdir_in(f.dir.path()).unwrap();
    let config = dir.path().join("backproof.toml");
    let volume = f.id("incr_volume");
    std::fs::write(
        &config,
        format!(
            "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n\
             [[sources]]\nname = \"volume\"\npath = \"ebs://{REGION}/{volume}\"\n"
        ),
    )
    .unwrap();
    let history = dir.path().join("h.sqlite");
    let run = || {
        let (code, report) = f.json(
            None,
            &[
                "run",
                "--format",
                "json",
                "--no-progress",
                "--config",
                config.to_str().unwrap(),
                "--history",
                history.to_str().unwrap(),
            ],
        );
        (code, report)
    };
    let (base, next, bad) = (f.id("incr_base"), f.id("incr_next"), f.id("incr_bad"));
    let bad_block = f.made["incr_bad_block"].as_u64().unwrap();
    // No history yet: every snapshot read in full, as `verify` would.
    let (code, report) = run();
    let of = |snap: &str, check: &str| finding_of(&report, snap, check);
    assert_eq!(code, 1, "{}", describe(&report));
    assert_eq!(of(next, "integrity")["status"], "pass");
    assert_eq!(of(bad, "integrity")["status"], "fail");
    assert_eq!(report["summary"]["bytes_read"], 4u64 << 30);

    let mark = recorded(f);
    let (code, report) = run();
    let of = |snap: &str, check: &str| finding_of(&report, snap, check);
    assert_eq!(code, 1, "{}", describe(&report));
    let blocks = f.made["blocks"].as_u64().unwrap();
    let changed: Vec<u64> = f.made["incr_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let new: Vec<u64> = f.made["incr_new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // The oldest: nothing before it, read in full, and saying why.
    let first = of(base, "integrity");
    assert_eq!(first["status"], "pass", "{first:#}");
    assert!(
        first["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("read in full: no earlier snapshot of {volume}")),
        "{first:#}"
    );
    // The next: only what changed since the base (moto's ListChangedBlocks
    // names the rewritten blocks; the listings find the added one).
    let integrity = of(next, "integrity");
    assert_eq!(integrity["status"], "pass", "{integrity:#}");
    let summary = integrity["summary"].as_str().unwrap();
    let expected = format!(
        "{} changed blocks read and checked, {} new, {} carried",
        changed.len(),
        new.len(),
        blocks - changed.len() as u64
    );
    assert!(
        summary.contains(&format!("incremental against {base} (verified "))
            && summary.contains(&expected),
        "{integrity:#}"
    );
    assert_eq!(integrity["evidence"]["read_scope"][0]["partial"], true);
    assert_eq!(
        integrity["evidence"]["matched"][0]["manifest"]
            .as_str()
            .unwrap()
            .split(", incremental")
            .next(),
        Some(
            format!(
                "EBS stored checksums of {} blocks of {next} (512 bytes each)",
                changed.len() + new.len()
            )
            .as_str()
        ),
        "{integrity:#}"
    );
    // The structure check still ran on the new snapshot.
    let structure = of(next, "structure");
    assert_eq!(structure["status"], "pass", "{structure:#}");
    assert_eq!(structure["evidence"]["gpt_partitions"], 1);
    assert_eq!(structure["evidence"]["gpt_backup_header"], "valid");
    assert_eq!(structure["evidence"]["ext_filesystem_bytes"], 8 << 20);
    // moto saw GetSnapshotBlock of the next snapshot for the changed and
    // new blocks, and for the few the structure check looked at (GPT head,
    // ext4 superblock, backup GPT header): nothing else.
    let got: std::collections::BTreeSet<u64> = blocks_got(f, next, mark).into_iter().collect();
    for i in changed.iter().chain(&new) {
        assert!(got.contains(i), "block {i} read: {got:?}");
    }
    let structural: Vec<u64> = got
        .iter()
        .copied()
        .filter(|i| !changed.contains(i) && !new.contains(i))
        .collect();
    let last = (1u64 << 30) / 512 - 1;
    assert!(
        structural.len() <= 8
            && structural
                .iter()
                .all(|i| *i < 34 || (2050..2052).contains(i) || *i == last),
        "blocks read for the structure check: {structural:?}"
    );
    eprintln!(
        "incremental: {} blocks of {blocks} read ({structural:?} for the structure check)",
        got.len()
    );
    // The bad one, against the next (which passed): the changed block with
    // the wrong checksum fails, named.
    let failed = of(bad, "integrity");
    assert_eq!(failed["status"], "fail", "{failed:#}");
    let summary = failed["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("EBS {bad} block {bad_block}"))
            && summary.contains(&format!("incremental against {next} (verified "))
            && summary.contains("1 changed blocks read and checked, 0 new"),
        "{failed:#}"
    );
    // ListChangedBlocks refused: read in full, saying so, never carried.
    let flaky = f.id("incr_flaky");
    let full = of(flaky, "integrity");
    assert_eq!(full["status"], "pass", "{full:#}");
    let summary = full["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "read in full: ListChangedBlocks against {next} failed"
        )) && summary.contains("injected ListChangedBlocks fault"),
        "{full:#}"
    );
    assert_eq!(
        full["evidence"]["matched"][0]["manifest"],
        format!(
            "EBS stored checksums of {} blocks of {flaky} (512 bytes each)",
            blocks + new.len() as u64
        ),
        "{full:#}"
    );
    // The base and the flaky one in full, the other two a few blocks each.
    let read = report["summary"]["bytes_read"].as_u64().unwrap();
    assert!(read < (2u64 << 30) + (1 << 20), "{read}");
}

/// Every request moto saw from backproof: EC2 and RDS query actions all
/// Describe…, EBS all GETs of ListSnapshotBlocks / GetSnapshotBlock paths.
fn moto_saw_only_reads(f: &Fixture) {
    let text = std::fs::read_to_string(&f.recording).unwrap_or_default();
    let mut by_service: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let auth = r["headers"]["Authorization"].as_str().unwrap_or("");
        let service = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unsigned")
            .to_string();
        let method = r["method"].as_str().unwrap();
        let url = r["url"].as_str().unwrap();
        match service.as_str() {
            "ebs" => {
                assert_eq!(method, "GET", "{line}");
                assert!(
                    url.contains("/snapshots/")
                        && (url.contains("/blocks") || url.contains("/changedblocks?")),
                    "{line}"
                );
            }
            "ec2" | "rds" => {
                use base64::Engine;
                let body = match r["body_encoded"].as_bool() {
                    Some(true) => base64::engine::general_purpose::STANDARD
                        .decode(r["body"].as_str().unwrap())
                        .unwrap(),
                    _ => r["body"].as_str().unwrap_or("").as_bytes().to_vec(),
                };
                let body = String::from_utf8(body).unwrap();
                let action = body
                    .split('&')
                    .find_map(|p| p.strip_prefix("Action="))
                    .unwrap_or("");
                assert!(action.starts_with("Describe"), "{service} {action}: {line}");
            }
            other => panic!("a request to {other}: {line}"),
        }
        *by_service.entry(service).or_default() += 1;
    }
    assert!(!by_service.is_empty(), "moto recorded nothing");
    eprintln!("requests moto saw from backproof: {by_service:?}");
}

fn scenario(name: &str, run: fn(&Fixture)) -> Trial {
    Trial::test(name, move || {
        run(fixture());
        Ok(())
    })
}

fn scenarios() -> Vec<Trial> {
    vec![
        scenario(
            "clean_snapshot_passes_with_every_block_checked",
            clean_snapshot_passes_with_every_block_checked,
        ),
        scenario(
            "wrong_checksum_fails_naming_snapshot_and_block",
            wrong_checksum_fails_naming_snapshot_and_block,
        ),
        scenario(
            "damaged_partition_table_fails_structure",
            damaged_partition_table_fails_structure,
        ),
        scenario(
            "pack_on_retention_copies_and_zones",
            pack_on_retention_copies_and_zones,
        ),
        scenario(
            "rpo_fails_when_no_snapshot_is_younger_than_a_day",
            rpo_fails_when_no_snapshot_is_younger_than_a_day,
        ),
        scenario("ls_and_unknown_database", ls_and_unknown_database),
        scenario(
            "incremental_run_reads_only_changed_blocks",
            incremental_run_reads_only_changed_blocks,
        ),
    ]
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    if args.list {
        let mut all = scenarios();
        all.push(Trial::test(READ_ONLY, || Ok(())));
        return libtest_mimic::run(&args, all).exit_code();
    }
    let ran = libtest_mimic::run(&args, scenarios());
    // The read-only check covers whatever ran, whatever the filter.
    let checked = match FIXTURE.get() {
        Some(Ok(_)) => Some(libtest_mimic::run(
            &Arguments {
                filter: None,
                skip: Vec::new(),
                exact: false,
                ..args.clone()
            },
            vec![scenario(READ_ONLY, moto_saw_only_reads)],
        )),
        _ => None,
    };
    if let Some(Ok(f)) = FIXTURE.get() {
        let _ = http(f.port, "POST", "/moto-api/recorder/stop-recording");
        drop(f.server.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
    if ran.has_failed() || checked.is_some_and(|c| c.has_failed()) {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    }
}
