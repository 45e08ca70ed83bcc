//! Unit and property tests of the scheduling core.

use std::collections::HashMap;

use brigade_proto::SlotModel;
use proptest::prelude::*;

use super::job::AUTO_TINY_TASK_NS;
use super::*;
use crate::testing::{auto_plan, hello, ok, plan, plan_by_kind, probed};
use brigade_proto::Output;

fn assigns(actions: &[Action]) -> Vec<(WorkerId, JobId, Vec<TaskLease>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Assign {
                worker, job, tasks, ..
            } => Some((*worker, *job, tasks.clone())),
            _ => None,
        })
        .collect()
}

fn failed(job: JobId, t: &TaskLease, model: SlotModel, status: TaskStatus) -> Outcome {
    Outcome {
        status,
        error: "boom".into(),
        ..ok(job, t, model, 0)
    }
}

fn sum_squares(a: u64, b: u64) -> u128 {
    (a..b).map(|i| i as u128 * i as u128).sum()
}

/// What sum-squares returns for a task of `job`: its input comes from the
/// job's grid.
fn value_of(s: &Scheduler, job: JobId, t: &TaskLease) -> u128 {
    let (start, end) = s.job(job).unwrap().plan.task_range(t.index);
    sum_squares(start, end)
}

#[test]
fn routes_cpu_jobs_to_process_slots_and_io_jobs_to_async_slots() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(1, 1, 1, 1), 0);
    let cpu = s.submit(plan_by_kind("sum-squares", 10, 10), 0);
    let io = s.submit(plan_by_kind("sleep", 10, 10), 0);
    let thr = s.submit(plan("noop", 10, 10, SlotModel::Thread), 0);
    s.dispatch(0);
    let mut got: Vec<(JobId, SlotModel)> = s
        .take_actions()
        .into_iter()
        .map(|a| match a {
            Action::Assign {
                worker, job, model, ..
            } => {
                assert_eq!(worker, w);
                (job, model)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (cpu, SlotModel::Process),
            (io, SlotModel::Async),
            (thr, SlotModel::Thread)
        ]
    );
}

#[test]
fn assignments_respect_credits_and_each_outcome_returns_one() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(2, 0, 0, 2), 0);
    let j = s.submit(plan("sum-squares", 100, 10, SlotModel::Process), 0);
    s.dispatch(0);
    let a = assigns(&s.take_actions());
    let n: usize = a.iter().map(|(_, _, t)| t.len()).sum();
    assert_eq!(n, 4, "2 slots × 2 credits each");
    // No credit left: nothing more.
    s.dispatch(0);
    assert!(s.take_actions().is_empty());
    let first = a[0].2[0];
    s.worker_outcomes(w, [ok(j, &first, SlotModel::Process, 1)], 1);
    s.dispatch(1);
    let a = assigns(&s.take_actions());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].2.len(), 1);
    assert_eq!(a[0].2[0].index, 4);
}

#[test]
fn a_job_runs_to_its_exact_total() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(2, 0, 0, 2), 0);
    let j = s.submit(plan("sum-squares", 1_000, 7, SlotModel::Process), 0);
    let mut now = 0;
    loop {
        now += 1;
        s.dispatch(now);
        let a = assigns(&s.take_actions());
        if a.is_empty() {
            break;
        }
        for (_, job, tasks) in a {
            let outs: Vec<_> = tasks
                .iter()
                .map(|t| ok(job, t, SlotModel::Process, value_of(&s, job, t)))
                .collect();
            s.worker_outcomes(w, outs, now);
        }
    }
    let job = s.job(j).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.total(), Some(sum_squares(0, 1_000)));
    assert_eq!(job.done_count(), 143);
}

#[test]
fn a_lost_worker_returns_its_leases_and_its_late_results_are_dropped() {
    let mut s = Scheduler::new(SchedConfig::default());
    let a = s.worker_joined(hello(0, 0, 4, 1), 0);
    let j = s.submit(plan("noop", 4, 1, SlotModel::Async), 0);
    s.dispatch(0);
    let leased = assigns(&s.take_actions());
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].0, a);
    s.worker_lost(a, 1);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.tasks_running, 0);
    assert_eq!(info.retries, 4);
    assert_eq!(
        info.waiting,
        Some(WaitingReason::NoWorkersWith(SlotModel::Async))
    );
    let b = s.worker_joined(hello(0, 0, 4, 1), 1);
    s.dispatch(1);
    let again = assigns(&s.take_actions());
    assert_eq!(again[0].0, b);
    assert!(again[0].2.iter().all(|t| t.attempt == 2));
    // The old worker's result arrives late: dropped.
    s.worker_outcomes(a, [ok(j, &leased[0].2[0], SlotModel::Async, 0)], 2);
    // A stale attempt from the new worker is dropped too.
    s.worker_outcomes(b, [ok(j, &leased[0].2[1], SlotModel::Async, 1)], 2);
    assert_eq!(s.job(j).unwrap().done_count(), 0);
    let outs: Vec<_> = again[0]
        .2
        .iter()
        .map(|t| ok(j, t, SlotModel::Async, t.index as u128))
        .collect();
    s.worker_outcomes(b, outs, 3);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded);
    assert_eq!(info.late_results_dropped, 1);
    assert_eq!(s.status().late_results_dropped, 2);
    let r = s.job(j).unwrap().results_from(0, 10, usize::MAX).unwrap();
    assert_eq!(values(&r), ints(&[(0, 0), (1, 1), (2, 2), (3, 3)]));
    // Each row says how its task ran: the second lease, on worker b.
    for row in &r {
        assert_eq!(
            row.run,
            RunInfo {
                attempts: 2,
                worker: b,
                model: Some(SlotModel::Async),
                cpu_ns: 0,
                wall_ns: 0,
                // Not known in index order (in memory).
                ended_us: 0,
            }
        );
    }
}

#[test]
fn a_batch_of_one_job_ends_it_and_what_follows_its_end_is_late() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 4, 0, 1), 0);
    let j = s.submit(plan("noop", 4, 1, SlotModel::Thread), 0);
    s.dispatch(0);
    let tasks = assigns(&s.take_actions())[0].2.clone();
    assert_eq!(tasks.len(), 4);
    // The four results, then the first one again (a duplicate after the
    // job ended), in one batch of OK results.
    let outs: Vec<_> = tasks
        .iter()
        .chain(&tasks[..1])
        .map(|t| ok(j, t, SlotModel::Thread, 7 * t.index as u128))
        .collect();
    s.worker_job_outcomes(w, j, outs, 1);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded);
    assert_eq!(info.late_results_dropped, 1);
    let r = s.job(j).unwrap().results_from(0, 10, usize::MAX).unwrap();
    assert_eq!(values(&r), ints(&[(0, 0), (1, 7), (2, 14), (3, 21)]));
    let view = &s.workers()[0];
    assert_eq!((view.running_tasks, view.tasks_done), (0, 4));
    // A batch of a job the core no longer knows only returns credits.
    s.worker_job_outcomes(w, 999, [ok(999, &tasks[0], SlotModel::Thread, 0)], 2);
    assert_eq!(s.status().late_results_dropped, 2);
}

#[test]
fn results_come_in_index_or_completion_order_with_how_each_task_ran() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 4, 0, 1), 0);
    let j = s.submit(plan("noop", 4, 1, SlotModel::Thread), 0);
    s.dispatch(0);
    let tasks = assigns(&s.take_actions())[0].2.clone();
    assert_eq!(tasks.len(), 4);
    // Finished 2, 0, 3, 1, with times that tell them apart.
    for (k, &i) in [2usize, 0, 3, 1].iter().enumerate() {
        let o = Outcome {
            cpu_ns: 1_000 * i as u64,
            wall_ns: 3_000_000_000 + i as u64,
            ..ok(j, &tasks[i], SlotModel::Thread, 10 + i as u128)
        };
        s.worker_outcomes(w, [o], 1 + k as u64);
    }
    let job = s.job(j).unwrap();
    let by_index = job.results_from(0, 10, usize::MAX).unwrap();
    assert_eq!(
        values(&by_index),
        ints(&[(0, 10), (1, 11), (2, 12), (3, 13)])
    );
    let by_completion = job.results_in_completion_order(0, 10, usize::MAX).unwrap();
    assert_eq!(
        values(&by_completion),
        ints(&[(2, 12), (0, 10), (3, 13), (1, 11)])
    );
    // A follower's cursor: skip what it has, at most `max` at a time.
    let next = job.results_in_completion_order(1, 2, usize::MAX).unwrap();
    assert_eq!(values(&next), ints(&[(0, 10), (3, 13)]));
    for row in &by_index {
        let i = row.index;
        assert_eq!(row.run.attempts, 1);
        assert_eq!(row.run.worker, w);
        assert_eq!(row.run.model, Some(SlotModel::Thread));
        assert_eq!(row.run.cpu_ns, 1_000 * i);
        // Kept in 16 bits in memory: 3 s to within 1 part in 2^10.
        let wall = 3_000_000_000 + i;
        assert!(row.run.wall_ns.abs_diff(wall) <= wall >> 10, "{row:?}");
        assert_eq!(row.run.ended_us, 0, "not known in index order");
    }
    // In completion order each says when it was recorded: at 1, 2, 3, 4 ms.
    let ended: Vec<u64> = by_completion.iter().map(|r| r.run.ended_us).collect();
    assert_eq!(ended, [1_000, 2_000, 3_000, 4_000]);
    // Outcomes recorded with a µs clock keep it.
    let j = s.submit(plan("noop", 1, 1, SlotModel::Thread), 5);
    s.dispatch(5);
    let task = assigns(&s.take_actions())[0].2[0];
    s.worker_outcomes_at(w, [ok(j, &task, SlotModel::Thread, 7)], 5_432);
    let row = &s
        .job(j)
        .unwrap()
        .results_in_completion_order(0, 1, usize::MAX)
        .unwrap()[0];
    assert_eq!(row.run.ended_us, 5_432);
}

/// `times` times over: a fresh worker with two slots of `model` joins, takes
/// tasks of `j` (task 0 among them) and is lost.
fn lose_the_holder_of_task_0(s: &mut Scheduler, j: JobId, model: SlotModel, times: u32) {
    let slots = match model {
        SlotModel::Process => hello(2, 0, 0, 1),
        SlotModel::Thread => hello(0, 2, 0, 1),
        SlotModel::Async => hello(0, 0, 2, 1),
    };
    for now in 0..u64::from(times) {
        let w = s.worker_joined(slots.clone(), now);
        s.dispatch(now);
        let leased = assigns(&s.take_actions());
        assert!(
            leased
                .iter()
                .any(|(_, job, t)| *job == j && t.iter().any(|t| t.index == 0)),
            "the new worker takes task 0: {leased:?}"
        );
        s.worker_lost(w, now);
    }
}

/// A scheduler that fails tasks at `limit` lost workers (and hands
/// failures to the store).
fn loss_limited(limit: u32) -> Scheduler {
    Scheduler::new(SchedConfig {
        max_worker_losses: limit,
        log_results: true,
        ..Default::default()
    })
}

#[test]
fn a_task_on_thread_or_async_slots_fails_at_the_worker_loss_limit_and_says_why() {
    for model in [SlotModel::Thread, SlotModel::Async] {
        let mut s = loss_limited(3);
        let mut p = plan("noop", 2, 1, model);
        p.fail_fast = true;
        let j = s.submit(p, 0);
        // Two losses: both tasks are queued again, attempts unspent.
        lose_the_holder_of_task_0(&mut s, j, model, 2);
        let info = s.job_view(j).unwrap();
        assert_eq!(info.state, JobState::Running, "{model:?}");
        assert_eq!((info.tasks_failed, info.retries), (0, 4), "{model:?}");
        // The third fails the first task it held, and with it the job
        // (--fail-fast), with the reason.
        lose_the_holder_of_task_0(&mut s, j, model, 1);
        let info = s.job_view(j).unwrap();
        assert_eq!(info.state, JobState::Failed, "{model:?}");
        let lost = TaskFailure::WorkersLost {
            index: 0,
            input: (0, 1),
            losses: 3,
            model,
            limit: 3,
        };
        assert_eq!(info.error, Some(&JobFailure::Task(lost.clone())));
        // Nothing of the job is leased or queued any more.
        assert_eq!(info.tasks_running, 0);
        assert!(s.job(j).unwrap().is_terminal());
        // The failure reaches the store like any failed task.
        let failed = s.take_failures();
        assert_eq!(failed.len(), 1, "{model:?}: {failed:?}");
        assert_eq!(failed[0], (j, 0, lost));
    }
}

#[test]
fn without_fail_fast_a_loss_limit_fails_each_task_it_reaches_then_the_job() {
    let mut s = loss_limited(1);
    let j = s.submit(plan("noop", 2, 1, SlotModel::Thread), 0);
    // One worker holds both tasks (two slots) and is lost: both fail.
    lose_the_holder_of_task_0(&mut s, j, SlotModel::Thread, 1);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!((info.tasks_done, info.tasks_failed), (0, 2));
    assert_eq!(
        info.error,
        Some(&JobFailure::TooManyFailures {
            failed: 2,
            tasks: 2,
            allowed: 0,
            first: TaskFailure::WorkersLost {
                index: 0,
                input: (0, 1),
                losses: 1,
                model: SlotModel::Thread,
                limit: 1,
            },
        })
    );
    let failed: Vec<u64> = s.take_failures().iter().map(|f| f.1).collect();
    assert_eq!(failed, vec![0, 1]);
}

#[test]
fn allowed_failures_let_the_rest_of_the_job_finish_after_a_loss_limit() {
    let mut s = loss_limited(1);
    let mut p = plan("noop", 3, 1, SlotModel::Thread);
    p.allow_failures = 2;
    let j = s.submit(p, 0);
    // One worker takes tasks 0 and 1 (two slots) and is lost: both fail,
    // tolerated; the job goes on.
    lose_the_holder_of_task_0(&mut s, j, SlotModel::Thread, 1);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.tasks_failed, 2);
    assert_eq!(info.state, JobState::Running, "{:?}", info.error);
    let w = s.worker_joined(hello(0, 2, 0, 1), 5);
    s.dispatch(5);
    let leased = assigns(&s.take_actions());
    assert_eq!(leased.len(), 1);
    let t = leased[0].2[0];
    assert_eq!(t.index, 2);
    s.worker_outcomes(w, [ok(j, &t, SlotModel::Thread, 2)], 6);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded, "{:?}", info.error);
    assert_eq!((info.tasks_done, info.tasks_failed), (1, 2));
}

#[test]
fn process_slots_and_a_zero_limit_never_fail_a_task_for_lost_workers() {
    for (model, limit) in [(SlotModel::Process, 1), (SlotModel::Thread, 0)] {
        let mut s = loss_limited(limit);
        let j = s.submit(plan("noop", 2, 1, model), 0);
        lose_the_holder_of_task_0(&mut s, j, model, 20);
        let info = s.job_view(j).unwrap();
        assert_eq!(info.state, JobState::Running, "{model:?}");
        assert_eq!((info.tasks_failed, info.retries), (0, 40), "{model:?}");
    }
}

#[test]
fn a_silent_worker_is_expired_by_tick() {
    let mut s = Scheduler::new(SchedConfig {
        lease_timeout_ms: 3_000,
        ..Default::default()
    });
    let a = s.worker_joined(hello(1, 0, 0, 1), 0);
    let b = s.worker_joined(hello(1, 0, 0, 1), 0);
    s.worker_seen(b, 2_500);
    s.tick(3_000);
    assert!(
        s.take_actions().is_empty(),
        "exactly at the timeout is still alive"
    );
    s.tick(3_001);
    let acts = s.take_actions();
    assert!(
        matches!(&acts[..], [Action::Disconnect { worker, reason }] if *worker == a && reason.contains("3001 ms")),
        "{acts:?}"
    );
    assert_eq!(s.workers().len(), 1);
}

#[test]
fn the_next_expiry_is_the_first_tick_that_expires_a_worker() {
    let mut s = Scheduler::new(SchedConfig {
        lease_timeout_ms: 3_000,
        ..Default::default()
    });
    assert_eq!(s.next_expiry_ms(), None, "no worker, nothing to expire");
    let a = s.worker_joined(hello(1, 0, 0, 1), 0);
    let b = s.worker_joined(hello(1, 0, 0, 1), 0);
    assert_eq!(s.next_expiry_ms(), Some(3_001), "both joined at 0");
    s.worker_seen(a, 1_000);
    s.worker_seen(b, 400);
    // Hearing from them costs no pass over the workers: the deadline stays
    // a lower bound until a tick makes it exact again.
    assert_eq!(s.next_expiry_ms(), Some(3_001));
    s.tick(3_001);
    assert!(s.take_actions().is_empty(), "neither is silent yet");
    let due = s.next_expiry_ms().expect("a deadline");
    assert_eq!(due, 3_401);
    s.tick(due - 1);
    assert!(s.take_actions().is_empty(), "not before its deadline");
    s.tick(due);
    let acts = s.take_actions();
    assert!(
        matches!(&acts[..], [Action::Disconnect { worker, .. }] if *worker == b),
        "{acts:?}"
    );
    assert_eq!(s.next_expiry_ms(), Some(4_001), "then the other worker's");
}

#[test]
fn failures_retry_up_to_max_attempts_then_fail_a_fail_fast_job() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(1, 0, 0, 1), 0);
    let mut p = plan("sum-squares", 20, 10, SlotModel::Process);
    p.max_attempts = 2;
    p.fail_fast = true;
    let j = s.submit(p, 0);
    s.dispatch(0);
    let t = assigns(&s.take_actions())[0].2[0];
    assert_eq!(t.index, 0);
    s.worker_outcomes(
        w,
        [failed(j, &t, SlotModel::Process, TaskStatus::ExecutorDied)],
        1,
    );
    s.dispatch(1);
    // Retries go out before fresh work, with a new lease epoch.
    let t2 = assigns(&s.take_actions())[0].2[0];
    assert_eq!((t2.index, t2.attempt), (0, 2));
    assert_eq!(s.job_view(j).unwrap().retries, 1);
    // A stale outcome of the first attempt changes nothing.
    s.worker_outcomes(w, [ok(j, &t, SlotModel::Process, 5)], 2);
    s.worker_outcomes(
        w,
        [failed(j, &t2, SlotModel::Process, TaskStatus::Failed)],
        3,
    );
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.tasks_failed, 1);
    assert_eq!(
        info.error,
        Some(&JobFailure::Task(TaskFailure::Attempts {
            index: 0,
            input: (0, 10),
            attempts: 2,
            last: TaskStatus::Failed,
            error: "boom".into(),
        }))
    );
    assert_eq!(info.late_results_dropped, 1);
    s.dispatch(4);
    assert!(
        assigns(&s.take_actions()).is_empty(),
        "a failed job hands out nothing"
    );
}

#[test]
fn a_task_failing_for_good_leaves_the_rest_of_the_job_to_run_then_fails_it() {
    let mut s = Scheduler::new(SchedConfig {
        log_results: true,
        ..Default::default()
    });
    let w = s.worker_joined(hello(1, 0, 0, 1), 0);
    let mut p = plan("sum-squares", 20, 1, SlotModel::Process);
    p.max_attempts = 2;
    let j = s.submit(p, 0);
    // One slot: tasks go out one at a time; task 3 fails every attempt.
    let mut now = 0;
    while !s.job(j).unwrap().is_terminal() {
        now += 1;
        s.dispatch(now);
        let leased = assigns(&s.take_actions());
        assert_eq!(leased.len(), 1, "the job hands out work until its end");
        let t = leased[0].2[0];
        let o = if t.index == 3 {
            failed(j, &t, SlotModel::Process, TaskStatus::Failed)
        } else {
            ok(j, &t, SlotModel::Process, u128::from(t.index * t.index))
        };
        s.worker_outcomes(w, [o], now);
    }
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!((info.tasks_done, info.tasks_failed), (19, 1));
    let poison = TaskFailure::Attempts {
        index: 3,
        input: (3, 4),
        attempts: 2,
        last: TaskStatus::Failed,
        error: "boom".into(),
    };
    assert_eq!(
        info.error,
        Some(&JobFailure::TooManyFailures {
            failed: 1,
            tasks: 20,
            allowed: 0,
            first: poison.clone(),
        })
    );
    assert_eq!(
        info.failed_tasks.iter().collect::<Vec<_>>(),
        vec![(&3, &poison)]
    );
    assert_eq!(info.total, (0..20u128).map(|i| i * i).sum::<u128>() - 9);
    assert_eq!(s.take_recorded().len(), 19, "every other result is kept");
    assert_eq!(s.take_failures(), vec![(j, 3, poison)]);
}

#[test]
fn a_restored_job_fails_if_too_many_tasks_failed_once_done_or_at_once_if_fail_fast() {
    let mut s = Scheduler::new(SchedConfig::default());
    let mut p = plan("noop", 3, 1, SlotModel::Thread);
    p.allow_failures = 1;
    let run = RunInfo {
        attempts: 1,
        worker: 0,
        model: None,
        cpu_ns: 0,
        wall_ns: 0,
        ended_us: 0,
    };
    let results = [Recorded {
        job: 1,
        index: 0,
        value: Output::Int(0),
        run,
        seq: 0,
    }];
    let failures = [
        (1, "task 1 failed".to_string()),
        (2, "task 2 failed".to_string()),
    ];
    s.restore(
        1,
        p,
        RestoredJob {
            state: JobState::Running,
            error: "",
            submitted_ms: 5,
            started_ms: 6,
            finished_ms: 0,
            results: &results,
            failures: &failures,
        },
    );
    let info = s.job_view(1).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(
        info.error,
        Some(&JobFailure::TooManyFailures {
            failed: 2,
            tasks: 3,
            allowed: 1,
            first: TaskFailure::Stored("task 1 failed".into()),
        })
    );
    // A fail-fast job beyond its allowance ends at once, unfinished tasks
    // and all, naming the failure past the allowance.
    let mut p = plan("noop", 5, 1, SlotModel::Thread);
    p.allow_failures = 1;
    p.fail_fast = true;
    s.restore(
        2,
        p,
        RestoredJob {
            state: JobState::Running,
            error: "",
            submitted_ms: 5,
            started_ms: 6,
            finished_ms: 0,
            results: &[],
            failures: &failures,
        },
    );
    let info = s.job_view(2).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(
        info.error,
        Some(&JobFailure::Task(TaskFailure::Stored(
            "task 2 failed".into()
        )))
    );
    s.dispatch(7);
    assert!(s.take_actions().is_empty());
}

#[test]
fn an_output_over_the_jobs_limit_fails_its_task_at_once() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 3, 0, 1), 0);
    let mut p = plan("noop", 3, 1, SlotModel::Thread);
    p.max_attempts = 3;
    p.allow_failures = 2;
    p.max_result_bytes = 4;
    let j = s.submit(p, 0);
    s.dispatch(0);
    let tasks = assigns(&s.take_actions())[0].2.clone();
    assert_eq!(tasks.len(), 3);
    let bytes = |t: &TaskLease, b: &[u8]| Outcome {
        value: Output::Bytes(b.to_vec()),
        ..ok(j, t, SlotModel::Thread, 0)
    };
    s.worker_outcomes(
        w,
        [
            // The worker refused it (the job's limit reached it).
            failed(j, &tasks[0], SlotModel::Thread, TaskStatus::OutputTooLarge),
            // A worker that did not: the coordinator refuses it itself.
            bytes(&tasks[1], b"12345"),
            bytes(&tasks[2], b"1234"),
        ],
        1,
    );
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded);
    assert_eq!((info.tasks_done, info.tasks_failed), (1, 2));
    assert_eq!(
        info.retries, 0,
        "another attempt would make the same output"
    );
    let failed: Vec<_> = info.failed_tasks.values().collect();
    match failed[1] {
        TaskFailure::Attempts {
            attempts, error, ..
        } => {
            assert_eq!(*attempts, 1);
            assert!(error.contains("limit of 4 bytes"), "{error}");
        }
        other => panic!("unexpected failure {other:?}"),
    }
}

#[test]
fn outputs_past_the_jobs_total_bytes_fail_their_tasks_and_the_rest_run() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 4, 0, 1), 0);
    let mut p = plan("noop", 4, 1, SlotModel::Thread);
    p.max_job_result_bytes = 10;
    p.allow_failures = 1;
    let j = s.submit(p, 0);
    s.dispatch(0);
    let tasks = assigns(&s.take_actions())[0].2.clone();
    let bytes = |t: &TaskLease, b: &[u8]| Outcome {
        value: Output::Bytes(b.to_vec()),
        ..ok(j, t, SlotModel::Thread, 0)
    };
    s.worker_outcomes(
        w,
        [
            bytes(&tasks[0], b"1234"),
            bytes(&tasks[1], b"12345"),
            // 9 bytes held: 2 more would make 11.
            bytes(&tasks[2], b"12"),
            // Integers are not byte outputs: not counted.
            ok(j, &tasks[3], SlotModel::Thread, u128::MAX),
        ],
        1,
    );
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded);
    assert_eq!((info.tasks_done, info.tasks_failed), (3, 1));
    match &info.failed_tasks[&2] {
        TaskFailure::Attempts {
            attempts, error, ..
        } => {
            assert_eq!(*attempts, 1, "another attempt would make the same output");
            assert!(
                error.contains("past 10 bytes, the limit per job")
                    && error.contains("hold 9 bytes"),
                "{error}"
            );
        }
        other => panic!("unexpected failure {other:?}"),
    }
}

#[test]
fn cancel_drops_queued_tasks_and_tells_holders() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 2, 0, 1), 0);
    let j = s.submit(plan("noop", 100, 1, SlotModel::Thread), 0);
    s.dispatch(0);
    let held = assigns(&s.take_actions());
    s.cancel(j, 5).unwrap();
    assert_eq!(s.take_actions(), vec![Action::Cancel { worker: w, job: j }]);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Cancelled);
    assert_eq!(info.tasks_running, 0);
    assert_eq!(s.status().tasks_queued, 0);
    // The worker answers its tasks: credits come back, results are ignored.
    let outs: Vec<_> = held[0]
        .2
        .iter()
        .map(|t| failed(j, t, SlotModel::Thread, TaskStatus::Cancelled))
        .collect();
    s.worker_outcomes(w, outs, 6);
    assert_eq!(s.workers()[0].running_tasks, 0);
    assert_eq!(s.cancel(99, 7), Err(JobError::NotFound(99)));
}

#[test]
fn max_in_flight_one_runs_a_job_serially() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 4, 0, 2), 0);
    let mut p = plan("noop", 3, 1, SlotModel::Thread);
    p.max_in_flight = Some(1);
    let j = s.submit(p, 0);
    for i in 0..3 {
        s.dispatch(i);
        let a = assigns(&s.take_actions());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].2.len(), 1);
        s.dispatch(i);
        assert!(s.take_actions().is_empty());
        s.worker_outcomes(w, [ok(j, &a[0].2[0], SlotModel::Thread, i as u128)], i);
    }
    assert_eq!(s.job(j).unwrap().state, JobState::Succeeded);
}

#[test]
fn a_draining_worker_gets_nothing_and_handed_back_tasks_are_not_failures() {
    let mut s = Scheduler::new(SchedConfig::default());
    let a = s.worker_joined(hello(1, 0, 0, 2), 0);
    let mut p = plan("sum-squares", 4, 1, SlotModel::Process);
    p.max_attempts = 1;
    let j = s.submit(p, 0);
    s.dispatch(0);
    let held = assigns(&s.take_actions());
    s.worker_draining(a);
    let back: Vec<_> = held
        .iter()
        .flat_map(|(_, _, t)| t)
        .map(|t| failed(j, t, SlotModel::Process, TaskStatus::Cancelled))
        .collect();
    s.worker_outcomes(a, back, 1);
    s.dispatch(1);
    assert!(s.take_actions().is_empty());
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Running);
    assert_eq!(
        info.waiting,
        Some(WaitingReason::NoWorkersWith(SlotModel::Process))
    );
    let b = s.worker_joined(hello(1, 0, 0, 4), 2);
    s.dispatch(2);
    let a2 = assigns(&s.take_actions());
    assert!(a2.iter().all(|(w, _, _)| *w == b));
    assert_eq!(
        a2.iter().map(|(_, _, t)| t.len()).sum::<usize>(),
        4,
        "{a2:?}"
    );
}

#[test]
fn work_is_spread_over_idle_slots_before_prefetch() {
    let mut s = Scheduler::new(SchedConfig::default());
    let a = s.worker_joined(hello(2, 0, 0, 4), 0);
    let b = s.worker_joined(hello(2, 0, 0, 4), 0);
    s.submit(plan("sum-squares", 4, 1, SlotModel::Process), 0);
    s.dispatch(0);
    let mut per: HashMap<WorkerId, usize> = HashMap::new();
    for (w, _, t) in assigns(&s.take_actions()) {
        *per.entry(w).or_default() += t.len();
    }
    assert_eq!(per.get(&a), Some(&2));
    assert_eq!(per.get(&b), Some(&2));
}

// ---- property: any interleaving of worker loss and results completes every
// task exactly once ----

#[derive(Debug, Clone)]
enum Step {
    /// Deliver the outcome of the k-th outstanding assignment (mod len).
    Deliver(usize, bool),
    /// Lose worker k (mod live workers), a fresh one joins.
    Lose(usize),
    /// Expire everyone silent (time passes).
    Silence,
    Dispatch,
    /// The coordinator restarts from what it recorded (the store).
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<usize>(), any::<bool>()).prop_map(|(k, fail)| Step::Deliver(k, fail)),
        1 => any::<usize>().prop_map(Step::Lose),
        1 => Just(Step::Silence),
        3 => Just(Step::Dispatch),
        1 => Just(Step::Restart),
    ]
}

/// Runs `steps` against a job of `tasks` tasks on `workers` workers, then
/// drains it: every task is recorded exactly once with its exact value.
/// Without a loss limit the job succeeds; with one it may instead fail,
/// naming lost workers, and never for anything else: at once if
/// `fail_fast`, else once every other task has finished.
fn interleave(
    steps: Vec<Step>,
    tasks: u64,
    workers: usize,
    max_worker_losses: u32,
    fail_fast: bool,
) -> Result<(), TestCaseError> {
    let config = SchedConfig {
        lease_timeout_ms: 10,
        max_batch: 3,
        log_results: true,
        fail_if_no_workers_ms: None,
        max_worker_losses,
    };
    let mut s = Scheduler::new(config);
    let mut p = plan("sum-squares", tasks * 3, 3, SlotModel::Thread);
    p.max_attempts = 100;
    p.fail_fast = fail_fast;
    let j = s.submit(p.clone(), 0);
    let mut stored: Vec<Recorded> = Vec::new();
    // Failed tasks as the store keeps them (rendered).
    let mut stored_failures: Vec<(u64, String)> = Vec::new();
    let mut live: Vec<WorkerId> = (0..workers)
        .map(|_| s.worker_joined(hello(0, 2, 0, 2), 0))
        .collect();
    let mut outstanding: Vec<(WorkerId, TaskLease)> = Vec::new();
    let mut now = 0u64;
    let mut failures_injected = 0u32;
    let run = |s: &mut Scheduler,
               outstanding: &mut Vec<(WorkerId, TaskLease)>,
               live: &mut Vec<WorkerId>| {
        for a in s.take_actions() {
            match a {
                Action::Assign { worker, tasks, .. } => {
                    outstanding.extend(tasks.into_iter().map(|t| (worker, t)))
                }
                Action::Disconnect { worker, .. } => live.retain(|w| *w != worker),
                Action::Cancel { .. } => {}
            }
        }
    };
    for st in steps {
        now += 1;
        match st {
            Step::Deliver(k, fail) if !outstanding.is_empty() => {
                let (w, t) = outstanding.remove(k % outstanding.len());
                let o = if fail && failures_injected < 20 {
                    failures_injected += 1;
                    failed(j, &t, SlotModel::Thread, TaskStatus::Failed)
                } else {
                    ok(j, &t, SlotModel::Thread, value_of(&s, j, &t))
                };
                s.worker_outcomes(w, [o], now);
                for w in &live {
                    s.worker_seen(*w, now);
                }
            }
            Step::Lose(k) if !live.is_empty() => {
                let w = live.remove(k % live.len());
                s.worker_lost(w, now);
                live.push(s.worker_joined(hello(0, 2, 0, 2), now));
            }
            Step::Silence => {
                now += 100;
                s.tick(now);
                run(&mut s, &mut outstanding, &mut live);
                while live.len() < workers {
                    live.push(s.worker_joined(hello(0, 2, 0, 2), now));
                }
            }
            Step::Restart => {
                stored.extend(s.take_recorded());
                stored_failures.extend(
                    s.take_failures()
                        .into_iter()
                        .map(|(_, i, f)| (i, format!("{f:?}"))),
                );
                s = Scheduler::new(config);
                s.restore(
                    j,
                    p.clone(),
                    RestoredJob {
                        state: JobState::Running,
                        error: "",
                        submitted_ms: 0,
                        started_ms: 0,
                        finished_ms: 0,
                        results: &stored,
                        failures: &stored_failures,
                    },
                );
                // Old links are gone with the old process.
                outstanding.clear();
                live = (0..workers)
                    .map(|_| s.worker_joined(hello(0, 2, 0, 2), now))
                    .collect();
            }
            _ => s.dispatch(now),
        }
        run(&mut s, &mut outstanding, &mut live);
    }
    // Then drain: everything outstanding is delivered (late ones dropped),
    // and dispatch until the job ends.
    for _ in 0..10_000 {
        if s.job(j).unwrap().is_terminal() {
            break;
        }
        s.dispatch(now);
        run(&mut s, &mut outstanding, &mut live);
        if let Some((w, t)) = outstanding.pop() {
            now += 1;
            let v = value_of(&s, j, &t);
            s.worker_outcomes(w, [ok(j, &t, SlotModel::Thread, v)], now);
            for w in &live {
                s.worker_seen(*w, now);
            }
        }
    }
    let view = s.job_view(j).unwrap();
    let error = view.error.cloned();
    // Failed in this run of the core, or restored as the store kept them.
    let failed_here = view
        .failed_tasks
        .values()
        .all(|f| matches!(f, TaskFailure::WorkersLost { .. } | TaskFailure::Stored(_)));
    prop_assert!(failed_here, "{:?}", view.failed_tasks);
    let (failed, done_and_failed) = (view.tasks_failed, view.tasks_done + view.tasks_failed);
    let job = s.job(j).unwrap();
    if job.state == JobState::Failed {
        prop_assert!(
            max_worker_losses > 0,
            "failed without a loss limit: {:?}",
            error
        );
        if fail_fast {
            prop_assert!(
                matches!(
                    error,
                    Some(JobFailure::Task(
                        TaskFailure::WorkersLost { .. } | TaskFailure::Stored(_)
                    ))
                ),
                "{:?}",
                error
            );
        } else {
            // Every other task ran to its end first.
            prop_assert_eq!(done_and_failed, tasks);
            let first = view.failed_tasks.values().next().cloned();
            prop_assert_eq!(
                error,
                first.map(|first| JobFailure::TooManyFailures {
                    failed,
                    tasks,
                    allowed: 0,
                    first,
                })
            );
        }
    } else {
        prop_assert_eq!(job.state, JobState::Succeeded);
        prop_assert_eq!(job.done_count(), tasks);
        prop_assert_eq!(job.total(), Some(sum_squares(0, tasks * 3)));
    }
    // Exactly once in what was persisted (the values live there, not
    // in memory), each with its exact value.
    prop_assert_eq!(job.results_from(0, usize::MAX, usize::MAX), None);
    let done = job.done_count();
    stored.extend(s.take_recorded());
    let mut seen = std::collections::HashSet::new();
    for r in &stored {
        prop_assert!(seen.insert(r.index), "task {} recorded twice", r.index);
        prop_assert_eq!(
            &r.value,
            &Output::Int(sum_squares(r.index * 3, r.index * 3 + 3))
        );
    }
    prop_assert_eq!(seen.len() as u64, done);
    for w in s.workers() {
        prop_assert_eq!(
            w.running_tasks as usize,
            outstanding.iter().filter(|(o, _)| *o == w.id).count()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_interleaving_completes_every_task_exactly_once(
        steps in prop::collection::vec(step(), 1..200),
        tasks in 1u64..60,
        workers in 1usize..4,
    ) {
        // No loss limit: the job must succeed.
        interleave(steps, tasks, workers, 0, false)?;
    }

    #[test]
    fn with_a_loss_limit_a_job_succeeds_exactly_or_fails_for_lost_workers(
        steps in prop::collection::vec(step(), 1..200),
        tasks in 1u64..60,
        workers in 1usize..4,
        fail_fast in any::<bool>(),
    ) {
        interleave(steps, tasks, workers, 2, fail_fast)?;
    }
}

#[test]
fn a_restored_job_runs_only_what_was_not_recorded() {
    let mut s = Scheduler::new(SchedConfig {
        log_results: true,
        ..Default::default()
    });
    let p = plan("sum-squares", 100, 10, SlotModel::Process);
    let done: Vec<Recorded> = [0u64, 3, 9]
        .iter()
        .map(|&i| Recorded {
            job: 7,
            index: i,
            value: Output::Int(sum_squares(i * 10, i * 10 + 10)),
            run: run_info(1),
            seq: i,
        })
        .collect();
    s.restore(
        7,
        p.clone(),
        RestoredJob {
            state: JobState::Running,
            error: "",
            submitted_ms: 5,
            started_ms: 6,
            finished_ms: 0,
            results: &done,
            failures: &[],
        },
    );
    assert_eq!(s.status().tasks_queued, 7);
    let w = s.worker_joined(hello(4, 0, 0, 4), 10);
    let mut issued = vec![];
    for _ in 0..10 {
        s.dispatch(10);
        let a = assigns(&s.take_actions());
        let outs: Vec<_> = a
            .iter()
            .flat_map(|(_, job, tasks)| tasks.iter().map(move |t| (*job, *t)))
            .map(|(job, t)| {
                issued.push(t.index);
                ok(job, &t, SlotModel::Process, value_of(&s, job, &t))
            })
            .collect();
        s.worker_outcomes(w, outs, 11);
    }
    issued.sort();
    assert_eq!(issued, vec![1, 2, 4, 5, 6, 7, 8]);
    let job = s.job(7).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.total(), Some(sum_squares(0, 100)));
    assert_eq!(s.take_recorded().len(), 7, "only new results are logged");
    // New jobs get ids above the restored ones.
    assert_eq!(s.submit(p, 12), 8);
}

#[test]
fn restore_keeps_ended_jobs_ended_and_ends_fully_recorded_ones() {
    let mut s = Scheduler::new(SchedConfig::default());
    let p = plan("noop", 2, 1, SlotModel::Async);
    let all: Vec<Recorded> = (0..2)
        .map(|i| Recorded {
            job: 1,
            index: i,
            value: Output::Int(i as u128),
            run: run_info(0),
            seq: i,
        })
        .collect();
    let stored = |state, results| RestoredJob {
        state,
        error: "gone",
        submitted_ms: 1,
        started_ms: 2,
        finished_ms: 3,
        results,
        failures: &[],
    };
    s.restore(1, p.clone(), stored(JobState::Running, &all));
    s.restore(2, p.clone(), stored(JobState::Cancelled, &[]));
    assert_eq!(s.job(1).unwrap().state, JobState::Succeeded);
    let c = s.job_view(2).unwrap();
    assert_eq!(c.state, JobState::Cancelled);
    assert_eq!(c.error, Some(&JobFailure::Stored("gone".into())));
    s.worker_joined(hello(0, 0, 4, 1), 5);
    s.dispatch(5);
    assert!(s.take_actions().is_empty());
    let rows = s.job(1).unwrap().results_from(0, 10, usize::MAX).unwrap();
    assert_eq!(values(&rows), ints(&[(0, 0), (1, 1)]));
}

#[test]
fn allowed_failures_let_a_job_succeed_listing_the_failed_tasks() {
    let mut s = Scheduler::new(SchedConfig {
        log_results: true,
        ..Default::default()
    });
    let w = s.worker_joined(hello(4, 0, 0, 1), 0);
    let mut p = plan("sum-squares", 4, 1, SlotModel::Process);
    p.max_attempts = 1;
    p.allow_failures = 1;
    let j = s.submit(p.clone(), 0);
    s.dispatch(0);
    let tasks: Vec<TaskLease> = assigns(&s.take_actions())
        .into_iter()
        .flat_map(|(_, _, t)| t)
        .collect();
    let outs: Vec<_> = tasks
        .iter()
        .map(|t| match t.index {
            2 => failed(j, t, SlotModel::Process, TaskStatus::ExecutorDied),
            i => ok(j, t, SlotModel::Process, (i * i) as u128),
        })
        .collect();
    s.worker_outcomes(w, outs, 1);
    let info = s.job_view(j).unwrap();
    assert_eq!(info.state, JobState::Succeeded);
    assert_eq!((info.tasks_done, info.tasks_failed), (3, 1));
    let listed: Vec<(&u64, &TaskFailure)> = info.failed_tasks.iter().collect();
    let executor_died = TaskFailure::Attempts {
        index: 2,
        input: (2, 3),
        attempts: 1,
        last: TaskStatus::ExecutorDied,
        error: "boom".into(),
    };
    assert_eq!(listed, vec![(&2, &executor_died)]);
    assert_eq!(
        s.job(j).unwrap().results_from(0, 10, usize::MAX),
        None,
        "the store has them"
    );
    let recorded: Vec<(u64, Output)> = s
        .take_recorded()
        .iter()
        .map(|r| (r.index, r.value.clone()))
        .collect();
    assert_eq!(recorded, ints(&[(0, 0), (1, 1), (3, 9)]));
    assert_eq!(s.take_failures().len(), 1);

    // One failure more than allowed: the rest of the job still runs, and
    // fails it once done; with --fail-fast it fails at once.
    for fail_fast in [false, true] {
        let mut p = p.clone();
        p.fail_fast = fail_fast;
        let j2 = s.submit(p, 2);
        s.dispatch(2);
        let tasks: Vec<TaskLease> = assigns(&s.take_actions())
            .into_iter()
            .flat_map(|(_, _, t)| t)
            .collect();
        assert_eq!(tasks.len(), 4);
        let outs: Vec<_> = tasks
            .iter()
            .take(2)
            .map(|t| failed(j2, t, SlotModel::Process, TaskStatus::Failed))
            .collect();
        s.worker_outcomes(w, outs, 3);
        let info = s.job_view(j2).unwrap();
        assert_eq!(info.tasks_failed, 2);
        if fail_fast {
            assert_eq!(info.state, JobState::Failed);
            assert_eq!(info.tasks_running, 0, "its other tasks are dropped");
            assert!(
                matches!(
                    info.error,
                    Some(JobFailure::Task(TaskFailure::Attempts { index: 1, .. }))
                ),
                "{:?}",
                info.error
            );
            continue;
        }
        assert_eq!(info.state, JobState::Running, "{:?}", info.error);
        assert_eq!(info.tasks_running, 2);
        let outs: Vec<_> = tasks[2..]
            .iter()
            .map(|t| ok(j2, t, SlotModel::Process, (t.index * t.index) as u128))
            .collect();
        s.worker_outcomes(w, outs, 4);
        let info = s.job_view(j2).unwrap();
        assert_eq!(info.state, JobState::Failed);
        assert_eq!((info.tasks_done, info.tasks_failed), (2, 2));
        assert_eq!(
            info.error,
            Some(&JobFailure::TooManyFailures {
                failed: 2,
                tasks: 4,
                allowed: 1,
                first: TaskFailure::Attempts {
                    index: 0,
                    input: (0, 1),
                    attempts: 1,
                    last: TaskStatus::Failed,
                    error: "boom".into(),
                },
            })
        );
        assert_eq!(info.total, 4 + 9, "the other tasks' results are kept");
    }
}

#[test]
fn a_total_that_does_not_fit_in_u128_fails_the_job_after_every_task() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 0, 4, 1), 0);
    let j = s.submit(plan("sum-squares", 3, 1, SlotModel::Async), 0);
    s.dispatch(0);
    let outs: Vec<_> = assigns(&s.take_actions())
        .into_iter()
        .flat_map(|(_, _, t)| t)
        .map(|t| ok(j, &t, SlotModel::Async, u128::MAX / 2))
        .collect();
    s.worker_outcomes(w, outs, 1);
    let job = s.job(j).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.done_count(), 3, "every task ran and is kept");
    assert_eq!(job.total(), None);
    assert_eq!(
        s.job_view(j).unwrap().error,
        Some(&JobFailure::TotalOverflow)
    );
}

#[test]
fn jobs_fail_after_waiting_too_long_for_a_model_no_worker_offers() {
    let mut s = Scheduler::new(SchedConfig {
        fail_if_no_workers_ms: Some(1_000),
        ..Default::default()
    });
    // A worker with only async slots: process jobs wait, async jobs run.
    let w = s.worker_joined(hello(0, 0, 4, 1), 0);
    let cpu = s.submit(plan("sum-squares", 10, 1, SlotModel::Process), 0);
    let io = s.submit(plan("noop", 2, 1, SlotModel::Async), 0);
    s.dispatch(0);
    s.take_actions();
    s.tick(500);
    s.worker_seen(w, 900);
    s.tick(999);
    assert_eq!(s.job(cpu).unwrap().state, JobState::Queued);
    assert_eq!(
        s.job_view(cpu).unwrap().waiting,
        Some(WaitingReason::NoWorkersWith(SlotModel::Process))
    );
    s.worker_seen(w, 1_400);
    s.tick(1_500);
    let info = s.job_view(cpu).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(
        info.error,
        Some(&JobFailure::NoWorkers {
            model: SlotModel::Process,
            waited_ms: 1_000
        })
    );
    assert_eq!(s.job(io).unwrap().state, JobState::Running);
}

#[test]
fn a_worker_arriving_in_time_resets_the_no_workers_clock() {
    let mut s = Scheduler::new(SchedConfig {
        fail_if_no_workers_ms: Some(1_000),
        ..Default::default()
    });
    let j = s.submit(plan("sum-squares", 10, 1, SlotModel::Process), 0);
    s.tick(100);
    let w = s.worker_joined(hello(1, 0, 0, 1), 800);
    s.tick(900);
    s.worker_lost(w, 900);
    s.tick(1_200);
    s.tick(2_100);
    assert_eq!(
        s.job(j).unwrap().state,
        JobState::Queued,
        "the clock restarted at 1.2 s"
    );
    s.tick(2_300);
    assert_eq!(s.job(j).unwrap().state, JobState::Failed);
}

#[test]
fn prefetch_spreads_a_short_queue_evenly_over_deep_credit_windows() {
    let mut s = Scheduler::new(SchedConfig::default());
    let a = s.worker_joined(hello(2, 0, 0, 64), 0);
    let b = s.worker_joined(hello(2, 0, 0, 64), 0);
    s.submit(plan("sum-squares", 40, 1, SlotModel::Process), 0);
    s.dispatch(0);
    let mut per: HashMap<WorkerId, usize> = HashMap::new();
    for (w, _, t) in assigns(&s.take_actions()) {
        *per.entry(w).or_default() += t.len();
    }
    assert_eq!(per.get(&a), Some(&20));
    assert_eq!(per.get(&b), Some(&20));
}

#[test]
fn a_worker_can_widen_and_narrow_its_credit_window() {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(0, 2, 0, 1), 0);
    s.submit(plan("noop", 1_000, 1, SlotModel::Thread), 0);
    s.dispatch(0);
    let n: usize = assigns(&s.take_actions())
        .iter()
        .map(|(_, _, t)| t.len())
        .sum();
    assert_eq!(n, 2);
    s.worker_credits(
        w,
        SlotCounts {
            thread: 100,
            ..Default::default()
        },
    );
    s.dispatch(1);
    let n: usize = assigns(&s.take_actions())
        .iter()
        .map(|(_, _, t)| t.len())
        .sum();
    assert_eq!(n, 98);
    // Narrowing below the slots is clamped to the slots; nothing is revoked.
    s.worker_credits(w, SlotCounts::default());
    assert_eq!(s.workers()[0].running_tasks, 100);
}

/// Runs an auto job's probes with the given CPU and wall time per task and
/// returns why its remaining tasks went where they did (checking they all
/// went to the model it names).
fn route_auto(cpu_ns: u64, wall_ns: u64, ready_ns: u64) -> Routing {
    let mut s = Scheduler::new(SchedConfig::default());
    let w = s.worker_joined(hello(2, 2, 8, 8), 0);
    let j = s.submit(auto_plan(20), 0);
    assert_eq!(
        s.job_view(j).unwrap().routing,
        Routing::Probing { probes: 4 }
    );
    s.dispatch(0);
    let probes: Vec<(SlotModel, TaskLease)> = s
        .take_actions()
        .into_iter()
        .flat_map(|a| match a {
            Action::Assign { model, tasks, .. } => {
                tasks.into_iter().map(move |t| (model, t)).collect()
            }
            _ => vec![],
        })
        .collect();
    assert_eq!(probes.len(), 4, "only the probes run first");
    assert!(probes.iter().all(|(m, _)| *m == SlotModel::Thread));
    let outs: Vec<_> = probes
        .iter()
        .map(|(_, t)| Outcome {
            cpu_ns,
            wall_ns,
            ready_ns,
            ..ok(j, t, SlotModel::Thread, t.index as u128)
        })
        .collect();
    s.worker_outcomes(w, outs, 1);
    s.dispatch(1);
    let models: Vec<SlotModel> = s
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Assign { model, .. } => Some(model),
            _ => None,
        })
        .collect();
    assert!(!models.is_empty());
    assert!(models.iter().all(|m| *m == models[0]), "{models:?}");
    let info = s.job_view(j).unwrap();
    assert_eq!(info.plan.model, models[0]);
    assert_eq!(info.tasks_done, 4, "probe results count");
    match info.routing {
        Routing::Probed { model, .. } => assert_eq!(model, models[0]),
        other => panic!("the probes decided nothing: {other:?}"),
    }
    info.routing
}

#[test]
fn auto_routes_cpu_bound_probes_to_process_slots() {
    let why = probed(
        0.9,
        0.0,
        10_000_000,
        ProbeVerdict::CpuBound,
        SlotModel::Process,
    );
    assert_eq!(route_auto(9_000_000, 10_000_000, 0), why);
}

#[test]
fn auto_routes_waiting_probes_to_async_slots() {
    let why = probed(
        0.001,
        0.0,
        100_000_000,
        ProbeVerdict::MostlyWaiting,
        SlotModel::Async,
    );
    assert_eq!(route_auto(100_000, 100_000_000, 0), why);
}

#[test]
fn auto_does_not_take_waiting_for_a_busy_cpu_for_waiting_on_io() {
    // 4 ms of CPU in 10 ms of wall time, 5.5 ms of it queued behind other
    // programs for a CPU: CPU-bound work on a busy machine (89% of the
    // time it was not queued).
    let why = probed(
        16e6 / 18e6,
        0.55,
        10_000_000,
        ProbeVerdict::CpuBound,
        SlotModel::Process,
    );
    assert_eq!(route_auto(4_000_000, 10_000_000, 5_500_000), why);
    // The same share of waiting for a CPU does not make I/O look CPU-bound.
    let why = route_auto(100_000, 100_000_000, 1_000_000);
    assert!(
        matches!(
            why,
            Routing::Probed {
                model: SlotModel::Async,
                ..
            }
        ),
        "{why:?}"
    );
}

#[test]
fn auto_sends_tiny_cpu_tasks_to_the_event_loop_not_to_processes() {
    // 3 µs of CPU in 4 µs: CPU-bound, but far too short for a process slot.
    let why = probed(
        0.75,
        0.0,
        4_000,
        ProbeVerdict::TooShortForProcesses,
        SlotModel::Async,
    );
    assert_eq!(route_auto(3_000, 4_000, 0), why);
    // Just past the threshold, CPU-bound work goes to processes again.
    let why = route_auto(AUTO_TINY_TASK_NS, AUTO_TINY_TASK_NS, 0);
    assert!(
        matches!(
            why,
            Routing::Probed {
                model: SlotModel::Process,
                ..
            }
        ),
        "{why:?}"
    );
}

/// `(index, integer)` rows as outputs.
fn ints(rows: &[(u64, u128)]) -> Vec<(u64, Output)> {
    rows.iter().map(|&(i, v)| (i, Output::Int(v))).collect()
}

/// The (index, output) of each row.
fn values(rows: &[ResultRow]) -> Vec<(u64, Output)> {
    rows.iter().map(|r| (r.index, r.value.clone())).collect()
}

/// A stored result's run facts, with these CPU and wall times.
fn run_info(ns: u64) -> RunInfo {
    RunInfo {
        attempts: 1,
        worker: 1,
        model: Some(SlotModel::Process),
        cpu_ns: ns,
        wall_ns: ns,
        ended_us: 1_800_000_000_000_000 + ns,
    }
}

/// The metrics' counters: done tasks and their run times per model, a
/// failed attempt as a retry, a worker lost by silence and by disconnect
/// with the leases each held, and a late result.
#[test]
fn counters_count_each_event_once_per_model_and_cause() {
    let mut s = Scheduler::new(SchedConfig {
        lease_timeout_ms: 1_000,
        ..SchedConfig::default()
    });
    let w1 = s.worker_joined(hello(0, 2, 0, 1), 0);
    let j = s.submit(plan("noop", 6, 1, SlotModel::Thread), 0);
    s.dispatch(0);
    let (_, _, tasks) = assigns(&s.take_actions()).remove(0);
    assert_eq!(tasks.len(), 2);
    let done = Outcome {
        wall_ns: 2_000_000,
        ..ok(j, &tasks[0], SlotModel::Thread, 0)
    };
    let boom = failed(j, &tasks[1], SlotModel::Thread, TaskStatus::Failed);
    s.worker_outcomes(w1, [done.clone(), boom], 10);
    let c = *s.counters();
    assert_eq!(c.tasks_done[SlotModel::Thread], 1);
    assert_eq!(c.tasks_done[SlotModel::Process], 0);
    assert_eq!(c.tasks_retried[SlotModel::Thread], 1);
    assert_eq!(c.tasks_failed[SlotModel::Thread], 0);
    let run = c.run_time[SlotModel::Thread];
    assert_eq!((run.count(), run.sum), (1, 2_000_000));
    assert_eq!(run.counts[3], 1, "2 ms lands in the 2.5 ms bucket");
    // The same result again is late.
    s.worker_outcomes(w1, [done], 20);
    assert_eq!(s.counters().late_results_dropped, 1);
    assert_eq!(s.counters().tasks_done[SlotModel::Thread], 1);

    // w1 takes two more leases and goes silent; w2 takes two and leaves.
    s.dispatch(20);
    assert_eq!(assigns(&s.take_actions())[0].2.len(), 2);
    let w2 = s.worker_joined(hello(0, 2, 0, 1), 20);
    s.dispatch(20);
    assert_eq!(assigns(&s.take_actions())[0].2.len(), 2);
    s.worker_seen(w2, 1_500);
    s.tick(1_500);
    let c = *s.counters();
    assert_eq!((c.workers_silent, c.leases_expired), (1, 2));
    s.worker_lost(w2, 1_600);
    s.worker_lost(w2, 1_700); // already gone: not counted again
    let c = *s.counters();
    assert_eq!((c.workers_disconnected, c.leases_returned), (1, 2));
    assert_eq!(c.workers_silent, 1);
}
