//! The core's share of one actor round with many workers linked (100,
//! 1,000, 5,000), each with one thread slot and a full window of 2:
//! - `heartbeat`: a worker is heard from and nothing is queued
//!   (`worker_seen`, `dispatch`, `next_expiry_ms`), the idle cluster's
//!   round;
//! - `one_result`: a job with plenty queued; a worker reports one result,
//!   which frees one credit that `dispatch` fills again (`worker_outcomes`,
//!   `dispatch`, the assignment taken), the busy cluster's round when tasks
//!   are long enough that results come one at a time.
//!
//! Run with `cargo bench -p brigade-coordinator --bench many_workers`.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;

use brigade_coordinator::bench_api::{hello, ok, plan, Action, SchedConfig, Scheduler, WorkerId};
use brigade_proto::SlotModel;
use criterion::{criterion_group, criterion_main, Criterion};

const SIZES: [usize; 3] = [100, 1_000, 5_000];

/// `n` workers of one thread slot and 2 credits.
fn linked(n: usize) -> (Scheduler, Vec<WorkerId>) {
    let mut s = Scheduler::new(SchedConfig {
        // Results are handed over (and dropped here), not kept per task.
        log_results: true,
        ..SchedConfig::default()
    });
    let ids = (0..n)
        .map(|_| s.worker_joined(hello(0, 1, 0, 2), 0))
        .collect();
    (s, ids)
}

fn heartbeat(c: &mut Criterion) {
    let mut g = c.benchmark_group("heartbeat");
    for n in SIZES {
        let (mut s, ids) = linked(n);
        let mut k = 0usize;
        g.bench_function(n.to_string(), |b| {
            b.iter(|| {
                k += 1;
                s.worker_seen(ids[k % n], k as u64);
                s.dispatch(k as u64);
                black_box(s.next_expiry_ms())
            })
        });
    }
    g.finish();
}

fn one_result(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_result");
    for n in SIZES {
        let (mut s, ids) = linked(n);
        // More queued than any run of the bench takes (admission's limit
        // is 10,000,000 tasks a job).
        for _ in 0..10 {
            s.submit(plan("noop", 10_000_000, 1, SlotModel::Thread), 0);
        }
        let mut held: HashMap<WorkerId, VecDeque<_>> = HashMap::new();
        let take = |s: &mut Scheduler, held: &mut HashMap<WorkerId, VecDeque<_>>| {
            for a in s.take_actions() {
                if let Action::Assign {
                    worker, job, tasks, ..
                } = a
                {
                    held.entry(worker)
                        .or_default()
                        .extend(tasks.into_iter().map(|t| (job, t)));
                }
            }
            black_box(s.take_recorded());
            black_box(s.take_dirty_jobs());
        };
        s.dispatch(0);
        take(&mut s, &mut held);
        assert!(ids.iter().all(|w| held[w].len() == 2), "every window full");
        let mut k = 0usize;
        g.bench_function(n.to_string(), |b| {
            b.iter(|| {
                k += 1;
                let w = ids[k % n];
                let (job, lease) = held
                    .get_mut(&w)
                    .and_then(VecDeque::pop_front)
                    .expect("held");
                s.worker_outcomes(w, [ok(job, &lease, SlotModel::Thread, 0)], k as u64);
                s.dispatch(k as u64);
                take(&mut s, &mut held);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, heartbeat, one_result);
criterion_main!(benches);
