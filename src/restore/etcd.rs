//! etcd snapshots, restored the way an operator would: `etcdutl snapshot
//! restore` (or etcd 3.4's `etcdctl snapshot restore`, which checks the
//! snapshot's SHA-256 trailer) into a scratch data dir, a one-member etcd
//! started on it on 127.0.0.1 (free ports, never 2379), and the restored
//! member asked for its revision and its keys (names only: values are
//! never read).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use rustix::process::Signal;
use serde_json::Value;

use crate::inspect::{Decoded, Format};

use super::engine::{EngineError, Restored, SnapshotCheck, SnapshotEngine, SnapshotSpec};
use super::facts::SnapshotFacts;
use super::input::{self, Input};
use super::scratch::{self, Instance, RunAs};
use super::tools::{self, ToolError, ToolRun, run_tools};

pub struct Etcd;

/// The member's name in the scratch cluster.
const MEMBER: &str = "backproof";

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{0}; install etcd-server and etcd-client")]
    NoTools(#[source] ToolError),
    #[error("etcdctl {what} failed: {detail}")]
    Query { what: &'static str, detail: String },
    #[error("etcdctl {what} wrote no JSON backproof can read: {detail}")]
    Answer { what: &'static str, detail: String },
}

impl From<EtcdError> for EngineError {
    fn from(e: EtcdError) -> Self {
        EngineError::engine(e)
    }
}

/// Who runs the scratch member: as root, the `etcd` user of Debian's
/// package, else `nobody`; otherwise ourselves.
fn run_as() -> Result<RunAs, EngineError> {
    Ok(RunAs::for_user("etcd").or_else(|_| RunAs::for_user("nobody"))?)
}

/// A client command with nothing of our environment but what it needs.
fn etcdctl(program: &Path, endpoint: &str) -> Command {
    let mut c = tools::client_command(program);
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=2s");
    c
}

fn query(
    program: &Path,
    endpoint: &str,
    what: &'static str,
    args: &[&str],
    deadline: Instant,
) -> Result<Value, EngineError> {
    let mut c = etcdctl(program, endpoint);
    c.args(args).arg("--write-out=json");
    let out = tools::run_captured("etcdctl", c, None, deadline)?;
    if !out.ok() {
        return Err(EtcdError::Query {
            what,
            detail: if out.timed_out {
                "over the restore's timeout".into()
            } else {
                tools::first_error(&out.stderr)
            },
        }
        .into());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        EtcdError::Answer {
            what,
            detail: e.to_string(),
        }
        .into()
    })
}

struct Tools {
    restore: (PathBuf, &'static str),
    etcdctl: PathBuf,
    etcd: PathBuf,
}

fn tools() -> Result<Tools, EngineError> {
    let found = |n: &str| tools::which_any(&[n]).map_err(EtcdError::NoTools);
    let etcdctl = found("etcdctl")?;
    // etcdutl (etcd 3.5+) is the restore tool; etcd 3.4 has only etcdctl's.
    let restore = match tools::which("etcdutl") {
        Some(p) => (p, "etcdutl snapshot restore"),
        None => (etcdctl.clone(), "etcdctl snapshot restore"),
    };
    Ok(Tools {
        restore,
        etcd: found("etcd")?,
        etcdctl,
    })
}

impl SnapshotEngine for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::EtcdSnapshot]
    }

    fn preflight(&self, _spec: &SnapshotSpec) -> Result<(), EngineError> {
        tools().map(drop)
    }

    fn restore(
        &self,
        input: Input<'_>,
        _spec: &SnapshotSpec,
        deadline: Instant,
    ) -> Result<Restored, EngineError> {
        let t = tools()?;
        let run_as = run_as()?;
        let mut instance = Instance::new(self.name(), run_as, Signal::KILL)?;
        let dir = instance.dir().to_path_buf();
        let ports = scratch::free_ports(2)?;
        let endpoint = format!("http://127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let cluster = format!("{MEMBER}={peer}");
        let snapshot = dir.join("snapshot.db");
        if let Some(e) = input::save(input, &snapshot, run_as)? {
            let run = ToolRun {
                tool: t.restore.1.into(),
                input_error: Some(e),
                ..ToolRun::default()
            };
            return Ok(Restored {
                instance,
                run,
                endpoint,
            });
        }
        let data = dir.join("data");
        let mut r = run_as.command(&t.restore.0, Signal::KILL);
        r.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ETCDCTL_API", "3")
            .arg("snapshot")
            .arg("restore")
            .arg(&snapshot)
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--name={MEMBER}"))
            .arg(format!("--initial-cluster={cluster}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg("--initial-cluster-token=backproof-scratch");
        let mut run = run_tools(t.restore.1, vec![r], |_stdins, _| Ok(()), deadline)?;
        if !run.ok {
            // etcdctl logs JSON lines, then says why on an `Error:` line:
            // that line first, so the finding says it.
            if let Some(line) = run.stderr.lines().find(|l| l.starts_with("Error")) {
                let why = line.trim().trim_start_matches("Error:").trim();
                run.stderr = format!("ERROR: {why}\n{}", run.stderr);
            }
            return Ok(Restored {
                instance,
                run,
                endpoint,
            });
        }
        let mut server = run_as.command(&t.etcd, Signal::KILL);
        server
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg(format!("--name={MEMBER}"))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={cluster}"));
        instance.spawn(server)?;
        let ctl = t.etcdctl.clone();
        let ep = endpoint.clone();
        let ready = instance.wait_ready(move || {
            let mut c = etcdctl(&ctl, &ep);
            c.args(["endpoint", "health"]);
            let out = tools::run_captured("etcdctl", c, None, deadline)?;
            if out.ok() {
                Ok(())
            } else {
                Err(ToolError::Spawn {
                    tool: "etcdctl endpoint health".into(),
                    source: io::Error::other(tools::first_error(&out.stderr)),
                })
            }
        });
        let run = match ready {
            // Its stderr is etcd's info log: no evidence of anything.
            Ok(()) => ToolRun {
                tool: format!("{}, etcd", t.restore.1),
                stderr: String::new(),
                ..run
            },
            // The member will not run on what the snapshot restored to:
            // that is the snapshot's verdict.
            Err(e) => ToolRun {
                tool: "etcd".into(),
                ok: false,
                status: "did not start on the restored data".into(),
                stderr: e.to_string(),
                ..ToolRun::default()
            },
        };
        Ok(Restored {
            instance,
            run,
            endpoint,
        })
    }

    fn check(
        &self,
        restored: &Restored,
        spec: &SnapshotSpec,
        expected: Option<&Decoded>,
        deadline: Instant,
    ) -> Result<SnapshotCheck, EngineError> {
        let t = tools()?;
        let ep = &restored.endpoint;
        let status = query(
            &t.etcdctl,
            ep,
            "endpoint status",
            &["endpoint", "status"],
            deadline,
        )?;
        let status = status.get(0).and_then(|s| s.get("Status"));
        let revision = status
            .and_then(|s| s.pointer("/header/revision"))
            .and_then(Value::as_u64);
        let version = status
            .and_then(|s| s.get("version"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let listing = query(
            &t.etcdctl,
            ep,
            "get --prefix --keys-only",
            &["get", "", "--prefix", "--keys-only"],
            deadline,
        )?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let keys: Vec<Vec<u8>> = listing
            .get("kvs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.get("key")?.as_str())
            .filter_map(|k| b64.decode(k).ok())
            .collect();
        let count = listing
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(keys.len() as u64);
        let mut problems = Vec::new();
        let mut prefixes = BTreeMap::new();
        for p in &spec.required_prefixes {
            let n = keys.iter().filter(|k| k.starts_with(p.as_bytes())).count() as u64;
            if n == 0 {
                problems.push(format!("no key under the required prefix {p}"));
            }
            prefixes.insert(p.clone(), n);
        }
        if let Some(min) = spec.min_keys
            && count < min
        {
            problems.push(format!("{count} key(s), fewer than min_keys {min}"));
        }
        let snapshot_revision = match expected {
            Some(Decoded::Etcd(f)) => f.revision,
            _ => None,
        };
        if let (Some(want), Some(got)) = (snapshot_revision, revision)
            && want != got
        {
            problems.push(format!(
                "the restored member is at revision {got}, the snapshot at {want}"
            ));
        }
        let holds = format!(
            "{count} key(s) at revision {}{}",
            revision.map_or("?".to_string(), |r| r.to_string()),
            if snapshot_revision.is_some() && snapshot_revision == revision {
                " (the snapshot's)"
            } else {
                ""
            }
        );
        Ok(SnapshotCheck {
            facts: SnapshotFacts {
                keys: Some(count),
                revision,
                snapshot_revision,
                prefixes: (!prefixes.is_empty()).then_some(prefixes),
                server_version: version,
                ..SnapshotFacts::default()
            },
            problems,
            holds,
        })
    }
}
