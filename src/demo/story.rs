//! What the demo tells at the end: which server binaries it found for the
//! test restores (one line on how to get the missing ones), and what failed
//! tonight and why, and where the HTML report of the week is.

use std::path::{Path, PathBuf};

use crate::finding::{Check, Finding, Status};
use crate::report::Report;

/// Set to `none` to run the demo as on a machine without database servers.
pub const SERVERS_ENV: &str = "BACKPROOF_DEMO_SERVERS";

/// The line saying how to get the servers.
pub const INSTALL_HINT: &str = "apt-get install postgresql mariadb-server";

/// Which scratch servers the restores can start: looked up as the restore
/// engines look them up (`pg_config --bindir` or /usr/lib/postgresql/*/bin
/// with initdb and postgres; mariadb-install-db and mariadbd on PATH or in
/// the sbin directories).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Servers {
    pub postgres: bool,
    pub mariadb: bool,
}

impl Servers {
    pub fn none() -> Servers {
        Servers::default()
    }

    pub fn find() -> Servers {
        if std::env::var(SERVERS_ENV).is_ok_and(|v| v == "none") {
            return Servers::none();
        }
        Servers {
            postgres: postgres_found(),
            mariadb: found_any(&["mariadb-install-db", "mysql_install_db"])
                && found_any(&["mariadbd", "mysqld"]),
        }
    }

    fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.postgres {
            m.push("PostgreSQL");
        }
        if !self.mariadb {
            m.push("MariaDB");
        }
        m
    }

    /// The one line on how to get what is missing, if anything is.
    pub fn hint(&self) -> Option<String> {
        let missing = self.missing();
        (!missing.is_empty()).then(|| {
            format!(
                "backproof demo: no {} server binaries on this machine, so those dumps were not test-restored; to see the restores: {INSTALL_HINT}",
                missing.join(" or ")
            )
        })
    }
}

fn postgres_found() -> bool {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && out.status.success()
        && has(Path::new(String::from_utf8_lossy(&out.stdout).trim()))
    {
        return true;
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().any(|e| has(&e.path().join("bin"))))
        .unwrap_or(false)
}

fn found_any(names: &[&str]) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    let Ok(dirs) = std::env::join_paths(dirs) else {
        return false;
    };
    names
        .iter()
        .any(|n| which::which_in_global(n, Some(&dirs)).is_ok_and(|mut i| i.next().is_some()))
}

/// One `error` finding per source whose dumps could not be restored here: a
/// check that could not run, never a pass.
pub fn missing_servers(servers: &Servers) -> Vec<Finding> {
    let mut out = Vec::new();
    for (source, found, what) in [
        ("postgres", servers.postgres, "PostgreSQL"),
        ("mysql", servers.mariadb, "MariaDB"),
    ] {
        if !found {
            out.push(
                Finding::new(
                    source,
                    Check::Restore,
                    Status::Error,
                    format!("not test-restored: no {what} server binaries on this machine"),
                )
                .remedy(format!(
                    "Install them ({INSTALL_HINT}) and run the demo again."
                )),
            );
        }
    }
    out
}

/// The last lines: tonight's restores, what failed and why, where the HTML is.
pub fn closing(report: &Report, servers: &Servers, html: Option<&Path>) -> Vec<String> {
    let short = |s: &str| -> String {
        Path::new(s)
            .file_name()
            .filter(|_| s.contains('/'))
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| s.to_string())
    };
    let mut lines = vec![format!(
        "backproof demo: seven nights of PostgreSQL and MariaDB dumps, a disk image and a tar audited; tonight: {} backups, {} pass, {} warn, {} fail, {} error",
        report.summary.backups,
        report.summary.findings.pass,
        report.summary.findings.warn,
        report.summary.findings.fail,
        report.summary.findings.error
    )];
    for f in report.findings.iter().filter(|f| f.check == Check::Restore) {
        lines.push(format!(
            "  restore {}: {} — {}",
            short(&f.subject),
            f.status.as_str(),
            f.summary
        ));
    }
    lines.extend(servers.hint());
    let failed: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .collect();
    if !failed.is_empty() {
        lines.push(format!("failed tonight ({}):", failed.len()));
    }
    for f in failed {
        lines.push(format!(
            "  {} {}: {}",
            f.check.as_str(),
            short(&f.subject),
            f.summary
        ));
    }
    match html {
        Some(p) => lines.push(format!(
            "the week as an auditor sees it (calendar, trends, restores): {}",
            p.display()
        )),
        None => lines.push("the HTML report could not be written (see above)".into()),
    }
    lines
}
