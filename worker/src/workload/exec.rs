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
//! Every process the command starts stays in the slot's process group, so
//! killing a process slot's executor group kills them all.

use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};

use brigade_proto::catalog::{ArgDef, ArgType, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let ran = ran.map_err(|e| format!("cannot run /bin/sh: {e}"))?;
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

fn run_blocking(task: &Exec, input: &TaskInput) -> std::io::Result<Ran> {
    let mut child = task.configure(input).spawn()?;
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
    std::thread::scope(|s| {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input closes the pipe: fine.
            s.spawn(move || {
                let _ = stdin.write_all(&feed);
            });
        }
        let err = s.spawn(move || {
            let (mut buf, mut kept) = (vec![0u8; 8192], Vec::new());
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                keep_tail(&mut kept, &buf[..n]);
            }
            kept
        });
        let mut out = Vec::new();
        (&mut stdout)
            .take(stdout_cap(input) + 1)
            .read_to_end(&mut out)?;
        // Drain what is over the bound so the command is not blocked on it.
        std::io::copy(&mut stdout, &mut std::io::sink())?;
        let status = child.wait()?;
        let stderr = err.join().unwrap_or_default();
        Ok(Ran {
            status,
            stdout: out,
            stderr,
        })
    })
}

async fn run_async(task: &Exec, input: &TaskInput) -> std::io::Result<Ran> {
    let mut c = tokio::process::Command::from(task.configure(input));
    c.kill_on_drop(true);
    let mut child = c.spawn()?;
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
    let ((), stderr, stdout) = tokio::join!(write, err, out);
    let status = child.wait().await?;
    Ok(Ran {
        status,
        stdout: stdout?,
        stderr,
    })
}

impl WaitingTask for Exec {
    fn run_blocking(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        judge(run_blocking(self, input), stdout_cap(input))
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
