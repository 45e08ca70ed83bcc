//! `sum-squares`: Σ i² over the task's half-open sub-range, exact in u128.

use std::hint::black_box;

use brigade_proto::catalog::{Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;

use super::{BlockingContext, BlockingTask, Registration, TaskBody, TaskInput};

/// The definition and code of `sum-squares`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "sum-squares",
            Kind::Cpu,
            Reduction::Sum,
            "sum of i*i over the task's sub-range, exact in u128; the job result is the total",
        ),
        |_| Ok(TaskBody::blocking(SumSquares)),
    )
}

/// A sum-squares job's tasks.
#[derive(Debug)]
pub struct SumSquares;

impl BlockingTask for SumSquares {
    fn run(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        run(input.start, input.end).map(Output::Int)
    }
}

/// Σ i² for `start <= i < end`, by a real loop: `black_box` keeps the compiler
/// from folding it into the closed form, so CPU time grows linearly with the
/// width (the benchmark measures exactly that).
pub fn run(start: u64, end: u64) -> Result<u128, String> {
    let mut acc: u128 = 0;
    let mut overflowed = false;
    let mut i = start;
    while i < end {
        let x = black_box(i) as u128;
        // x < 2^64, so x*x < 2^128 never overflows; only the running sum can.
        let (sum, o) = acc.overflowing_add(x * x);
        acc = sum;
        overflowed |= o;
        i += 1;
    }
    if overflowed {
        return Err(format!(
            "the sum of squares over [{start}, {end}) does not fit in 128 bits"
        ));
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Σ i² for 0 <= i < n, (n−1)·n·(2n−1)/6.
    fn closed_form(n: u128) -> u128 {
        if n == 0 {
            return 0;
        }
        (n - 1) * n * (2 * n - 1) / 6
    }

    #[test]
    fn small_ranges_are_exact() {
        assert_eq!(run(0, 0), Ok(0));
        assert_eq!(run(5, 5), Ok(0));
        assert_eq!(run(0, 4), Ok(1 + 4 + 9));
        assert_eq!(run(3, 5), Ok(9 + 16));
        assert_eq!(run(9, 3), Ok(0));
    }

    #[test]
    fn one_w_cpu_chunk_matches_the_closed_form() {
        assert_eq!(run(0, 1_500_000), Ok(closed_form(1_500_000)));
        assert_eq!(closed_form(1_500_000), 1_124_998_875_000_250_000);
    }

    #[test]
    fn w_cpu_chunks_add_up_to_the_published_total() {
        let total: u128 = (0..40u64)
            .map(|c| run(c * 1_500_000, (c + 1) * 1_500_000).unwrap())
            .sum();
        assert_eq!(total, 71_999_998_200_000_010_000_000);
    }

    #[test]
    fn w_cpu_heavy_chunks_agree_with_the_closed_form() {
        // The whole [0, 4e9) is too slow for a unit test; check that the loop
        // agrees with the closed form on chunks at both ends (large values
        // included) and that the closed form gives the published total.
        let n = 4_000_000_000u128;
        assert_eq!(closed_form(n), 21_333_333_325_333_333_334_000_000_000);
        for (a, b) in [(0u64, 200_000u64), (3_999_800_000, 4_000_000_000)] {
            assert_eq!(
                run(a, b).unwrap(),
                closed_form(b as u128) - closed_form(a as u128)
            );
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrong_answer() {
        let e = run(u64::MAX - 2, u64::MAX).unwrap_err();
        assert!(e.contains("128 bits"), "{e}");
    }
}
