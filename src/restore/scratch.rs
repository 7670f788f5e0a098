//! Scratch machinery that knows no engine: uniquely named temp dirs and
//! databases, the server process of an ephemeral instance (its user, its
//! process group, its stop), and the sweep of a crashed run's leftovers
//! ([`crate::interrupt`] removes whatever is alive on a signal). Engines
//! ([`super::engine::EngineKind`]) say what to run in it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustix::process::Signal;

use super::tools::tail;

/// Temp dirs of ephemeral instances: `backproof-scratch-<pid>-<random>`, so
/// that a later run can tell a dead run's leftovers from a live one's.
pub const DIR_PREFIX: &str = "backproof-scratch-";
/// Databases (and their roles/users) on any scratch server:
/// `backproof_scratch_<pid>_<host>_<expires>_<random>` (see [`ScratchName`]).
pub const DB_PREFIX: &str = "backproof_scratch_";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The server's pid, written by us (not the server) into its dir, so that a
/// sweep can stop the server of any engine.
const PID_FILE: &str = "server.pid";
/// The server's stdout and stderr.
pub const LOG_FILE: &str = "server.log";

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("the kernel gave no random bytes: {0}")]
    Random(#[source] getrandom::Error),
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "running as root, but there is no system user {user:?} to run the scratch server as (it comes with the server package)"
    )]
    NoSystemUser {
        user: String,
        #[source]
        lookup: Option<nix::Error>,
    },
    #[error("cannot run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} failed ({status}): {output}")]
    Setup {
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("the scratch {server} server exited during start-up ({status}): {log}")]
    Exited {
        server: &'static str,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error(
        "the scratch {server} server did not accept connections within {seconds}s: {cause}; {log}"
    )]
    NotReady {
        server: &'static str,
        seconds: u64,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
        log: String,
    },
}

/// Eight random hex digits from the kernel; no randomness is an error,
/// never a predictable name or password.
pub fn random_suffix() -> Result<String, ScratchError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(ScratchError::Random)?;
    Ok(hex::encode(b))
}

/// A password for a scratch login: 128 random bits, hex.
pub fn password() -> Result<String, ScratchError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(ScratchError::Random)?;
    Ok(hex::encode(b))
}

/// A name for a new scratch database (and its login), unique across runs,
/// processes and hosts, that may be swept once `valid_for` has passed
/// whether or not its run still seems alive. Also returns that instant.
pub fn database_name(valid_for: Duration) -> Result<(String, DateTime<Utc>), ScratchError> {
    let expires =
        Utc::now() + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::days(7));
    let name = format!(
        "{DB_PREFIX}{}_{}_{}_{}",
        std::process::id(),
        host_tag(),
        expires.timestamp(),
        random_suffix()?
    );
    Ok((name, expires))
}

/// What a scratch name says of the run that made it.
#[derive(Debug, PartialEq, Eq)]
pub struct ScratchName {
    pub pid: u32,
    /// `None` in names made before hosts and expiries were recorded.
    pub host: Option<String>,
    pub expires: Option<i64>,
}

impl ScratchName {
    pub fn parse(name: &str) -> Option<ScratchName> {
        let parts: Vec<&str> = name.strip_prefix(DB_PREFIX)?.split('_').collect();
        let pid = parts.first()?.parse().ok()?;
        Some(match parts[..] {
            // `<pid>_<host>_<expires>_<random>`, and a full-server dump's
            // child databases, `..._<n>`.
            [_, host, expires, _, ..] if host.len() == HOST_TAG_LEN => ScratchName {
                pid,
                host: Some(host.to_string()),
                expires: Some(expires.parse().ok()?),
            },
            _ => ScratchName {
                pid,
                host: None,
                expires: None,
            },
        })
    }
}

const HOST_TAG_LEN: usize = 6;

/// Six hex digits of the host name's SHA-256: a pid means something only on
/// the host that ran it (a scratch server may serve several hosts).
/// Read once: a sweep asks for every name it lists.
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::Digest;
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        hex::encode(sha2::Sha256::digest(host.trim().as_bytes()))[..HOST_TAG_LEN].to_string()
    })
}

/// `n` distinct TCP ports on 127.0.0.1 that nothing listens on right now
/// (the kernel picks them; all are held until all are picked), for a
/// scratch server of a networked engine.
pub fn free_ports(n: usize) -> Result<Vec<u16>, ScratchError> {
    let io = |source| ScratchError::Io {
        what: "bind a free port on",
        path: PathBuf::from("127.0.0.1"),
        source,
    };
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io)?;
        ports.push(l.local_addr().map_err(io)?.port());
        held.push(l);
    }
    Ok(ports)
}

/// True while a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid embedded in a scratch name (`<prefix><pid>[-_]...`).
pub fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    rest.split(['-', '_']).next()?.parse().ok()
}

/// True for a scratch database (or login) a sweep may drop: past its
/// expiry, or made on this host by a backproof process that is gone. Of
/// another host's run only the expiry can tell: its pid means nothing here.
pub fn left_by_dead_run(name: &str) -> bool {
    let Some(n) = ScratchName::parse(name) else {
        return false;
    };
    if n.pid == std::process::id() && n.host.as_deref().is_none_or(|h| h == host_tag()) {
        return false;
    }
    if n.expires.is_some_and(|e| e < Utc::now().timestamp()) {
        return true;
    }
    n.host.as_deref().is_none_or(|h| h == host_tag()) && !pid_alive(n.pid)
}

// ---------------------------------------------------------------------------
// Unprivileged execution
// ---------------------------------------------------------------------------

/// Who a server runs as: servers refuse to run as root, so as root they run
/// as the system user their package creates; otherwise as ourselves.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub ids: Option<(u32, u32)>,
}

impl RunAs {
    /// Through NSS (`getpwnam_r`), so LDAP and sssd users count too.
    pub fn for_user(user: &str) -> Result<RunAs, ScratchError> {
        if !rustix::process::geteuid().is_root() {
            return Ok(RunAs { ids: None });
        }
        let missing = |lookup| ScratchError::NoSystemUser {
            user: user.to_string(),
            lookup,
        };
        match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => Ok(RunAs {
                ids: Some((u.uid.as_raw(), u.gid.as_raw())),
            }),
            Ok(None) => Err(missing(None)),
            Err(e) => Err(missing(Some(e))),
        }
    }

    /// A command that runs as this user, in its own process group (so that
    /// a kill reaches every child), and dies with us: the parent-death
    /// signal is set after the uid change, which would otherwise clear it.
    pub fn command(&self, program: &Path, death_signal: Signal) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            c.uid(uid).gid(gid);
        }
        c.process_group(0);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(death_signal))
                    .map_err(std::io::Error::from)
            });
        }
        c
    }

    pub fn chown(&self, path: &Path) -> Result<(), ScratchError> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| {
                ScratchError::Io {
                    what: "chown",
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        }
        Ok(())
    }
}

/// Runs a short setup command (initdb, mariadb-install-db) to completion,
/// returning its output on failure.
pub fn run_setup(mut c: Command, what: &str) -> Result<(), ScratchError> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ScratchError::Spawn {
            what: what.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(ScratchError::Setup {
            what: what.to_string(),
            status: out.status,
            output: tail(text.as_bytes()),
        })
    }
}

// ---------------------------------------------------------------------------
// Ephemeral instances
// ---------------------------------------------------------------------------

/// The dir and server process of a throwaway instance; stopped and removed
/// by [`Instance::stop`] or, as a backstop, on drop. The engine fills the
/// dir (initdb, …) and hands over the server command.
pub struct Instance {
    /// The engine's name, for messages.
    server: &'static str,
    dir: PathBuf,
    run_as: RunAs,
    /// What stops this server at once (nothing in it is worth flushing).
    stop_signal: Signal,
    child: Option<Child>,
    token: u64,
}

impl Instance {
    /// A new private dir owned by the server's user, removed again on
    /// interrupt from now on.
    pub fn new(
        server: &'static str,
        run_as: RunAs,
        stop_signal: Signal,
    ) -> Result<Instance, ScratchError> {
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            random_suffix()?
        ));
        let io = |what, source| ScratchError::Io {
            what,
            path: dir.clone(),
            source,
        };
        fs::create_dir(&dir).map_err(|e| io("create", e))?;
        let mut inst = Instance {
            server,
            dir: dir.clone(),
            run_as,
            stop_signal,
            child: None,
            token: 0,
        };
        inst.register();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| io("chmod", e))?;
        run_as.chown(&dir)?;
        Ok(inst)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the server: stdout and stderr go to [`LOG_FILE`] (appended,
    /// so a server that also writes its own log there may), its pid to the
    /// dir for a later sweep. The command must name the dir in its
    /// arguments: that is how a sweep tells it from a recycled pid.
    pub fn spawn(&mut self, mut cmd: Command) -> Result<(), ScratchError> {
        let path = self.dir.join(LOG_FILE);
        let io = |what, source| ScratchError::Io {
            what,
            path: path.clone(),
            source,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("create", e))?;
        self.run_as.chown(&path)?;
        let err = log.try_clone().map_err(|e| io("open", e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let name = program.rsplit('/').next().unwrap_or(&program).to_string();
        let child = cmd
            .spawn()
            .map_err(|source| ScratchError::Start { what: name, source })?;
        let pid_path = self.dir.join(PID_FILE);
        let written = fs::write(&pid_path, format!("{}\n", child.id()));
        self.child = Some(child);
        self.register();
        written.map_err(|source| ScratchError::Io {
            what: "write",
            path: pid_path,
            source,
        })
    }

    /// Until `ping` succeeds, the server exits, or the start timeout.
    pub fn wait_ready<E>(&mut self, ping: impl Fn() -> Result<(), E>) -> Result<(), ScratchError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.wait_ready_until(Instant::now() + START_TIMEOUT, ping)
    }

    /// [`Instance::wait_ready`] with a deadline of the caller's: a server
    /// that replays WAL before it accepts connections may take longer.
    pub fn wait_ready_until<E>(
        &mut self,
        until: Instant,
        ping: impl Fn() -> Result<(), E>,
    ) -> Result<(), ScratchError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(ScratchError::Exited {
                    server: self.server,
                    status,
                    log: self.server_log(),
                });
            }
            match ping() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > until => {
                    return Err(ScratchError::NotReady {
                        server: self.server,
                        seconds: started.elapsed().as_secs(),
                        cause: Box::new(e),
                        log: self.server_log(),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn server_log(&self) -> String {
        tail(&fs::read(self.dir.join(LOG_FILE)).unwrap_or_default())
    }

    /// Registers the removal with the interrupt handler.
    fn register(&mut self) {
        let dir = self.dir.clone();
        let pid = self.child.as_ref().map(|c| c.id());
        crate::interrupt::done(self.token);
        self.token = crate::interrupt::on_interrupt(Box::new(move || {
            kill_leftover(&dir);
            if let Some(pid) = pid {
                kill_group(pid, Signal::KILL);
            }
            let _ = fs::remove_dir_all(&dir);
        }));
    }

    /// Stops the server (its whole process group) and removes the dir.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id(), self.stop_signal);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(child.id(), Signal::KILL);
            let _ = child.wait();
        }
        // Backends that outlived the server's main process (they exit on
        // their own when it dies, but not instantly) would keep files open.
        kill_leftover(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
        crate::interrupt::done(self.token);
        self.token = 0;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_group(pid: u32, signal: Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(p, signal);
        let _ = rustix::process::kill_process(p, signal);
    }
}

/// Kills the server recorded in a scratch dir, if it still runs from that
/// dir (a recycled pid belongs to someone else).
fn kill_leftover(dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join(PID_FILE)) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = dir.to_string_lossy();
    if String::from_utf8_lossy(&cmdline).contains(needle.as_ref()) {
        kill_group(pid, Signal::KILL);
        let until = Instant::now() + Duration::from_secs(5);
        while pid_alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Removes the temp dirs (and kills the servers) of ephemeral instances
/// whose backproof process is gone. Returns what was swept, for the log.
pub fn sweep_dirs() -> Vec<String> {
    let mut swept = Vec::new();
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return swept;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name, DIR_PREFIX) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let dir = e.path();
        kill_leftover(&dir);
        if fs::remove_dir_all(&dir).is_ok() {
            swept.push(dir.display().to_string());
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_random_and_carry_the_pid() {
        let hour = Duration::from_secs(3600);
        let ((a, expires), (b, _)) = (database_name(hour).unwrap(), database_name(hour).unwrap());
        assert_ne!(a, b);
        assert!(
            a.len() <= 60,
            "{a}: MariaDB names stop at 64 (children add _<n>)"
        );
        let parsed = ScratchName::parse(&a).unwrap();
        assert_eq!(parsed.pid, std::process::id());
        assert_eq!(parsed.host.as_deref(), Some(host_tag()));
        assert_eq!(parsed.expires, Some(expires.timestamp()));
        let delta = expires - Utc::now() - chrono::Duration::hours(1);
        assert!(delta.num_seconds().abs() < 60, "{expires}");
        // A child database of a full-server dump parses as its parent.
        assert_eq!(ScratchName::parse(&format!("{a}_3")), Some(parsed));
        assert!(!left_by_dead_run(&a), "our own");
        assert!(left_by_dead_run("backproof_scratch_999999999_deadbeef"));
        assert!(!left_by_dead_run("someone_elses_db"));
        let here = host_tag();
        let future = Utc::now().timestamp() + 3600;
        let past = Utc::now().timestamp() - 1;
        // pid 1 is alive on every host: only its expiry frees its login.
        assert!(!left_by_dead_run(&format!(
            "backproof_scratch_1_{here}_{future}_ab12cd34"
        )));
        assert!(left_by_dead_run(&format!(
            "backproof_scratch_1_{here}_{past}_ab12cd34"
        )));
        // Another host's run: its pid means nothing here, only its expiry.
        let dead = 999_999_999;
        assert!(!left_by_dead_run(&format!(
            "backproof_scratch_{dead}_0a0b0c_{future}_ab12cd34"
        )));
        assert!(left_by_dead_run(&format!(
            "backproof_scratch_{dead}_0a0b0c_{past}_ab12cd34"
        )));
        assert!(left_by_dead_run(&format!(
            "backproof_scratch_{dead}_{here}_{future}_ab12cd34"
        )));
        let p = password().unwrap();
        assert_eq!(p.len(), 32);
        assert_ne!(p, password().unwrap());
        assert_eq!(owner_pid("backproof-scratch-42-ab12", DIR_PREFIX), Some(42));
    }

    #[test]
    fn a_server_user_is_looked_up_through_nss() {
        if !rustix::process::geteuid().is_root() {
            assert!(RunAs::for_user("no-such-user").unwrap().ids.is_none());
            return;
        }
        assert_eq!(RunAs::for_user("root").unwrap().ids, Some((0, 0)));
        let e = RunAs::for_user("bp-no-such-user").unwrap_err();
        assert!(
            e.to_string().contains("no system user \"bp-no-such-user\""),
            "{e}"
        );
    }
}
