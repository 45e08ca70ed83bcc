//! Client subcommands: submit, status, jobs, job, results, tasks, cancel,
//! workers; how a job that ended is reported (failures grouped by cause,
//! the run's summary line) and what Ctrl-C says ([`interrupted`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_client::inputs::{self, Source};
use brigade_client::{
    model_name, parse_inputs_format, parse_kind, parse_kv, parse_model, parse_range, state_name,
    total, Client, Order, Output, ResultRow, RunEvent, WaitEvent,
};
use brigade_proto::v1::{
    ClusterStatus, InputsFormat, JobInfo, JobSpec, JobState, Kind, Model, Reduce,
};

use clap::ValueEnum;
use futures::StreamExt;

use crate::cli::exit::Exit;
use crate::select::{JobSelector, StateFilter};

/// Output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: aligned columns, notes and progress on stderr.
    Table,
    /// One JSON value (an array for listings and results).
    Json,
    /// A header line, then one row per line.
    Csv,
    /// One JSON value per line (results: one row per line).
    Jsonl,
    /// Only the essential value, one per line (`--quiet`); not a
    /// `--format` of its own.
    #[value(skip)]
    Quiet,
}

impl Format {
    /// Whether errors are JSON (on stdout) in this format.
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::Jsonl)
    }
}

/// `500ms`, `30s`, `2m` on the command line.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("duration {s:?} must be a number with a unit: ms, s, m, h or d (e.g. 500ms, 30s, 2m, 7d)")
    };
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad),
        "h" => n
            .checked_mul(3_600)
            .map(Duration::from_secs)
            .ok_or_else(bad),
        "d" => n
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// `--keep-finished`: a duration with its unit (jobs that ended that long
/// ago go) or a plain count (all but the newest that many go).
pub fn parse_retention(s: &str) -> Result<brigade_coordinator::Retention, String> {
    use brigade_coordinator::Retention;
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Retention::Newest)
            .map_err(|_| format!("--keep-finished {s:?}: a count must fit in 64 bits"));
    }
    parse_duration(s)
        .map(Retention::For)
        .map_err(|e| format!("{e}; or a plain number of ended jobs to keep (e.g. 1000)"))
}

/// `sum`, `count`, `min`, `max`, `concat` or `none` on the command line.
pub fn parse_reduce(s: &str) -> Result<Reduce, String> {
    Ok(match s {
        "none" => Reduce::None,
        "sum" => Reduce::Sum,
        "count" => Reduce::Count,
        "min" => Reduce::Min,
        "max" => Reduce::Max,
        "concat" => Reduce::Concat,
        _ => {
            return Err(format!(
                "reduction {s:?} is not one of: sum, count, min, max, concat, none"
            ))
        }
    })
}

/// What `brigade submit` asks for.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Workload: echo, exec, http-get, noop, sleep, spin, sum-squares, or one
    /// a worker of your own offers.
    pub workload: String,
    /// Input range START..END (half-open): task i takes [START + i*chunk, ...).
    #[arg(long, value_parser = parse_range, required_unless_present = "inputs", conflicts_with = "inputs")]
    pub range: Option<(u64, u64)>,
    /// One task input per line of FILE (`-`: standard input), streamed to the
    /// coordinator; blank lines are skipped.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<String>,
    /// How the inputs' lines are read: text (each line a string) or jsonl
    /// (each line one JSON value).
    #[arg(long, value_parser = parse_inputs_format, default_value = "text", requires = "inputs")]
    pub inputs_format: InputsFormat,
    /// Width of one task's sub-range, or inputs per task with --inputs.
    #[arg(long, default_value_t = 1)]
    pub chunk: u64,
    /// Bytes one task's output may have (0: the coordinator's default, 1 MiB).
    #[arg(long, default_value_t = 0)]
    pub max_result_bytes: u64,
    /// How the outputs combine: sum, count, min, max, concat or none
    /// (default: the workload's, sum for sum-squares).
    #[arg(long, value_parser = parse_reduce)]
    pub reduce: Option<Reduce>,
    /// Workload argument KEY=VALUE (repeatable), e.g. --arg ms=10.
    #[arg(long = "arg", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// cpu (→ process slots) or io (→ async slots); default: the workload's.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Force a model: process, thread or async; or auto: probe a few tasks
    /// on thread slots, then route by their CPU per wall time.
    #[arg(long, value_parser = parse_model)]
    pub model: Option<Model>,
    /// Attempts per task (0: the coordinator's default).
    #[arg(long, default_value_t = 0)]
    pub max_attempts: u32,
    /// Per-task timeout in ms (0: none).
    #[arg(long, default_value_t = 0)]
    pub timeout_ms: u64,
    /// At most this many tasks of the job at once (0: no cap).
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: u32,
    /// Tasks that may fail for good (after their attempts) with the job
    /// still succeeding; they are listed in its status. Either way every
    /// task runs: the job fails at its end if more failed than this.
    #[arg(long, default_value_t = 0)]
    pub allow_failures: u64,
    /// Fail the job as soon as a task fails for good beyond
    /// --allow-failures, dropping its other tasks (by default every task
    /// runs and the job fails at its end, listing the failures).
    #[arg(long)]
    pub fail_fast: bool,
    /// A label for the job.
    #[arg(long, default_value = "")]
    pub name: String,
}

impl SubmitArgs {
    pub fn spec(&self) -> JobSpec {
        let (range_start, range_end) = self.range.unwrap_or_default();
        JobSpec {
            workload: self.workload.clone(),
            args: self.args.iter().cloned().collect::<HashMap<_, _>>(),
            range_start,
            range_end,
            has_inputs: self.inputs.is_some(),
            inputs_format: self.inputs_format as i32,
            max_result_bytes: self.max_result_bytes,
            reduce: self.reduce.unwrap_or(Reduce::Unspecified) as i32,
            chunk: self.chunk,
            kind: self.kind.unwrap_or(Kind::Unspecified) as i32,
            model: self.model.unwrap_or(Model::Unspecified) as i32,
            max_attempts: self.max_attempts,
            task_timeout_ms: self.timeout_ms,
            max_in_flight: self.max_in_flight,
            allow_failures: self.allow_failures,
            fail_fast: self.fail_fast,
            name: self.name.clone(),
        }
    }
}

/// What a client command is doing, for what Ctrl-C says ([`interrupted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Asking the coordinator something that changes nothing.
    #[default]
    Asking,
    /// Submitting a job not yet accepted (`inputs`: its upload is under way).
    Submitting { inputs: bool },
    /// Following an accepted job.
    Following(u64),
}

/// What an interrupted command says it left behind (the coordinator at
/// `url`): a job followed keeps running, with the commands that cancel it
/// or follow it again.
pub fn interrupted(phase: Phase, url: &str) -> String {
    let at = if url == brigade_client::DEFAULT_COORDINATOR {
        String::new()
    } else {
        format!(" --coordinator {url}")
    };
    match phase {
        Phase::Asking => "interrupted".to_string(),
        Phase::Submitting { inputs: true } => {
            "interrupted during the upload of the job's inputs: nothing was submitted".to_string()
        }
        Phase::Submitting { inputs: false } => format!(
            "interrupted before the coordinator answered: the job may have been accepted \
             (`brigade jobs{at}` lists it if so)"
        ),
        Phase::Following(id) => format!(
            "interrupted: job {id} keeps running on the coordinator.\n  \
             cancel it:          brigade cancel {id}{at}\n  \
             follow it again:    brigade job {id} --wait{at}"
        ),
    }
}

/// `brigade submit`: without `wait`, prints the job once accepted and
/// returns; with it, follows the job to its end.
pub async fn submit(
    client: &mut Client,
    args: &SubmitArgs,
    wait: bool,
    format: Format,
    phase: &Cell<Phase>,
) -> anyhow::Result<()> {
    if let Some(file) = &args.inputs {
        phase.set(Phase::Submitting { inputs: true });
        let items = inputs::read(Source::parse(file), args.inputs_format);
        let info = client
            .submit_inputs(args.spec(), items)
            .await
            .context("the job was not submitted")?;
        phase.set(Phase::Following(info.job_id));
        if !wait {
            print_accepted(&info, format);
            return Ok(());
        }
        say_accepted(&info, format);
        let info = wait_for(client, info.job_id, format != Format::Quiet).await?;
        return print_outcome(client, &info, format, true).await;
    }
    phase.set(Phase::Submitting { inputs: false });
    if wait {
        return submit_and_wait(client, args, format, phase).await;
    }
    let info = client
        .submit(args.spec())
        .await
        .context("the coordinator refused the job")?;
    phase.set(Phase::Following(info.job_id));
    print_accepted(&info, format);
    Ok(())
}

/// A job just accepted, on stdout (`submit` without `--wait`).
fn print_accepted(info: &JobInfo, format: Format) {
    match format {
        Format::Json | Format::Jsonl => println!("{}", job_json(info)),
        Format::Csv => println!("{JOB_CSV_HEADER}\n{}", job_csv(info)),
        Format::Quiet => println!("{}", info.job_id),
        Format::Table => println!("{}", accepted_line(info)),
    }
}

/// A job just accepted that `submit --wait` goes on to follow: its id on
/// stdout with --quiet, else a note on stderr (stdout is for its end).
fn say_accepted(info: &JobInfo, format: Format) {
    if format == Format::Quiet {
        println!("{}", info.job_id);
    } else {
        eprintln!("{}", accepted_line(info));
    }
}

fn accepted_line(info: &JobInfo) -> String {
    let queued = if info.state == JobState::Queued as i32 && !info.waiting_reason.is_empty() {
        format!(" (queued: {})", info.waiting_reason)
    } else {
        String::new()
    };
    format!(
        "job {} accepted: {} tasks on {} slots{queued}",
        info.job_id,
        info.tasks_total,
        model_name(info.model)
    )
}

/// `submit --wait`: one RunJob call submits the job and streams its status
/// to the end. If that stream breaks after the job was accepted (the
/// coordinator restarted, the network dropped), the job is followed by id,
/// reconnecting, as `job ID --wait` does.
async fn submit_and_wait(
    client: &mut Client,
    args: &SubmitArgs,
    format: Format,
    phase: &Cell<Phase>,
) -> anyhow::Result<()> {
    let mut events = client
        .run(args.spec(), false)
        .await
        .context("the coordinator refused the job")?;
    let mut progress: Option<Progress> = None;
    loop {
        let info = match events.next().await {
            Some(Ok(RunEvent::Status(info))) => info,
            Some(Ok(_)) => continue,
            None => break,
            Some(Err(e)) if e.is_connection_lost() && progress.is_some() => break,
            Some(Err(e)) => {
                return Err(e).context(if progress.is_some() {
                    "lost the job while following it"
                } else {
                    "the coordinator refused the job"
                })
            }
        };
        let p = progress.get_or_insert_with(|| {
            phase.set(Phase::Following(info.job_id));
            say_accepted(&info, format);
            Progress::new(info.job_id, format != Format::Quiet)
        });
        p.show(&info);
        if JobState::try_from(info.state).is_ok_and(JobState::is_terminal) {
            if let Some(p) = progress.take() {
                p.finish();
            }
            return print_outcome(client, &info, format, true).await;
        }
    }
    let Some(p) = progress else {
        bail!("the coordinator ended the call before accepting the job");
    };
    let job_id = p.job_id;
    p.finish();
    let info = wait_for(client, job_id, format != Format::Quiet).await?;
    print_outcome(client, &info, format, true).await
}

/// Shows a job's progress: a bar on a terminal, a plain line every few
/// seconds otherwise (nothing unless asked).
struct Progress {
    job_id: u64,
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new(job_id: u64, enabled: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} job {prefix} [{bar:40}] {pos}/{len} tasks {per_sec} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(job_id.to_string());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Progress {
            job_id,
            enabled,
            bar,
            last_line: Instant::now(),
        }
    }

    fn show(&mut self, info: &JobInfo) {
        if let Some(b) = &self.bar {
            b.set_length(info.tasks_total);
            b.set_position(info.tasks_done);
            b.set_message(info.waiting_reason.clone());
        } else if self.enabled && self.last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "job {}: {}/{} tasks done{}",
                self.job_id,
                info.tasks_done,
                info.tasks_total,
                if info.waiting_reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", info.waiting_reason)
                }
            );
            self.last_line = Instant::now();
        }
    }

    fn finish(self) {}
}

impl Drop for Progress {
    /// The bar goes, however the wait ended (an interruption too), so what
    /// is printed next starts on a clean line.
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Follows a job until it ends (reconnecting as [`Client::wait`] does),
/// with a progress bar on a terminal and a plain line every few seconds
/// otherwise.
async fn wait_for(client: &mut Client, job_id: u64, progress: bool) -> anyhow::Result<JobInfo> {
    let mut shown = Progress::new(job_id, progress);
    let result = client
        .wait(job_id, |event| match event {
            WaitEvent::Status(info) => shown.show(info),
            WaitEvent::Reconnecting { why } => {
                if progress {
                    eprintln!(
                        "lost the coordinator ({why}); reconnecting to follow job {job_id} ..."
                    );
                }
            }
        })
        .await;
    shown.finish();
    Ok(result?)
}

/// The last words on a job followed to its end: the job (a table's
/// summary on stderr, failures grouped by cause), then on stdout its total,
/// or a concat job's outputs; with `summary` (`submit --wait`), the run's
/// summary line last. --quiet prints nothing more (the id was printed).
/// A job that did not succeed is an [`Exit::JobEnded`] error (exit 1)
/// whose message repeats nothing already printed.
async fn print_outcome(
    client: &mut Client,
    info: &JobInfo,
    format: Format,
    summary: bool,
) -> anyhow::Result<()> {
    let succeeded = info.state == JobState::Succeeded as i32;
    match format {
        Format::Json | Format::Jsonl => println!("{}", job_json(info)),
        Format::Csv => {
            println!("{}", JOB_CSV_HEADER);
            println!("{}", job_csv(info));
        }
        Format::Quiet => {}
        Format::Table => {
            eprintln!("{}", job_summary(info));
            if info.has_total && succeeded {
                println!("{}", total(info));
            } else if succeeded && info.reduce == Reduce::Concat as i32 {
                print_concat(client, info.job_id).await?;
            } else if succeeded {
                eprintln!("results: brigade results {}", info.job_id);
            }
        }
    }
    if summary && format != Format::Quiet {
        // The slots the job could use, as the cluster has them now.
        let status = client.status().await.ok();
        let (line, warning) = run_summary(info, status.as_ref());
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        eprintln!("{line}");
    }
    ended(info, format)
}

/// Success if the job followed to its end succeeded, else the
/// [`Exit::JobEnded`] error (exit 1): a table already said how it ended,
/// the other formats said it on stdout, and stderr gets one line.
fn ended(info: &JobInfo, format: Format) -> anyhow::Result<()> {
    let message = (format != Format::Table).then(|| match JobState::try_from(info.state) {
        Ok(JobState::Succeeded) => String::new(),
        Ok(JobState::Failed) => format!("job {} failed: {}", info.job_id, info.error),
        Ok(JobState::Cancelled) => format!("job {} was cancelled", info.job_id),
        _ => format!("job {} did not finish", info.job_id),
    });
    if info.state == JobState::Succeeded as i32 {
        return Ok(());
    }
    Err(Exit::JobEnded { message }.into())
}

/// A duration for people: µs, ms or s.
fn human_secs(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{secs:.3} s")
    }
}

/// Per-task overhead above this share of the mean task time is warned of.
const OVERHEAD_WARNING: f64 = 0.2;
/// The share of a task's time that a suggested `--chunk` aims the overhead at.
const OVERHEAD_TARGET: f64 = 0.05;
/// A suggested `--chunk` leaves at least this many tasks per slot, so every
/// slot stays busy to the end.
const TASKS_PER_SLOT_KEPT: u64 = 4;

/// `submit --wait`'s last line: tasks, wall time, tasks/s, mean task time
/// and per-task overhead; and a warning when the overhead is over
/// [`OVERHEAD_WARNING`] of the task time, suggesting a `--chunk` (when the
/// job succeeded and has tasks enough for a larger chunk to help).
///
/// The overhead is the slot time the job held but its tasks did not use,
/// per task: (time from the first lease to the end × slots it could use −
/// the tasks' own wall time) / task runs, where the slots it could use are
/// the cluster's slots of its model (`status`, as they are now) capped by
/// `--max-in-flight` and its task count. It counts dispatch, the round
/// trips and slots idle at the tail, and assumes the job had those slots
/// to itself. Without `status` there is no overhead figure.
fn run_summary(info: &JobInfo, status: Option<&ClusterStatus>) -> (String, Option<String>) {
    let spec = info.spec.clone().unwrap_or_default();
    let wall = wall_secs(info).unwrap_or(0.0);
    let finished = info.tasks_done + info.tasks_failed;
    let runs = (finished + info.retries).max(1);
    let task_secs = info.task_wall_ns as f64 / 1e9;
    let mean = task_secs / runs as f64;
    let mut line = format!("summary: {} tasks", info.tasks_total);
    if finished != info.tasks_total || info.tasks_failed > 0 {
        line.push_str(&format!(
            " ({} done, {} failed)",
            info.tasks_done, info.tasks_failed
        ));
    }
    let rate = if wall > 0.0 {
        info.tasks_done as f64 / wall
    } else {
        0.0
    };
    line.push_str(&format!(
        " in {}: {rate:.1} tasks/s, mean task {}",
        human_secs(wall),
        human_secs(mean)
    ));
    let slots = status.map(|s| match Model::try_from(info.model) {
        Ok(Model::Process) => s.process_slots,
        Ok(Model::Thread) => s.thread_slots,
        Ok(Model::Async) => s.async_slots,
        _ => 0,
    });
    let Some(slots) = slots.filter(|&n| n > 0 && info.started_unix_ms > 0) else {
        return (line, None);
    };
    let mut usable = u64::from(slots).min(info.tasks_total.max(1));
    if spec.max_in_flight > 0 {
        usable = usable.min(u64::from(spec.max_in_flight));
    }
    let ran = info.finished_unix_ms.saturating_sub(info.started_unix_ms) as f64 / 1e3;
    let overhead = ((ran * usable as f64 - task_secs) / runs as f64).max(0.0);
    line.push_str(&format!(
        ", overhead {} per task ({usable} {} slot{})",
        human_secs(overhead),
        model_name(info.model),
        if usable == 1 { "" } else { "s" }
    ));
    // Only a job that ran whole says what its tasks cost.
    let succeeded = info.state == JobState::Succeeded as i32;
    if !succeeded || overhead <= OVERHEAD_WARNING * mean {
        return (line, None);
    }
    let share = if mean > 0.0 {
        format!(
            "{:.0}% of the mean task time ({})",
            overhead / mean * 100.0,
            human_secs(mean)
        )
    } else {
        "more than the tasks themselves took".to_string()
    };
    // Enough inputs per task to bring the overhead near OVERHEAD_TARGET of
    // a task, keeping TASKS_PER_SLOT_KEPT tasks per slot.
    let wanted = if mean > 0.0 {
        (overhead / (OVERHEAD_TARGET * mean)).ceil() as u64
    } else {
        u64::MAX
    };
    let room = info.tasks_total / (usable * TASKS_PER_SLOT_KEPT);
    let factor = wanted.min(room);
    if factor < 2 {
        // Too few tasks for a larger --chunk to keep the slots busy:
        // nothing to suggest.
        return (line, None);
    }
    let chunk = spec.chunk.max(1);
    let warning = format!(
        "warning: the per-task overhead ({}) is {share}: larger tasks spread it: try \
         --chunk {} (now {chunk}: inputs or values per task)",
        human_secs(overhead),
        chunk.saturating_mul(factor)
    );
    (line, Some(warning))
}

fn wall_secs(info: &JobInfo) -> Option<f64> {
    (info.finished_unix_ms >= info.submitted_unix_ms && info.finished_unix_ms > 0)
        .then(|| (info.finished_unix_ms - info.submitted_unix_ms) as f64 / 1e3)
}

/// Failure groups a job's report shows (the status holds up to 10).
const SHOWN_GROUPS: usize = 5;
/// A cause is shown up to this many characters.
const SHOWN_CAUSE_CHARS: usize = 240;

pub fn job_summary(info: &JobInfo) -> String {
    let spec = info.spec.clone().unwrap_or_default();
    let mut s = format!(
        "job {} {} {}: {}/{} tasks done on {} slots",
        info.job_id,
        spec.workload,
        state_name(info.state),
        info.tasks_done,
        info.tasks_total,
        model_name(info.model),
    );
    if let Some(w) = wall_secs(info) {
        s.push_str(&format!(" in {w:.3} s"));
    }
    if info.retries > 0 {
        s.push_str(&format!(", {} retried", info.retries));
    }
    if info.late_results_dropped > 0 {
        s.push_str(&format!(
            ", {} late results dropped",
            info.late_results_dropped
        ));
    }
    if info.tasks_failed > 0 {
        s.push_str(&format!(", {} failed", info.tasks_failed));
    }
    s.push_str(&failures_report(info, &spec));
    if !info.waiting_reason.is_empty() {
        s.push_str(&format!("\nwaiting: {}", info.waiting_reason));
    }
    if !info.routing.is_empty() {
        s.push_str(&format!("\nrouting: {}", info.routing));
    }
    s
}

/// Why a job failed, once: more failed tasks than it allows (the failures
/// grouped by cause: counts and example tasks, and the command that lists
/// every one), or its error when something else failed it.
fn failures_report(info: &JobInfo, spec: &JobSpec) -> String {
    let mut s = String::new();
    let by_tasks = info.state == JobState::Failed as i32 && info.tasks_failed > spec.allow_failures;
    if by_tasks {
        s.push_str(&format!(
            "\n{} of {} tasks failed for good, more than the {} the job allows (--allow-failures){}:",
            info.tasks_failed,
            info.tasks_total,
            spec.allow_failures,
            if spec.fail_fast {
                "; --fail-fast ended the job there"
            } else {
                ""
            }
        ));
    } else {
        if !info.error.is_empty() {
            s.push_str(&format!("\nerror: {}", info.error));
        }
        if info.tasks_failed > 0 {
            s.push_str(&format!(
                "\n{} tasks failed for good (--allow-failures {}):",
                info.tasks_failed, spec.allow_failures
            ));
        }
    }
    if info.tasks_failed == 0 {
        return s;
    }
    let shown = &info.failure_groups[..info.failure_groups.len().min(SHOWN_GROUPS)];
    let width = shown
        .iter()
        .map(|g| g.tasks.to_string().len())
        .max()
        .unwrap_or(1);
    for g in shown {
        let mut cause = table_field(&g.cause);
        if cause.chars().count() > SHOWN_CAUSE_CHARS {
            cause = cause.chars().take(SHOWN_CAUSE_CHARS).collect::<String>() + "…";
        }
        let examples: Vec<String> = g.examples.iter().map(u64::to_string).collect();
        let more = if g.tasks > g.examples.len() as u64 {
            ", …"
        } else {
            ""
        };
        let noun = if g.examples.len() == 1 {
            "task"
        } else {
            "tasks"
        };
        s.push_str(&format!(
            "\n  {:>width$} × {cause}  ({noun} {}{more})",
            g.tasks,
            examples.join(", ")
        ));
    }
    let grouped: u64 = shown.iter().map(|g| g.tasks).sum();
    if info.tasks_failed > grouped {
        s.push_str(&format!(
            "\n  {:>width$} more, of other causes",
            info.tasks_failed - grouped
        ));
    }
    s.push_str(&format!(
        "\nevery failed task: brigade tasks {} --state failed",
        info.job_id
    ));
    s
}

fn job_json(info: &JobInfo) -> serde_json::Value {
    let spec = info.spec.clone().unwrap_or_default();
    serde_json::json!({
        "job_id": info.job_id,
        "owner": info.owner,
        "workload": spec.workload,
        "args": spec.args,
        "range": [spec.range_start, spec.range_end],
        "chunk": spec.chunk,
        "model": model_name(info.model),
        "kind": Kind::try_from(info.kind).map(Kind::name).unwrap_or("unknown"),
        "state": state_name(info.state),
        "tasks_total": info.tasks_total,
        "tasks_done": info.tasks_done,
        "tasks_failed": info.tasks_failed,
        "tasks_running": info.tasks_running,
        "retries": info.retries,
        "late_results_dropped": info.late_results_dropped,
        "error": info.error,
        "total": info.has_total.then(|| total(info).to_string()),
        "wall_s": wall_secs(info),
        "submitted_unix_ms": info.submitted_unix_ms,
        "started_unix_ms": info.started_unix_ms,
        "finished_unix_ms": info.finished_unix_ms,
        "task_cpu_s": info.task_cpu_ns as f64 / 1e9,
        "waiting_reason": info.waiting_reason,
        "routing": info.routing,
        "allow_failures": spec.allow_failures,
        "fail_fast": spec.fail_fast,
        "failed_tasks": info.failed_tasks.iter().map(|f| serde_json::json!({"index": f.index, "error": f.error})).collect::<Vec<_>>(),
        "failure_groups": info.failure_groups.iter().map(|g| serde_json::json!({"cause": g.cause, "tasks": g.tasks, "examples": g.examples})).collect::<Vec<_>>(),
    })
}

const JOB_CSV_HEADER: &str =
    "job_id,workload,model,state,tasks_total,tasks_done,tasks_failed,retries,wall_s,total";

fn job_csv(info: &JobInfo) -> String {
    let spec = info.spec.clone().unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{}",
        info.job_id,
        spec.workload,
        model_name(info.model),
        state_name(info.state),
        info.tasks_total,
        info.tasks_done,
        info.tasks_failed,
        info.retries,
        wall_secs(info)
            .map(|w| format!("{w:.3}"))
            .unwrap_or_default(),
        if info.has_total {
            total(info).to_string()
        } else {
            String::new()
        }
    )
}

/// `brigade job SELECTOR`: the jobs as they are; with `wait`, once each
/// ended (exit 1 if one did not succeed). A selector of one job (`3`,
/// `last`) prints that job, one of many a listing (json: an array).
pub async fn job(
    client: &mut Client,
    jobs: &JobSelector,
    wait: bool,
    format: Format,
    phase: &Cell<Phase>,
) -> anyhow::Result<()> {
    let ids = job_ids(client, jobs).await?;
    let mut infos = Vec::with_capacity(ids.len());
    for id in ids {
        infos.push(if wait {
            phase.set(Phase::Following(id));
            wait_for(client, id, format != Format::Quiet).await?
        } else {
            client.job(id).await.context("could not get the job")?
        });
    }
    match format {
        Format::Json | Format::Jsonl | Format::Csv => {
            print_jobs_as_data(&infos, !jobs.is_one(), format)
        }
        Format::Quiet => {
            for info in &infos {
                println!("{}", state_name(info.state));
            }
        }
        Format::Table => {
            for (i, info) in infos.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("{}", job_summary(info));
                if info.has_total {
                    println!("total: {}", total(info));
                } else if info.state == JobState::Succeeded as i32
                    && info.reduce == Reduce::Concat as i32
                {
                    print_concat(client, info.job_id).await?;
                }
            }
        }
    }
    if wait {
        // The first job that did not succeed says so.
        for info in &infos {
            ended(info, format)?;
        }
    }
    Ok(())
}

/// Jobs as data: in json one array (`listing`) or the one job's object;
/// in jsonl one object a line; in csv a header and a row each. Other
/// formats print nothing here.
fn print_jobs_as_data(infos: &[JobInfo], listing: bool, format: Format) {
    match format {
        Format::Json if listing => println!(
            "{}",
            serde_json::Value::Array(infos.iter().map(job_json).collect())
        ),
        Format::Json | Format::Jsonl => {
            for info in infos {
                println!("{}", job_json(info));
            }
        }
        Format::Csv => {
            println!("{JOB_CSV_HEADER}");
            for info in infos {
                println!("{}", job_csv(info));
            }
        }
        Format::Table | Format::Quiet => {}
    }
}

/// The ids `jobs` names, ascending: a plain id as it is (the coordinator
/// says whether it exists), anything else among the caller's jobs; an
/// error when that matches none.
async fn job_ids(client: &mut Client, jobs: &JobSelector) -> anyhow::Result<Vec<u64>> {
    if let Some(id) = jobs.id() {
        return Ok(vec![id]);
    }
    let seen = client.jobs().await.context("could not list jobs")?;
    let seen: Vec<u64> = seen.iter().map(|j| j.job_id).collect();
    let ids = jobs.ids_among(&seen);
    if ids.is_empty() {
        return Err(Exit::NotFound(no_job_matches(jobs)).into());
    }
    Ok(ids)
}

fn no_job_matches(jobs: &JobSelector) -> String {
    match jobs {
        JobSelector::Last | JobSelector::All => {
            "you have no jobs (`brigade jobs --history` lists them)".to_string()
        }
        _ => format!("no job of yours matches {jobs} (`brigade jobs --history` lists them)"),
    }
}

/// The one job a command about one job (`results`, `tasks`) names: an
/// id, or `last`.
pub async fn one_job(client: &mut Client, job: &JobSelector, command: &str) -> anyhow::Result<u64> {
    if !job.is_one() {
        return Err(Exit::Usage(format!(
            "`brigade {command}` takes one job: its id or last, not {job}"
        ))
        .into());
    }
    Ok(job_ids(client, job).await?[0])
}

/// A `--reduce concat` job's outputs joined, one per line in index order
/// (a failed task's line left out), written as they stream in: bounded
/// memory whatever the job's size. Byte outputs are written as they are.
async fn print_concat(client: &mut Client, id: u64) -> anyhow::Result<()> {
    let mut rows = client.results(id).await.context("could not get results")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(row) = rows.next().await {
        match row.context("results stream broken")?.output {
            Output::Int(v) => writeln!(out, "{v}")?,
            Output::Bytes(b) => {
                out.write_all(&b)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `jobs --purge`: forgets ended jobs and says which.
pub async fn purge(
    client: &mut Client,
    all: bool,
    older_than: Duration,
    format: Format,
) -> anyhow::Result<()> {
    let ids = client
        .purge(all, older_than)
        .await
        .context("could not purge jobs")?;
    match format {
        Format::Json | Format::Jsonl => println!("{}", serde_json::json!({ "purged": ids })),
        Format::Csv | Format::Quiet => {
            if format == Format::Csv {
                println!("job_id");
            }
            for id in &ids {
                println!("{id}");
            }
        }
        Format::Table => match ids.as_slice() {
            [] => println!("no ended job to purge"),
            ids => println!(
                "purged {} ended job{}: {}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
    Ok(())
}

/// `brigade jobs`: the jobs in `states` (yours, or with `all` every
/// client's), ascending by id.
pub async fn jobs(
    client: &mut Client,
    all: bool,
    states: StateFilter,
    format: Format,
) -> anyhow::Result<()> {
    let jobs = if all {
        client.all_jobs().await
    } else {
        client.jobs().await
    };
    let mut jobs = jobs.context("could not list jobs")?;
    let listed = jobs.len();
    jobs.retain(|j| states.admits(j.state));
    if format == Format::Table && jobs.is_empty() && listed > 0 && states == StateFilter::ACTIVE {
        eprintln!(
            "no job is queued or running; `brigade jobs --history` lists the {listed} that ended"
        );
    }
    match format {
        Format::Json | Format::Jsonl | Format::Csv => print_jobs_as_data(&jobs, true, format),
        Format::Quiet => {
            for j in &jobs {
                println!("{}", j.job_id);
            }
        }
        Format::Table => {
            println!(
                "{:>6}  {:<12} {:<8} {:<10} {:>10} {:>10} {:>9}",
                "ID", "WORKLOAD", "MODEL", "STATE", "DONE", "TASKS", "WALL S"
            );
            for j in &jobs {
                let spec = j.spec.clone().unwrap_or_default();
                println!(
                    "{:>6}  {:<12} {:<8} {:<10} {:>10} {:>10} {:>9}",
                    j.job_id,
                    spec.workload,
                    model_name(j.model),
                    state_name(j.state),
                    j.tasks_done,
                    j.tasks_total,
                    wall_secs(j)
                        .map(|w| format!("{w:.3}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(())
}

/// Whether a job in the wire state `state` has ended.
pub fn is_terminal_state(state: i32) -> bool {
    JobState::try_from(state).is_ok_and(JobState::is_terminal)
}

/// `brigade results ID`: the job's rows written as they arrive (bounded
/// memory whatever the job's size). In index order with `follow`, rows
/// keep coming while the job runs: each pass writes the done tasks from
/// where the last one stopped up to the first task not done yet, and the
/// pass after the job's end writes the rest (failed tasks leave gaps). In
/// completion order every pass writes what was recorded since the last.
/// With `wait`, the job is followed to its end first and every result of
/// it is written (exit 1 if it did not succeed).
pub async fn results(
    client: &mut Client,
    id: u64,
    format: Format,
    follow: bool,
    wait: bool,
    order: Order,
    phase: &Cell<Phase>,
) -> anyhow::Result<()> {
    let ended_as = if wait {
        phase.set(Phase::Following(id));
        Some(wait_for(client, id, format != Format::Quiet).await?)
    } else {
        if follow {
            phase.set(Phase::Following(id));
        }
        None
    };
    match write_results(client, id, format, follow, order).await {
        // The reader went away (`brigade results ID | head`): not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        Err(e) => Err(e),
        Ok(()) => ended_as.map_or(Ok(()), |info| ended(&info, format)),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn write_results(
    client: &mut Client,
    id: u64,
    format: Format,
    follow: bool,
    order: Order,
) -> anyhow::Result<()> {
    // Its grid names each row's input; its state, whether a pass is the last.
    let mut info = client.job(id).await.context("could not get the job")?;
    let mut out = RowWriter::stdout(format, Grid::of(&info));
    // Index order: the next task index; completion order: rows seen.
    let mut next = 0u64;
    loop {
        let ended = !follow || JobState::try_from(info.state).is_ok_and(JobState::is_terminal);
        let mut rows = client
            .results_in(id, order, next)
            .await
            .context("could not get results")?;
        while let Some(row) = rows.next().await {
            let row = row.context("results stream broken")?;
            match order {
                Order::Index if !ended && row.index != next => break,
                Order::Index => next = row.index + 1,
                Order::Completion => next += 1,
            }
            out.row(&row)?;
        }
        if ended {
            break;
        }
        // Rows reach the reader as the job makes them, not at its end.
        out.flush()?;
        // Wait for the job to move before looking again.
        let mut updates = client.watch(id).await.context("could not follow the job")?;
        let before = client
            .job(id)
            .await
            .context("could not get the job")?
            .tasks_done;
        while let Some(info) = updates.next().await {
            let info = info.context("the job's status stream broke")?;
            if info.tasks_done != before
                || JobState::try_from(info.state).is_ok_and(JobState::is_terminal)
            {
                break;
            }
        }
        info = client.job(id).await.context("could not get the job")?;
    }
    let written = out.rows;
    out.finish()?;
    let was_running = !JobState::try_from(info.state).is_ok_and(JobState::is_terminal);
    if !follow && was_running && format != Format::Quiet {
        // Complete only if the job ended meanwhile and every result of it
        // was written (index order reads them all once it ended).
        let now = client.job(id).await.context("could not get the job")?;
        let complete = JobState::try_from(now.state).is_ok_and(JobState::is_terminal)
            && written == now.tasks_done;
        if !complete {
            eprintln!(
                "job {id} is still {}: these {written} results are partial, the ones done so far \
                 (of {} tasks); `brigade results {id} --wait` prints them all once the job \
                 ends, `--follow` as they come",
                state_name(now.state),
                now.tasks_total
            );
        }
    }
    Ok(())
}

/// `--order index|completion`.
pub fn parse_order(s: &str) -> Result<Order, String> {
    match s {
        "index" => Ok(Order::Index),
        "completion" => Ok(Order::Completion),
        _ => Err(format!("unknown order {s:?}; allowed: index, completion")),
    }
}

/// A job's input grid: which sub-range (of its range, or of its inputs'
/// items) each task took.
#[derive(Debug, Clone, Copy)]
struct Grid {
    start: u64,
    end: u64,
    chunk: u64,
}

impl Grid {
    fn of(info: &JobInfo) -> Grid {
        let spec = info.spec.clone().unwrap_or_default();
        Grid {
            start: spec.range_start,
            end: spec.range_end,
            chunk: spec.chunk.max(1),
        }
    }

    /// Task `index`'s input.
    fn input(self, index: u64) -> InputRange {
        let start = self.start.saturating_add(index.saturating_mul(self.chunk));
        let end = start.saturating_add(self.chunk).min(self.end);
        InputRange { start, end }
    }
}

/// A task's input range, written `start..end` (in CSV and as a JSON string).
#[derive(Debug, Clone, Copy)]
struct InputRange {
    start: u64,
    end: u64,
}

impl InputRange {
    /// `start..end` written out, without the formatting machinery.
    fn write_to(self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(itoa::Buffer::new().format(self.start).as_bytes())?;
        out.write_all(b"..")?;
        out.write_all(itoa::Buffer::new().format(self.end).as_bytes())
    }
}

impl serde::Serialize for InputRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Two u64s and the dots: at most 42 bytes, all ASCII digits.
        let mut text = [0u8; 42];
        let mut w = &mut text[..];
        self.write_to(&mut w).map_err(serde::ser::Error::custom)?;
        let len = 42 - w.len();
        s.serialize_str(std::str::from_utf8(&text[..len]).map_err(serde::ser::Error::custom)?)
    }
}

/// The header of `results --format csv`.
const CSV_HEADER: &str = "index,value,input,attempts,worker,model,cpu_ms,wall_ms";

/// Writes result rows in one format as they come.
struct RowWriter<W: Write> {
    format: Format,
    grid: Grid,
    out: W,
    rows: u64,
}

impl RowWriter<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    fn stdout(format: Format, grid: Grid) -> Self {
        RowWriter::new(
            format,
            grid,
            std::io::BufWriter::new(std::io::stdout().lock()),
        )
    }
}

impl<W: Write> RowWriter<W> {
    fn new(format: Format, grid: Grid, out: W) -> Self {
        RowWriter {
            format,
            grid,
            out,
            rows: 0,
        }
    }

    fn row(&mut self, row: &ResultRow) -> anyhow::Result<()> {
        let out = &mut self.out;
        match self.format {
            Format::Json | Format::Jsonl => {
                if self.format == Format::Json {
                    out.write_all(if self.rows == 0 { b"[" } else { b"," })?;
                }
                // An io::Error stays one (a closed pipe is not a failure).
                serde_json::to_writer(&mut *out, &JsonRow::of(row, self.grid))
                    .map_err(std::io::Error::from)?;
                if self.format == Format::Jsonl {
                    out.write_all(b"\n")?;
                }
            }
            Format::Csv => {
                if self.rows == 0 {
                    writeln!(out, "{CSV_HEADER}")?;
                }
                let run = &row.run;
                write!(out, "{},{},", row.index, csv_field(&row.output.to_text()),)?;
                self.grid.input(row.index).write_to(out)?;
                writeln!(
                    out,
                    ",{},{},{},{},{}",
                    run.attempts,
                    csv_field(&run.worker),
                    run.model.map_or("", Model::name),
                    millis(run.cpu),
                    millis(run.wall),
                )?;
            }
            Format::Table => {
                writeln!(out, "{}\t{}", row.index, table_field(&row.output.to_text()))?
            }
            Format::Quiet => writeln!(out, "{}", table_field(&row.output.to_text()))?,
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        match (self.format, self.rows) {
            (Format::Json, 0) => writeln!(self.out, "[]")?,
            (Format::Json, _) => writeln!(self.out, "]")?,
            (Format::Csv, 0) => writeln!(self.out, "{CSV_HEADER}")?,
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}

/// A duration in milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1_000.0).round() / 1_000.0
}

/// A row as JSON: `value` is the output as text (an integer in decimal, as
/// before byte outputs existed), `output` the output as a JSON value, then
/// the task's input range and how it ran. Serialized straight into the
/// output, borrowing from the row: the fields in the order serde_json's
/// map always wrote them (sorted), so the bytes are those of the
/// `serde_json::Value` this used to build per row.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    attempts: u32,
    cpu_ms: f64,
    index: u64,
    input: InputRange,
    model: Option<&'static str>,
    output: brigade_proto::output::JsonSerialized<'a>,
    value: brigade_proto::output::TextSerialized<'a>,
    wall_ms: f64,
    worker: &'a str,
}

impl<'a> JsonRow<'a> {
    fn of(row: &'a ResultRow, grid: Grid) -> Self {
        let run = &row.run;
        JsonRow {
            attempts: run.attempts,
            cpu_ms: millis(run.cpu),
            index: row.index,
            input: grid.input(row.index),
            model: run.model.map(Model::name),
            output: row.output.json_serialized(),
            value: row.output.text_serialized(),
            wall_ms: millis(run.wall),
            worker: &run.worker,
        }
    }
}

/// A table cell: one line, text as it is (non-ASCII too) except that
/// line breaks, tabs, other control characters and the backslash are
/// escaped (`\n`, `\t`, `\\`), so a row stays one line and reads back
/// unambiguously.
pub fn table_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `brigade tasks ID --state failed`: every task of the job that failed
/// for good, with its error, as they stream in.
pub async fn failed_tasks(client: &mut Client, id: u64, format: Format) -> anyhow::Result<()> {
    match write_failed_tasks(client, id, format).await {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

async fn write_failed_tasks(client: &mut Client, id: u64, format: Format) -> anyhow::Result<()> {
    let mut tasks = client
        .failed_tasks(id)
        .await
        .context("could not list the job's failed tasks")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    match format {
        Format::Csv => writeln!(out, "index,error")?,
        Format::Table => writeln!(out, "INDEX\tERROR")?,
        Format::Json | Format::Jsonl | Format::Quiet => {}
    }
    while let Some(task) = tasks.next().await {
        let task = task.context("the failed tasks' stream broke")?;
        let json = || serde_json::json!({"index": task.index, "error": task.error});
        match format {
            Format::Table => writeln!(out, "{}\t{}", task.index, table_field(&task.error))?,
            Format::Csv => writeln!(out, "{},{}", task.index, csv_field(&task.error))?,
            Format::Jsonl => writeln!(out, "{}", json())?,
            Format::Json => write!(out, "{}{}", if n == 0 { "[" } else { "," }, json())?,
            Format::Quiet => writeln!(out, "{}", task.index)?,
        }
        n += 1;
    }
    match (format, n) {
        (Format::Json, 0) => writeln!(out, "[]")?,
        (Format::Json, _) => writeln!(out, "]")?,
        _ => {}
    }
    out.flush()?;
    if n == 0 && format == Format::Table {
        eprintln!("job {id} has no task that failed for good");
    }
    Ok(())
}

/// `brigade cancel SELECTOR`: each job cancelled, or, if it had already
/// ended, left as it ended and said so (exit 0 either way). `all` is every
/// job of the caller's that has not ended.
pub async fn cancel(client: &mut Client, jobs: &JobSelector, format: Format) -> anyhow::Result<()> {
    let ids = if *jobs == JobSelector::All {
        let seen = client.jobs().await.context("could not list jobs")?;
        seen.iter()
            .filter(|j| StateFilter::ACTIVE.admits(j.state))
            .map(|j| j.job_id)
            .collect()
    } else {
        job_ids(client, jobs).await?
    };
    let mut done = Vec::with_capacity(ids.len());
    for &id in &ids {
        done.push(cancel_one(client, id).await?);
    }
    match format {
        Format::Json | Format::Jsonl | Format::Csv => {
            let infos: Vec<JobInfo> = done.iter().map(|(info, _)| info.clone()).collect();
            print_jobs_as_data(&infos, !jobs.is_one(), format)
        }
        Format::Quiet => {
            for (info, cancelled) in &done {
                if *cancelled {
                    println!("{}", info.job_id);
                }
            }
        }
        Format::Table => {
            for (info, _) in &done {
                println!("{}", job_summary(info));
            }
        }
    }
    if format == Format::Quiet {
        return Ok(());
    }
    if done.is_empty() {
        eprintln!("no job of yours is queued or running: nothing was cancelled");
    }
    for (info, cancelled) in &done {
        if !cancelled {
            eprintln!(
                "job {} had already ended: it {}{}; nothing was cancelled",
                info.job_id,
                ended_how(info.state),
                ago(info.finished_unix_ms)
            );
        }
    }
    Ok(())
}

/// Cancels job `id` unless it had ended: its status after, and whether
/// this cancelled it.
async fn cancel_one(client: &mut Client, id: u64) -> anyhow::Result<(JobInfo, bool)> {
    let before = client.job(id).await.context("could not cancel the job")?;
    if JobState::try_from(before.state).is_ok_and(JobState::is_terminal) {
        return Ok((before, false));
    }
    let info = client
        .cancel(id)
        .await
        .context("could not cancel the job")?;
    // It may have ended between the two calls.
    let cancelled = info.state == JobState::Cancelled as i32;
    Ok((info, cancelled))
}

/// How an ended job ended, as a verb.
fn ended_how(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Cancelled) => "was cancelled",
        _ => "ended",
    }
}

/// ` 12.3 s ago` for a moment in Unix ms (nothing when unknown).
fn ago(unix_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if unix_ms == 0 || now < unix_ms {
        return String::new();
    }
    format!(" {} ago", human_secs((now - unix_ms) as f64 / 1e3))
}

pub async fn workers(client: &mut Client, format: Format) -> anyhow::Result<()> {
    let workers = client.workers().await.context("could not list workers")?;
    match format {
        Format::Json | Format::Jsonl => {
            let v: Vec<serde_json::Value> = workers
                .iter()
                .map(|w| {
                    serde_json::json!({
                        "worker_id": w.worker_id, "name": w.name, "hostname": w.hostname, "pid": w.pid,
                        "process_slots": w.process_slots, "thread_slots": w.thread_slots,
                        "async_slots": w.async_slots, "running_tasks": w.running_tasks,
                        "tasks_done": w.tasks_done, "draining": w.draining,
                    })
                })
                .collect();
            if format == Format::Json {
                println!("{}", serde_json::Value::Array(v));
            } else {
                for w in v {
                    println!("{w}");
                }
            }
        }
        Format::Quiet => {
            for w in &workers {
                println!("{}", w.name);
            }
        }
        Format::Csv => {
            println!("worker_id,name,hostname,pid,process_slots,thread_slots,async_slots,running_tasks,tasks_done,draining");
            for w in &workers {
                println!(
                    "{},{},{},{},{},{},{},{},{},{}",
                    w.worker_id,
                    w.name,
                    w.hostname,
                    w.pid,
                    w.process_slots,
                    w.thread_slots,
                    w.async_slots,
                    w.running_tasks,
                    w.tasks_done,
                    w.draining
                );
            }
        }
        Format::Table => {
            println!(
                "{:>4}  {:<16} {:<16} {:>8} {:>7} {:>7} {:>6} {:>8} {:>10}",
                "ID", "NAME", "HOST", "PID", "PROCS", "THREADS", "ASYNC", "RUNNING", "DONE"
            );
            for w in &workers {
                println!(
                    "{:>4}  {:<16} {:<16} {:>8} {:>7} {:>7} {:>6} {:>8} {:>10}{}",
                    w.worker_id,
                    w.name,
                    w.hostname,
                    w.pid,
                    w.process_slots,
                    w.thread_slots,
                    w.async_slots,
                    w.running_tasks,
                    w.tasks_done,
                    if w.draining { "  draining" } else { "" }
                );
            }
            if workers.is_empty() {
                eprintln!(
                    "no workers connected; start one with `brigade worker --coordinator URL`"
                );
            }
        }
    }
    Ok(())
}

/// `brigade health`: SERVING and success, or an error (exit 1).
pub async fn health(client: &mut Client, service: &str, format: Format) -> anyhow::Result<()> {
    let what = if service.is_empty() {
        "the coordinator".to_string()
    } else {
        format!("service {service}")
    };
    let serving = client
        .health(service)
        .await
        .with_context(|| format!("could not ask whether {what} serves"))?;
    if !serving {
        return Err(
            Exit::NotServing(format!("{what} is NOT_SERVING (starting or shutting down)")).into(),
        );
    }
    match format {
        Format::Json | Format::Jsonl => println!(
            "{}",
            serde_json::json!({"service": service, "status": "SERVING"})
        ),
        Format::Csv => println!("service,status\n{},SERVING", csv_field(service)),
        Format::Table => println!("SERVING"),
        Format::Quiet => {}
    }
    Ok(())
}

/// The version of the JSON the CLI prints (docs/cli-json.md): fields are
/// only added within one; a change to an existing field raises it.
pub const JSON_SCHEMA: u32 = 1;

pub async fn status(client: &mut Client, format: Format) -> anyhow::Result<()> {
    let s = client.status().await.context("could not get the status")?;
    let fields = [
        ("workers", u64::from(s.workers)),
        ("process_slots", u64::from(s.process_slots)),
        ("thread_slots", u64::from(s.thread_slots)),
        ("async_slots", u64::from(s.async_slots)),
        ("jobs_active", u64::from(s.jobs_active)),
        ("jobs_total", u64::from(s.jobs_total)),
        ("tasks_queued", s.tasks_queued),
        ("tasks_running", s.tasks_running),
        ("late_results_dropped", s.late_results_dropped),
        ("uptime_ms", s.uptime_ms),
    ];
    match format {
        Format::Json | Format::Jsonl => {
            let mut v = serde_json::json!({
                "version": s.version, "protocol_version": s.protocol_version,
                "json_schema": JSON_SCHEMA,
            });
            for (k, n) in fields {
                v[k] = n.into();
            }
            println!("{v}");
        }
        Format::Csv => {
            let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
            let values: Vec<String> = fields.iter().map(|f| f.1.to_string()).collect();
            println!("version,protocol_version,{}", names.join(","));
            println!(
                "{},{},{}",
                csv_field(&s.version),
                s.protocol_version,
                values.join(",")
            );
        }
        Format::Quiet => {}
        Format::Table => {
            println!(
                "coordinator  brigade {} (protocol {}), up {:.1} s",
                s.version,
                s.protocol_version,
                s.uptime_ms as f64 / 1e3
            );
            println!(
                "workers      {} ({} process, {} thread, {} async slots)",
                s.workers, s.process_slots, s.thread_slots, s.async_slots
            );
            println!(
                "jobs         {} active, {} in total",
                s.jobs_active, s.jobs_total
            );
            println!(
                "tasks        {} queued, {} running",
                s.tasks_queued, s.tasks_running
            );
            println!("late results {} dropped", s.late_results_dropped);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_a_duration_or_a_count() {
        use brigade_coordinator::Retention;
        assert_eq!(
            parse_retention("7d"),
            Ok(Retention::For(Duration::from_secs(604_800)))
        );
        assert_eq!(parse_retention("1000"), Ok(Retention::Newest(1000)));
        assert_eq!(parse_retention("0"), Ok(Retention::Newest(0)));
        for bad in ["", "7 d", "-1", "1w"] {
            let e = parse_retention(bad).unwrap_err();
            assert!(e.contains("plain number of ended jobs"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        let huge = format!("{}d", u64::MAX / 1_000);
        for bad in ["30", "s", "1w", "-1s", "", huge.as_str()] {
            assert!(
                parse_duration(bad)
                    .unwrap_err()
                    .contains("ms, s, m, h or d"),
                "{bad}"
            );
        }
    }

    /// A job of `tasks` tasks that ran from 1,000 ms to `1000 + ran_ms` on
    /// `model` slots, its tasks' wall time adding up to `task_ms`.
    fn ran(tasks: u64, ran_ms: u64, task_ms: u64, model: Model) -> JobInfo {
        JobInfo {
            job_id: 4,
            spec: Some(JobSpec {
                workload: "noop".into(),
                chunk: 1,
                ..Default::default()
            }),
            model: model as i32,
            state: JobState::Succeeded as i32,
            tasks_total: tasks,
            tasks_done: tasks,
            submitted_unix_ms: 1_000,
            started_unix_ms: 1_000,
            finished_unix_ms: 1_000 + ran_ms,
            task_wall_ns: task_ms * 1_000_000,
            ..Default::default()
        }
    }

    fn slots(process: u32, thread: u32, async_: u32) -> ClusterStatus {
        ClusterStatus {
            process_slots: process,
            thread_slots: thread,
            async_slots: async_,
            ..Default::default()
        }
    }

    #[test]
    fn the_summary_line_says_rate_task_time_and_overhead_and_warns_when_it_is_high() {
        // 1,000 tasks of 10 ms on 4 slots in 2.6 s: 10,400 slot-ms for
        // 10,000 ms of tasks, 0.4 ms a task (4%): no warning.
        let info = ran(1_000, 2_600, 10_000, Model::Process);
        let (line, warning) = run_summary(&info, Some(&slots(4, 8, 256)));
        assert_eq!(
            line,
            "summary: 1000 tasks in 2.600 s: 384.6 tasks/s, mean task 10.00 ms, \
             overhead 400 µs per task (4 process slots)"
        );
        assert_eq!(warning, None);
        // 10,000 tasks of 100 µs on 2 slots in 2 s: 4,000 slot-ms for
        // 1,000 ms of tasks, 300 µs a task (300%): warned, with a chunk that
        // brings it near 5% (×60) and leaves 4 tasks a slot.
        let info = ran(10_000, 2_000, 1_000, Model::Thread);
        let (line, warning) = run_summary(&info, Some(&slots(0, 2, 0)));
        assert!(
            line.ends_with("overhead 300 µs per task (2 thread slots)"),
            "{line}"
        );
        assert_eq!(
            warning.as_deref(),
            Some(
                "warning: the per-task overhead (300 µs) is 300% of the mean task time \
                 (100 µs): larger tasks spread it: try --chunk 60 (now 1: inputs or values \
                 per task)"
            )
        );
        // Eight tasks on two slots: too few for a larger chunk to help,
        // so no advice.
        let info = ran(8, 8, 1, Model::Thread);
        let (line, warning) = run_summary(&info, Some(&slots(0, 2, 0)));
        assert!(line.contains("overhead 1.88 ms per task"), "{line}");
        assert_eq!(warning, None);
        // Without the cluster's slots: no overhead figure, no warning.
        let (line, warning) = run_summary(&info, None);
        assert!(!line.contains("overhead"), "{line}");
        assert_eq!(warning, None);
    }

    #[test]
    fn a_failed_job_reports_its_failures_once_grouped_by_cause() {
        let mut info = ran(20, 500, 100, Model::Process);
        info.state = JobState::Failed as i32;
        info.tasks_done = 17;
        info.tasks_failed = 3;
        info.error = "3 of 20 tasks failed for good, more than the 0 the job allows \
                      (--allow-failures); first: task 2 (input 2..3) failed after 3 \
                      attempt(s); last: failed: exit status 3"
            .into();
        info.failed_tasks = vec![brigade_proto::v1::FailedTask {
            index: 2,
            error: "task 2 ...".into(),
        }];
        info.failure_groups = vec![
            brigade_client::FailureGroup {
                cause: "failed: exit status 3".into(),
                tasks: 2,
                examples: vec![2, 9],
            },
            brigade_client::FailureGroup {
                cause: "timed out: line one\nline two".into(),
                tasks: 1,
                examples: vec![11],
            },
        ];
        let text = job_summary(&info);
        assert_eq!(
            text,
            "job 4 noop failed: 17/20 tasks done on process slots in 0.500 s, 3 failed\n\
             3 of 20 tasks failed for good, more than the 0 the job allows (--allow-failures):\n  \
             2 × failed: exit status 3  (tasks 2, 9)\n  \
             1 × timed out: line one\\nline two  (task 11)\n\
             every failed task: brigade tasks 4 --state failed"
        );
        assert_eq!(text.matches("exit status 3").count(), 1, "{text}");
        // A job that failed for another reason says that reason.
        info.spec = Some(JobSpec {
            allow_failures: 5,
            ..info.spec.clone().unwrap_or_default()
        });
        info.error = "no workers with process slots for 30.0 s".into();
        let text = job_summary(&info);
        assert!(
            text.contains("\nerror: no workers with process slots for 30.0 s\n3 tasks failed for good (--allow-failures 5):\n"),
            "{text}"
        );
    }

    #[test]
    fn an_interruption_says_what_became_of_the_job() {
        let default = brigade_client::DEFAULT_COORDINATOR;
        assert_eq!(
            interrupted(Phase::Following(7), default),
            "interrupted: job 7 keeps running on the coordinator.\n  \
             cancel it:          brigade cancel 7\n  \
             follow it again:    brigade job 7 --wait"
        );
        let other = interrupted(Phase::Following(7), "http://10.0.0.1:7070");
        assert!(
            other.contains("brigade cancel 7 --coordinator http://10.0.0.1:7070\n"),
            "{other}"
        );
        assert!(interrupted(Phase::Submitting { inputs: true }, default)
            .contains("nothing was submitted"));
        assert!(interrupted(Phase::Submitting { inputs: false }, default).contains("brigade jobs"));
    }

    #[test]
    fn table_cells_keep_text_and_escape_what_would_break_a_row() {
        assert_eq!(
            table_field("héllo \"wörld\" 'x' ✓"),
            "héllo \"wörld\" 'x' ✓"
        );
        assert_eq!(table_field("a\tb\nc\r\\d\u{1}"), "a\\tb\\nc\\r\\\\d\\u{1}");
    }

    /// A row as `results --format json` wrote it before rows were
    /// serialized straight into the output: a `serde_json::Value` per row.
    fn row_as_value(row: &ResultRow, grid: Grid) -> serde_json::Value {
        let run = &row.run;
        let input = grid.input(row.index);
        serde_json::json!({
            "index": row.index,
            "value": row.output.to_text(),
            "output": row.output.to_json(),
            "input": format!("{}..{}", input.start, input.end),
            "attempts": run.attempts,
            "worker": run.worker,
            "model": run.model.map(Model::name),
            "cpu_ms": millis(run.cpu),
            "wall_ms": millis(run.wall),
        })
    }

    /// Rows of every kind of output, worker name, model and time.
    fn rows() -> Vec<ResultRow> {
        let outputs = [
            Output::Int(0),
            Output::Int((1 << 53) - 1),
            Output::Int(1 << 53),
            Output::Int(u128::MAX),
            Output::Bytes(br#"{"z":1,"a":[1.50,"x"]}"#.to_vec()),
            Output::Bytes(b"restaurant 7 \"q\", \\ \t\n".to_vec()),
            Output::Bytes(b"12x".to_vec()),
            Output::Bytes(vec![0xff, b'a']),
            Output::Bytes(Vec::new()),
        ];
        let times = [0, 1, 999, 1_500, 16_777_217_000, u64::MAX / 3];
        let workers = ["w-1", "", "na\"me \u{e9}\u{1}"];
        let models = [
            None,
            Some(Model::Process),
            Some(Model::Thread),
            Some(Model::Async),
        ];
        outputs
            .into_iter()
            .enumerate()
            .map(|(i, output)| ResultRow {
                index: [0, 7, u64::MAX / 2][i % 3] + i as u64,
                output,
                run: brigade_client::RunInfo {
                    attempts: [1, 3, u32::MAX][i % 3],
                    worker_id: i as u64,
                    worker: workers[i % workers.len()].to_string(),
                    model: models[i % models.len()],
                    cpu: Duration::from_nanos(times[i % times.len()]),
                    wall: Duration::from_nanos(times[(i + 1) % times.len()]),
                    ended_unix_us: 0,
                },
            })
            .collect()
    }

    /// What a RowWriter writes for `rows`.
    fn written(format: Format, grid: Grid, rows: &[ResultRow]) -> String {
        let mut out = Vec::new();
        let mut w = RowWriter::new(format, grid, &mut out);
        for row in rows {
            w.row(row).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_rows_are_byte_for_byte_what_the_value_per_row_wrote() {
        let grids = [
            Grid {
                start: 0,
                end: 10,
                chunk: 1,
            },
            Grid {
                start: 5,
                end: u64::MAX,
                chunk: 1 << 40,
            },
        ];
        for grid in grids {
            let rows = rows();
            let values: Vec<serde_json::Value> =
                rows.iter().map(|r| row_as_value(r, grid)).collect();
            let lines: String = values.iter().map(|v| format!("{v}\n")).collect();
            assert_eq!(written(Format::Jsonl, grid, &rows), lines);
            let array = serde_json::Value::Array(values);
            assert_eq!(written(Format::Json, grid, &rows), format!("{array}\n"));
            assert_eq!(written(Format::Json, grid, &[]), "[]\n");
            assert_eq!(written(Format::Jsonl, grid, &[]), "");
        }
    }

    #[test]
    fn csv_rows_are_byte_for_byte_what_the_formatted_line_wrote() {
        let grid = Grid {
            start: 5,
            end: 100,
            chunk: 4,
        };
        let rows = rows();
        let mut want = format!("{CSV_HEADER}\n");
        for row in &rows {
            let (run, start) = (&row.run, 5u64.saturating_add(row.index.saturating_mul(4)));
            want.push_str(&format!(
                "{},{},{start}..{},{},{},{},{},{}\n",
                row.index,
                csv_field(&row.output.to_text()),
                start.saturating_add(4).min(100),
                run.attempts,
                csv_field(&run.worker),
                run.model.map_or("", Model::name),
                millis(run.cpu),
                millis(run.wall),
            ));
        }
        assert_eq!(written(Format::Csv, grid, &rows), want);
        assert_eq!(written(Format::Csv, grid, &[]), format!("{CSV_HEADER}\n"));
    }
}
