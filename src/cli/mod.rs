//! The command line, ripgrep-style: [`flags`] is what clap parses,
//! [`config`] turns it into checked settings, [`runtime`] decides how a run
//! is hosted and [`run`] carries it out. [`main`] is `brigade`'s; a user's
//! worker binary enters through `brigade::worker::main` with the same
//! worker flags.

pub mod config;
pub mod exit;
pub mod flags;
pub mod run;
pub mod runtime;

use std::process::ExitCode;

use clap::FromArgMatches;

/// `brigade`: parse, build the settings, carry them out.
pub fn main() -> ExitCode {
    let matches = flags::command().get_matches();
    let flags = flags::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    run::carry_out(
        config::Action::from_flags(flags.command),
        flags.spin.window(),
        flags.log.log_format,
    )
}
