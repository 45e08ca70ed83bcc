//! Bring your own task: a plain Rust function, typed with serde, registered
//! under a name, runs on process, thread and async slots beside the built-in
//! workloads.
//!
//! - [`sync_task`]: a blocking function. Thread and process slots run it on
//!   their thread; async slots run it inline on the event loop, holding it as
//!   CPU-bound code holds asyncio's loop (that is the lesson).
//! - [`async_task`]: an `async` function. Async slots run it as a task of its
//!   own on the event loop; thread and process slots drive it to its end on a
//!   current-thread tokio runtime of their own (so `tokio::time`, `reqwest`,
//!   `tokio::net` work everywhere).
//!
//! A task's items arrive as JSON values: an inputs job's lines (a text line
//! becomes a JSON string; `--inputs-format jsonl` lines are read as JSON), a
//! range job's indices as numbers. Each item is deserialized into the
//! function's input type and each output serialized back: a non-negative
//! integer travels as an exact integer (it can be summed), anything else as
//! JSON bytes. A task of several items (`--chunk`) returns the JSON array of
//! their outputs. An error fails the task with its message; a panic fails it
//! with the panic's message.
//!
//! ```
//! use brigade_worker::task::{sync_task, TaskContext};
//! use brigade_worker::workload::Registry;
//! use brigade_proto::catalog::{Reduction, WorkloadDef};
//! use brigade_proto::v1::Kind;
//!
//! let mut registry = Registry::builtin();
//! registry
//!     .register(sync_task(
//!         WorkloadDef::new("shout", Kind::Cpu, Reduction::List, "upper-cases a line"),
//!         |line: String, _ctx: &TaskContext| Ok::<_, String>(line.to_uppercase()),
//!     ))
//!     .unwrap();
//! assert!(registry.catalog().contains("shout"));
//! ```

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use brigade_proto::catalog::{ArgValue, ArgValues, WorkloadDef};
use brigade_proto::Output;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::workload::{
    AsyncContext, BlockingContext, BlockingTask, Registration, TaskBody, TaskInput, WaitingTask,
};

/// What a task function knows besides its input.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The task's index in its job.
    pub index: u64,
    /// The position of this item in the job (an inputs job's line number
    /// from 0, a range job's value).
    pub item: u64,
    args: Arc<ArgValues>,
}

impl TaskContext {
    /// The job's arguments, checked against the workload's definition.
    pub fn args(&self) -> &ArgValues {
        &self.args
    }

    /// The job's arguments as a typed struct: integers as JSON numbers,
    /// booleans as booleans, the rest as strings, by argument name.
    pub fn args_as<A: DeserializeOwned>(&self) -> Result<A, String> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .args
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    ArgValue::U64(n) => serde_json::Value::from(*n),
                    ArgValue::Bool(b) => serde_json::Value::from(*b),
                    ArgValue::Text(s) | ArgValue::Url(s) => serde_json::Value::from(s.as_str()),
                };
                (k.to_string(), v)
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| format!("the job's arguments do not fit the task's type: {e}"))
    }
}

/// The items of one task, as JSON values.
fn items(input: &TaskInput) -> Vec<(u64, serde_json::Value)> {
    if input.items.is_empty() {
        return (input.start..input.end)
            .map(|i| (i, serde_json::Value::from(i)))
            .collect();
    }
    input
        .items
        .iter()
        .zip(input.start..)
        .map(|(raw, i)| {
            let v = if input.items_are_json {
                serde_json::from_slice(raw).unwrap_or_else(|_| text_value(raw))
            } else {
                text_value(raw)
            };
            (i, v)
        })
        .collect()
}

fn text_value(raw: &[u8]) -> serde_json::Value {
    serde_json::Value::String(String::from_utf8_lossy(raw).into_owned())
}

fn decode<I: DeserializeOwned>(item: u64, v: serde_json::Value) -> Result<I, String> {
    serde_json::from_value(v).map_err(|e| {
        format!(
            "input item {item} does not fit the task's input type {}: {e}",
            std::any::type_name::<I>()
        )
    })
}

/// One item's output as JSON.
fn encode<O: Serialize>(out: O) -> Result<serde_json::Value, String> {
    serde_json::to_value(out).map_err(|e| format!("the task's output cannot be serialized: {e}"))
}

/// A task's outputs as one [`Output`]: one item's value, or the array of
/// several; a non-negative integer that fits u64 stays an integer.
fn output(mut values: Vec<serde_json::Value>) -> Result<Output, String> {
    let value = if values.len() == 1 {
        values.pop().unwrap_or_default()
    } else {
        serde_json::Value::Array(values)
    };
    if let Some(n) = value.as_u64() {
        return Ok(Output::Int(u128::from(n)));
    }
    serde_json::to_vec(&value)
        .map(Output::Bytes)
        .map_err(|e| format!("the task's output cannot be serialized: {e}"))
}

/// A task's items decoded into the function's input type, each with its
/// context.
fn typed_items<'a, I: DeserializeOwned>(
    input: &'a TaskInput,
    args: &'a Arc<ArgValues>,
) -> impl Iterator<Item = Result<(I, TaskContext), String>> + 'a {
    items(input).into_iter().map(move |(item, v)| {
        let ctx = TaskContext {
            index: input.index,
            item,
            args: args.clone(),
        };
        Ok((decode::<I>(item, v)?, ctx))
    })
}

/// A task's error for a panic, with the panic's message.
fn panicked(p: &(dyn std::any::Any + Send)) -> String {
    let message = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into());
    format!("the task panicked: {message}")
}

struct SyncTask<F, I, O, E> {
    f: Arc<F>,
    args: Arc<ArgValues>,
    types: PhantomData<fn(I) -> (O, E)>,
}

impl<I, O, E, F> BlockingTask for SyncTask<F, I, O, E>
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Display + 'static,
    F: Fn(I, &TaskContext) -> Result<O, E> + Send + Sync + 'static,
{
    fn run(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        let mut outs = Vec::new();
        for item in typed_items::<I>(input, &self.args) {
            let (i, ctx) = item?;
            let o = catch_unwind(AssertUnwindSafe(|| (self.f)(i, &ctx)))
                .map_err(|p| panicked(&*p))?
                .map_err(|e| e.to_string())?;
            outs.push(encode(o)?);
        }
        output(outs)
    }
}

/// A workload from a blocking function of one typed input.
pub fn sync_task<I, O, E, F>(def: WorkloadDef, f: F) -> Registration
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Display + 'static,
    F: Fn(I, &TaskContext) -> Result<O, E> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Registration::new(def, move |args| {
        Ok(TaskBody::blocking(SyncTask {
            f: f.clone(),
            args: Arc::new(args.clone()),
            types: PhantomData,
        }))
    })
}

/// The types an async task is made for, held without owning any.
type AsyncTypes<I, O, E, Fut> = PhantomData<fn(I) -> (O, E, Fut)>;

struct AsyncTask<F, I, O, E, Fut> {
    f: Arc<F>,
    args: Arc<ArgValues>,
    types: AsyncTypes<I, O, E, Fut>,
}

impl<I, O, E, F, Fut> AsyncTask<F, I, O, E, Fut>
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Display + 'static,
    F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
{
    async fn run(&self, input: &TaskInput) -> Result<Output, String> {
        let mut outs = Vec::new();
        for item in typed_items::<I>(input, &self.args) {
            let (i, ctx) = item?;
            let o = AssertUnwindSafe((self.f)(i, ctx))
                .catch_unwind()
                .await
                .map_err(|p| panicked(&*p))?
                .map_err(|e| e.to_string())?;
            outs.push(encode(o)?);
        }
        output(outs)
    }
}

impl<I, O, E, F, Fut> WaitingTask for AsyncTask<F, I, O, E, Fut>
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Display + 'static,
    F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
{
    fn run_blocking(&self, input: &TaskInput, ctx: &mut BlockingContext) -> Result<Output, String> {
        ctx.runtime()?.block_on(self.run(input))
    }

    fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        _: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>> {
        Box::pin(self.run(input))
    }
}

/// A workload from an `async` function of one typed input.
pub fn async_task<I, O, E, F, Fut>(def: WorkloadDef, f: F) -> Registration
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Display + 'static,
    F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
{
    let f = Arc::new(f);
    Registration::new(def, move |args| {
        Ok(TaskBody::waiting(AsyncTask {
            f: f.clone(),
            args: Arc::new(args.clone()),
            types: PhantomData,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::args;
    use crate::workload::Registry;
    use brigade_proto::catalog::{ArgDef, Reduction};
    use brigade_proto::v1::Kind;
    use std::collections::HashMap;
    use std::time::Duration;

    #[derive(serde::Deserialize)]
    struct Args {
        times: u64,
    }

    fn registry() -> Registry {
        let mut r = Registry::empty();
        r.register(sync_task(
            WorkloadDef::new("repeat", Kind::Cpu, Reduction::List, "repeats a line")
                .arg(ArgDef::u64("times", 1, 10, "how often").default("2")),
            |line: String, ctx: &TaskContext| {
                let a: Args = ctx.args_as()?;
                if line == "boom" {
                    panic!("asked to explode");
                }
                if line.is_empty() {
                    return Err("an empty line".to_string());
                }
                Ok(line.repeat(a.times as usize))
            },
        ))
        .unwrap();
        r.register(async_task(
            WorkloadDef::new("double", Kind::Io, Reduction::Sum, "doubles a number later"),
            |n: u64, _ctx: TaskContext| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, String>(n * 2)
            },
        ))
        .unwrap();
        r
    }

    fn lines(start: u64, items: &[&str], json: bool) -> TaskInput {
        TaskInput {
            index: 0,
            start,
            end: start + items.len() as u64,
            items: items.iter().map(|s| s.as_bytes().to_vec()).collect(),
            items_are_json: json,
            output_limit: None,
        }
    }

    fn run_sync(name: &str, kv: &[(&str, &str)], input: &TaskInput) -> Result<Output, String> {
        let w = registry().prepare(name, &args(kv))?;
        w.run_blocking(input, &mut BlockingContext::new())
    }

    #[test]
    fn a_sync_task_maps_lines_with_typed_args_and_reports_errors_and_panics() {
        let r = run_sync("repeat", &[], &lines(0, &["ab"], false));
        assert_eq!(r, Ok(Output::Bytes(br#""abab""#.to_vec())));
        let r = run_sync("repeat", &[("times", "3")], &lines(5, &["x", "12"], false));
        assert_eq!(r, Ok(Output::Bytes(br#"["xxx","121212"]"#.to_vec())));
        let e = run_sync("repeat", &[], &lines(0, &[""], false)).unwrap_err();
        assert_eq!(e, "an empty line");
        let e = run_sync("repeat", &[], &lines(0, &["boom"], false)).unwrap_err();
        assert!(
            e.contains("panicked") && e.contains("asked to explode"),
            "{e}"
        );
        let e = run_sync("repeat", &[], &lines(7, &["1"], true)).unwrap_err();
        assert!(e.contains("input item 7") && e.contains("String"), "{e}");
        let e = run_sync("repeat", &[("times", "11")], &lines(0, &["a"], false)).unwrap_err();
        assert!(e.contains("1..=10"), "{e}");
    }

    #[test]
    fn an_async_task_runs_on_blocking_slots_with_a_runtime_of_its_own() {
        // A range task's items are its indices; integer outputs stay exact.
        let r = run_sync("double", &[], &TaskInput::range(3, 21, 22));
        assert_eq!(r, Ok(Output::Int(42)));
        let r = run_sync("double", &[], &lines(0, &["5", "6"], true));
        assert_eq!(r, Ok(Output::Bytes(b"[10,12]".to_vec())));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_async_task_runs_on_the_event_loop() {
        let w = registry().prepare("double", &HashMap::new()).unwrap();
        assert!(w.waits());
        let ctx = AsyncContext::new(1);
        let input = lines(0, &["20"], true);
        assert_eq!(w.run_async(&input, &ctx).await, Ok(Output::Int(40)));
    }
}
