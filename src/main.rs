//! `brigade`: one binary, thin CLI. Parses the flags ([`cli::flags`]), builds
//! the settings ([`cli::config`]), starts the runtime ([`cli::runtime`]) and
//! hands the run to the crate that does the work.

mod cli;
mod cluster;
mod commands;
mod demo;

use std::time::Duration;

use clap::Parser;

use crate::cli::config::{Action, Request};

fn main() {
    if let Err(e) = start(cli::flags::Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Builds the settings, then runs them on the runtime they call for.
fn start(flags: cli::flags::Cli) -> anyhow::Result<()> {
    let action = Action::from_flags(flags.command)?;
    if let Action::Executor = action {
        std::process::exit(brigade_worker::exec::child::run_stdio());
    }
    let rt = cli::runtime::start(&action, Duration::from_micros(flags.spin_us))?;
    rt.block_on(run(action))
}

async fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Executor => unreachable!("handled before the runtime starts"),
        Action::Demo => demo::run().await,
        Action::Bench(args) => brigade_lab::run(args).await,
        Action::Up(up) => {
            let listener = cluster::bind(&up.listen).await?;
            cluster::up(
                listener,
                up.coordinator,
                up.workers,
                up.slots,
                up.allow_exec,
            )
            .await
        }
        Action::Coordinator { listen, config } => {
            cluster::coordinator(cluster::bind(&listen).await?, config).await
        }
        Action::Worker(config) => cluster::worker(config).await,
        Action::Client {
            coordinator,
            request,
        } => {
            let c = &mut brigade_client::Client::connect(&coordinator).await?;
            match request {
                Request::Submit { job, wait, format } => {
                    commands::submit(c, &job, wait, format).await
                }
                Request::Status(format) => commands::status(c, format).await,
                Request::Jobs(format) => commands::jobs(c, format).await,
                Request::Job { id, wait, format } => commands::job(c, id, wait, format).await,
                Request::Results { id, format, follow } => {
                    commands::results(c, id, format, follow).await
                }
                Request::Cancel(id) => commands::cancel(c, id).await,
                Request::Workers(format) => commands::workers(c, format).await,
            }
        }
        Action::IoTarget { listen } => {
            let listener = cluster::bind(&listen).await?;
            println!(
                "brigade io-target listening on {}",
                cluster::url_of(listener.local_addr()?)
            );
            brigade_worker::io_target::serve(listener, cluster::shutdown_signal()).await?;
            Ok(())
        }
    }
}
