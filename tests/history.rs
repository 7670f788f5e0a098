//! History, compliance export, report formats, and the nightly run's lock
//! and deadline.

mod common;
use common::pg_history::Postgres;

use std::fs;
use std::path::Path;

use common::*;

fn run_with_history(history: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .arg("--history")
        .arg(history)
        .output()
        .unwrap()
}

fn two_runs(history: &Path) {
    let clean = corpus().join("clean/mysql");
    let broken = corpus().join("corrupt/mysql-truncated");
    assert_eq!(
        code(&run_with_history(
            history,
            &["verify", clean.to_str().unwrap()]
        )),
        0
    );
    assert_eq!(
        code(&run_with_history(
            history,
            &["verify", broken.to_str().unwrap()]
        )),
        1
    );
}

#[test]
fn an_edited_or_deleted_record_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    two_runs(&h);
    let o = run_with_history(&h, &["history", "verify"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));

    // Someone turns last night's failure into a pass.
    let db = rusqlite::Connection::open(&h).unwrap();
    let n = db
        .execute(
            "UPDATE findings SET status = 'pass' WHERE status = 'fail'",
            [],
        )
        .unwrap();
    assert!(n > 0);
    let o = run_with_history(&h, &["history", "verify"]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("run 2: finding") && out.contains("edited"),
        "{out}"
    );

    // Editing the stored report itself breaks its hash.
    db.execute(
        "UPDATE findings SET status = 'fail' WHERE status = 'pass' AND run_id = 2",
        [],
    )
    .unwrap();
    // Stored packed (zstd + base64): decoded, edited, packed again.
    let stored: String = db
        .query_row("SELECT report FROM runs WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    let json = backproof::history::unpack_report(&stored).unwrap();
    assert!(json.contains("\"fail\""));
    let edited = backproof::history::pack_report(&json.replace("\"fail\"", "\"pass\""));
    db.execute("UPDATE runs SET report = ?1 WHERE id = 2", [&edited])
        .unwrap();
    let out =
        String::from_utf8_lossy(&run_with_history(&h, &["history", "verify"]).stdout).into_owned();
    assert!(
        out.contains("run 2: stored report does not match its hash"),
        "{out}"
    );
    // Bytes that do not decode at all are an edit too.
    db.execute(
        "UPDATE runs SET report = 'zstd+base64:AAAA' WHERE id = 2",
        [],
    )
    .unwrap();
    let out =
        String::from_utf8_lossy(&run_with_history(&h, &["history", "verify"]).stdout).into_owned();
    assert!(
        out.contains("run 2: stored report cannot be decoded"),
        "{out}"
    );

    // Deleting the first run breaks the chain.
    let tmp2 = tempfile::tempdir().unwrap();
    let h2 = tmp2.path().join("history.sqlite");
    two_runs(&h2);
    let db = rusqlite::Connection::open(&h2).unwrap();
    db.execute("DELETE FROM findings WHERE run_id = 1", [])
        .unwrap();
    db.execute("DELETE FROM backups WHERE run_id = 1", [])
        .unwrap();
    db.execute("DELETE FROM runs WHERE id = 1", []).unwrap();
    let o = run_with_history(&h2, &["history", "verify", "--format", "json"]);
    assert_eq!(code(&o), 1);
    let check: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = check["problems"].to_string();
    assert!(problems.contains("deleted"), "{problems}");
}

/// Regression (issue 10): deleting the newest run record (and its findings)
/// left a valid-looking chain; the anchor beside the history shows it.
#[test]
fn deleting_the_newest_record_is_detected_by_the_anchor() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    two_runs(&h);
    let o = run_with_history(&h, &["history", "verify", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let head = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["head"]
        .as_str()
        .unwrap()
        .to_string();
    let first: String = rusqlite::Connection::open(&h)
        .unwrap()
        .query_row("SELECT hash FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    // An auditor's earlier head is still in the chain.
    let o = run_with_history(&h, &["history", "verify", "--expect-head", &first]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));

    let db = rusqlite::Connection::open(&h).unwrap();
    db.execute("DELETE FROM findings WHERE run_id = 2", [])
        .unwrap();
    db.execute("DELETE FROM backups WHERE run_id = 2", [])
        .unwrap();
    db.execute("DELETE FROM runs WHERE id = 2", []).unwrap();
    drop(db);
    let o = run_with_history(&h, &["history", "verify"]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stdout));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("run 2") && out.contains("missing"), "{out}");
    // Without the anchor (kept elsewhere by the tamperer's victim), the
    // head from the last report still shows it.
    fs::remove_file(tmp.path().join("history.sqlite.anchor")).unwrap();
    let o = run_with_history(&h, &["history", "verify", "--expect-head", &head]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("expected head"));
}

/// Regression (issue 10): a 0-byte (or deleted) history file was silently
/// recreated and then verified "OK".
#[test]
fn an_emptied_history_is_refused_not_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    two_runs(&h);
    fs::write(&h, b"").unwrap();
    let clean = corpus().join("clean/mysql");
    for args in [
        &["history", "verify"][..],
        &["verify", clean.to_str().unwrap()][..],
    ] {
        let o = run_with_history(&h, args);
        assert_eq!(
            code(&o),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("refusing"), "{args:?}: {err}");
    }
    assert_eq!(
        fs::metadata(&h).unwrap().len(),
        0,
        "nothing was written into it"
    );
    fs::remove_file(&h).unwrap();
    let o = run_with_history(&h, &["verify", clean.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(!h.exists(), "a deleted history is not recreated");
}

#[test]
fn compliance_export_covers_the_period_and_states_the_chain_head() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    two_runs(&h);
    let head: serde_json::Value = serde_json::from_slice(
        &run_with_history(&h, &["history", "verify", "--format", "json"]).stdout,
    )
    .unwrap();

    let o = run_with_history(&h, &["report", "--since", "90d", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["runs"], 2);
    assert_eq!(c["runs_failed"], 1);
    assert_eq!(c["chain_head"], head["head"]);
    assert_eq!(c["chain_intact"], true);
    let structure = c["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == "structure")
        .unwrap();
    // 3 clean MySQL dumps, then the truncated one (its EXPECT file is only a warning).
    assert_eq!(structure["fail"], 1);
    let n = structure["findings"].as_f64().unwrap();
    // The EXPECT file's warning is not a pass (issue 9: warnings used to
    // count as passes in pass rates).
    assert_eq!(structure["pass_rate"].as_f64().unwrap(), (n - 2.0) / n);
    assert_eq!(structure["warn_rate"].as_f64().unwrap(), 1.0 / n);
    let failure = &c["failures"].as_array().unwrap()[0];
    assert!(
        failure["subject"]
            .as_str()
            .unwrap()
            .ends_with("shop-2026-11-20T0300.sql")
    );
    assert!(failure["evidence"].is_object());

    let out = tmp.path().join("audit.md");
    let o = run_with_history(
        &h,
        &[
            "report",
            "--since",
            "1d",
            "--format",
            "md",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0);
    let md = fs::read_to_string(&out).unwrap();
    assert!(md.contains(head["head"].as_str().unwrap()), "{md}");

    let o = run_with_history(&h, &["report", "--format", "csv"]);
    let rows = csv::Reader::from_reader(&o.stdout[..]).records().count();
    assert!(rows >= 4, "check summaries and the failure: {rows}");

    // No history yet: the export cannot run.
    let o = run_with_history(&tmp.path().join("none.sqlite"), &["report"]);
    assert_eq!(code(&o), 2);
}

fn config(dir: &Path, source: &Path) -> std::path::PathBuf {
    let cfg = dir.join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            "[report]\ndir = \"out\"\nformats = [\"json\", \"text\", \"csv\", \"md\", \"junit\", \"prometheus\"]\n\n[[sources]]\nname = \"pg\"\npath = \"{}\"\n",
            source.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn run_writes_every_report_format() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &corpus().join("corrupt/pg-gz-truncated"));
    let h = tmp.path().join("h.sqlite");
    let o = run_with_history(&h, &["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let out = tmp.path().join("out");
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    let n = findings(&report).len();

    let csv_rows = csv::Reader::from_path(out.join("findings.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(csv_rows, n);

    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), n);
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");

    let prom = fs::read_to_string(out.join("backproof.prom")).unwrap();
    let sample =
        regex::Regex::new(r#"^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.]+$"#).unwrap();
    for line in prom.lines().filter(|l| !l.starts_with('#')) {
        assert!(sample.is_match(line), "not a Prometheus sample: {line}");
    }
    assert!(prom.contains("backproof_run_exit_code 1"));
    assert!(
        prom.contains("check=\"structure\"") && prom.contains("} 2"),
        "a fail is 2:\n{prom}"
    );

    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("Needs attention") && md.contains("appdb-2026-11-20T0300.sql.gz"),
        "{md}"
    );
    assert!(out.join("report.txt").exists());
}

#[test]
fn a_second_concurrent_run_exits_2_and_a_deadline_is_an_error_not_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &corpus().join("clean/postgres"));
    let h = tmp.path().join("h.sqlite");
    {
        let _held =
            backproof::commands::lock::RunLock::acquire(&backproof::commands::lock::lock_path(&h))
                .unwrap();
        let o = run_with_history(&h, &["run", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code(&o), 2);
        assert!(String::from_utf8_lossy(&o.stderr).contains("another backproof run"));
    }
    // A child another test forked while the lock was held shares its file
    // description until it execs; wait for that brief window to close.
    let lock = backproof::commands::lock::lock_path(&h);
    let free = (0..100).any(|_| {
        let got = backproof::commands::lock::RunLock::acquire(&lock).is_ok();
        if !got {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        got
    });
    assert!(free, "the lock was never released");
    let o = run_with_history(
        &h,
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--deadline",
            "0s",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let errors = findings(&report)
        .iter()
        .filter(|f| f["status"] == "error")
        .count();
    assert_eq!(errors, 6, "every backup unreached:\n{}", describe(&report));
    // And once the lock is free and there is time, the run passes.
    assert_eq!(
        code(&run_with_history(
            &h,
            &["run", "--config", cfg.to_str().unwrap()]
        )),
        0
    );
}

#[test]
fn concurrent_runs_share_one_history_without_breaking_the_chain() {
    // Sharded runs (--shard on many machines) append to one store at once.
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    let clean = corpus().join("clean/mysql");
    let children: Vec<_> = (0..4)
        .map(|_| {
            bin()
                .args(["verify", clean.to_str().unwrap(), "--history"])
                .arg(&h)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    let o = run_with_history(&h, &["history", "verify", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let check: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check["runs"], 4);
}

/// The same history on PostgreSQL: runs append, the chain verifies, an
/// edit made with psql is caught, the export reads it, and no password
/// reaches the output.
#[test]
fn a_postgres_history_is_chained_like_sqlite() {
    let pg = Postgres::start();
    let url = Path::new(&pg.url);
    two_runs(url);
    let o = run_with_history(url, &["history", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("2 run"), "{out}");
    assert!(!out.contains("secret"), "{out}");

    let o = run_with_history(url, &["report", "--since", "1d", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let export: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(export["runs"], 2);
    assert_eq!(export["runs_failed"], 1);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));

    // The ledger reads back from PostgreSQL too: with rotate:2 the second
    // run re-reads about half the bytes, not all of them again.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &corpus().join("clean/postgres"));
    let nightly = || {
        let o = run_with_history(
            url,
            &[
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--sample",
                "rotate:2",
                "--format",
                "json",
            ],
        );
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        r["summary"]["bytes_read"].as_u64().unwrap()
    };
    let (first, second) = (nightly(), nightly());
    assert!(second > 0 && second < first, "{first} then {second}");

    let psql = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(pg.url.replace(":secret", ""))
        .args([
            "-c",
            "UPDATE findings SET status = 'pass' WHERE status = 'fail'",
        ])
        .status()
        .unwrap();
    assert!(psql.success());
    let o = run_with_history(url, &["history", "verify"]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("run 2: finding") && out.contains("edited"),
        "{out}"
    );
}

/// Issue 14, item 3: `history prune --before DATE` drops the oldest runs'
/// reports, keeps their hash links under a checkpoint, and the chain still
/// verifies (an earlier head included); an edited link, a deleted link or a
/// deleted checkpoint is caught; a tampered chain is never pruned.
#[test]
fn pruning_keeps_the_chain_verifiable_and_tampering_with_it_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    two_runs(&h);
    two_runs(&h);
    let first: String = rusqlite::Connection::open(&h)
        .unwrap()
        .query_row("SELECT hash FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let before_size = size(&h);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let o = run_with_history(&h, &["history", "prune", "--before", &tomorrow]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    // Never the newest run: it is the head the anchor and reports hold.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "pruned 3 run(s); runs 1..3 are kept as links"
    );
    assert!(size(&h) <= before_size, "{} > {before_size}", size(&h));
    let o = run_with_history(&h, &["history", "verify", "--expect-head", &first]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.contains("OK: 1 run(s) and 3 pruned run(s) sealed by a checkpoint"),
        "{out}"
    );
    // The export still works on what is left.
    let o = run_with_history(&h, &["report", "--format", "json"]);
    assert_eq!(code(&o), 0);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["runs"], 1);

    // Tampering with what pruning kept.
    let copy = |name: &str| {
        let p = tmp.path().join(name);
        fs::copy(&h, &p).unwrap();
        fs::copy(
            tmp.path().join("history.sqlite.anchor"),
            tmp.path().join(format!("{name}.anchor")),
        )
        .unwrap();
        p
    };
    for (name, sql, says) in [
        (
            "edited.sqlite",
            "UPDATE pruned_runs SET hash = 'edited' || hash WHERE id = 2",
            "link broken",
        ),
        (
            "deleted.sqlite",
            "DELETE FROM pruned_runs WHERE id = 1",
            "missing",
        ),
        (
            "nocheckpoint.sqlite",
            "DELETE FROM checkpoints",
            "no checkpoint",
        ),
    ] {
        let p = copy(name);
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute(sql, [])
            .unwrap();
        let o = run_with_history(&p, &["history", "verify"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(code(&o), 1, "{name}: {out}");
        assert!(out.contains(says), "{name}: {out}");
    }
    // A chain that does not verify is not pruned (it would hide the edit).
    let p = copy("tampered.sqlite");
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute("UPDATE findings SET status = 'pass' WHERE run_id = 4", [])
        .unwrap();
    let o = run_with_history(&p, &["history", "prune", "--before", &tomorrow]);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not verify, so nothing was pruned"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_with_history(&h, &["history", "prune", "--before", "yesterday"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is neither a date"));
}

/// Issue 14, item 3: every run records the config and pack files it read
/// (path and SHA-256), and `report --source NAME --config PATH` keeps only
/// that source's findings, backups and promises.
#[test]
fn runs_record_their_config_and_the_export_filters_by_source() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    let cfg = tmp.path().join("backproof.toml");
    let pg = corpus().join("clean/postgres");
    let my = corpus().join("clean/mysql");
    let text = format!(
        "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"pg\"\npath = \"{}\"\n\n[[sources]]\nname = \"my\"\npath = \"{}\"\n\n[[checks]]\ntype = \"retention\"\nsource = \"my\"\nmin_age = \"1d\"\n",
        pg.display(),
        my.display()
    );
    fs::write(&cfg, &text).unwrap();
    let o = run_with_history(
        &h,
        &["run", "--no-progress", "--config", cfg.to_str().unwrap()],
    );
    assert!(code(&o) <= 1, "{}", String::from_utf8_lossy(&o.stderr));
    let stored: String = rusqlite::Connection::open(&h)
        .unwrap()
        .query_row("SELECT report FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let stored = backproof::history::unpack_report(&stored).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    assert_eq!(
        stored["config"][0]["sha256"],
        sha.as_str(),
        "{:#}",
        stored["config"]
    );
    assert_eq!(stored["config"][0]["path"], cfg.display().to_string());

    let export = |name: &str| {
        run_with_history(
            &h,
            &[
                "report",
                "--format",
                "json",
                "--source",
                name,
                "--config",
                cfg.to_str().unwrap(),
            ],
        )
    };
    let o = export("my");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let backups = c["backups"].as_array().unwrap();
    assert!(!backups.is_empty());
    for b in backups {
        assert!(
            b["subject"]
                .as_str()
                .unwrap()
                .starts_with(my.to_str().unwrap()),
            "{b:#}"
        );
    }
    let promises: Vec<&str> = c["promises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap())
        .collect();
    assert!(promises.contains(&"retention"), "{promises:?}");
    let o = export("pg");
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for b in c["backups"].as_array().unwrap() {
        assert!(
            b["subject"]
                .as_str()
                .unwrap()
                .starts_with(pg.to_str().unwrap()),
            "{b:#}"
        );
    }
    assert!(
        c["promises"].as_array().unwrap().is_empty(),
        "{:#}",
        c["promises"]
    );
    let o = export("nope");
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no source named \"nope\" (sources: pg, my)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
