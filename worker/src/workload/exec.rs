//! `exec cmd=… [stdin=true]`: runs a shell command per task, for work that is
//! not Rust. Only workers started with `--allow-exec` offer it. The command
//! gets its task's input: `{}` in the command stands for the task's items
//! (each shell-quoted, separated by spaces; a range task's index), and with
//! `stdin=true` the items are its standard input, one per line. The task is
//! also in `BRIGADE_TASK_INDEX`, `BRIGADE_TASK_START` and `BRIGADE_TASK_END`.
//! Exit 0 succeeds; what it prints is the output: an unsigned integer as an
//! integer (nothing: 0), anything else as bytes (one trailing newline
//! dropped), at most [`MAX_STDOUT`] bytes. A failure's error ends with the
//! last [`STDERR_TAIL`] characters of its standard error.
//!
//! The command runs contained ([`crate::contain`]): in a process group (and,
//! where the machine allows, a cgroup v2 leaf) of its own, all of which is
//! killed when its shell exits, when the task is cancelled or times out (on
//! a thread slot too: the slot's wait ends at its deadline or interrupt),
//! and when the worker dies. A task ends when its shell exits; what it left
//! running is killed then, and its output is what was written until then.

use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use brigade_proto::catalog::{ArgDef, ArgType, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::contain::{self, Ended};
use crate::reaper;

use super::{AsyncContext, BlockingContext, Registration, TaskBody, TaskInput, WaitingTask};

/// The name the node leaves out of its registry without `--allow-exec`.
pub const NAME: &str = "exec";
/// Characters of standard error kept in a failed task's error.
pub const STDERR_TAIL: usize = 400;
/// Most standard output a command may print (the job's own
/// `--max-result-bytes` is usually lower).
pub const MAX_STDOUT: u64 = 64 << 20;

/// The definition and code of `exec`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            NAME,
            Kind::Cpu,
            Reduction::List,
            "runs a shell command per task (only on workers started with --allow-exec); `{}` in \
             it stands for the task's input; exit 0 succeeds and what it prints is the output \
             (an unsigned integer as a number, anything else as text)",
        )
        .arg(
            ArgDef::new(
                "cmd",
                ArgType::Text,
                "shell command run with /bin/sh -c; `{}` is replaced by the task's input items \
                 (shell-quoted; a range task's index); BRIGADE_TASK_INDEX, BRIGADE_TASK_START \
                 and BRIGADE_TASK_END are set",
            )
            .required(),
        )
        .arg(
            ArgDef::new(
                "stdin",
                ArgType::Bool,
                "feed the task's input items to the command's standard input, one per line",
            )
            .default("false"),
        ),
        |args| {
            Ok(TaskBody::waiting(Exec {
                cmd: args.required_text("cmd")?.to_string(),
                stdin: args.flag("stdin"),
            }))
        },
    )
}

/// An exec job's tasks.
#[derive(Debug)]
pub struct Exec {
    pub cmd: String,
    pub stdin: bool,
}

/// `s` in single quotes, safe as one shell word whatever it holds.
fn shell_quote(s: &[u8]) -> String {
    let s = String::from_utf8_lossy(s);
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Exec {
    /// The command line with `{}` standing for the task's input.
    fn command_line(&self, input: &TaskInput) -> String {
        if !self.cmd.contains("{}") {
            return self.cmd.clone();
        }
        let words = if input.items.is_empty() {
            input.index.to_string()
        } else {
            input
                .items
                .iter()
                .map(|i| shell_quote(i))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.cmd.replace("{}", &words)
    }

    /// What goes to the command's standard input (nothing unless `stdin`).
    fn stdin_bytes(&self, input: &TaskInput) -> Vec<u8> {
        if !self.stdin {
            return Vec::new();
        }
        if input.items.is_empty() {
            return format!("{}\n", input.index).into_bytes();
        }
        let mut out = Vec::new();
        for item in &input.items {
            out.extend_from_slice(item);
            out.push(b'\n');
        }
        out
    }

    fn configure(&self, input: &TaskInput) -> std::process::Command {
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(self.command_line(input))
            .env("BRIGADE_TASK_INDEX", input.index.to_string())
            .env("BRIGADE_TASK_START", input.start.to_string())
            .env("BRIGADE_TASK_END", input.end.to_string())
            .env_remove(reaper::FD_ENV)
            .env_remove(contain::CGROUP_DIR_ENV)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

/// What a finished command left: its exit, its standard output (up to
/// `MAX_STDOUT` + 1 bytes) and the tail of its standard error.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn tail(bytes: &[u8]) -> String {
    let err = String::from_utf8_lossy(bytes);
    let start = err
        .char_indices()
        .rev()
        .nth(STDERR_TAIL - 1)
        .map_or(0, |(i, _)| i);
    err[start..].trim().to_string()
}

/// The most standard output a task keeps: the job's bound on its output
/// (but room enough for any integer, which the bound does not cover),
/// never more than [`MAX_STDOUT`].
fn stdout_cap(input: &TaskInput) -> u64 {
    input
        .output_limit
        .map_or(MAX_STDOUT, |limit| limit.clamp(64, MAX_STDOUT))
}

fn judge(ran: std::io::Result<Ran>, cap: u64) -> Result<Output, String> {
    let ran = ran.map_err(|e| match e.kind() {
        // Stopped (timeout, cancel) or output held open: the reason says it.
        std::io::ErrorKind::Other => e.to_string(),
        _ => format!("cannot run /bin/sh: {e}"),
    })?;
    if !ran.status.success() {
        return Err(format!("command {}: {}", ran.status, tail(&ran.stderr)));
    }
    if ran.stdout.len() as u64 > cap && cap < MAX_STDOUT {
        // Over the job's bound: the workload's caller refuses it for good.
        return Ok(Output::Bytes(ran.stdout));
    }
    if ran.stdout.len() as u64 > MAX_STDOUT {
        return Err(format!(
            "command printed more than {MAX_STDOUT} bytes, the most a task's output may have"
        ));
    }
    let mut out = ran.stdout;
    let text = std::str::from_utf8(&out).map(str::trim).unwrap_or("x");
    if text.is_empty() {
        return Ok(Output::Int(0));
    }
    if let Ok(v) = text.parse::<u128>() {
        return Ok(Output::Int(v));
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(Output::Bytes(out))
}

/// Keeps at most `STDERR_TAIL * 4` bytes (the tail's characters, in UTF-8 at
/// worst) of a stream, reading it to its end.
fn keep_tail(buf: &mut Vec<u8>, chunk: &[u8]) {
    buf.extend_from_slice(chunk);
    let keep = STDERR_TAIL * 4;
    if buf.len() > 2 * keep {
        buf.drain(..buf.len() - keep);
    }
}

/// How long a command's output may stay open after its shell exited and
/// its group (and cgroup leaf) were killed: only a process that escaped both
/// can hold it longer.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

fn output_held_open() -> std::io::Error {
    std::io::Error::other(format!(
        "the command's output stayed open {} ms after it exited and everything it started \
         was killed (a process it started escaped its process group)",
        OUTPUT_GRACE.as_millis()
    ))
}

/// Why a command was stopped before its shell exited.
fn stopped(ended: Ended) -> std::io::Error {
    std::io::Error::other(match ended {
        Ended::TimedOut => "the task's timeout passed; the command and all it started were killed",
        _ => "the job was cancelled; the command and all it started were killed",
    })
}

/// Runs the command on this thread until its shell exits, the slot's
/// deadline passes or the slot is interrupted; then kills all it started.
fn run_blocking(task: &Exec, input: &TaskInput, ctx: &BlockingContext) -> std::io::Result<Ran> {
    let mut cmd = task.configure(input);
    let prepared = contain::prepare(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            prepared.abandon();
            return Err(e);
        }
    };
    let contained = prepared.spawned(child.id());
    let feed = task.stdin_bytes(input);
    let cap = stdout_cap(input);
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let stdout = child.stdout.take();
    // Readers on threads of their own: one that a process escaping the
    // group keeps blocked is left behind rather than holding the slot.
    if let Some(mut stdin) = stdin {
        // A command that does not read its input closes the pipe: fine.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&feed);
        });
    }
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    if let Some(mut stderr) = stderr {
        std::thread::spawn(move || {
            let (mut buf, mut kept) = (vec![0u8; 8192], Vec::new());
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                keep_tail(&mut kept, &buf[..n]);
            }
            let _ = err_tx.send(kept);
        });
    }
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    if let Some(mut stdout) = stdout {
        std::thread::spawn(move || {
            let mut read = || {
                let mut out = Vec::new();
                (&mut stdout).take(cap + 1).read_to_end(&mut out)?;
                // Drain what is over the bound so the command is not blocked on it.
                std::io::copy(&mut stdout, &mut std::io::sink())?;
                Ok::<_, std::io::Error>(out)
            };
            let _ = out_tx.send(read());
        });
    }
    let ended = contained.wait_exit(ctx.deadline, ctx.interrupt.as_deref());
    contained.kill();
    let status = child.wait()?;
    drop(contained);
    if ended != Ended::Exited {
        return Err(stopped(ended));
    }
    let until = Instant::now() + OUTPUT_GRACE;
    let left = || until.saturating_duration_since(Instant::now());
    let stdout = match out_rx.recv_timeout(left()) {
        Ok(r) => r?,
        Err(RecvTimeoutError::Timeout) => return Err(output_held_open()),
        Err(RecvTimeoutError::Disconnected) => Vec::new(),
    };
    let stderr = match err_rx.recv_timeout(left()) {
        Ok(kept) => kept,
        Err(RecvTimeoutError::Timeout) => return Err(output_held_open()),
        Err(RecvTimeoutError::Disconnected) => Vec::new(),
    };
    Ok(Ran {
        status,
        stdout,
        stderr,
    })
}

async fn run_async(task: &Exec, input: &TaskInput) -> std::io::Result<Ran> {
    let mut std_cmd = task.configure(input);
    let prepared = contain::prepare(&mut std_cmd);
    let mut c = tokio::process::Command::from(std_cmd);
    c.kill_on_drop(true);
    let mut child = match c.spawn() {
        Ok(c) => c,
        Err(e) => {
            prepared.abandon();
            return Err(e);
        }
    };
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the command's shell exited unseen"))?;
    // Declared after `child`, so dropped first (an abort, a timeout): what
    // the command started is killed before its shell can be reaped.
    let contained = prepared.spawned(pid);
    let feed = task.stdin_bytes(input);
    let stdin = child.stdin.take();
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr"))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let write = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&feed).await;
        }
    };
    let err = async move {
        let (mut buf, mut kept) = (vec![0u8; 8192], Vec::new());
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            keep_tail(&mut kept, &buf[..n]);
        }
        kept
    };
    let out = async move {
        let mut out = Vec::new();
        (&mut stdout)
            .take(stdout_cap(input) + 1)
            .read_to_end(&mut out)
            .await?;
        tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await?;
        Ok::<_, std::io::Error>(out)
    };
    let ((), stderr, stdout) = {
        let io = async { tokio::join!(write, err, out) };
        let mut io = std::pin::pin!(io);
        let mut exited = std::pin::pin!(contained.exited());
        let early = tokio::select! {
            r = &mut io => Some(r),
            () = &mut exited => None,
        };
        match early {
            Some(r) => {
                exited.await;
                contained.kill();
                r
            }
            None => {
                contained.kill();
                tokio::time::timeout(OUTPUT_GRACE, io)
                    .await
                    .map_err(|_| output_held_open())?
            }
        }
    };
    let status = child.wait().await?;
    drop(contained);
    Ok(Ran {
        status,
        stdout: stdout?,
        stderr,
    })
}

impl WaitingTask for Exec {
    fn run_blocking(&self, input: &TaskInput, ctx: &mut BlockingContext) -> Result<Output, String> {
        judge(run_blocking(self, input, ctx), stdout_cap(input))
    }

    fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        _: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>> {
        Box::pin(async move { judge(run_async(self, input).await, stdout_cap(input)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(index: u64) -> TaskInput {
        TaskInput::range(index, index * 10, index * 10 + 10)
    }

    fn exec(cmd: &str, stdin: bool) -> Exec {
        Exec {
            cmd: cmd.into(),
            stdin,
        }
    }

    fn run(cmd: &str, input: &TaskInput) -> Result<Output, String> {
        exec(cmd, false).run_blocking(input, &mut BlockingContext::new())
    }

    fn items(items: &[&str]) -> TaskInput {
        TaskInput {
            index: 4,
            start: 8,
            end: 8 + items.len() as u64,
            items: items.iter().map(|s| s.as_bytes().to_vec()).collect(),
            items_are_json: false,
            output_limit: None,
        }
    }

    #[test]
    fn the_printed_integer_is_the_result_and_the_task_is_in_the_environment() {
        let r = run(
            "echo $((BRIGADE_TASK_INDEX + BRIGADE_TASK_START + BRIGADE_TASK_END))",
            &input(3),
        );
        assert_eq!(r, Ok(Output::Int(3 + 30 + 40)));
        assert_eq!(run("true", &input(0)), Ok(Output::Int(0)));
        assert_eq!(run("echo {}", &input(7)), Ok(Output::Int(7)));
    }

    #[test]
    fn inputs_reach_the_command_quoted_and_text_comes_back_as_bytes() {
        assert_eq!(
            run("printf '%s|' {}", &items(&["a b", "it's", "$(id)"])),
            Ok(Output::Bytes(b"a b|it's|$(id)|".to_vec()))
        );
        let e = exec("tr a-z A-Z", true);
        assert_eq!(
            e.run_blocking(&items(&["one", "two"]), &mut BlockingContext::new()),
            Ok(Output::Bytes(b"ONE\nTWO".to_vec()))
        );
    }

    #[test]
    fn a_failing_command_fails_its_task_with_its_stderr_tail() {
        let e = run("echo nope >&2; exit 3", &input(0)).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("nope"), "{e}");
        let e = run(
            "i=0; while [ $i -lt 300 ]; do echo line$i >&2; i=$((i+1)); done; exit 1",
            &input(0),
        )
        .unwrap_err();
        assert!(e.contains("line299") && !e.contains("line0\n"), "{e}");
        assert!(e.len() < STDERR_TAIL + 100, "{} bytes", e.len());
    }

    #[tokio::test]
    async fn runs_on_the_event_loop_too() {
        let ctx = AsyncContext::new(1);
        let e = exec("echo 42", false);
        assert_eq!(e.run_async(&input(0), &ctx).await, Ok(Output::Int(42)));
        let e = exec("cat; echo {}", true);
        assert_eq!(
            e.run_async(&items(&["x"]), &ctx).await,
            Ok(Output::Bytes(b"x\nx".to_vec()))
        );
        let e = exec("echo bad >&2; exit 2", false);
        let err = e.run_async(&input(0), &ctx).await.unwrap_err();
        assert!(
            err.contains("exit status: 2") && err.contains("bad"),
            "{err}"
        );
    }
}
