//! The compact forms of the worker link's two hot messages, shared by both
//! ends so they cannot disagree:
//! - an [`AssignBatch`] names its tasks as runs of consecutive indices
//!   ([`TaskRun`]) whose inputs come from the job's [`TaskGrid`], so a
//!   batch of thousands of fresh tasks is a few bytes;
//! - a [`ResultBatch`] carries OK outcomes column by column
//!   ([`OkOutcomes`], packed varints, index deltas), about a third of the
//!   bytes and a fraction of the decoding work of one message per outcome.
//!
//! Decoding checks everything a peer could get wrong (a run past the
//! grid's end, columns of different lengths) and says what was wrong.

use crate::v1::{AssignBatch, Model, OkOutcomes, TaskGrid, TaskRun};

/// At most this many tasks in one assignment batch: far above any credit
/// window, low enough that a corrupt count cannot make a worker allocate
/// without bound.
pub const MAX_TASKS_PER_BATCH: u64 = 1 << 20;

/// Why a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("assignment has task runs but no input grid")]
    NoGrid,
    #[error("assignment grid {start}..{end} chunk {chunk} is empty or has chunk 0")]
    BadGrid { start: u64, end: u64, chunk: u64 },
    #[error("assignment run of tasks {first}..{first}+{count} goes past the grid's {tasks} tasks")]
    RunOutsideGrid { first: u64, count: u64, tasks: u64 },
    #[error("assignment batch of {0} tasks is over the limit of {MAX_TASKS_PER_BATCH}")]
    TooManyTasks(u64),
    #[error(
        "result columns of job {job_id} differ in length: {index} indices, {attempt} attempts, \
         {lo} values, {hi} high value words (0 or as many as indices), {cpu} CPU times, \
         {wall} wall times, {ready} ready times (0 or as many as indices)"
    )]
    RaggedColumns {
        job_id: u64,
        index: usize,
        attempt: usize,
        lo: usize,
        hi: usize,
        cpu: usize,
        wall: usize,
        ready: usize,
    },
}

/// One task of an assignment, spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignedTask {
    pub index: u64,
    pub attempt: u32,
    pub start: u64,
    pub end: u64,
}

impl TaskGrid {
    /// The grid's number of tasks, after checking it is well formed.
    pub fn tasks(&self) -> Result<u64, BatchError> {
        if self.chunk == 0 || self.start >= self.end {
            return Err(BatchError::BadGrid {
                start: self.start,
                end: self.end,
                chunk: self.chunk,
            });
        }
        Ok((self.end - self.start).div_ceil(self.chunk))
    }

    /// The input sub-range of task `index` (which must be below `tasks()`).
    pub fn range(&self, index: u64) -> (u64, u64) {
        let start = self.start + index * self.chunk;
        (start, start.saturating_add(self.chunk).min(self.end))
    }
}

/// Groups `(index, attempt)` pairs into runs of consecutive indices with
/// the same attempt, keeping their order.
pub fn runs(tasks: impl IntoIterator<Item = (u64, u32)>) -> Vec<TaskRun> {
    let mut out: Vec<TaskRun> = Vec::new();
    for (index, attempt) in tasks {
        match out.last_mut() {
            Some(r) if r.attempt == attempt && r.first.checked_add(r.count) == Some(index) => {
                r.count += 1
            }
            _ => out.push(TaskRun {
                first: index,
                count: 1,
                attempt,
            }),
        }
    }
    out
}

/// Every task of `batch`: the spelled-out ones, then the runs over its grid.
pub fn assigned_tasks(batch: &AssignBatch) -> Result<Vec<AssignedTask>, BatchError> {
    let mut total = batch.tasks.len() as u64;
    let grid_tasks = match (&batch.grid, batch.runs.is_empty()) {
        (_, true) => 0,
        (None, false) => return Err(BatchError::NoGrid),
        (Some(g), false) => g.tasks()?,
    };
    for r in &batch.runs {
        if r.first
            .checked_add(r.count)
            .is_none_or(|end| end > grid_tasks)
        {
            return Err(BatchError::RunOutsideGrid {
                first: r.first,
                count: r.count,
                tasks: grid_tasks,
            });
        }
        total = total.saturating_add(r.count);
    }
    if total > MAX_TASKS_PER_BATCH {
        return Err(BatchError::TooManyTasks(total));
    }
    let mut out = Vec::with_capacity(total as usize);
    out.extend(batch.tasks.iter().map(|t| AssignedTask {
        index: t.index,
        attempt: t.attempt,
        start: t.start,
        end: t.end,
    }));
    if let Some(grid) = &batch.grid {
        for r in &batch.runs {
            out.extend((r.first..r.first + r.count).map(|index| {
                let (start, end) = grid.range(index);
                AssignedTask {
                    index,
                    attempt: r.attempt,
                    start,
                    end,
                }
            }));
        }
    }
    Ok(out)
}

/// One OK outcome, as [`OkOutcomes`] holds it column by column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OkOutcome {
    pub index: u64,
    pub attempt: u32,
    pub value: u128,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// Of `wall_ns`, the time spent ready to run but waiting for a CPU.
    pub ready_ns: u64,
}

/// Appends `v` to a column that is empty while every value is 0: at the
/// first non-zero one, the earlier entries get their zeros.
fn push_sparse(column: &mut Vec<u64>, len_before: usize, v: u64) {
    if v != 0 || !column.is_empty() {
        column.resize(len_before, 0);
        column.push(v);
    }
}

/// Builds the [`OkOutcomes`] of one job and model, one outcome at a time.
#[derive(Debug)]
pub struct OkColumns {
    columns: OkOutcomes,
    last_index: u64,
}

impl OkColumns {
    pub fn new(job_id: u64, model: Model) -> Self {
        OkColumns {
            columns: OkOutcomes {
                job_id,
                model: model as i32,
                ..Default::default()
            },
            last_index: 0,
        }
    }

    pub fn job_id(&self) -> u64 {
        self.columns.job_id
    }

    pub fn model(&self) -> i32 {
        self.columns.model
    }

    pub fn len(&self) -> usize {
        self.columns.index_delta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.index_delta.is_empty()
    }

    pub fn push(&mut self, o: OkOutcome) {
        let c = &mut self.columns;
        c.index_delta
            .push(o.index.wrapping_sub(self.last_index) as i64);
        self.last_index = o.index;
        let before = c.attempt.len();
        c.attempt.push(o.attempt);
        c.value_lo.push(o.value as u64);
        push_sparse(&mut c.value_hi, before, (o.value >> 64) as u64);
        c.cpu_ns.push(o.cpu_ns);
        c.wall_ns.push(o.wall_ns);
        push_sparse(&mut c.ready_ns, before, o.ready_ns);
    }

    pub fn finish(self) -> OkOutcomes {
        self.columns
    }
}

impl OkOutcomes {
    /// The outcomes, after checking the columns line up.
    pub fn outcomes(&self) -> Result<impl Iterator<Item = OkOutcome> + '_, BatchError> {
        let n = self.index_delta.len();
        let same = [
            self.attempt.len(),
            self.value_lo.len(),
            self.cpu_ns.len(),
            self.wall_ns.len(),
        ]
        .iter()
        .all(|&l| l == n);
        let sparse_ok = |c: &Vec<u64>| c.is_empty() || c.len() == n;
        if !same || !sparse_ok(&self.value_hi) || !sparse_ok(&self.ready_ns) {
            return Err(BatchError::RaggedColumns {
                job_id: self.job_id,
                index: n,
                attempt: self.attempt.len(),
                lo: self.value_lo.len(),
                hi: self.value_hi.len(),
                cpu: self.cpu_ns.len(),
                wall: self.wall_ns.len(),
                ready: self.ready_ns.len(),
            });
        }
        let mut index = 0u64;
        Ok((0..n).map(move |i| {
            index = index.wrapping_add(self.index_delta[i] as u64);
            let hi = self.value_hi.get(i).copied().unwrap_or(0);
            OkOutcome {
                index,
                attempt: self.attempt[i],
                value: u128::from(hi) << 64 | u128::from(self.value_lo[i]),
                cpu_ns: self.cpu_ns[i],
                wall_ns: self.wall_ns[i],
                ready_ns: self.ready_ns.get(i).copied().unwrap_or(0),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::TaskAssignment;
    use prost::Message;

    fn grid(start: u64, end: u64, chunk: u64) -> Option<TaskGrid> {
        Some(TaskGrid { start, end, chunk })
    }

    #[test]
    fn runs_merge_consecutive_indices_of_one_attempt_only() {
        let r = runs([(5, 1), (6, 1), (7, 1), (9, 1), (10, 2), (11, 2), (3, 1)]);
        let got: Vec<(u64, u64, u32)> = r.iter().map(|r| (r.first, r.count, r.attempt)).collect();
        assert_eq!(got, [(5, 3, 1), (9, 1, 1), (10, 2, 2), (3, 1, 1)]);
        assert!(runs([]).is_empty());
        // u64::MAX cannot be followed; no overflow.
        assert_eq!(runs([(u64::MAX, 1), (0, 1)]).len(), 2);
    }

    #[test]
    fn assigned_tasks_spell_out_runs_over_the_grid_with_a_short_last_chunk() {
        let batch = AssignBatch {
            tasks: vec![TaskAssignment {
                index: 0,
                attempt: 3,
                start: 100,
                end: 110,
            }],
            grid: grid(100, 135, 10),
            runs: runs([(2, 1), (3, 1), (1, 2)]),
            ..Default::default()
        };
        let got: Vec<(u64, u32, u64, u64)> = assigned_tasks(&batch)
            .unwrap()
            .iter()
            .map(|t| (t.index, t.attempt, t.start, t.end))
            .collect();
        assert_eq!(
            got,
            [
                (0, 3, 100, 110),
                (2, 1, 120, 130),
                (3, 1, 130, 135),
                (1, 2, 110, 120)
            ]
        );
    }

    #[test]
    fn bad_assignments_are_refused_with_what_was_wrong() {
        let run = |first, count| TaskRun {
            first,
            count,
            attempt: 1,
        };
        let mut b = AssignBatch {
            runs: vec![run(0, 1)],
            ..Default::default()
        };
        assert_eq!(assigned_tasks(&b), Err(BatchError::NoGrid));
        b.grid = grid(5, 5, 1);
        assert!(matches!(
            assigned_tasks(&b),
            Err(BatchError::BadGrid { .. })
        ));
        b.grid = grid(0, 10, 0);
        assert!(matches!(
            assigned_tasks(&b),
            Err(BatchError::BadGrid { .. })
        ));
        b.grid = grid(0, 10, 3); // 4 tasks
        b.runs = vec![run(2, 3)];
        let e = assigned_tasks(&b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "assignment run of tasks 2..2+3 goes past the grid's 4 tasks"
        );
        b.runs = vec![run(u64::MAX, 2)];
        assert!(matches!(
            assigned_tasks(&b),
            Err(BatchError::RunOutsideGrid { .. })
        ));
        b.grid = grid(0, u64::MAX, 1);
        b.runs = vec![run(0, MAX_TASKS_PER_BATCH + 1)];
        assert!(matches!(
            assigned_tasks(&b),
            Err(BatchError::TooManyTasks(_))
        ));
        // A grid without runs is fine: nothing to do.
        b.runs.clear();
        assert_eq!(assigned_tasks(&b), Ok(vec![]));
    }

    fn outcome(index: u64, value: u128) -> OkOutcome {
        OkOutcome {
            index,
            attempt: 1 + (index % 3) as u32,
            value,
            cpu_ns: index.wrapping_mul(7),
            wall_ns: index.wrapping_mul(11) + 1,
            ready_ns: index % 4,
        }
    }

    fn round_trip(outcomes: &[OkOutcome]) -> Vec<OkOutcome> {
        let mut c = OkColumns::new(9, Model::Thread);
        for &o in outcomes {
            c.push(o);
        }
        let bytes = c.finish().encode_to_vec();
        let decoded = OkOutcomes::decode(&bytes[..]).unwrap();
        assert_eq!(decoded.job_id, 9);
        assert_eq!(decoded.model, Model::Thread as i32);
        decoded.outcomes().unwrap().collect()
    }

    #[test]
    fn ok_columns_round_trip_out_of_order_indices_and_wide_values() {
        // Narrow values only: no high words on the wire.
        let narrow: Vec<OkOutcome> = [3u64, 4, 2, 10, 0, u64::MAX, 1]
            .iter()
            .map(|&i| outcome(i, u128::from(i) * 2))
            .collect();
        assert_eq!(round_trip(&narrow), narrow);
        let mut c = OkColumns::new(1, Model::Async);
        c.push(OkOutcome {
            ready_ns: 0,
            ..narrow[0]
        });
        let sparse = c.finish();
        assert!(sparse.value_hi.is_empty() && sparse.ready_ns.is_empty());
        // A wide value in the middle back-fills the high words before it.
        let wide = vec![
            outcome(7, 1),
            outcome(8, u128::MAX),
            outcome(9, (1u128 << 100) + 12_345),
            outcome(6, 5),
        ];
        assert_eq!(round_trip(&wide), wide);
        // ... and a wide first value.
        assert_eq!(round_trip(&wide[1..]), wide[1..]);
        assert_eq!(round_trip(&wide[2..3]), wide[2..3]);
        assert!(round_trip(&[]).is_empty());
    }

    #[test]
    fn ragged_columns_are_refused() {
        let mut c = OkColumns::new(4, Model::Process);
        c.push(outcome(1, 1));
        c.push(outcome(2, 1 << 70));
        let good = c.finish();
        let cases: [fn(&mut OkOutcomes); 6] = [
            |o| o.ready_ns.push(1),
            |o| {
                o.attempt.pop();
            },
            |o| {
                o.value_lo.pop();
            },
            |o| {
                o.value_hi.pop();
            },
            |o| {
                o.cpu_ns.pop();
            },
            |o| o.wall_ns.push(1),
        ];
        for mutate in cases {
            let mut bad = good.clone();
            mutate(&mut bad);
            let e = bad
                .outcomes()
                .err()
                .expect("ragged columns must be refused");
            assert!(
                e.to_string().contains("result columns of job 4 differ"),
                "{e}"
            );
        }
        assert_eq!(good.outcomes().unwrap().count(), 2);
    }
}
