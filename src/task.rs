//! What a user needs to define tasks: a workload's definition
//! ([`WorkloadDef`]: name, [`Kind`], [`Reduction`], typed [`ArgDef`]s), its
//! code ([`sync_task`] or [`async_task`] over a serde-typed function, which
//! sees its job through a [`TaskContext`]), and the [`Registry`] a worker
//! serves them from.
//!
//! A task's input is one item of its job: an inputs job's line (a text line
//! arrives as a JSON string, a `--inputs-format jsonl` line as its JSON
//! value), or a range job's index. Its output is serialized to JSON: a
//! non-negative integer travels as an exact integer (a job can sum them),
//! anything else as JSON bytes. An `Err` fails the task with its message; a
//! panic fails it with the panic's message.
//!
//! ```
//! use brigade::task::{
//!     async_task, sync_task, ArgDef, ArgType, Kind, Reduction, Registry, TaskContext,
//!     WorkloadDef,
//! };
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Args {
//!     times: u64,
//! }
//!
//! #[derive(Serialize)]
//! struct Echoed {
//!     line: String,
//!     length: usize,
//! }
//!
//! let mut registry = Registry::builtin();
//! // A blocking function: process and thread slots run it on their thread.
//! registry
//!     .register(sync_task(
//!         WorkloadDef::new("repeat", Kind::Cpu, Reduction::List, "repeats a line")
//!             .arg(ArgDef::u64("times", 1, 100, "how many times").default("2")),
//!         |line: String, ctx: &TaskContext| {
//!             let args: Args = ctx.args_as()?;
//!             let line = line.repeat(args.times as usize);
//!             Ok::<_, String>(Echoed { length: line.len(), line })
//!         },
//!     ))
//!     .expect("a well-formed definition");
//! // An async function: async slots run it as a task on their event loop.
//! registry
//!     .register(async_task(
//!         WorkloadDef::new("later", Kind::Io, Reduction::List, "echoes a line after a while")
//!             .arg(ArgDef::new("note", ArgType::Text, "a note to add").default("-")),
//!         |line: String, _ctx: TaskContext| async move {
//!             tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//!             Ok::<_, String>(line)
//!         },
//!     ))
//!     .expect("a well-formed definition");
//! assert!(registry.catalog().contains("repeat") && registry.catalog().contains("later"));
//! ```

pub use brigade_proto::catalog::{
    ArgDef, ArgType, ArgValue, ArgValues, CatalogError, Reduction, WorkloadDef,
};
pub use brigade_proto::v1::Kind;
pub use brigade_worker::task::{async_task, sync_task, TaskContext};
pub use brigade_worker::workload::{Registration, Registry};
