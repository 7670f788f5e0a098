//! The engines backproof knows, and which one restores a backup. Adding an
//! engine is adding it to [`ENGINES`]: every name, URL scheme and format
//! question below asks the engines themselves.

use std::sync::OnceLock;

use serde::{Deserialize, Deserializer};

use crate::catalog::Backup;
use crate::inspect::{Format, Kind};

use super::engine::{EngineKind, PhysicalEngine, SnapshotEngine};
use super::{etcd, mysql, openbao, pitr, postgres};

/// In order of preference: an unrecognisable `.sql` file is tried as the
/// first engine's plain SQL unless the config names another engine.
static ENGINES: &[&'static dyn EngineKind] = &[
    &postgres::Postgres,
    &mysql::MariaDb,
    &super::mariabackup::MariaBackup,
];

/// Configuration stores whose snapshots restore into a server of their own.
static SNAPSHOT_ENGINES: &[&'static dyn SnapshotEngine] = &[&etcd::Etcd, &openbao::OpenBao];

/// Physical base backups recovered to a point in time in a cluster of their own.
static PHYSICAL_ENGINES: &[&'static dyn PhysicalEngine] = &[&pitr::Pitr];

/// A handle on one registered engine (what `engine = "..."` names): a
/// database engine or a snapshot engine.
#[derive(Clone, Copy)]
pub struct Engine(Handle);

#[derive(Clone, Copy)]
enum Handle {
    Db(&'static dyn EngineKind),
    Snapshot(&'static dyn SnapshotEngine),
    Physical(&'static dyn PhysicalEngine),
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self.0 {
            Handle::Db(e) => e.name(),
            Handle::Snapshot(e) => e.name(),
            Handle::Physical(e) => e.name(),
        }
    }

    /// The database engine, or `None` for a snapshot engine.
    pub fn kind(self) -> Option<&'static dyn EngineKind> {
        match self.0 {
            Handle::Db(e) => Some(e),
            _ => None,
        }
    }

    /// The snapshot engine, or `None` for another engine.
    pub fn snapshot(self) -> Option<&'static dyn SnapshotEngine> {
        match self.0 {
            Handle::Snapshot(e) => Some(e),
            _ => None,
        }
    }

    /// The point-in-time engine, or `None` for another engine.
    pub fn physical(self) -> Option<&'static dyn PhysicalEngine> {
        match self.0 {
            Handle::Physical(e) => Some(e),
            _ => None,
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self.0 {
            Handle::Db(e) => e.aliases(),
            Handle::Snapshot(e) => e.aliases(),
            Handle::Physical(e) => e.aliases(),
        }
    }

    fn all() -> impl Iterator<Item = Engine> {
        ENGINES
            .iter()
            .map(|e| Engine(Handle::Db(*e)))
            .chain(
                SNAPSHOT_ENGINES
                    .iter()
                    .map(|e| Engine(Handle::Snapshot(*e))),
            )
            .chain(
                PHYSICAL_ENGINES
                    .iter()
                    .map(|e| Engine(Handle::Physical(*e))),
            )
    }

    /// By name or alias, as a config writes it.
    pub fn by_name(name: &str) -> Option<Engine> {
        Engine::all().find(|e| e.name() == name || e.aliases().contains(&name))
    }

    /// Whether some engine takes URLs of this scheme.
    pub fn takes_url(url: &str) -> bool {
        ENGINES
            .iter()
            .any(|e| e.url_schemes().iter().any(|s| url.starts_with(s)))
    }

    /// "postgres:// or mysql://": each engine's first scheme.
    pub fn url_schemes_text() -> String {
        let schemes: Vec<&str> = ENGINES
            .iter()
            .filter_map(|e| e.url_schemes().first().copied())
            .collect();
        schemes.join(" or ")
    }
}

impl PartialEq for Engine {
    fn eq(&self, other: &Engine) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Engine {}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every name a config may use, for serde's "expected one of" message.
fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        Engine::all()
            .flat_map(|e| std::iter::once(e.name()).chain(e.aliases().iter().copied()))
            .collect()
    })
}

impl<'de> Deserialize<'de> for Engine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Engine, D::Error> {
        let name = String::deserialize(d)?;
        Engine::by_name(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, names()))
    }
}

/// Which engine restores this backup, and as what format. A dump too
/// damaged to be recognised (an empty file) is still handed to the tool its
/// name suggests, so that the tool's own verdict is the evidence. A
/// configured engine can only re-aim plain SQL: an archive is its own
/// engine's whatever the config says.
pub fn choose(kind: Kind, backup: &Backup, configured: Option<Engine>) -> Option<(Engine, Format)> {
    // A base backup is a whole cluster: recovered, never loaded.
    if let Some(e) = PHYSICAL_ENGINES.iter().find(|e| e.recognises(kind, backup)) {
        return Some((Engine(Handle::Physical(*e)), Format::PgBaseBackup));
    }
    // A snapshot is its own store's, whatever the config names.
    if let Some(e) = SNAPSHOT_ENGINES
        .iter()
        .find(|e| e.formats().contains(&kind.format))
    {
        return Some((Engine(Handle::Snapshot(*e)), kind.format));
    }
    let configured = configured.and_then(|c| c.kind());
    let name = backup.key.rsplit('/').next().unwrap_or(&backup.key);
    let bare = name.trim_end_matches(".gz").trim_end_matches(".zst");
    // The configured engine's conventions first, then everyone's in order.
    let candidates = || configured.into_iter().chain(ENGINES.iter().copied());
    let format = candidates()
        .find_map(|e| e.layout_format(backup.layout))
        .or(match kind.format {
            Format::Unknown => candidates().find_map(|e| e.format_by_name(bare)),
            f => Some(f),
        })
        .filter(|f| *f != Format::Unknown)?;
    let natural = ENGINES
        .iter()
        .copied()
        .find(|e| e.formats().contains(&format))?;
    if let Some(c) = configured
        && c.name() != natural.name()
        && natural.plain_sql() == Some(format)
        && let Some(plain) = c.plain_sql()
    {
        return Some((Engine(Handle::Db(c)), plain));
    }
    Some((Engine(Handle::Db(natural)), format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Layout, TimestampFrom};

    fn backup(key: &str, layout: Layout) -> Backup {
        Backup {
            key: key.into(),
            layout,
            members: vec![],
            size: 0,
            timestamp: chrono::DateTime::UNIX_EPOCH,
            timestamp_from: TimestampFrom::Name,
            expected: Default::default(),
        }
    }

    fn kind(format: Format) -> Kind {
        Kind {
            format,
            compression: None,
        }
    }

    #[test]
    fn the_engines_choose_who_restores_what() {
        let pg = Engine::by_name("postgresql");
        let my = Engine::by_name("mysql");
        assert_eq!(pg.map(Engine::name), Some("postgres"));
        assert_eq!(my.map(Engine::name), Some("mariadb"));
        let file = |k| backup(k, Layout::File);
        let pick = |f, b: &Backup, e| choose(kind(f), b, e).map(|(e, f)| (e.name(), f));
        let dir = backup("a.dir", Layout::PgDirectory);
        assert_eq!(
            pick(Format::Unknown, &dir, None),
            Some(("postgres", Format::PgToc))
        );
        assert_eq!(
            pick(Format::MysqlDump, &dir, my),
            Some(("postgres", Format::PgToc))
        );
        // Named by the inspector: its engine, unless plain SQL is re-aimed.
        assert_eq!(
            pick(Format::PgCustom, &file("a"), my),
            Some(("postgres", Format::PgCustom))
        );
        assert_eq!(
            pick(Format::PgPlain, &file("a"), my),
            Some(("mariadb", Format::MysqlDump))
        );
        assert_eq!(
            pick(Format::MysqlDump, &file("a"), pg),
            Some(("postgres", Format::PgPlain))
        );
        assert_eq!(
            pick(Format::MysqlDump, &file("a"), None),
            Some(("mariadb", Format::MysqlDump))
        );
        // Unrecognisable: by name, the configured engine's conventions first.
        let sql = file("x/a.sql.gz");
        assert_eq!(
            pick(Format::Unknown, &sql, None),
            Some(("postgres", Format::PgPlain))
        );
        assert_eq!(
            pick(Format::Unknown, &sql, my),
            Some(("mariadb", Format::MysqlDump))
        );
        assert_eq!(
            pick(Format::Unknown, &file("a.pgdump.zst"), my),
            Some(("postgres", Format::PgCustom))
        );
        assert_eq!(pick(Format::Unknown, &file("a.txt"), None), None);
        assert_eq!(pick(Format::Tar, &file("a.tar"), None), None);
        // Snapshots: their store's engine, whatever the config says.
        assert_eq!(
            pick(Format::EtcdSnapshot, &file("a.db"), pg),
            Some(("etcd", Format::EtcdSnapshot))
        );
        assert_eq!(
            pick(Format::VaultSnapshot, &file("a.snap"), None),
            Some(("openbao", Format::VaultSnapshot))
        );
        assert_eq!(pick(Format::ConsulSnapshot, &file("a.snap"), None), None);
        assert_eq!(Engine::by_name("vault").map(Engine::name), Some("openbao"));
        // Base backups, plain or tar: recovered to a point in time.
        let base = backup("pg/base", Layout::PgBaseBackup);
        assert_eq!(
            pick(Format::PgBaseBackup, &base, my),
            Some(("postgres-pitr", Format::PgBaseBackup))
        );
        for name in ["b/base.tar", "b/base.tar.gz", "b/base.tar.zst"] {
            assert_eq!(
                pick(Format::Tar, &file(name), None),
                Some(("postgres-pitr", Format::PgBaseBackup)),
                "{name}"
            );
        }
        assert_eq!(pick(Format::Tar, &file("b/pg_wal.tar.gz"), None), None);
        assert_eq!(
            Engine::by_name("pitr").map(Engine::name),
            Some("postgres-pitr")
        );
    }
}
