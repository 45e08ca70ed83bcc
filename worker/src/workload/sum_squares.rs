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
/// width (the benchmark measures exactly that). Overflow is ruled out once
/// per task where the bound allows (then the loop is plain adds), else
/// checked at every element.
pub fn run(start: u64, end: u64) -> Result<u128, String> {
    if end <= start {
        return Ok(0);
    }
    if bound_fits(start, end) {
        return Ok(plain_sum(start, end));
    }
    checked_sum(start, end)
        .ok_or_else(|| format!("the sum of squares over [{start}, {end}) does not fit in 128 bits"))
}

/// Whether Σ i² over `[start, end)` (non-empty) surely fits in u128: it is
/// at most (end − start)·(end − 1)², every term being at most the last.
/// (end − 1)² < 2¹²⁸ always; the product is checked. The bound is within
/// a factor 3 of the sum (start = 0: n³ against n³/3), so only sums within
/// that factor of 2¹²⁸ take the checked loop.
fn bound_fits(start: u64, end: u64) -> bool {
    let last = u128::from(end - 1);
    u128::from(end - start).checked_mul(last * last).is_some()
}

/// The loop with nothing but adds: [`bound_fits`] has ruled overflow out.
fn plain_sum(start: u64, end: u64) -> u128 {
    let mut acc: u128 = 0;
    let mut i = start;
    while i < end {
        let x = black_box(i) as u128;
        acc = acc.wrapping_add(x * x);
        i += 1;
    }
    acc
}

/// The loop with each add checked (None: the sum does not fit).
fn checked_sum(start: u64, end: u64) -> Option<u128> {
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
    (!overflowed).then_some(acc)
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
        assert_eq!(
            e,
            "the sum of squares over [18446744073709551613, 18446744073709551615) \
             does not fit in 128 bits"
        );
    }

    /// The test's own oracle: Σ i² over [a, b) added one checked term at a
    /// time (None: it does not fit).
    fn oracle(a: u64, b: u64) -> Option<u128> {
        (a..b).try_fold(0u128, |acc, i| {
            acc.checked_add(u128::from(i) * u128::from(i))
        })
    }

    /// The first `end` from `start` whose sum no longer fits in u128
    /// (found by the oracle one term at a time, within `limit` terms).
    fn first_overflowing_end(start: u64, limit: u64) -> u64 {
        let mut acc = 0u128;
        for i in start..start + limit {
            match acc.checked_add(u128::from(i) * u128::from(i)) {
                Some(s) => acc = s,
                None => return i + 1,
            }
        }
        panic!("no overflow within {limit} terms of {start}");
    }

    #[test]
    fn sums_at_the_edge_of_128_bits_are_exact_on_both_paths_or_fail_as_before() {
        for k in [3u64, 10, 1_000] {
            // The smallest last term l with k·l² > 2¹²⁸ − 1: k terms ending
            // at l − 1 take the plain loop, k terms ending at l the checked
            // one, whose sum still fits (it is short of k·l² by about l·k²).
            let l = u64::try_from((u128::MAX / u128::from(k)).isqrt() + 1).unwrap();
            let plain = (l - k, l);
            let checked = (l + 1 - k, l + 1);
            assert!(bound_fits(plain.0, plain.1), "k {k}");
            assert!(!bound_fits(checked.0, checked.1), "k {k}");
            for (a, b) in [plain, checked] {
                let want = oracle(a, b).unwrap_or_else(|| panic!("[{a}, {b}) fits"));
                assert_eq!(run(a, b), Ok(want), "[{a}, {b})");
            }
            // From the checked range's start: the last end that fits is
            // exact, the next one fails as it always did.
            let (a, over) = (checked.0, first_overflowing_end(checked.0, k + 10));
            assert_eq!(run(a, over - 1), Ok(oracle(a, over - 1).unwrap()));
            for b in [over, over + 1, over + 100] {
                assert_eq!(oracle(a, b), None);
                assert_eq!(
                    run(a, b),
                    Err(format!(
                        "the sum of squares over [{a}, {b}) does not fit in 128 bits"
                    ))
                );
            }
        }
        // One term: every square of a u64 fits, on the plain path.
        let top = u64::MAX - 1;
        assert!(bound_fits(top, u64::MAX));
        assert_eq!(run(top, u64::MAX), Ok(u128::from(top) * u128::from(top)));
    }

    #[test]
    fn the_plain_loop_serves_every_benchmark_range() {
        assert!(bound_fits(0, 1_500_000));
        assert!(bound_fits(0, 4_000_000_000));
        assert!(bound_fits(0, 60_000_000));
        assert!(!bound_fits(u64::MAX - 1_000_000, u64::MAX));
    }
}
