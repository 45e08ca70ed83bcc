//! Checksums of the state file's rows (xxh3, 64 bits): every row the
//! coordinator serves or restores from carries one over its stored columns,
//! written with the row and verified on every load and read. SQLite's own
//! checks see only its page structure; a flipped byte inside a value is
//! caught here instead of being served as data.
//!
//! Each sum is over the row's SQL values as stored (i64 words and byte
//! strings, each string length-prefixed) behind a tag naming the table, so
//! a row can never pass for a row of another table or another place.

use xxhash_rust::xxh3::xxh3_64;

/// Builds one row's sum: the columns laid out in a buffer, hashed in one
/// call (xxh3's one-shot path is several times faster than its streaming
/// state for rows of a few dozen bytes).
struct RowSum(Vec<u8>);

impl RowSum {
    fn new(tag: &[u8], extra: usize) -> Self {
        let mut b = Vec::with_capacity(tag.len() + 96 + extra);
        b.extend_from_slice(tag);
        RowSum(b)
    }

    fn int(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(mut self, b: Option<&[u8]>) -> Self {
        match b {
            // NULL and an empty string differ.
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
                self.0.extend_from_slice(b);
            }
        }
        self
    }

    /// Stored as SQLite's INTEGER, bit for bit.
    fn finish(self) -> i64 {
        xxh3_64(&self.0) as i64
    }
}

/// A `results` row's columns, as stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultCols<'a> {
    pub job: i64,
    pub idx: i64,
    pub lo: i64,
    pub hi: i64,
    pub output: Option<&'a [u8]>,
    pub attempts: i64,
    pub worker: i64,
    pub model: i64,
    pub cpu_ns: i64,
    pub wall_ns: i64,
    pub seq: i64,
    /// 0 (not known) in rows stored before schema 7, whose sums leave it
    /// out; any other value is in the sum.
    pub ended_us: i64,
}

pub(crate) fn result(c: &ResultCols<'_>) -> i64 {
    let sum = RowSum::new(b"brigade.results", c.output.map_or(0, <[u8]>::len))
        .int(c.job)
        .int(c.idx)
        .int(c.lo)
        .int(c.hi)
        .bytes(c.output)
        .int(c.attempts)
        .int(c.worker)
        .int(c.model)
        .int(c.cpu_ns)
        .int(c.wall_ns)
        .int(c.seq);
    match c.ended_us {
        0 => sum.finish(),
        ended => sum.int(ended).finish(),
    }
}

/// A `jobs` row's fixed part: written once, when the job is accepted.
pub(crate) fn job_spec(id: i64, spec: &[u8], submitted_ms: i64, owner: &str) -> i64 {
    RowSum::new(b"brigade.jobs.spec", spec.len() + owner.len())
        .int(id)
        .bytes(Some(spec))
        .int(submitted_ms)
        .bytes(Some(owner.as_bytes()))
        .finish()
}

/// A `jobs` row's state part: written when accepted and when it ends.
pub(crate) fn job_end(id: i64, state: i64, error: &str, started_ms: i64, finished_ms: i64) -> i64 {
    RowSum::new(b"brigade.jobs.end", error.len())
        .int(id)
        .int(state)
        .bytes(Some(error.as_bytes()))
        .int(started_ms)
        .int(finished_ms)
        .finish()
}

pub(crate) fn failed_task(job: i64, idx: i64, error: &str) -> i64 {
    RowSum::new(b"brigade.failed_tasks", error.len())
        .int(job)
        .int(idx)
        .bytes(Some(error.as_bytes()))
        .finish()
}

pub(crate) fn input_part(job: i64, part: i64, data: &[u8]) -> i64 {
    RowSum::new(b"brigade.inputs", data.len())
        .int(job)
        .int(part)
        .bytes(Some(data))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_and_the_table_change_the_sum() {
        let base = ResultCols {
            job: 1,
            idx: 2,
            lo: 3,
            hi: 4,
            output: None,
            attempts: 1,
            worker: 5,
            model: 2,
            cpu_ns: 6,
            wall_ns: 7,
            seq: 8,
            ended_us: 0,
        };
        let s = result(&base);
        let variants = [
            ResultCols { job: 2, ..base },
            ResultCols { idx: 3, ..base },
            ResultCols { lo: 4, ..base },
            ResultCols { hi: 5, ..base },
            ResultCols {
                output: Some(b""),
                ..base
            },
            ResultCols {
                attempts: 2,
                ..base
            },
            ResultCols { worker: 6, ..base },
            ResultCols { model: 3, ..base },
            ResultCols { cpu_ns: 7, ..base },
            ResultCols { wall_ns: 8, ..base },
            ResultCols { seq: 9, ..base },
            ResultCols {
                ended_us: 10,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(result(&v), s, "{v:?}");
        }
        assert_eq!(result(&base), s);
        // Strings are length-prefixed: moving a byte between them shows.
        assert_ne!(job_spec(1, b"ab", 0, "c"), job_spec(1, b"a", 0, "bc"));
        assert_ne!(failed_task(1, 2, "x"), input_part(1, 2, b"x"));
    }
}
