//! Running restore tools: client programs found on PATH, fed through
//! their stdin, each in its own process group, killed together on the
//! first failure or at the deadline; their stderr tails are the evidence.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Tool stderr kept as evidence: the last bytes, where the error is.
const STDERR_TAIL: usize = 4096;
/// Where root's cron PATH may lack what the server packages install.
const SBIN: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{} not found on PATH", .names.join(" / "))]
    NotFound { names: Vec<String> },
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: io::Error,
    },
}

/// An executable on PATH (or in the usual sbin dirs).
pub fn which(name: &str) -> Option<PathBuf> {
    which_in(name, &std::env::var_os("PATH").unwrap_or_default())
}

/// `which` over a PATH-style list: a file without the exec bit is skipped.
fn which_in(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path)
        .chain(SBIN.map(PathBuf::from))
        .collect();
    let dirs: OsString = std::env::join_paths(dirs).ok()?;
    which::which_in_global(name, Some(dirs)).ok()?.next()
}

/// The first of `names` found; a missing tool names every alternative.
pub fn which_any(names: &[&str]) -> Result<PathBuf, ToolError> {
    names
        .iter()
        .find_map(|n| which(n))
        .ok_or_else(|| ToolError::NotFound {
            names: names.iter().map(|n| n.to_string()).collect(),
        })
}

/// A client command with nothing of our environment but what a client
/// needs: credentials go in by the caller, never on the command line.
pub fn client_command(program: &std::path::Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    for var in ["PATH", "LANG", "LC_ALL", "TZ"] {
        if let Some(v) = std::env::var_os(var) {
            c.env(var, v);
        }
    }
    c
}

/// The last few KiB of a tool's output, as text.
pub fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// The line a human wants from a tool's stderr: the first error.
pub fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message")
        .trim()
        .chars()
        .take(300)
        .collect()
}

/// How a restore tool (or a set of parallel ones) ended.
#[derive(Debug, Default)]
pub struct ToolRun {
    pub tool: String,
    pub ok: bool,
    pub status: String,
    /// Tail of stderr of the tool that failed (or of all, if none did).
    pub stderr: String,
    pub timed_out: bool,
    /// Reading or decoding the dump failed (the tool saw a cut stream).
    pub input_error: Option<String>,
    /// The feeder refused a statement backproof's sandbox does not run:
    /// about the sandbox, not the backup.
    pub refused: Option<String>,
    /// Backproof's own setup failed while feeding ([`Setup`]).
    pub setup_error: Option<String>,
}

/// A statement of the dump that backproof's sandbox will not run (a psql
/// meta-command that reaches the client's files or shell). Feeders return
/// it inside an `io::Error`, so that it is told apart from a cut stream.
#[derive(Debug, thiserror::Error)]
#[error("backproof's sandbox refuses {statement}")]
pub struct Refused {
    pub statement: String,
}

/// Backproof's own setup failed mid-restore (creating a scratch database
/// for a full-server dump): no verdict on the backup either.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Setup(pub String);

impl Setup {
    pub fn io(message: impl Into<String>) -> io::Error {
        io::Error::other(Setup(message.into()))
    }
}

impl Refused {
    pub fn io(statement: impl Into<String>) -> io::Error {
        io::Error::other(Refused {
            statement: statement.into(),
        })
    }
}

/// Runs `cmds` (each in its own process group) with their stdin fed by
/// `feed`, which also sees which tools have exited (to order work). Kills
/// every tool when one fails, the feeder fails or the deadline passes.
pub fn run_tools<F>(
    tool: &str,
    cmds: Vec<Command>,
    feed: F,
    deadline: Instant,
) -> Result<ToolRun, ToolError>
where
    F: FnOnce(Vec<ChildStdin>, &[AtomicBool]) -> io::Result<()> + Send,
{
    let mut children: Vec<Child> = Vec::new();
    let kill_all = |children: &mut Vec<Child>| {
        for c in children.iter() {
            if let Some(p) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
            }
        }
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    for mut c in cmds {
        c.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match c.spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                kill_all(&mut children);
                return Err(ToolError::Spawn {
                    tool: tool.to_string(),
                    source: e,
                });
            }
        }
    }
    let n = children.len();
    let exited: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let stdins: Vec<ChildStdin> = children.iter_mut().filter_map(|c| c.stdin.take()).collect();
    let stderrs: Vec<_> = children
        .iter_mut()
        .filter_map(|c| c.stderr.take())
        .collect();
    let mut run = ToolRun {
        tool: tool.to_string(),
        ok: true,
        status: "exit status: 0".into(),
        ..Default::default()
    };
    thread::scope(|s| {
        let tails: Vec<_> = stderrs
            .into_iter()
            .map(|mut e| {
                s.spawn(move || {
                    let mut keep: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 8192];
                    while let Ok(k) = e.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        keep.extend_from_slice(&buf[..k]);
                        if keep.len() > 4 * STDERR_TAIL {
                            keep.drain(..keep.len() - STDERR_TAIL);
                        }
                    }
                    tail(&keep)
                })
            })
            .collect();
        let exited = &exited[..];
        let mut feeder = Some(s.spawn(move || feed(stdins, exited)));
        let feeder_done = |f: &Option<thread::ScopedJoinHandle<'_, io::Result<()>>>| {
            f.as_ref().is_none_or(|h| h.is_finished())
        };
        let mut statuses: Vec<Option<std::process::ExitStatus>> = vec![None; n];
        let mut failed: Option<usize> = None;
        // Notes the tools that exited; true once one failed or all are done.
        let reap = |children: &mut Vec<std::process::Child>,
                    statuses: &mut Vec<Option<std::process::ExitStatus>>,
                    failed: &mut Option<usize>| {
            for (i, c) in children.iter_mut().enumerate() {
                if statuses[i].is_none()
                    && let Ok(Some(st)) = c.try_wait()
                {
                    statuses[i] = Some(st);
                    exited[i].store(true, Ordering::SeqCst);
                    if !st.success() && failed.is_none() {
                        *failed = Some(i);
                    }
                }
            }
            failed.is_some() || statuses.iter().all(|s| s.is_some())
        };
        loop {
            if reap(&mut children, &mut statuses, &mut failed) {
                break;
            }
            if feeder_done(&feeder) {
                // End of input: a clean one lets the tools finish on their
                // own; a broken one must not be mistaken for a short dump.
                break;
            }
            if Instant::now() >= deadline {
                run.timed_out = true;
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Wait for the tools after a clean end of input, else kill them.
        let feed_result = if feeder_done(&feeder) {
            feeder.take().map(|h| h.join())
        } else {
            None
        };
        let input_failed =
            matches!(&feed_result, Some(Ok(Err(e))) if e.kind() != io::ErrorKind::BrokenPipe);
        if let Some(Ok(Err(e))) = &feed_result
            && input_failed
        {
            let inner = e.get_ref();
            if let Some(r) = inner.and_then(|i| i.downcast_ref::<Refused>()) {
                run.refused = Some(r.statement.clone());
            } else if let Some(s) = inner.and_then(|i| i.downcast_ref::<Setup>()) {
                run.setup_error = Some(s.0.clone());
            } else {
                run.input_error = Some(e.to_string());
            }
        }
        if failed.is_none() && !run.timed_out && !input_failed {
            // Input done: wait for the remaining tools up to the deadline.
            loop {
                if reap(&mut children, &mut statuses, &mut failed) {
                    break;
                }
                if Instant::now() >= deadline {
                    run.timed_out = true;
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        kill_all(&mut children);
        if let Some(h) = feeder.take() {
            // The pipes are closed now, so the feeder returns promptly.
            let _ = h.join();
        }
        let tails: Vec<String> = tails
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect();
        if let Some(i) = failed {
            run.ok = false;
            run.status = statuses[i].map(|s| s.to_string()).unwrap_or_default();
            run.stderr = tails[i].clone();
        } else {
            run.ok = !run.timed_out
                && run.input_error.is_none()
                && run.refused.is_none()
                && run.setup_error.is_none();
            run.stderr = tails
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
        }
    });
    Ok(run)
}

/// How a short client command ended, with its output (a snapshot
/// engine's queries: the caller parses stdout and never logs it, since it
/// may carry secrets read back from a restored store).
#[derive(Debug)]
pub struct Captured {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    /// The tail of stderr, as text.
    pub stderr: String,
    pub timed_out: bool,
}

impl Captured {
    pub fn ok(&self) -> bool {
        self.status.success() && !self.timed_out
    }
}

/// Runs one client command to its end (or kills its process group at the
/// deadline), with `stdin` written to it (secrets go this way, never on
/// the command line) and its stdout and stderr captured.
pub fn run_captured(
    tool: &str,
    mut cmd: Command,
    stdin: Option<&[u8]>,
    deadline: Instant,
) -> Result<Captured, ToolError> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        tool: tool.to_string(),
        source,
    })?;
    let input = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    thread::scope(|s| {
        if let (Some(mut w), Some(bytes)) = (input, stdin) {
            s.spawn(move || {
                let _ = w.write_all(bytes);
            });
        }
        let so = s.spawn(move || {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut v);
            }
            v
        });
        let se = s.spawn(move || {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v);
            }
            v
        });
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Ok(st),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    if let Some(p) = rustix::process::Pid::from_raw(child.id() as i32) {
                        let _ =
                            rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                    }
                    let _ = child.kill();
                    break child.wait();
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(e),
            }
        };
        let stdout = so.join().unwrap_or_default();
        let stderr = tail(&se.join().unwrap_or_default());
        let status = status.map_err(|source| ToolError::Spawn {
            tool: tool.to_string(),
            source,
        })?;
        Ok(Captured {
            status,
            stdout,
            stderr,
            timed_out,
        })
    })
}

/// Copies `input` into one tool's stdin.
pub fn copy_into(mut input: impl Read, mut out: ChildStdin) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..k]).map_err(broken_pipe)?;
    }
    Ok(())
}

/// A write error towards a tool means the tool stopped reading: its exit
/// status and stderr are the evidence, not this error.
pub fn broken_pipe(e: io::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn which_wants_the_exec_bit() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plain = a.path().join("bp-tool");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let exec = b.path().join("bp-tool");
        std::fs::write(&exec, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(which_in("bp-tool", &path), Some(exec));
        let only_plain = std::env::join_paths([a.path()]).unwrap();
        assert_eq!(which_in("bp-tool", &only_plain), None);
    }

    #[test]
    fn the_first_error_line_is_the_summary() {
        let stderr = "psql:<stdin>:3: NOTICE: x\npsql:<stdin>:4: ERROR:  boom\nmore";
        assert_eq!(first_error(stderr), "psql:<stdin>:4: ERROR:  boom");
        assert_eq!(first_error(""), "no message");
    }
}
