//! The command line, ripgrep-style: [`flags`] is what clap parses,
//! [`config`] turns it into checked settings, [`runtime`] decides how a run
//! is hosted. `main` only parses, builds and dispatches.

pub mod config;
pub mod flags;
pub mod runtime;
