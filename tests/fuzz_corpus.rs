//! The short in-suite run of the fuzz targets (issue 10, item 15): every
//! committed corpus file under `fuzz/corpus/<target>/`, plus a fixed-seed set
//! of simple mutations of them (bit flips, truncations, overwritten and
//! duplicated ranges), fed to `backproof::fuzzing::<target>`. Nothing may
//! panic, and no single input may take longer than a linear parser could
//! (a generous bound for a debug build). The libFuzzer campaign itself is in
//! `fuzz/` (docs/FUZZING.md).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Mutated inputs per target, spread over its corpus files.
const MUTATIONS: usize = 3000;
/// Mutations start from at most this much of a corpus file, so that the
/// whole run stays within seconds in a debug build.
const MUTATE_FROM: usize = 32 * 1024;
/// No input of up to 256 KiB takes this long unless the work is out of
/// proportion to the bytes (or stuck).
const SLOW: Duration = Duration::from_secs(2);
/// Past this the input is taken to hang and the run stops waiting.
const HANG: Duration = Duration::from_secs(20);

/// xorshift64*: the same mutations on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    &[0xff; 8],
    &[0x00; 8],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x80, 0x00, 0x00, 0x00],
    &[0x00, 0x00, 0x00, 0x80],
    &[0x01],
    b"\n",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> (String, Vec<u8>) {
    let mut d = seed[..seed.len().min(MUTATE_FROM)].to_vec();
    if d.is_empty() {
        d.push(0);
    }
    let len = d.len();
    let what = match rng.below(6) {
        0 => {
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let at = rng.below(len);
                d[at] ^= 1 << rng.below(8);
            }
            format!("{flips} bit flip(s)")
        }
        1 => {
            let at = rng.below(len);
            d.truncate(at);
            format!("truncated to {at}")
        }
        2 => {
            let at = rng.below(len);
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let n = v.len().min(len - at);
            d[at..at + n].copy_from_slice(&v[..n]);
            format!("{n} byte(s) at {at} overwritten")
        }
        3 => {
            let at = rng.below(len);
            let n = 1 + rng.below(64.min(len - at));
            d.drain(at..at + n);
            format!("{n} byte(s) at {at} removed")
        }
        4 => {
            let at = rng.below(len);
            let n = 1 + rng.below(512.min(len - at));
            let chunk = d[at..at + n].to_vec();
            let to = rng.below(d.len());
            d.splice(to..to, chunk);
            format!("{n} byte(s) from {at} duplicated at {to}")
        }
        _ => {
            let at = rng.below(len);
            d[at] = rng.next() as u8;
            format!("byte {at} randomised")
        }
    };
    (what, d)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// Inputs for one target: the corpus, then its mutations.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let files = corpus(target);
    let mut out: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, d)| (p.display().to_string(), d.clone()))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for k in 0..MUTATIONS {
        let (p, seed) = &files[k % files.len()];
        let (what, data) = mutate(&mut rng, seed);
        let name = p.file_name().unwrap().to_string_lossy();
        out.push((format!("{name} with {what}"), data));
    }
    out
}

/// Runs every input on a worker thread; returns the failures, each with
/// the failing input saved for `cargo fuzz run <target> FILE`.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let f = backproof::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
        .1;
    run_all(target, f, inputs)
}

fn run_all(target: &str, f: fn(&[u8]), inputs: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    let (work_tx, work_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        for data in work_rx {
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(|| f(&data)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(non-string panic)".into())
            });
            if tx.send((outcome, started.elapsed())).is_err() {
                return;
            }
        }
    });
    let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_corpus_failures");
    let mut failures = Vec::new();
    let mut fail = |what: String, data: &[u8], n: usize| {
        std::fs::create_dir_all(&saved).unwrap();
        let file = saved.join(format!("{target}-{n}"));
        std::fs::write(&file, data).unwrap();
        failures.push(format!("{what} (input saved as {})", file.display()));
    };
    let mut slowest = (Duration::ZERO, String::new(), 0usize);
    for (n, (what, data)) in inputs.iter().enumerate() {
        work_tx.send(data.clone()).unwrap();
        match rx.recv_timeout(HANG) {
            Ok((outcome, took)) => {
                if took > slowest.0 {
                    slowest = (took, what.clone(), data.len());
                }
                if let Err(message) = outcome {
                    fail(format!("{target}: {what}: panicked: {message}"), data, n);
                } else if took > SLOW {
                    fail(
                        format!("{target}: {what}: took {took:?} for {} bytes", data.len()),
                        data,
                        n,
                    );
                }
            }
            Err(_) => {
                fail(
                    format!("{target}: {what}: no answer after {HANG:?} (hang)"),
                    data,
                    n,
                );
                break;
            }
        }
    }
    eprintln!(
        "{target}: {} inputs, slowest {:?} ({}, {} bytes)",
        inputs.len(),
        slowest.0,
        slowest.1,
        slowest.2
    );
    failures
}

fn check(target: &str) {
    let failures = replay(target, inputs(target));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn inspect() {
    check("inspect");
}

#[test]
fn snapshots() {
    check("snapshots");
}

#[test]
fn pgdump() {
    check("pgdump");
}

#[test]
fn tar() {
    check("tar");
}

#[test]
fn image() {
    check("image");
}

#[test]
fn text() {
    check("text");
}

#[test]
fn compressed() {
    check("compressed");
}

#[test]
fn config() {
    check("config");
}

/// The harness itself: a target that panics on some input is caught.
#[test]
fn a_panicking_target_fails_the_replay() {
    fn fragile(data: &[u8]) {
        assert!(data.first() != Some(&0x42), "fragile parser");
    }
    let inputs = vec![
        ("fine".to_string(), b"ok".to_vec()),
        ("bad".to_string(), b"B".to_vec()),
    ];
    let failures = run_all("selftest", fragile, inputs);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("fragile parser"), "{failures:?}");
}

/// Every target the library offers is replayed here and has a corpus.
#[test]
fn every_target_is_replayed() {
    let here = [
        "inspect",
        "snapshots",
        "pgdump",
        "tar",
        "image",
        "text",
        "compressed",
        "config",
    ];
    for (name, _) in backproof::fuzzing::TARGETS {
        assert!(here.contains(name), "fuzz target {name} not replayed");
    }
}
