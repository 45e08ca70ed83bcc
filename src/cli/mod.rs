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

/// `brigade`: parse, build the settings, carry them out. A command line
/// clap refuses exits 2; asked for JSON, with a JSON error on stdout.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = flags::command()
        .try_get_matches_from(&args)
        .and_then(|m| flags::Cli::from_arg_matches(&m));
    let flags = match parsed {
        Ok(flags) => flags,
        Err(e) if e.use_stderr() && flags::asks_for_json(&args[1..]) => {
            return exit::report_usage(&clap_message(&e), exit::ErrorStyle::Json);
        }
        Err(e) => e.exit(),
    };
    let style = exit::ErrorStyle::of(flags.command.format());
    run::carry_out(
        config::Action::from_flags(flags.command),
        flags.spin.window(),
        flags.log.log_format,
        style,
    )
}

/// What clap says is wrong, without its `error: ` and the usage after it.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    text.split("\n\n").next().unwrap_or(text).trim().to_string()
}
