//! What a signal (SIGINT, SIGTERM, SIGHUP) does to a run: everything alive
//! (scratch instances, scratch databases on a URL server) is removed, the
//! run is recorded as interrupted where a recorder was set, no verdict is
//! written about the work it cut short, and the process exits with 128 +
//! the signal (130, 143, 129).
//!
//! The handler is installed by the first [`on_interrupt`] or
//! [`record_with`]; until then a signal ends the process the default way,
//! which leaves nothing to clean (a later run sweeps what a kill leaves).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

type CleanupFn = Box<dyn FnOnce() + Send>;
/// Returns what went wrong, if the record could not be written.
type RecordFn =
    Box<dyn FnOnce(Interruption) -> Result<(), Box<dyn std::error::Error + Send>> + Send>;

/// Cleanups for everything currently alive, run by the handler, newest
/// first. A std Mutex: the handler runs on its own thread and nothing
/// async happens while it is held.
static CLEANUPS: Mutex<Vec<(u64, CleanupFn)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Writes the interrupted run into the history, once the cleanups are done.
static RECORDER: Mutex<Option<RecordFn>> = Mutex::new(None);
static HANDLER: std::sync::Once = std::sync::Once::new();

/// [`RUNNING`], [`COMMITTING`], or the signal that interrupted the run.
/// The handler and [`halt_if_interrupted`] race for it with one
/// compare-and-swap: whichever wins decides whether the run's verdicts are
/// written (the work finished) or not (a signal cut it short).
static STATE: AtomicI32 = AtomicI32::new(RUNNING);
const RUNNING: i32 = 0;
/// The work is done and its verdicts are being written: a signal now is
/// too late to cut anything short, and does not stop the write.
const COMMITTING: i32 = -1;

/// The signal that cut a run short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interruption {
    pub signal: i32,
}

impl Interruption {
    /// `SIGTERM`, `SIGINT`, ...
    pub fn name(&self) -> String {
        signal_hook::low_level::signal_name(self.signal)
            .map(str::to_string)
            .unwrap_or_else(|| format!("signal {}", self.signal))
    }

    /// The shell's convention, which Kubernetes and cron report as well.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal
    }
}

/// True once a signal has cut the run short.
pub fn interrupted() -> bool {
    STATE.load(Ordering::SeqCst) > 0
}

/// Called before a command writes any verdict. If a signal came first,
/// nothing this run found is written (a restore killed by our own cleanup
/// is no failed backup): this waits for the handler to end the process,
/// and ends it itself should the cleanup hang. Otherwise the run commits,
/// and a later signal no longer interrupts it.
pub fn halt_if_interrupted() {
    match STATE.compare_exchange(RUNNING, COMMITTING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {}
        Err(COMMITTING) => {}
        Err(sig) => {
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(128 + sig);
        }
    }
}

/// Registers `f` to run if the process is interrupted; returns a token for
/// [`done`] once the normal teardown has run.
pub fn on_interrupt(f: CleanupFn) -> u64 {
    install();
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

/// Sets how an interrupted run is recorded (a command with a history
/// writes a run record carrying the signal and no verdict), and watches
/// for signals from now on.
pub fn record_with(f: RecordFn) {
    if let Ok(mut r) = RECORDER.lock() {
        *r = Some(f);
    }
    install();
}

fn install() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        // If the signals cannot be watched, Drop guards still clean up on
        // a normal exit, and the next run sweeps what a kill leaves.
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if STATE
                    .compare_exchange(RUNNING, sig, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    handle(Interruption { signal: sig });
                }
                // Else the run is writing the verdicts of finished work;
                // it exits on its own in a moment.
            }
        });
    });
}

fn handle(i: Interruption) -> ! {
    let pending: Vec<_> = CLEANUPS
        .lock()
        .map(|mut c| c.drain(..).collect())
        .unwrap_or_default();
    for (_, f) in pending.into_iter().rev() {
        f();
    }
    let recorder = RECORDER.lock().ok().and_then(|mut r| r.take());
    let recorded = match recorder.map(|f| f(i)) {
        Some(Ok(())) => ", the run recorded as interrupted".to_string(),
        Some(Err(e)) => format!(", but the run could not be recorded as interrupted: {e}"),
        None => String::new(),
    };
    eprintln!(
        "backproof: interrupted by {}; scratch instances and databases removed{recorded}, no verdict written",
        i.name()
    );
    std::process::exit(i.exit_code());
}
