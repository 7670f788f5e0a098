//! The checks after a successful load, written once over the engines'
//! query primitives ([`SqlSession`]): what the restored database holds,
//! judged against the spec, the previous restore and the RTO.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::finding::Status;

use super::engine::{EngineError, SqlSession, Table};
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
/// The row counts are shared between `s` and the `helpers` (other sessions
/// on the same database): each `count(*)` is a full scan, and a server
/// scans two tables on two cores at once.
pub fn gather(
    s: &mut dyn SqlSession,
    helpers: Vec<Box<dyn SqlSession>>,
    spec: &RestoreSpec,
) -> Result<Sanity, EngineError> {
    let mut sanity = Sanity::default();
    let tables = s.tables()?;
    sanity.rows = count_rows(s, helpers, tables)?;
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

/// Exact rows of each table, keyed by [`Table::key`]: each session takes
/// the next table not yet counted until none is left, so the sessions
/// finish together whatever the tables' sizes. The first error is returned.
fn count_rows(
    first: &mut dyn SqlSession,
    helpers: Vec<Box<dyn SqlSession>>,
    tables: Vec<Table>,
) -> Result<BTreeMap<String, u64>, EngineError> {
    if helpers.is_empty() || tables.len() < 2 {
        let mut rows = BTreeMap::new();
        for table in tables {
            let n = first.count_rows(&table)?;
            rows.insert(table.key, n);
        }
        return Ok(rows);
    }
    let queue = std::sync::Mutex::new(tables.into_iter());
    let next = || queue.lock().ok().and_then(|mut q| q.next());
    let work = |s: &mut dyn SqlSession| -> Result<Vec<(String, u64)>, EngineError> {
        let mut counted = Vec::new();
        while let Some(table) = next() {
            counted.push((table.key.clone(), s.count_rows(&table)?));
        }
        Ok(counted)
    };
    let mut helpers = helpers;
    let results: Vec<Result<Vec<(String, u64)>, EngineError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = helpers
            .iter_mut()
            .map(|h| scope.spawn(|| work(h.as_mut())))
            .collect();
        let mut all = vec![work(first)];
        for t in threads {
            all.push(
                t.join()
                    .unwrap_or_else(|_| Err(EngineError::engine("a row-count thread panicked"))),
            );
        }
        all
    });
    let mut rows = BTreeMap::new();
    for r in results {
        rows.extend(r?);
    }
    Ok(rows)
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
        let part = gather(
            s.as_mut(),
            Vec::new(),
            if is_main { spec } else { &counts_only },
        )?;
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

    /// Counts a table as the length of its name, and fails on `broken`;
    /// records what it was asked to count.
    struct Counter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl SqlSession for Counter {
        fn tables(&mut self) -> Result<Vec<Table>, EngineError> {
            unreachable!("count_rows is handed the tables")
        }
        fn count_rows(&mut self, table: &Table) -> Result<u64, EngineError> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.lock().unwrap().push(table.key.clone());
            match table.key.as_str() {
                "broken" => Err(EngineError::engine("no such table")),
                k => Ok(k.len() as u64),
            }
        }
        fn database_bytes(&mut self) -> Result<u64, EngineError> {
            Ok(0)
        }
        fn first_value(&mut self, _: &str) -> Result<Option<String>, EngineError> {
            Ok(None)
        }
        fn ident(&self, name: &str) -> String {
            name.to_string()
        }
        fn is_true(&self, _: &str) -> bool {
            false
        }
        fn newest_sql(&self, _: &str, _: &str) -> String {
            String::new()
        }
        fn age_sql(&self, _: &str, _: &str) -> String {
            String::new()
        }
    }

    fn tables(names: &[&str]) -> Vec<Table> {
        (names.iter())
            .map(|n| Table {
                key: n.to_string(),
                sql: n.to_string(),
            })
            .collect()
    }

    #[test]
    fn row_counts_are_shared_between_sessions_and_each_table_counted_once() {
        let names: Vec<String> = (0..40)
            .map(|i| "t".repeat(i % 7 + 1) + &i.to_string())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (mine, theirs) = (Default::default(), Default::default());
        let mut first = Counter(std::sync::Arc::clone(&mine));
        let helper: Box<dyn SqlSession> = Box::new(Counter(std::sync::Arc::clone(&theirs)));
        let rows = count_rows(&mut first, vec![helper], tables(&names)).unwrap();
        let want: BTreeMap<String, u64> = names
            .iter()
            .map(|n| (n.to_string(), n.len() as u64))
            .collect();
        assert_eq!(rows, want);
        let (mine, theirs) = (mine.lock().unwrap(), theirs.lock().unwrap());
        assert!(
            !mine.is_empty() && !theirs.is_empty(),
            "{mine:?} / {theirs:?}"
        );
        assert_eq!(
            mine.len() + theirs.len(),
            names.len(),
            "a table counted twice"
        );

        // Whichever session meets it, a failed count is the answer.
        for at in [0, 1, 39] {
            let mut names = names.clone();
            names[at] = "broken";
            let mut first = Counter(Default::default());
            let helper: Box<dyn SqlSession> = Box::new(Counter(Default::default()));
            let err = count_rows(&mut first, vec![helper], tables(&names)).unwrap_err();
            assert!(err.to_string().contains("no such table"), "{err}");
            let err = count_rows(&mut first, Vec::new(), tables(&names)).unwrap_err();
            assert!(err.to_string().contains("no such table"), "{err}");
        }
    }

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
