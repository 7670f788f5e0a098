//! The command-line contract: exit codes, spot checks, ls, run with a
//! config, the demo, and that verification never writes to a backup store.

mod common;

use std::fs;
use std::path::Path;

use common::*;

#[test]
fn unreadable_path_exits_2_naming_it() {
    let (code, report) = verify_json(&[Path::new("/nonexistent/backups")]);
    assert_eq!(code, 2);
    let f = &findings(&report)[0];
    assert_eq!(f["status"], "error");
    assert_eq!(f["subject"], "/nonexistent/backups");
}

#[test]
fn spot_check_of_one_file_uses_its_sidecar() {
    let file = corpus().join("clean/mysql/shop-2026-11-20T0300.sql.gz");
    let (code, report) = verify_json(&[&file]);
    assert_eq!(code, 0, "{}", describe(&report));
    let integrity = findings(&report)
        .iter()
        .find(|f| f["check"] == "integrity")
        .unwrap();
    assert_eq!(integrity["status"], "pass", "{integrity:#}");
    assert_eq!(report["backups"].as_array().unwrap().len(), 1);
}

#[test]
fn spot_check_of_a_directory_dump_uses_the_manifest_beside_it() {
    let dir = corpus().join("clean/postgres/appdb-2026-11-20T0300.dir");
    let (code, report) = verify_json(&[&dir]);
    assert_eq!(code, 0, "{}", describe(&report));
    let integrity = findings(&report)
        .iter()
        .find(|f| f["check"] == "integrity")
        .unwrap();
    assert_eq!(integrity["status"], "pass", "{integrity:#}");
}

#[test]
fn a_truncated_file_fails_without_any_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let good = fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.dump")).unwrap();
    let cut = tmp.path().join("appdb.dump");
    fs::write(&cut, &good[..good.len() - 1]).unwrap();
    let o = run(&["verify", cut.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("FAIL") && text.contains("appdb.dump"),
        "{text}"
    );

    // And an empty dump is no backup at all.
    let empty = tmp.path().join("empty.dump");
    fs::write(&empty, b"").unwrap();
    let (code, report) = verify_json(&[&empty]);
    assert_eq!(code, 1, "{}", describe(&report));
}

#[test]
fn spot_check_stays_in_its_directory() {
    // A broken manifest in a sibling directory is none of this file's business.
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus().join("clean/mysql/shop-2026-11-20T0300.sql.gz");
    fs::copy(&src, tmp.path().join("shop.sql.gz")).unwrap();
    fs::create_dir(tmp.path().join("other")).unwrap();
    fs::write(tmp.path().join("other/SHA256SUMS"), "garbage\n").unwrap();
    let (code, report) = verify_json(&[&tmp.path().join("shop.sql.gz")]);
    assert_eq!(code, 0, "{}", describe(&report));
    assert_eq!(findings(&report).len(), 2, "{}", describe(&report));
}

#[test]
fn a_reader_that_goes_away_ends_no_run_in_a_panic() {
    // `backproof verify … | head`: the rest of the report has nowhere to
    // go. That is no error, the verdict still decides the exit code.
    let mut child = bin()
        .args(["verify", "--no-history", "--no-progress"])
        .arg(corpus().join("corrupt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the report is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code(&out), 1, "the corrupt corpus fails: {stderr}");
}

#[test]
fn ls_lists_kinds_newest_first() {
    let o = run(&[
        "ls",
        corpus().join("clean/postgres").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 6);
    // Each backup with its own kind: a directory dump among the files
    // must not shift the kinds of the files after it.
    for (ending, kind) in [
        (".dir", "pg_directory"),
        (".dump", "pg_custom"),
        (".sql", "pg_plain"),
        (".sql.gz", "pg_plain+gzip"),
        (".sql.zst", "pg_plain+zstd"),
        (".tar", "pg_tar"),
    ] {
        let l = list
            .iter()
            .find(|l| {
                l["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("T0300{ending}"))
            })
            .unwrap_or_else(|| panic!("no {ending} listed: {list:?}"));
        assert_eq!(l["kind"], kind, "{l}");
    }
    let custom = list.iter().find(|l| l["kind"] == "pg_custom").unwrap();
    assert_eq!(custom["timestamp"], "2026-11-20T03:00:00Z");
    assert_eq!(custom["timestamp_from"], "name");
    assert_eq!(custom["checksums"][0], "sha256 (SHA256SUMS)");
    let o = run(&["ls", corpus().join("clean").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("qcow2") && text.contains("mysqldump+zstd"),
        "{text}"
    );
}

#[test]
fn ls_no_read_lists_the_same_backups_without_reading_their_kinds() {
    let clean = corpus().join("clean/postgres");
    let json = |extra: &[&str]| {
        let mut args = vec!["ls", clean.to_str().unwrap(), "--format", "json"];
        args.extend(extra);
        let o = run(&args);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (read, unread) = (json(&[]), json(&["--no-read"]));
    let (read, unread) = (read.as_array().unwrap(), unread.as_array().unwrap());
    assert_eq!(read.len(), unread.len());
    for (r, u) in read.iter().zip(unread) {
        for field in ["path", "timestamp", "size", "files", "checksums"] {
            assert_eq!(r[field], u[field], "{field}: {r} / {u}");
        }
        // A directory dump's kind is its layout's, which costs no read.
        match r["layout"] == "file" {
            true => assert!(u["kind"].is_null(), "{u}"),
            false => assert_eq!(u["kind"], r["kind"], "{u}"),
        }
    }
    assert!(read.iter().all(|r| r["kind"].is_string()), "{read:?}");
    let o = run(&["ls", "--no-read", clean.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("kind not read (--no-read)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("- ") && l.ends_with("T0300.dump")),
        "{text}"
    );
}

#[test]
fn a_source_too_long_to_hold_is_planned_as_a_stream_and_split_between_shards() {
    // Past the in-memory limit (100,000 artifacts), so the binary plans it
    // as a stream: a directory dump among 100,100 single-file backups.
    let dir = tempfile::tempdir().unwrap();
    for d in 0..100 {
        let sub = dir.path().join(format!("site-{d:03}"));
        fs::create_dir(&sub).unwrap();
        for i in 0..1001 {
            fs::write(sub.join(format!("db-{i:04}.sql")), "x").unwrap();
        }
    }
    let dump = dir.path().join("site-042/app.dir");
    fs::create_dir(&dump).unwrap();
    for f in ["toc.dat", "3001.dat.gz", "3002.dat.gz"] {
        fs::write(dump.join(f), "yy").unwrap();
    }
    let count = |shard: &str| {
        let o = run(&[
            "ls",
            "--count",
            "--shard",
            shard,
            dir.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(c["streamed"], true, "{c}");
        assert_eq!(c["listed"], 100_101, "{c}");
        (c["backups"].as_u64().unwrap(), c["bytes"].as_u64().unwrap())
    };
    assert_eq!(count("0/1"), (100_101, 100_100 + 6));
    let (a, b) = (count("0/2"), count("1/2"));
    assert_eq!((a.0 + b.0, a.1 + b.1), (100_101, 100_106));
    assert!(a.0 > 45_000 && b.0 > 45_000, "{a:?} {b:?}");
}

#[test]
fn run_with_a_config_writes_reports_and_rejects_bad_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            "[report]\ndir = \"out\"\nformats = [\"json\", \"text\"]\n\n[[sources]]\nname = \"mysql\"\npath = \"{}\"\n",
            corpus().join("clean/mysql").display()
        ),
    )
    .unwrap();
    let o = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["command"], "run");
    assert_eq!(report["summary"]["backups"], 3);
    assert!(tmp.path().join("out/report.txt").exists());
    // No temporary files left beside the reports.
    assert_eq!(fs::read_dir(tmp.path().join("out")).unwrap().count(), 2);

    fs::write(
        &cfg,
        "[[sources]]\nname = \"x\"\npath = \"/x\"\nretention_days = 3\n",
    )
    .unwrap();
    let o = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("backproof.toml") && err.contains("line 4") && err.contains("retention_days"),
        "{err}"
    );

    // A configured source that does not exist: the audit cannot run.
    fs::write(
        &cfg,
        "[report]\ndir = \"out\"\n[[sources]]\nname = \"x\"\npath = \"/nonexistent\"\n",
    )
    .unwrap();
    assert_eq!(code(&run(&["run", "--config", cfg.to_str().unwrap()])), 2);
}

/// Regression: `[defaults] digests = ["blake3"]` was validated, then
/// ignored: the report showed sha256 only.
#[test]
fn config_default_digests_are_computed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            "[defaults]\ndigests = [\"blake3\"]\n[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"mysql\"\npath = \"{}\"\n",
            corpus().join("clean/mysql").display()
        ),
    )
    .unwrap();
    let o = run(&["run", "--config", cfg.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let backups = report["backups"].as_array().unwrap();
    assert!(!backups.is_empty());
    for b in backups {
        let text = b["digests"].to_string();
        assert!(
            text.contains("blake3"),
            "no blake3 digest for {}: {text}",
            b["subject"]
        );
    }
    // The command line's --digest replaces the config's list.
    let o = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        "--digest",
        "md5",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = report["backups"][0]["digests"].to_string();
    assert!(text.contains("md5") && !text.contains("blake3"), "{text}");
}

/// `run --demo` in `dir`, with its own history; `servers: false` runs it as
/// on a machine without database servers.
fn demo(dir: &Path, servers: bool) -> (std::process::Output, serde_json::Value) {
    let mut c = bin();
    c.env_remove("BACKPROOF_HISTORY")
        .args(["run", "--demo", "--format", "json"])
        .current_dir(dir);
    if !servers {
        c.env("BACKPROOF_DEMO_SERVERS", "none");
    }
    let o = c.output().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("reports/demo/report.json")).unwrap()).unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        printed["findings"], report["findings"],
        "stdout is the report"
    );
    (o, report)
}

fn with_status<'a>(report: &'a serde_json::Value, status: &str) -> Vec<&'a serde_json::Value> {
    findings(report)
        .iter()
        .filter(|f| f["status"] == status)
        .collect()
}

/// The week's story: the missing night, the truncated dump and the small
/// one are each a named failure, every other promise is judged and passes,
/// tonight's newest dumps are restored, seven nights are in the history,
/// and the closing lines say what failed and where the HTML is.
#[test]
fn demo_tells_the_story_of_its_week() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (o, report) = demo(tmp.path(), true);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1, "{stderr}");
    assert!(took.as_secs() < 60, "the demo took {took:?}");

    let mut failed: Vec<String> = with_status(&report, "fail")
        .iter()
        .map(|f| {
            let subject = f["subject"].as_str().unwrap();
            let name = subject.rsplit('/').next().unwrap();
            let name = if name.starts_with("appdb-") {
                "appdb-*.dump"
            } else {
                name
            };
            format!("{} {name}", f["check"].as_str().unwrap())
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "integrity appdb-*.dump",
            "retention mysql: 3 days of dumps, no night missed",
            "size_anomaly mysql: newest dump not suspiciously small",
            "structure appdb-*.dump",
        ],
        "{}",
        describe(&report)
    );
    let by = |check: &str, subject: &str| {
        findings(&report)
            .iter()
            .find(|f| {
                f["check"] == check
                    && f["status"] == "fail"
                    && f["subject"].as_str().unwrap().contains(subject)
            })
            .unwrap_or_else(|| panic!("no failed {check} on {subject}"))
    };
    assert!(
        by("retention", "mysql:")["summary"]
            .as_str()
            .unwrap()
            .contains("gap of 2days")
    );
    assert!(
        by("size_anomaly", "mysql:")["summary"]
            .as_str()
            .unwrap()
            .contains("% of the median")
    );
    assert!(
        by("structure", "appdb-")["summary"]
            .as_str()
            .unwrap()
            .contains("unexpected end")
    );

    // Promises of both packs judged: freshness, retention, size, verified,
    // coverage and the restore promise, each by name.
    let policies: Vec<&str> = findings(&report)
        .iter()
        .filter(|f| f["evidence"]["policy"].is_string())
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "freshness",
        "retention",
        "size_anomaly",
        "verified",
        "coverage",
        "restore",
    ] {
        assert!(
            policies.contains(&check),
            "no {check} promise judged: {policies:?}"
        );
    }
    assert!(policies.len() >= 12, "{policies:?}");

    // Tonight's newest dumps restored (scripts/test.sh installs the servers).
    let restores: Vec<_> = findings(&report)
        .iter()
        .filter(|f| f["check"] == "restore")
        .collect();
    assert_eq!(
        restores.len(),
        3,
        "two restores and the restore promise: {restores:#?}"
    );
    assert!(
        restores.iter().all(|f| f["status"] == "pass"),
        "{restores:#?}"
    );
    assert!(!stderr.contains("apt-get"), "{stderr}");

    // Seven nights, a day apart, tonight's last.
    let h =
        backproof::history::History::open(&tmp.path().join("reports/demo/history.sqlite")).unwrap();
    let runs = h
        .runs_since(chrono::Utc::now() - chrono::Duration::days(30))
        .unwrap();
    assert_eq!(runs.len(), 7);
    for w in runs.windows(2) {
        let gap = w[1].started_at - w[0].started_at;
        assert!(
            (gap - chrono::Duration::days(1)).num_seconds().abs() < 60,
            "{gap}"
        );
    }
    let exits: Vec<i32> = runs.iter().map(|r| r.exit_code).collect();
    // The gap shows the night after the missing dump (it was 25 h old then).
    assert_eq!(exits, [0, 0, 0, 1, 1, 1, 1], "green nights, then the gap");

    // The closing lines: what failed and why, and where the HTML is.
    assert!(tmp.path().join("reports/demo/report.html").is_file());
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    assert!(tail[0].ends_with("reports/demo/report.html"), "{stderr}");
    assert!(stderr.contains("failed tonight (4):"), "{stderr}");
    assert!(
        stderr.contains("size_anomaly mysql: newest dump not suspiciously small: newest backup is")
    );

    // Run again: the same week, not fourteen nights.
    let (o, _) = demo(tmp.path(), true);
    assert_eq!(code(&o), 1);
    let h =
        backproof::history::History::open(&tmp.path().join("reports/demo/history.sqlite")).unwrap();
    assert_eq!(
        h.runs_since(chrono::Utc::now() - chrono::Duration::days(30))
            .unwrap()
            .len(),
        7
    );
}

/// Without database servers the demo says in one line how to get them; the
/// restores are errors with that reason (never a pass), the rest still runs.
#[test]
fn demo_without_servers_says_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (o, report) = demo(tmp.path(), false);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1, "{stderr}");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    let hints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("apt-get install postgresql mariadb-server"))
        .collect();
    assert_eq!(hints.len(), 1, "{stderr}");
    let restores: Vec<_> = findings(&report)
        .iter()
        .filter(|f| f["check"] == "restore")
        .collect();
    assert_eq!(restores.len(), 2, "{restores:#?}");
    for r in restores {
        assert_eq!(r["status"], "error", "{r:#}");
        assert!(
            r["summary"].as_str().unwrap().contains("server binaries"),
            "{r:#}"
        );
    }
    assert_eq!(
        with_status(&report, "fail").len(),
        4,
        "{}",
        describe(&report)
    );
    assert!(tmp.path().join("reports/demo/report.html").is_file());
}

/// Size, mtime and content hash of every file under a tree.
fn fingerprint(root: &Path) -> Vec<(String, u64, std::time::SystemTime, String)> {
    use sha2::Digest;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        let hash = if m.is_file() {
            hex::encode(sha2::Sha256::digest(fs::read(e.path()).unwrap()))
        } else {
            String::new()
        };
        out.push((
            e.path().display().to_string(),
            m.len(),
            m.modified().unwrap(),
            hash,
        ));
    }
    out
}

#[test]
fn verification_writes_nothing_to_the_backup_store() {
    let root = corpus();
    let before = fingerprint(&root);
    let _ = verify_json(&[&root.join("clean"), &root.join("corrupt")]);
    assert_eq!(before, fingerprint(&root));
}

#[test]
fn completions_and_man_page_come_from_the_command_line() {
    let o = run(&["completions", "bash"]);
    assert_eq!(code(&o), 0);
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(
        script.contains("_backproof()") && script.contains("--scratch-url"),
        "{script}"
    );
    for shell in ["zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert_eq!(code(&o), 0, "{shell}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("expect-head"),
            "{shell}"
        );
    }
    let o = run(&["man"]);
    assert_eq!(code(&o), 0);
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.contains(".TH backproof 1") && page.contains("compare"),
        "{page}"
    );
}

/// Issue 14, item 7: the mistakes a new user makes get messages that point
/// at the fix. An unknown key inside a `[[checks]]` table was reported at
/// the table's header line; a bad duration said only "expected a
/// duration"; `report --since 3m` silently meant three minutes; `report
/// --format text` was refused.
#[test]
fn a_new_users_mistakes_are_reported_where_they_are_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("h.sqlite");
    let run_config = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        fs::write(&path, text).unwrap();
        let o = bin()
            .args(["run", "--no-progress", "--config"])
            .arg(&path)
            .arg("--history")
            .arg(&history)
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{name}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let head = "[[sources]]\nname = \"db\"\npath = \"/srv/x\"\n\n[[checks]]\ntype = \"freshness\"\nsource = \"db\"\n";
    let e = run_config("unknown.toml", &format!("{head}max_age = \"26h\"\n"));
    assert!(
        e.contains("unknown.toml: line 8, key `max_age`: unknown field `max_age`")
            && e.contains("8 | max_age = \"26h\""),
        "{e}"
    );
    let e = run_config(
        "duration.toml",
        &format!("{head}fail_after = \"26 hourz\"\n"),
    );
    assert!(
        e.contains("line 8, key `fail_after`: invalid value: string \"26 hourz\"")
            && e.contains("\"26h\", \"3d\", \"90min\""),
        "{e}"
    );
    let e = run_config(
        "restore.toml",
        "[[sources]]\nname = \"db\"\npath = \"/srv/x\"\n[sources.restore]\nrto = \"1 hourz\"\n",
    );
    assert!(
        e.contains("line 5, key `rto`") && e.contains("\"90min\""),
        "{e}"
    );

    // A history to report on.
    let clean = corpus().join("clean/postgres");
    let o = bin()
        .args(["verify", "--no-progress", "--history"])
        .arg(&history)
        .arg(&clean)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let report = |args: &[&str]| {
        bin()
            .arg("report")
            .args(args)
            .arg("--history")
            .arg(&history)
            .output()
            .unwrap()
    };
    let o = report(&["--since", "3m"]);
    assert_eq!(code(&o), 2);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("\"3m\" is ambiguous") && e.contains("\"3months\""),
        "{e}"
    );
    let o = report(&["--since", "3months", "--format", "text"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 run(s), 0 with a failed check"), "{out}");
}

/// Issue 14, item 5: logs on stderr only, as text or JSON lines, with a
/// span per source whose close carries its duration; at the default level a
/// clean spot check logs nothing at all.
#[test]
fn logs_are_json_lines_on_stderr_with_a_timed_span_per_source() {
    let clean = corpus().join("clean/postgres");
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--no-progress",
            "--format",
            "json",
        ])
        .args(["--log-format", "json", "--log-level", "info"])
        .arg(&clean)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is the report");
    assert!(report["summary"]["backups"].as_u64().unwrap() > 0);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let audited = lines
        .iter()
        .find(|l| l["message"] == "source audited")
        .expect("a source event");
    assert_eq!(audited["span"]["location"], clean.display().to_string());
    assert_eq!(audited["backups"], report["summary"]["backups"]);
    let close = lines
        .iter()
        .find(|l| l["message"] == "close" && l["span"]["name"] == "source")
        .expect("the source span's close");
    assert!(close["time.busy"].is_string(), "{close}");

    let quiet = bin()
        .args(["verify", "--no-history", "--no-progress"])
        .arg(&clean)
        .output()
        .unwrap();
    assert_eq!(code(&quiet), 0);
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "no noise by default"
    );
}

/// An entry of the copy that cannot be listed (a dangling link) leaves that
/// entry unproven: `compare` says so as an error instead of passing over it.
#[test]
fn a_copy_entry_that_cannot_be_listed_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    for dir in [&src, &dst] {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join("a.sql"), "-- a\n").unwrap();
    }
    let compare = || {
        let o = bin()
            .args(["compare", "--no-history", "--format", "json"])
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (code(&o), report)
    };
    let (exit, report) = compare();
    assert_eq!(exit, 0, "{}", describe(&report));
    std::os::unix::fs::symlink(tmp.path().join("gone"), dst.join("b.sql")).unwrap();
    let (exit, report) = compare();
    assert_eq!(exit, 2, "{}", describe(&report));
    let f = findings(&report);
    assert_eq!(f[0]["status"], "error", "{}", describe(&report));
    assert!(
        f.iter().any(|f| f["status"] == "error"
            && f["subject"].as_str().unwrap().ends_with("b.sql")
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("could not list in the copy")),
        "{}",
        describe(&report)
    );
    // The source's own entry of that name is not "missing in the copy".
    fs::write(src.join("b.sql"), "-- b\n").unwrap();
    let (exit, report) = compare();
    assert_eq!(exit, 2, "{}", describe(&report));
    assert!(
        findings(&report).iter().all(|f| f["status"] != "fail"),
        "{}",
        describe(&report)
    );
    // Nor, the other way round, is the copy's file "extra".
    fs::remove_file(dst.join("b.sql")).unwrap();
    fs::write(dst.join("b.sql"), "-- b\n").unwrap();
    fs::remove_file(src.join("b.sql")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone"), src.join("b.sql")).unwrap();
    let (exit, report) = compare();
    assert_eq!(exit, 2, "{}", describe(&report));
    let f = findings(&report);
    assert!(
        f.iter().all(|f| f["status"] != "fail")
            && f.iter().any(|f| f["summary"]
                .as_str()
                .unwrap()
                .contains("could not list in the source")),
        "{}",
        describe(&report)
    );
}

/// An audit leaves no trace on the store, not even access times: backup
/// files are read with O_NOATIME (relatime would otherwise update an
/// access time older than the file's modification).
#[test]
fn verification_leaves_access_times_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    fs::create_dir(&dir).unwrap();
    for sub in ["postgres", "mysql"] {
        for e in fs::read_dir(corpus().join("clean").join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    let atimes = || {
        let mut out: Vec<(String, std::time::SystemTime)> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let at = e.metadata().unwrap().accessed().unwrap();
                (e.file_name().to_string_lossy().into_owned(), at)
            })
            .collect();
        out.sort();
        out
    };
    for (name, _) in atimes() {
        let f = fs::File::options()
            .write(true)
            .open(dir.join(&name))
            .unwrap();
        f.set_times(fs::FileTimes::new().set_accessed(old)).unwrap();
    }
    let before = atimes();
    assert!(before.len() > 5 && before.iter().all(|(_, at)| *at == old));
    let (code, report) = verify_json(&[&dir]);
    assert!(code < 2, "{}", describe(&report));
    assert_eq!(atimes(), before);
}
