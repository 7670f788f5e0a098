//! The checks after a successful load, written once over the engines'
//! query primitives ([`SqlSession`]): what the restored database holds,
//! judged against the spec, the previous restore and the RTO.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::finding::Status;

use super::engine::{EngineError, SqlSession};
use super::facts::{Assertion, AssertionResult, Freshness, RestoreFacts};
use super::spec::RestoreSpec;

/// A table that lost more than this share of its rows since the previous
/// restore of the same source fails.
const DEFAULT_MAX_ROW_DROP: f64 = 0.5;

/// Everything the sanity queries learnt about the restored database.
#[derive(Debug, Default)]
pub struct Sanity {
    /// Row count per table (`schema.table`, or just `table` in the default
    /// schema), exact.
    pub rows: BTreeMap<String, u64>,
    pub database_bytes: u64,
    /// Each configured assertion: whether it held, or why it could not run.
    pub assertions: Vec<(String, Result<bool, EngineError>)>,
    /// The freshness column's newest value and its age, or why it could not
    /// be read (the column is not there: a finding about the data).
    pub freshness: Option<Result<Newest, FreshnessError>>,
}

/// The newest value of the freshness column (as text) and its age in seconds.
pub type Newest = (Option<String>, Option<f64>);

#[derive(Debug, thiserror::Error)]
#[error("freshness_column {column}: {source}")]
pub struct FreshnessError {
    column: String,
    #[source]
    source: EngineError,
}

/// Runs the sanity queries; an error means they could not run at all.
pub fn gather(s: &mut dyn SqlSession, spec: &RestoreSpec) -> Result<Sanity, EngineError> {
    let mut sanity = Sanity::default();
    for table in s.tables()? {
        let n = s.count_rows(&table)?;
        sanity.rows.insert(table.key, n);
    }
    sanity.database_bytes = s.database_bytes()?;
    for sql in &spec.assertions {
        let held = s.first_value(sql).map(|v| v.is_some_and(|v| s.is_true(&v)));
        sanity.assertions.push((sql.clone(), held));
    }
    if let Some(col) = &spec.freshness_column
        && let Some((table, column)) = col.rsplit_once('.')
    {
        let table_sql = table
            .split('.')
            .map(|p| s.ident(p))
            .collect::<Vec<_>>()
            .join(".");
        let column_sql = s.ident(column);
        let newest = s
            .first_value(&s.newest_sql(&table_sql, &column_sql))
            .map_err(|source| FreshnessError {
                column: col.clone(),
                source,
            });
        let age = s
            .first_value(&s.age_sql(&table_sql, &column_sql))
            .ok()
            .flatten()
            .and_then(|v| v.parse::<f64>().ok());
        sanity.freshness = Some(newest.map(|n| (n, age)));
    }
    Ok(sanity)
}

/// The sanity queries over every database of a full-server dump: rows
/// keyed `database.table`, sizes summed. Assertions and the freshness
/// column name no database, so they are not run: each configured one is
/// recorded as unanswerable (a problem, never a silent pass).
pub fn gather_cluster(
    parts: Vec<(String, Box<dyn SqlSession>)>,
    spec: &RestoreSpec,
) -> Result<Sanity, EngineError> {
    let mut sanity = Sanity::default();
    for (database, mut s) in parts {
        for table in s.tables()? {
            let n = s.count_rows(&table)?;
            sanity.rows.insert(format!("{database}.{}", table.key), n);
        }
        sanity.database_bytes += s.database_bytes()?;
    }
    for sql in &spec.assertions {
        sanity.assertions.push((
            sql.clone(),
            Err(EngineError::engine(
                "assertions are not run on a full-server dump (it holds several databases)",
            )),
        ));
    }
    if let Some(col) = &spec.freshness_column {
        sanity.freshness = Some(Err(FreshnessError {
            column: col.clone(),
            source: EngineError::engine(
                "the freshness column is not read on a full-server dump (it holds several databases)",
            ),
        }));
    }
    Ok(sanity)
}

/// The sanity queries over every database of a recovered cluster: rows
/// keyed `database.table`, sizes summed; assertions and the freshness
/// column run in `main` alone (the one database they are written for).
pub fn gather_physical(
    parts: Vec<(String, Box<dyn SqlSession>)>,
    main: &str,
    spec: &RestoreSpec,
) -> Result<Sanity, EngineError> {
    let mut sanity = Sanity::default();
    let counts_only = RestoreSpec::default();
    for (database, mut s) in parts {
        let is_main = database == main;
        let part = gather(s.as_mut(), if is_main { spec } else { &counts_only })?;
        sanity.rows.extend(
            part.rows
                .into_iter()
                .map(|(t, n)| (format!("{database}.{t}"), n)),
        );
        sanity.database_bytes += part.database_bytes;
        if is_main {
            sanity.assertions = part.assertions;
            sanity.freshness = part.freshness;
        }
    }
    Ok(sanity)
}

/// Records what the sanity queries found in `facts` and returns the
/// problems: against the spec, the previous restore's row counts, and the
/// RTO (`total_seconds` is load plus sanity).
pub fn judge(
    sanity: &Sanity,
    spec: &RestoreSpec,
    previous: Option<&BTreeMap<String, u64>>,
    rto: Option<Duration>,
    total_seconds: f64,
    facts: &mut RestoreFacts,
) -> Vec<String> {
    let mut problems = Vec::new();
    facts.row_counts = Some(sanity.rows.clone());
    facts.table_count = Some(sanity.rows.len() as u64);
    facts.database_bytes = Some(sanity.database_bytes);
    let count = |t: &str| lookup(&sanity.rows, t);
    for t in &spec.required_tables {
        if count(t).is_none() {
            problems.push(format!("required table {t} is missing"));
        }
    }
    for (t, min) in &spec.min_rows {
        match count(t) {
            Some(n) if n < *min => problems.push(format!("{t} has {n} row(s), fewer than {min}")),
            None => problems.push(format!("table {t} (min_rows) is missing")),
            _ => {}
        }
    }
    if !spec.assertions.is_empty() {
        let mut out = Vec::new();
        for (sql, r) in &sanity.assertions {
            let result = match r {
                Ok(true) => AssertionResult::Held(true),
                Ok(false) => {
                    problems.push(format!("assertion failed: {sql}"));
                    AssertionResult::Held(false)
                }
                Err(e) => {
                    problems.push(format!("assertion could not run: {sql}: {e}"));
                    AssertionResult::Error(e.to_string())
                }
            };
            out.push(Assertion {
                sql: sql.clone(),
                result,
            });
        }
        facts.assertions = Some(out);
    }
    match (&spec.freshness_column, &sanity.freshness) {
        (Some(col), Some(Ok((newest, age)))) => {
            facts.freshness = Some(Freshness {
                column: col.clone(),
                newest: newest.clone(),
                age_seconds: *age,
            });
        }
        (Some(_), Some(Err(e))) => problems.push(e.to_string()),
        _ => {}
    }
    if let Some(prev) = previous {
        let max_drop = spec.max_row_drop.unwrap_or(DEFAULT_MAX_ROW_DROP);
        for (t, &before) in prev {
            let now = sanity.rows.get(t).copied().unwrap_or(0);
            if before > 0 && (before.saturating_sub(now)) as f64 / before as f64 > max_drop {
                problems.push(format!(
                    "{t} has {now} row(s), down from {before} at the previous restore"
                ));
            }
        }
        facts.previous_row_counts = Some(prev.clone());
    }
    if let Some(r) = rto
        && total_seconds > r.as_secs_f64()
    {
        problems.push(format!(
            "restore took {total_seconds:.1}s, over the RTO of {}",
            humantime::format_duration(r)
        ));
    }
    problems
}

/// The verdict on a restore that loaded: status, summary and remedy.
pub fn verdict(
    sanity: &Sanity,
    problems: Vec<String>,
    total_seconds: f64,
    facts: &mut RestoreFacts,
) -> (Status, String, Option<&'static str>) {
    let tables = sanity.rows.len();
    let rows: u64 = sanity.rows.values().sum();
    if problems.is_empty() && tables == 0 {
        // Nothing was required, so not a failure; but a backup of no
        // tables is rarely what anyone meant to keep.
        (
            Status::Warn,
            format!("restored in {total_seconds:.1}s, but it holds no tables"),
            Some(
                "Set required_tables for this source if it must hold data, or check that the backup job dumps the right database.",
            ),
        )
    } else if problems.is_empty() {
        (
            Status::Pass,
            format!("restored in {total_seconds:.1}s: {tables} table(s), {rows} row(s)"),
            None,
        )
    } else {
        let summary = format!("restored, but {}", problems.join("; "));
        facts.problems = Some(problems);
        (
            Status::Fail,
            summary,
            Some(
                "The restored data does not meet its expectations: check the backup job and the source database.",
            ),
        )
    }
}

/// A table by the name the user gave: exact, or unqualified in any schema.
fn lookup(rows: &BTreeMap<String, u64>, name: &str) -> Option<u64> {
    rows.get(name).copied().or_else(|| {
        rows.iter()
            .find(|(k, _)| k.rsplit('.').next() == Some(name))
            .map(|(_, n)| *n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanity(rows: &[(&str, u64)]) -> Sanity {
        Sanity {
            rows: rows.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            database_bytes: 1,
            ..Sanity::default()
        }
    }

    #[test]
    fn expectations_row_drops_and_the_rto_are_judged() {
        let spec = RestoreSpec {
            required_tables: vec!["orders".into(), "gone".into()],
            min_rows: [("sales.customers".to_string(), 10)].into(),
            ..RestoreSpec::default()
        };
        let previous = [
            ("sales.customers".to_string(), 100),
            ("orders".to_string(), 0),
        ]
        .into();
        let mut facts = RestoreFacts::default();
        let s = sanity(&[("orders", 5), ("sales.customers", 4)]);
        let problems = judge(
            &s,
            &spec,
            Some(&previous),
            Some(Duration::from_secs(1)),
            2.0,
            &mut facts,
        );
        assert_eq!(
            problems,
            [
                "required table gone is missing",
                "sales.customers has 4 row(s), fewer than 10",
                "sales.customers has 4 row(s), down from 100 at the previous restore",
                "restore took 2.0s, over the RTO of 1s",
            ]
        );
        assert_eq!(facts.table_count, Some(2));
        assert_eq!(facts.previous_row_counts, Some(previous));
        let (status, summary, _) = verdict(&s, problems, 2.0, &mut facts);
        assert_eq!(status, Status::Fail);
        assert!(summary.starts_with("restored, but required table gone"));
        assert_eq!(facts.problems.as_ref().map(Vec::len), Some(4));
    }

    #[test]
    fn no_tables_warns_and_tables_pass() {
        let mut facts = RestoreFacts::default();
        let (status, _, remedy) = verdict(&sanity(&[]), vec![], 0.5, &mut facts);
        assert_eq!((status, remedy.is_some()), (Status::Warn, true));
        let (status, summary, _) = verdict(&sanity(&[("t", 3)]), vec![], 0.5, &mut facts);
        assert_eq!(status, Status::Pass);
        assert_eq!(summary, "restored in 0.5s: 1 table(s), 3 row(s)");
        assert_eq!(facts.problems, None);
    }
}
