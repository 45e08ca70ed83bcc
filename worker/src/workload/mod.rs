//! The workloads a worker runs, one module each, behind one dispatch:
//! [`Workload`] is parsed once per job spec ([`Workload::from_spec`], validated
//! against the shared catalogue) and run per task either blocking (thread and
//! process slots, [`Workload::run_blocking`]) or on the event loop (async
//! slots, [`Workload::run_async`]).

pub mod cpu_clock;
pub mod exec;
pub mod http_get;
pub mod noop;
pub mod sleep;
pub mod spin;
pub mod sum_squares;

use std::collections::HashMap;
use std::time::Duration;

use brigade_proto::catalog::{self, WorkloadDef};

pub use cpu_clock::thread_cpu_ns;
pub use http_get::{async_http_client, AsyncHttpClient, HttpGet};

use crate::http_client::HttpClient;

/// One task's input: its index in the job and its sub-range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInput {
    pub index: u64,
    pub start: u64,
    pub end: u64,
}

/// A workload with its arguments parsed.
#[derive(Debug, Clone)]
pub enum Workload {
    SumSquares,
    Noop,
    /// `crash_index`: the task with that index aborts its process (a poison
    /// task, for fault tests).
    Spin {
        cpu: Duration,
        crash_index: Option<u64>,
    },
    Sleep {
        wait: Duration,
    },
    HttpGet(HttpGet),
    /// A shell command (only where the worker allows exec).
    Exec {
        cmd: String,
    },
}

/// What a blocking slot (a thread, or an executor process) keeps between
/// tasks: its one kept-alive HTTP connection.
#[derive(Debug, Default)]
pub struct BlockingContext {
    pub http: HttpClient,
}

impl BlockingContext {
    pub fn new() -> BlockingContext {
        BlockingContext::default()
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

fn u64_arg(
    def: &WorkloadDef,
    args: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, String> {
    def.arg(args, name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                format!(
                    "argument {name}={v:?} of workload {} is not an integer",
                    def.name
                )
            })
        })
        .transpose()
}

fn required_u64(
    def: &WorkloadDef,
    args: &HashMap<String, String>,
    name: &str,
) -> Result<u64, String> {
    u64_arg(def, args, name)?.ok_or_else(|| format!("workload {} needs argument {name}", def.name))
}

impl Workload {
    /// Validates via the catalogue and parses the args once (per AssignBatch).
    pub fn from_spec(name: &str, args: &HashMap<String, String>) -> Result<Workload, String> {
        let def = catalog::lookup(name).map_err(|e| e.to_string())?;
        def.validate_args(args).map_err(|e| e.to_string())?;
        match def.name {
            "sum-squares" => Ok(Workload::SumSquares),
            "noop" => Ok(Workload::Noop),
            "spin" => Ok(Workload::Spin {
                cpu: Duration::from_millis(required_u64(def, args, "ms")?),
                crash_index: u64_arg(def, args, "crash-index")?,
            }),
            "sleep" => Ok(Workload::Sleep {
                wait: Duration::from_millis(required_u64(def, args, "ms")?),
            }),
            "http-get" => {
                let url = def
                    .arg(args, "url")
                    .ok_or_else(|| "workload http-get needs argument url".to_string())?;
                let status = required_u64(def, args, "expect-status")?;
                let status = u16::try_from(status)
                    .map_err(|_| format!("expect-status {status} is not an HTTP status"))?;
                let len = u64_arg(def, args, "expect-len")?;
                Ok(Workload::HttpGet(HttpGet::new(url, status, len)?))
            }
            "exec" => Ok(Workload::Exec {
                cmd: def
                    .arg(args, "cmd")
                    .ok_or_else(|| "workload exec needs argument cmd".to_string())?
                    .to_string(),
            }),
            other => Err(format!(
                "workload {other} is in the catalogue but this worker does not implement it"
            )),
        }
    }

    /// The catalogue name.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::SumSquares => "sum-squares",
            Workload::Noop => "noop",
            Workload::Spin { .. } => "spin",
            Workload::Sleep { .. } => "sleep",
            Workload::HttpGet(_) => "http-get",
            Workload::Exec { .. } => "exec",
        }
    }

    /// Arguments that [`Workload::from_spec`] turns back into this workload
    /// (defaults spelled out); how the process executor hands a spec to its
    /// children.
    pub fn args(&self) -> HashMap<String, String> {
        let mut args = HashMap::new();
        match self {
            Workload::SumSquares | Workload::Noop => {}
            Workload::Spin { cpu, crash_index } => {
                args.insert("ms".into(), cpu.as_millis().to_string());
                if let Some(i) = crash_index {
                    args.insert("crash-index".into(), i.to_string());
                }
            }
            Workload::Sleep { wait } => {
                args.insert("ms".into(), wait.as_millis().to_string());
            }
            Workload::Exec { cmd } => {
                args.insert("cmd".into(), cmd.clone());
            }
            Workload::HttpGet(h) => {
                args.insert("url".into(), h.raw_url.clone());
                args.insert("expect-status".into(), h.expect_status.to_string());
                if let Some(len) = h.expect_len {
                    args.insert("expect-len".into(), len.to_string());
                }
            }
        }
        args
    }

    /// Runs one task on the calling thread (thread and process slots).
    pub fn run_blocking(
        &self,
        input: &TaskInput,
        ctx: &mut BlockingContext,
    ) -> Result<u128, String> {
        match self {
            Workload::SumSquares => sum_squares::run(input.start, input.end),
            Workload::Noop => Ok(noop::run(input.index)),
            Workload::Spin { cpu, crash_index } => {
                spin::run(*cpu, input.index, *crash_index);
                Ok(input.index as u128)
            }
            Workload::Sleep { wait } => {
                sleep::run_blocking(*wait);
                Ok(input.index as u128)
            }
            Workload::HttpGet(h) => h.run_blocking(&mut ctx.http),
            Workload::Exec { cmd } => exec::run_blocking(cmd, input),
        }
    }

    /// Runs one task on the event loop (async slots). CPU-bound workloads run
    /// inline and hold the loop, exactly as they would under asyncio.
    pub async fn run_async(&self, input: &TaskInput, ctx: &AsyncContext) -> Result<u128, String> {
        match self {
            Workload::SumSquares => sum_squares::run(input.start, input.end),
            Workload::Noop => Ok(noop::run(input.index)),
            Workload::Spin { cpu, crash_index } => {
                spin::run(*cpu, input.index, *crash_index);
                Ok(input.index as u128)
            }
            Workload::Sleep { wait } => {
                sleep::run_async(*wait).await;
                Ok(input.index as u128)
            }
            Workload::HttpGet(h) => h.run_async(&ctx.http).await,
            Workload::Exec { cmd } => exec::run_async(cmd, input).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn input(index: u64, start: u64, end: u64) -> TaskInput {
        TaskInput { index, start, end }
    }

    #[test]
    fn specs_parse_with_defaults() {
        assert!(matches!(
            Workload::from_spec("noop", &args(&[])),
            Ok(Workload::Noop)
        ));
        assert!(matches!(
            Workload::from_spec("sleep", &args(&[])),
            Ok(Workload::Sleep { wait }) if wait == Duration::from_millis(100)
        ));
        assert!(matches!(
            Workload::from_spec("spin", &args(&[("ms", "7")])),
            Ok(Workload::Spin { cpu, crash_index: None }) if cpu == Duration::from_millis(7)
        ));
        match Workload::from_spec("http-get", &args(&[("url", "http://127.0.0.1:9/fast")])) {
            Ok(Workload::HttpGet(h)) => {
                assert_eq!(h.expect_status, 200);
                assert_eq!(h.expect_len, None);
                assert_eq!(h.url.port, 9);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_specs_are_refused_with_the_catalogue_message() {
        let e = Workload::from_spec("fib", &args(&[])).unwrap_err();
        assert!(e.contains("unknown workload"), "{e}");
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
        let e = Workload::from_spec("http-get", &args(&[("url", "https://x/")])).unwrap_err();
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn args_round_trip_through_from_spec() {
        for (name, a) in [
            ("noop", args(&[])),
            ("sum-squares", args(&[])),
            ("spin", args(&[("ms", "3")])),
            ("sleep", args(&[])),
            (
                "http-get",
                args(&[("url", "http://h:1/x"), ("expect-len", "5")]),
            ),
        ] {
            let w = Workload::from_spec(name, &a).unwrap();
            assert_eq!(w.name(), name);
            let again = Workload::from_spec(w.name(), &w.args()).unwrap();
            assert_eq!(again.args(), w.args());
        }
    }

    #[test]
    fn blocking_runs_return_the_exact_values() {
        let mut ctx = BlockingContext::new();
        let run = |w: &Workload, i: TaskInput, ctx: &mut BlockingContext| w.run_blocking(&i, ctx);
        assert_eq!(run(&Workload::Noop, input(42, 0, 0), &mut ctx), Ok(42));
        assert_eq!(
            run(&Workload::SumSquares, input(0, 0, 1_500_000), &mut ctx),
            Ok(1_124_998_875_000_250_000)
        );
        let spin = Workload::Spin {
            cpu: Duration::from_millis(1),
            crash_index: Some(8),
        };
        assert_eq!(run(&spin, input(7, 0, 0), &mut ctx), Ok(7));
        let sleep = Workload::Sleep {
            wait: Duration::from_millis(1),
        };
        assert_eq!(run(&sleep, input(8, 0, 0), &mut ctx), Ok(8));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn async_runs_return_the_exact_values() {
        let ctx = AsyncContext::new(1);
        assert_eq!(Workload::Noop.run_async(&input(3, 0, 0), &ctx).await, Ok(3));
        assert_eq!(
            Workload::SumSquares.run_async(&input(0, 3, 5), &ctx).await,
            Ok(25)
        );
        let sleep = Workload::Sleep {
            wait: Duration::from_secs(5),
        };
        assert_eq!(sleep.run_async(&input(9, 0, 0), &ctx).await, Ok(9));
    }
}
