//! The command line, ripgrep-style: [`flags`] is what clap parses,
//! [`config`] turns it into checked settings, [`runtime`] decides how a run
//! is hosted and [`run`] carries it out. [`main`] is `brigade`'s; a user's
//! worker binary enters through `brigade::worker::main` with the same
//! worker flags.

pub mod config;
pub mod flags;
pub mod run;
pub mod runtime;

use std::process::ExitCode;

use clap::Parser;

/// `brigade`: parse, build the settings, carry them out.
pub fn main() -> ExitCode {
    let flags = flags::Cli::parse();
    run::carry_out(
        config::Action::from_flags(flags.command),
        flags.spin.window(),
    )
}
