//! brigade as a library: bring your own task.
//!
//! brigade splits a job into tasks and runs them on process, thread and
//! async slots of the workers linked to a coordinator. Three pieces let a
//! Rust program take part:
//!
//! - [`task`]: define a workload from a plain function, typed with serde
//!   ([`task::sync_task`] for blocking code, [`task::async_task`] for code
//!   that waits), and register it in a [`task::Registry`];
//! - [`worker::main`]: turn that registry into a worker binary with
//!   `brigade worker`'s command line, serving your workloads beside the
//!   built-in ones in all three models;
//! - [`Client`]: submit jobs (a range, or your own inputs), follow them,
//!   stream their results and cancel them, as the `brigade` CLI does.
//!
//! A worker binary in full (run it with `--coordinator URL`; the coordinator
//! learns its workloads when it links):
//!
//! ```no_run
//! use brigade::task::{sync_task, Kind, Reduction, Registry, TaskContext, WorkloadDef};
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = Registry::builtin();
//!     registry
//!         .register(sync_task(
//!             WorkloadDef::new("shout", Kind::Cpu, Reduction::List, "upper-cases a line"),
//!             |line: String, _: &TaskContext| Ok::<_, String>(line.to_uppercase()),
//!         ))
//!         .expect("a well-formed definition");
//!     brigade::worker::main(registry)
//! }
//! ```
//!
//! Then `brigade submit shout --inputs lines.txt --wait` and
//! `brigade results ID --format jsonl`, or the same from Rust:
//!
//! ```no_run
//! use brigade::{Client, JobSpec, JobState};
//! use futures::StreamExt;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), brigade::ClientError> {
//!     let mut client = Client::connect(brigade::DEFAULT_COORDINATOR).await?;
//!     let lines = ["hello", "brigade"].map(|l| Ok(l.as_bytes().to_vec()));
//!     let spec = JobSpec {
//!         workload: "shout".into(),
//!         chunk: 1, // inputs per task
//!         ..Default::default()
//!     };
//!     let job = client.submit_inputs(spec, futures::stream::iter(lines)).await?;
//!     let done = client.wait(job.job_id, |_| {}).await?;
//!     assert_eq!(done.state, JobState::Succeeded as i32, "{}", done.error);
//!     let mut rows = client.results(job.job_id).await?;
//!     while let Some(row) = rows.next().await {
//!         let row = row?;
//!         println!("{}\t{}", row.index, row.output.to_text()); // 0  "HELLO"
//!     }
//!     Ok(())
//! }
//! ```

#![deny(missing_docs)]

mod certs;
mod cli;
mod cluster;
mod commands;
mod demo;
mod events;
mod select;
pub mod task;
mod timeline;
pub mod worker;

pub use brigade_client::{
    model_name, state_name, total, Client, ClientError, InputsFormat, JobInfo, JobSpec, JobState,
    Model, Order, Output, Reduce, ResultRow, ResultRows, RunEvent, RunInfo, WaitEvent, WorkerInfo,
    DEFAULT_COORDINATOR,
};

/// The `brigade` binary's entry point (its whole command line).
#[doc(hidden)]
pub fn cli_main() -> std::process::ExitCode {
    cli::main()
}
