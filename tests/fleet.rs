//! Fleet runs: N shard processes at once (their environment set as a
//! Kubernetes Indexed Job sets it) against the corpus and an S3 prefix on
//! SeaweedFS, with one PostgreSQL history. Together they must read every
//! backup exactly once and be judged, once, to the same findings and
//! promises as one unsharded run; a shard killed with SIGKILL makes the
//! fleet run `error` naming it, and its rerun completes the fleet run.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use common::pg_history::Postgres;
use common::seaweed::{KEY_ID, S3, SECRET, Seaweed, with_s3_env};
use common::*;

const SHARDS: u32 = 4;

/// Sources of every kind the corpus has, clean and corrupt, local and (when
/// `s3` is given) an S3 prefix; promises of each family; one test restore.
fn config(dir: &Path, s3: Option<&str>) -> PathBuf {
    let c = corpus();
    let appdb = dir.join("appdb");
    fs::create_dir_all(&appdb).unwrap();
    fs::copy(
        c.join("clean/postgres/appdb-2026-11-20T0300.dump"),
        appdb.join("appdb-2026-11-20T0300.dump"),
    )
    .unwrap();
    let mut text = format!(
        r#"
[report]
dir = "{reports}"
formats = ["json"]

[[sources]]
name = "mysql"
path = "{c}/clean/mysql"

[[sources]]
name = "disk"
path = "{c}/clean/disk"

[[sources]]
name = "stores"
path = "{c}/clean"

[[sources]]
name = "corrupt"
path = "{c}/corrupt"

[[sources]]
name = "appdb"
path = "{appdb}"
[sources.restore]
rto = "1h"
required_tables = ["customers", "orders"]

[[checks]]
type = "freshness"
source = "mysql"
fail_after = "26h"

[[checks]]
type = "retention"
source = "disk"
min_count = 3

[[checks]]
type = "verified"
source = "corrupt"
scope = "all"

[[checks]]
type = "verified"
source = "stores"
scope = "newest"

[[checks]]
type = "restore"
source = "appdb"
within = "1d"
"#,
        reports = dir.join("reports").display(),
        c = c.display(),
        appdb = appdb.display(),
    );
    if let Some(url) = s3 {
        text.push_str(&format!(
            r#"
[[sources]]
name = "bucket"
path = "{url}"

[[checks]]
type = "verified"
source = "bucket"
scope = "all"
"#
        ));
    }
    let path = dir.join("backproof.toml");
    fs::write(&path, text).unwrap();
    path
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A finding as two runs of the same data must agree on it: ages and
/// durations in freshness and restore summaries move with the clock,
/// nothing else may differ.
fn comparable(f: &Value) -> String {
    let summary = f["summary"].as_str().unwrap_or_default();
    // Words that are numbers go: "9s ago" and "12s ago" agree, and so do
    // "16h 39m 5s" and "16h 40m" (a zero part is not written).
    let summary = match f["check"].as_str() {
        Some("freshness") | Some("restore") => summary
            .split(' ')
            .filter(|w| !w.starts_with(|c: char| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => summary.to_string(),
    };
    format!(
        "{} | {} | {} | {summary}",
        f["subject"], f["check"], f["status"]
    )
}

/// A promise's finding is named after the promise ("freshness:mysql"); a
/// backup's or a store's after its location.
fn is_promise(f: &Value) -> bool {
    let subject = f["subject"].as_str().unwrap();
    !subject.starts_with('/') && !subject.starts_with("s3://") && !subject.starts_with("fleet ")
}

/// The one finding about `subject`: an `error` whose summary starts so.
fn only_error(report: &Value, subject: &str, starts: &str) {
    let about: Vec<&Value> = findings(report)
        .iter()
        .filter(|f| f["subject"] == subject)
        .collect();
    assert_eq!(about.len(), 1, "{}", describe(report));
    assert_eq!(about[0]["status"], "error", "{}", about[0]);
    let summary = about[0]["summary"].as_str().unwrap();
    assert!(summary.starts_with(starts), "{}", about[0]);
}

fn findings_of(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = findings(report).iter().map(comparable).collect();
    v.sort();
    v
}

fn subjects_of(report: &Value) -> Vec<String> {
    report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["subject"].as_str().unwrap().to_string())
        .collect()
}

/// A shard as an Indexed Job's pod runs it: the index in JOB_COMPLETION_INDEX.
fn shard(
    cfg: &Path,
    history: &str,
    group: &str,
    index: u32,
    env: &dyn Fn(&mut Command),
) -> Command {
    let mut cmd = bin();
    cmd.args(["run", "--config"])
        .arg(cfg)
        .args(["--history", history, "--format", "json"])
        .args(["--shard", &format!("auto/{SHARDS}"), "--run-group", group])
        .args(["--restore-slots", "1"])
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env(&mut cmd);
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("backproof runs")
}

#[test]
fn four_shards_at_once_equal_one_unsharded_run() {
    let pg = Postgres::start();
    let weed = Seaweed::start();
    let s3 = S3::new(&weed.endpoint);
    s3.bucket("fleet", false);
    s3.put_tree("fleet", "nightly/mysql/", &corpus().join("clean/mysql"));
    s3.put_tree(
        "fleet",
        "nightly/corrupt/",
        &corpus().join("corrupt/pg-gz-truncated"),
    );
    s3.put_tree("fleet", "nightly/disk/", &corpus().join("clean/disk"));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Some("s3://fleet/nightly/"));
    let env = |c: &mut Command| {
        with_s3_env(c, &weed.endpoint, KEY_ID, SECRET);
    };

    // The unsharded run, on a history of its own.
    let alone = tmp.path().join("alone.sqlite");
    let mut cmd = bin();
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .arg("--history")
        .arg(&alone);
    cmd.args(["--format", "json"]);
    env(&mut cmd);
    let whole = output(&mut cmd);
    let whole_code = code(&whole);
    assert!(
        whole_code <= 1,
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let whole = json(&whole);

    // Four shards at once, one PostgreSQL history.
    let children: Vec<_> = (0..SHARDS)
        .map(|i| shard(&cfg, &pg.url, "night-1", i, &env).spawn().unwrap())
        .collect();
    let shards: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
            json(&o)
        })
        .collect();
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["command"], "run-shard");
        assert_eq!(s["fleet"]["shard"], i as u64, "{}", s["fleet"]);
        assert_eq!(s["fleet"]["index_from"], "JOB_COMPLETION_INDEX");
        // A shard judges no promise.
        for f in findings(s) {
            assert!(!is_promise(f), "shard {i} judged {f}");
        }
    }

    // Every backup read exactly once across the shards, and all of them:
    // the same multiset as one run's (the "stores" source overlaps two
    // others, so one run reads those backups once per source too).
    let mut read: Vec<String> = shards.iter().flat_map(subjects_of).collect();
    read.sort();
    let mut expected = subjects_of(&whole);
    expected.sort();
    assert_eq!(read, expected, "the shards' union differs from one run");
    assert!(read.iter().any(|s| s.starts_with("s3://")), "{read:?}");
    let per_shard: Vec<usize> = shards.iter().map(|s| subjects_of(s).len()).collect();
    assert!(
        per_shard.iter().filter(|n| **n > 0).count() >= 3,
        "the split is not a split: {per_shard:?}"
    );

    // The last shard judged the fleet run; --finalize shows that record.
    let mut fin = bin();
    fin.args(["run", "--config"]).arg(&cfg);
    fin.args([
        "--history",
        &pg.url,
        "--finalize",
        "night-1",
        "--format",
        "json",
    ]);
    env(&mut fin);
    let fin = output(&mut fin);
    assert_eq!(
        code(&fin),
        whole_code,
        "{}",
        String::from_utf8_lossy(&fin.stderr)
    );
    let fleet = json(&fin);
    assert_eq!(fleet["command"], "run");
    assert_eq!(fleet["fleet"]["missing"], serde_json::json!([]));
    assert_eq!(fleet["fleet"]["shards"], SHARDS);
    assert_eq!(findings_of(&fleet), findings_of(&whole));
    let promises = |r: &Value| findings(r).iter().filter(|f| is_promise(f)).count();
    assert_eq!(promises(&whole), 6, "{}", describe(&whole));
    let restores = |r: &Value| {
        findings(r)
            .iter()
            .filter(|f| f["check"] == "restore" && f["evidence"]["engine"].is_string())
            .count()
    };
    assert_eq!(
        restores(&fleet),
        1,
        "one restore, by the shard owning appdb"
    );

    // One linear chain: four shard records and one judgement, not two
    // (the shards finishing together judged it once).
    let o = run(&["history", "verify", "--history", &pg.url]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("{} run(s)", SHARDS + 1)), "{out}");
    let o = run(&[
        "report",
        "--since",
        "1d",
        "--history",
        &pg.url,
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["runs"], 1, "the export counts the fleet run once");

    // A shard that cannot list the bucket (its credentials are refused)
    // leaves the bucket's promise unjudged: `error`, never the verdict of
    // the other shards' part. The other promises are judged as before.
    for i in 0..SHARDS {
        let refused = |c: &mut Command| {
            with_s3_env(c, &weed.endpoint, KEY_ID, "not-the-secret");
        };
        let env: &dyn Fn(&mut Command) = if i == 1 { &refused } else { &env };
        let o = output(&mut shard(&cfg, &pg.url, "night-1b", i, env));
        assert!(code(&o) <= 2, "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut fin = bin();
    fin.args(["run", "--config"]).arg(&cfg);
    fin.args([
        "--history",
        &pg.url,
        "--finalize",
        "night-1b",
        "--format",
        "json",
    ]);
    env(&mut fin);
    let partial = json(&output(&mut fin));
    only_error(
        &partial,
        "verified:bucket",
        "not judged: shard 1 could not read source \"bucket\"",
    );
    let others = |r: &Value| -> Vec<String> {
        let mut v: Vec<String> = findings(r)
            .iter()
            .filter(|f| is_promise(f) && f["subject"] != "verified:bucket")
            .map(comparable)
            .collect();
        v.sort();
        v
    };
    assert_eq!(others(&partial), others(&whole));
}

#[test]
fn a_killed_shard_makes_the_fleet_run_error_until_it_reruns() {
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), None);
    let none = |_: &mut Command| {};
    for i in [0, 1, 3] {
        let o = output(&mut shard(&cfg, &pg.url, "night-2", i, &none));
        assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Shard 2 blocks reading its config (a FIFO nobody writes) and is killed.
    let fifo = tmp.path().join("blocked.toml");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let mut child = shard(&fifo, &pg.url, "night-2", 2, &none).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "shard 2 should be blocked"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let finalize = || {
        output(
            bin()
                .args(["run", "--config"])
                .arg(&cfg)
                .args(["--history", &pg.url, "--finalize", "night-2"])
                .args(["--wait", "1s", "--format", "json"]),
        )
    };
    // Exit 1, not 2: the three shards found corrupt backups, and a failure
    // outranks an error.
    let o = finalize();
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&o);
    only_error(&r, "fleet night-2", "shard 2 of 4 never reported");
    assert_eq!(r["fleet"]["missing"], serde_json::json!([2]));
    // No promise is judged on three shards' backups.
    assert!(!findings(&r).iter().any(is_promise), "{}", describe(&r));

    // The rerun of shard 2 completes the fleet run.
    let o = output(&mut shard(&cfg, &pg.url, "night-2", 2, &none));
    assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
    let o = finalize();
    let done = json(&o);
    assert_eq!(
        done["fleet"]["missing"],
        serde_json::json!([]),
        "{}",
        describe(&done)
    );
    assert_eq!(findings(&done).iter().filter(|f| is_promise(f)).count(), 5);
    assert!(
        !findings(&done)
            .iter()
            .any(|f| f["subject"] == "fleet night-2")
    );

    let whole = output(
        bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--history")
            .arg(tmp.path().join("alone.sqlite"))
            .args(["--format", "json"]),
    );
    assert_eq!(code(&o), code(&whole));
    assert_eq!(findings_of(&done), findings_of(&json(&whole)));

    let o = run(&["history", "verify", "--history", &pg.url]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let o = run(&[
        "report",
        "--since",
        "1d",
        "--history",
        &pg.url,
        "--format",
        "json",
    ]);
    let export = json(&o);
    assert_eq!(
        export["runs"], 1,
        "the error judgement is superseded: {export}"
    );

    // The fleet index is checked against the chained records: marking the
    // error judgement complete is caught.
    let ok = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(pg.url.replace(":secret", ""))
        .args([
            "-c",
            "UPDATE fleet_runs SET complete = 1 WHERE shard < 0 AND complete = 0",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let o = run(&["history", "verify", "--history", &pg.url]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("fleet index row does not match"), "{out}");
}

/// The spot checks split the same way: `verify` and `compare` with
/// `--shard I/N`, run for every I, read each backup (compare each key) once,
/// and find together what one unsharded check finds.
#[test]
fn verify_and_compare_shards_add_up_to_one_check() {
    let corrupt = corpus().join("corrupt");
    let path = corrupt.to_str().unwrap();
    let one = |extra: &[&str]| {
        let mut args = vec!["verify", path, "--no-history", "--format", "json"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
        json(&o)
    };
    let whole = one(&[]);
    let parts: Vec<Value> = (0..SHARDS)
        .map(|i| one(&["--shard", &format!("{i}/{SHARDS}")]))
        .collect();
    let mut read: Vec<String> = parts.iter().flat_map(subjects_of).collect();
    read.sort();
    let mut expected = subjects_of(&whole);
    expected.sort();
    assert_eq!(read, expected);
    let mut found: Vec<String> = parts.iter().flat_map(findings_of).collect();
    found.sort();
    assert_eq!(found, findings_of(&whole));
    // `ls --shard` previews the same split.
    let ls = |extra: &[&str]| {
        let mut args = vec!["ls", path, "--format", "json"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        json(&o).as_array().unwrap().len()
    };
    let listed: Vec<usize> = (0..SHARDS)
        .map(|i| ls(&["--shard", &format!("{i}/{SHARDS}")]))
        .collect();
    assert_eq!(listed.iter().sum::<usize>(), ls(&[]), "{listed:?}");
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(listed[i], subjects_of(p).len(), "shard {i}");
    }

    // A copy with one object changed and one missing.
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus().join("clean/mysql");
    let copy = tmp.path().join("copy");
    fs::create_dir_all(&copy).unwrap();
    for e in fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    fs::remove_file(copy.join("shop-2026-11-20T0300.sql.gz")).unwrap();
    let mut bytes = fs::read(copy.join("shop-2026-11-20T0300.sql")).unwrap();
    bytes[100] ^= 1;
    fs::write(copy.join("shop-2026-11-20T0300.sql"), bytes).unwrap();
    let compare = |extra: &[&str]| {
        let mut args = vec![
            "compare",
            src.to_str().unwrap(),
            copy.to_str().unwrap(),
            "--no-history",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
        json(&o)
    };
    // Per-object findings only: each shard's summary counts its own keys.
    let problems = |r: &Value| -> Vec<String> {
        findings(r)
            .iter()
            .filter(|f| f["status"] != "pass" && f["evidence"]["objects"].is_null())
            .map(comparable)
            .collect()
    };
    let mut whole = problems(&compare(&[]));
    whole.sort();
    assert_eq!(whole.len(), 2, "{whole:?}");
    let mut split: Vec<String> = (0..SHARDS)
        .flat_map(|i| problems(&compare(&["--shard", &format!("{i}/{SHARDS}")])))
        .collect();
    split.sort();
    assert_eq!(split, whole);
}

/// A shard that read under other config files saw other sources and
/// promises: the union is no run of this config, so the fleet run is
/// `error` naming it (never a judgement of the wrong union), until it is
/// rerun with the same config.
#[test]
fn a_shard_on_another_config_makes_the_fleet_run_error() {
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), None);
    let other = tmp.path().join("other.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    // The same sources, a laxer promise: this shard's copy says otherwise.
    assert!(text.contains("fail_after = \"26h\""));
    fs::write(
        &other,
        text.replace("fail_after = \"26h\"", "fail_after = \"9000h\""),
    )
    .unwrap();
    let none = |_: &mut Command| {};
    for i in 0..SHARDS {
        let c = if i == 1 { &other } else { &cfg };
        let o = output(&mut shard(c, &pg.url, "night-3", i, &none));
        assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
    }
    let finalize = || {
        json(&output(
            bin()
                .args(["run", "--config"])
                .arg(&cfg)
                .args(["--history", &pg.url, "--finalize", "night-3"])
                .args(["--format", "json"]),
        ))
    };
    let r = finalize();
    assert_eq!(
        r["fleet"]["drifted"],
        serde_json::json!([1]),
        "{}",
        r["fleet"]
    );
    only_error(
        &r,
        "fleet night-3",
        "shard 1 of 4 read under another config",
    );
    assert!(!findings(&r).iter().any(is_promise), "{}", describe(&r));

    let o = output(&mut shard(&cfg, &pg.url, "night-3", 1, &none));
    assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
    let done = finalize();
    assert_eq!(
        done["fleet"]["drifted"],
        serde_json::json!([]),
        "{}",
        done["fleet"]
    );
    assert_eq!(findings(&done).iter().filter(|f| is_promise(f)).count(), 5);
}
