//! Pristine scratch data directories kept between runs: a scratch server
//! starts from a copy of its engine's freshly initialised data directory
//! (0.1 s) instead of running initdb or mariadb-install-db again (0.8 s
//! here), so a spot check's restore pays the setup once per machine.
//!
//! Trust: a data directory holds the server's configuration, and a planted
//! one would run its settings (`archive_command`, preloaded libraries). So
//! templates live in the user's own cache directory, never a shared temp
//! directory, and one is used only when it and its parent belong to this
//! user (or the server's) and are closed to everyone else. A template is
//! saved right after initialisation, before any server ran on it, and
//! published with a rename, so a reader never sees half of one. Anything
//! unexpected falls back to initialising afresh.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::scratch::{RunAs, ScratchError};

/// Makes `data` a freshly initialised data directory of `engine`: a copy of
/// the saved template for this `identity` (the server binary and the
/// initialisation's arguments), else `init` run now and its result saved.
pub fn prepare(
    engine: &str,
    server: &Path,
    identity: &[&str],
    run_as: RunAs,
    data: &Path,
    init: impl FnOnce() -> Result<(), ScratchError>,
) -> Result<(), ScratchError> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    prepare_in(
        cache.as_deref(),
        engine,
        server,
        identity,
        run_as,
        data,
        init,
    )
}

/// [`prepare`] with templates under `cache`.
fn prepare_in(
    cache: Option<&Path>,
    engine: &str,
    server: &Path,
    identity: &[&str],
    run_as: RunAs,
    data: &Path,
    init: impl FnOnce() -> Result<(), ScratchError>,
) -> Result<(), ScratchError> {
    let template = cache.and_then(|c| template_path(c, engine, server, identity));
    // `cp -a` into an existing directory would nest the copy inside it.
    let fresh = !data.exists();
    if let Some(t) = template.as_deref().filter(|t| fresh && usable(t, run_as)) {
        if copy(t, data) {
            tracing::debug!(template = %t.display(), "scratch data directory copied from its template");
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(data);
    }
    init()?;
    if let Some(t) = template {
        save(data, &t);
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/backproof/<engine>-template-<key>` (else `~/.cache`),
/// the key a digest of the server binary's path, size and mtime (a new
/// release makes a new template) and the initialisation's arguments.
fn template_path(cache: &Path, engine: &str, server: &Path, identity: &[&str]) -> Option<PathBuf> {
    let meta = std::fs::metadata(server).ok()?;
    let mut h = Sha256::new();
    h.update(server.as_os_str().as_encoded_bytes());
    h.update(format!("\n{}\n{:?}\n", meta.len(), meta.modified().ok()?));
    for part in identity {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    let key = hex::encode(&h.finalize()[..8]);
    Some(
        cache
            .join("backproof")
            .join(format!("{engine}-template-{key}")),
    )
}

/// Whether `t` and its parent belong to us (or the server's user) and are
/// closed to group and others.
fn usable(t: &Path, run_as: RunAs) -> bool {
    let server = run_as.ids.map(|(uid, _)| uid);
    t.parent().is_some_and(|p| private(p, &[Some(me())])) && private(t, &[Some(me()), server])
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A directory (not a link) owned by one of `owners`, closed to group and others.
fn private(p: &Path, owners: &[Option<u32>]) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| {
        m.is_dir() && m.permissions().mode() & 0o077 == 0 && owners.contains(&Some(m.uid()))
    })
}

/// `cp -a`: modes and owners kept (the data directory belongs to the
/// server's user, and the server refuses one open to others).
fn copy(from: &Path, to: &Path) -> bool {
    Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Best effort: a template that cannot be saved only costs the next run an
/// initialisation.
fn save(data: &Path, t: &Path) {
    let Some(parent) = t.parent() else { return };
    if !parent.exists() {
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent);
        if made.is_err() {
            return;
        }
    }
    // Never into a directory others may write: the template would be theirs.
    if !private(parent, &[Some(me())]) {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = parent.join(format!(".partial-{}-{nanos}", std::process::id()));
    // A rename onto a template another run published meanwhile fails, and
    // that one serves as well.
    if !(copy(data, &tmp) && std::fs::rename(&tmp, t).is_ok()) {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        tracing::debug!(template = %t.display(), "scratch data directory template saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_saved_then_copied_and_never_used_when_others_can_write_it() {
        let home = tempfile::tempdir().unwrap();
        let cache = Some(home.path());
        let server = std::env::current_exe().unwrap();
        let us = RunAs { ids: None };
        let init_into = |data: &Path| {
            let data = data.to_path_buf();
            move || {
                std::fs::create_dir(&data).unwrap();
                std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
                std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
                Ok(())
            }
        };
        let work = tempfile::tempdir().unwrap();
        let mut inits = 0;
        for run in 0..3 {
            let data = work.path().join(format!("data{run}"));
            let init = init_into(&data);
            prepare_in(cache, "test", &server, &["-x"], us, &data, || {
                inits += 1;
                init()
            })
            .unwrap();
            assert_eq!(
                std::fs::read_to_string(data.join("PG_VERSION")).unwrap(),
                "15\n"
            );
            assert_eq!(
                std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        assert_eq!(inits, 1, "initialised once, then copied");
        // Another identity (new arguments) is another template.
        let data = work.path().join("other");
        prepare_in(cache, "test", &server, &["-y"], us, &data, init_into(&data)).unwrap();
        // A template others may write is never used.
        let t = template_path(home.path(), "test", &server, &["-x"]).unwrap();
        std::fs::write(t.join("planted.conf"), "archive_command = 'evil'").unwrap();
        std::fs::set_permissions(t.parent().unwrap(), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let data = work.path().join("after");
        let mut fresh = false;
        let init = init_into(&data);
        prepare_in(cache, "test", &server, &["-x"], us, &data, || {
            fresh = true;
            init()
        })
        .unwrap();
        assert!(fresh && !data.join("planted.conf").exists());
    }
}
