//! Client subcommands: submit, status, jobs, job, results, cancel, workers.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_client::inputs::{self, Source};
use brigade_client::{
    model_name, parse_inputs_format, parse_kind, parse_kv, parse_model, parse_range, state_name,
    total, Client, Order, Output, ResultRow, RunEvent, WaitEvent,
};
use brigade_proto::v1::{InputsFormat, JobInfo, JobSpec, JobState, Kind, Model, Reduce};

use clap::ValueEnum;
use futures::StreamExt;

/// Output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    /// One JSON value per line (results: one row per line).
    Jsonl,
}

/// `500ms`, `30s`, `2m` on the command line.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("duration {s:?} must be a number with a unit: ms, s or m (e.g. 500ms, 30s, 2m)");
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
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

pub async fn submit(
    client: &mut Client,
    args: &SubmitArgs,
    wait: bool,
    format: Format,
) -> anyhow::Result<()> {
    if let Some(file) = &args.inputs {
        let items = inputs::read(Source::parse(file), args.inputs_format);
        let info = client
            .submit_inputs(args.spec(), items)
            .await
            .context("the job was not submitted")?;
        if !wait {
            match format {
                Format::Json | Format::Jsonl => println!("{}", job_json(&info)),
                _ => println!("{}", accepted_line(&info)),
            }
            return Ok(());
        }
        eprintln!("{}", accepted_line(&info));
        let info = wait_for(client, info.job_id, true).await?;
        return print_outcome(client, &info, format).await;
    }
    if wait {
        return submit_and_wait(client, args, format).await;
    }
    let info = client
        .submit(args.spec())
        .await
        .context("the coordinator refused the job")?;
    match format {
        Format::Json | Format::Jsonl => println!("{}", job_json(&info)),
        _ => println!("{}", accepted_line(&info)),
    }
    Ok(())
}

fn accepted_line(info: &JobInfo) -> String {
    format!(
        "job {} accepted: {} tasks on {} slots",
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
            Some(Err(e)) => return Err(e.into()),
        };
        let p = progress.get_or_insert_with(|| {
            eprintln!("{}", accepted_line(&info));
            Progress::new(info.job_id, true)
        });
        p.show(&info);
        if JobState::try_from(info.state).is_ok_and(JobState::is_terminal) {
            if let Some(p) = progress.take() {
                p.finish();
            }
            return print_outcome(client, &info, format).await;
        }
    }
    let Some(p) = progress else {
        bail!("the coordinator ended the call before accepting the job");
    };
    let job_id = p.job_id;
    p.finish();
    let info = wait_for(client, job_id, true).await?;
    print_outcome(client, &info, format).await
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

    fn finish(self) {
        if let Some(b) = self.bar {
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

/// `submit --wait`'s last words: the job (a table's summary on stderr),
/// then on stdout its total, or a concat job's outputs; the exit says
/// whether it succeeded.
async fn print_outcome(client: &mut Client, info: &JobInfo, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json | Format::Jsonl => println!("{}", job_json(info)),
        Format::Csv => {
            println!("{}", JOB_CSV_HEADER);
            println!("{}", job_csv(info));
        }
        Format::Table => {
            eprintln!("{}", job_summary(info));
            let succeeded = info.state == JobState::Succeeded as i32;
            if info.has_total && succeeded {
                println!("{}", total(info));
            } else if succeeded && info.reduce == Reduce::Concat as i32 {
                print_concat(client, info.job_id).await?;
            } else if succeeded {
                eprintln!("results: brigade results {}", info.job_id);
            }
        }
    }
    match JobState::try_from(info.state) {
        Ok(JobState::Succeeded) => Ok(()),
        Ok(JobState::Failed) => bail!("job {} failed: {}", info.job_id, info.error),
        Ok(JobState::Cancelled) => bail!("job {} was cancelled", info.job_id),
        _ => bail!("job {} did not finish", info.job_id),
    }
}

fn wall_secs(info: &JobInfo) -> Option<f64> {
    (info.finished_unix_ms >= info.submitted_unix_ms && info.finished_unix_ms > 0)
        .then(|| (info.finished_unix_ms - info.submitted_unix_ms) as f64 / 1e3)
}

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
    if !info.error.is_empty() {
        s.push_str(&format!("\nerror: {}", info.error));
    }
    for f in &info.failed_tasks {
        s.push_str(&format!("\nfailed task {}: {}", f.index, f.error));
    }
    if !info.waiting_reason.is_empty() {
        s.push_str(&format!("\nwaiting: {}", info.waiting_reason));
    }
    if !info.routing.is_empty() {
        s.push_str(&format!("\nrouting: {}", info.routing));
    }
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
        "task_cpu_s": info.task_cpu_ns as f64 / 1e9,
        "waiting_reason": info.waiting_reason,
        "routing": info.routing,
        "failed_tasks": info.failed_tasks.iter().map(|f| serde_json::json!({"index": f.index, "error": f.error})).collect::<Vec<_>>(),
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

pub async fn job(client: &mut Client, id: u64, wait: bool, format: Format) -> anyhow::Result<()> {
    let info = if wait {
        wait_for(client, id, true).await?
    } else {
        client.job(id).await.context("could not get the job")?
    };
    match format {
        Format::Json | Format::Jsonl => println!("{}", job_json(&info)),
        Format::Csv => println!("{JOB_CSV_HEADER}\n{}", job_csv(&info)),
        Format::Table => {
            println!("{}", job_summary(&info));
            if info.has_total {
                println!("total: {}", total(&info));
            } else if info.state == JobState::Succeeded as i32
                && info.reduce == Reduce::Concat as i32
            {
                print_concat(client, id).await?;
            }
        }
    }
    Ok(())
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

pub async fn jobs(client: &mut Client, all: bool, format: Format) -> anyhow::Result<()> {
    let jobs = if all {
        client.all_jobs().await
    } else {
        client.jobs().await
    };
    let jobs = jobs.context("could not list jobs")?;
    match format {
        Format::Json | Format::Jsonl => println!(
            "{}",
            serde_json::Value::Array(jobs.iter().map(job_json).collect())
        ),
        Format::Csv => {
            println!("{JOB_CSV_HEADER}");
            for j in &jobs {
                println!("{}", job_csv(j));
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

/// `brigade results ID`: the job's rows written as they arrive (bounded
/// memory whatever the job's size). In index order with `follow`, rows
/// keep coming while the job runs: each pass writes the done tasks from
/// where the last one stopped up to the first task not done yet, and the
/// pass after the job's end writes the rest (failed tasks leave gaps). In
/// completion order every pass writes what was recorded since the last.
pub async fn results(
    client: &mut Client,
    id: u64,
    format: Format,
    follow: bool,
    order: Order,
) -> anyhow::Result<()> {
    match write_results(client, id, format, follow, order).await {
        // The reader went away (`brigade results ID | head`): not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
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
    let mut out = RowWriter::new(format, Grid::of(&info));
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
    out.finish()?;
    if !follow {
        let info = client.job(id).await.context("could not get the job")?;
        if !JobState::try_from(info.state).is_ok_and(JobState::is_terminal) {
            eprintln!(
                "job {id} is still {}: these are the results so far (--follow waits for the rest)",
                state_name(info.state)
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

    /// Task `index`'s input as `start..end`.
    fn input(self, index: u64) -> String {
        let start = self.start.saturating_add(index.saturating_mul(self.chunk));
        let end = start.saturating_add(self.chunk).min(self.end);
        format!("{start}..{end}")
    }
}

/// The header of `results --format csv`.
const CSV_HEADER: &str = "index,value,input,attempts,worker,model,cpu_ms,wall_ms";

/// Writes result rows in one format as they come.
struct RowWriter {
    format: Format,
    grid: Grid,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    rows: u64,
}

impl RowWriter {
    fn new(format: Format, grid: Grid) -> Self {
        RowWriter {
            format,
            grid,
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            rows: 0,
        }
    }

    fn row(&mut self, row: &ResultRow) -> anyhow::Result<()> {
        let out = &mut self.out;
        match self.format {
            Format::Json | Format::Jsonl => {
                let sep = match (self.format, self.rows) {
                    (Format::Jsonl, _) => "",
                    (_, 0) => "[",
                    _ => ",",
                };
                let line = row_json(row, self.grid);
                if self.format == Format::Jsonl {
                    writeln!(out, "{line}")?;
                } else {
                    write!(out, "{sep}{line}")?;
                }
            }
            Format::Csv => {
                if self.rows == 0 {
                    writeln!(out, "{CSV_HEADER}")?;
                }
                let run = &row.run;
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    row.index,
                    csv_field(&row.output.to_text()),
                    self.grid.input(row.index),
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
/// the task's input range and how it ran.
fn row_json(row: &ResultRow, grid: Grid) -> serde_json::Value {
    let run = &row.run;
    serde_json::json!({
        "index": row.index,
        "value": row.output.to_text(),
        "output": row.output.to_json(),
        "input": grid.input(row.index),
        "attempts": run.attempts,
        "worker": run.worker,
        "model": run.model.map(Model::name),
        "cpu_ms": millis(run.cpu),
        "wall_ms": millis(run.wall),
    })
}

/// A table cell: one line, text as it is (non-ASCII too) except that
/// line breaks, tabs, other control characters and the backslash are
/// escaped (`\n`, `\t`, `\\`), so a row stays one line and reads back
/// unambiguously.
fn table_field(s: &str) -> String {
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
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub async fn cancel(client: &mut Client, id: u64) -> anyhow::Result<()> {
    let info = client
        .cancel(id)
        .await
        .context("could not cancel the job")?;
    println!("{}", job_summary(&info));
    Ok(())
}

pub async fn workers(client: &mut Client, format: Format) -> anyhow::Result<()> {
    let workers = client.workers().await.context("could not list workers")?;
    match format {
        Format::Json | Format::Jsonl => {
            let v: Vec<_> = workers
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
            println!("{}", serde_json::Value::Array(v));
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
pub async fn health(client: &mut Client, service: &str) -> anyhow::Result<()> {
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
        bail!("{what} is NOT_SERVING (starting or shutting down)");
    }
    println!("SERVING");
    Ok(())
}

pub async fn status(client: &mut Client, format: Format) -> anyhow::Result<()> {
    let s = client.status().await.context("could not get the status")?;
    match format {
        Format::Json | Format::Jsonl | Format::Csv => println!(
            "{}",
            serde_json::json!({
                "version": s.version, "protocol_version": s.protocol_version, "workers": s.workers,
                "process_slots": s.process_slots, "thread_slots": s.thread_slots, "async_slots": s.async_slots,
                "jobs_active": s.jobs_active, "jobs_total": s.jobs_total, "tasks_queued": s.tasks_queued,
                "tasks_running": s.tasks_running, "late_results_dropped": s.late_results_dropped,
                "uptime_ms": s.uptime_ms,
            })
        ),
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
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["30", "s", "1h", "-1s", ""] {
            assert!(
                parse_duration(bad).unwrap_err().contains("ms, s or m"),
                "{bad}"
            );
        }
    }

    #[test]
    fn table_cells_keep_text_and_escape_what_would_break_a_row() {
        assert_eq!(
            table_field("héllo \"wörld\" 'x' ✓"),
            "héllo \"wörld\" 'x' ✓"
        );
        assert_eq!(table_field("a\tb\nc\r\\d\u{1}"), "a\\tb\\nc\\r\\\\d\\u{1}");
    }
}
