//! Scratch targets: throwaway server instances that backproof starts in a
//! temporary directory, or a configured server reached by URL. Either way
//! every database backproof creates is its own, uniquely named, and removed
//! afterwards; a crashed run's leftovers are swept by the next one.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Engine;

/// Temp dirs of ephemeral instances: `backproof-scratch-<pid>-<random>`, so
/// that a later run can tell a dead run's leftovers from a live one's.
pub const DIR_PREFIX: &str = "backproof-scratch-";
/// Databases (and their roles/users) on any scratch server:
/// `backproof_scratch_<pid>_<random>`.
pub const DB_PREFIX: &str = "backproof_scratch_";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Eight random hex digits (from the kernel, no crate needed).
pub fn random_suffix() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    hex::encode(b)
}

/// A name for a new scratch database, unique across runs and processes.
pub fn database_name() -> String {
    format!("{DB_PREFIX}{}_{}", std::process::id(), random_suffix())
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

// ---------------------------------------------------------------------------
// Cleanup registry: what must go when the process is interrupted
// ---------------------------------------------------------------------------

type CleanupFn = Box<dyn FnOnce() + Send>;

/// Cleanups for everything currently alive (instances, databases on a URL
/// target), run by the SIGINT/SIGTERM handler. A std Mutex: the handler runs
/// on its own thread and nothing async happens while it is held.
static CLEANUPS: Mutex<Vec<(u64, CleanupFn)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static HANDLER: std::sync::Once = std::sync::Once::new();
/// Set once the interrupt handler runs: the normal teardown then leaves the
/// work to it instead of racing it.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Registers `f` to run if the process is interrupted; returns a token to
/// unregister it once the normal teardown has run.
pub fn on_interrupt(f: CleanupFn) -> u64 {
    HANDLER.call_once(|| {
        // If another handler is already installed (a host program), its
        // owner is responsible for shutdown; Drop guards still clean up.
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            let pending: Vec<_> = CLEANUPS
                .lock()
                .map(|mut c| c.drain(..).collect())
                .unwrap_or_default();
            for (_, f) in pending.into_iter().rev() {
                f();
            }
            eprintln!("backproof: interrupted; scratch instances and databases removed");
            std::process::exit(130);
        });
    });
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut c) = CLEANUPS.lock() {
        c.push((id, f));
    }
    id
}

pub fn done(token: u64) {
    if let Ok(mut c) = CLEANUPS.lock() {
        c.retain(|(id, _)| *id != token);
    }
}

// ---------------------------------------------------------------------------
// Unprivileged execution
// ---------------------------------------------------------------------------

/// uid and gid of a system user, from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Who a server runs as: servers refuse to run as root, so as root they run
/// as the system user their Debian package creates; otherwise as ourselves.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub ids: Option<(u32, u32)>,
}

impl RunAs {
    pub fn for_user(user: &str) -> Result<RunAs, String> {
        if !rustix::process::geteuid().is_root() {
            return Ok(RunAs { ids: None });
        }
        lookup_user(user).map(|ids| RunAs { ids: Some(ids) }).ok_or_else(|| {
            format!("running as root, but there is no system user {user:?} to run the scratch server as (it comes with the server package)")
        })
    }

    /// A command that runs as this user, in its own process group (so that
    /// a kill reaches every child), and dies with us: the parent-death
    /// signal is set after the uid change, which would otherwise clear it.
    pub fn command(&self, program: &Path, death_signal: rustix::process::Signal) -> Command {
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

    pub fn chown(&self, path: &Path) -> Result<(), String> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Runs a short setup command (initdb, mariadb-install-db) to completion,
/// returning its output on failure.
fn run_setup(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            super::tail(text.as_bytes())
        ))
    }
}

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

/// PostgreSQL server binaries: `pg_config --bindir`, else the newest
/// /usr/lib/postgresql/*/bin.
pub fn pg_bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&d) {
            return Some(d);
        }
    }
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// A program on PATH (or in the usual sbin dirs, which root's cron PATH may
/// lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The first of `names` found; a missing tool names every alternative.
pub fn which_any(names: &[&str]) -> Result<PathBuf, String> {
    names
        .iter()
        .find_map(|n| which(n))
        .ok_or_else(|| format!("{} not found on PATH", names.join(" / ")))
}

// ---------------------------------------------------------------------------
// Ephemeral instances
// ---------------------------------------------------------------------------

/// How to reach a scratch server as its administrator.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// An ephemeral instance: a unix socket, trust/socket auth as admin.
    Socket {
        /// PostgreSQL: the socket directory; MariaDB: the socket file.
        path: PathBuf,
        /// PostgreSQL only: the port that names the socket file.
        port: u16,
        admin: String,
    },
    /// A configured server: `postgres://` or `mysql://` URL with an
    /// administrative login that may create databases and roles.
    Url(String),
}

/// A running throwaway server; stopped and removed by [`Instance::stop`]
/// or, as a backstop, on drop.
pub struct Instance {
    pub engine: Engine,
    pub dir: PathBuf,
    pub endpoint: Endpoint,
    pub start_seconds: f64,
    child: Option<Child>,
    token: u64,
}

fn make_dir(run_as: &RunAs) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}-{}",
        std::process::id(),
        random_suffix()
    ));
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    run_as.chown(&dir)?;
    Ok(dir)
}

fn kill_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(p, signal);
        let _ = rustix::process::kill_process(p, signal);
    }
}

impl Instance {
    /// initdb + postgres on a unix socket in a new temp dir, tuned for
    /// loading (durability is pointless for a database about to be dropped).
    pub fn start_postgres() -> Result<Instance, String> {
        let bin = pg_bindir().ok_or(
            "PostgreSQL server binaries (initdb, postgres) not found: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has them; install the postgresql package or configure a scratch_url",
        )?;
        let run_as = RunAs::for_user("postgres")?;
        let started = Instant::now();
        let dir = make_dir(&run_as)?;
        let mut inst = Instance {
            engine: Engine::Postgres,
            dir: dir.clone(),
            endpoint: Endpoint::Socket {
                path: dir.clone(),
                port: 5432,
                admin: "postgres".into(),
            },
            start_seconds: 0.0,
            child: None,
            token: 0,
        };
        inst.register();
        let data = dir.join("data");
        let mut initdb = run_as.command(&bin.join("initdb"), rustix::process::Signal::KILL);
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .env("TZ", "UTC");
        run_setup(initdb, "initdb")?;
        let mut pg = run_as.command(&bin.join("postgres"), rustix::process::Signal::QUIT);
        pg.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-p", "5432"]);
        for setting in [
            "listen_addresses=",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "wal_level=minimal",
            "max_wal_senders=0",
            "maintenance_work_mem=256MB",
            "max_wal_size=4GB",
            "checkpoint_timeout=1h",
            "autovacuum=off",
        ] {
            pg.arg("-c").arg(setting);
        }
        let log = fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        run_as.chown(&dir.join("server.log"))?;
        pg.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        inst.child = Some(
            pg.spawn()
                .map_err(|e| format!("cannot start postgres: {e}"))?,
        );
        inst.register();
        let endpoint = inst.endpoint.clone();
        inst.wait_ready(|| super::postgres::ping(&endpoint))?;
        inst.start_seconds = started.elapsed().as_secs_f64();
        Ok(inst)
    }

    /// mariadb-install-db + mariadbd with its own datadir and socket, no
    /// networking, tuned for loading.
    pub fn start_mariadb() -> Result<Instance, String> {
        let install = which_any(&["mariadb-install-db", "mysql_install_db"]).map_err(|e| {
            format!("MariaDB server binaries missing: {e}; install mariadb-server or configure a scratch_url")
        })?;
        let server = which_any(&["mariadbd", "mysqld"]).map_err(|e| {
            format!("MariaDB server binaries missing: {e}; install mariadb-server or configure a scratch_url")
        })?;
        let run_as = RunAs::for_user("mysql")?;
        let started = Instant::now();
        let dir = make_dir(&run_as)?;
        let socket = dir.join("mysqld.sock");
        let mut inst = Instance {
            engine: Engine::MariaDb,
            dir: dir.clone(),
            endpoint: Endpoint::Socket {
                path: socket.clone(),
                port: 0,
                admin: "root".into(),
            },
            start_seconds: 0.0,
            child: None,
            token: 0,
        };
        inst.register();
        let data = dir.join("data");
        let mut c = run_as.command(&install, rustix::process::Signal::KILL);
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]);
        run_setup(c, "mariadb-install-db")?;
        let mut d = run_as.command(&server, rustix::process::Signal::KILL);
        d.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=256M",
                "--innodb-log-file-size=256M",
                "--max-allowed-packet=1G",
                "--skip-name-resolve",
                "--default-time-zone=+00:00",
            ]);
        d.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        inst.child = Some(
            d.spawn()
                .map_err(|e| format!("cannot start mariadbd: {e}"))?,
        );
        inst.register();
        let endpoint = inst.endpoint.clone();
        inst.wait_ready(|| super::mysql::ping(&endpoint))?;
        inst.start_seconds = started.elapsed().as_secs_f64();
        Ok(inst)
    }

    /// Until `ping` succeeds, the server exits, or the start timeout.
    fn wait_ready(&mut self, ping: impl Fn() -> Result<(), String>) -> Result<(), String> {
        let until = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "the scratch {} server exited during start-up ({status}): {}",
                    self.engine.name(),
                    self.server_log()
                ));
            }
            match ping() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > until => {
                    return Err(format!(
                        "the scratch {} server did not accept connections within {}s: {e}; {}",
                        self.engine.name(),
                        START_TIMEOUT.as_secs(),
                        self.server_log()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn server_log(&self) -> String {
        let log = ["server.log", "error.log"]
            .iter()
            .filter_map(|n| fs::read(self.dir.join(n)).ok())
            .next()
            .unwrap_or_default();
        super::tail(&log)
    }

    /// Registers the removal with the interrupt handler.
    fn register(&mut self) {
        let dir = self.dir.clone();
        let pid = self.child.as_ref().map(|c| c.id());
        done(self.token);
        self.token = on_interrupt(Box::new(move || {
            kill_leftover(&dir);
            if let Some(pid) = pid {
                kill_group(pid, rustix::process::Signal::KILL);
            }
            let _ = fs::remove_dir_all(&dir);
        }));
    }

    /// Stops the server (its whole process group) and removes the dir.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // PostgreSQL: SIGQUIT is an immediate shutdown; MariaDB has
            // nothing worth flushing either. Then make sure.
            let sig = match self.engine {
                Engine::Postgres => rustix::process::Signal::QUIT,
                Engine::MariaDb => rustix::process::Signal::KILL,
            };
            kill_group(child.id(), sig);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(child.id(), rustix::process::Signal::KILL);
            let _ = child.wait();
        }
        // Backends that outlived the postmaster (they exit on their own when
        // it dies, but not instantly) would keep files open; be sure.
        kill_leftover(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
        done(self.token);
        self.token = 0;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills the server recorded in a scratch dir's pid file, if it still runs
/// from that dir (a recycled pid belongs to someone else).
fn kill_leftover(dir: &Path) {
    for pidfile in ["data/postmaster.pid", "mysqld.pid"] {
        let Ok(text) = fs::read_to_string(dir.join(pidfile)) else {
            continue;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let needle = dir.to_string_lossy();
        if String::from_utf8_lossy(&cmdline).contains(needle.as_ref()) {
            kill_group(pid, rustix::process::Signal::KILL);
            let until = Instant::now() + Duration::from_secs(5);
            while pid_alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
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
