//! A throwaway PostgreSQL 15 server for a history a team shares.

use std::path::Path;

/// A throwaway PostgreSQL server on a unix socket, for the team history.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = Path::new("/usr/lib/postgresql/15/bin");
        let dir = tempfile::Builder::new()
            .prefix("backproof-history-pg")
            .tempdir()
            .unwrap();
        let root = rustix::process::geteuid().is_root();
        // The server refuses root: run it as the postgres system user.
        let as_server = |cmd: &Path| {
            let mut c = if root {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(cmd);
                c
            } else {
                std::process::Command::new(cmd)
            };
            c.stdout(std::process::Stdio::null());
            c
        };
        if root {
            std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let data = dir.path().join("data");
        let ok = as_server(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "backproof", "-D"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(ok.success(), "initdb");
        let ok = as_server(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-w", "-l"])
            .arg(dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off",
                dir.path().display()
            ))
            .arg("start")
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl start");
        let socket = dir.path().display().to_string().replace('/', "%2F");
        Postgres {
            url: format!("postgres://backproof:secret@{socket}/postgres"),
            dir,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "/usr/lib/postgresql/15/bin/pg_ctl",
                "-D",
            ])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}
