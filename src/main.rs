//! The `backproof` command line: parse flags, call one library command, print what it returns
//! and map the outcome to the exit code contract (0 pass, 1 failed, 2 could not run).

use std::process::ExitCode;

use clap::Parser;

use backproof::cli::{Cli, Command, HistoryAction};
use backproof::commands::{
    self, CommandError, chain, compare::CompareRequest, export::ExportRequest, ls::LsRequest,
    verify::Verified,
};
use backproof::redact::redact_text;
use backproof::report::{self, Format, Report};

fn main() -> ExitCode {
    let cli = Cli::parse();
    backproof::logging::init(cli.log.log_format, cli.log.log_level);
    ExitCode::from(run(cli) as u8)
}

/// Errors may quote a location or a config line: secrets are masked.
fn fail(e: &dyn std::fmt::Display) -> i32 {
    eprintln!("backproof: {}", redact_text(&e.to_string()));
    2
}

/// Prints the report; 2 if it cannot be rendered in that format.
fn print_report(report: &Report, format: Format, verbose: bool) -> Result<(), i32> {
    let text = format.run_report(report, verbose).map_err(|e| fail(&e))?;
    stdout(text.as_bytes())
}

/// Writes to stdout; a reader that went away (`| head`) is no error.
fn stdout(bytes: &[u8]) -> Result<(), i32> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(fail(&e)),
        _ => Ok(()),
    }
}

fn write_out(bytes: std::io::Result<Vec<u8>>) -> i32 {
    let written = bytes.map_err(|e| fail(&e)).and_then(|b| stdout(&b));
    written.map_or_else(|code| code, |()| 0)
}

/// A spot check's report, then its exit code (2 if it was not recorded).
fn finish(v: Verified, format: Format, verbose: bool) -> i32 {
    let code = match (print_report(&v.report, format, verbose), &v.recorded) {
        (Err(code), _) => code,
        (Ok(()), Ok(())) => v.report.exit_code(),
        (Ok(()), Err(e)) => fail(e),
    };
    // The process ends here: freeing a large report string by string would
    // only delay the exit (70 ms for 20,000 backups).
    std::mem::forget(v);
    code
}

fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Verify(args) => match commands::verify::verify(&args.request()) {
            Ok(v) => finish(v, args.common.format, args.common.verbose),
            Err(e) => fail(&e),
        },
        Command::Compare {
            src,
            dst,
            common,
            work,
            store,
            no_history,
            shard,
        } => {
            let req = CompareRequest {
                shard: shard.get(),
                src,
                dst,
                options: work.options(),
                s3: common.s3.options(),
                history: store.record_to(no_history),
            };
            finish(
                commands::compare::compare(&req),
                common.format,
                common.verbose,
            )
        }
        Command::Ls {
            path,
            common,
            shard,
            count,
            no_read,
        } => {
            let req = LsRequest {
                shard: shard.get(),
                read_heads: !no_read,
                path: &path,
                timestamp_pattern: common.timestamp_pattern.as_deref(),
                s3: &common.s3.options(),
            };
            if count {
                return match commands::ls::count(&req) {
                    Ok(c) => write_out(Ok(commands::ls::render_count(&c, common.format).into())),
                    Err(e) => fail(&e),
                };
            }
            match commands::ls::list(&req) {
                Ok(list) => write_out(Ok(commands::ls::render(&list, common.format).into())),
                Err(e) => fail(&e),
            }
        }
        Command::Run(args) => {
            let (req, common) = (args.request(), &args.common);
            let n = match commands::nightly::nightly(&req) {
                Ok(n) => n,
                Err(e) => return fail(&e),
            };
            let mut code = n.report.exit_code();
            match n.written {
                Ok(paths) => {
                    for p in paths {
                        eprintln!("backproof: wrote {}", p.display());
                    }
                }
                Err(e) => code = fail(&e),
            }
            if let Err(e) = n.recorded {
                code = fail(&e);
            }
            let code = print_report(&n.report, common.format, common.verbose)
                .map_or_else(|e| e, |()| code);
            n.closing.iter().for_each(|l| eprintln!("{l}"));
            code
        }
        Command::Report {
            since,
            format,
            out,
            source,
            config,
            store,
        } => {
            let req = ExportRequest {
                history: store.location(),
                since: chrono::Utc::now()
                    - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX),
                format,
                source: source.zip(config),
            };
            let e = match commands::export::export(&req) {
                Ok(e) => e,
                Err(e) => return fail(&e),
            };
            let written = match out {
                Some(path) => report::write_atomically(&path, e.text.as_bytes())
                    .map_err(|source| fail(&CommandError::Write { path, source })),
                None => stdout(e.text.as_bytes()),
            };
            written.map_or_else(|code| code, |()| if e.chain_intact { 0 } else { 1 })
        }
        Command::Completions { shell } => write_out(Ok(backproof::cli::completions(shell))),
        Command::Man => write_out(backproof::cli::man_page()),
        Command::History {
            action:
                HistoryAction::Verify {
                    store,
                    expect_head,
                    format,
                },
        } => {
            let check = match chain::verify_chain(&store.location(), expect_head.as_deref()) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let shown = stdout(chain::render(&check, format).as_bytes());
            shown.map_or_else(|c| c, |()| i32::from(!check.problems.is_empty()))
        }
        Command::History {
            action: HistoryAction::Prune { store, before },
        } => match chain::prune(&store.location(), before) {
            Ok(p) => {
                println!(
                    "pruned {} run(s); runs 1..{} are kept as links",
                    p.runs, p.through
                );
                0
            }
            Err(e) => fail(&e),
        },
    }
}
