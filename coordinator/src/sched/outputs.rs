//! A job's outputs kept in memory (a coordinator without a state file),
//! with how each task ran. Columns grow to the highest done index (queued
//! tasks cost nothing) and cost 20 bytes a done task: 8 of output, 8 of run
//! facts, 4 of completion order. W_NOOP_1M keeps a million of them, so the
//! layout is measured (BENCHMARKS.md, "Coordinator instructions per task").
//! When results were recorded costs 8 bytes per distinct time (to 100 µs)
//! a batch of them was recorded at, not per task ([`EndMarks`]).

use std::collections::HashMap;

use brigade_proto::{Output, SlotModel};

use super::{ResultRow, RunInfo, WorkerId};

#[derive(Debug, Default)]
pub(super) struct Outputs {
    /// Per task: its integer output, or, when its bit in `is_wide` is set,
    /// the index of its entry in `wide`.
    cells: Vec<u64>,
    /// One bit per task; empty until the first output that is not an
    /// integer below 2^64.
    is_wide: Vec<u64>,
    wide: Vec<Wide>,
    /// The byte outputs, end to end.
    bytes: Vec<u8>,
    runs: Vec<PackedRun>,
    /// The workers `runs` name, by their place here.
    workers: Workers,
    /// Done task indices in the order they were recorded. Admission keeps
    /// a job's tasks under 2^32.
    order: Vec<u32>,
    /// When they were recorded, by their place in `order`.
    ended: EndMarks,
    tasks: usize,
}

/// An output that does not fit a cell.
#[derive(Debug, Clone, Copy)]
enum Wide {
    Int(u128),
    Bytes { start: usize, len: usize },
}

impl Outputs {
    pub(super) fn new(tasks: usize) -> Outputs {
        Outputs {
            tasks,
            ..Outputs::default()
        }
    }

    /// Makes room for task `i` (doubling, so in-order completion stays
    /// amortised O(1)).
    fn reach(&mut self, i: usize) {
        if i >= self.cells.len() {
            let len = (i + 1).max(self.cells.len() * 2).min(self.tasks);
            self.cells.resize(len, 0);
            self.runs.resize(len, PackedRun::default());
            if !self.is_wide.is_empty() {
                self.is_wide.resize(len.div_ceil(64), 0);
            }
        }
    }

    /// Records task `index`'s output; each task is recorded once.
    pub(super) fn set(&mut self, index: u64, value: &Output, run: RunInfo) {
        let i = index as usize;
        self.reach(i);
        let worker = self.workers.slot(run.worker);
        self.runs[i] = PackedRun::pack(run, worker);
        self.ended.note(self.order.len() as u32, run.ended_us);
        self.order.push(index as u32);
        match value {
            Output::Int(v) if *v <= u128::from(u64::MAX) => self.cells[i] = *v as u64,
            wide => {
                if self.is_wide.is_empty() {
                    self.is_wide = vec![0; self.cells.len().div_ceil(64)];
                }
                self.is_wide[i / 64] |= 1 << (i % 64);
                self.cells[i] = self.wide.len() as u64;
                self.wide.push(match wide {
                    Output::Int(v) => Wide::Int(*v),
                    Output::Bytes(b) => {
                        let start = self.bytes.len();
                        self.bytes.extend_from_slice(b);
                        Wide::Bytes {
                            start,
                            len: b.len(),
                        }
                    }
                });
            }
        }
    }

    fn get(&self, i: usize) -> Output {
        let cell = self.cells[i];
        let wide = self
            .is_wide
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0);
        if !wide {
            return Output::Int(u128::from(cell));
        }
        match self.wide[cell as usize] {
            Wide::Int(v) => Output::Int(v),
            Wide::Bytes { start, len } => Output::Bytes(self.bytes[start..start + len].to_vec()),
        }
    }

    /// Done task indices in the order they were recorded, from the
    /// `skip`th, each with its place in that order.
    pub(super) fn completion_order(
        &self,
        skip: u64,
    ) -> impl Iterator<Item = (u64, Option<u32>)> + '_ {
        let skip = skip.min(self.order.len() as u64) as usize;
        (skip..)
            .zip(&self.order[skip..])
            .map(|(seq, &i)| (u64::from(i), Some(seq as u32)))
    }

    /// The rows of these done tasks, in their order: at most `max`, and no
    /// more once their outputs reach `max_bytes` (at least one). A task
    /// given with its place in the completion order (`Some(seq)`) says
    /// when it was recorded; by index alone (`None`), not (0).
    pub(super) fn rows(
        &self,
        done: impl Iterator<Item = (u64, Option<u32>)>,
        max: usize,
        max_bytes: usize,
    ) -> Vec<ResultRow> {
        let mut rows = Vec::new();
        let mut bytes = 0;
        for (index, seq) in done {
            if rows.len() == max || (!rows.is_empty() && bytes >= max_bytes) {
                break;
            }
            let i = index as usize;
            let value = self.get(i);
            bytes += value.len();
            let mut run = self.runs[i].unpack(&self.workers);
            run.ended_us = seq.map_or(0, |seq| self.ended.at(seq));
            rows.push(ResultRow { index, value, run });
        }
        rows
    }
}

/// When a job's results were recorded, as marks over their completion
/// order: a mark (its first result's place, a time) wherever the time moved
/// on by [`EndMarks::GRAIN_US`] or more. Results are recorded a worker's
/// batch at a time, all at one time, so a mark stands for a batch or more:
/// W_NOOP_1M needs a few thousand marks for its million results
/// (BENCHMARKS.md). A result reads as the time of the last mark at or
/// before it: up to a grain early.
#[derive(Debug, Default)]
struct EndMarks {
    /// The place in the completion order where each mark starts.
    first: Vec<u32>,
    /// Each mark's time in grains after `base_us` ([`Self::UNKNOWN`]:
    /// not known, or more than 2^32 − 2 grains, about 5 days, after).
    grains: Vec<u32>,
    /// The first mark's time (µs since the Unix epoch).
    base_us: u64,
    /// The last time noted: a batch's results after its first cost one
    /// compare.
    last_us: u64,
}

impl EndMarks {
    /// The time resolution (µs).
    const GRAIN_US: u64 = 100;
    const UNKNOWN: u32 = u32::MAX;

    /// Result number `seq` (one more than the last) was recorded at `us`.
    fn note(&mut self, seq: u32, us: u64) {
        if us == self.last_us && !self.first.is_empty() {
            return;
        }
        self.last_us = us;
        if self.first.is_empty() {
            self.base_us = us;
        }
        let grains = match us.checked_sub(self.base_us) {
            // u32::MAX itself is UNKNOWN: that far on is not known either.
            Some(d) if us > 0 => u32::try_from(d / Self::GRAIN_US).unwrap_or(Self::UNKNOWN),
            _ => Self::UNKNOWN,
        };
        if self.grains.last() != Some(&grains) {
            self.first.push(seq);
            self.grains.push(grains);
        }
    }

    /// When result number `seq` was recorded (µs; 0: not known).
    fn at(&self, seq: u32) -> u64 {
        let mark = self.first.partition_point(|&f| f <= seq);
        match mark.checked_sub(1).map(|m| self.grains[m]) {
            Some(g) if g != Self::UNKNOWN => self.base_us + u64::from(g) * Self::GRAIN_US,
            _ => 0,
        }
    }

    #[cfg(test)]
    fn marks(&self) -> usize {
        self.first.len()
    }
}

/// The workers a job's tasks ran on, numbered in the order they first
/// returned a result, so a run names its worker in two bytes. Outcomes
/// come in batches from one worker: the last one looked up is checked
/// first.
#[derive(Debug, Default)]
struct Workers {
    ids: Vec<WorkerId>,
    slots: HashMap<WorkerId, u16>,
    last: u16,
}

impl Workers {
    /// The past the 65,535th distinct worker of one job: shown as not known.
    const NONE: u16 = u16::MAX;

    fn slot(&mut self, worker: WorkerId) -> u16 {
        if self.ids.get(usize::from(self.last)) == Some(&worker) {
            return self.last;
        }
        let slot = match self.slots.get(&worker) {
            Some(&slot) => slot,
            None if self.ids.len() < usize::from(Self::NONE) => {
                let slot = self.ids.len() as u16;
                self.ids.push(worker);
                self.slots.insert(worker, slot);
                slot
            }
            None => return Self::NONE,
        };
        self.last = slot;
        slot
    }

    /// 0 (not known) for [`Self::NONE`].
    fn id(&self, slot: u16) -> WorkerId {
        self.ids.get(usize::from(slot)).copied().unwrap_or(0)
    }
}

/// [`RunInfo`] in 8 bytes: the worker's place in the job's [`Workers`];
/// the attempts (saturating at 8191) and the model's wire value (0: not
/// known) in one word; CPU and wall time as [`Time16`].
#[derive(Debug, Clone, Copy, Default)]
struct PackedRun {
    worker: u16,
    attempts_model: u16,
    cpu: Time16,
    wall: Time16,
}

impl PackedRun {
    const MODEL_BITS: u32 = 3;
    const MAX_ATTEMPTS: u32 = (1 << (16 - Self::MODEL_BITS)) - 1;

    fn pack(r: RunInfo, worker: u16) -> PackedRun {
        let model = r
            .model
            .map_or(0, |m| brigade_proto::v1::Model::from(m) as u16);
        debug_assert!(model < 1 << Self::MODEL_BITS);
        let attempts = r.attempts.min(Self::MAX_ATTEMPTS) as u16;
        PackedRun {
            worker,
            attempts_model: attempts << Self::MODEL_BITS | model,
            cpu: Time16::from_ns(r.cpu_ns),
            wall: Time16::from_ns(r.wall_ns),
        }
    }

    fn unpack(self, workers: &Workers) -> RunInfo {
        let model = self.attempts_model & ((1 << Self::MODEL_BITS) - 1);
        RunInfo {
            attempts: u32::from(self.attempts_model >> Self::MODEL_BITS),
            worker: workers.id(self.worker),
            model: SlotModel::from_wire(i32::from(model)),
            cpu_ns: self.cpu.ns(),
            wall_ns: self.wall.ns(),
            ended_us: 0,
        }
    }
}

/// A duration in 16 bits: below 1,024 ns exact, above it with 11
/// significant bits (a 6-bit exponent over a 10-bit mantissa with an
/// implicit leading one), so within 0.1% below, over the whole u64 range.
/// Results in the state file keep the exact nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Time16(u16);

impl Time16 {
    const MANTISSA_BITS: u32 = 10;

    fn from_ns(ns: u64) -> Time16 {
        let bits = u64::BITS - ns.leading_zeros();
        if bits <= Self::MANTISSA_BITS {
            return Time16(ns as u16);
        }
        // Keep the top 11 bits; the leading one is implied.
        let shift = bits - (Self::MANTISSA_BITS + 1);
        let mantissa = (ns >> shift) as u16 & ((1 << Self::MANTISSA_BITS) - 1);
        Time16(((shift + 1) << Self::MANTISSA_BITS) as u16 | mantissa)
    }

    fn ns(self) -> u64 {
        let exponent = u32::from(self.0 >> Self::MANTISSA_BITS);
        let mantissa = u64::from(self.0 & ((1 << Self::MANTISSA_BITS) - 1));
        match exponent {
            0 => mantissa,
            e => ((1 << Self::MANTISSA_BITS) | mantissa) << (e - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_exact_below_1024_ns_and_within_a_thousandth_above() {
        for ns in 0..4096 {
            let back = Time16::from_ns(ns).ns();
            assert!(back <= ns && ns - back <= ns >> 10, "{ns} -> {back}");
            if ns < 2048 {
                assert_eq!(back, ns);
            }
        }
        let mut ns = 4096u64;
        while let Some(next) = ns.checked_mul(3) {
            for v in [ns - 1, ns, ns + 1, ns * 2 - 1] {
                let back = Time16::from_ns(v).ns();
                assert!(back <= v && v - back <= v >> 10, "{v} -> {back}");
            }
            ns = next;
        }
        assert_eq!(Time16::from_ns(u64::MAX).ns(), u64::MAX >> 53 << 53);
        // Codes grow with the time they stand for.
        let codes: Vec<u16> = (0..40).map(|s| Time16::from_ns(1u64 << s).0).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
    }

    #[test]
    fn outputs_of_every_shape_come_back_with_their_runs() {
        let mut out = Outputs::new(200);
        let shapes = |i: u64| match i % 4 {
            0 => Output::Int(u128::from(i)),
            1 => Output::Int(u128::from(u64::MAX) + u128::from(i)),
            2 => Output::Bytes(format!("row {i}").into_bytes()),
            _ => Output::Int(u128::from(u64::MAX)),
        };
        let run = |i: u64| RunInfo {
            attempts: 1 + (i % 3) as u32,
            worker: 100 + i % 5,
            model: [None, Some(SlotModel::Process), Some(SlotModel::Thread)][(i % 3) as usize],
            cpu_ns: i * 1_000,
            wall_ns: 1_000_000 + i,
            ended_us: 0,
        };
        let order: Vec<u64> = (0..200)
            .rev()
            .step_by(2)
            .chain((0..200).step_by(2))
            .collect();
        for &i in &order {
            out.set(i, &shapes(i), run(i));
        }
        let by_index = |r: std::ops::Range<u64>| r.map(|i| (i, None));
        let rows = out.rows(by_index(0..200), usize::MAX, usize::MAX);
        assert_eq!(rows.len(), 200);
        for row in rows {
            let i = row.index;
            assert_eq!(row.value, shapes(i));
            let want = run(i);
            assert_eq!(row.run.attempts, want.attempts);
            assert_eq!(row.run.worker, want.worker);
            assert_eq!(row.run.model, want.model);
            assert_eq!(row.run.cpu_ns, Time16::from_ns(want.cpu_ns).ns());
            assert!(want.wall_ns - row.run.wall_ns <= want.wall_ns >> 10);
        }
        let completed: Vec<u64> = out.completion_order(3).map(|(i, _)| i).collect();
        assert_eq!(completed, order[3..]);
        // Byte budgets stop a page after the row that reaches them.
        assert_eq!(out.rows(by_index(0..200), usize::MAX, 1).len(), 1);
        assert_eq!(out.rows(by_index(2..200), 3, usize::MAX).len(), 3);
    }

    #[test]
    fn attempts_saturate_and_the_65536th_worker_is_not_known() {
        let mut out = Outputs::new(70_000);
        for i in 0..70_000u64 {
            let run = RunInfo {
                attempts: 9_000,
                worker: 1 + i,
                model: Some(SlotModel::Async),
                cpu_ns: 0,
                wall_ns: 0,
                ended_us: 0,
            };
            out.set(i, &Output::Int(0), run);
        }
        let rows = out.rows((65_534..65_536).map(|i| (i, None)), usize::MAX, usize::MAX);
        assert_eq!(rows[0].run.worker, 65_535);
        assert_eq!(rows[1].run.worker, 0);
        assert_eq!(rows[1].run.attempts, PackedRun::MAX_ATTEMPTS);
        assert_eq!(rows[1].run.model, Some(SlotModel::Async));
    }

    #[test]
    fn results_say_when_they_were_recorded_at_a_mark_per_batch_in_completion_order() {
        let mut out = Outputs::new(10_000);
        let base = 1_800_000_000_000_000u64;
        let at = |us: u64| RunInfo {
            attempts: 1,
            worker: 1,
            model: Some(SlotModel::Thread),
            cpu_ns: 0,
            wall_ns: 10,
            ended_us: us,
        };
        // Batches of 1,000 results each recorded at one time, 1 ms apart;
        // the fourth batch 50 µs after the third: within a grain of it.
        let times = [base, base + 1_000, base + 2_000, base + 2_050, base + 3_000];
        for (b, &t) in times.iter().enumerate() {
            for k in 0..1_000u64 {
                // Finishing out of index order.
                let i = (k * 7 + b as u64) % 1_000 * 10 + b as u64;
                out.set(i, &Output::Int(u128::from(i)), at(t));
            }
        }
        assert_eq!(out.ended.marks(), 4, "one per distinct grain, not per task");
        let rows = out.rows(out.completion_order(0), usize::MAX, usize::MAX);
        assert_eq!(rows.len(), 5_000);
        for (seq, row) in rows.iter().enumerate() {
            let want = [base, base + 1_000, base + 2_000, base + 2_000, base + 3_000][seq / 1_000];
            assert_eq!(row.run.ended_us, want, "result {seq}");
        }
        // From the middle of a batch on.
        let later = out.rows(out.completion_order(2_500), 1, usize::MAX);
        assert_eq!(later[0].run.ended_us, base + 2_000);
        // In index order it is not known.
        let by_index = out.rows([0u64].into_iter().map(|i| (i, None)), 1, usize::MAX);
        assert_eq!(by_index[0].run.ended_us, 0);
        // A time not known, then known again.
        let mut marks = EndMarks::default();
        marks.note(0, base);
        marks.note(1, 0);
        marks.note(2, base + 500);
        assert_eq!(
            (marks.at(0), marks.at(1), marks.at(2)),
            (base, 0, base + 500)
        );
    }
}
