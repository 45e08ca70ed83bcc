//! Carrying out an [`Action`]: the executor loop at once (no runtime, no
//! logging), anything else on the runtime [`super::runtime`] picks, handed
//! to the crate that does the work. `brigade` and a user's worker binary
//! (`brigade::worker::main`) both end here; an error is printed as
//! `error: ...` and exits with its code ([`super::exit`]): 2 for flags that
//! do not make a run. A client command stops at Ctrl-C, saying what became
//! of the job it followed (exit 130).

use std::cell::Cell;
use std::process::ExitCode;

use anyhow::Context;
use std::time::Duration;

use super::config::{Action, Request};
use super::exit::{self, Exit};
use crate::commands::{Format, Phase};
use crate::{cluster, commands, demo};

/// Runs `action` (or reports why it could not be built) with the idle
/// spinner's window `spin`; the process's exit code.
pub fn carry_out(
    action: anyhow::Result<Action>,
    spin: Duration,
    log: super::flags::LogFormat,
    errors: exit::ErrorStyle,
) -> ExitCode {
    let action = match action {
        Ok(action) => action,
        Err(e) => return exit::report_usage(&format!("{e:#}"), errors),
    };
    if let Action::Executor(workloads) = action {
        let code = brigade_worker::executors::child::run_stdio_with(&workloads);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if let Action::Completions(shell) = action {
        // Written whole once made: a reader that stops early (`| head`)
        // is no error.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut super::flags::command(), "brigade", &mut script);
        let mut out = std::io::stdout().lock();
        return match std::io::Write::write_all(&mut out, &script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                exit::report(&anyhow::Error::new(e).context("stdout"), errors)
            }
            _ => ExitCode::from(exit::SUCCESS),
        };
    }
    let run = super::runtime::start(&action, spin, log).and_then(|rt| rt.block_on(run(action)));
    match run {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => exit::report(&e, errors),
    }
}

async fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Executor(_) | Action::Completions(_) => {
            unreachable!("handled before the runtime starts")
        }
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
        Action::Workers(configs) => cluster::workers(configs).await,
        Action::Client {
            coordinator,
            credentials,
            request,
        } => {
            let phase = Cell::new(Phase::of(&request));
            let work = async {
                let c =
                    &mut brigade_client::Client::connect_with(&coordinator, &credentials).await?;
                client_request(c, request, &phase).await
            };
            tokio::select! {
                r = work => r,
                Ok(()) = tokio::signal::ctrl_c() => {
                    Err(Exit::Interrupted(commands::interrupted(phase.get(), &coordinator)).into())
                }
            }
        }
        Action::TokenCreate {
            role,
            name,
            auth_file,
            format,
        } => {
            let secret = brigade_coordinator::auth::append_token(&auth_file, role, &name)?;
            if format == Format::Table {
                eprintln!(
                    "added {} token for {name:?} to {}; it is shown only once. \
                     A running coordinator reads the file at start: restart it to accept the token.",
                    role.with_article(),
                    auth_file.display()
                );
            }
            let role = role.name();
            match format {
                Format::Json | Format::Jsonl => println!(
                    "{}",
                    serde_json::json!({
                        "role": role, "name": name,
                        "auth_file": auth_file.display().to_string(), "token": secret,
                    })
                ),
                Format::Csv => println!("role,name,token\n{role},{name},{secret}"),
                Format::Table | Format::Quiet => println!("{secret}"),
            }
            Ok(())
        }
        Action::Certs { out, sans, format } => {
            let written = crate::certs::write(&out, &sans)?;
            let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            match format {
                Format::Json => println!("{}", serde_json::json!(paths)),
                Format::Jsonl => {
                    for p in &paths {
                        println!("{}", serde_json::json!(p));
                    }
                }
                Format::Csv | Format::Table | Format::Quiet => {
                    if format == Format::Csv {
                        println!("path");
                    }
                    for p in &paths {
                        println!("{p}");
                    }
                }
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

/// A client command against the coordinator `c`; `phase` tracks what it is
/// doing, for what an interruption says.
async fn client_request(
    c: &mut brigade_client::Client,
    request: Request,
    phase: &Cell<Phase>,
) -> anyhow::Result<()> {
    match request {
        Request::Submit { job, wait, format } => {
            commands::submit(c, &job, wait, format, phase).await
        }
        Request::Status(format) => commands::status(c, format).await,
        Request::Health { service, format } => commands::health(c, &service, format).await,
        Request::Jobs {
            all,
            states,
            format,
        } => commands::jobs(c, all, states, format).await,
        Request::Purge {
            all,
            older_than,
            format,
        } => commands::purge(c, all, older_than, format).await,
        Request::Job { jobs, wait, format } => commands::job(c, &jobs, wait, format, phase).await,
        Request::Results {
            job,
            format,
            follow,
            wait,
            order,
        } => {
            let id = commands::one_job(c, &job, "results").await?;
            commands::results(c, id, format, follow, wait, order, phase).await
        }
        Request::Tasks { job, format } => {
            let id = commands::one_job(c, &job, "tasks").await?;
            commands::failed_tasks(c, id, format).await
        }
        Request::Cancel { jobs, format } => commands::cancel(c, &jobs, format).await,
        Request::Events {
            follow,
            all,
            format,
        } => crate::events::command(c, follow, all, format).await,
        Request::Timeline { job, out, format } => {
            let id = commands::one_job(c, &job, "timeline").await?;
            crate::timeline::command(c, id, out.as_deref(), format).await
        }
        Request::Workers(format) => commands::workers(c, format).await,
    }
}
