//! How a run is hosted: the default log level, the idle spinner
//! (`--spin-us`) and which tokio runtime each subcommand gets.

use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Runtime;

use super::config::Action;
use super::flags::LogFormat;

/// Starts logging and the idle spinner, then builds the runtime `action`
/// runs on.
pub fn start(action: &Action, spin: Duration, log: LogFormat) -> anyhow::Result<Runtime> {
    let long_running = matches!(
        action,
        Action::Up(_)
            | Action::Coordinator { .. }
            | Action::Worker(_)
            | Action::Workers(_)
            | Action::IoTarget { .. }
    );
    init_tracing(if long_running { "info" } else { "warn" }, log);
    if let Err(e) = brigade_worker::idle_spin::start_process_spinner(spin) {
        tracing::warn!(error = %e, "--spin-us: no idle spinner, running without one");
    }
    // The coordinator, workers, `up` and the client commands run on one
    // thread: their work is short handlers and message passing (the slots
    // have threads of their own), and waking a task on the same thread
    // costs no cross-thread wake-up. Measured (BENCHMARKS.md): single-task
    // round trip 275-329 -> 239-255 µs, W_NOOP_1M faster on less CPU. The
    // demo and the lab host a coordinator and a measuring client together,
    // so they keep a thread per core.
    let multi_thread = matches!(action, Action::Demo | Action::Bench(_));
    // Every runtime thread that wakes up arms the idle spinner (a no-op
    // without --spin-us): the wake-ups that follow land on a running CPU.
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .on_thread_unpark(brigade_worker::idle_spin::arm)
        .build()
        .context("could not start the async runtime")
}

/// Logs to stderr at `default` level unless `BRIGADE_LOG` says otherwise,
/// as text or as JSON lines (`--log-format json`: one object per event with
/// `timestamp`, `level`, `target` and the event's `fields`).
fn init_tracing(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRIGADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => logs.json().try_init(),
    };
}
