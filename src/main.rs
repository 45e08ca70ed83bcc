//! `brigade`: one binary, thin CLI. Every subcommand wires the crates together.

mod cluster;
mod commands;
mod demo;
mod inputs;

use std::sync::Arc;
use std::time::Duration;

use brigade_client::Client;
use brigade_coordinator::{AdmissionLimits, CoordinatorConfig};
use brigade_worker::workload::Registry;
use clap::{Args, Parser, Subcommand};

use crate::cluster::Slots;
use crate::commands::{Format, SubmitArgs};

#[derive(Parser)]
#[command(
    name = "brigade",
    version,
    about = "Split jobs into tasks and run them on process, thread and async slots of local or remote workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// After each wake-up, keep one core busy this long (µs) with a
    /// lowest-priority (SCHED_IDLE) spinner, so that the next message does
    /// not wait for a halted CPU to wake: cuts the single-task round trip by
    /// up to half on VMs whose idle vCPUs wake slowly, for otherwise idle CPU
    /// time (BENCHMARKS.md). 0 = off; at most 10000. `up` and `bench` pass it to
    /// the workers they start.
    #[arg(long, env = "BRIGADE_SPIN_US", default_value_t = 0, global = true,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    spin_us: u64,
}

#[derive(Args, Clone)]
struct Target {
    /// Coordinator URL.
    #[arg(long, env = "BRIGADE_COORDINATOR", default_value = brigade_client::DEFAULT_COORDINATOR, global = true)]
    coordinator: String,
}

#[derive(Args, Clone, Copy)]
struct SlotArgs {
    /// Executor child processes (process slots); default: number of cores.
    #[arg(long)]
    procs: Option<usize>,
    /// OS threads in the worker process (thread slots); default: number of cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Tasks in flight on the worker's event loop (async slots).
    #[arg(long = "async", default_value_t = 256)]
    async_slots: usize,
}

impl SlotArgs {
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

#[derive(Args, Clone)]
struct CoordinatorArgs {
    /// A worker silent for this long loses its leases (ms).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..))]
    lease_timeout_ms: u64,
    /// How often workers heartbeat (ms); must be well below the lease timeout.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
    heartbeat_ms: u64,
    /// Refuse jobs with more tasks than this.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_tasks_per_job: u64,
    /// Attempts per task when a job does not say (a failed attempt is a
    /// workload error, a crashed executor or a timeout; a lost worker is not).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,
    /// Fail jobs that wait this long (e.g. 30s, 500ms, 2m) with no worker
    /// offering their model's slots; by default they wait, showing why.
    #[arg(long, value_parser = commands::parse_duration)]
    fail_if_no_workers_for: Option<Duration>,
    /// Fail a task on thread or async slots once this many workers were lost
    /// (crashed, killed or cut off) while it was on them: a task that brings
    /// down its worker's process would otherwise cycle through every worker
    /// something restarts. Losing a worker also returns its queued tasks, so
    /// leave room for bad luck. 0 = never.
    #[arg(long, default_value_t = CoordinatorConfig::DEFAULT_MAX_WORKER_LOSSES,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    max_worker_losses: u32,
}

/// `--state FILE`: a path, or `:memory:` for an ephemeral coordinator.
fn state_path(state: Option<&str>) -> Option<std::path::PathBuf> {
    state
        .filter(|s| *s != ":memory:")
        .map(std::path::PathBuf::from)
}

impl CoordinatorArgs {
    fn config(&self, state: Option<&str>) -> anyhow::Result<CoordinatorConfig> {
        if self.heartbeat_ms * 2 > self.lease_timeout_ms {
            anyhow::bail!(
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
                ..Default::default()
            },
            state: state_path(state),
            fail_if_no_workers: self.fail_if_no_workers_for,
            max_worker_losses: self.max_worker_losses,
            workloads: brigade_worker::workload::builtin_catalog(),
            ..Default::default()
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Embedded coordinator + local workers: runs a CPU job and an I/O job in
    /// every model, verifies every result and prints the comparison table.
    Demo,
    /// The experiment lab: runs the benchmark workloads in every model on an
    /// embedded (or existing) cluster, verifies every result, and prints the
    /// comparison table; --out DIR adds JSONL/CSV, SVG plots and report.html.
    Bench(brigade_lab::BenchArgs),
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
        /// Let the local workers run `exec` tasks (shell commands).
        #[arg(long)]
        allow_exec: bool,
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
    },
    /// Run a worker that links to a coordinator, until Ctrl-C / SIGTERM.
    Worker {
        #[command(flatten)]
        slots: SlotArgs,
        /// Name shown by `brigade workers`.
        #[arg(long)]
        name: Option<String>,
        /// Tasks each slot may hold beyond the one it runs (credits = slots × prefetch).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        prefetch: u32,
        /// Give up if no coordinator answers for this long at start (s); 0 waits forever.
        #[arg(long, default_value_t = 30)]
        connect_timeout_s: u64,
        /// Run `exec` tasks: shell commands from anyone who can submit jobs.
        #[arg(long)]
        allow_exec: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Submit a job.
    Submit {
        #[command(flatten)]
        job: SubmitArgs,
        /// Wait for the job to end and print its result.
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Cluster status.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// List jobs.
    Jobs {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Show one job.
    Job {
        id: u64,
        /// Wait for the job to end.
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Print a job's task results in index order.
    Results {
        id: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Cancel a job.
    Cancel {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// List connected workers and their slots.
    Workers {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// The HTTP target for I/O workloads: GET /fast and GET /slow?ms=N.
    IoTarget {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
    },
    /// Executor child process (spawned by a worker; speaks frames on stdin/stdout).
    #[command(hide = true)]
    Executor,
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRIGADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    if let Command::Executor = cli.command {
        std::process::exit(brigade_worker::exec::child::run_stdio());
    }
    let long_running = matches!(
        cli.command,
        Command::Up { .. }
            | Command::Coordinator { .. }
            | Command::Worker { .. }
            | Command::IoTarget { .. }
    );
    init_tracing(if long_running { "info" } else { "warn" });
    if let Err(e) = brigade_worker::spin::start_process_spinner(Duration::from_micros(cli.spin_us))
    {
        tracing::warn!(error = %e, "--spin-us: no idle spinner, running without one");
    }
    // The coordinator, workers, `up` and the client commands run on one
    // thread: their work is short handlers and message passing (the slots
    // have threads of their own), and waking a task on the same thread
    // costs no cross-thread wake-up. Measured (BENCHMARKS.md): single-task
    // round trip 275-329 -> 239-255 µs, W_NOOP_1M faster on less CPU. The
    // demo and the lab host a coordinator and a measuring client together,
    // so they keep a thread per core.
    let multi_thread = matches!(cli.command, Command::Demo | Command::Bench(_));
    // Every runtime thread that wakes up arms the idle spinner (a no-op
    // without --spin-us): the wake-ups that follow land on a running CPU.
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = builder
        .enable_all()
        .on_thread_unpark(brigade_worker::spin::arm)
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli.command)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Executor => unreachable!("handled before the runtime starts"),
        Command::Demo => demo::run().await,
        Command::Bench(args) => brigade_lab::run(args).await,
        Command::Up {
            workers,
            slots,
            listen,
            state,
            allow_exec,
            coordinator,
        } => {
            let config = coordinator.config(Some(&state))?;
            cluster::up(
                cluster::bind(&listen).await?,
                config,
                workers,
                slots.slots(),
                allow_exec,
            )
            .await
        }
        Command::Coordinator {
            listen,
            state,
            coordinator,
        } => {
            let config = coordinator.config(state.as_deref())?;
            cluster::coordinator(cluster::bind(&listen).await?, config).await
        }
        Command::Worker {
            slots,
            name,
            prefetch,
            connect_timeout_s,
            allow_exec,
            target,
        } => {
            let s = slots.slots();
            if s.procs + s.threads + s.async_slots == 0 {
                anyhow::bail!(
                    "a worker needs at least one slot: --procs, --threads or --async above 0"
                );
            }
            cluster::worker(brigade_worker::node::NodeConfig {
                coordinator: target.coordinator,
                name: name.unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        brigade_worker::node::hostname(),
                        std::process::id()
                    )
                }),
                procs: s.procs,
                threads: s.threads,
                async_slots: s.async_slots,
                prefetch,
                executor_program: cluster::executor_program()?,
                executor_args: vec!["executor".into()],
                first_connect_timeout: (connect_timeout_s > 0)
                    .then(|| Duration::from_secs(connect_timeout_s)),
                allow_exec,
                workloads: Arc::new(Registry::builtin()),
            })
            .await
        }
        Command::Submit {
            job,
            wait,
            format,
            target,
        } => {
            let mut c = Client::connect(&target.coordinator).await?;
            commands::submit(&mut c, &job, wait, format).await
        }
        Command::Status { format, target } => {
            commands::status(&mut Client::connect(&target.coordinator).await?, format).await
        }
        Command::Jobs { format, target } => {
            commands::jobs(&mut Client::connect(&target.coordinator).await?, format).await
        }
        Command::Job {
            id,
            wait,
            format,
            target,
        } => {
            commands::job(
                &mut Client::connect(&target.coordinator).await?,
                id,
                wait,
                format,
            )
            .await
        }
        Command::Results { id, format, target } => {
            commands::results(&mut Client::connect(&target.coordinator).await?, id, format).await
        }
        Command::Cancel { id, target } => {
            commands::cancel(&mut Client::connect(&target.coordinator).await?, id).await
        }
        Command::Workers { format, target } => {
            commands::workers(&mut Client::connect(&target.coordinator).await?, format).await
        }
        Command::IoTarget { listen } => {
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
