//! Settings built from the raw flags: each subcommand becomes an [`Action`]
//! whose parts are checked and complete (a coordinator's
//! [`CoordinatorConfig`], a worker's [`NodeConfig`], `up`'s [`UpConfig`]),
//! or an error that names the flag to change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use brigade_client::Credentials;
use brigade_coordinator::auth::{AuthFile, Role};
use brigade_coordinator::{AdmissionLimits, CoordinatorConfig, ServerTls};
use brigade_worker::node::NodeConfig;
use brigade_worker::workload::Registry;

use super::flags::{
    CoordinatorArgs, CredentialArgs, ServerSecurityArgs, SlotArgs, Subcommand, Target,
    TokenCommand, WorkerArgs, WorkerCli, WorkerSubcommand,
};
use crate::cluster::{self, Slots};
use crate::commands::{Format, Phase, SubmitArgs};
use crate::select::{JobSelector, StateFilter};
use brigade_lab as bench;

/// One run of `brigade`, ready to carry out.
pub enum Action {
    /// The executor child loop (`brigade executor`) serving these
    /// workloads: no runtime, no logging.
    Executor(Registry),
    Demo,
    Bench(bench::BenchArgs),
    Up(UpConfig),
    Coordinator {
        listen: String,
        /// `--http-listen`: the dashboard and metrics.
        http_listen: Option<String>,
        config: CoordinatorConfig,
        /// Listen beyond loopback without TLS or tokens anyway.
        insecure: bool,
    },
    Worker(NodeConfig),
    /// `brigade worker --count N` (N > 1): N workers, one link each, in
    /// this process.
    Workers(Vec<NodeConfig>),
    /// A client command against the coordinator at `coordinator`.
    Client {
        coordinator: String,
        credentials: Credentials,
        request: Request,
    },
    /// `brigade token create`.
    TokenCreate {
        role: Role,
        name: String,
        auth_file: PathBuf,
        format: Format,
    },
    /// `brigade certs`.
    Certs {
        out: PathBuf,
        sans: Vec<String>,
        format: Format,
    },
    IoTarget {
        listen: String,
    },
    /// `brigade completions SHELL`: no runtime, no logging.
    Completions(clap_complete::Shell),
}

/// `brigade up`: a coordinator and its local workers.
pub struct UpConfig {
    pub listen: String,
    /// `--http-listen`: the dashboard and metrics.
    pub http_listen: Option<String>,
    pub coordinator: CoordinatorConfig,
    pub workers: usize,
    pub slots: Slots,
    pub allow_exec: bool,
    /// Listen beyond loopback anyway (`up` serves neither TLS nor tokens).
    pub insecure: bool,
}

/// What a client command asks the coordinator.
pub enum Request {
    Submit {
        job: SubmitArgs,
        wait: bool,
        format: Format,
    },
    Status(Format),
    Health {
        service: String,
        format: Format,
    },
    Jobs {
        all: bool,
        states: StateFilter,
        format: Format,
    },
    Purge {
        all: bool,
        older_than: Duration,
        format: Format,
    },
    Job {
        jobs: JobSelector,
        wait: bool,
        format: Format,
    },
    Results {
        job: JobSelector,
        format: Format,
        follow: bool,
        wait: bool,
        order: brigade_client::Order,
    },
    /// `brigade tasks ID --state failed`.
    Tasks {
        job: JobSelector,
        format: Format,
    },
    Cancel {
        jobs: JobSelector,
        format: Format,
    },
    /// `brigade events [--follow] [--all]`.
    Events {
        follow: bool,
        all: bool,
        format: Format,
    },
    /// `brigade timeline JOB [--out FILE]`.
    Timeline {
        job: JobSelector,
        out: Option<PathBuf>,
        format: Format,
    },
    Workers(Format),
}

impl Phase {
    /// What `request` does from its start, for what Ctrl-C says: a
    /// submission submits; the commands that follow a job say so once
    /// they know which.
    pub fn of(request: &Request) -> Phase {
        match request {
            Request::Submit { job, .. } => Phase::Submitting {
                inputs: job.inputs.is_some(),
            },
            _ => Phase::Asking,
        }
    }
}

impl Action {
    /// Checks the flags of `command` and builds what it runs with.
    pub fn from_flags(command: Subcommand) -> anyhow::Result<Action> {
        Ok(match command {
            Subcommand::Executor => Action::Executor(Registry::builtin()),
            Subcommand::Demo => Action::Demo,
            Subcommand::Bench(args) => Action::Bench(args),
            Subcommand::Up {
                workers,
                slots,
                listen,
                state,
                allow_exec,
                insecure,
                coordinator,
            } => Action::Up(UpConfig {
                coordinator: coordinator.config(Some(&state))?,
                http_listen: coordinator.http_listen,
                listen,
                workers,
                slots: slots.slots(),
                allow_exec,
                insecure,
            }),
            Subcommand::Coordinator {
                listen,
                state,
                coordinator,
                security,
            } => {
                let (auth, tls) = security.load()?;
                Action::Coordinator {
                    config: CoordinatorConfig {
                        auth,
                        tls,
                        ..coordinator.config(state.as_deref())?
                    },
                    listen,
                    http_listen: coordinator.http_listen,
                    insecure: security.insecure,
                }
            }
            Subcommand::Worker(worker) => worker.action(Registry::builtin())?,
            Subcommand::Submit {
                job,
                wait,
                detach: _,
                client,
            } => Request::Submit {
                job,
                wait,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Status { client } => Request::Status(client.format()).to(client.target)?,
            Subcommand::Health { service, client } => Request::Health {
                service,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Jobs {
                all,
                purge: true,
                older_than,
                client,
                ..
            } => Request::Purge {
                all,
                older_than: older_than.unwrap_or_default(),
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Jobs {
                all,
                purge: false,
                state,
                history,
                client,
                ..
            } => Request::Jobs {
                all,
                states: match (state, history) {
                    (Some(states), _) => states,
                    (None, true) => StateFilter::ANY,
                    (None, false) => StateFilter::ACTIVE,
                },
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Job { jobs, wait, client } => Request::Job {
                jobs,
                wait,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Results {
                job,
                follow,
                wait,
                order,
                client,
            } => Request::Results {
                job,
                format: client.format(),
                follow,
                wait,
                order,
            }
            .to(client.target)?,
            Subcommand::Tasks {
                job,
                state: _,
                client,
            } => Request::Tasks {
                job,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Events {
                follow,
                all,
                client,
            } => Request::Events {
                follow,
                all,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Timeline { job, out, client } => Request::Timeline {
                job,
                out,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Cancel { jobs, client } => Request::Cancel {
                jobs,
                format: client.format(),
            }
            .to(client.target)?,
            Subcommand::Workers { client } => Request::Workers(client.format()).to(client.target)?,
            Subcommand::IoTarget { listen } => Action::IoTarget { listen },
            Subcommand::Completions { shell } => Action::Completions(shell),
            Subcommand::Token(TokenCommand::Create {
                role,
                name,
                auth_file,
                output,
            }) => Action::TokenCreate {
                role: Role::parse(&role).with_context(|| {
                    format!("--role {role:?}: expected worker, client or admin")
                })?,
                name,
                auth_file,
                format: output.format(),
            },
            Subcommand::Certs { out, sans, output } => Action::Certs {
                out,
                sans,
                format: output.format(),
            },
        })
    }
}

impl Action {
    /// Checks the flags of a user's worker binary serving `workloads`: the
    /// worker, or (when the worker spawns it) an executor child.
    pub fn from_worker_flags(flags: WorkerCli, workloads: Registry) -> anyhow::Result<Action> {
        Ok(match flags.executor {
            Some(WorkerSubcommand::Executor) => Action::Executor(workloads),
            None => flags.worker.action(workloads)?,
        })
    }
}

impl Request {
    /// This request, to the coordinator `target` names.
    fn to(self, target: Target) -> anyhow::Result<Action> {
        Ok(Action::Client {
            credentials: target.credentials.load()?,
            coordinator: target.coordinator,
            request: self,
        })
    }
}

/// The subcommand a worker's executor children run: its own program runs
/// them (`brigade executor`, or a user's binary with its own workloads).
pub const EXECUTOR_SUBCOMMAND: &str = "executor";

/// The most executor processes `worker --count N` starts (N × --procs):
/// past that, a typo in N would fork the machine to its knees.
pub const MAX_COUNT_EXECUTORS: usize = 512;

impl WorkerArgs {
    /// One worker, or with `--count N` N workers named NAME-1 … NAME-N,
    /// each with these slots.
    pub fn action(self, workloads: Registry) -> anyhow::Result<Action> {
        let count = self.count as usize;
        let node = self.node(workloads)?;
        if count == 1 {
            return Ok(Action::Worker(node));
        }
        if node.procs * count > MAX_COUNT_EXECUTORS {
            bail!(
                "--count {count} with --procs {} would start {} executor processes (at most \
                 {MAX_COUNT_EXECUTORS}); --procs is per link: pass --procs 0 (or a smaller \
                 --count) for many links",
                node.procs,
                node.procs * count
            );
        }
        Ok(Action::Workers(
            (1..=count)
                .map(|i| NodeConfig {
                    name: format!("{}-{i}", node.name),
                    ..node.clone()
                })
                .collect(),
        ))
    }

    /// The node's settings for a worker offering `workloads`, whose executor
    /// children are this very program.
    pub fn node(self, workloads: Registry) -> anyhow::Result<NodeConfig> {
        let s = self.slots.slots();
        if s.procs + s.threads + s.async_slots == 0 {
            bail!("a worker needs at least one slot: --procs, --threads or --async above 0");
        }
        Ok(NodeConfig {
            coordinator: self.target.coordinator,
            name: self.name.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    brigade_worker::node::hostname(),
                    std::process::id()
                )
            }),
            procs: s.procs,
            threads: s.threads,
            async_slots: s.async_slots,
            prefetch: self.prefetch,
            executor_program: cluster::executor_program()?,
            executor_args: vec![EXECUTOR_SUBCOMMAND.into()],
            first_connect_timeout: (self.connect_timeout_s > 0)
                .then(|| Duration::from_secs(self.connect_timeout_s)),
            allow_exec: self.allow_exec,
            exec_unauthenticated: self.insecure,
            credentials: self.target.credentials.load()?,
            workloads: Arc::new(workloads),
        })
    }
}

/// Reads a PEM file named by `flag`.
fn read_pem(flag: &str, path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))?;
    if !pem.starts_with(b"-----BEGIN") && !String::from_utf8_lossy(&pem).contains("-----BEGIN ") {
        bail!(
            "{flag} {}: not a PEM file (expected -----BEGIN ...; `brigade certs` writes them)",
            path.display()
        );
    }
    Ok(pem)
}

impl CredentialArgs {
    /// The token (--token-file, else BRIGADE_TOKEN) and TLS files, read.
    pub fn load(&self) -> anyhow::Result<Credentials> {
        let token = brigade_proto::connect::read_token(
            self.token_file.as_deref(),
            std::env::var("BRIGADE_TOKEN").ok(),
        )
        .map_err(anyhow::Error::msg)?;
        let tls_identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some((read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?))
            }
            _ => None,
        };
        Ok(Credentials {
            token,
            tls_ca_pem: self
                .tls_ca
                .as_deref()
                .map(|p| read_pem("--tls-ca", p))
                .transpose()?,
            tls_identity,
        })
    }
}

impl ServerSecurityArgs {
    /// The auth file and TLS settings, read and checked.
    fn load(&self) -> anyhow::Result<(Option<Arc<AuthFile>>, Option<ServerTls>)> {
        let auth = self
            .auth_file
            .as_deref()
            .map(AuthFile::load)
            .transpose()
            .context("--auth-file")?
            .map(Arc::new);
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls {
                cert_pem: read_pem("--tls-cert", cert)?,
                key_pem: read_pem("--tls-key", key)?,
                client_ca_pem: self
                    .tls_client_ca
                    .as_deref()
                    .map(|p| read_pem("--tls-client-ca", p))
                    .transpose()?,
            }),
            _ => None,
        };
        Ok((auth, tls))
    }
}

impl SlotArgs {
    /// The slots asked for, cores filling in what was not given.
    fn slots(self) -> Slots {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Slots {
            procs: self.procs.unwrap_or(cores),
            threads: self.threads.unwrap_or(cores),
            async_slots: self.async_slots,
        }
    }
}

/// `--state FILE`: a path, or `:memory:` for an ephemeral coordinator.
fn state_path(state: Option<&str>) -> Option<PathBuf> {
    state.filter(|s| *s != ":memory:").map(PathBuf::from)
}

impl CoordinatorArgs {
    /// The coordinator's settings, with its state file (`None`: in memory).
    fn config(&self, state: Option<&str>) -> anyhow::Result<CoordinatorConfig> {
        if self.heartbeat_ms * 2 > self.lease_timeout_ms {
            bail!(
                "--heartbeat-ms {} must be at most half of --lease-timeout-ms {}",
                self.heartbeat_ms,
                self.lease_timeout_ms
            );
        }
        Ok(CoordinatorConfig {
            lease_timeout: Duration::from_millis(self.lease_timeout_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
            limits: AdmissionLimits {
                max_tasks_per_job: self.max_tasks_per_job,
                default_max_attempts: self.max_attempts,
                max_active_jobs_per_owner: self.max_active_jobs_per_client,
                max_active_tasks_per_owner: self.max_active_tasks_per_client,
                max_result_bytes_per_job: self.max_result_bytes_per_job,
                default_task_timeout_ms: self
                    .default_task_timeout
                    .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX)),
                ..Default::default()
            },
            state: state_path(state),
            state_recover: self.state_recover,
            fail_if_no_workers: self.fail_if_no_workers_for,
            max_worker_losses: self.max_worker_losses,
            keep_finished: self.keep_finished,
            max_connections_per_peer: self.max_connections_per_peer,
            workloads: brigade_worker::workload::builtin_catalog(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::flags::Cli;

    fn action(args: &[&str]) -> anyhow::Result<Action> {
        let cli = Cli::try_parse_from(std::iter::once("brigade").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("brigade {args:?} parses: {e}"));
        Action::from_flags(cli.command)
    }

    #[test]
    fn the_flag_definitions_are_consistent() {
        Cli::command().debug_assert();
        crate::cli::flags::command().debug_assert();
    }

    /// The spin window `brigade ARGS...` runs with, parsed as `main` does.
    fn spin_of(args: &[&str]) -> Duration {
        let matches = crate::cli::flags::command()
            .try_get_matches_from(std::iter::once("brigade").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("brigade {args:?} parses: {e}"));
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).expect("flags");
        cli.spin.window()
    }

    #[test]
    fn spin_us_is_taken_before_or_after_any_subcommand() {
        let us = Duration::from_micros;
        assert_eq!(spin_of(&["worker", "--spin-us", "300"]), us(300));
        assert_eq!(spin_of(&["--spin-us", "300", "worker"]), us(300));
        assert_eq!(spin_of(&["up", "--spin-us", "40"]), us(40));
        assert_eq!(spin_of(&["jobs", "--spin-us", "7"]), us(7));
        assert_eq!(spin_of(&["--spin-us", "8", "jobs"]), us(8));
        assert_eq!(spin_of(&["jobs"]), us(0));
    }

    /// The help of `--spin-us` under `brigade SUBCOMMAND`.
    fn spin_help(sub: &str) -> String {
        let mut cmd = crate::cli::flags::command();
        cmd.build();
        let sc = cmd.find_subcommand(sub).expect("a subcommand");
        let arg = sc.get_arguments().find(|a| a.get_id() == "spin_us");
        arg.and_then(|a| a.get_help())
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn the_long_spin_us_help_shows_only_where_the_spinner_matters() {
        for sub in ["coordinator", "worker", "up", "bench", "demo"] {
            assert!(
                spin_help(sub).contains("SCHED_IDLE"),
                "{sub}: {}",
                spin_help(sub)
            );
        }
        for sub in [
            "submit", "jobs", "job", "results", "tasks", "cancel", "certs",
        ] {
            let help = spin_help(sub);
            assert!(
                !help.contains("SCHED_IDLE") && help.contains("µs"),
                "{sub}: {help}"
            );
        }
    }

    #[test]
    fn every_positional_and_format_flag_says_what_it_is() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                if arg.is_positional() || arg.get_id() == "format" {
                    assert!(
                        arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                        "`brigade {path}`: {} has no help",
                        arg.get_id()
                    );
                }
            }
            for sc in cmd.get_subcommands() {
                check(sc, &format!("{path} {}", sc.get_name()));
            }
        }
        let mut cmd = crate::cli::flags::command();
        cmd.build();
        check(&cmd, "");
    }

    #[test]
    fn submit_help_lists_every_workload_with_its_arguments() {
        let mut cmd = crate::cli::flags::command();
        let help = cmd
            .find_subcommand_mut("submit")
            .expect("submit")
            .render_long_help()
            .to_string();
        let catalog = brigade_worker::workload::builtin_catalog();
        for def in catalog.iter() {
            assert!(
                help.contains(&format!("\n  {}: ", def.name)),
                "{}: {help}",
                def.name
            );
            for arg in &def.args {
                assert!(
                    help.contains(&format!("      {}=<", arg.name)),
                    "{}",
                    arg.name
                );
            }
        }
        assert!(help.contains("cmd=<text> (required)"), "{help}");
        assert!(help.contains("Exit codes:"), "{help}");
    }

    #[test]
    fn json_is_asked_for_by_flag_or_environment_and_quiet_wins() {
        use crate::cli::flags::asks_for_json;
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(asks_for_json(&args(&[
            "jobs", "--format", "json", "--bogus"
        ])));
        assert!(asks_for_json(&args(&["jobs", "--format=jsonl"])));
        assert!(!asks_for_json(&args(&["jobs", "--format", "csv"])));
        assert!(!asks_for_json(&args(&["jobs", "--format", "json", "-q"])));
        assert!(!asks_for_json(&args(&["submit", "--", "--format", "json"])));
    }

    #[test]
    fn quiet_wins_over_the_format_and_the_format_comes_from_the_environment_too() {
        let cli = |a: &[&str]| {
            Cli::try_parse_from(std::iter::once("brigade").chain(a.iter().copied()))
                .unwrap_or_else(|e| panic!("{a:?}: {e}"))
        };
        assert_eq!(cli(&["jobs"]).command.format(), Format::Table);
        assert_eq!(
            cli(&["jobs", "--format", "csv"]).command.format(),
            Format::Csv
        );
        assert_eq!(
            cli(&["jobs", "--format", "json", "-q"]).command.format(),
            Format::Quiet
        );
        assert_eq!(
            cli(&["cancel", "3", "--quiet"]).command.format(),
            Format::Quiet
        );
        assert_eq!(
            cli(&["certs", "--out", "d", "--format", "json"])
                .command
                .format(),
            Format::Json
        );
        assert!(Cli::try_parse_from(["brigade", "jobs", "--format", "quiet"]).is_err());
    }

    #[test]
    fn a_heartbeat_above_half_the_lease_timeout_is_refused_naming_both_flags() {
        let e = action(&["coordinator", "--heartbeat-ms", "1501"])
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "--heartbeat-ms 1501 must be at most half of --lease-timeout-ms 3000"
        );
        let Ok(Action::Coordinator { config, listen, .. }) =
            action(&["coordinator", "--heartbeat-ms", "1500"])
        else {
            panic!("exactly half is fine");
        };
        assert_eq!(listen, "127.0.0.1:7070");
        assert_eq!(config.heartbeat_interval, Duration::from_millis(1500));
        assert_eq!(config.lease_timeout, Duration::from_millis(3000));
    }

    #[test]
    fn state_files_default_per_subcommand_and_memory_means_none() {
        let Ok(Action::Up(up)) = action(&["up"]) else {
            panic!("up builds");
        };
        assert_eq!(up.coordinator.state, Some(PathBuf::from("brigade.db")));
        assert_eq!((up.workers, up.slots.async_slots), (2, 256));
        let Ok(Action::Up(up)) = action(&["up", "--state", ":memory:"]) else {
            panic!("up builds");
        };
        assert_eq!(up.coordinator.state, None);
        let Ok(Action::Coordinator { config, .. }) = action(&["coordinator"]) else {
            panic!("coordinator builds");
        };
        assert_eq!(config.state, None);
    }

    #[test]
    fn a_worker_needs_a_slot_and_names_itself_by_host_and_pid() {
        let e = action(&["worker", "--procs", "0", "--threads", "0", "--async", "0"])
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "a worker needs at least one slot: --procs, --threads or --async above 0"
        );
        let Ok(Action::Worker(node)) = action(&[
            "worker",
            "--procs",
            "0",
            "--threads",
            "1",
            "--connect-timeout-s",
            "0",
        ]) else {
            panic!("worker builds");
        };
        let name = format!(
            "{}-{}",
            brigade_worker::node::hostname(),
            std::process::id()
        );
        assert_eq!(node.name, name);
        assert_eq!((node.procs, node.threads, node.async_slots), (0, 1, 256));
        assert_eq!(node.first_connect_timeout, None);
        assert_eq!(node.executor_args, ["executor"]);
    }

    #[test]
    fn worker_count_makes_that_many_links_with_distinct_names_and_bounded_executors() {
        let Ok(Action::Workers(nodes)) = action(&[
            "worker",
            "--count",
            "3",
            "--name",
            "sim",
            "--procs",
            "1",
            "--threads",
            "1",
            "--async",
            "2",
        ]) else {
            panic!("--count 3 builds three links");
        };
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["sim-1", "sim-2", "sim-3"]);
        for n in &nodes {
            assert_eq!((n.procs, n.threads, n.async_slots), (1, 1, 2));
        }
        let Ok(Action::Worker(one)) = action(&["worker", "--count", "1", "--name", "solo"]) else {
            panic!("--count 1 is a plain worker");
        };
        assert_eq!(one.name, "solo");
        let e = action(&["worker", "--count", "1000", "--procs", "2"])
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "--count 1000 with --procs 2 would start 2000 executor processes (at most 512); \
             --procs is per link: pass --procs 0 (or a smaller --count) for many links"
        );
        assert!(Cli::try_parse_from(["brigade", "worker", "--count", "0"]).is_err());
        assert!(Cli::try_parse_from(["brigade", "worker", "--count", "10001"]).is_err());
    }

    fn user_worker(args: &[&str]) -> anyhow::Result<Action> {
        let cli = WorkerCli::try_parse_from(std::iter::once("ratings").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("ratings {args:?} parses: {e}"));
        let mut workloads = Registry::empty();
        workloads
            .register(brigade_worker::workload::echo::registration())
            .unwrap();
        Action::from_worker_flags(cli, workloads)
    }

    #[test]
    fn a_user_worker_takes_brigade_worker_s_flags_and_serves_its_own_executors() {
        WorkerCli::command().debug_assert();
        let Ok(Action::Worker(node)) = user_worker(&[
            "--procs",
            "1",
            "--threads",
            "2",
            "--async",
            "3",
            "--name",
            "mine",
            "--prefetch",
            "4",
            "--connect-timeout-s",
            "0",
            "--allow-exec",
            "--coordinator",
            "http://10.0.0.1:7070",
        ]) else {
            panic!("a user worker builds");
        };
        assert_eq!((node.procs, node.threads, node.async_slots), (1, 2, 3));
        assert_eq!((node.name.as_str(), node.prefetch), ("mine", 4));
        assert_eq!(node.coordinator, "http://10.0.0.1:7070");
        assert_eq!(node.first_connect_timeout, None);
        assert!(node.allow_exec);
        assert_eq!(node.workloads.catalog().known_names(), "echo");
        assert_eq!(node.executor_program, std::env::current_exe().unwrap());
        assert_eq!(node.executor_args, [EXECUTOR_SUBCOMMAND]);
        let Ok(Action::Executor(served)) = user_worker(&[EXECUTOR_SUBCOMMAND]) else {
            panic!("the executor subcommand runs the executor loop");
        };
        assert_eq!(served.catalog().known_names(), "echo");
        let e = user_worker(&["--procs", "0", "--threads", "0", "--async", "0"])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("at least one slot"), "{e}");
        assert!(WorkerCli::try_parse_from(["ratings", "--procs", "1", "executor"]).is_err());
    }
}
