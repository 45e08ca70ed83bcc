//! `exec cmd=…`: runs a shell command per task, for work that is not Rust.
//! Only workers started with `--allow-exec` run it (the node refuses it
//! otherwise). The command sees its task as environment variables; exit 0
//! succeeds and the integer it prints (nothing: 0) is the result.
//!
//! Every process the command starts stays in the slot's process group, so
//! killing a process slot's executor group kills them all.

use std::process::{Output, Stdio};

use brigade_proto::catalog::{ArgDef, ArgType, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use futures::future::LocalBoxFuture;

use super::{AsyncContext, BlockingContext, Registration, TaskBody, TaskInput, WaitingTask};

/// The name the node leaves out of its registry without `--allow-exec`.
pub const NAME: &str = "exec";

/// The definition and code of `exec`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            NAME,
            Kind::Cpu,
            Reduction::List,
            "runs a shell command per task (only on workers started with --allow-exec); \
             exit 0 succeeds and the integer it prints (none: 0) is the result",
        )
        .arg(
            ArgDef::new(
                "cmd",
                ArgType::Text,
                "shell command run with /bin/sh -c; BRIGADE_TASK_INDEX, BRIGADE_TASK_START \
                 and BRIGADE_TASK_END are set",
            )
            .required(),
        ),
        |args| {
            Ok(TaskBody::waiting(Exec {
                cmd: args.required_text("cmd")?.to_string(),
            }))
        },
    )
}

/// An exec job's tasks.
#[derive(Debug)]
pub struct Exec {
    pub cmd: String,
}

impl WaitingTask for Exec {
    fn run_blocking(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<u128, String> {
        run_blocking(&self.cmd, input)
    }

    fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        _: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<u128, String>> {
        Box::pin(run_async(&self.cmd, input))
    }
}

/// How much of stderr a failure quotes.
const STDERR_TAIL: usize = 400;

fn configure(cmd: &str, input: &TaskInput) -> std::process::Command {
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(cmd)
        .env("BRIGADE_TASK_INDEX", input.index.to_string())
        .env("BRIGADE_TASK_START", input.start.to_string())
        .env("BRIGADE_TASK_END", input.end.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn judge(out: std::io::Result<Output>) -> Result<u128, String> {
    let out = out.map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .chars()
            .rev()
            .take(STDERR_TAIL)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!("command {}: {}", out.status, tail.trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<u128>()
        .map_err(|_| format!("command printed {text:?}, expected nothing or one unsigned integer"))
}

/// Runs the command on the calling thread (thread and process slots).
pub fn run_blocking(cmd: &str, input: &TaskInput) -> Result<u128, String> {
    judge(configure(cmd, input).output())
}

/// Runs the command without blocking the event loop (async slots); an
/// aborted task kills the shell.
pub async fn run_async(cmd: &str, input: &TaskInput) -> Result<u128, String> {
    let mut c = tokio::process::Command::from(configure(cmd, input));
    c.kill_on_drop(true);
    judge(c.output().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(index: u64) -> TaskInput {
        TaskInput {
            index,
            start: index * 10,
            end: index * 10 + 10,
        }
    }

    #[test]
    fn the_printed_integer_is_the_result_and_the_task_is_in_the_environment() {
        let r = run_blocking(
            "echo $((BRIGADE_TASK_INDEX + BRIGADE_TASK_START + BRIGADE_TASK_END))",
            &input(3),
        );
        assert_eq!(r, Ok(3 + 30 + 40));
        assert_eq!(run_blocking("true", &input(0)), Ok(0));
    }

    #[test]
    fn a_failing_or_chatty_command_fails_its_task_saying_why() {
        let e = run_blocking("echo nope >&2; exit 3", &input(0)).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("nope"), "{e}");
        let e = run_blocking("echo hello", &input(0)).unwrap_err();
        assert!(e.contains("\"hello\""), "{e}");
    }

    #[tokio::test]
    async fn runs_on_the_event_loop_too() {
        assert_eq!(run_async("echo 42", &input(0)).await, Ok(42));
    }
}
