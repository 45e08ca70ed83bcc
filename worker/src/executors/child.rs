//! The executor child process (`brigade executor`): reads one task frame at a
//! time from stdin (an `AssignBatch`), runs it, writes a `TaskOutcome` to
//! stdout, until EOF. It keeps the parsed workload of its last spec and one
//! HTTP connection between tasks, like a thread slot does.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use brigade_proto::batch::split_inputs;
use brigade_proto::v1::{AssignBatch, InputsFormat, Model, OutcomeStatus, TaskOutcome, U128};
use brigade_proto::Output;
use prost::Message;

use super::frame::read_frame_blocking;
use super::CpuMeter;
use crate::workload::{BlockingContext, Registry, TaskInput, Workload};

/// The last spec seen and what it parsed to. One entry suffices: a child runs
/// one task at a time, and consecutive tasks almost always share a job.
struct SpecCache {
    name: String,
    args: HashMap<String, String>,
    max_output: u64,
    parsed: Result<Arc<Workload>, String>,
}

impl SpecCache {
    fn get(
        cache: &mut Option<SpecCache>,
        registry: &Registry,
        batch: &AssignBatch,
    ) -> Result<Arc<Workload>, String> {
        let (name, args, max) = (&batch.workload, &batch.args, batch.max_result_bytes);
        let hit = cache
            .as_ref()
            .is_some_and(|c| c.name == *name && c.args == *args && c.max_output == max);
        if !hit {
            *cache = Some(SpecCache {
                name: name.to_string(),
                args: args.clone(),
                max_output: max,
                parsed: registry
                    .prepare(name, args)
                    .map(|w| Arc::new(w.with_max_output((max > 0).then_some(max)))),
            });
        }
        match cache {
            Some(c) => c.parsed.clone(),
            None => Err("internal error: spec cache empty".into()),
        }
    }
}

/// Main loop of the hidden `brigade executor` subcommand: reads one task frame
/// at a time from stdin, runs it, writes the outcome to stdout, until EOF.
/// Returns the process exit code (0 at EOF, 2 on a broken frame stream).
/// Runs brigade's built-in workloads; see [`run_stdio_with`].
pub fn run_stdio() -> i32 {
    run_stdio_with(&Registry::builtin())
}

/// [`run_stdio`] for a binary with workloads of its own: `registry` must
/// prepare every workload its worker offers.
///
/// Started with [`crate::reaper::ROLE_ENV`] set, the program is the
/// worker's reaper instead ([`crate::reaper::serve`]).
pub fn run_stdio_with(registry: &Registry) -> i32 {
    if std::env::var(crate::reaper::ROLE_ENV).as_deref() == Ok(crate::reaper::ROLE) {
        return crate::reaper::serve();
    }
    crate::reaper::init_executor();
    crate::contain::init_executor();
    let mut input = io::stdin().lock();
    let mut output = BufWriter::new(io::stdout().lock());
    match serve(registry, &mut input, &mut output) {
        Ok(()) => 0,
        // The worker closed our stdout: it is gone or replacing us.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            // No tracing subscriber runs in the child; stderr is inherited
            // from the worker, so this lands next to its logs.
            eprintln!("brigade executor {}: {e}", std::process::id());
            2
        }
    }
}

/// Serves frames from `input` to `output` until `input` ends.
pub(crate) fn serve(
    registry: &Registry,
    input: &mut impl io::BufRead,
    output: &mut impl Write,
) -> io::Result<()> {
    let mut frame = Vec::with_capacity(256);
    let mut reply = Vec::with_capacity(256);
    let mut cache = None;
    let mut ctx = BlockingContext::new();
    let mut meter = CpuMeter::default();
    while read_frame_blocking(input, &mut frame)? {
        let mut batch = AssignBatch::decode(&frame[..]).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable task frame: {e}"),
            )
        })?;
        let items = split_inputs(
            batch.tasks.iter().map(|t| (t.start, t.end)),
            std::mem::take(&mut batch.inputs),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let workload = SpecCache::get(&mut cache, registry, &batch);
        // The time waiting for this frame was no task's.
        meter.waited();
        let mut items = items.map(Vec::into_iter);
        for t in &batch.tasks {
            let items = items.as_mut().and_then(Iterator::next).unwrap_or_default();
            let mut outcome = TaskOutcome {
                job_id: batch.job_id,
                index: t.index,
                attempt: t.attempt,
                model: Model::Process as i32,
                ..Default::default()
            };
            match &workload {
                Ok(w) => {
                    let input = TaskInput {
                        index: t.index,
                        start: t.start,
                        end: t.end,
                        items,
                        items_are_json: batch.inputs_format == InputsFormat::Jsonl as i32,
                        output_limit: w.max_output(),
                    };
                    let run = meter.run(batch.job_id, w, &input, &mut ctx);
                    outcome.cpu_ns = run.cpu_ns;
                    outcome.wall_ns = run.wall_ns;
                    outcome.ready_ns = run.ready_ns;
                    let (status, value, error) = w.judge(run.result);
                    outcome.status = status as i32;
                    outcome.error = error;
                    match value {
                        Output::Int(v) if status == OutcomeStatus::Ok => {
                            outcome.value = Some(U128::from(v))
                        }
                        Output::Int(_) => {}
                        Output::Bytes(b) => outcome.output = Some(b),
                    }
                }
                Err(e) => {
                    outcome.status = OutcomeStatus::Failed as i32;
                    outcome.error = e.clone();
                }
            }
            reply.clear();
            outcome
                .encode_length_delimited(&mut reply)
                .map_err(|e| io::Error::other(format!("cannot encode an outcome: {e}")))?;
            output.write_all(&reply)?;
        }
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assign_batch;

    fn outcomes(frames: &[AssignBatch]) -> Vec<TaskOutcome> {
        let mut wire = Vec::new();
        for f in frames {
            f.encode_length_delimited(&mut wire).unwrap();
        }
        let mut out = Vec::new();
        serve(
            &Registry::builtin(),
            &mut io::BufReader::new(&wire[..]),
            &mut out,
        )
        .unwrap();
        let mut r = io::BufReader::new(&out[..]);
        let mut buf = Vec::new();
        let mut v = Vec::new();
        while read_frame_blocking(&mut r, &mut buf).unwrap() {
            v.push(TaskOutcome::decode(&buf[..]).unwrap());
        }
        v
    }

    #[test]
    fn runs_each_task_and_answers_in_order() {
        let got = outcomes(&[
            assign_batch("sum-squares", &[], &[(0, 0, 1_500_000)]),
            assign_batch("noop", &[], &[(5, 0, 0), (6, 0, 0)]),
        ]);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].status, OutcomeStatus::Ok as i32);
        assert_eq!(u128::from(got[0].value.unwrap()), 1_124_998_875_000_250_000);
        assert_eq!((got[0].job_id, got[0].attempt), (7, 2));
        assert_eq!(u128::from(got[2].value.unwrap()), 6);
        assert!(got[0].cpu_ns > 0 && got[0].wall_ns > 0);
    }

    #[test]
    fn a_bad_spec_fails_its_tasks_and_the_child_carries_on() {
        let got = outcomes(&[
            assign_batch("spin", &[], &[(1, 0, 0)]),
            assign_batch("noop", &[], &[(2, 0, 0)]),
        ]);
        assert_eq!(got[0].status, OutcomeStatus::Failed as i32);
        assert!(
            got[0].error.contains("needs argument ms"),
            "{}",
            got[0].error
        );
        assert_eq!(got[1].status, OutcomeStatus::Ok as i32);
    }

    #[test]
    fn a_garbage_frame_is_an_error() {
        let wire = [3u8, 0xff, 0xff, 0xff];
        let e = serve(
            &Registry::builtin(),
            &mut io::BufReader::new(&wire[..]),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
