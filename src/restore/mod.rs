//! Test restores: a dump is restored for real into a scratch database, the
//! result is checked (tables, exact row counts, size, the user's
//! expectations), timed against the promised recovery time, and everything
//! created for it is removed again.
//!
//! The seam is [`engine::EngineKind`]: an engine ([`postgres`], [`mysql`])
//! owns its server's start, readiness and stop, its URL schemes, its
//! scratch databases, the load and the queries; [`registry`] says which
//! engine restores what. Around it, written once and knowing no engine:
//! [`scratch`] (dirs, processes, sweeps), [`input`] (what feeds
//! the tool), [`tools`] (running it), [`sanity`] (checking the result) and
//! this module's [`RestoreSession`], which strings them together into one
//! finding and its typed [`RestoreFacts`].
//! Restored SQL is untrusted input: it always runs as an unprivileged role
//! that owns nothing but its scratch database.

mod engine;
mod etcd;
pub mod facts;
mod input;
mod mariabackup;
mod mysql;
mod openbao;
mod pitr;
mod postgres;
mod registry;
mod sanity;
mod scratch;
pub mod slots;
mod space;
mod spec;
mod template;
mod tools;

pub use engine::PitrTarget;
pub use facts::{Assertion, AssertionResult, Freshness, PitrFacts, RestoreFacts, SnapshotFacts};
pub use registry::Engine;
pub use spec::{PitrPairing, RestoreOverrides, RestoreSpec, SpecError, Which};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::Backup;
use crate::finding::{Check, Finding, Status};
use crate::inspect::{Decoded, Format, Kind};
use crate::redact::redact;
use crate::source::Storage;

use engine::{
    Endpoint, EngineError, EngineKind, PhysicalEngine, Recovered, ScratchDb, SnapshotEngine,
};
use scratch::Instance;

/// Without an RTO or an explicit timeout, a restore still may not run forever
/// (pg_restore loops forever on some damaged tar archives).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// A scratch login outlives the restore's timeout by this much (the sanity
/// queries and the teardown come after the load), then stops working or
/// may be swept.
const LOGIN_MARGIN: Duration = Duration::from_secs(3600);

/// One restore's finding, and the same facts typed for later stages (the
/// restore promise, the next night's row-drop check).
#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    pub finding: Finding,
    pub facts: RestoreFacts,
}

/// An ephemeral server of this session.
struct Running {
    /// Kept for its Drop: stops the server and removes its dir.
    _instance: Instance,
    endpoint: Endpoint,
    start_seconds: f64,
}

/// One invocation's restores: ephemeral instances are started on first use
/// and shared by every restore of the run, then stopped by [`finish`] (or
/// by Drop, or by the interrupt handler).
///
/// [`finish`]: RestoreSession::finish
pub struct RestoreSession {
    overrides: RestoreOverrides,
    /// Per engine name; a failed start is not retried within the run.
    instances: BTreeMap<&'static str, Result<Running, Arc<EngineError>>>,
    /// Starts begun ahead of the first restore ([`RestoreSession::warm`]),
    /// moved to `instances` when a restore needs them.
    warming: BTreeMap<&'static str, Warm>,
    /// The threads that started servers ahead, kept until the servers stop.
    keepers: Vec<Keeper>,
    swept_dirs: bool,
    swept_urls: BTreeSet<String>,
    /// `--restore-slots`: the session holds a slot from its first restore
    /// until it finishes (its scratch servers live that long).
    slots: Option<slots::Slots>,
    slot: Option<slots::Slot>,
}

impl RestoreSession {
    pub fn new(overrides: RestoreOverrides) -> Self {
        RestoreSession {
            slots: overrides.slots.map(slots::Slots::new),
            overrides,
            instances: BTreeMap::new(),
            warming: BTreeMap::new(),
            keepers: Vec::new(),
            swept_dirs: false,
            swept_urls: BTreeSet::new(),
            slot: None,
        }
    }

    /// Stops every instance of this session and removes its files.
    pub fn finish(&mut self) {
        // Each Running's Instance stops on drop; a start under way is
        // waited for, so that its server is stopped too.
        self.instances.clear();
        for (_, warm) in std::mem::take(&mut self.warming) {
            drop(warm.started.recv());
            self.keepers.push(warm.keeper);
        }
        // Only now may the threads that spawned the servers end.
        self.keepers.clear();
        self.slot = None;
    }

    /// Holds a restore slot, waiting for one if every slot is taken.
    fn hold_slot(&mut self) -> Result<(), slots::SlotError> {
        if let (Some(slots), None) = (&self.slots, &self.slot) {
            let slot = slots.acquire()?;
            tracing::info!(
                slot = slot.index,
                waited_seconds = slot.waited.as_secs_f64(),
                "restore slot held"
            );
            self.slot = Some(slot);
        }
        Ok(())
    }

    /// The first restore of a run removes what killed runs left behind.
    fn sweep_dirs_once(&mut self) {
        if !self.swept_dirs {
            self.swept_dirs = true;
            for d in scratch::sweep_dirs() {
                tracing::warn!(dir = %d, "swept the leftovers of a crashed run: {d}");
            }
        }
    }

    /// The endpoint for an engine: the configured URL, else the session's
    /// ephemeral instance (started now if needed). Returns the start time
    /// when this call started it.
    fn endpoint(
        &mut self,
        engine: &'static dyn EngineKind,
        url: Option<&str>,
    ) -> Result<(Endpoint, f64), Arc<EngineError>> {
        self.sweep_dirs_once();
        if let Some(url) = url {
            let endpoint = Endpoint::Url(url.to_string());
            if self.swept_urls.insert(url.to_string()) {
                for d in engine.sweep(&endpoint) {
                    tracing::warn!(
                        database = %d,
                        "dropped the scratch database {d} of a crashed or expired run on {}",
                        redact(url)
                    );
                }
            }
            return Ok((endpoint, 0.0));
        }
        let mut fresh = false;
        if let Some(warm) = self.warming.remove(engine.name()) {
            let started = warm.started.recv().unwrap_or_else(|_| {
                Err(Arc::new(EngineError::engine(
                    "the scratch server's start panicked",
                )))
            });
            self.instances.insert(engine.name(), started);
            self.keepers.push(warm.keeper);
            fresh = true;
        }
        let running = self.instances.entry(engine.name()).or_insert_with(|| {
            fresh = true;
            start_running(engine)
        });
        match running {
            Ok(r) => Ok((
                r.endpoint.clone(),
                if fresh { r.start_seconds } else { 0.0 },
            )),
            Err(e) => Err(Arc::clone(e)),
        }
    }

    /// Starts, on a thread, the scratch server that a restore of `backup`
    /// (of `kind`, as its first bytes tell) would need, so that it is up
    /// when the verification is done. A guess, never a verdict: the restore
    /// still waits for the verification, and a server started for nothing
    /// is stopped with the session. Nothing starts for a configured
    /// scratch_url, a server already there, or while a restore slot would
    /// have to be waited for (the start must not queue the verification).
    pub fn warm(&mut self, kind: Kind, backup: &Backup, spec: &RestoreSpec) {
        if self.slots.is_some() && self.slot.is_none() {
            return;
        }
        if self.overrides.scratch_url.is_some() || spec.scratch_url.is_some() {
            return;
        }
        let Some(ops) = registry::choose(kind, backup, spec.engine).and_then(|(e, _)| e.kind())
        else {
            return;
        };
        if self.instances.contains_key(ops.name()) || self.warming.contains_key(ops.name()) {
            return;
        }
        self.sweep_dirs_once();
        tracing::debug!(
            engine = ops.name(),
            "scratch server started ahead of its restore"
        );
        let (tx, started) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // Unclaimed, the server is dropped (stopped) here.
            let _ = tx.send(start_running(ops));
            let _ = stopped.recv();
        });
        let keeper = Keeper {
            stop: Some(stop),
            thread: Some(thread),
        };
        self.warming.insert(ops.name(), Warm { started, keeper });
    }

    /// The point in time the command line or `spec` names, if any (not
    /// `latest`): which base backup can reach it depends on it.
    pub fn named_target(&self, spec: &RestoreSpec) -> Option<chrono::DateTime<chrono::Utc>> {
        match spec.pitr(&self.overrides, None).target {
            PitrTarget::Time(t) => Some(t),
            PitrTarget::Latest => None,
        }
    }

    /// Restores one backup and checks the result; always one finding (a
    /// broken dump is a failed finding, never an error). `previous_rows`
    /// are the row counts of the previous restore of the same source, when
    /// the history has them; `expected`, what the verification decoded
    /// from a configuration-store snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        source: &dyn Storage,
        backup: &Backup,
        kind: Kind,
        spec: &RestoreSpec,
        source_name: &str,
        previous_rows: Option<&BTreeMap<String, u64>>,
        expected: Option<&Decoded>,
        paired: Option<&PitrPairing>,
    ) -> RestoreOutcome {
        let subject = source.subject(&backup.key);
        let _span = tracing::info_span!("restore", subject = %subject).entered();
        if let Err(e) = self.hold_slot() {
            let finding = Finding::new(&subject, Check::Restore, Status::Error, format!("not restored: {e}"))
                .remedy("Check that the temporary directory is writable; --restore-slots locks files there.");
            return RestoreOutcome {
                finding,
                facts: RestoreFacts::default(),
            };
        }
        let out = self.restore_in_span(
            source,
            backup,
            kind,
            spec,
            source_name,
            previous_rows,
            expected,
            paired,
        );
        tracing::info!(
            status = out.finding.status.as_str(),
            engine = out.facts.engine.as_deref().unwrap_or(""),
            restore_seconds = out.facts.restore_seconds.unwrap_or(0.0),
            "{}",
            out.finding.summary
        );
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_in_span(
        &mut self,
        source: &dyn Storage,
        backup: &Backup,
        kind: Kind,
        spec: &RestoreSpec,
        source_name: &str,
        previous_rows: Option<&BTreeMap<String, u64>>,
        expected: Option<&Decoded>,
        paired: Option<&PitrPairing>,
    ) -> RestoreOutcome {
        let subject = source.subject(&backup.key);
        let mut facts = RestoreFacts::default();
        let outcome = |facts: RestoreFacts, status, summary: String, remedy: Option<&str>| {
            let mut finding = Finding::new(&subject, Check::Restore, status, summary)
                .with_evidence(facts.evidence());
            if let Some(r) = remedy {
                finding = finding.remedy(r);
            }
            RestoreOutcome { finding, facts }
        };
        let Some((engine, format)) = registry::choose(kind, backup, spec.engine) else {
            return outcome(
                facts,
                Status::Error,
                format!("not restorable: {kind} is not a database dump backproof can restore"),
                None,
            );
        };
        let rto = self.overrides.rto.or(spec.rto);
        let timeout = self
            .overrides
            .timeout
            .or(spec.timeout)
            .or(rto.map(|r| r * 2))
            .unwrap_or(DEFAULT_TIMEOUT);
        facts.engine = Some(engine.name().to_string());
        facts.source = Some(source_name.to_string());
        facts.location = Some(source.location());
        if let Some(physical) = engine.physical() {
            facts.target = Some("ephemeral".to_string());
            facts.timeout_seconds = Some(timeout.as_secs_f64());
            facts.rto_seconds = rto.map(|r| r.as_secs_f64());
            let p = Physical {
                engine: physical,
                rto,
                timeout,
                previous_rows,
                paired,
            };
            let (status, summary, remedy) =
                self.restore_physical(source, backup, spec, p, &mut facts);
            return outcome(facts, status, summary, remedy);
        }
        let ops = match (engine.kind(), engine.snapshot()) {
            (Some(ops), _) => ops,
            (None, Some(snap)) => {
                facts.target = Some("ephemeral".to_string());
                facts.timeout_seconds = Some(timeout.as_secs_f64());
                facts.rto_seconds = rto.map(|r| r.as_secs_f64());
                let snapshot = Snapshot {
                    engine: snap,
                    kind,
                    format,
                    rto,
                    timeout,
                    expected,
                };
                let (status, summary, remedy) =
                    self.restore_snapshot(source, backup, spec, snapshot, &mut facts);
                return outcome(facts, status, summary, remedy);
            }
            (None, None) => {
                return outcome(
                    facts,
                    Status::Error,
                    format!("not restorable: no engine restores {kind}"),
                    None,
                );
            }
        };
        let url = self
            .overrides
            .scratch_url
            .clone()
            .or(spec.scratch_url.clone());
        let url = url.as_deref();
        facts.target = Some(url.map(redact).unwrap_or_else(|| "ephemeral".to_string()));
        let (endpoint, start_seconds) = match self.endpoint(ops, url) {
            Ok(e) => e,
            Err(e) => {
                if let Some(full) = space::at_start(&e.to_string()) {
                    let summary = format!(
                        "no scratch {} server: {}: {e}",
                        engine.name(),
                        full.describe("")
                    );
                    facts.scratch_full = Some(full.into());
                    return outcome(facts, Status::Error, summary, Some(SPACE_REMEDY));
                }
                return outcome(
                    facts,
                    Status::Error,
                    format!("no scratch {} server: {e}", engine.name()),
                    Some(
                        "Install the server package (postgresql / mariadb-server) where backproof runs, or configure a scratch_url.",
                    ),
                );
            }
        };
        let db = match ops.create(&endpoint, timeout + LOGIN_MARGIN) {
            Ok(db) => db,
            Err(e) => {
                return outcome(
                    facts,
                    Status::Error,
                    format!("cannot create a scratch database: {e}"),
                    Some("The scratch login must be allowed to create databases and roles/users."),
                );
            }
        };
        // Dropped on every path out, including an interrupt.
        let guard = DbGuard::new(ops, db.clone());
        facts.database = Some(db.name.clone());
        facts.login_expires = Some(db.expires.to_rfc3339());
        facts.scratch_start_seconds = Some(round3(start_seconds));
        facts.timeout_seconds = Some(timeout.as_secs_f64());
        facts.rto_seconds = rto.map(|r| r.as_secs_f64());
        let started = Instant::now();
        // `_staged` holds a staged copy until the restore is done.
        let (input, _staged) = match input::open_input(source, backup, kind, format) {
            Ok(i) => i,
            Err(e) => {
                drop(guard);
                return outcome(
                    facts,
                    Status::Error,
                    format!("cannot read the dump: {e}"),
                    None,
                );
            }
        };
        let run = ops.load(&db, format, input, started + timeout);
        let restore_seconds = started.elapsed().as_secs_f64();
        facts.restore_seconds = Some(round3(restore_seconds));
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                return outcome(
                    facts,
                    Status::Error,
                    format!("the restore could not run: {e}"),
                    Some("Install the client tools (postgresql-client / mariadb-client)."),
                );
            }
        };
        facts.tool = Some(run.tool.clone());
        if !run.stderr.is_empty() {
            facts.tool_stderr = Some(run.stderr.clone());
        }
        if run.timed_out {
            drop(guard);
            return outcome(
                facts,
                Status::Fail,
                format!(
                    "restore killed after {:.0}s: over its timeout",
                    timeout.as_secs_f64()
                ),
                Some(
                    "The dump restores too slowly for its RTO (or the restore tool hangs on damaged data): investigate, or raise the RTO/--restore-timeout.",
                ),
            );
        }
        if let Some(e) = &run.setup_error {
            drop(guard);
            return outcome(
                facts,
                Status::Error,
                format!("the restore could not be set up: {e}"),
                Some("The scratch login must be allowed to create databases and roles/users."),
            );
        }
        if let Some(statement) = &run.refused {
            drop(guard);
            facts.sandbox_refused = Some(statement.clone());
            return outcome(
                facts,
                Status::Error,
                format!("not restored: backproof's sandbox refuses {statement}"),
                Some(SANDBOX_REMEDY),
            );
        }
        if let Some(e) = &run.input_error {
            drop(guard);
            facts.input_error = Some(e.clone());
            return outcome(
                facts,
                Status::Fail,
                format!("the dump could not be read to its end: {e}"),
                Some(
                    "The backup is damaged: restore from an earlier backup or a copy, and fix the backup job.",
                ),
            );
        }
        if !run.ok {
            // Measured before the teardown frees the space.
            let full = space::exhausted(&run.stderr, &endpoint);
            drop(guard);
            if let Some(full) = full {
                let target = facts.target.clone().unwrap_or_default();
                let summary = format!(
                    "not restored: {} ({}); this is backproof's sandbox, not the backup",
                    full.describe(&target),
                    full.sign.as_deref().unwrap_or("no tool said why")
                );
                facts.scratch_full = Some(full.into());
                return outcome(facts, Status::Error, summary, Some(SPACE_REMEDY));
            }
            let first = tools::first_error(&run.stderr);
            // The scratch login lacks these privileges on purpose: the dump
            // asked for more than the sandbox grants, which says nothing
            // about whether the backup is sound.
            if sandbox_denied(&first) {
                facts.sandbox_refused = Some(first.clone());
                return outcome(
                    facts,
                    Status::Error,
                    format!(
                        "not restored: backproof's sandbox refused a statement ({}): {first}",
                        run.tool
                    ),
                    Some(SANDBOX_REMEDY),
                );
            }
            return outcome(
                facts,
                Status::Fail,
                format!("{} failed ({}): {first}", run.tool, run.status),
                Some(
                    "The dump does not restore: read tool_stderr, restore from an earlier backup or a copy, and fix the backup job.",
                ),
            );
        }
        let sanity_started = Instant::now();
        let sanity = ops.restored_databases(&db).and_then(|parts| {
            if parts.is_empty() {
                // A second session counts rows beside the first; without
                // it the first counts them all.
                let helpers = ops.connect(&db).into_iter().collect();
                return ops
                    .connect(&db)
                    .and_then(|mut s| sanity::gather(s.as_mut(), helpers, spec));
            }
            facts.databases = Some(parts.iter().map(|(name, _)| name.clone()).collect());
            let roles = ops.created_roles(&db);
            facts.roles = (!roles.is_empty()).then_some(roles);
            let sessions = parts
                .into_iter()
                .map(|(name, part)| Ok((name, ops.connect(&part)?)))
                .collect::<Result<Vec<_>, EngineError>>()?;
            sanity::gather_cluster(sessions, spec)
        });
        let sanity_seconds = sanity_started.elapsed().as_secs_f64();
        drop(guard);
        facts.sanity_seconds = Some(round3(sanity_seconds));
        let sanity = match sanity {
            Ok(s) => s,
            Err(e) => {
                return outcome(
                    facts,
                    Status::Error,
                    format!("restored, but the sanity queries could not run: {e}"),
                    None,
                );
            }
        };
        let total = restore_seconds + sanity_seconds;
        let problems = sanity::judge(&sanity, spec, previous_rows, rto, total, &mut facts);
        let (status, summary, remedy) = sanity::verdict(&sanity, problems, total, &mut facts);
        outcome(facts, status, summary, remedy)
    }
}

/// A snapshot restore's engine and limits.
struct Snapshot<'a> {
    engine: &'static dyn SnapshotEngine,
    kind: Kind,
    format: Format,
    rto: Option<Duration>,
    timeout: Duration,
    expected: Option<&'a Decoded>,
}

impl RestoreSession {
    /// A configuration-store snapshot restored into a scratch server of its
    /// own, started, checked and stopped: the verdict, with `facts` filled
    /// in. Timed from the restore to the end of the checks, like a dump.
    fn restore_snapshot(
        &mut self,
        source: &dyn Storage,
        backup: &Backup,
        spec: &RestoreSpec,
        s: Snapshot<'_>,
        facts: &mut RestoreFacts,
    ) -> (Status, String, Option<&'static str>) {
        self.sweep_dirs_once();
        let wants = spec.snapshot();
        let name = s.engine.name();
        if let Err(e) = s.engine.preflight(&wants) {
            return (
                Status::Error,
                format!("not restored: {e}"),
                Some(SNAPSHOT_SETUP_REMEDY),
            );
        }
        let started = Instant::now();
        let deadline = started + s.timeout;
        let kind = if s.engine.as_stored() {
            Kind {
                compression: None,
                ..s.kind
            }
        } else {
            s.kind
        };
        let (input, _staged) = match input::open_input(source, backup, kind, s.format) {
            Ok(i) => i,
            Err(e) => {
                return (
                    Status::Error,
                    format!("cannot read the snapshot: {e}"),
                    None,
                );
            }
        };
        let restored = s.engine.restore(input, &wants, deadline);
        let restore_seconds = started.elapsed().as_secs_f64();
        facts.restore_seconds = Some(round3(restore_seconds));
        let over_time = |facts: &mut RestoreFacts, during: &str, e: &EngineError| {
            facts.tool_stderr = Some(e.to_string());
            (
                Status::Fail,
                format!(
                    "restore killed after {:.0}s {during}: over its timeout",
                    s.timeout.as_secs_f64()
                ),
                Some(SNAPSHOT_SLOW_REMEDY),
            )
        };
        let restored = match restored {
            Ok(r) => r,
            // Whatever step the deadline cut short, the restore took too long.
            Err(e) if Instant::now() >= deadline => {
                return over_time(facts, "while restoring", &e);
            }
            Err(e) => {
                if let Some(full) = space::at_start(&e.to_string()) {
                    let summary = format!("no scratch {name} server: {}: {e}", full.describe(""));
                    facts.scratch_full = Some(full.into());
                    return (Status::Error, summary, Some(SPACE_REMEDY));
                }
                return (
                    Status::Error,
                    format!("the restore could not run: {e}"),
                    Some(SNAPSHOT_SETUP_REMEDY),
                );
            }
        };
        let run = &restored.run;
        facts.tool = Some(run.tool.clone());
        if !run.stderr.is_empty() {
            facts.tool_stderr = Some(run.stderr.clone());
        }
        if run.timed_out {
            return (
                Status::Fail,
                format!(
                    "restore killed after {:.0}s: over its timeout",
                    s.timeout.as_secs_f64()
                ),
                Some(SNAPSHOT_SLOW_REMEDY),
            );
        }
        if let Some(e) = &run.input_error {
            facts.input_error = Some(e.clone());
            return (
                Status::Fail,
                format!("the snapshot could not be read to its end: {e}"),
                Some(DAMAGED_REMEDY),
            );
        }
        if !run.ok {
            let first = tools::first_error(&run.stderr);
            return (
                Status::Fail,
                format!("{} failed ({}): {first}", run.tool, run.status),
                Some(
                    "The snapshot does not restore: read tool_stderr, restore from an earlier snapshot or a copy, and fix the snapshot job.",
                ),
            );
        }
        let checks_started = Instant::now();
        let checked = s.engine.check(&restored, &wants, s.expected, deadline);
        let sanity_seconds = checks_started.elapsed().as_secs_f64();
        // Stops the server and removes its dir before the verdict.
        drop(restored);
        facts.sanity_seconds = Some(round3(sanity_seconds));
        let mut checked = match checked {
            Ok(c) => c,
            Err(e) if Instant::now() >= deadline => {
                return over_time(facts, "while checking the restored server", &e);
            }
            Err(e) => {
                return (
                    Status::Error,
                    format!("restored, but it could not be checked: {e}"),
                    Some(SNAPSHOT_SETUP_REMEDY),
                );
            }
        };
        let total = restore_seconds + sanity_seconds;
        if let Some(r) = s.rto
            && total > r.as_secs_f64()
        {
            checked.problems.push(format!(
                "restore took {total:.1}s, over the RTO of {}",
                humantime::format_duration(r)
            ));
        }
        facts.snapshot = Some(checked.facts);
        if checked.problems.is_empty() {
            (
                Status::Pass,
                format!("restored in {total:.1}s: {}", checked.holds),
                None,
            )
        } else {
            let summary = format!("restored, but {}", checked.problems.join("; "));
            facts.problems = Some(checked.problems);
            (
                Status::Fail,
                summary,
                Some(
                    "The restored store does not meet its expectations: check the snapshot job and the store it snapshots.",
                ),
            )
        }
    }
}

/// A point-in-time restore's engine and limits.
struct Physical<'a> {
    engine: &'static dyn PhysicalEngine,
    rto: Option<Duration>,
    timeout: Duration,
    previous_rows: Option<&'a BTreeMap<String, u64>>,
    /// The archive and window the verification paired the backup with.
    paired: Option<&'a PitrPairing>,
}

impl RestoreSession {
    /// A base backup recovered to its target in a scratch cluster of its
    /// own, checked like a restored dump, stopped and removed: the
    /// verdict, with `facts` filled in. Timed from the copy of the base
    /// backup to the end of the checks.
    fn restore_physical(
        &mut self,
        source: &dyn Storage,
        backup: &Backup,
        spec: &RestoreSpec,
        p: Physical<'_>,
        facts: &mut RestoreFacts,
    ) -> (Status, String, Option<&'static str>) {
        self.sweep_dirs_once();
        let wants = spec.pitr(&self.overrides, p.paired);
        let target = match wants.target {
            PitrTarget::Latest => "the end of the WAL archive".to_string(),
            t => t.describe(),
        };
        let Some(path) = source.local_path(&backup.key) else {
            return (
                Status::Error,
                "not restored: a point-in-time restore needs the base backup on a local filesystem"
                    .to_string(),
                None,
            );
        };
        let started = Instant::now();
        let deadline = started + p.timeout;
        let recovered = p.engine.recover(&path, &wants, deadline);
        let restore_seconds = started.elapsed().as_secs_f64();
        facts.restore_seconds = Some(round3(restore_seconds));
        let recovered = match recovered {
            Ok(r) => r,
            Err(e) => {
                if let Some(full) = space::at_start(&e.to_string()) {
                    let summary = format!(
                        "no scratch {} cluster: {}: {e}",
                        p.engine.name(),
                        full.describe("")
                    );
                    facts.scratch_full = Some(full.into());
                    return (Status::Error, summary, Some(SPACE_REMEDY));
                }
                return (
                    Status::Error,
                    format!("the point-in-time restore could not run: {e}"),
                    Some(PITR_SETUP_REMEDY),
                );
            }
        };
        let run = &recovered.run;
        facts.tool = Some(run.tool.clone());
        if !run.stderr.is_empty() {
            facts.tool_stderr = Some(run.stderr.clone());
        }
        facts.pitr = Some(recovered.facts.clone());
        if run.timed_out {
            return (
                Status::Fail,
                format!(
                    "restore killed after {:.0}s while replaying WAL: over its timeout",
                    p.timeout.as_secs_f64()
                ),
                Some(
                    "The base backup and its WAL recover too slowly for the RTO: take base backups more often, or raise the RTO/--restore-timeout.",
                ),
            );
        }
        if !run.ok {
            let pf = &recovered.facts;
            let why = pf
                .server_error
                .clone()
                .unwrap_or_else(|| tools::first_error(&run.stderr));
            return match (&pf.missing_segment, &wants.wal_archive) {
                (Some(seg), Some(archive)) if archive.join(seg).exists() => (
                    Status::Error,
                    format!(
                        "not recovered: the WAL archive holds {seg}, but the scratch server's user could not read it ({why})"
                    ),
                    Some(PITR_SETUP_REMEDY),
                ),
                (Some(seg), _) => (
                    Status::Fail,
                    format!(
                        "not recovered to {target}: the WAL archive has no {seg}, which the replay needed ({why})"
                    ),
                    Some(PITR_BROKEN_REMEDY),
                ),
                (None, _) => (
                    Status::Fail,
                    format!(
                        "not recovered to {target}: the server stopped during recovery ({why})"
                    ),
                    Some(PITR_BROKEN_REMEDY),
                ),
            };
        }
        let sanity_started = Instant::now();
        let sanity = p
            .engine
            .sessions(&recovered, spec.database.as_deref())
            .and_then(|s| {
                facts.databases = Some(s.parts.iter().map(|(n, _)| n.clone()).collect());
                sanity::gather_physical(s.parts, &s.main, spec)
            });
        let measured_at = chrono::Utc::now();
        let sanity_seconds = sanity_started.elapsed().as_secs_f64();
        let Recovered {
            instance,
            facts: mut pitr,
            problems: replay_problems,
            ..
        } = recovered;
        // Stops the cluster and removes its dir before the verdict.
        drop(instance);
        facts.sanity_seconds = Some(round3(sanity_seconds));
        let sanity = match sanity {
            Ok(s) => s,
            Err(e) => {
                facts.pitr = Some(pitr);
                return (
                    Status::Error,
                    format!("recovered, but the sanity queries could not run: {e}"),
                    None,
                );
            }
        };
        let total = restore_seconds + sanity_seconds;
        let mut problems = sanity::judge(&sanity, spec, p.previous_rows, p.rto, total, facts);
        problems.extend(replay_problems);
        // The data lost at the recovery point: how long before it the
        // newest row was written (its age now, less the time since).
        let point = match wants.target {
            PitrTarget::Time(t) => Some(t),
            PitrTarget::Latest => pitr
                .replay_timestamp
                .as_deref()
                .and_then(engine::parse_instant),
        };
        if let (Some(point), Some(age)) =
            (point, facts.freshness.as_ref().and_then(|f| f.age_seconds))
        {
            let since = (measured_at - point).num_milliseconds() as f64 / 1000.0;
            pitr.data_loss_seconds = Some(round3(age - since));
        }
        let how = match (&pitr.stopped_at, &pitr.replay_timestamp) {
            (Some(stop), Some(last)) => {
                format!("stopped at the first commit past it, {stop}; last replayed {last}")
            }
            (None, Some(last)) => format!("last replayed transaction {last}"),
            _ => "no transaction replayed".to_string(),
        };
        let consistency_only = pitr.consistency_only;
        facts.pitr = Some(pitr);
        let (status, summary, remedy) = sanity::verdict(&sanity, problems, total, facts);
        match status {
            Status::Pass if consistency_only => (
                Status::Warn,
                format!(
                    "recovered to the base backup's consistency point only, in {total:.1}s: no WAL archive was given, so {target} was not tested"
                ),
                Some(
                    "Give the WAL archive (wal_archive on the source, or --wal-archive) so that the restore replays it to its target.",
                ),
            ),
            Status::Pass => {
                let rows: u64 = sanity.rows.values().sum();
                (
                    Status::Pass,
                    format!(
                        "recovered to {target} in {total:.1}s ({how}): {} table(s), {rows} row(s)",
                        sanity.rows.len()
                    ),
                    None,
                )
            }
            _ => (status, summary, remedy),
        }
    }
}

impl Drop for RestoreSession {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A scratch server being started on a thread of its own.
struct Warm {
    started: std::sync::mpsc::Receiver<Result<Running, Arc<EngineError>>>,
    keeper: Keeper,
}

/// The thread that spawned a server, held until the server is stopped: a
/// child's parent-death signal fires when the *thread* that spawned it
/// exits, not the process. Dropping it lets the thread end.
struct Keeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts an engine's ephemeral server, timed.
fn start_running(engine: &'static dyn EngineKind) -> Result<Running, Arc<EngineError>> {
    let started = Instant::now();
    engine
        .start()
        .map(|s| Running {
            _instance: s.instance,
            endpoint: s.endpoint,
            start_seconds: started.elapsed().as_secs_f64(),
        })
        .map_err(Arc::new)
}

/// Drops a scratch database (and its login) when the restore is done,
/// however it ends; registered with the interrupt handler meanwhile.
struct DbGuard {
    ops: &'static dyn EngineKind,
    db: ScratchDb,
    token: u64,
}

impl DbGuard {
    fn new(ops: &'static dyn EngineKind, db: ScratchDb) -> DbGuard {
        let (o, d) = (ops, db.clone());
        let token = crate::interrupt::on_interrupt(Box::new(move || {
            let _ = o.drop_db(&d);
        }));
        DbGuard { ops, db, token }
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if crate::interrupt::interrupted() {
            return;
        }
        if let Err(e) = self.ops.drop_db(&self.db) {
            tracing::warn!(
                database = %self.db.name,
                "could not drop scratch database {}: {e} (a later run sweeps it once it expires)",
                self.db.name
            );
        }
        crate::interrupt::done(self.token);
    }
}

/// True for backups [`RestoreSession::restore`] can restore.
pub fn is_restorable(kind: Kind, backup: &Backup, engine: Option<Engine>) -> bool {
    registry::choose(kind, backup, engine).is_some()
}

/// For a point-in-time restore backproof could not set up or judge.
const PITR_SETUP_REMEDY: &str = "This is no verdict on the base backup: install the PostgreSQL server of the backup's major version where backproof runs, and make the WAL archive readable by its user (postgres).";

/// For a base backup and archive that do not recover to the target.
const PITR_BROKEN_REMEDY: &str = "The base backup and its WAL archive do not recover to the target: find the missing segment (archive_command failures in the server's log), take a new base backup, and check the archive.";

/// For a restore stopped by a full scratch disk: never "the backup is bad".
const SPACE_REMEDY: &str = "Give the scratch server more disk (TMPDIR for the ephemeral instance, or the scratch_url server's data volume), then run the restore again; this is no verdict on the backup.";

/// For a snapshot restore backproof could not set up or judge.
const SNAPSHOT_SETUP_REMEDY: &str = "This is no verdict on the snapshot: install the store's tools (etcd-server and etcd-client, or OpenBao's bao) where backproof runs, and give [sources.restore] what the message names.";

/// For a snapshot restore over its timeout.
const SNAPSHOT_SLOW_REMEDY: &str = "The snapshot restores too slowly for its RTO (or the tool hangs on damaged data): investigate, or raise the RTO/--restore-timeout.";

/// For a backup that could not be read to its end.
const DAMAGED_REMEDY: &str =
    "The backup is damaged: restore from an earlier backup or a copy, and fix the backup job.";

/// For a restore stopped by the sandbox: never "the backup is bad".
const SANDBOX_REMEDY: &str = "backproof restores as an unprivileged login and refuses what could reach the scratch server's files, shell or other databases; this is no verdict on the backup. Restore it by hand in an isolated server, or keep such statements out of the dump.";

/// A tool's first error is a privilege the scratch login lacks on purpose
/// (psql's restricted mode refusing a meta-command; PostgreSQL SQLSTATE 42501 "permission denied" / "must be superuser";
/// MariaDB 1044 access denied to a database, 1142 command denied, 1227
/// SUPER or similar needed, 1370 routine denied, 1419 SUPER for binlogged
/// routines).
fn sandbox_denied(first_error: &str) -> bool {
    const SIGNS: [&str; 10] = [
        "backslash commands are restricted",
        "permission denied",
        "must be superuser",
        "must have privileges",
        "ERROR 1044",
        "ERROR 1142",
        "ERROR 1227",
        "ERROR 1370",
        "ERROR 1419",
        "Access denied",
    ];
    SIGNS.iter().any(|s| first_error.contains(s))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
