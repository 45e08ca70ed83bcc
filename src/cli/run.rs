//! Carrying out an [`Action`]: the executor loop at once (no runtime, no
//! logging), anything else on the runtime [`super::runtime`] picks, handed
//! to the crate that does the work. `brigade` and a user's worker binary
//! (`brigade::worker::main`) both end here; an error is printed as
//! `error: ...` and exits 1.

use std::process::ExitCode;

use anyhow::Context;
use std::time::Duration;

use super::config::{Action, Request};
use crate::{cluster, commands, demo};

/// Runs `action` (or reports why it could not be built) with the idle
/// spinner's window `spin`; the process's exit code.
pub fn carry_out(action: anyhow::Result<Action>, spin: Duration) -> ExitCode {
    let run = action.and_then(|action| {
        if let Action::Executor(workloads) = action {
            let code = brigade_worker::executors::child::run_stdio_with(&workloads);
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        let rt = super::runtime::start(&action, spin)?;
        rt.block_on(run(action)).map(|()| ExitCode::SUCCESS)
    });
    run.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

async fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Executor(_) => unreachable!("handled before the runtime starts"),
        Action::Demo => demo::run().await,
        Action::Bench(args) => brigade_lab::run(args).await,
        Action::Up(up) => {
            let listener = cluster::bind(&up.listen).await?;
            let exposure = cluster::Exposure {
                tls: false,
                auth: false,
                insecure: up.insecure,
            };
            cluster::check_exposure(&listener, &exposure).context(
                "`brigade up` serves neither TLS nor tokens: for remote workers run \
                 `brigade coordinator` with them",
            )?;
            let http = cluster::bind_http(up.http_listen.as_deref()).await?;
            cluster::up(
                listener,
                http,
                up.coordinator,
                up.workers,
                up.slots,
                up.allow_exec,
            )
            .await
        }
        Action::Coordinator {
            listen,
            http_listen,
            config,
            insecure,
        } => {
            let listener = cluster::bind(&listen).await?;
            let exposure = cluster::Exposure {
                tls: config.tls.is_some(),
                auth: config.auth.is_some(),
                insecure,
            };
            cluster::check_exposure(&listener, &exposure)?;
            let http = cluster::bind_http(http_listen.as_deref()).await?;
            cluster::coordinator(listener, http, config).await
        }
        Action::Worker(config) => cluster::worker(config).await,
        Action::Client {
            coordinator,
            credentials,
            request,
        } => {
            let c = &mut brigade_client::Client::connect_with(&coordinator, &credentials).await?;
            match request {
                Request::Submit { job, wait, format } => {
                    commands::submit(c, &job, wait, format).await
                }
                Request::Status(format) => commands::status(c, format).await,
                Request::Health(service) => commands::health(c, &service).await,
                Request::Jobs { all, format } => commands::jobs(c, all, format).await,
                Request::Purge {
                    all,
                    older_than,
                    format,
                } => commands::purge(c, all, older_than, format).await,
                Request::Job { id, wait, format } => commands::job(c, id, wait, format).await,
                Request::Results {
                    id,
                    format,
                    follow,
                    order,
                } => commands::results(c, id, format, follow, order).await,
                Request::Cancel(id) => commands::cancel(c, id).await,
                Request::Workers(format) => commands::workers(c, format).await,
            }
        }
        Action::TokenCreate {
            role,
            name,
            auth_file,
        } => {
            let secret = brigade_coordinator::auth::append_token(&auth_file, role, &name)?;
            eprintln!(
                "added {} token for {name:?} to {}; it is shown only once. \
                 A running coordinator reads the file at start: restart it to accept the token.",
                role.with_article(),
                auth_file.display()
            );
            println!("{secret}");
            Ok(())
        }
        Action::Certs { out, sans } => {
            let written = crate::certs::write(&out, &sans)?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
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
