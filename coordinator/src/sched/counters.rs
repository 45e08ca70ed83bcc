//! What the core counts as events happen, for the coordinator's metrics:
//! plain integers bumped where the event is handled (the core has one
//! owner, so nothing here is atomic), and fixed-bucket histograms whose
//! observation is a binary search over a dozen bounds and two additions.
//! The actor copies them out when `/metrics` is scraped.

use brigade_proto::{PerModel, SlotModel};

/// Upper bounds (ns) of the task run time buckets: 100 µs to 5 min.
pub const RUN_TIME_BOUNDS_NS: [u64; 15] = [
    100_000,
    250_000,
    1_000_000,
    2_500_000,
    10_000_000,
    25_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
    25_000_000_000,
    60_000_000_000,
    120_000_000_000,
    300_000_000_000,
];

/// A histogram over fixed upper bounds `B` (one count per bound, and one
/// above the last), with the sum of what it observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram<const B: usize> {
    /// `counts[i]`: observations in (bound i-1, bound i]; `counts[B]`:
    /// above the last bound. Not cumulative.
    pub counts: [u64; B],
    pub above: u64,
    pub sum: u64,
}

impl<const B: usize> Default for Histogram<B> {
    fn default() -> Self {
        Histogram {
            counts: [0; B],
            above: 0,
            sum: 0,
        }
    }
}

impl<const B: usize> Histogram<B> {
    /// Counts `value` in the first bucket whose bound is ≥ it.
    #[inline]
    pub fn observe(&mut self, bounds: &[u64; B], value: u64) {
        // Short tasks (the throughput benchmarks' noop) skip the search.
        let bucket = match bounds.first() {
            Some(&first) if value <= first => 0,
            _ => bounds.partition_point(|&b| b < value),
        };
        match bucket {
            i if i < B => self.counts[i] += 1,
            _ => self.above += 1,
        }
        self.sum = self.sum.saturating_add(value);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.above
    }
}

/// Task run times (wall, as the worker measured them), ns.
pub type RunTimes = Histogram<{ RUN_TIME_BOUNDS_NS.len() }>;

/// Why a worker was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// Silent for longer than the lease timeout: its leases expired.
    Silent,
    /// Its stream ended (it exited, drained, or the connection broke).
    Disconnected,
}

/// Everything the core counted since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// OK results dropped because their lease was no longer current.
    pub late_results_dropped: u64,
    /// Tasks that ended done, per the model they ran on.
    pub tasks_done: PerModel<u64>,
    /// Tasks that failed for good, per model.
    pub tasks_failed: PerModel<u64>,
    /// Failed attempts queued again, per model.
    pub tasks_retried: PerModel<u64>,
    /// Run times of done tasks, per model.
    pub run_time: PerModel<RunTimes>,
    /// Workers lost because they went silent.
    pub workers_silent: u64,
    /// Workers lost because their stream ended.
    pub workers_disconnected: u64,
    /// Leases taken back from silent workers (their tasks queued again).
    pub leases_expired: u64,
    /// Leases taken back from workers whose stream ended.
    pub leases_returned: u64,
}

impl Counters {
    /// Counts what recording one outcome on `model` changed: the job's
    /// done, failed and retried tallies before and after.
    #[inline]
    pub(super) fn outcome(
        &mut self,
        model: SlotModel,
        before: (u64, u64, u64),
        after: (u64, u64, u64),
        wall_ns: u64,
    ) {
        let done = after.0 - before.0;
        if done > 0 {
            self.tasks_done[model] += done;
            self.run_time[model].observe(&RUN_TIME_BOUNDS_NS, wall_ns);
        }
        self.tasks_failed[model] += after.1.saturating_sub(before.1);
        self.tasks_retried[model] += after.2.saturating_sub(before.2);
    }

    pub(super) fn worker_lost(&mut self, cause: LossCause, leases: u64) {
        match cause {
            LossCause::Silent => {
                self.workers_silent += 1;
                self.leases_expired += leases;
            }
            LossCause::Disconnected => {
                self.workers_disconnected += 1;
                self.leases_returned += leases;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_is_at_least_it() {
        let mut h = RunTimes::default();
        h.observe(&RUN_TIME_BOUNDS_NS, 0);
        h.observe(&RUN_TIME_BOUNDS_NS, 100_000);
        h.observe(&RUN_TIME_BOUNDS_NS, 100_001);
        h.observe(&RUN_TIME_BOUNDS_NS, 300_000_000_001);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.above, 1);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum, 300_000_200_002);
    }
}
