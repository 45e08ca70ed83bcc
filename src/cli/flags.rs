//! The raw command line: clap's view of every subcommand and flag, with their
//! defaults, environment variables and help texts ([`Cli`] for `brigade`,
//! [`WorkerCli`] for a user's worker binary, sharing [`WorkerArgs`]). Nothing
//! here is checked beyond what clap checks; [`super::config`] turns these
//! into settings.

use std::path::PathBuf;
use std::time::Duration;

use brigade_proto::catalog::{ArgType, Catalog};
use clap::{Args, CommandFactory, Parser};

use crate::commands;
use crate::commands::{Format, SubmitArgs};
use crate::select::JobSelector;
use brigade_lab as bench;

#[derive(Parser)]
#[command(
    name = "brigade",
    version,
    about = "Split jobs into tasks and run them on process, thread and async slots of local or remote workers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Subcommand,
    #[command(flatten)]
    pub spin: SpinArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// How a process logs (to stderr).
#[derive(Args, Clone, Copy)]
pub struct LogArgs {
    /// Log lines as text, or as one JSON object per line (for log
    /// collectors); `BRIGADE_LOG` sets the level (e.g. debug).
    #[arg(
        long,
        env = "BRIGADE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

// `--spin-us`, global: every brigade process takes it, a user's worker too.
// The long help below is shown where the spinner matters ([`command`]).
#[derive(Args, Clone, Copy)]
pub struct SpinArgs {
    /// After each wake-up, keep one core busy this long (µs) with a
    /// lowest-priority (SCHED_IDLE) spinner, so that the next message does
    /// not wait for a halted CPU to wake: cuts the single-task round trip by
    /// up to half on VMs whose idle vCPUs wake slowly, for otherwise idle CPU
    /// time (BENCHMARKS.md). 0 = off; at most 10000. `up` and `bench` pass it to
    /// the workers they start.
    #[arg(long, env = "BRIGADE_SPIN_US", default_value_t = 0, global = true,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub spin_us: u64,
}

/// `--spin-us`'s help where the spinner hardly matters (client commands).
const SPIN_SHORT_HELP: &str =
    "Idle spinner window after each wake-up, in µs (0 = off; see `brigade worker --help`)";

/// Subcommands whose processes wait on the network for a living, where
/// `--spin-us` keeps its long help.
const SPIN_MATTERS: [&str; 5] = ["coordinator", "worker", "up", "bench", "demo"];

/// Subcommands that talk to a coordinator as a client: their help ends
/// with the exit codes.
const CLIENT_COMMANDS: [&str; 11] = [
    "submit", "status", "health", "jobs", "job", "results", "tasks", "timeline", "cancel",
    "workers", "events",
];

/// `brigade`'s command line as clap parses it: the derived one, with help
/// that depends on the subcommand: `--spin-us` at length only where the
/// spinner matters, the workloads under `submit`, the exit codes under
/// the client commands.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .mut_arg("spin_us", |a| a.help(SPIN_SHORT_HELP))
        .after_help(super::exit::HELP);
    // Where the spinner matters, the subcommand has `--spin-us` of its own
    // with the long help (so the global one is not propagated to it); its
    // value reaches the top level as a global's does, by its id.
    let long = SpinArgs::augment_args(clap::Command::new("spin"))
        .get_arguments()
        .find(|a| a.get_id() == "spin_us")
        .cloned()
        .map(|a| a.global(false));
    if let Some(long) = long {
        for name in SPIN_MATTERS {
            cmd = cmd.mut_subcommand(name, |sc| sc.arg(long.clone()));
        }
    }
    for name in CLIENT_COMMANDS {
        cmd = cmd.mut_subcommand(name, |sc| sc.after_help(super::exit::HELP));
    }
    let catalog = brigade_worker::workload::builtin_catalog();
    cmd.mut_subcommand("submit", |sc| {
        sc.after_help(format!(
            "{}\n\n{}",
            workloads_help(&catalog),
            super::exit::HELP
        ))
    })
}

/// The workloads a worker runs, with their arguments, as `submit --help`
/// lists them.
pub fn workloads_help(catalog: &Catalog) -> String {
    let mut defs: Vec<_> = catalog.iter().collect();
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut s = String::from(
        "Workloads (built in; a worker of your own adds its own). Arguments: --arg KEY=VALUE",
    );
    for def in defs {
        s.push_str(&format!("\n  {}: {}", def.name, def.help));
        for arg in &def.args {
            let ty = match arg.ty {
                ArgType::U64 { min, max } => format!("integer {min}..={max}"),
                ArgType::Url => "http:// or https:// URL".to_string(),
                ArgType::Text => "text".to_string(),
                ArgType::Bool => "true or false".to_string(),
            };
            let need = match (&arg.default, arg.required) {
                (_, true) => "required".to_string(),
                (Some(d), false) => format!("default {d}"),
                (None, false) => "optional".to_string(),
            };
            s.push_str(&format!(
                "\n      {}=<{ty}> ({need}): {}",
                arg.name, arg.help
            ));
        }
    }
    s
}

impl SpinArgs {
    /// The spinner's window (zero: no spinner).
    pub fn window(self) -> Duration {
        Duration::from_micros(self.spin_us)
    }
}

#[derive(Args, Clone)]
pub struct Target {
    /// Coordinator URL: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(long, env = "BRIGADE_COORDINATOR", default_value = brigade_client::DEFAULT_COORDINATOR, global = true)]
    pub coordinator: String,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

// How a client or worker proves who it is and checks the coordinator.
// (No doc comment: clap would show it.)
#[derive(Args, Clone, Default)]
pub struct CredentialArgs {
    /// File holding the token `brigade token create` printed (the
    /// coordinator's --auth-file decides its role); default: the
    /// BRIGADE_TOKEN environment variable.
    #[arg(long, value_name = "FILE", env = "BRIGADE_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the coordinator's certificate, for
    /// https:// URLs (`brigade certs` writes ca.pem).
    #[arg(long, value_name = "FILE", env = "BRIGADE_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Certificate (PEM) to show a coordinator that requires client
    /// certificates (--tls-client-ca); with --tls-key.
    #[arg(long, value_name = "FILE", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

// A coordinator's security: who may call it and how it is reached.
// (No doc comment: clap would show it.)
#[derive(Args, Clone, Default)]
pub struct ServerSecurityArgs {
    /// Require tokens: FILE lists hashed tokens with their role (worker,
    /// client, admin) and name, one per line (`brigade token create` writes
    /// it). Without it every caller may do everything.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Serve TLS with this certificate (PEM; `brigade certs` writes one);
    /// with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates (mTLS) signed by this CA (PEM), from
    /// clients and workers alike.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS or without --auth-file
    /// (anyone who reaches the port can then submit jobs, read results or
    /// link as a worker).
    #[arg(long)]
    pub insecure: bool,
}

// What every command that prints takes: its output format, or --quiet.
// (No doc comment: clap would show it.)
#[derive(Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output: table (for people; notes and progress on stderr), json
    /// (exactly one JSON value, errors too: {"error": {...}} on stdout;
    /// schema in docs/cli-json.md), csv, or jsonl (one JSON value per line).
    #[arg(long, value_enum, env = "BRIGADE_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
    /// Print only the essential value (submit: the job id; jobs, cancel:
    /// job ids; job: its state; results: the values), one per line, and
    /// nothing on stderr but errors. Wins over --format.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl OutputArgs {
    /// The format to print in: [`Format::Quiet`] with --quiet.
    pub fn format(self) -> Format {
        if self.quiet {
            Format::Quiet
        } else {
            self.format
        }
    }
}

// What every client command takes: its output and the coordinator it asks.
// (No doc comment: clap would show it.)
#[derive(Args, Clone)]
pub struct ClientArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub target: Target,
}

impl ClientArgs {
    /// The format to print in.
    pub fn format(&self) -> Format {
        self.output.format()
    }
}

#[derive(Args, Clone, Copy)]
pub struct SlotArgs {
    /// Executor child processes (process slots); default: number of cores.
    #[arg(long)]
    pub procs: Option<usize>,
    /// OS threads in the worker process (thread slots); default: number of cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tasks in flight on the worker's event loop (async slots).
    #[arg(long = "async", default_value_t = 256)]
    pub async_slots: usize,
}

// A worker's flags: `brigade worker` and a user's own worker binary
// (`brigade::worker::main`) take the same ones.
#[derive(Args, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Name shown by `brigade workers` (with --count, link i is NAME-i).
    #[arg(long)]
    pub name: Option<String>,
    /// Run this many independent workers in this one process: each its own
    /// link (connection, heartbeats, leases) with the slots above, named
    /// NAME-1 … NAME-N. For experiments with many workers on few machines.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Tasks each slot may hold beyond the one it runs (credits = slots × prefetch).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub prefetch: u32,
    /// Give up if no coordinator answers for this long at start (s); 0 waits forever.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout_s: u64,
    /// Run `exec` tasks: shell commands from anyone who can submit jobs.
    /// The worker then links only to a coordinator that authenticated it
    /// (--auth-file there, a worker token here), unless --insecure.
    #[arg(long)]
    pub allow_exec: bool,
    /// With --allow-exec, link to a coordinator that does not authenticate
    /// workers anyway (only for one you run yourself on loopback).
    #[arg(long, requires = "allow_exec")]
    pub insecure: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args, Clone)]
pub struct CoordinatorArgs {
    /// Start from what a damaged state file still holds instead of refusing
    /// it: a copy of the damaged files is kept beside them
    /// (FILE.damaged-TIME and its -wal), a damaged -wal is set aside, lost
    /// commits are accepted, and what was lost is logged.
    #[arg(long)]
    pub state_recover: bool,
    /// A worker silent for this long loses its leases (ms).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..))]
    pub lease_timeout_ms: u64,
    /// How often workers heartbeat (ms); must be well below the lease timeout.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
    /// Refuse jobs with more tasks than this (at most 4294967295).
    #[arg(long, default_value_t = 10_000_000,
          value_parser = clap::value_parser!(u64).range(1..=4_294_967_295))]
    pub max_tasks_per_job: u64,
    /// Refuse a client's new jobs while it has this many that have not
    /// ended (0: no limit). Without --auth-file every caller is one client.
    #[arg(long, default_value_t = 1_000)]
    pub max_active_jobs_per_client: u64,
    /// Refuse a client's new job when its tasks and those of the client's
    /// jobs that have not ended would be more than this (0: no limit).
    #[arg(long, default_value_t = brigade_coordinator::AdmissionLimits::DEFAULT_MAX_ACTIVE_TASKS_PER_OWNER)]
    pub max_active_tasks_per_client: u64,
    /// Close a new connection at once while its IP address has this many
    /// open (0: no limit); a host running many workers or clients needs
    /// room for all of them.
    #[arg(long, default_value_t = brigade_coordinator::CoordinatorConfig::DEFAULT_MAX_CONNECTIONS_PER_PEER)]
    pub max_connections_per_peer: usize,
    /// Purge ended jobs (status, results, failures; from the state file
    /// too) once they ended this long ago (e.g. 7d, 12h) or, given a plain
    /// number, all but the newest that many. By default they are kept.
    #[arg(long, value_parser = commands::parse_retention)]
    pub keep_finished: Option<brigade_coordinator::Retention>,
    /// Most bytes one job's byte outputs may hold together; a task whose
    /// output would take its job past it fails (integer outputs do not
    /// count).
    #[arg(long, default_value_t = brigade_coordinator::AdmissionLimits::DEFAULT_MAX_RESULT_BYTES_PER_JOB)]
    pub max_result_bytes_per_job: u64,
    /// Give jobs that set no --timeout this per-task timeout (e.g. 10m,
    /// 1h); by default such tasks may run for ever.
    #[arg(long, value_parser = commands::parse_duration)]
    pub default_task_timeout: Option<Duration>,
    /// Attempts per task when a job does not say (a failed attempt is a
    /// workload error, a crashed executor or a timeout; a lost worker is not).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Fail jobs that wait this long (e.g. 30s, 500ms, 2m) with no worker
    /// offering their model's slots; by default they wait, showing why.
    #[arg(long, value_parser = commands::parse_duration)]
    pub fail_if_no_workers_for: Option<Duration>,
    /// Fail a task on thread or async slots once this many workers were lost
    /// (crashed, killed or cut off) while it was on them: a task that brings
    /// down its worker's process would otherwise cycle through every worker
    /// something restarts. Losing a worker also returns its queued tasks, so
    /// leave room for bad luck. 0 = never.
    #[arg(long, default_value_t = brigade_coordinator::CoordinatorConfig::DEFAULT_MAX_WORKER_LOSSES,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_worker_losses: u32,
    /// Also serve HTTP here (e.g. 127.0.0.1:9090): the dashboard at /, its
    /// JSON at /api/state and Prometheus metrics at /metrics. Off by
    /// default. Unauthenticated and read-only (job and worker names, counts,
    /// error messages; never results): keep it on loopback or a private
    /// network.
    #[arg(long, visible_alias = "metrics-listen", value_name = "ADDR")]
    pub http_listen: Option<String>,
}

// A user's own worker binary (`brigade::worker::main`): `brigade worker`'s
// flags at the top level, and the hidden subcommand its executor children
// run. (No doc comment: clap would show it.)
#[derive(Parser)]
#[command(
    about = "A brigade worker: links to a coordinator and runs this program's workloads on process, thread and async slots",
    args_conflicts_with_subcommands = true
)]
pub struct WorkerCli {
    #[command(subcommand)]
    pub executor: Option<WorkerSubcommand>,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub spin: SpinArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What a user's worker binary runs besides the worker itself.
#[derive(clap::Subcommand)]
pub enum WorkerSubcommand {
    /// Executor child process (spawned by the worker; speaks frames on stdin/stdout).
    #[command(hide = true)]
    Executor,
}

/// What to do: one variant per `brigade` subcommand.
#[derive(clap::Subcommand)]
pub enum Subcommand {
    /// Embedded coordinator + local workers: runs a CPU job and an I/O job in
    /// every model, verifies every result and prints the comparison table.
    Demo,
    /// The experiment lab: runs your own job (--job) or the benchmark
    /// workloads in every model on an embedded (or existing) cluster, verifies
    /// every result, and prints the comparison table; --out DIR adds
    /// JSONL/CSV, SVG plots and report.html.
    Bench(bench::BenchArgs),
    /// A coordinator and N local worker processes, until Ctrl-C.
    Up {
        /// Local worker processes to start.
        #[arg(short = 'w', long = "workers", default_value_t = 2)]
        workers: usize,
        #[command(flatten)]
        slots: SlotArgs,
        /// Address to listen on (loopback by default; expose a port explicitly).
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Durable state file (SQLite); `:memory:` keeps jobs in memory only.
        #[arg(long, default_value = "brigade.db")]
        state: String,
        /// Let the local workers run `exec` tasks (shell commands from
        /// anyone who reaches the coordinator: keep it on loopback).
        #[arg(long)]
        allow_exec: bool,
        /// Listen on a non-loopback address anyway: `up` serves neither TLS
        /// nor tokens (run `brigade coordinator` with them instead).
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        coordinator: CoordinatorArgs,
    },
    /// Run a coordinator until Ctrl-C.
    Coordinator {
        /// Address to listen on (loopback by default; use 0.0.0.0:7070 to serve remote workers).
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Durable state file (SQLite, created if absent); without it (or with
        /// `:memory:`) jobs live in memory and a restart forgets them.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        coordinator: CoordinatorArgs,
        #[command(flatten)]
        security: ServerSecurityArgs,
    },
    /// Run a worker that links to a coordinator, until Ctrl-C / SIGTERM.
    Worker(WorkerArgs),
    /// Submit a job: prints its id as soon as the coordinator accepted it
    /// (even when it queues behind other jobs), or with --wait follows it to
    /// its end.
    Submit {
        #[command(flatten)]
        job: SubmitArgs,
        /// Follow the job to its end: progress, failures grouped by cause, its
        /// result, and a summary line (tasks/s, time per task, overhead).
        /// Ctrl-C stops following; the job keeps running.
        #[arg(long)]
        wait: bool,
        /// Return as soon as the job is accepted (what submit does without
        /// --wait; spelled out for scripts).
        #[arg(long, conflicts_with = "wait")]
        detach: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cluster status.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Whether the coordinator serves, by gRPC health (for container health
    /// checks): prints SERVING and exits 0, else exits 1.
    Health {
        /// The service to ask about: brigade.v1.Coordinator,
        /// brigade.v1.WorkerLink, or the coordinator as a whole (default).
        #[arg(long, default_value = "")]
        service: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List your jobs that have not ended (every client's when the
    /// coordinator has no --auth-file; --history: ended ones too; --state:
    /// by state), or purge the ended ones (--purge).
    Jobs {
        /// Every client's jobs, not only yours (needs an admin token).
        #[arg(long)]
        all: bool,
        /// Only jobs in these states, comma-separated: queued, running,
        /// succeeded, failed, cancelled, active (queued and running: the
        /// default), ended or any.
        #[arg(long, value_parser = crate::select::parse_state_filter,
              conflicts_with_all = ["history", "purge"])]
        state: Option<crate::select::StateFilter>,
        /// Ended jobs too (--state any).
        #[arg(long, conflicts_with = "purge")]
        history: bool,
        /// Forget your jobs that ended (every client's with --all): their
        /// status and results go, from the state file too; their ids are
        /// never given again. Jobs still queued or running are kept.
        #[arg(long)]
        purge: bool,
        /// With --purge: only jobs that ended at least this long ago (e.g.
        /// 30m, 7d).
        #[arg(long, requires = "purge", value_parser = commands::parse_duration)]
        older_than: Option<Duration>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job (or several): its state, progress, failures grouped by
    /// cause.
    Job {
        /// Which jobs: an id (3), last (your newest), or several: a range
        /// (1-10), a list (1,3,5-8) or all (json: an array).
        #[arg(value_parser = crate::select::parse_job_selector)]
        jobs: JobSelector,
        /// Wait for the jobs to end (exit 1 if one failed or was cancelled).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a job's task results as they arrive: index, value, and (json,
    /// jsonl, csv) the task's input range, attempts, worker, model and CPU
    /// and wall time.
    Results {
        /// Which job: its id (from submit or `brigade jobs`) or last (your
        /// newest).
        #[arg(value_parser = crate::select::parse_job_selector)]
        job: JobSelector,
        /// Keep printing while the job runs, until it ends.
        #[arg(long)]
        follow: bool,
        /// Wait for the job to end, then print every result (exit 1 if it
        /// failed or was cancelled).
        #[arg(long, conflicts_with = "follow")]
        wait: bool,
        /// Row order: `index` (task index) or `completion` (as the tasks
        /// finished; with --follow, each row as soon as it is recorded).
        #[arg(long, default_value = "index", value_parser = commands::parse_order)]
        order: brigade_client::Order,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a job's tasks in one state: every task that failed for good,
    /// with its error (a job's status shows only the first 100, grouped).
    Tasks {
        /// Which job: its id (from submit or `brigade jobs`) or last (your
        /// newest).
        #[arg(value_parser = crate::select::parse_job_selector)]
        job: JobSelector,
        /// Which tasks: failed (the one state listed so far).
        #[arg(long, value_parser = ["failed"])]
        state: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The coordinator's events: jobs submitted and ended, workers linked
    /// and lost, with when (the last 10,000 it keeps; --follow: then each
    /// new one until Ctrl-C). Your jobs' events (--all: every client's,
    /// for admins); every worker's.
    Events {
        /// Keep printing events as they happen (with --format jsonl for
        /// JSON: one event per line).
        #[arg(long)]
        follow: bool,
        /// Every client's job events, not only yours (needs an admin token).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A job's tasks as a Chrome trace (open it in https://ui.perfetto.dev
    /// or chrome://tracing): a process per worker, a row per slot, a box
    /// per done task, coloured by model. Each box ends when the
    /// coordinator recorded the task (workers report in batches) and lasts
    /// its wall time.
    Timeline {
        /// Which job: its id or last (your newest).
        #[arg(value_parser = crate::select::parse_job_selector)]
        job: JobSelector,
        /// Write the trace to FILE (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a job or several (a job that already ended is left as it
    /// ended).
    Cancel {
        /// Which jobs: an id (3), last (your newest), or several: a range
        /// (1-10), a list (1,3,5-8) or all (every job of yours that has not
        /// ended).
        #[arg(value_parser = crate::select::parse_job_selector)]
        jobs: JobSelector,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List connected workers and their slots.
    Workers {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The HTTP target for I/O workloads: GET /fast, GET /slow?ms=N and
    /// GET /rating?name=NAME[&ms=N] (the ratings example's service).
    IoTarget {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
    },
    /// Tokens for a coordinator's --auth-file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a CA and coordinator, worker and client certificates (with
    /// their keys) for TLS and mTLS: ca.pem, coordinator.pem,
    /// coordinator-key.pem, worker.pem, worker-key.pem, client.pem,
    /// client-key.pem.
    Certs {
        /// Directory to write them to (created if absent; existing files
        /// are not overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Another name or IP address the coordinator is reached by (e.g. a
        /// compose service name), besides localhost and 127.0.0.1; repeatable.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a shell completion script: `brigade completions bash >
    /// ~/.local/share/bash-completion/completions/brigade`, `brigade
    /// completions zsh > ~/.zfunc/_brigade`, `brigade completions fish >
    /// ~/.config/fish/completions/brigade.fish`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Executor child process (spawned by a worker; speaks frames on stdin/stdout).
    #[command(hide = true)]
    Executor,
}

/// `brigade token ...`.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token: appends its hash to the auth file (created with mode
    /// 0600) and prints the secret, once.
    Create {
        /// What the token may do: worker (link and run tasks), client
        /// (submit and see its own jobs) or admin (see and cancel every job).
        #[arg(long, value_parser = ["worker", "client", "admin"])]
        role: String,
        /// Who it belongs to: a client's jobs are owned by this name
        /// (1-64 of A-Z a-z 0-9 . _ - @).
        #[arg(long)]
        name: String,
        /// The coordinator's --auth-file.
        #[arg(long, value_name = "FILE")]
        auth_file: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
}

impl Subcommand {
    /// The format this run prints in, its errors too (table for the
    /// commands that have no `--format`).
    pub fn format(&self) -> Format {
        match self {
            Subcommand::Submit { client, .. }
            | Subcommand::Status { client }
            | Subcommand::Health { client, .. }
            | Subcommand::Jobs { client, .. }
            | Subcommand::Job { client, .. }
            | Subcommand::Results { client, .. }
            | Subcommand::Tasks { client, .. }
            | Subcommand::Timeline { client, .. }
            | Subcommand::Events { client, .. }
            | Subcommand::Cancel { client, .. }
            | Subcommand::Workers { client } => client.format(),
            Subcommand::Token(TokenCommand::Create { output, .. })
            | Subcommand::Certs { output, .. } => output.format(),
            Subcommand::Demo
            | Subcommand::Bench(_)
            | Subcommand::Up { .. }
            | Subcommand::Coordinator { .. }
            | Subcommand::Worker(_)
            | Subcommand::IoTarget { .. }
            | Subcommand::Completions { .. }
            | Subcommand::Executor => Format::Table,
        }
    }
}

/// Whether the raw command line (or `BRIGADE_FORMAT`) asks for JSON, for
/// a command line clap refused (so its error is JSON too).
pub fn asks_for_json(args: &[std::ffi::OsString]) -> bool {
    let json = |v: &str| v == "json" || v == "jsonl";
    let mut asked = None;
    let mut quiet = false;
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--format" {
            asked = args.next().map(|v| json(&v));
        } else if let Some(v) = a.strip_prefix("--format=") {
            asked = Some(json(v));
        } else if a == "--quiet" || a == "-q" {
            quiet = true;
        }
    }
    let from_env = || std::env::var("BRIGADE_FORMAT").is_ok_and(|v| json(&v));
    !quiet && asked.unwrap_or_else(from_env)
}
