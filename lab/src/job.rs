//! A user's job for `brigade bench --job`: what it runs (a workload, its
//! arguments, a range or an inputs file, the chunk), the job spec and items of
//! each run (a prefix for the `1 slot` baseline), and one run of it: submit
//! (uploading the inputs as `brigade submit --inputs` does, through the
//! client's one reader), follow it to its end, and stream every result into a
//! spill file ([`crate::agree`] compares them after the clock stops).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_client::inputs::{self, Source};
use brigade_client::{state_name, Client, InputsFormat, JobInfo, JobSpec, WaitEvent};
use brigade_proto::v1::{JobState, Kind, Model};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::agree::Spill;
use crate::plan::RunPlan;

/// What a job's tasks take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobInput {
    /// `--range A..B`: task i takes [A + i·chunk, ...).
    Range(u64, u64),
    /// `--inputs FILE`: one item per non-blank line, `chunk` items a task.
    Inputs {
        path: PathBuf,
        format: InputsFormat,
        /// Items in the file (counted, and every line checked, up front).
        items: u64,
    },
}

/// A user's job, as `brigade bench --job` was given it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserJob {
    pub workload: String,
    pub args: Vec<(String, String)>,
    pub input: JobInput,
    /// Items per task (inputs) or the width of a task's sub-range.
    pub chunk: u64,
}

/// How long a run may wait with a waiting reason (no worker offers the
/// workload, no slots of the model) and nothing done before it stops: the
/// coordinator only says so when no linked worker could run the job.
const WAITING_GRACE: Duration = Duration::from_secs(10);

static JOB_SEQ: AtomicU64 = AtomicU64::new(0);

impl UserJob {
    /// Checks the flags and, for an inputs file, reads it once through (every
    /// line checked as `brigade submit` checks it) to count its items, so a
    /// bad file stops the bench before any cluster starts.
    pub async fn new(
        workload: String,
        args: Vec<(String, String)>,
        inputs: Option<(PathBuf, InputsFormat)>,
        range: Option<(u64, u64)>,
        chunk: u64,
    ) -> anyhow::Result<UserJob> {
        if chunk == 0 {
            bail!("--chunk must be at least 1");
        }
        let input = match (inputs, range) {
            (Some((path, format)), None) => {
                if path == Path::new("-") {
                    bail!(
                        "--inputs -: the bench submits the job once per run, so it needs a \
                         file it can read again, not standard input"
                    );
                }
                let items = inputs::read(Source::File(path.clone()), format)
                    .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                    .await?;
                if items == 0 {
                    bail!(
                        "the inputs file {} has no inputs (every line is blank)",
                        path.display()
                    );
                }
                JobInput::Inputs {
                    path,
                    format,
                    items,
                }
            }
            (None, Some((a, b))) => JobInput::Range(a, b),
            (None, None) => bail!(
                "--job {workload} needs its tasks' inputs: --inputs FILE (one per line) or --range A..B"
            ),
            (Some(_), Some(_)) => bail!("--inputs and --range cannot go together"),
        };
        Ok(UserJob {
            workload,
            args,
            input,
            chunk,
        })
    }

    /// The job's input grid: its range, or [0, items) for an inputs file.
    pub fn range(&self) -> (u64, u64) {
        match self.input {
            JobInput::Range(a, b) => (a, b),
            JobInput::Inputs { items, .. } => (0, items),
        }
    }

    pub fn tasks(&self) -> u64 {
        let (a, b) = self.range();
        (b - a).div_ceil(self.chunk)
    }

    /// e.g. `echo --inputs names.txt (1,000 lines, text) --chunk 64 --arg k=v:
    /// 16 tasks`.
    pub fn describe(&self) -> String {
        let mut s = self.workload.clone();
        match &self.input {
            JobInput::Range(a, b) => s.push_str(&format!(" --range {a}..{b}")),
            JobInput::Inputs {
                path,
                format,
                items,
            } => s.push_str(&format!(
                " --inputs {} ({} inputs, {})",
                path.display(),
                crate::report::thousands(*items as f64),
                if *format == InputsFormat::Jsonl {
                    "jsonl"
                } else {
                    "text"
                }
            )),
        }
        s.push_str(&format!(" --chunk {}", self.chunk));
        for (k, v) in &self.args {
            s.push_str(&format!(" --arg {k}={v}"));
        }
        format!(
            "{s}: {} tasks",
            crate::report::thousands(self.tasks() as f64)
        )
    }

    /// The spec of `plan`'s run: the plan's range (a prefix for the baseline)
    /// and model; an inputs job's range travels as its items instead.
    pub fn spec(&self, plan: &RunPlan) -> JobSpec {
        let (range_start, range_end, inputs_format) = match &self.input {
            JobInput::Range(..) => (plan.range.0, plan.range.1, InputsFormat::Text),
            JobInput::Inputs { format, .. } => (0, 0, *format),
        };
        JobSpec {
            workload: self.workload.clone(),
            args: self.args.iter().cloned().collect(),
            range_start,
            range_end,
            has_inputs: matches!(self.input, JobInput::Inputs { .. }),
            inputs_format: inputs_format as i32,
            chunk: plan.chunk,
            model: plan.model.unwrap_or(Model::Unspecified) as i32,
            max_in_flight: if plan.uncapped { 0 } else { plan.in_flight },
            name: format!(
                "bench {} {} #{}",
                self.workload,
                plan.label,
                JOB_SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            ..Default::default()
        }
    }

    /// The items of `plan`'s run (the first `plan.range.1` of the file), read
    /// as the run uploads them; `None` for a range job.
    fn items(
        &self,
        plan: &RunPlan,
    ) -> Option<impl Stream<Item = Result<Vec<u8>, brigade_client::ClientError>> + Send + 'static>
    {
        match &self.input {
            JobInput::Range(..) => None,
            JobInput::Inputs { path, format, .. } => Some(
                inputs::read(Source::File(path.clone()), *format)
                    .take((plan.range.1 - plan.range.0) as usize),
            ),
        }
    }
}

/// Runs `plan` once: from the submission (with the upload) until every result
/// is in hand, written to `spill`. The job must succeed with every task done
/// and one result per task in index order; it is stopped after `timeout`, or
/// after [`WAITING_GRACE`] of waiting with nothing done (the coordinator's
/// reason is the error). Returns the wall time and the job's final status.
pub async fn run(
    client: &mut Client,
    job: &UserJob,
    plan: &RunPlan,
    spill: &Path,
    timeout: Duration,
) -> (Duration, Result<JobInfo, String>) {
    let t0 = Instant::now();
    let outcome = async {
        let spec = job.spec(plan);
        let accepted = match job.items(plan) {
            Some(items) => client.submit_inputs(spec, items).await,
            None => client.submit(spec).await,
        }
        .context("the coordinator refused the job")?;
        let id = accepted.job_id;
        let info = match tokio::time::timeout(timeout, follow(client, id)).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let _ = client.cancel(id).await;
                return Err(e);
            }
            Err(_) => {
                let _ = client.cancel(id).await;
                bail!("timed out after {timeout:?} (job {id} cancelled)");
            }
        };
        if info.state != JobState::Succeeded as i32 {
            bail!("job {}: {}", state_name(info.state), info.error);
        }
        let tasks = plan.tasks();
        if info.tasks_total != tasks || info.tasks_done != tasks || info.tasks_failed != 0 {
            bail!(
                "job {id} succeeded with {} of {} tasks done and {} failed, expected all {tasks} done",
                info.tasks_done,
                info.tasks_total,
                info.tasks_failed
            );
        }
        let mut out = Spill::create(spill)?;
        let mut rows = client
            .results(id)
            .await
            .context("could not get the results")?;
        while let Some(row) = rows.next().await {
            out.push(&row.context("the results stream broke")?)?;
        }
        let rows = out.finish()?;
        if rows != tasks {
            bail!("{rows} results for {tasks} tasks");
        }
        anyhow::Ok(info)
    }
    .await;
    (t0.elapsed(), outcome.map_err(|e| format!("{e:#}")))
}

/// Follows job `id` to its end; gives up (with the coordinator's reason) once
/// it has waited [`WAITING_GRACE`] with a waiting reason and nothing done.
async fn follow(client: &mut Client, id: u64) -> anyhow::Result<JobInfo> {
    // (the waiting reason, since when) while the job has one and nothing done.
    let waiting: Mutex<Option<(String, Instant)>> = Mutex::new(None);
    let observe = |e: WaitEvent<'_>| {
        if let (WaitEvent::Status(info), Ok(mut w)) = (e, waiting.lock()) {
            if info.waiting_reason.is_empty() || info.tasks_done > 0 {
                *w = None;
            } else if w.as_ref().is_none_or(|(r, _)| *r != info.waiting_reason) {
                *w = Some((info.waiting_reason.clone(), Instant::now()));
            }
        }
    };
    let stuck = {
        let wait = client.wait(id, observe);
        tokio::pin!(wait);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                info = &mut wait => return Ok(info?),
                _ = tick.tick() => {
                    let w = waiting.lock().ok().and_then(|w| w.clone());
                    if let Some((why, since)) = w.filter(|(_, t)| t.elapsed() >= WAITING_GRACE) {
                        break format!("job {id} waited {:.0} s: {why}", since.elapsed().as_secs_f64());
                    }
                }
            }
        }
    };
    bail!(stuck)
}

/// Runs the job's first tasks (at most 2) on thread slots before anything is
/// measured: that it runs at all, and its kind (the workload's, as the
/// coordinator resolved it), which sets the models' cap.
pub async fn probe(
    client: &mut Client,
    job: &'static UserJob,
    spill: &Path,
    timeout: Duration,
) -> anyhow::Result<Kind> {
    let (a, b) = job.range();
    let plan = RunPlan {
        workload: crate::plan::WorkloadId::Job(job),
        label: "probe".into(),
        model: Some(Model::Thread),
        in_flight: 2,
        range: (a, b.min(a + 2 * job.chunk)),
        chunk: job.chunk,
        scaled_from: None,
        uncapped: false,
    };
    let (_, outcome) = run(client, job, &plan, spill, timeout).await;
    let _ = std::fs::remove_file(spill);
    let info = outcome.map_err(|e| {
        anyhow::anyhow!(
            "your job's first {} task(s) did not run on thread slots: {e}",
            plan.tasks()
        )
    })?;
    Ok(Kind::try_from(info.kind).unwrap_or(Kind::Unspecified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_counts_its_inputs_up_front_and_refuses_bad_flags() {
        let dir = std::env::temp_dir().join(format!("brigade-lab-job-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("names.txt");
        std::fs::write(&file, "Pizza Hut\n\nNoma\nEl Bulli\n").unwrap();
        let text = Some((file.clone(), InputsFormat::Text));
        let job = UserJob::new("echo".into(), Vec::new(), text.clone(), None, 2)
            .await
            .unwrap();
        assert_eq!((job.range(), job.tasks()), ((0, 3), 2));
        assert_eq!(
            job.describe(),
            format!(
                "echo --inputs {} (3 inputs, text) --chunk 2: 2 tasks",
                file.display()
            )
        );
        let range = UserJob::new(
            "noop".into(),
            vec![("a".into(), "b".into())],
            None,
            Some((5, 15)),
            4,
        )
        .await
        .unwrap();
        assert_eq!((range.range(), range.tasks()), ((5, 15), 3));
        assert_eq!(
            range.describe(),
            "noop --range 5..15 --chunk 4 --arg a=b: 3 tasks"
        );
        let err = |r: anyhow::Result<UserJob>| r.unwrap_err().to_string();
        let e = err(UserJob::new("echo".into(), Vec::new(), None, None, 1).await);
        assert!(e.contains("--inputs FILE") && e.contains("--range"), "{e}");
        let stdin = Some((PathBuf::from("-"), InputsFormat::Text));
        assert!(
            err(UserJob::new("echo".into(), Vec::new(), stdin, None, 1).await)
                .contains("not standard input")
        );
        assert!(
            err(UserJob::new("echo".into(), Vec::new(), text, None, 0).await).contains("--chunk")
        );
        let blank = dir.join("blank.txt");
        std::fs::write(&blank, "\n  \n").unwrap();
        let blank = Some((blank, InputsFormat::Text));
        assert!(
            err(UserJob::new("echo".into(), Vec::new(), blank, None, 1).await)
                .contains("has no inputs")
        );
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "1\n{oops\n").unwrap();
        let bad = Some((bad, InputsFormat::Jsonl));
        let e = err(UserJob::new("echo".into(), Vec::new(), bad, None, 1).await);
        assert!(e.contains("bad.jsonl, line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
