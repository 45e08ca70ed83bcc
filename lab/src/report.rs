//! The report maths of `brigade bench`: medians and spreads over repetitions,
//! rates, speedup and parallel efficiency against the one shared serial
//! baseline (per chunk width for W_GRAIN), the ratio to the in-process limit,
//! the verdict per workload (among the forced models, ties within the
//! run-to-run spread), how `--model auto` did against it, W_GRAIN's smallest
//! efficient chunk width, and the physics checks: a CPU row faster than its
//! cores allow is a measurement anomaly, flagged and never ranked.
//! Pure: runs in, rows out; the text table is rendered here too.

use std::collections::BTreeMap;

use super::plan::{
    is_auto, is_baseline, is_python, is_serial, label_model, width_label, WorkloadId, BASELINE,
    IN_PROCESS, PYTHON_SERIAL,
};

/// One measured run (one repetition of one row), with every raw figure.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Workers in the cluster.
    pub scale: u32,
    pub workload: WorkloadId,
    pub label: String,
    /// `process` / `thread` / `async`; `None` for the in-process reference.
    pub model: Option<&'static str>,
    pub rep: u32,
    /// Tasks the job may run at once (the `p` of efficiency).
    pub in_flight: u32,
    pub tasks: u64,
    /// Chunk width (W_GRAIN's x axis; 1 for the per-task workloads).
    pub chunk: u64,
    /// Tasks of the whole workload this run's rate stands for.
    pub represents: u64,
    pub wall_s: f64,
    /// CPU seconds of coordinator, workers and executors (not the io-target);
    /// `None` against a remote cluster.
    pub cpu_s: Option<f64>,
    pub cores: usize,
    /// Peak of the summed resident memory of the cluster's processes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU and wall time the tasks themselves reported (sums over tasks).
    pub task_cpu_s: f64,
    pub task_wall_s: f64,
    /// Why the run is not a number: job failed, results wrong, timed out.
    pub error: Option<String>,
    /// `--model auto` runs: the model the coordinator routed the job to
    /// (JobInfo.model once the probes were measured).
    pub routed_to: Option<&'static str>,
    /// `--model auto` runs: why, as the coordinator said (JobInfo.routing).
    pub routing: Option<String>,
}

impl RunRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// CPU time / (wall × cores): 1.0 is every core busy for the whole run.
    pub fn cpu_util(&self) -> Option<f64> {
        self.cpu_s
            .map(|c| c / (self.wall_s.max(1e-9) * self.cores.max(1) as f64))
    }
}

/// Median and range of repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The median (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn spread(xs: &[f64]) -> Option<Spread> {
    Some(Spread {
        median: median(xs)?,
        min: xs.iter().copied().fold(f64::INFINITY, f64::min),
        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// T1 / Tp expressed with rates so that runs of different task counts compare
/// (the scaled serial prefix, the 10,000-task wide async run).
pub fn speedup(rate: f64, baseline_rate: f64) -> f64 {
    rate / baseline_rate
}

/// Parallel efficiency T1 / (p · Tp) = speedup / p.
pub fn efficiency(speedup: f64, p: u32) -> f64 {
    speedup / p.max(1) as f64
}

/// One table row: the repetitions of one (scale, workload, label).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub scale: u32,
    pub workload: WorkloadId,
    pub label: String,
    pub model: Option<&'static str>,
    pub in_flight: u32,
    pub tasks: u64,
    pub chunk: u64,
    pub reps: usize,
    /// `None` when the row failed.
    pub wall: Option<Spread>,
    pub rate: Option<f64>,
    pub speedup: Option<f64>,
    pub efficiency: Option<f64>,
    /// CPU rows: efficiency / the in-process run's efficiency (1.0 = as good
    /// as a plain thread pool in one process can be on this machine now).
    pub of_limit: Option<f64>,
    pub cpu_util: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Mean wall time of one task as the tasks reported it.
    pub mean_task_ms: Option<f64>,
    /// The serial prefix stands for this many tasks.
    pub scaled_from: Option<u64>,
    /// The first error of any repetition: the whole row is FAILED.
    pub failed: Option<String>,
    /// `auto` rows: the model(s) its repetitions were routed to, in order
    /// of first appearance, joined by `/` (e.g. `process`).
    pub routed_to: Option<String>,
    /// `auto` rows: the first repetition's routing reason.
    pub routing: Option<String>,
    /// `auto` rows: the lowest and highest CPU share the probes measured
    /// over the repetitions (see [`probe_cpu_share`]).
    pub probe_cpu: Option<(f64, f64)>,
    /// What the physics checks found impossible in this row, with its likely
    /// cause (see [`physics_check`]): the row is shown but never ranked.
    pub anomaly: Option<String>,
}

impl Row {
    /// A row of a model the job was forced onto: the rows a verdict ranks.
    pub fn is_model_row(&self) -> bool {
        !is_baseline(&self.label)
            && label_model(&self.label) != IN_PROCESS
            && !is_python(&self.label)
            && !self.is_auto()
    }

    /// A `--model auto` row: judged against the forced models, never ranked.
    pub fn is_auto(&self) -> bool {
        is_auto(&self.label)
    }

    /// The lowest and highest tasks/s of the repetitions (`None`: failed).
    pub fn rate_range(&self) -> Option<(f64, f64)> {
        let w = self.wall?;
        let t = self.tasks as f64;
        Some((t / w.max.max(1e-9), t / w.min.max(1e-9)))
    }
}

/// The highest parallel efficiency a CPU row may show before it is a
/// measurement anomaly: p cores cannot do more than p times the work of one
/// (5% allows for timer and scheduling jitter).
pub const MAX_EFFICIENCY: f64 = 1.05;
/// The highest speedup over serial an async row of a CPU workload may show:
/// one event-loop thread runs on one core.
pub const MAX_ASYNC_CPU_SPEEDUP: f64 = 1.1;
/// What an auto verdict says when the forced rows it would be compared with
/// are all measurement anomalies.
pub const NO_COMPARISON_ANOMALOUS: &str =
    "every forced model's row is a measurement anomaly (not ranked): nothing to compare with";
/// A serial run shorter than this is too short to time other runs against.
pub const MIN_SERIAL_S: f64 = 0.5;
/// Below this ratio two models tie even when one repetition each leaves no
/// spread to compare (run-to-run noise on a shared machine is at least this).
pub const NOISE_FLOOR: f64 = 1.03;

/// The physics checks of one row of a CPU workload against its speedup
/// baseline: efficiency above [`MAX_EFFICIENCY`], or an async row above
/// [`MAX_ASYNC_CPU_SPEEDUP`] times serial, is impossible on real cores, so
/// it says what was measured and the likely cause. `None`: the row is
/// physically possible (or not a CPU row, or has no figure).
pub fn physics_check(row: &Row, baseline: Option<&Row>) -> Option<String> {
    if !row.workload.is_cpu() || is_python(&row.label) {
        return None;
    }
    let (speedup, eff) = (row.speedup?, row.efficiency?);
    let what = if label_model(&row.label) == "async" && speedup > MAX_ASYNC_CPU_SPEEDUP {
        format!(
            "async at {speedup:.2}x serial on CPU work (one event loop runs on one core: at most ~1.0x)"
        )
    } else if eff > MAX_EFFICIENCY {
        format!(
            "efficiency {eff:.2} > {MAX_EFFICIENCY} ({} slot(s) cannot do more than {}x the work of one core)",
            row.in_flight, row.in_flight
        )
    } else {
        return None;
    };
    let cause = match baseline {
        None => "no baseline to compare with".to_string(),
        Some(b) if !is_serial(&b.label) => format!(
            "the baseline is `{}`, which pays brigade's per-task round trip, not a serial loop",
            b.label
        ),
        Some(b) => match b.wall {
            Some(w) if w.median < MIN_SERIAL_S => format!(
                "the serial run took {:.3} s, too short to time against (< {MIN_SERIAL_S} s)",
                w.median
            ),
            Some(w) if w.max > w.min * 1.1 => format!(
                "the serial run's repetitions varied {:.0}% ({:.3}..{:.3} s): the machine's load changed",
                (w.max / w.min - 1.0) * 100.0,
                w.min,
                w.max
            ),
            _ => "the machine's load or clock speed changed between runs (a shared machine)"
                .to_string(),
        },
    };
    Some(format!(
        "measurement anomaly: {what}; likely cause: {cause}"
    ))
}

type Key = (u32, WorkloadId, u64, String);

/// The speedup baseline of `of` among `rows`: the true serial run
/// (`serial`, W_GRAIN's `serial c=...` at the same chunk width) where one was
/// measured, else `1 slot` (no-op and I/O workloads, a user's job), at
/// whichever scale it was measured (it is shared by every scale). Python
/// rows compare with Python's own serial loop.
pub fn baseline_of<'a>(of: &Row, rows: &'a [Row]) -> Option<&'a Row> {
    let same = |r: &&Row| r.workload == of.workload && r.chunk == of.chunk;
    if is_python(&of.label) {
        return rows.iter().filter(same).find(|r| r.label == PYTHON_SERIAL);
    }
    rows.iter()
        .filter(same)
        .find(|r| is_serial(&r.label))
        .or_else(|| rows.iter().filter(same).find(|r| r.label == BASELINE))
}

/// Groups runs into rows (in first-seen order) and fills in the derived
/// figures against each row's baseline ([`baseline_of`]), then runs the
/// physics checks ([`physics_check`]).
pub fn summarise(runs: &[RunRecord]) -> Vec<Row> {
    let mut order: Vec<Key> = Vec::new();
    let mut groups: BTreeMap<Key, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        let key = (r.scale, r.workload, r.chunk, r.label.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    let mut rows: Vec<Row> = order.iter().map(|k| base_row(&groups[k])).collect();
    for i in 0..rows.len() {
        let b = baseline_of(&rows[i], &rows).and_then(|b| b.rate);
        if let (Some(rate), Some(b)) = (rows[i].rate, b) {
            let s = speedup(rate, b);
            rows[i].speedup = Some(s);
            rows[i].efficiency = Some(efficiency(s, rows[i].in_flight));
        }
    }
    for i in 0..rows.len() {
        let limit = rows
            .iter()
            .find(|r| {
                r.scale == rows[i].scale
                    && r.workload == rows[i].workload
                    && r.chunk == rows[i].chunk
                    && label_model(&r.label) == IN_PROCESS
            })
            .and_then(|r| r.efficiency);
        if rows[i].workload.is_cpu() && (rows[i].is_model_row() || rows[i].is_auto()) {
            if let (Some(e), Some(l)) = (rows[i].efficiency, limit) {
                rows[i].of_limit = Some(e / l);
            }
        }
    }
    for i in 0..rows.len() {
        rows[i].anomaly = physics_check(&rows[i], baseline_of(&rows[i], &rows));
    }
    rows
}

fn base_row(reps: &[&RunRecord]) -> Row {
    let first = reps[0];
    let failed = reps.iter().find_map(|r| r.error.clone());
    let walls: Vec<f64> = reps.iter().map(|r| r.wall_s).collect();
    let wall = if failed.is_none() {
        spread(&walls)
    } else {
        None
    };
    let utils: Vec<f64> = reps.iter().filter_map(|r| r.cpu_util()).collect();
    let task_ms: Vec<f64> = reps
        .iter()
        .map(|r| r.task_wall_s * 1e3 / r.tasks.max(1) as f64)
        .collect();
    let ok = failed.is_none();
    let mut routed: Vec<&str> = Vec::new();
    for m in reps.iter().filter_map(|r| r.routed_to) {
        if !routed.contains(&m) {
            routed.push(m);
        }
    }
    Row {
        scale: first.scale,
        workload: first.workload,
        label: first.label.clone(),
        model: first.model,
        in_flight: first.in_flight,
        tasks: first.tasks,
        chunk: first.chunk,
        reps: reps.len(),
        rate: wall.map(|w| first.tasks as f64 / w.median.max(1e-9)),
        wall,
        speedup: None,
        efficiency: None,
        of_limit: None,
        cpu_util: if ok { median(&utils) } else { None },
        peak_rss_bytes: reps.iter().filter_map(|r| r.peak_rss_bytes).max(),
        // The in-process run has no tasks reporting their own time.
        mean_task_ms: (ok && first.model.is_some() && reps.iter().any(|r| r.task_wall_s > 0.0))
            .then(|| median(&task_ms))
            .flatten(),
        scaled_from: (first.represents != first.tasks).then_some(first.represents),
        failed,
        routed_to: (!routed.is_empty()).then(|| routed.join("/")),
        routing: reps.iter().find_map(|r| r.routing.clone()),
        probe_cpu: reps
            .iter()
            .filter_map(|r| r.routing.as_deref().and_then(probe_cpu_share))
            .fold(None, |acc: Option<(f64, f64)>, x| {
                Some(acc.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
            }),
        anomaly: None,
    }
}

/// Which model won a workload at one scale, and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub scale: u32,
    pub workload: WorkloadId,
    /// `(row label, tasks/s)` of the fastest model row.
    pub winner: Option<(String, f64)>,
    /// The best row of a *different* model.
    pub runner_up: Option<(String, f64)>,
    /// Model rows that failed (they cannot win).
    pub failed: Vec<String>,
    /// Model rows flagged as measurement anomalies (they are not ranked).
    pub anomalies: Vec<String>,
    /// The winner and the runner-up are within the run-to-run spread: their
    /// rates' ranges over the repetitions overlap, or (one repetition) they
    /// are less than [`NOISE_FLOOR`] apart.
    pub tie: bool,
    /// W_GRAIN: instead of a winner, how small a chunk each model (and the
    /// in-process pool) still runs efficiently.
    pub grain: Vec<GrainThreshold>,
    /// How the `auto` row did against the forced models, when it ran.
    pub auto: Option<AutoVerdict>,
}

/// `--model auto` against the best forced model of its workload at the same
/// in-flight cap (the verdict's winner, unless that is a row with another
/// cap such as W_SLOWIO's wide async row).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoVerdict {
    /// The auto row's label and tasks/s (`None`: it failed).
    pub label: String,
    pub rate: Option<f64>,
    pub in_flight: u32,
    /// The model(s) the coordinator routed it to (`process`, `async`).
    pub routed_to: Option<String>,
    /// What the coordinator said about its probes (first repetition).
    pub routing: Option<String>,
    /// The probes' CPU share, lowest and highest over the repetitions.
    pub probe_cpu: Option<(f64, f64)>,
    /// `(label, tasks/s)` of the best forced row with the same cap.
    pub best: Option<(String, f64)>,
    /// Whether `best` is the verdict's winner.
    pub best_is_winner: bool,
    /// Forced rows with the same cap ran, but every one is a measurement
    /// anomaly (not ranked), so `best` is `None`.
    pub forced_anomalous: bool,
    /// Why the auto row has no figure.
    pub failed: Option<String>,
}

/// The probes' CPU per wall time from a routing reason such as "auto: 4
/// probe tasks on thread slots used 98% CPU per wall second, ...": the first
/// number followed by `%`, as a fraction.
pub fn probe_cpu_share(routing: &str) -> Option<f64> {
    routing.split_whitespace().find_map(|word| {
        let pct = word.trim_end_matches([',', ';', ')']).strip_suffix('%')?;
        pct.parse::<f64>().ok().map(|p| p / 100.0)
    })
}

/// "probes: CPU 98% of wall", or "probes: CPU 17-61% of wall" when the
/// repetitions measured different shares.
pub fn probes_text(probe_cpu: Option<(f64, f64)>) -> Option<String> {
    let (lo, hi) = probe_cpu?;
    let (lo, hi) = ((lo * 100.0).round(), (hi * 100.0).round());
    Some(if lo == hi {
        format!("probes: CPU {lo:.0}% of wall")
    } else {
        format!("probes: CPU {lo:.0}-{hi:.0}% of wall")
    })
}

impl AutoVerdict {
    /// Whether the repetitions went to different models (e.g.
    /// `async/process`).
    pub fn mixed(&self) -> bool {
        self.routed_to.as_deref().is_some_and(|m| m.contains('/'))
    }

    /// auto's tasks/s over the best forced model's (1.0: as good as the best
    /// choice a user could have forced); `None` when either has no figure.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.rate? / self.best.as_ref()?.1)
    }

    /// Whether auto routed to the model of the best forced row (`None` when
    /// its repetitions went to different models: neither yes nor no).
    pub fn picked_best(&self) -> Option<bool> {
        let best = self.best.as_ref()?;
        if self.mixed() {
            return None;
        }
        Some(self.routed_to.as_deref()? == label_model(&best.0))
    }

    /// e.g. "auto: routed to process (probes: CPU 98% of wall) — 0.97x the
    /// winner (process)"; a failed run says FAILED and why, never a number.
    pub fn text(&self) -> String {
        let routed = match (&self.routed_to, probes_text(self.probe_cpu), &self.routing) {
            (Some(m), Some(probes), _) => format!("routed to {m} ({probes})"),
            (Some(m), None, Some(why)) => format!("routed to {m} ({why})"),
            (Some(m), None, None) => format!("routed to {m}"),
            (None, _, _) => "not routed".to_string(),
        };
        if let Some(e) = &self.failed {
            return format!("{}: FAILED: {e}; {routed}", self.label);
        }
        let against = match &self.best {
            Some((l, _)) if self.best_is_winner => format!("the winner ({l})"),
            Some((l, _)) => format!("the best model at p={} ({l})", self.in_flight),
            None => String::new(),
        };
        match self.ratio() {
            Some(x) => format!("{}: {routed} \u{2014} {x:.2}x {against}", self.label),
            None if self.forced_anomalous => {
                format!("{}: {routed}; {NO_COMPARISON_ANOMALOUS}", self.label)
            }
            None => format!(
                "{}: {routed}; no forced model ran to compare with",
                self.label
            ),
        }
    }
}

/// The auto row of (scale, workload) against the best forced row with its cap.
pub fn auto_verdict(
    rows: &[Row],
    scale: u32,
    workload: WorkloadId,
    winner: Option<&str>,
) -> Option<AutoVerdict> {
    let auto = rows
        .iter()
        .find(|r| r.scale == scale && r.workload == workload && r.is_auto())?;
    let forced = || {
        rows.iter().filter(|r| {
            r.scale == scale
                && r.workload == workload
                && r.is_model_row()
                && r.in_flight == auto.in_flight
        })
    };
    let best = forced()
        .filter(|r| r.anomaly.is_none())
        .filter_map(|r| Some((r.label.clone(), r.rate?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let forced_anomalous = best.is_none() && forced().any(|r| r.anomaly.is_some());
    Some(AutoVerdict {
        label: auto.label.clone(),
        rate: auto.rate,
        in_flight: auto.in_flight,
        routed_to: auto.routed_to.clone(),
        routing: auto.routing.clone(),
        probe_cpu: auto.probe_cpu,
        best_is_winner: best.as_ref().map(|b| b.0.as_str()) == winner,
        best,
        forced_anomalous,
        failed: auto
            .failed
            .clone()
            .or_else(|| auto.rate.is_none().then(|| "no figure".to_string())),
    })
}

/// The efficiency W_GRAIN's threshold asks for.
pub const GRAIN_EFFICIENCY: f64 = 0.9;

/// W_GRAIN's answer for one model: the smallest chunk width whose
/// efficiency is still at least [`GRAIN_EFFICIENCY`].
#[derive(Debug, Clone, PartialEq)]
pub struct GrainThreshold {
    /// `process`, `thread`, `async` or `in-process`.
    pub model: String,
    /// Efficiency T1/(p·Tp) ≥ 0.9 absolute.
    pub absolute: Option<u64>,
    /// Efficiency ≥ 0.9 × the in-process pool's at the same width (the
    /// practical limit on a busy machine); `None` for the pool itself.
    pub relative: Option<u64>,
}

/// The smallest width such that `min` holds there and at every wider chunk
/// measured (walking down from the widest; a failed or missing point, or one
/// below `min`, ends the walk): noise at one narrow width cannot make a model
/// look efficient below a width where it was not.
pub fn smallest_good_width(points: &[(u64, Option<f64>)], min: f64) -> Option<u64> {
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| std::cmp::Reverse(p.0));
    let mut best = None;
    for (w, v) in pts {
        match v {
            Some(v) if v >= min => best = Some(w),
            _ => break,
        }
    }
    best
}

/// W_GRAIN thresholds of every model at one scale, in row order.
pub fn grain_thresholds(rows: &[Row], scale: u32) -> Vec<GrainThreshold> {
    let grain: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scale == scale && r.workload == WorkloadId::Grain && !is_baseline(&r.label))
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for r in &grain {
        let m = label_model(&r.label);
        if !models.contains(&m) {
            models.push(m);
        }
    }
    models
        .into_iter()
        .map(|m| {
            let of = |f: fn(&Row) -> Option<f64>| -> Vec<(u64, Option<f64>)> {
                grain
                    .iter()
                    .filter(|r| label_model(&r.label) == m)
                    // An anomalous point is no evidence either way.
                    .map(|r| (r.chunk, f(r).filter(|_| r.anomaly.is_none())))
                    .collect()
            };
            GrainThreshold {
                model: m.to_string(),
                absolute: smallest_good_width(&of(|r| r.efficiency), GRAIN_EFFICIENCY),
                relative: (m != IN_PROCESS)
                    .then(|| smallest_good_width(&of(|r| r.of_limit), GRAIN_EFFICIENCY))
                    .flatten(),
            }
        })
        .collect()
}

fn width_or_none(w: Option<u64>) -> String {
    w.map_or_else(|| "none".to_string(), width_label)
}

impl Verdict {
    /// winner rate / runner-up rate.
    pub fn margin(&self) -> Option<f64> {
        Some(self.winner.as_ref()?.1 / self.runner_up.as_ref()?.1)
    }

    pub fn text(&self) -> String {
        if self.workload == WorkloadId::Grain {
            let abs: Vec<String> = self
                .grain
                .iter()
                .map(|g| format!("{} {}", g.model, width_or_none(g.absolute)))
                .collect();
            let rel: Vec<String> = self
                .grain
                .iter()
                .filter(|g| g.model != IN_PROCESS)
                .map(|g| format!("{} {}", g.model, width_or_none(g.relative)))
                .collect();
            let mut s = format!(
                "smallest chunk with efficiency >= {GRAIN_EFFICIENCY}: {}; with >= {GRAIN_EFFICIENCY} of the in-process limit: {}",
                abs.join(", "),
                rel.join(", ")
            );
            if !self.failed.is_empty() {
                s.push_str(&format!("; FAILED: {}", self.failed.join(", ")));
            }
            return s;
        }
        let mut s = match (&self.winner, &self.runner_up, self.margin()) {
            (Some((w, _)), Some((r, _)), Some(m)) if self.tie => {
                format!("{w} and {r} tie ({m:.2}x, within the run-to-run spread)")
            }
            (Some((w, _)), Some((r, _)), Some(m)) => format!("{w} wins, {m:.2}x {r}"),
            (Some((w, _)), _, _) if !self.anomalies.is_empty() => {
                format!("{w} (the only model with a believable figure)")
            }
            (Some((w, _)), _, _) => format!("{w} (the only model that ran)"),
            (None, _, _) if !self.anomalies.is_empty() => {
                "no verdict: every model row is a measurement anomaly".to_string()
            }
            (None, _, _) if self.failed.is_empty() => "no verdict: no forced model ran".to_string(),
            (None, _, _) => "no verdict: every model run FAILED".to_string(),
        };
        if !self.failed.is_empty() && self.winner.is_some() {
            s.push_str(&format!("; FAILED: {}", self.failed.join(", ")));
        }
        if !self.anomalies.is_empty() {
            s.push_str(&format!(
                "; not ranked (measurement anomaly): {}",
                self.anomalies.join(", ")
            ));
        }
        s
    }
}

/// One verdict per (scale, workload) present in `rows`, in row order.
pub fn verdicts(rows: &[Row]) -> Vec<Verdict> {
    let mut keys: Vec<(u32, WorkloadId)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.scale, r.workload)) {
            keys.push((r.scale, r.workload));
        }
    }
    keys.into_iter()
        .map(|(scale, workload)| {
            let candidates: Vec<&Row> = rows
                .iter()
                .filter(|r| r.scale == scale && r.workload == workload && r.is_model_row())
                .collect();
            let failed = candidates
                .iter()
                .filter(|r| r.failed.is_some())
                .map(|r| r.label.clone())
                .collect();
            let anomalies = candidates
                .iter()
                .filter(|r| r.anomaly.is_some())
                .map(|r| r.label.clone())
                .collect();
            if workload == WorkloadId::Grain {
                // Rates of different widths do not compare: no winner.
                return Verdict {
                    scale,
                    workload,
                    winner: None,
                    runner_up: None,
                    failed,
                    anomalies,
                    tie: false,
                    grain: grain_thresholds(rows, scale),
                    auto: None,
                };
            }
            let mut ranked: Vec<&Row> = candidates
                .iter()
                .copied()
                .filter(|r| r.rate.is_some() && r.anomaly.is_none())
                .collect();
            ranked.sort_by(|a, b| b.rate.unwrap_or(0.0).total_cmp(&a.rate.unwrap_or(0.0)));
            let winner = ranked.first().copied();
            let runner_up = winner.and_then(|w| {
                ranked
                    .iter()
                    .find(|r| label_model(&r.label) != label_model(&w.label))
                    .copied()
            });
            let tie = match (winner.and_then(Row::rate_range), runner_up) {
                (Some((w_lo, _)), Some(r)) => {
                    let (r_rate, (_, r_hi)) =
                        (r.rate.unwrap_or(0.0), r.rate_range().unwrap_or_default());
                    w_lo <= r_hi
                        || winner.and_then(|w| w.rate).unwrap_or(0.0) < r_rate * NOISE_FLOOR
                }
                _ => false,
            };
            let pair = |r: &Row| (r.label.clone(), r.rate.unwrap_or(0.0));
            Verdict {
                scale,
                workload,
                winner: winner.map(pair),
                runner_up: runner_up.map(pair),
                failed,
                anomalies,
                tie,
                grain: Vec::new(),
                auto: auto_verdict(rows, scale, workload, winner.map(|w| w.label.as_str())),
            }
        })
        .collect()
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// Per workload, brigade's fastest model row against Python's fastest row
/// (`--with-python`), e.g. "W_NOOP: brigade thread 13,695 tasks/s, Python
/// py-async 4,270 tasks/s: 3.21x".
pub fn python_comparison(rows: &[Row], scale: u32) -> Vec<String> {
    let mut out = Vec::new();
    for w in WorkloadId::ALL {
        let best = |python: bool| {
            rows.iter()
                .filter(|r| r.scale == scale && r.workload == w)
                .filter(|r| {
                    if python {
                        is_python(&r.label) && r.label != PYTHON_SERIAL
                    } else {
                        r.is_model_row()
                    }
                })
                .filter_map(|r| Some((r.label.as_str(), r.rate?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        if let (Some(b), Some(p)) = (best(false), best(true)) {
            out.push(format!(
                "{}: brigade {} {} tasks/s, Python {} {} tasks/s: {:.2}x",
                w.name(),
                b.0,
                thousands(b.1),
                p.0,
                thousands(p.1),
                b.1 / p.1
            ));
        }
    }
    out
}

/// Human-readable count: 1,234,567.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// The column texts of a row (shared by the terminal table and the HTML).
pub fn cells(r: &Row) -> [String; 11] {
    let mut notes: Vec<String> = Vec::new();
    if let Some(e) = &r.failed {
        notes.push(format!("FAILED: {e}"));
    }
    if let Some(a) = &r.anomaly {
        let what = a.strip_prefix("measurement anomaly: ").unwrap_or(a);
        notes.push(format!("ANOMALY: {what}"));
    }
    if let Some(n) = r.scaled_from {
        notes.push(if r.workload == WorkloadId::Grain {
            // Every row of the width runs the same prefix as its baseline.
            format!(
                "prefix: {} of {} tasks",
                thousands(r.tasks as f64),
                thousands(n as f64)
            )
        } else {
            format!("{} of {} tasks, scaled", r.tasks, thousands(n as f64))
        });
    }
    if let Some(l) = r.of_limit {
        notes.push(format!("{l:.2} of in-process limit"));
    }
    if let Some(m) = &r.routed_to {
        notes.push(match probes_text(r.probe_cpu) {
            Some(probes) => format!("routed to {m} ({probes})"),
            None => format!("routed to {m}"),
        });
    }
    let note = notes.join("; ");
    [
        r.workload.name().to_string(),
        r.label.clone(),
        r.in_flight.to_string(),
        thousands(r.tasks as f64),
        match (&r.failed, r.wall) {
            (Some(_), _) | (_, None) => "FAILED".into(),
            (None, Some(w)) if r.reps > 1 => {
                format!("{:.3} ({:.3}..{:.3})", w.median, w.min, w.max)
            }
            (None, Some(w)) => format!("{:.3}", w.median),
        },
        opt(r.rate, thousands),
        opt(r.speedup, |s| format!("{s:.2}x")),
        // `!` marks a figure the physics checks rejected (see the note).
        opt(r.efficiency, |e| {
            format!("{e:.3}{}", if r.anomaly.is_some() { "!" } else { "" })
        }),
        opt(r.cpu_util, |u| format!("{:.0}%", u * 100.0)),
        r.peak_rss_bytes
            .map(|b| format!("{:.0}", b as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "-".into()),
        note,
    ]
}

pub const HEADERS: [&str; 11] = [
    "workload",
    "model",
    "p",
    "tasks",
    "wall s median (min..max)",
    "tasks/s",
    "speedup",
    "eff",
    "CPU",
    "RSS MB",
    "note",
];

/// The lines of a text table, header first: every column as wide as its
/// widest cell, two spaces apart, right-aligned where `right(column)`,
/// trailing blanks trimmed (so a last free-text column is never padded).
pub fn aligned_lines<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    right: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut widths = header.map(|h| h.chars().count());
    for c in rows {
        for (w, s) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if right(i) {
                s.push_str(&pad);
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&pad);
            }
            s.push_str("  ");
        }
        s.trim_end().to_string() + "\n"
    };
    std::iter::once(line(&header.map(String::from)))
        .chain(rows.iter().map(|c| line(c)))
        .collect()
}

/// The terminal table: rows grouped by scale and workload, a verdict line
/// after each workload.
pub fn render_table(rows: &[Row], verdicts: &[Verdict]) -> String {
    let all: Vec<[String; 11]> = rows.iter().map(cells).collect();
    // Text columns left, figures right; the last column is free text.
    let lines = aligned_lines(HEADERS, &all, |i| (2..10).contains(&i));
    let mut out = lines[0].clone();
    let verdict_lines = |v: &Verdict| {
        let mut s = format!("  => verdict: {}\n", v.text());
        if let Some(a) = &v.auto {
            s.push_str(&format!("  => {}\n", a.text()));
        }
        s
    };
    let mut current: Option<(u32, WorkloadId)> = None;
    let scales: Vec<u32> = rows.iter().map(|r| r.scale).collect();
    let many_scales = scales.iter().any(|s| *s != scales[0]);
    for (r, line) in rows.iter().zip(&lines[1..]) {
        if current != Some((r.scale, r.workload)) {
            if let Some(v) =
                current.and_then(|k| verdicts.iter().find(|v| (v.scale, v.workload) == k))
            {
                out.push_str(&verdict_lines(v));
            }
            if many_scales && current.map(|k| k.0) != Some(r.scale) {
                out.push_str(&format!("-- {} worker(s) --\n", r.scale));
            }
            current = Some((r.scale, r.workload));
        }
        out.push_str(line);
    }
    if let Some(v) = current.and_then(|k| verdicts.iter().find(|v| (v.scale, v.workload) == k)) {
        out.push_str(&verdict_lines(v));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A W_CPU_HEAVY run on one worker (the plots' tests use it too).
    pub(crate) fn run(
        label: &str,
        model: Option<&'static str>,
        p: u32,
        tasks: u64,
        wall: f64,
    ) -> RunRecord {
        RunRecord {
            scale: 1,
            workload: WorkloadId::CpuHeavy,
            label: label.into(),
            model,
            rep: 0,
            in_flight: p,
            tasks,
            chunk: 1,
            represents: tasks,
            wall_s: wall,
            cpu_s: Some(wall),
            cores: 2,
            peak_rss_bytes: Some(10 << 20),
            task_cpu_s: wall,
            task_wall_s: wall,
            error: None,
            routed_to: None,
            routing: None,
        }
    }

    /// One W_CPU_HEAVY row's repetitions with the given walls.
    fn reps(label: &str, model: Option<&'static str>, p: u32, walls: &[f64]) -> Vec<RunRecord> {
        walls
            .iter()
            .enumerate()
            .map(|(i, &w)| RunRecord {
                rep: i as u32,
                ..run(label, model, p, 40, w)
            })
            .collect()
    }

    #[test]
    fn speedups_use_the_true_serial_run_and_one_slot_is_a_row_of_its_own() {
        // serial 2.0 s; one slot through brigade 2.1 s (its round trips);
        // the pool 1.04 s, process 1.06 s on 2 cores.
        let runs: Vec<RunRecord> = [
            reps("serial", None, 1, &[2.0, 2.01, 1.99]),
            reps("1 slot", Some("thread"), 1, &[2.1, 2.1, 2.12]),
            reps("process", Some("process"), 2, &[1.06, 1.05, 1.07]),
            reps("in-process", None, 2, &[1.04, 1.03, 1.05]),
        ]
        .concat();
        let rows = summarise(&runs);
        let r = |l: &str| rows.iter().find(|r| r.label == l).unwrap();
        assert_eq!(baseline_of(r("process"), &rows).unwrap().label, "serial");
        assert_eq!(baseline_of(r("1 slot"), &rows).unwrap().label, "serial");
        assert_eq!(r("serial").speedup, Some(1.0));
        // One slot is slower than the plain loop: speedup below 1.
        assert!((r("1 slot").speedup.unwrap() - 2.0 / 2.1).abs() < 1e-9);
        assert!((r("process").efficiency.unwrap() - 2.0 / (2.0 * 1.06)).abs() < 1e-9);
        // The limit is the pool's measured efficiency, not 1.0.
        let limit = 2.0 / (2.0 * 1.04);
        assert!((r("process").of_limit.unwrap() - (2.0 / 2.12) / limit).abs() < 1e-9);
        assert!(rows.iter().all(|r| r.anomaly.is_none()), "{rows:#?}");
        // Without a serial row (I/O, no-op) `1 slot` stays the baseline.
        let io = summarise(&[
            run("1 slot", Some("thread"), 1, 40, 8.0),
            run("thread", Some("thread"), 32, 40, 1.0),
        ]);
        assert_eq!(baseline_of(&io[1], &io).unwrap().label, "1 slot");
        assert_eq!(io[1].speedup, Some(8.0));
    }

    #[test]
    fn impossible_cpu_figures_are_flagged_with_a_cause_and_never_ranked() {
        // The quick report's case: a one-slot baseline inflated by round
        // trips makes the pool reach 2.17 and async 1.47x.
        let inflated = summarise(&[
            run("1 slot", Some("thread"), 1, 40, 0.217),
            run("process", Some("process"), 2, 40, 0.06),
            run("thread", Some("thread"), 2, 40, 0.07),
            run("async", Some("async"), 2, 40, 0.1476),
            run("in-process", None, 2, 40, 0.05),
        ]);
        let r = |rows: &[Row], l: &str| rows.iter().find(|r| r.label == l).unwrap().clone();
        let pool = r(&inflated, "in-process");
        assert!((pool.efficiency.unwrap() - 2.17).abs() < 1e-9);
        let why = pool.anomaly.expect("2.17 is flagged");
        assert!(why.contains("efficiency 2.17 > 1.05"), "{why}");
        assert!(why.contains("per-task round trip"), "{why}");
        let a = r(&inflated, "async")
            .anomaly
            .expect("async 1.47x is flagged");
        assert!(a.contains("async at 1.47x serial"), "{a}");
        assert!(r(&inflated, "process").anomaly.is_some());
        assert!(cells(&r(&inflated, "async"))[7].ends_with('!'));
        assert!(cells(&r(&inflated, "async"))[10].starts_with("ANOMALY: async at 1.47x serial"));
        // Every model row is anomalous: no verdict is drawn from them.
        let v = &verdicts(&inflated)[0];
        assert_eq!(v.winner, None);
        assert_eq!(v.anomalies, ["process", "thread", "async"]);
        assert!(v
            .text()
            .starts_with("no verdict: every model row is a measurement anomaly"));

        // With a true serial run, one anomalous row is left out of the
        // ranking and the verdict says so; the short serial run is the cause.
        let mut runs = vec![
            run("serial", None, 1, 40, 0.2),
            run("process", Some("process"), 2, 40, 0.104),
            run("thread", Some("thread"), 2, 40, 0.125),
            run("async", Some("async"), 2, 40, 0.09),
        ];
        runs.iter_mut().for_each(|r| r.workload = WorkloadId::Cpu);
        let rows = summarise(&runs);
        let a = r(&rows, "async")
            .anomaly
            .expect("async faster than 1.1x serial");
        assert!(a.contains("too short to time against"), "{a}");
        assert!(r(&rows, "process").anomaly.is_none());
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "process");
        assert_eq!(v.runner_up.as_ref().unwrap().0, "thread");
        assert_eq!(
            v.text(),
            "process wins, 1.20x thread; not ranked (measurement anomaly): async"
        );
        // I/O rows are not CPU-bound: no such limit applies.
        let mut io = vec![
            run("1 slot", Some("thread"), 1, 40, 8.0),
            run("async", Some("async"), 32, 40, 0.1),
        ];
        io.iter_mut().for_each(|r| r.workload = WorkloadId::FastIo);
        assert!(summarise(&io).iter().all(|r| r.anomaly.is_none()));
    }

    #[test]
    fn models_within_the_run_to_run_spread_tie() {
        let runs: Vec<RunRecord> = [
            reps("serial", None, 1, &[2.0, 2.0, 2.0]),
            // Overlapping ranges: 1.02..1.10 and 1.05..1.12.
            reps("process", Some("process"), 2, &[1.02, 1.06, 1.10]),
            reps("thread", Some("thread"), 2, &[1.05, 1.08, 1.12]),
            reps("async", Some("async"), 2, &[2.0, 2.02, 2.04]),
        ]
        .concat();
        let v = &verdicts(&summarise(&runs))[0];
        assert!(v.tie);
        assert_eq!(
            v.text(),
            "process and thread tie (1.02x, within the run-to-run spread)"
        );
        // Apart by more than either range: a winner.
        let runs: Vec<RunRecord> = [
            reps("serial", None, 1, &[2.0, 2.0, 2.0]),
            reps("process", Some("process"), 2, &[1.02, 1.04, 1.05]),
            reps("thread", Some("thread"), 2, &[1.20, 1.22, 1.25]),
        ]
        .concat();
        let v = &verdicts(&summarise(&runs))[0];
        assert!(!v.tie);
        assert!(
            v.text().starts_with("process wins, 1.17x thread"),
            "{}",
            v.text()
        );
        // One repetition each: within the noise floor is a tie.
        let one = summarise(&[
            run("serial", None, 1, 40, 2.0),
            run("process", Some("process"), 2, 40, 1.04),
            run("thread", Some("thread"), 2, 40, 1.06),
        ]);
        assert!(verdicts(&one)[0].tie);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
    }

    #[test]
    fn speedup_and_efficiency_follow_t1_over_p_tp() {
        // T1 = 8 s, T2 = 4.2 s for 40 tasks.
        let s = speedup(40.0 / 4.2, 40.0 / 8.0);
        assert!((s - 8.0 / 4.2).abs() < 1e-12);
        assert!((efficiency(s, 2) - 8.0 / (2.0 * 4.2)).abs() < 1e-12);
        assert_eq!(efficiency(3.0, 0), 3.0);
    }

    #[test]
    fn rows_use_the_median_and_the_shared_baseline() {
        let mut runs = vec![
            run("1 slot", Some("thread"), 1, 40, 8.0),
            run("process", Some("process"), 2, 40, 4.0),
            run("process", Some("process"), 2, 40, 5.0),
            run("process", Some("process"), 2, 40, 4.4),
            run("in-process", None, 2, 40, 4.1),
        ];
        // A later scale has no baseline of its own: it shares scale 1's.
        let mut later = run("process", Some("process"), 4, 40, 8.0);
        later.scale = 2;
        runs.push(later);
        let rows = summarise(&runs);
        assert_eq!(rows.len(), 4);
        let p = &rows[1];
        assert_eq!(p.reps, 3);
        assert_eq!(p.wall.unwrap().median, 4.4);
        assert_eq!(p.wall.unwrap().min, 4.0);
        assert!((p.speedup.unwrap() - 8.0 / 4.4).abs() < 1e-9);
        assert!((p.efficiency.unwrap() - 8.0 / 8.8).abs() < 1e-9);
        let limit_eff = 8.0 / (2.0 * 4.1);
        assert!((p.of_limit.unwrap() - (8.0 / 8.8) / limit_eff).abs() < 1e-9);
        assert_eq!(rows[2].of_limit, None);
        assert!((rows[3].efficiency.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(rows[0].speedup, Some(1.0));
    }

    #[test]
    fn a_scaled_prefix_baseline_compares_by_rate() {
        let mut b = run("1 slot", Some("thread"), 1, 20, 2.0);
        b.workload = WorkloadId::SlowIo;
        b.represents = 2000;
        let mut a = run("async", Some("async"), 32, 2000, 6.5);
        a.workload = WorkloadId::SlowIo;
        let rows = summarise(&[b, a]);
        assert_eq!(rows[0].scaled_from, Some(2000));
        // T1 stands for 200 s: speedup 200 / 6.5.
        assert!((rows[1].speedup.unwrap() - 200.0 / 6.5).abs() < 1e-9);
    }

    #[test]
    fn one_failed_repetition_fails_the_row_and_it_cannot_win() {
        let mut bad = run("thread", Some("thread"), 2, 40, 1.0);
        bad.error = Some("task 3 returned 0".into());
        let runs = vec![
            run("1 slot", Some("thread"), 1, 40, 8.0),
            run("process", Some("process"), 2, 40, 4.0),
            run("thread", Some("thread"), 2, 40, 1.0),
            bad,
            run("async", Some("async"), 2, 40, 8.0),
        ];
        let rows = summarise(&runs);
        let t = rows.iter().find(|r| r.label == "thread").unwrap();
        assert!(t.failed.is_some());
        assert_eq!(t.rate, None);
        assert_eq!(cells(t)[4], "FAILED");
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "process");
        assert_eq!(v.runner_up.as_ref().unwrap().0, "async");
        assert!((v.margin().unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(v.text(), "process wins, 2.00x async; FAILED: thread");
    }

    #[test]
    fn the_runner_up_is_another_model_not_a_variant_of_the_winner() {
        let mk = |label: &str, model, wall| {
            let mut r = run(label, Some(model), 32, 2000, wall);
            r.workload = WorkloadId::SlowIo;
            r
        };
        let rows = summarise(&[
            mk("async C=2000", "async", 0.2),
            mk("async", "async", 6.4),
            mk("thread", "thread", 6.5),
        ]);
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "async C=2000");
        assert_eq!(v.runner_up.as_ref().unwrap().0, "thread");
        let all_failed = summarise(&[{
            let mut r = mk("async", "async", 1.0);
            r.error = Some("timeout".into());
            r
        }]);
        assert_eq!(
            verdicts(&all_failed)[0].text(),
            "no verdict: every model run FAILED"
        );
    }

    #[test]
    fn the_smallest_good_width_walks_down_from_the_widest() {
        let pts = |v: &[(u64, Option<f64>)]| v.to_vec();
        // Efficient from 10^8 down to 10^5; 10^3 is noise above 0.9 again.
        let p = pts(&[
            (1_000, Some(0.95)),
            (10_000, Some(0.5)),
            (100_000, Some(0.91)),
            (1_000_000, Some(0.97)),
            (100_000_000, Some(0.99)),
        ]);
        assert_eq!(smallest_good_width(&p, 0.9), Some(100_000));
        assert_eq!(smallest_good_width(&p, 0.98), Some(100_000_000));
        assert_eq!(smallest_good_width(&p, 0.999), None);
        // A failed width ends the walk.
        let f = pts(&[(1_000, Some(0.99)), (10_000, None), (100_000, Some(0.99))]);
        assert_eq!(smallest_good_width(&f, 0.9), Some(100_000));
        assert_eq!(smallest_good_width(&[], 0.9), None);
    }

    #[test]
    fn grain_rows_compare_with_the_serial_run_of_their_own_width() {
        let g = |label: &str, model, p, chunk: u64, tasks, wall| {
            let mut r = run(label, model, p, tasks, wall);
            r.workload = WorkloadId::Grain;
            r.chunk = chunk;
            r
        };
        let runs = vec![
            // 10^3: a prefix of 1,000 tasks; serial 1 s, the pool 0.55 s,
            // process 1.0 s (overhead dominates), thread 0.52 s.
            g("serial c=10^3", None, 1, 1_000, 1_000, 1.0),
            g("process c=10^3", Some("process"), 2, 1_000, 1_000, 1.0),
            g("thread c=10^3", Some("thread"), 2, 1_000, 1_000, 0.52),
            g("in-process c=10^3", None, 2, 1_000, 1_000, 0.55),
            // 10^6: the whole range, 40 tasks; serial 4 s.
            g("serial c=10^6", None, 1, 1_000_000, 40, 4.0),
            g("process c=10^6", Some("process"), 2, 1_000_000, 40, 2.1),
            g("thread c=10^6", Some("thread"), 2, 1_000_000, 40, 2.1),
            g("in-process c=10^6", None, 2, 1_000_000, 40, 2.05),
        ];
        let rows = summarise(&runs);
        let eff = |l: &str| {
            rows.iter()
                .find(|r| r.label == l)
                .unwrap()
                .efficiency
                .unwrap()
        };
        assert!((eff("process c=10^3") - 0.5).abs() < 1e-9);
        assert!((eff("thread c=10^3") - 1.0 / 1.04).abs() < 1e-9);
        assert!((eff("process c=10^6") - 4.0 / 4.2).abs() < 1e-9);
        assert!((eff("serial c=10^6") - 1.0).abs() < 1e-9);
        let v = verdicts(&rows);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].winner, None);
        let t = &v[0].grain;
        let by = |m: &str| t.iter().find(|g| g.model == m).unwrap();
        assert_eq!(by("process").absolute, Some(1_000_000));
        assert_eq!(by("thread").absolute, Some(1_000));
        assert_eq!(by("in-process").absolute, Some(1_000));
        assert_eq!(by("in-process").relative, None);
        // process at 10^3 is 0.5 / 0.909 = 0.55 of the pool: relative 10^6.
        assert_eq!(by("process").relative, Some(1_000_000));
        assert_eq!(
            v[0].text(),
            "smallest chunk with efficiency >= 0.9: process 10^6, thread 10^3, in-process 10^3; \
             with >= 0.9 of the in-process limit: process 10^6, thread 10^3"
        );
        let c = cells(rows.iter().find(|r| r.label == "thread c=10^3").unwrap());
        assert_eq!(c[10], "1.06 of in-process limit");
    }

    #[test]
    fn python_rows_use_their_own_serial_baseline_and_never_win() {
        let py = |label: &str, p, wall| run(label, None, p, 40, wall);
        let rows = summarise(&[
            run("1 slot", Some("thread"), 1, 40, 0.1),
            run("process", Some("process"), 2, 40, 0.05),
            py("py-serial", 1, 3.2),
            py("py-process", 2, 1.6),
            py("py-thread", 2, 3.3),
        ]);
        let r = |l: &str| rows.iter().find(|r| r.label == l).unwrap();
        assert!((r("py-process").speedup.unwrap() - 2.0).abs() < 1e-9);
        assert!((r("py-process").efficiency.unwrap() - 1.0).abs() < 1e-9);
        assert!((r("process").speedup.unwrap() - 2.0).abs() < 1e-9);
        assert!(!r("py-process").is_model_row());
        assert_eq!(r("py-process").of_limit, None);
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "process");
        assert_eq!(v.runner_up, None);
        assert_eq!(
            python_comparison(&rows, 1),
            ["W_CPU_HEAVY: brigade process 800 tasks/s, Python py-process 25 tasks/s: 32.00x"]
        );
    }

    #[test]
    fn table_columns_align_left_or_right_and_lines_end_trimmed() {
        let rows = [
            ["thread".to_string(), "5".to_string(), "x".to_string()],
            [
                "async C=2000".to_string(),
                "1,234".to_string(),
                String::new(),
            ],
        ];
        let lines = aligned_lines(["model", "tasks", "note"], &rows, |i| i == 1);
        assert_eq!(
            lines,
            [
                "model         tasks  note\n",
                "thread            5  x\n",
                "async C=2000  1,234\n",
            ]
        );
    }

    /// An auto run routed by probes that measured `pct`% CPU per wall time.
    fn auto_run(workload: WorkloadId, p: u32, wall: f64, to: &'static str, pct: u32) -> RunRecord {
        let mut r = run("auto", Some("auto"), p, 40, wall);
        r.workload = workload;
        r.routed_to = Some(to);
        r.routing = Some(format!(
            "auto: 4 probe tasks on thread slots used {pct}% CPU per wall second, CPU-bound \u{2192} {to} slots"
        ));
        r
    }

    #[test]
    fn the_probes_share_is_read_from_the_routing_reason() {
        let why = "auto: 4 probe tasks on thread slots used 98% CPU per wall second, CPU-bound";
        assert_eq!(probe_cpu_share(why), Some(0.98));
        assert_eq!(probe_cpu_share("used 7.5%, mostly waiting"), Some(0.075));
        assert_eq!(probe_cpu_share("forced by --model"), None);
        assert_eq!(
            probe_cpu_share("auto: probing 4 tasks on thread slots"),
            None
        );
    }

    #[test]
    fn auto_is_judged_against_the_winner_and_never_wins() {
        // 40 tasks: process 4.0 s (10/s), thread 5.0 s, auto 4.0 / 0.8 = 5.0 s
        // routed to process after probes at 98%.
        let rows = summarise(&[
            run("1 slot", Some("thread"), 1, 40, 8.0),
            run("process", Some("process"), 2, 40, 4.0),
            run("thread", Some("thread"), 2, 40, 5.0),
            auto_run(WorkloadId::CpuHeavy, 2, 4.0 / 0.8, "process", 98),
        ]);
        let auto = rows.iter().find(|r| r.label == "auto").unwrap();
        assert!(auto.is_auto() && !auto.is_model_row());
        assert_eq!(auto.routed_to.as_deref(), Some("process"));
        assert_eq!(
            cells(auto)[10],
            "routed to process (probes: CPU 98% of wall)"
        );
        let v = &verdicts(&rows)[0];
        assert_eq!(v.text(), "process wins, 1.25x thread");
        let a = v.auto.as_ref().unwrap();
        assert!((a.ratio().unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(a.picked_best(), Some(true));
        assert!(a.best_is_winner);
        assert_eq!(
            a.text(),
            "auto: routed to process (probes: CPU 98% of wall) \u{2014} 0.80x the winner (process)"
        );
        let table = render_table(&rows, &verdicts(&rows));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[lines.len() - 2],
            "  => verdict: process wins, 1.25x thread"
        );
        assert_eq!(lines[lines.len() - 1], format!("  => {}", a.text()));

        // Faster than every forced model: still no win, a ratio above 1.
        let rows = summarise(&[
            run("process", Some("process"), 2, 40, 4.0),
            auto_run(WorkloadId::CpuHeavy, 2, 3.2, "async", 10),
        ]);
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "process");
        let a = v.auto.as_ref().unwrap();
        assert!((a.ratio().unwrap() - 1.25).abs() < 1e-9);
        assert_eq!(a.picked_best(), Some(false));
    }

    #[test]
    fn a_failed_auto_run_is_failed_never_a_number() {
        let mut bad = auto_run(WorkloadId::CpuHeavy, 2, 0.5, "process", 98);
        bad.error = Some("job failed: task 3 timed out".into());
        let rows = summarise(&[
            run("process", Some("process"), 2, 40, 4.0),
            auto_run(WorkloadId::CpuHeavy, 2, 4.0, "process", 97),
            bad,
        ]);
        let auto = rows.iter().find(|r| r.label == "auto").unwrap();
        assert_eq!(auto.rate, None);
        assert_eq!(cells(auto)[4], "FAILED");
        let v = &verdicts(&rows)[0];
        // A failed auto row is not a failed model of the verdict.
        assert_eq!(v.text(), "process (the only model that ran)");
        let a = v.auto.as_ref().unwrap();
        assert_eq!(a.ratio(), None);
        assert_eq!(
            a.text(),
            "auto: FAILED: job failed: task 3 timed out; routed to process (probes: CPU 97-98% of wall)"
        );
        assert!(!a.text().contains("0x"));
        // Nothing forced to compare with: no ratio either, and it says so.
        let alone = summarise(&[auto_run(WorkloadId::Noop, 32, 1.0, "process", 50)]);
        assert_eq!(
            verdicts(&alone)[0].text(),
            "no verdict: no forced model ran"
        );
        let a = verdicts(&alone)[0].auto.clone().unwrap();
        assert_eq!(a.ratio(), None);
        assert_eq!(
            a.text(),
            "auto: routed to process (probes: CPU 50% of wall); no forced model ran to compare with"
        );
    }

    #[test]
    fn auto_compares_with_the_best_model_at_its_own_cap() {
        let mk = |label: &str, model, p, wall| {
            let mut r = run(label, Some(model), p, 2000, wall);
            r.workload = WorkloadId::SlowIo;
            r
        };
        let mut auto = auto_run(WorkloadId::SlowIo, 32, 6.6, "async", 1);
        auto.tasks = 2000;
        // Reps routed differently show both models and both shares.
        let mut other = auto_run(WorkloadId::SlowIo, 32, 6.6, "process", 60);
        other.tasks = 2000;
        let rows = summarise(&[
            mk("thread", "thread", 32, 6.5),
            mk("async", "async", 32, 6.6),
            auto,
            other,
            mk("async C=2000", "async", 2000, 0.2),
        ]);
        let v = &verdicts(&rows)[0];
        assert_eq!(v.winner.as_ref().unwrap().0, "async C=2000");
        let a = v.auto.as_ref().unwrap();
        assert_eq!(a.best.as_ref().unwrap().0, "thread");
        assert!(!a.best_is_winner);
        assert_eq!(a.routed_to.as_deref(), Some("async/process"));
        assert!(a.mixed());
        assert_eq!(a.picked_best(), None);
        assert_eq!(a.probe_cpu, Some((0.01, 0.6)));
        assert!(
            a.text()
                .starts_with("auto: routed to async/process (probes: CPU 1-60% of wall) "),
            "{}",
            a.text()
        );
        assert!((a.ratio().unwrap() - 6.5 / 6.6).abs() < 1e-9);
        assert!(
            a.text().ends_with("0.98x the best model at p=32 (thread)"),
            "{}",
            a.text()
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
    }
}
