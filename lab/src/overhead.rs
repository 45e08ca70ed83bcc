//! `brigade bench --overhead`: what brigade adds to every task. No-op tasks
//! (no work at all) and `spin ms=1` tasks (1 ms of CPU each) run on every
//! model with as many slots as the machine has cores and no job cap, and
//! per-task overhead = (wall − ideal) / tasks, where ideal = tasks × task
//! time / slots that can run at once. The single-task round trip (submit a
//! 1-task noop job, follow it to its end, fetch its result; one job after
//! another) is measured per model too: its percentiles are here. Pure:
//! plans, maths and the tables; the runs are measured like every other bench
//! run.

use super::plan::{shape, Caps, RunPlan, Size, WorkloadId, SPIN_MS};
use super::report::{aligned_lines, median, spread, thousands, RunRecord, Spread};
use brigade_proto::v1::Model;

/// The overhead runs: per forced model (not auto: its probes are not
/// overhead), no-ops (W_NOOP's size) then 1 ms spins.
pub fn plans(size: Size, models: &[Model], caps: Caps) -> Vec<RunPlan> {
    let mut out = Vec::new();
    for w in [WorkloadId::Noop, WorkloadId::Spin] {
        let (range, chunk) = shape(w, size, false);
        for &m in models.iter().filter(|m| **m != Model::Auto) {
            out.push(RunPlan {
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

/// Sequential single-task jobs per model: the round trip's samples and the
/// warm-up jobs before them (not counted: executors and connections up).
pub fn round_trip_samples(size: Size) -> (usize, usize) {
    match size {
        Size::Full => (200, 10),
        Size::Quick => (50, 5),
    }
}

/// Issue 5's target for the median round trip on loopback.
pub const ROUND_TRIP_TARGET_US: f64 = 200.0;

/// One single-task job as the client saw it, phase by phase, in µs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RoundTrip {
    /// RunJob called → its first event (the job accepted).
    pub submit_us: f64,
    /// → the event saying the job ended.
    pub watch_us: f64,
    /// → the result delivered and the stream ended.
    pub results_us: f64,
    /// Then one GetJob of the ended job (not in the total): what a unary
    /// call costs by itself, the floor under each phase.
    pub get_job_us: f64,
}

impl RoundTrip {
    pub fn total_us(&self) -> f64 {
        self.submit_us + self.watch_us + self.results_us
    }
}

/// The `q` quantile (0 < q ≤ 1) by nearest rank: the smallest sample with
/// at least q of the samples at or below it (so p99 of 200 samples is the
/// 198th smallest); `None` when empty.
pub fn percentile(xs: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// One model's round trips: percentiles of the whole and medians of the
/// phases, or why it failed (one failed job fails the row: no number).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundTripRow {
    pub scale: u32,
    pub model: String,
    pub warm_ups: usize,
    pub samples: Vec<RoundTrip>,
    pub median_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Medians of the phases (submit, watch to the end, results) and of
    /// the lone GetJob after them.
    pub phase_us: Option<[f64; 4]>,
    pub failed: Option<String>,
}

pub fn summarise_round_trips(
    scale: u32,
    model: &str,
    warm_ups: usize,
    samples: Vec<RoundTrip>,
    failed: Option<String>,
) -> RoundTripRow {
    let ok = failed.is_none() && !samples.is_empty();
    let totals: Vec<f64> = samples.iter().map(RoundTrip::total_us).collect();
    let at = |q: f64| ok.then(|| percentile(&totals, q)).flatten();
    let phase = |f: fn(&RoundTrip) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    let phases = [
        phase(|s| s.submit_us),
        phase(|s| s.watch_us),
        phase(|s| s.results_us),
        phase(|s| s.get_job_us),
    ];
    RoundTripRow {
        scale,
        model: model.to_string(),
        warm_ups,
        median_us: ok.then(|| median(&totals)).flatten(),
        p90_us: at(0.9),
        p99_us: at(0.99),
        phase_us: match (ok, phases) {
            (true, [Some(a), Some(b), Some(c), Some(d)]) => Some([a, b, c, d]),
            _ => None,
        },
        samples,
        failed: failed.or_else(|| (!ok).then(|| "no samples".to_string())),
    }
}

pub const ROUND_TRIP_HEADERS: [&str; 9] = [
    "model",
    "jobs",
    "median us",
    "p90 us",
    "p99 us",
    "accepted us",
    "to end us",
    "results us",
    "one GetJob us",
];

pub fn round_trip_cells(r: &RoundTripRow) -> [String; 9] {
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    let phase = |i: usize| us(r.phase_us.map(|p| p[i]));
    [
        r.model.clone(),
        r.samples.len().to_string(),
        match &r.failed {
            Some(e) => format!("FAILED: {e}"),
            None => us(r.median_us),
        },
        us(r.p90_us),
        us(r.p99_us),
        phase(0),
        phase(1),
        phase(2),
        phase(3),
    ]
}

pub fn render_round_trips(rows: &[RoundTripRow]) -> String {
    let all: Vec<[String; 9]> = rows.iter().map(round_trip_cells).collect();
    aligned_lines(ROUND_TRIP_HEADERS, &all, |i| i >= 1).concat()
}

/// What the round-trip columns mean.
pub const ROUND_TRIP_LEGEND: &[&str] = &[
    "round trip: one job of one noop task at a time through RunJob, the call that submits a job, streams its",
    "  status to the end and then its results (`brigade submit --wait` uses it); the result is checked. The clock",
    "  runs from the call until the result is in hand. Phase columns (accepted, ended, results in hand) are medians",
    "  (they need not add up to the median);",
    "  one GetJob: a lone read-only call after each job, not in the total: the floor under every phase.",
    "  Most of a round trip on a VM is waking halted vCPUs (six wake-ups); `--spin-us 300` keeps one awake",
    "  after each wake-up (BENCHMARKS.md, \"Where the round trip goes\").",
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
            routed_to: None,
            routing: None,
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
    fn percentiles_go_by_nearest_rank() {
        let xs: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert_eq!(percentile(&xs, 0.5), Some(100.0));
        assert_eq!(percentile(&xs, 0.9), Some(180.0));
        assert_eq!(percentile(&xs, 0.99), Some(198.0));
        assert_eq!(percentile(&xs, 1.0), Some(200.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    fn trip(submit_us: f64, watch_us: f64, results_us: f64) -> RoundTrip {
        RoundTrip {
            submit_us,
            watch_us,
            results_us,
            get_job_us: 50.0,
        }
    }

    #[test]
    fn round_trips_give_percentiles_of_the_total_and_phase_medians() {
        // Totals 100, 200, ..., 1000 us.
        let samples: Vec<RoundTrip> = (1..=10)
            .map(|k| {
                trip(
                    20.0 * f64::from(k),
                    50.0 * f64::from(k),
                    30.0 * f64::from(k),
                )
            })
            .collect();
        let r = summarise_round_trips(1, "thread", 5, samples, None);
        assert_eq!(r.median_us, Some(550.0));
        assert_eq!(r.p90_us, Some(900.0));
        assert_eq!(r.p99_us, Some(1000.0));
        assert_eq!(r.phase_us, Some([110.0, 275.0, 165.0, 50.0]));
        assert_eq!(
            round_trip_cells(&r),
            ["thread", "10", "550", "900", "1000", "110", "275", "165", "50"]
        );
        assert_eq!(r.failed, None);
    }

    #[test]
    fn a_failed_round_trip_fails_the_row_without_a_figure() {
        let r = summarise_round_trips(
            1,
            "process",
            5,
            vec![trip(10.0, 20.0, 30.0)],
            Some("job failed: executor died".into()),
        );
        assert_eq!(
            (r.median_us, r.p90_us, r.p99_us, r.phase_us),
            (None, None, None, None)
        );
        let c = round_trip_cells(&r);
        assert_eq!(c[2], "FAILED: job failed: executor died");
        assert!(c[3..].iter().all(|x| x == "-"), "{c:?}");
        let none = summarise_round_trips(1, "async", 5, Vec::new(), None);
        assert_eq!(none.failed.as_deref(), Some("no samples"));
        assert_eq!(none.median_us, None);
        let table = render_round_trips(&[r, none]);
        assert!(table.starts_with("model"), "{table}");
        assert_eq!(table.lines().count(), 3);
    }

    #[test]
    fn every_model_gets_noops_then_spins_on_core_sized_slots() {
        let caps = Caps {
            cpu: 2,
            io: 32,
            async_wide: 200,
            slots_bound: true,
        };
        let mut with_auto = Model::ALL.to_vec();
        with_auto.push(Model::Auto);
        // Auto's probes are not overhead: no auto runs here.
        let p = plans(Size::Full, &with_auto, caps);
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|j| j.model != Some(Model::Auto)));
        assert_eq!(round_trip_samples(Size::Full), (200, 10));
        assert!(p[..3].iter().all(|j| j.workload == WorkloadId::Noop));
        assert_eq!(p[0].tasks(), 20_000);
        assert_eq!(p[3].tasks(), 2_000);
        assert!(p.iter().all(|j| j.in_flight == 2 && j.uncapped));
        let spin = p[3].spec("");
        assert_eq!(spin.workload, "spin");
        assert_eq!(
            spin.args,
            [("ms".to_string(), "1".to_string())].into_iter().collect()
        );
        assert_eq!(spin.max_in_flight, 0);
    }
}
