//! The scheduling core alone: task state transitions per second.
//!
//! One range job of `TASKS` noop tasks runs to the end on a few workers with
//! deep credit windows, the way the actor drives the core: `dispatch`, carry
//! out the `Assign`s, feed every task back as an `Ok` outcome, repeat. A
//! transition is a lease (task handed out) or a record (result accepted), plus,
//! in the loss variant, a requeue (a lost worker's lease back in the queue).
//! Run with `cargo bench -p brigade-coordinator --bench sched`.

use std::hint::black_box;

use brigade_coordinator::bench_api::{
    hello, ok, plan, Action, JobState, SchedConfig, Scheduler, WorkerId,
};
use brigade_proto::SlotModel;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};

const TASKS: u64 = 200_000;
const WORKERS: usize = 4;
const SLOTS: u32 = 8;
/// Credits per slot: a window of 4,096 per worker.
const CREDITS_PER_SLOT: u32 = 512;

/// A scheduler with `WORKERS` workers and one submitted job.
fn setup(log_results: bool) -> (Scheduler, Vec<WorkerId>, u64) {
    let mut s = Scheduler::new(SchedConfig {
        log_results,
        ..SchedConfig::default()
    });
    let workers = (0..WORKERS)
        .map(|_| s.worker_joined(hello(0, 0, SLOTS, CREDITS_PER_SLOT), 0))
        .collect();
    let job = s.submit(plan("noop", TASKS, 1, SlotModel::Async), 0);
    (s, workers, job)
}

/// Runs the job to the end; every `lose_every`-th round (if any) the worker
/// of the first assignment is lost before reporting and a new one joins.
/// Returns the number of transitions (leases + records + requeues).
fn run(mut s: Scheduler, job: u64, lose_every: Option<u64>) -> u64 {
    let mut leases = 0u64;
    let mut round = 0u64;
    let mut rounds_since_loss = 0;
    loop {
        round += 1;
        rounds_since_loss += 1;
        s.dispatch(round);
        let actions = s.take_actions();
        if actions.is_empty() {
            break;
        }
        let lose = lose_every
            .filter(|&n| rounds_since_loss == n)
            .and_then(|_| match &actions[0] {
                Action::Assign { worker, .. } => Some(*worker),
                _ => None,
            });
        for a in actions {
            if let Action::Assign { worker, tasks, .. } = a {
                leases += tasks.len() as u64;
                if Some(worker) == lose {
                    continue;
                }
                s.worker_outcomes(
                    worker,
                    tasks.iter().map(|t| ok(job, t, SlotModel::Async, 0)),
                    round,
                );
            }
        }
        if let Some(w) = lose {
            rounds_since_loss = 0;
            s.worker_lost(w, 0);
            s.worker_joined(hello(0, 0, SLOTS, CREDITS_PER_SLOT), round);
        }
        black_box(s.take_dirty_jobs());
        black_box(s.take_recorded());
    }
    let j = s.job(job).expect("the job exists");
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(j.done_count(), TASKS);
    leases + TASKS + j.retries()
}

fn transitions(lose_every: Option<u64>) -> u64 {
    let (s, _, job) = setup(false);
    run(s, job, lose_every)
}

/// (name, log_results, lose a worker every n-th round)
const VARIANTS: [(&str, bool, Option<u64>); 3] = [
    ("run_to_end", false, None),
    ("run_to_end_log_results", true, None),
    ("run_to_end_worker_loss", false, Some(3)),
];

fn bench_sched(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    g.sample_size(20);
    for (name, log_results, lose_every) in VARIANTS {
        g.throughput(Throughput::Elements(transitions(lose_every)));
        g.bench_function(name, |b| {
            b.iter_batched(
                || setup(log_results),
                |(s, _, job)| run(s, job, lose_every),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_sched);

/// `BRIGADE_BENCH_ONCE=<variant>` runs that variant exactly once, outside
/// criterion, for instruction counts that do not vary between runs:
/// `valgrind --tool=callgrind target/release/deps/sched-*`.
fn main() {
    if let Some(only) = std::env::var_os("BRIGADE_BENCH_ONCE") {
        for (name, log_results, lose_every) in VARIANTS {
            if only == name {
                let (s, _, job) = setup(log_results);
                println!("{name}: {} transitions", run(s, job, lose_every));
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
