//! The workloads a worker runs. Each workload is one module that holds both
//! its definition (name, typed arguments, default kind and reduction: a
//! [`WorkloadDef`]) and its code, and hands the two to a [`Registry`] as a
//! [`Registration`]. A user's crate registers its own the same way.
//!
//! A job's arguments are checked once against the definition
//! ([`WorkloadDef::validate`] gives them typed) and the workload's `prepare`
//! turns them into a [`Workload`]: what every task of that job runs, either
//! on the calling thread ([`TaskBody::Blocking`]: thread and process slots,
//! and inline on the event loop, holding it as CPU work holds asyncio's) or,
//! for work that waits, as a future on async slots ([`TaskBody::Waiting`]).

pub mod cpu_clock;
pub mod echo;
pub mod exec;
pub mod http_get;
pub mod noop;
pub mod sleep;
pub mod spin;
pub mod sum_squares;

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use brigade_proto::catalog::{ArgValues, Catalog, CatalogError, WorkloadDef};
use brigade_proto::v1::OutcomeStatus;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;

pub use cpu_clock::thread_cpu_ns;
pub use http_get::{async_http_client, AsyncHttpClient, HttpGet};

use crate::http_client::HttpClient;

/// The longest wait or burn a task may ask for (one hour), in milliseconds.
pub const MS_ARG_MAX: u64 = 3_600_000;

/// One task's input: its index in the job, its sub-range `[start, end)` of
/// the job's range (or of its items), and for an inputs job those items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInput {
    pub index: u64,
    pub start: u64,
    pub end: u64,
    /// An inputs job's items `start..end` (a text line or one JSON value
    /// each); empty for a range job.
    pub items: Vec<Vec<u8>>,
    /// The items are JSON values (`--inputs-format jsonl`), not text lines.
    pub items_are_json: bool,
    /// The most bytes the task's output may have (the job's
    /// `--max-result-bytes`): a workload that buffers what it returns can
    /// stop reading past it. `None`: no bound but the workload's own.
    pub output_limit: Option<u64>,
}

impl TaskInput {
    /// A range job's task.
    pub fn range(index: u64, start: u64, end: u64) -> TaskInput {
        TaskInput {
            index,
            start,
            end,
            items: Vec::new(),
            items_are_json: false,
            output_limit: None,
        }
    }
}

/// What a blocking slot (a thread, or an executor process) keeps between
/// tasks: its one kept-alive HTTP connection, and a current-thread tokio
/// runtime for async user tasks, made the first time one runs here.
#[derive(Debug, Default)]
pub struct BlockingContext {
    pub http: HttpClient,
    runtime: Option<tokio::runtime::Runtime>,
    /// When the running task's timeout passes (thread slots): a command it
    /// started is killed then.
    pub(crate) deadline: Option<std::time::Instant>,
    /// Raised when the running task's job is cancelled (thread slots).
    pub(crate) interrupt: Option<std::sync::Arc<crate::contain::Interrupt>>,
}

impl BlockingContext {
    pub fn new() -> BlockingContext {
        BlockingContext::default()
    }

    /// This slot's runtime for driving an async task to its end.
    pub fn runtime(&mut self) -> Result<&tokio::runtime::Runtime, String> {
        if self.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime for an async task: {e}"))?;
            self.runtime = Some(rt);
        }
        self.runtime
            .as_ref()
            .ok_or_else(|| "no runtime for an async task".to_string())
    }
}

/// What an async loop shares between all of its tasks.
#[derive(Debug, Clone)]
pub struct AsyncContext {
    pub http: AsyncHttpClient,
}

impl AsyncContext {
    /// `pool`: how many connections to keep alive (the loop's task cap).
    pub fn new(pool: usize) -> AsyncContext {
        AsyncContext {
            http: async_http_client(pool),
        }
    }
}

/// A task that never waits: it runs to its end on the calling thread on
/// every model.
pub trait BlockingTask: Send + Sync + 'static {
    fn run(&self, input: &TaskInput, ctx: &mut BlockingContext) -> Result<Output, String>;
}

/// A task that waits (on I/O, a timer, a child process): blocking code on
/// thread and process slots, a future on async slots.
pub trait WaitingTask: Send + Sync + 'static {
    fn run_blocking(&self, input: &TaskInput, ctx: &mut BlockingContext) -> Result<Output, String>;
    fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        ctx: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>>;
}

/// How a job's tasks run.
pub enum TaskBody {
    /// Never waits (CPU work, or nothing at all): on async slots it runs
    /// inline on the loop, since a task of its own could be neither
    /// interrupted nor timed out and would cost a heap cell per task.
    Blocking(Box<dyn BlockingTask>),
    /// Waits: async slots run its future as a task of its own.
    Waiting(Box<dyn WaitingTask>),
}

impl TaskBody {
    pub fn blocking(task: impl BlockingTask) -> TaskBody {
        TaskBody::Blocking(Box::new(task))
    }

    pub fn waiting(task: impl WaitingTask) -> TaskBody {
        TaskBody::Waiting(Box::new(task))
    }
}

type Prepare = dyn Fn(&ArgValues) -> Result<TaskBody, String> + Send + Sync;

/// A workload's definition and the code that prepares a job's tasks from
/// its checked arguments.
pub struct Registration {
    def: WorkloadDef,
    prepare: Box<Prepare>,
}

impl Registration {
    pub fn new(
        def: WorkloadDef,
        prepare: impl Fn(&ArgValues) -> Result<TaskBody, String> + Send + Sync + 'static,
    ) -> Registration {
        Registration {
            def,
            prepare: Box::new(prepare),
        }
    }

    pub fn def(&self) -> &WorkloadDef {
        &self.def
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.def.name)
            .finish_non_exhaustive()
    }
}

/// The workloads a worker offers, by name.
#[derive(Debug, Default)]
pub struct Registry {
    entries: HashMap<String, Registration>,
    catalog: Catalog,
}

impl Registry {
    /// No workloads at all.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// brigade's own workloads: sum-squares, noop, spin, sleep, http-get and
    /// exec (the node leaves exec out unless the worker allows it).
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        for reg in [
            sum_squares::registration(),
            noop::registration(),
            echo::registration(),
            spin::registration(),
            sleep::registration(),
            http_get::registration(),
            exec::registration(),
        ] {
            // Built-in definitions are checked by this crate's tests.
            if let Err(e) = r.register(reg) {
                panic!("a built-in workload is ill-defined: {e}");
            }
        }
        r
    }

    /// Adds a workload; refuses an ill-formed definition or a name taken.
    pub fn register(&mut self, reg: Registration) -> Result<(), CatalogError> {
        reg.def.check()?;
        if self.entries.contains_key(&reg.def.name) {
            return Err(CatalogError::BadDefinition {
                name: reg.def.name.clone(),
                why: "a workload of that name is already registered".into(),
            });
        }
        self.catalog.insert(reg.def.clone());
        self.entries.insert(reg.def.name.clone(), reg);
        Ok(())
    }

    /// Removes a workload (e.g. exec where it is not allowed).
    pub fn remove(&mut self, name: &str) {
        self.entries.remove(name);
        self.catalog = self.entries.values().map(|r| r.def.clone()).collect();
    }

    /// The definitions, as announced to the coordinator.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Checks a job's arguments against the workload's definition and
    /// prepares its tasks.
    pub fn prepare(&self, name: &str, args: &HashMap<String, String>) -> Result<Workload, String> {
        let def = self.catalog.lookup(name).map_err(|e| e.to_string())?;
        let values = def.validate(args).map_err(|e| e.to_string())?;
        let reg = &self.entries[&def.name];
        Ok(Workload {
            name: def.name.clone(),
            args: args.clone(),
            body: (reg.prepare)(&values)?,
            max_output: None,
        })
    }
}

/// The definitions of brigade's built-in workloads, which a coordinator
/// preloads so it can check jobs before any worker links.
pub fn builtin_catalog() -> Catalog {
    builtin().catalog().clone()
}

/// The built-in registry, built once per process.
fn builtin() -> &'static Registry {
    static BUILTIN: OnceLock<Registry> = OnceLock::new();
    BUILTIN.get_or_init(Registry::builtin)
}

/// One job's workload, ready to run its tasks.
pub struct Workload {
    name: String,
    /// The arguments as given: how the process executor hands the spec on
    /// to its children, which prepare it again from their own registry.
    args: HashMap<String, String>,
    body: TaskBody,
    /// The job's bound on one task's byte output.
    max_output: Option<u64>,
}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("name", &self.name)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// Prepares a job of a built-in workload.
    pub fn from_spec(name: &str, args: &HashMap<String, String>) -> Result<Workload, String> {
        builtin().prepare(name, args)
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The job's arguments as given.
    pub fn args(&self) -> &HashMap<String, String> {
        &self.args
    }

    /// Bounds every task's byte output: a longer one fails its task.
    pub fn with_max_output(mut self, bytes: Option<u64>) -> Workload {
        self.max_output = bytes;
        self
    }

    /// The bound on one task's byte output, if any.
    pub fn max_output(&self) -> Option<u64> {
        self.max_output
    }

    /// What a run comes to as an outcome: its status, output and error. An
    /// output over the job's bound is refused for good
    /// ([`OutcomeStatus::OutputTooLarge`]): another attempt would make it
    /// again.
    pub fn judge(&self, r: Result<Output, String>) -> (OutcomeStatus, Output, String) {
        match (r, self.max_output) {
            (Ok(Output::Bytes(b)), Some(max)) if b.len() as u64 > max => (
                OutcomeStatus::OutputTooLarge,
                Output::Int(0),
                format!(
                    "the task's output is over the job's limit of {max} bytes \
                     (--max-result-bytes {max})"
                ),
            ),
            (Ok(v), _) => (OutcomeStatus::Ok, v, String::new()),
            (Err(e), _) => (OutcomeStatus::Failed, Output::Int(0), e),
        }
    }

    /// How the job's tasks run.
    pub fn body(&self) -> &TaskBody {
        &self.body
    }

    /// Whether async slots give each task a future of its own (else they run
    /// it inline).
    pub fn waits(&self) -> bool {
        matches!(self.body, TaskBody::Waiting(_))
    }

    /// Runs one task on the calling thread (thread and process slots, and
    /// inline on the event loop).
    pub fn run_blocking(
        &self,
        input: &TaskInput,
        ctx: &mut BlockingContext,
    ) -> Result<Output, String> {
        match &self.body {
            TaskBody::Blocking(t) => t.run(input, ctx),
            TaskBody::Waiting(t) => t.run_blocking(input, ctx),
        }
    }

    /// Runs one task as a future (async slots). A task that never waits
    /// completes in its first poll; the event loop runs those inline with
    /// [`Workload::run_blocking`] instead.
    pub fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        ctx: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>> {
        Box::pin(async move {
            match &self.body {
                TaskBody::Blocking(t) => t.run(input, &mut BlockingContext::new()),
                TaskBody::Waiting(t) => t.run_async(input, ctx).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::args;
    use std::time::Duration;

    fn input(index: u64, start: u64, end: u64) -> TaskInput {
        TaskInput::range(index, start, end)
    }

    fn run(name: &str, a: &[(&str, &str)], i: TaskInput) -> Result<Output, String> {
        let w = Workload::from_spec(name, &args(a)).expect("a valid spec");
        w.run_blocking(&i, &mut BlockingContext::new())
    }

    #[test]
    fn every_builtin_definition_is_well_formed_and_announced() {
        let r = Registry::builtin();
        assert_eq!(
            r.catalog().known_names(),
            "echo, exec, http-get, noop, sleep, spin, sum-squares"
        );
        for def in r.catalog().iter() {
            def.check().unwrap();
        }
    }

    #[test]
    fn specs_prepare_with_defaults_and_bodies_say_whether_they_wait() {
        for (name, a, waits) in [
            ("noop", args(&[]), false),
            ("echo", args(&[]), false),
            ("sum-squares", args(&[]), false),
            ("spin", args(&[("ms", "7")]), false),
            ("sleep", args(&[]), true),
            (
                "http-get",
                args(&[("url", "http://127.0.0.1:9/fast")]),
                true,
            ),
            ("exec", args(&[("cmd", "true")]), true),
        ] {
            let w = Workload::from_spec(name, &a).unwrap();
            assert_eq!((w.name(), w.waits()), (name, waits));
            assert_eq!(w.args(), &a);
        }
    }

    #[test]
    fn bad_specs_are_refused_with_the_definition_s_message() {
        let e = Workload::from_spec("fib", &args(&[])).unwrap_err();
        assert!(
            e.contains("unknown workload \"fib\"") && e.contains("noop"),
            "{e}"
        );
        let e = Workload::from_spec("spin", &args(&[])).unwrap_err();
        assert!(e.contains("needs argument ms"), "{e}");
        let e = Workload::from_spec("http-get", &args(&[])).unwrap_err();
        assert!(e.contains("needs argument url"), "{e}");
        let e = Workload::from_spec(
            "http-get",
            &args(&[("url", "http://h/"), ("expect-len", "x")]),
        )
        .unwrap_err();
        assert!(e.contains("expect-len"), "{e}");
        let e = Workload::from_spec("http-get", &args(&[("url", "ftp://x/")])).unwrap_err();
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn a_registry_refuses_a_taken_name_or_a_bad_definition() {
        let mut r = Registry::builtin();
        let e = r.register(noop::registration()).unwrap_err().to_string();
        assert!(e.contains("already registered"), "{e}");
        let bad = Registration::new(
            WorkloadDef::new(
                "Has Spaces",
                brigade_proto::v1::Kind::Io,
                brigade_proto::catalog::Reduction::List,
                "",
            ),
            |_| Ok(TaskBody::blocking(noop::Noop)),
        );
        assert!(r.register(bad).is_err());
        r.remove("exec");
        assert!(!r.catalog().contains("exec"));
        assert!(r.prepare("exec", &args(&[("cmd", "true")])).is_err());
    }

    #[test]
    fn blocking_runs_return_the_exact_values() {
        assert_eq!(run("noop", &[], input(42, 0, 0)), Ok(Output::Int(42)));
        assert_eq!(
            run("sum-squares", &[], input(0, 0, 1_500_000)),
            Ok(Output::Int(1_124_998_875_000_250_000))
        );
        assert_eq!(
            run("spin", &[("ms", "1"), ("crash-index", "8")], input(7, 0, 0)),
            Ok(Output::Int(7))
        );
        assert_eq!(
            run("sleep", &[("ms", "1")], input(8, 0, 0)),
            Ok(Output::Int(8))
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn async_runs_return_the_exact_values() {
        let ctx = AsyncContext::new(1);
        let noop = Workload::from_spec("noop", &args(&[])).unwrap();
        assert_eq!(
            noop.run_async(&input(3, 0, 0), &ctx).await,
            Ok(Output::Int(3))
        );
        let sums = Workload::from_spec("sum-squares", &args(&[])).unwrap();
        assert_eq!(
            sums.run_async(&input(0, 3, 5), &ctx).await,
            Ok(Output::Int(25))
        );
        let sleep = Workload::from_spec("sleep", &args(&[("ms", "5000")])).unwrap();
        let t = tokio::time::Instant::now();
        assert_eq!(
            sleep.run_async(&input(9, 0, 0), &ctx).await,
            Ok(Output::Int(9))
        );
        assert_eq!(t.elapsed(), Duration::from_secs(5));
    }
}
