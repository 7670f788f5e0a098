//! deploy/: the Kubernetes, systemd and AWS Batch manifests parse, and the
//! fields backproof relies on agree with each other and with backproof's own
//! config loader. Nothing here talks to a cluster: the manifests are read as
//! data, so a shard count changed in one place, a group id spelled two ways
//! or a config mounted where `--config` does not look fails here first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// A parsed manifest (YAML read into the same tree as JSON, so one set of
/// helpers serves both).
struct Doc {
    file: String,
    root: Value,
}

impl Doc {
    fn load(rel: &str) -> Doc {
        let path = deploy_dir().join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let root = if rel.ends_with(".json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"))
        } else {
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"))
        };
        Doc {
            file: rel.to_string(),
            root,
        }
    }

    fn node(&self) -> Node<'_> {
        Node {
            file: &self.file,
            path: String::new(),
            v: &self.root,
        }
    }

    fn at(&self, path: &str) -> Node<'_> {
        path.split('.').fold(self.node(), |n, k| n.get(k))
    }
}

/// A value inside a manifest that knows where it is, so that every failed
/// expectation names the file and the field.
#[derive(Clone)]
struct Node<'a> {
    file: &'a str,
    path: String,
    v: &'a Value,
}

impl<'a> Node<'a> {
    fn child(&self, key: &str, v: &'a Value) -> Node<'a> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Node {
            file: self.file,
            path,
            v,
        }
    }

    fn opt(&self, key: &str) -> Option<Node<'a>> {
        self.v.get(key).map(|v| self.child(key, v))
    }

    fn get(&self, key: &str) -> Node<'a> {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: {}.{key} is missing", self.file, self.path))
    }

    fn items(&self) -> Vec<Node<'a>> {
        let list = self.v.as_array().unwrap_or_else(|| {
            panic!(
                "{}: {} should be a list, is {}",
                self.file, self.path, self.v
            )
        });
        list.iter()
            .enumerate()
            .map(|(i, v)| self.child(&i.to_string(), v))
            .collect()
    }

    /// The element of a list of objects whose `key` is `value` (a container
    /// by name, a volume by name).
    fn find(&self, key: &str, value: &str) -> Node<'a> {
        self.items()
            .into_iter()
            .find(|n| n.v.get(key).and_then(Value::as_str) == Some(value))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {} has no entry with {key} = {value:?}",
                    self.file, self.path
                )
            })
    }

    fn str(&self) -> &'a str {
        self.v.as_str().unwrap_or_else(|| {
            panic!(
                "{}: {} should be a string, is {}",
                self.file, self.path, self.v
            )
        })
    }

    fn u64(&self) -> u64 {
        self.v.as_u64().unwrap_or_else(|| {
            panic!(
                "{}: {} should be a number, is {}",
                self.file, self.path, self.v
            )
        })
    }

    fn strings(&self) -> Vec<&'a str> {
        self.items().iter().map(Node::str).collect()
    }

    fn expect(&self, want: &str) {
        assert_eq!(self.str(), want, "{}: {}", self.file, self.path);
    }
}

/// Words of a `sh -c` script as the shell splits them: quotes group, and
/// `$(…)` inside double quotes stays one literal word (the expression both
/// CronJobs must spell alike).
fn shell_words(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    for c in script.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                started = true;
            }
            None => {
                word.push(c);
                started = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in {script:?}");
    if started {
        words.push(word);
    }
    words
}

/// The word after `flag`, naming the file when the flag is absent.
fn flag<'w>(file: &str, args: &'w [String], name: &str) -> &'w str {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("{file}: the command has no {name}: {args:?}"));
    args.get(i + 1)
        .unwrap_or_else(|| panic!("{file}: {name} has no value: {args:?}"))
}

fn duration(file: &str, what: &str, text: &str) -> Duration {
    humantime::parse_duration(text)
        .unwrap_or_else(|e| panic!("{file}: {what} {text:?} is no duration: {e}"))
}

/// A Kubernetes quantity ("500m", "256Mi", "20Gi", "2") in base units.
fn quantity(file: &str, what: &str, q: &Value) -> f64 {
    let text = match q {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("{file}: {what} should be a quantity, is {other}"),
    };
    let units: [(&str, f64); 7] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((text.as_str(), 1.0));
    let n: f64 = number
        .parse()
        .unwrap_or_else(|e| panic!("{file}: {what} {text:?} is no quantity: {e}"));
    n * scale
}

/// "M H * * *" as seconds after midnight (the daily schedules used here).
fn daily_at(n: &Node) -> u64 {
    let fields: Vec<&str> = n.str().split_whitespace().collect();
    assert!(
        fields.len() == 5 && fields[2..] == ["*", "*", "*"],
        "{}: {} should be a daily \"M H * * *\", is {:?}",
        n.file,
        n.path,
        n.str()
    );
    let num = |f: &str| -> u64 {
        f.parse()
            .unwrap_or_else(|_| panic!("{}: {}: {f:?} is not a number", n.file, n.path))
    };
    num(fields[1]) * 3600 + num(fields[0]) * 60
}

const SHARDS: &str = "kubernetes/cronjob-shards.yaml";
const FINALIZE: &str = "kubernetes/cronjob-finalize.yaml";
const CONFIGMAP: &str = "kubernetes/configmap.yaml";
const SECRET: &str = "kubernetes/secret.example.yaml";
const SERVICE_ACCOUNT: &str = "kubernetes/serviceaccount.yaml";

fn pod_spec(doc: &Doc) -> Node<'_> {
    doc.at("spec.jobTemplate.spec.template.spec")
}

fn container(doc: &Doc) -> Node<'_> {
    pod_spec(doc).get("containers").find("name", "backproof")
}

/// The container's `sh -c` script, split into words after `exec`, which
/// must start `backproof run` (exec: backproof replaces sh as PID 1 and gets
/// the SIGTERM itself).
fn k8s_args(doc: &Doc) -> Vec<String> {
    let c = container(doc);
    let command = c.get("command").strings();
    assert!(
        command.len() == 3 && command[..2] == ["sh", "-c"],
        "{}: {}.command should be [sh, -c, SCRIPT], is {command:?}",
        doc.file,
        c.path
    );
    let words = shell_words(command[2]);
    assert!(
        words.len() > 3 && words[..3] == ["exec", "backproof", "run"],
        "{}: {}.command should exec `backproof run`, is {:?}",
        doc.file,
        c.path,
        command[2]
    );
    words[1..].to_vec()
}

#[test]
fn every_file_in_deploy_parses() {
    let mut seen = Vec::new();
    for entry in walk(&deploy_dir()) {
        let rel = entry
            .strip_prefix(deploy_dir())
            .unwrap()
            .display()
            .to_string();
        seen.push(rel.clone());
        let text = std::fs::read_to_string(&entry).unwrap();
        match entry.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                for doc in serde_yaml::Deserializer::from_str(&text) {
                    let v = <Value as serde::Deserialize>::deserialize(doc)
                        .unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"));
                    for key in ["apiVersion", "kind", "metadata"] {
                        assert!(v.get(key).is_some(), "{rel}: no {key}");
                    }
                }
            }
            Some("json") => {
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"));
            }
            Some("service" | "timer") => {
                unit(&rel);
            }
            Some("md") => {}
            other => panic!("{rel}: no parser for {other:?} here: add one to this test"),
        }
    }
    for rel in [
        "README.md",
        CONFIGMAP,
        SECRET,
        SERVICE_ACCOUNT,
        SHARDS,
        FINALIZE,
        "systemd/backproof.service",
        "systemd/backproof.timer",
        "aws-batch/job-definition.json",
        "aws-batch/job-definition-finalize.json",
        "aws-batch/submit-array-job.json",
        "aws-batch/submit-finalize-job.json",
    ] {
        assert!(seen.iter().any(|s| s == rel), "deploy/{rel} is missing");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn shards_are_an_indexed_job_of_as_many_pods_as_the_shard_count() {
    let doc = Doc::load(SHARDS);
    doc.at("kind").expect("CronJob");
    doc.at("spec.concurrencyPolicy").expect("Forbid");
    let job = doc.at("spec.jobTemplate.spec");
    job.get("completionMode").expect("Indexed");
    let completions = job.get("completions").u64();
    let parallelism = job.get("parallelism").u64();
    assert!(
        job.get("backoffLimitPerIndex").u64() >= 1,
        "{SHARDS}: {}.backoffLimitPerIndex: a crashed shard is retried",
        job.path
    );
    pod_spec(&doc).get("restartPolicy").expect("Never");

    let args = k8s_args(&doc);
    let shard = flag(SHARDS, &args, "--shard");
    let n: u64 = shard
        .strip_prefix("auto/")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{SHARDS}: --shard should be auto/N, is {shard:?}"));
    assert_eq!(
        completions, n,
        "{SHARDS}: spec.jobTemplate.spec.completions must equal the N of --shard {shard}"
    );
    assert_eq!(
        parallelism, n,
        "{SHARDS}: spec.jobTemplate.spec.parallelism must equal the N of --shard {shard}: \
         fewer pods at once would leave shards waiting past the deadline"
    );

    // The run's own deadline ends before Kubernetes kills the pod, so that
    // a slow shard reports what it did not reach instead of vanishing.
    let deadline = duration(SHARDS, "--deadline", flag(SHARDS, &args, "--deadline"));
    let killed_at = job.get("activeDeadlineSeconds").u64();
    assert!(
        deadline.as_secs() < killed_at,
        "{SHARDS}: --deadline {deadline:?} must end before {}.activeDeadlineSeconds ({killed_at} s)",
        job.path
    );
}

#[test]
fn the_finalizer_names_the_group_the_shards_report_to() {
    let shards = Doc::load(SHARDS);
    let finalize = Doc::load(FINALIZE);
    let group = flag(SHARDS, &k8s_args(&shards), "--run-group").to_string();
    let args = k8s_args(&finalize);
    assert_eq!(
        flag(FINALIZE, &args, "--finalize"),
        group,
        "{FINALIZE}: --finalize must be the shards' --run-group expression, character for character"
    );
    assert!(
        !args.iter().any(|a| a == "--shard"),
        "{FINALIZE}: the finalizer is no shard: {args:?}"
    );
    duration(FINALIZE, "--wait", flag(FINALIZE, &args, "--wait"));
    pod_spec(&finalize).get("restartPolicy").expect("Never");

    // The id is a UTC date, so both CronJobs must read their schedules in
    // UTC and run on the same UTC day.
    assert!(
        group.contains("$(date -u "),
        "{SHARDS}: --run-group {group:?} should be computed from the UTC date (date -u)"
    );
    for doc in [&shards, &finalize] {
        doc.at("spec.timeZone").expect("Etc/UTC");
        doc.at("spec.jobTemplate.spec.template.spec.restartPolicy")
            .expect("Never");
    }
    let shards_start = daily_at(&shards.at("spec.schedule"));
    let shards_late = shards.at("spec.startingDeadlineSeconds").u64();
    let shards_killed = shards
        .at("spec.jobTemplate.spec.activeDeadlineSeconds")
        .u64();
    let finalize_start = daily_at(&finalize.at("spec.schedule"));
    let finalize_late = finalize.at("spec.startingDeadlineSeconds").u64();
    assert!(
        shards_start + shards_late + shards_killed <= finalize_start,
        "{SHARDS}: spec.schedule + startingDeadlineSeconds + activeDeadlineSeconds must end \
         by {FINALIZE}'s spec.schedule: the finalizer would judge shards still running"
    );
    assert!(
        finalize_start + finalize_late < 24 * 3600,
        "{FINALIZE}: spec.schedule + startingDeadlineSeconds must stay on the shards' UTC day"
    );
}

#[test]
fn the_config_is_mounted_where_config_points_and_loads() {
    let map = Doc::load(CONFIGMAP);
    map.at("kind").expect("ConfigMap");
    let map_name = map.at("metadata.name").str();
    let data = map.at("data");
    let data_obj = data.v.as_object().expect("configmap data is a map");
    for rel in [SHARDS, FINALIZE] {
        let doc = Doc::load(rel);
        let config = flag(rel, &k8s_args(&doc), "--config").to_string();
        let volume = pod_spec(&doc)
            .get("volumes")
            .items()
            .into_iter()
            .find(|v| {
                v.opt("configMap")
                    .is_some_and(|c| c.get("name").str() == map_name)
            })
            .unwrap_or_else(|| panic!("{rel}: no volume of ConfigMap {map_name:?}"));
        assert!(
            volume.get("configMap").opt("items").is_none(),
            "{rel}: {}.configMap.items would rename the keys: the test reads them as file names",
            volume.path
        );
        let volume_name = volume.get("name").str();
        let mount = container(&doc)
            .get("volumeMounts")
            .find("name", volume_name);
        let dir = mount.get("mountPath").str();
        let key = config
            .strip_prefix(dir)
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or_else(|| {
                panic!(
                    "{rel}: --config {config} is not under {}.mountPath {dir}",
                    mount.path
                )
            });
        assert!(
            data_obj.contains_key(key),
            "{rel}: --config {config} names key {key:?}, which {CONFIGMAP} data lacks"
        );
    }

    // backproof's own loader, on the files as the pod sees them: the config
    // and the packs it includes, side by side.
    let dir = tempfile::tempdir().unwrap();
    for (key, text) in data_obj {
        let text = text
            .as_str()
            .unwrap_or_else(|| panic!("{CONFIGMAP}: data.{key} should be a string"));
        std::fs::write(dir.path().join(key), text).unwrap();
        // A pack copied from checks/ stays the pack it claims to be.
        let original = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("checks")
            .join(key);
        if original.exists() {
            assert_eq!(
                text,
                std::fs::read_to_string(&original).unwrap(),
                "{CONFIGMAP}: data.{key} differs from checks/{key}"
            );
        }
    }
    let shards = Doc::load(SHARDS);
    let config_key = flag(SHARDS, &k8s_args(&shards), "--config")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let config = backproof::config::Config::load(&dir.path().join(&config_key))
        .unwrap_or_else(|e| panic!("{CONFIGMAP}: data.{config_key}: {e}"));
    assert!(
        config.files.len() >= 2 && !config.checks.is_empty(),
        "{CONFIGMAP}: data.{config_key} should include a pack from the same ConfigMap"
    );

    // Everything the config reads or writes on disk is on a volume of the
    // shard pod: local sources on a read-only mount, the report directory
    // on a writable one.
    let mounts = container(&shards).get("volumeMounts").items();
    let mount_of = |p: &Path| {
        mounts
            .iter()
            .filter(|m| p.starts_with(m.get("mountPath").str()))
            .max_by_key(|m| m.get("mountPath").str().len())
            .cloned()
    };
    let mut remote = 0;
    for s in &config.sources {
        let p = s.path.to_string_lossy();
        if p.contains("://") {
            remote += 1;
            continue;
        }
        let m = mount_of(&s.path).unwrap_or_else(|| {
            panic!(
                "{SHARDS}: source {:?} reads {p}, which no volumeMount holds",
                s.name
            )
        });
        assert!(
            m.opt("readOnly").is_some_and(|r| r.v == &Value::Bool(true)),
            "{SHARDS}: {}: source {:?} should be mounted readOnly (backproof only reads backups)",
            m.path,
            s.name
        );
    }
    assert!(
        remote >= 1 && remote < config.sources.len(),
        "{CONFIGMAP}: the example config should have both an S3 and a local source"
    );
    let report = mount_of(&config.report.dir).unwrap_or_else(|| {
        panic!(
            "{SHARDS}: report.dir {} is on no volumeMount: the container's root may not be writable",
            config.report.dir.display()
        )
    });
    assert!(
        report
            .opt("readOnly")
            .is_none_or(|r| r.v == &Value::Bool(false)),
        "{SHARDS}: {}: report.dir must be writable",
        report.path
    );

    // Worker threads no more than the cores the pod may use.
    let cpu = container(&shards).get("resources").get("limits").get("cpu");
    let cores = quantity(SHARDS, &cpu.path, cpu.v);
    let jobs = config
        .defaults
        .jobs
        .expect("the example config sets defaults.jobs");
    assert!(
        jobs as f64 <= cores,
        "{CONFIGMAP}: defaults.jobs = {jobs} exceeds {SHARDS}'s {} ({cores})",
        cpu.path
    );
}

#[test]
fn history_and_aws_keys_come_from_the_secret() {
    let secret = Doc::load(SECRET);
    secret.at("kind").expect("Secret");
    let name = secret.at("metadata.name").str();
    let data = secret.at("stringData");
    assert!(
        data.get("BACKPROOF_HISTORY")
            .str()
            .starts_with("postgres://"),
        "{SECRET}: stringData.BACKPROOF_HISTORY: the shards share a PostgreSQL history"
    );
    let account = Doc::load(SERVICE_ACCOUNT);
    for rel in [SHARDS, FINALIZE] {
        let doc = Doc::load(rel);
        let env = container(&doc).get("env");
        for var in [
            "BACKPROOF_HISTORY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            let e = env.find("name", var);
            assert!(
                e.opt("value").is_none(),
                "{rel}: {}: {var} must not be written in the manifest",
                e.path
            );
            let r = e.get("valueFrom").get("secretKeyRef");
            r.get("name").expect(name);
            let key = r.get("key").str();
            data.get(key);
        }
        pod_spec(&doc)
            .get("serviceAccountName")
            .expect(account.at("metadata.name").str());
    }
}

#[test]
fn pods_run_as_non_root_within_their_limits() {
    for rel in [SHARDS, FINALIZE] {
        let doc = Doc::load(rel);
        let pod = pod_spec(&doc);
        assert_eq!(
            pod.get("securityContext").get("runAsNonRoot").v,
            &Value::Bool(true),
            "{rel}: {}.securityContext.runAsNonRoot: initdb refuses root",
            pod.path
        );
        for c in pod.get("containers").items() {
            let res = c.get("resources");
            let (requests, limits) = (res.get("requests"), res.get("limits"));
            for (resource, request) in requests.v.as_object().unwrap() {
                let limit = limits.get(resource);
                let what = format!("{}.{resource}", requests.path);
                let (r, l) = (
                    quantity(rel, &what, request),
                    quantity(rel, &limit.path, limit.v),
                );
                assert!(r <= l, "{rel}: {what} ({r}) exceeds {} ({l})", limit.path);
            }
            // emptyDirs count against the pod's ephemeral storage: their
            // sizes must fit the limit, or the kubelet evicts the pod.
            let volumes: f64 = pod
                .get("volumes")
                .items()
                .iter()
                .filter_map(|v| v.opt("emptyDir"))
                .map(|e| {
                    let s = e.get("sizeLimit");
                    quantity(rel, &s.path, s.v)
                })
                .sum();
            let storage = limits.get("ephemeral-storage");
            assert!(
                volumes <= quantity(rel, &storage.path, storage.v),
                "{rel}: the emptyDirs' sizeLimits ({volumes}) exceed {}",
                storage.path
            );
        }
    }
    // Restores' scratch servers live in TMPDIR: a volume of the pod's own
    // (never shared: the sweep of leftovers tells live runs by PID).
    let shards = Doc::load(SHARDS);
    let tmp = container(&shards)
        .get("volumeMounts")
        .find("mountPath", "/tmp");
    pod_spec(&shards)
        .get("volumes")
        .find("name", tmp.get("name").str())
        .get("emptyDir")
        .get("sizeLimit");
}

/// A systemd unit's settings per section; a key may repeat.
fn unit(rel: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(deploy_dir().join(rel)).unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let (Some(s), Some((key, value))) = (&section, line.split_once('=')) else {
            panic!(
                "{rel}: line {}: {line:?} is no key=value in a section",
                i + 1
            );
        };
        out.entry(s.clone())
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    out
}

fn setting<'u>(
    rel: &str,
    u: &'u BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> &'u [String] {
    u.get(section)
        .and_then(|s| s.get(key))
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{rel}: [{section}] {key}= is missing"))
}

#[test]
fn systemd_runs_backproof_nightly_and_catches_up() {
    const SERVICE: &str = "systemd/backproof.service";
    const TIMER: &str = "systemd/backproof.timer";
    let service = unit(SERVICE);
    let one = |key: &str| -> String {
        let v = setting(SERVICE, &service, "Service", key);
        assert_eq!(
            v.len(),
            1,
            "{SERVICE}: [Service] {key}= is set {} times",
            v.len()
        );
        v[0].clone()
    };
    assert_eq!(one("Type"), "oneshot", "{SERVICE}: [Service] Type=");
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        exec.len() > 2 && exec[0].ends_with("/backproof") && exec[1] == "run",
        "{SERVICE}: [Service] ExecStart= should run `backproof run`: {exec:?}"
    );
    flag(SERVICE, &exec, "--config");
    one("EnvironmentFile");
    assert_eq!(
        one("ProtectSystem"),
        "strict",
        "{SERVICE}: [Service] ProtectSystem="
    );
    assert_eq!(one("PrivateTmp"), "yes", "{SERVICE}: [Service] PrivateTmp=");

    // Under ProtectSystem=strict only ReadWritePaths are writable: the
    // history's directory and the report directory must be among them.
    let writable: Vec<String> = setting(SERVICE, &service, "Service", "ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect();
    let history = setting(SERVICE, &service, "Service", "Environment")
        .iter()
        .find_map(|e| e.strip_prefix("BACKPROOF_HISTORY="))
        .unwrap_or_else(|| {
            panic!("{SERVICE}: [Service] Environment=BACKPROOF_HISTORY= is missing")
        });
    let map = Doc::load(CONFIGMAP);
    let config = backproof::config::Config::parse(map.at("data").get("backproof.toml").str())
        .unwrap_or_else(|e| panic!("{CONFIGMAP}: data.backproof.toml: {e}"));
    for (what, path) in [
        ("the history", Path::new(history).parent().unwrap()),
        ("report.dir", config.report.dir.as_path()),
    ] {
        assert!(
            writable.iter().any(|w| path.starts_with(w)),
            "{SERVICE}: [Service] ReadWritePaths= {writable:?} does not hold {what} ({})",
            path.display()
        );
    }

    let timer = unit(TIMER);
    let calendar = setting(TIMER, &timer, "Timer", "OnCalendar");
    assert!(
        calendar.iter().any(|c| c.ends_with("UTC")),
        "{TIMER}: [Timer] OnCalendar= {calendar:?} should say UTC"
    );
    assert_eq!(
        setting(TIMER, &timer, "Timer", "Persistent"),
        ["true"],
        "{TIMER}: [Timer] Persistent=true, or a night the host was down is skipped"
    );
    setting(TIMER, &timer, "Timer", "RandomizedDelaySec");
    assert_eq!(
        setting(TIMER, &timer, "Install", "WantedBy"),
        ["timers.target"],
        "{TIMER}: [Install] WantedBy="
    );
}

#[test]
fn batch_shards_are_an_array_and_the_finalizer_takes_its_id() {
    const SHARD_DEF: &str = "aws-batch/job-definition.json";
    const FINALIZE_DEF: &str = "aws-batch/job-definition-finalize.json";
    const SUBMIT: &str = "aws-batch/submit-array-job.json";
    const SUBMIT_FINALIZE: &str = "aws-batch/submit-finalize-job.json";
    let shard = Doc::load(SHARD_DEF);
    let finalize = Doc::load(FINALIZE_DEF);
    let submit = Doc::load(SUBMIT);
    let submit_finalize = Doc::load(SUBMIT_FINALIZE);

    let mut attempts_total = 0;
    for def in [&shard, &finalize] {
        let file = def.file.as_str();
        def.at("type").expect("container");
        let c = def.at("containerProperties");
        let command: Vec<String> = c
            .get("command")
            .strings()
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(
            command.len() > 2 && command[..2] == ["backproof", "run"],
            "{file}: containerProperties.command should be `backproof run …`: {command:?}"
        );
        // The config is on a mounted volume, at the path --config names.
        let config = flag(file, &command, "--config");
        let mounts = c.get("mountPoints").items();
        assert!(
            mounts
                .iter()
                .any(|m| config.starts_with(m.get("containerPath").str())),
            "{file}: --config {config} is on none of containerProperties.mountPoints"
        );
        let secret = c.get("secrets").find("name", "BACKPROOF_HISTORY");
        assert!(
            secret
                .get("valueFrom")
                .str()
                .starts_with("arn:aws:secretsmanager:"),
            "{file}: {}.valueFrom should be a Secrets Manager ARN",
            secret.path
        );
        assert!(
            c.opt("environment").is_none_or(|e| e
                .items()
                .iter()
                .all(|v| v.get("name").str() != "BACKPROOF_HISTORY")),
            "{file}: BACKPROOF_HISTORY must come from secrets, not environment"
        );
        let resources = c.get("resourceRequirements");
        for kind in ["VCPU", "MEMORY"] {
            resources.find("type", kind).get("value").str();
        }
        if def.file == SHARD_DEF {
            attempts_total = def.at("timeout.attemptDurationSeconds").u64()
                * def.at("retryStrategy.attempts").u64();
        }
    }

    let shard_cmd: Vec<String> = shard
        .at("containerProperties.command")
        .strings()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        flag(SHARD_DEF, &shard_cmd, "--shard"),
        "auto",
        "{SHARD_DEF}: --shard auto takes index and size from AWS_BATCH_JOB_ARRAY_*"
    );
    assert!(
        !shard_cmd.iter().any(|a| a == "--run-group"),
        "{SHARD_DEF}: no --run-group: the group is the array job's id, which the finalizer is given"
    );
    let deadline = duration(
        SHARD_DEF,
        "--deadline",
        flag(SHARD_DEF, &shard_cmd, "--deadline"),
    );
    assert!(
        deadline.as_secs() < shard.at("timeout.attemptDurationSeconds").u64(),
        "{SHARD_DEF}: --deadline must end before timeout.attemptDurationSeconds kills the attempt"
    );

    submit
        .at("jobDefinition")
        .expect(shard.at("jobDefinitionName").str());
    assert!(
        submit.at("arrayProperties.size").u64() >= 2,
        "{SUBMIT}: arrayProperties.size: Batch arrays have 2 to 10,000 children"
    );

    // The finalizer's group and wait are Batch parameters, substituted for
    // Ref::NAME in its command; each must have a value.
    let fin_cmd: Vec<String> = finalize
        .at("containerProperties.command")
        .strings()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        flag(FINALIZE_DEF, &fin_cmd, "--finalize"),
        "Ref::group",
        "{FINALIZE_DEF}: --finalize takes the array job id as the parameter `group`"
    );
    let params = finalize.at("parameters");
    for word in &fin_cmd {
        if let Some(name) = word.strip_prefix("Ref::") {
            params.get(name);
        }
    }
    submit_finalize
        .at("jobDefinition")
        .expect(finalize.at("jobDefinitionName").str());
    submit_finalize.at("parameters.group");
    // Batch fails a job whose dependency failed without running it, and a
    // shard that fails is exactly when the finalizer must run: it is
    // submitted beside the array instead, and outwaits every attempt.
    assert!(
        submit_finalize.node().opt("dependsOn").is_none(),
        "{SUBMIT_FINALIZE}: dependsOn would cancel the finalizer whenever a shard fails"
    );
    let wait = flag(FINALIZE_DEF, &fin_cmd, "--wait");
    let wait = wait
        .strip_prefix("Ref::")
        .map_or(wait, |p| params.get(p).str());
    let wait = duration(FINALIZE_DEF, "--wait", wait);
    assert!(
        wait.as_secs() >= attempts_total,
        "{FINALIZE_DEF}: --wait {wait:?} is shorter than the shards' attempts \
         ({SHARD_DEF}: timeout.attemptDurationSeconds x retryStrategy.attempts = {attempts_total} s)"
    );
    assert!(
        finalize.at("timeout.attemptDurationSeconds").u64() > wait.as_secs(),
        "{FINALIZE_DEF}: timeout.attemptDurationSeconds must outlast --wait"
    );
}
