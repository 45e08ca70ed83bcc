//! `brigade timeline JOB`: a job's tasks as a Chrome trace (the Trace
//! Event Format's JSON, which Perfetto and chrome://tracing open): a
//! process per worker, a thread (row) per slot, one complete event ("X")
//! per done task, categorised and coloured by model.
//!
//! Results say how long each task ran (its wall time, measured by the
//! worker) and when the coordinator recorded it, not on which slot: a
//! worker reports results in batches, so a task ended up to a batch's
//! wait before it was recorded. Each worker's tasks of a model are laid on
//! as many rows as it has slots of that model (as `workers` lists them; as
//! many as they need for a worker no longer linked), latest first, each
//! task ending when it was recorded or, when its row is taken by then,
//! where the row's next task starts. [`trace`] is pure; [`command`]
//! fetches the rows and writes the file.

use std::collections::HashMap;

use anyhow::Context;
use brigade_client::{model_name, Client, Model, Order, ResultRow};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::commands::Format;

/// `brigade timeline ID [--out FILE]`: the job's trace written to `out`
/// (with what was written said on stdout), or itself on stdout.
pub async fn command(
    client: &mut Client,
    id: u64,
    out: Option<&std::path::Path>,
    format: Format,
) -> anyhow::Result<()> {
    let info = client.job(id).await.context("could not get the job")?;
    let workers = client.workers().await.context("could not list workers")?;
    let mut rows = Vec::new();
    // In completion order: every row says when it was recorded.
    let mut stream = client
        .results_in(id, Order::Completion, 0)
        .await
        .context("could not get results")?;
    while let Some(row) = stream.next().await {
        rows.push(row.context("results stream broken")?);
    }
    let of = TraceOf {
        job_id: id,
        workload: info
            .spec
            .as_ref()
            .map(|s| s.workload.clone())
            .unwrap_or_default(),
        submitted_unix_ms: info.submitted_unix_ms,
        slots: workers
            .iter()
            .map(|w| {
                (
                    w.worker_id,
                    [w.process_slots, w.thread_slots, w.async_slots],
                )
            })
            .collect(),
    };
    let (trace, unknown) = trace(&of, &rows);
    let events = rows.len() - unknown;
    if unknown > 0 && format != Format::Quiet {
        eprintln!(
            "{unknown} of job {id}'s {} done tasks are left out: when they were recorded is not \
             known (stored by an older coordinator)",
            rows.len()
        );
    }
    let Some(out) = out else {
        println!("{trace}");
        return Ok(());
    };
    let text = serde_json::to_vec(&trace)?;
    std::fs::write(out, text).with_context(|| format!("--out {}", out.display()))?;
    let path = out.display().to_string();
    match format {
        Format::Json | Format::Jsonl => {
            println!("{}", json!({"job_id": id, "out": path, "tasks": events}))
        }
        Format::Csv => println!("job_id,out,tasks\n{id},{path},{events}"),
        Format::Quiet => println!("{path}"),
        Format::Table => println!(
            "wrote {path}: job {id}'s {events} done tasks, a row per slot; open it in \
             https://ui.perfetto.dev or chrome://tracing"
        ),
    }
    if !crate::commands::is_terminal_state(info.state) && format != Format::Quiet {
        eprintln!(
            "job {id} is still {}: the timeline shows the tasks done so far",
            brigade_client::state_name(info.state)
        );
    }
    Ok(())
}

/// A done task as the trace places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub index: u64,
    /// The row: the slot's number among its worker's slots of the model.
    pub lane: u32,
    /// When it started and ended, in µs since the Unix epoch.
    pub start_us: u64,
    pub end_us: u64,
}

/// A task's wall time in whole µs (the trace's unit), rounded.
pub fn wall_us(row: &ResultRow) -> u64 {
    (row.run.wall.as_nanos() as u64 + 500) / 1_000
}

/// Lays tasks of one worker and model on at most `slots` rows (`None`: as
/// many as they need), from the latest recorded back: a task goes on the
/// row free at its recorded end whose next task starts soonest after it,
/// else on a new row while there may be one, else on the row whose next
/// task starts latest, ending where that one starts.
pub fn place(rows: &[&ResultRow], slots: Option<u32>) -> Vec<Placed> {
    let mut order: Vec<&ResultRow> = rows.to_vec();
    order.sort_by_key(|r| (std::cmp::Reverse(r.run.ended_unix_us), r.index));
    // The rows by where their earliest task so far starts (a fresh row:
    // u64::MAX), then their number: the choices below in O(log rows).
    let mut free_before: std::collections::BTreeSet<(u64, u32)> = Default::default();
    let mut lanes = 0u32;
    let mut placed = Vec::with_capacity(order.len());
    for row in order {
        let end = row.run.ended_unix_us;
        let fits = free_before.range((end, 0)..).next().copied();
        let (free, lane) = match fits {
            Some(f) => f,
            None if slots.is_none_or(|n| lanes < n) => {
                lanes += 1;
                (u64::MAX, lanes - 1)
            }
            // The row free the latest (the lowest-numbered of those).
            None => match free_before.last() {
                Some(&(latest, _)) => free_before
                    .range((latest, 0)..)
                    .next()
                    .copied()
                    .unwrap_or((latest, 0)),
                None => (u64::MAX, 0),
            },
        };
        free_before.remove(&(free, lane));
        let end = end.min(free);
        let start = end.saturating_sub(wall_us(row));
        free_before.insert((start, lane));
        placed.push(Placed {
            index: row.index,
            lane,
            start_us: start,
            end_us: end,
        });
    }
    placed.sort_by_key(|p| p.index);
    placed
}

/// What a trace is of: the job, and the slots of the workers still linked
/// (by worker id: process, thread, async).
#[derive(Debug, Clone, Default)]
pub struct TraceOf {
    pub job_id: u64,
    pub workload: String,
    pub submitted_unix_ms: u64,
    pub slots: HashMap<u64, [u32; 3]>,
}

/// Rows (a thread id) of a model on a worker: process slots from 1,000,
/// thread slots from 2,000, async slots from 3,000.
fn tid(model: Option<Model>, lane: u32) -> u64 {
    let base = match model {
        Some(Model::Process) => 1_000,
        Some(Model::Thread) => 2_000,
        Some(Model::Async) => 3_000,
        _ => 4_000,
    };
    base + u64::from(lane)
}

/// One of the trace viewers' reserved colours per model.
fn colour(model: Option<Model>) -> &'static str {
    match model {
        Some(Model::Process) => "thread_state_iowait",
        Some(Model::Thread) => "thread_state_running",
        Some(Model::Async) => "rail_response",
        _ => "grey",
    }
}

/// The Chrome trace of `rows` (every done task whose recording time is
/// known; the count of the others is returned beside it). Times are µs
/// from the job's submission (or its earliest task, if earlier).
pub fn trace(of: &TraceOf, rows: &[ResultRow]) -> (Value, usize) {
    let known: Vec<&ResultRow> = rows.iter().filter(|r| r.run.ended_unix_us != 0).collect();
    let mut groups: HashMap<(u64, Option<Model>), Vec<&ResultRow>> = HashMap::new();
    for r in &known {
        groups
            .entry((r.run.worker_id, r.run.model))
            .or_default()
            .push(r);
    }
    let mut keys: Vec<(u64, Option<Model>)> = groups.keys().copied().collect();
    keys.sort_by_key(|&(w, m)| (w, m.map_or(0, |m| m as i32)));
    let mut placed: Vec<(u64, Option<Model>, &ResultRow, Placed)> = Vec::new();
    for key in &keys {
        let (worker, model) = *key;
        let slots = of.slots.get(&worker).and_then(|s| match model {
            Some(Model::Process) => Some(s[0]),
            Some(Model::Thread) => Some(s[1]),
            Some(Model::Async) => Some(s[2]),
            _ => None,
        });
        let group = &groups[key];
        let by_index: HashMap<u64, &ResultRow> = group.iter().map(|r| (r.index, *r)).collect();
        for p in place(group, slots.filter(|&n| n > 0)) {
            placed.push((worker, model, by_index[&p.index], p));
        }
    }
    let origin = placed
        .iter()
        .map(|p| p.3.start_us)
        .chain(std::iter::once(of.submitted_unix_ms.saturating_mul(1_000)))
        .filter(|&t| t > 0)
        .min()
        .unwrap_or(0);
    let mut events = Vec::new();
    let mut named_workers = std::collections::BTreeSet::new();
    let mut named_rows = std::collections::BTreeSet::new();
    for &(worker, model, row, p) in &placed {
        let tid = tid(model, p.lane);
        if named_workers.insert(worker) {
            let name = if row.run.worker.is_empty() {
                format!("worker {worker}")
            } else {
                format!("worker {} (id {worker})", row.run.worker)
            };
            events.push(
                json!({"ph": "M", "name": "process_name", "pid": worker, "tid": 0,
                               "args": {"name": name}}),
            );
            events.push(
                json!({"ph": "M", "name": "process_sort_index", "pid": worker,
                               "tid": 0, "args": {"sort_index": worker}}),
            );
        }
        if named_rows.insert((worker, tid)) {
            let model = model.map_or("unknown", Model::name);
            events.push(
                json!({"ph": "M", "name": "thread_name", "pid": worker, "tid": tid,
                               "args": {"name": format!("{model} slot {}", p.lane)}}),
            );
            events.push(
                json!({"ph": "M", "name": "thread_sort_index", "pid": worker,
                               "tid": tid, "args": {"sort_index": tid}}),
            );
        }
    }
    for &(worker, model, row, p) in &placed {
        let model_name = model.map_or("unknown", Model::name);
        events.push(json!({
            "name": format!("task {}", row.index),
            "cat": model_name,
            "ph": "X",
            "ts": p.start_us - origin,
            "dur": p.end_us - p.start_us,
            "pid": worker,
            "tid": tid(model, p.lane),
            "cname": colour(model),
            "args": {
                "index": row.index,
                "attempts": row.run.attempts,
                "worker": row.run.worker,
                "model": model_name,
                "cpu_ms": row.run.cpu.as_secs_f64() * 1e3,
                "wall_ms": row.run.wall.as_secs_f64() * 1e3,
                "recorded_unix_us": row.run.ended_unix_us,
            },
        }));
    }
    let trace = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "job_id": of.job_id,
            "workload": of.workload,
            "origin_unix_us": origin,
            "models": keys.iter().map(|k| model_name(k.1.map_or(0, |m| m as i32))).collect::<Vec<_>>(),
        },
    });
    (trace, rows.len() - known.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_client::RunInfo;
    use std::time::Duration;

    fn row(index: u64, worker_id: u64, model: Model, wall_us: u64, ended: u64) -> ResultRow {
        ResultRow {
            index,
            output: brigade_client::Output::Int(0),
            run: RunInfo {
                attempts: 1,
                worker_id,
                worker: format!("w{worker_id}"),
                model: Some(model),
                cpu: Duration::ZERO,
                wall: Duration::from_micros(wall_us),
                ended_unix_us: ended,
            },
        }
    }

    #[test]
    fn a_batch_recorded_at_once_is_laid_back_to_back_on_the_slots_it_had() {
        // Two slots ran 4 tasks of 10 ms each, reported in one batch at
        // t = 100 ms: two rows, two tasks each, ending at 100 ms and 90 ms.
        let rows: Vec<ResultRow> = (0..4)
            .map(|i| row(i, 1, Model::Thread, 10_000, 100_000))
            .collect();
        let refs: Vec<&ResultRow> = rows.iter().collect();
        let placed = place(&refs, Some(2));
        let lanes: Vec<(u32, u64, u64)> = placed
            .iter()
            .map(|p| (p.lane, p.start_us, p.end_us))
            .collect();
        assert_eq!(
            lanes,
            [
                (0, 90_000, 100_000),
                (1, 90_000, 100_000),
                (0, 80_000, 90_000),
                (1, 80_000, 90_000)
            ]
        );
        // With no slot count: as many rows as they overlap.
        let placed = place(&refs, None);
        assert_eq!(placed.iter().map(|p| p.lane).max(), Some(3));
        // Tasks recorded apart share a row when they do not overlap.
        let apart = [
            row(0, 1, Model::Process, 5_000, 10_000),
            row(1, 1, Model::Process, 5_000, 20_000),
        ];
        let refs: Vec<&ResultRow> = apart.iter().collect();
        let placed = place(&refs, None);
        assert_eq!(
            placed
                .iter()
                .map(|p| (p.lane, p.start_us))
                .collect::<Vec<_>>(),
            [(0, 5_000), (0, 15_000)]
        );
    }

    #[test]
    fn placed_tasks_never_overlap_on_a_row_nor_end_after_they_were_recorded() {
        // 2,000 tasks of one worker, recorded in batches of up to 50 at
        // pseudo-random times, with pseudo-random wall times.
        let mut x = 12_345u64;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % m
        };
        let mut rows = Vec::new();
        let mut t = 1_800_000_000_000_000u64;
        while rows.len() < 2_000 {
            t += next(5_000);
            for _ in 0..=next(50) {
                rows.push(row(rows.len() as u64, 1, Model::Thread, 1 + next(3_000), t));
            }
        }
        let refs: Vec<&ResultRow> = rows.iter().collect();
        for slots in [Some(1), Some(4), Some(32), None] {
            let placed = place(&refs, slots);
            assert_eq!(placed.len(), rows.len());
            let mut by_lane: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
            for (p, r) in placed.iter().zip(&rows) {
                assert_eq!(p.index, r.index);
                assert_eq!(
                    p.end_us - p.start_us,
                    wall_us(r),
                    "a box lasts the wall time"
                );
                assert!(
                    p.end_us <= r.run.ended_unix_us,
                    "ended by when it was recorded"
                );
                by_lane
                    .entry(p.lane)
                    .or_default()
                    .push((p.start_us, p.end_us));
            }
            if let Some(n) = slots {
                assert!(
                    by_lane.len() <= n as usize,
                    "{slots:?}: {} rows",
                    by_lane.len()
                );
            }
            for spans in by_lane.values_mut() {
                spans.sort_unstable();
                assert!(
                    spans.windows(2).all(|w| w[0].1 <= w[1].0),
                    "{slots:?}: overlap"
                );
            }
        }
    }

    #[test]
    fn the_trace_has_an_event_per_task_with_its_wall_time_on_its_workers_rows() {
        let rows = vec![
            row(0, 1, Model::Process, 1_500, 1_000_010_000),
            row(1, 2, Model::Async, 2_000, 1_000_020_000),
            row(2, 1, Model::Process, 3_000, 1_000_030_000),
            row(3, 1, Model::Process, 3_000, 0),
        ];
        let of = TraceOf {
            job_id: 7,
            workload: "noop".into(),
            submitted_unix_ms: 1_000_000,
            slots: HashMap::from([(1, [1, 0, 0])]),
        };
        let (t, unknown) = trace(&of, &rows);
        assert_eq!(unknown, 1);
        let events = t["traceEvents"].as_array().unwrap();
        let tasks: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(tasks.len(), 3);
        let by_name = |n: &str| tasks.iter().find(|e| e["name"] == n).copied().unwrap();
        let t0 = by_name("task 0");
        assert_eq!(
            (t0["ts"].as_u64(), t0["dur"].as_u64()),
            (Some(8_500), Some(1_500))
        );
        assert_eq!(
            (t0["pid"].as_u64(), t0["tid"].as_u64(), &t0["cat"]),
            (Some(1), Some(1_000), &json!("process"))
        );
        let t1 = by_name("task 1");
        assert_eq!(
            (t1["pid"].as_u64(), t1["tid"].as_u64()),
            (Some(2), Some(3_000))
        );
        assert_eq!(by_name("task 2")["ts"].as_u64(), Some(27_000));
        let names: Vec<&Value> = events
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| &e["args"]["name"])
            .collect();
        assert_eq!(names, [&json!("process slot 0"), &json!("async slot 0")]);
        assert_eq!(t["otherData"]["job_id"], 7);
    }
}
