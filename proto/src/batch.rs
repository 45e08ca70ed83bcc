//! The compact forms of the worker link's two hot messages, shared by both
//! ends so they cannot disagree:
//! - an [`AssignBatch`] names its tasks as runs of consecutive indices
//!   ([`TaskRun`]) whose inputs come from the job's [`TaskGrid`], so a
//!   batch of thousands of fresh tasks is a few bytes;
//! - a [`ResultBatch`] carries OK outcomes column by column
//!   ([`OkOutcomes`], varint columns, index deltas), about a third of the
//!   bytes and a fraction of the decoding work of one message per outcome.
//!
//! Decoding checks everything a peer could get wrong (a run past the
//! grid's end, columns of different lengths) and says what was wrong.

use crate::output::Output;
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
    #[error("assignment carries {items} input items where its tasks cover {wanted}")]
    InputsMismatch { items: usize, wanted: u64 },
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
    #[error("result column {column} of job {job_id} is malformed: {reason}")]
    BadColumn {
        job_id: u64,
        column: &'static str,
        reason: String,
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

/// Hands an inputs job's `items` (in task order) to its tasks: the task
/// covering items `start..end` takes `end - start` of them. A range job's
/// batch has no items: `None`, and every task gets none.
pub fn split_inputs(
    ranges: impl Iterator<Item = (u64, u64)> + Clone,
    items: Vec<Vec<u8>>,
) -> Result<Option<Vec<Vec<Vec<u8>>>>, BatchError> {
    if items.is_empty() {
        return Ok(None);
    }
    let want = ranges
        .clone()
        .try_fold(0u64, |sum, (s, e)| sum.checked_add(e.saturating_sub(s)));
    if want != Some(items.len() as u64) {
        return Err(BatchError::InputsMismatch {
            items: items.len(),
            wanted: want.unwrap_or(u64::MAX),
        });
    }
    let mut items = items.into_iter();
    Ok(Some(
        ranges
            .map(|(s, e)| items.by_ref().take((e - s) as usize).collect())
            .collect(),
    ))
}

/// One OK outcome, as [`OkOutcomes`] holds it column by column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkOutcome {
    pub index: u64,
    pub attempt: u32,
    pub value: Output,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// Of `wall_ns`, the time spent ready to run but waiting for a CPU.
    pub ready_ns: u64,
}

/// Appends `v` as a varint (7 bits per byte, low groups first).
fn put_varint(column: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        column.push(v as u8 | 0x80);
        v >>= 7;
    }
    column.push(v as u8);
}

/// Appends `v` to a column that stays empty while every value is 0: at the
/// first non-zero one, the `before` earlier entries get their zeros (a
/// varint 0 is one zero byte).
#[inline]
fn put_sparse(column: &mut Vec<u8>, before: usize, v: u64) {
    if v != 0 || !column.is_empty() {
        column.resize(column.len().max(before), 0);
        put_varint(column, v);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Reads a column of varints (each at most 64 bits, the last one whole).
/// One-byte values, the common case, take the short path.
fn read_column(bytes: &[u8], column: &'static str, job_id: u64) -> Result<Vec<u64>, BatchError> {
    let bad = |reason: &str| BatchError::BadColumn {
        job_id,
        column,
        reason: reason.to_string(),
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b < 0x80 {
            out.push(u64::from(b));
            continue;
        }
        let mut v = u64::from(b & 0x7f);
        let mut shift = 7;
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(bad("the last varint is cut off"));
            };
            i += 1;
            if shift == 63 && b > 1 {
                return Err(bad("a varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        out.push(v);
    }
    Ok(out)
}

/// Builds the [`OkOutcomes`] of one job and model, one outcome at a time.
#[derive(Debug)]
pub struct OkColumns {
    columns: OkOutcomes,
    len: usize,
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
            len: 0,
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
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, o: OkOutcome) {
        let c = &mut self.columns;
        let before = self.len;
        put_varint(
            &mut c.index_delta,
            zigzag(o.index.wrapping_sub(self.last_index) as i64),
        );
        self.last_index = o.index;
        put_varint(&mut c.attempt, u64::from(o.attempt));
        let int = match &o.value {
            Output::Int(v) => {
                // The length column stays empty until a byte output comes.
                if !c.output_len.is_empty() {
                    c.output_len.push(0);
                }
                *v
            }
            Output::Bytes(b) => {
                put_sparse(&mut c.output_len, before, b.len() as u64 + 1);
                c.output_data.extend_from_slice(b);
                0
            }
        };
        put_varint(&mut c.value_lo, int as u64);
        put_sparse(&mut c.value_hi, before, (int >> 64) as u64);
        put_varint(&mut c.cpu_ns, o.cpu_ns);
        put_varint(&mut c.wall_ns, o.wall_ns);
        put_sparse(&mut c.ready_ns, before, o.ready_ns);
        self.len += 1;
    }

    pub fn finish(self) -> OkOutcomes {
        self.columns
    }
}

impl OkOutcomes {
    /// The outcomes, after checking every column reads and they line up.
    pub fn outcomes(&self) -> Result<impl Iterator<Item = OkOutcome> + '_, BatchError> {
        let id = self.job_id;
        let deltas = read_column(&self.index_delta, "index_delta", id)?;
        let attempt = read_column(&self.attempt, "attempt", id)?;
        let lo = read_column(&self.value_lo, "value_lo", id)?;
        let hi = read_column(&self.value_hi, "value_hi", id)?;
        let cpu = read_column(&self.cpu_ns, "cpu_ns", id)?;
        let wall = read_column(&self.wall_ns, "wall_ns", id)?;
        let ready = read_column(&self.ready_ns, "ready_ns", id)?;
        let out_len = read_column(&self.output_len, "output_len", id)?;
        let n = deltas.len();
        if !(out_len.is_empty() || out_len.len() == n) {
            return Err(BatchError::BadColumn {
                job_id: id,
                column: "output_len",
                reason: format!("{} entries for {n} outcomes", out_len.len()),
            });
        }
        let data_len = out_len
            .iter()
            .try_fold(0u64, |sum, &l| sum.checked_add(l.saturating_sub(1)));
        if data_len != Some(self.output_data.len() as u64) {
            return Err(BatchError::BadColumn {
                job_id: id,
                column: "output_data",
                reason: format!(
                    "{} bytes where the lengths add up to {}",
                    self.output_data.len(),
                    data_len.map_or("more than 2^64".to_string(), |l| l.to_string())
                ),
            });
        }
        let data = &self.output_data;
        let mut offset = 0usize;
        let same = [attempt.len(), lo.len(), cpu.len(), wall.len()]
            .iter()
            .all(|&l| l == n);
        let sparse_ok = |c: &Vec<u64>| c.is_empty() || c.len() == n;
        if !same || !sparse_ok(&hi) || !sparse_ok(&ready) {
            return Err(BatchError::RaggedColumns {
                job_id: id,
                index: n,
                attempt: attempt.len(),
                lo: lo.len(),
                hi: hi.len(),
                cpu: cpu.len(),
                wall: wall.len(),
                ready: ready.len(),
            });
        }
        if let Some(a) = attempt.iter().find(|&&a| a > u64::from(u32::MAX)) {
            return Err(BatchError::BadColumn {
                job_id: id,
                column: "attempt",
                reason: format!("attempt {a} does not fit in 32 bits"),
            });
        }
        let mut index = 0u64;
        Ok((0..n).map(move |i| {
            index = index.wrapping_add(unzigzag(deltas[i]) as u64);
            let len = if out_len.is_empty() { 0 } else { out_len[i] };
            let value = match len {
                0 => Output::Int(
                    u128::from(hi.get(i).copied().unwrap_or(0)) << 64 | u128::from(lo[i]),
                ),
                l => {
                    // The lengths were checked to add up to the data above.
                    let n = (l - 1) as usize;
                    let b = data[offset..offset + n].to_vec();
                    offset += n;
                    Output::Bytes(b)
                }
            };
            OkOutcome {
                index,
                attempt: attempt[i] as u32,
                value,
                cpu_ns: cpu[i],
                wall_ns: wall[i],
                ready_ns: ready.get(i).copied().unwrap_or(0),
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
            value: Output::Int(value),
            cpu_ns: index.wrapping_mul(7),
            wall_ns: index.wrapping_mul(11) + 1,
            ready_ns: index % 4,
        }
    }

    fn round_trip(outcomes: &[OkOutcome]) -> Vec<OkOutcome> {
        let mut c = OkColumns::new(9, Model::Thread);
        for o in outcomes {
            c.push(o.clone());
        }
        let bytes = c.finish().encode_to_vec();
        let decoded = OkOutcomes::decode(&bytes[..]).unwrap();
        assert_eq!(decoded.job_id, 9);
        assert_eq!(decoded.model, Model::Thread as i32);
        decoded.outcomes().unwrap().collect()
    }

    #[test]
    fn inputs_split_over_tasks_by_their_ranges_or_are_refused() {
        let items: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i]).collect();
        let got = split_inputs([(0, 2), (2, 3), (3, 5)].into_iter(), items.clone())
            .unwrap()
            .expect("items");
        assert_eq!(
            got,
            vec![
                vec![b"a".to_vec(), b"b".to_vec()],
                vec![b"c".to_vec()],
                vec![b"d".to_vec(), b"e".to_vec()]
            ]
        );
        assert_eq!(
            split_inputs([(0, 2), (2, 3)].into_iter(), items),
            Err(BatchError::InputsMismatch {
                items: 5,
                wanted: 3
            })
        );
        assert_eq!(
            split_inputs([(0, 10), (10, 20)].into_iter(), Vec::new()),
            Ok(None)
        );
    }

    #[test]
    fn byte_outputs_travel_beside_integers_and_bad_lengths_are_refused() {
        let mut mixed = vec![outcome(1, 5), outcome(2, 6), outcome(3, 7)];
        mixed[1].value = Output::Bytes(b"hello".to_vec());
        mixed.push(OkOutcome {
            value: Output::Bytes(Vec::new()),
            ..outcome(4, 0)
        });
        assert_eq!(round_trip(&mixed), mixed);
        let ints = [outcome(1, 5), outcome(2, 6)];
        let mut c = OkColumns::new(1, Model::Thread);
        for o in ints {
            c.push(o);
        }
        let cols = c.finish();
        assert!(cols.output_len.is_empty() && cols.output_data.is_empty());
        // Lengths that do not add up to the data are refused whole.
        let mut c = OkColumns::new(1, Model::Thread);
        for o in mixed.clone() {
            c.push(o);
        }
        let mut cols = c.finish();
        cols.output_data.pop();
        assert!(matches!(
            cols.outcomes().err(),
            Some(BatchError::BadColumn {
                column: "output_data",
                ..
            })
        ));
        cols.output_len.pop();
        assert!(matches!(
            cols.outcomes().err(),
            Some(BatchError::BadColumn {
                column: "output_len",
                ..
            })
        ));
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
            ..narrow[0].clone()
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
    fn ragged_or_malformed_columns_are_refused() {
        let mut c = OkColumns::new(4, Model::Process);
        c.push(outcome(1, 1));
        c.push(outcome(2, 1 << 70));
        let good = c.finish();
        assert!(!good.ready_ns.is_empty() && !good.value_hi.is_empty());
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
        let mut cut = good.clone();
        cut.wall_ns.push(0x80);
        let e = cut.outcomes().err().unwrap().to_string();
        assert_eq!(
            e,
            "result column wall_ns of job 4 is malformed: the last varint is cut off"
        );
        let mut long = good.clone();
        long.cpu_ns = vec![0xff; 10];
        long.cpu_ns.push(0x01);
        let e = long.outcomes().err().unwrap().to_string();
        assert!(
            e.contains("cpu_ns") && e.contains("overflows 64 bits"),
            "{e}"
        );
        let mut wide_attempt = good.clone();
        wide_attempt.attempt.clear();
        for a in [1u64, 1 << 40] {
            put_varint(&mut wide_attempt.attempt, a);
        }
        let e = wide_attempt.outcomes().err().unwrap().to_string();
        assert!(e.contains("does not fit in 32 bits"), "{e}");
        assert_eq!(good.outcomes().unwrap().count(), 2);
    }

    #[test]
    fn columns_are_wire_identical_to_packed_repeated_fields() {
        // What a reader declaring the columns as packed repeated fields sees.
        #[derive(Clone, PartialEq, prost::Message)]
        struct Packed {
            #[prost(sint64, repeated, tag = "3")]
            index_delta: Vec<i64>,
            #[prost(uint32, repeated, tag = "4")]
            attempt: Vec<u32>,
            #[prost(uint64, repeated, tag = "5")]
            value_lo: Vec<u64>,
            #[prost(uint64, repeated, tag = "8")]
            wall_ns: Vec<u64>,
        }
        let outcomes = [outcome(5, 300), outcome(3, 1 << 40), outcome(u64::MAX, 0)];
        let mut c = OkColumns::new(1, Model::Thread);
        for o in outcomes.clone() {
            c.push(o);
        }
        let packed = Packed::decode(&c.finish().encode_to_vec()[..]).unwrap();
        assert_eq!(packed.index_delta, [5, -2, (u64::MAX - 3) as i64]);
        assert_eq!(packed.attempt, outcomes.clone().map(|o| o.attempt));
        assert_eq!(
            packed.value_lo,
            outcomes
                .clone()
                .map(|o| o.value.as_int().unwrap_or(0) as u64)
        );
        assert_eq!(packed.wall_ns, outcomes.map(|o| o.wall_ns));
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(read_column(&b, "x", 0), Ok(vec![v]));
            assert_eq!(unzigzag(zigzag(v as i64)), v as i64);
        }
    }
}
