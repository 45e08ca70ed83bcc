//! A worker binary of your own: [`main`] gives a program the same command
//! line as `brigade worker` and serves its [`Registry`] on process, thread
//! and async slots.
//!
//! The program's process slots are its own executor children: the worker
//! starts this very binary (`std::env::current_exe()`) with a hidden
//! `executor` subcommand, which [`main`] answers by running tasks from the
//! same registry. So the registry must be built the same way on every run
//! (from code, not from anything that changes between runs).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::config::Action;
use crate::cli::flags::WorkerCli;
use crate::cli::run::carry_out;
use crate::task::Registry;

/// Runs this program as a brigade worker offering `registry`'s workloads,
/// until Ctrl-C or SIGTERM (then it drains: running tasks finish, queued
/// ones go back to the coordinator).
///
/// The command line is `brigade worker`'s: `--coordinator URL` (or
/// `BRIGADE_COORDINATOR`), `--procs N`, `--threads N`, `--async N`,
/// `--name NAME`, `--prefetch N`, `--connect-timeout-s S`, `--allow-exec`,
/// `--spin-us N`; `--help` lists them with the workloads offered. Returns
/// the exit code: 0 after a clean drain, 1 after an error (printed on
/// stderr as `error: ...`).
///
/// ```no_run
/// use brigade::task::{sync_task, Kind, Reduction, Registry, TaskContext, WorkloadDef};
/// use serde::Serialize;
///
/// #[derive(Serialize)]
/// struct Counted {
///     line: String,
///     words: usize,
/// }
///
/// fn count_words(line: String, _: &TaskContext) -> Result<Counted, String> {
///     let words = line.split_whitespace().count();
///     Ok(Counted { line, words })
/// }
///
/// fn main() -> std::process::ExitCode {
///     let mut registry = Registry::builtin();
///     let def = WorkloadDef::new("count-words", Kind::Cpu, Reduction::List, "counts words");
///     registry.register(sync_task(def, count_words)).expect("a well-formed definition");
///     brigade::worker::main(registry)
/// }
/// ```
pub fn main(registry: Registry) -> ExitCode {
    let mut offered = format!("Workloads offered: {}", registry.catalog().known_names());
    if registry.catalog().contains("exec") {
        offered.push_str(" (exec only with --allow-exec)");
    }
    let matches = WorkerCli::command().after_help(offered).get_matches();
    let flags = WorkerCli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let spin = flags.spin.window();
    let log = flags.log.log_format;
    carry_out(
        Action::from_worker_flags(flags, registry),
        spin,
        log,
        crate::cli::exit::ErrorStyle::Text,
    )
}
