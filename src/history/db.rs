//! The two stores behind the history (SQLite file, PostgreSQL database),
//! reduced to the few statements it needs: queries are written once, with
//! `?N` placeholders and portable SQL.

use std::collections::HashMap;

use rusqlite::Connection;

/// The two stores, behind the few statements the history needs. Queries
/// are written once, with `?N` placeholders and portable SQL.
pub(super) enum Db {
    Sqlite(Connection),
    Postgres(Box<postgres::Client>, HashMap<String, postgres::Statement>),
}

/// A value crossing into or out of either store.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Sql {
    Int(i64),
    Text(String),
    Null,
}

impl From<i64> for Sql {
    fn from(v: i64) -> Self {
        Sql::Int(v)
    }
}
impl From<String> for Sql {
    fn from(v: String) -> Self {
        Sql::Text(v)
    }
}
impl From<&str> for Sql {
    fn from(v: &str) -> Self {
        Sql::Text(v.to_string())
    }
}
impl From<Option<String>> for Sql {
    fn from(v: Option<String>) -> Self {
        v.map_or(Sql::Null, Sql::Text)
    }
}

impl Sql {
    pub(super) fn int(&self) -> i64 {
        match self {
            Sql::Int(v) => *v,
            Sql::Text(t) => t.parse().unwrap_or(0),
            Sql::Null => 0,
        }
    }
    pub(super) fn text(&self) -> String {
        match self {
            Sql::Int(v) => v.to_string(),
            Sql::Text(t) => t.clone(),
            Sql::Null => String::new(),
        }
    }
}

impl Db {
    pub(super) fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(..))
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Sql]) -> Result<Vec<Vec<Sql>>, DbError> {
        match self {
            Db::Sqlite(c) => {
                // Cached: an append runs the same insert once per finding.
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let bound = params.iter().map(|p| match p {
                    Sql::Int(v) => rusqlite::types::Value::Integer(*v),
                    Sql::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    Sql::Null => rusqlite::types::Value::Null,
                });
                let rows = stmt.query_map(rusqlite::params_from_iter(bound), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                                rusqlite::types::Value::Integer(v) => Sql::Int(v),
                                rusqlite::types::Value::Text(t) => Sql::Text(t),
                                rusqlite::types::Value::Real(f) => Sql::Text(f.to_string()),
                                _ => Sql::Null,
                            })
                        })
                        .collect::<rusqlite::Result<Vec<Sql>>>()
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Db::Postgres(c, prepared) => {
                use postgres::types::{ToSql, Type};
                let stmt = match prepared.get(sql) {
                    Some(s) => s.clone(),
                    None => {
                        let s = c.prepare(&pg_placeholders(sql))?;
                        prepared.insert(sql.to_string(), s.clone());
                        s
                    }
                };
                let owned: Vec<Box<dyn ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn ToSql + Sync> {
                        match p {
                            Sql::Int(v) => Box::new(*v),
                            Sql::Text(t) => Box::new(t.clone()),
                            Sql::Null => Box::new(None::<String>),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
                let rows = c.query(&stmt, &refs)?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match *r.columns()[i].type_() {
                                Type::INT8 => {
                                    r.get::<_, Option<i64>>(i).map_or(Sql::Null, Sql::Int)
                                }
                                Type::INT4 => r
                                    .get::<_, Option<i32>>(i)
                                    .map_or(Sql::Null, |v| Sql::Int(v.into())),
                                _ => r.get::<_, Option<String>>(i).map_or(Sql::Null, Sql::Text),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Sql]) -> Result<(), DbError> {
        self.query(sql, params).map(drop)
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c, _) => Ok(c.batch_execute(sql)?),
        }
    }
}

/// PostgreSQL numbers its placeholders `$N` where SQLite takes `?N`.
fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A statement either store refused.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
}

/// The server's own message, not just "db error".
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}
