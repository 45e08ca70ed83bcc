//! `brigade bench --overhead`: what brigade adds to every task. No-op tasks
//! (no work at all) and `spin ms=1` tasks (1 ms of CPU each) run on every
//! model with as many slots as the machine has cores and no job cap, and
//! per-task overhead = (wall − ideal) / tasks, where ideal = tasks × task
//! time / slots that can run at once. Pure: plans, maths and the table; the
//! runs are measured like every other bench run.

use super::plan::{shape, Caps, JobPlan, Size, WorkloadId, SPIN_MS};
use super::report::{aligned_lines, median, spread, thousands, RunRecord, Spread};
use brigade_proto::v1::Model;

/// The overhead runs: per model, no-ops (W_NOOP's size) then 1 ms spins.
pub fn plans(size: Size, models: &[Model], caps: Caps) -> Vec<JobPlan> {
    let mut out = Vec::new();
    for w in [WorkloadId::Noop, WorkloadId::Spin] {
        let (range, chunk) = shape(w, size, false);
        for &m in models {
            out.push(JobPlan {
                workload: w,
                label: m.name().into(),
                model: Some(m),
                in_flight: caps.cpu,
                range,
                chunk,
                scaled_from: None,
                uncapped: caps.slots_bound,
            });
        }
    }
    out
}

/// What one task of the workload costs by itself, in seconds.
pub fn task_s(w: WorkloadId) -> f64 {
    match w {
        WorkloadId::Spin => f64::from(SPIN_MS) / 1e3,
        _ => 0.0,
    }
}

/// How many tasks can run at once: every slot, except that spins on async
/// slots take turns on their worker's one event-loop thread.
pub fn slots_at_once(w: WorkloadId, model: Option<&str>, in_flight: u32, workers: u32) -> u32 {
    if w == WorkloadId::Spin && model == Some("async") {
        workers.clamp(1, in_flight.max(1))
    } else {
        in_flight.max(1)
    }
}

/// tasks × task time / slots: the wall time with no overhead at all.
pub fn ideal_s(tasks: u64, task_s: f64, slots: u32) -> f64 {
    tasks as f64 * task_s / f64::from(slots.max(1))
}

/// (wall − ideal) / tasks, in seconds.
pub fn per_task_s(wall_s: f64, ideal_s: f64, tasks: u64) -> f64 {
    (wall_s - ideal_s) / tasks.max(1) as f64
}

/// The ideal time and per-task overhead (µs) of one run.
pub fn of_run(r: &RunRecord) -> (f64, f64) {
    let slots = slots_at_once(r.workload, r.model, r.in_flight, r.scale);
    let ideal = ideal_s(r.tasks, task_s(r.workload), slots);
    (ideal, per_task_s(r.wall_s, ideal, r.tasks) * 1e6)
}

/// One line of the overhead table: the repetitions of one (scale, task, model).
#[derive(Debug, Clone, PartialEq)]
pub struct OverheadRow {
    pub scale: u32,
    pub workload: WorkloadId,
    pub model: String,
    pub tasks: u64,
    pub slots: u32,
    pub reps: usize,
    pub wall: Option<Spread>,
    pub ideal_s: f64,
    /// (median wall − ideal) / tasks, µs.
    pub overhead_us: Option<f64>,
    /// The same against the time the tasks themselves reported (Σ task wall
    /// / slots): a spin preempted by a neighbour on a busy machine takes
    /// longer than 1 ms, which is the machine's, not brigade's.
    pub beyond_tasks_us: Option<f64>,
    pub failed: Option<String>,
}

impl OverheadRow {
    pub fn task_name(&self) -> String {
        match self.workload {
            WorkloadId::Spin => format!("spin {SPIN_MS} ms"),
            _ => "noop".to_string(),
        }
    }
}

pub fn summarise(runs: &[RunRecord]) -> Vec<OverheadRow> {
    let mut keys: Vec<(u32, WorkloadId, String)> = Vec::new();
    for r in runs {
        let k = (r.scale, r.workload, r.label.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(scale, workload, model)| {
            let reps: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.scale == scale && r.workload == workload && r.label == model)
                .collect();
            let first = reps[0];
            let slots = slots_at_once(workload, first.model, first.in_flight, scale);
            let ideal = ideal_s(first.tasks, task_s(workload), slots);
            let failed = reps.iter().find_map(|r| r.error.clone());
            let walls: Vec<f64> = reps.iter().map(|r| r.wall_s).collect();
            let wall = failed.is_none().then(|| spread(&walls)).flatten();
            let beyond: Vec<f64> = reps
                .iter()
                .map(|r| per_task_s(r.wall_s, r.task_wall_s / f64::from(slots), r.tasks) * 1e6)
                .collect();
            // Spins in flight on one event loop each count the others' turns
            // in their own wall time: their sum says nothing.
            let overlapping = workload == WorkloadId::Spin && first.model == Some("async");
            OverheadRow {
                scale,
                workload,
                model,
                tasks: first.tasks,
                slots,
                reps: reps.len(),
                ideal_s: ideal,
                overhead_us: wall.map(|w| per_task_s(w.median, ideal, first.tasks) * 1e6),
                beyond_tasks_us: wall.filter(|_| !overlapping).and_then(|_| median(&beyond)),
                wall,
                failed,
            }
        })
        .collect()
}

pub const HEADERS: [&str; 8] = [
    "task",
    "model",
    "slots",
    "tasks",
    "wall s",
    "ideal s",
    "overhead us/task",
    "beyond tasks' own time us/task",
];

pub fn cells(r: &OverheadRow) -> [String; 8] {
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    [
        r.task_name(),
        r.model.clone(),
        r.slots.to_string(),
        thousands(r.tasks as f64),
        match (&r.failed, r.wall) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(w)) => format!("{:.3}", w.median),
            (None, None) => "FAILED".to_string(),
        },
        format!("{:.3}", r.ideal_s),
        us(r.overhead_us),
        us(r.beyond_tasks_us),
    ]
}

pub fn render_table(rows: &[OverheadRow]) -> String {
    let all: Vec<[String; 8]> = rows.iter().map(cells).collect();
    let lines = aligned_lines(HEADERS, &all, |i| i >= 2);
    let mut out = lines[0].clone();
    let many_scales = rows.iter().any(|r| r.scale != rows[0].scale);
    let mut scale = None;
    for (r, line) in rows.iter().zip(&lines[1..]) {
        if many_scales && scale != Some(r.scale) {
            out.push_str(&format!("-- {} worker(s) --\n", r.scale));
            scale = Some(r.scale);
        }
        out.push_str(line);
    }
    out
}

/// What the overhead columns mean.
pub const LEGEND: &[&str] = &[
    "overhead = (wall - ideal) / tasks, ideal = tasks x task time / slots (noop: 0; spin: 1 ms of CPU).",
    "slots: tasks that can run at once (as many slots as cores, no job cap, so workers queue tasks ahead);",
    "  spins on async slots take turns on the worker's one event-loop thread, so they count 1 slot per worker.",
    "beyond tasks' own time: the same with ideal = the tasks' reported wall time / slots (a spin preempted",
    "  by a neighbour takes longer than 1 ms: the busy machine's share, not brigade's). Not for async spins:",
    "  spins in flight on one event loop count each other's turns in their own times.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(w: WorkloadId, model: &'static str, tasks: u64, wall: f64, task_wall: f64) -> RunRecord {
        RunRecord {
            scale: 1,
            workload: w,
            label: model.into(),
            model: Some(model),
            rep: 0,
            in_flight: 2,
            tasks,
            chunk: 1,
            represents: tasks,
            wall_s: wall,
            cpu_s: None,
            cores: 2,
            peak_rss_bytes: None,
            task_cpu_s: task_wall,
            task_wall_s: task_wall,
            error: None,
        }
    }

    #[test]
    fn overhead_is_wall_beyond_the_ideal_per_task() {
        // 2,000 spins of 1 ms on 2 slots: ideal 1 s; 1.2 s wall = 100 us each.
        assert!((ideal_s(2_000, 1e-3, 2) - 1.0).abs() < 1e-12);
        assert!((per_task_s(1.2, 1.0, 2_000) - 100e-6).abs() < 1e-12);
        // No-ops: the ideal is 0, so overhead = wall / tasks.
        assert_eq!(ideal_s(20_000, 0.0, 2), 0.0);
        assert!((per_task_s(0.2, 0.0, 20_000) - 10e-6).abs() < 1e-15);
        assert_eq!(slots_at_once(WorkloadId::Spin, Some("async"), 4, 2), 2);
        assert_eq!(slots_at_once(WorkloadId::Spin, Some("thread"), 4, 2), 4);
        assert_eq!(slots_at_once(WorkloadId::Noop, Some("async"), 4, 2), 4);
        let async_spin = run(WorkloadId::Spin, "async", 200, 0.25, 0.4);
        let (ideal, us) = of_run(&async_spin);
        assert!((ideal - 0.2).abs() < 1e-12);
        assert!((us - 250.0).abs() < 1e-9);
        let row = &summarise(&[async_spin])[0];
        assert_eq!(row.slots, 1);
        assert!((row.overhead_us.unwrap() - 250.0).abs() < 1e-9);
        assert_eq!(row.beyond_tasks_us, None);
    }

    #[test]
    fn rows_take_the_median_and_a_failed_rep_fails_the_row() {
        let mut runs = vec![
            run(WorkloadId::Spin, "thread", 2_000, 1.3, 2.1),
            run(WorkloadId::Spin, "thread", 2_000, 1.2, 2.2),
            run(WorkloadId::Spin, "thread", 2_000, 1.1, 2.1),
            run(WorkloadId::Noop, "process", 20_000, 0.4, 0.0),
        ];
        let mut bad = run(WorkloadId::Noop, "async", 20_000, 0.1, 0.0);
        bad.error = Some("timed out".into());
        runs.push(bad);
        let rows = summarise(&runs);
        assert_eq!(rows.len(), 3);
        let t = &rows[0];
        assert_eq!((t.reps, t.slots), (3, 2));
        assert!((t.overhead_us.unwrap() - 100.0).abs() < 1e-9);
        // Against the tasks' own time, per rep: (1.3 - 2.1 / 2) / 2000 = 125 us,
        // (1.2 - 2.2 / 2) / 2000 = 50 us, (1.1 - 2.1 / 2) / 2000 = 25 us.
        assert!((t.beyond_tasks_us.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(t.task_name(), "spin 1 ms");
        assert!((rows[1].overhead_us.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(rows[2].overhead_us, None);
        let table = render_table(&rows);
        assert!(table.contains("FAILED: timed out"), "{table}");
        assert!(table.lines().nth(1).unwrap().starts_with("spin 1 ms"));
        assert!(table.contains("100.0"), "{table}");
    }

    #[test]
    fn every_model_gets_noops_then_spins_on_core_sized_slots() {
        let caps = Caps {
            cpu: 2,
            io: 32,
            async_wide: 200,
            slots_bound: true,
        };
        let p = plans(Size::Full, &Model::ALL, caps);
        assert_eq!(p.len(), 6);
        assert!(p[..3].iter().all(|j| j.workload == WorkloadId::Noop));
        assert_eq!(p[0].tasks(), 20_000);
        assert_eq!(p[3].tasks(), 2_000);
        assert!(p.iter().all(|j| j.in_flight == 2 && j.uncapped));
        let spin = p[3].submit_args("");
        assert_eq!(spin.workload, "spin");
        assert_eq!(spin.args, vec![("ms".to_string(), "1".to_string())]);
        assert_eq!(spin.max_in_flight, 0);
    }
}
