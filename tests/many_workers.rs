//! `brigade worker --count N`: N workers in one process, each its own link
//! (connection, heartbeats, leases), as the coordinator sees N workers.
//! Fifty links run a no-op job with exact results and every link takes
//! part; a second process holding a tenth of the links is SIGKILLed mid-job,
//! its links vanish from `workers` and their tasks are run again elsewhere,
//! every result still exact.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    assert_succeeded, csv_index_value, id_of, identity, results_csv, Cluster, Slots, FAST_LEASES,
};

/// One thread slot and one async slot per link, no executor processes.
const PER_LINK: Slots = Slots::new(0, 1, 1);

/// The worker names of `brigade workers --format json`, with the pids that
/// hold them.
fn linked(c: &Cluster) -> BTreeMap<String, u64> {
    c.workers_json()
        .iter()
        .map(|w| {
            let name = w["name"].as_str().unwrap_or_default().to_string();
            (name, w["pid"].as_u64().unwrap_or_default())
        })
        .collect()
}

/// Result rows of `results ID --format csv` per worker name.
fn tasks_per_worker(c: &Cluster, id: u64) -> BTreeMap<String, u64> {
    let csv = c.brigade_ok(&["results", &id.to_string(), "--format", "csv"]);
    let mut per = BTreeMap::new();
    for row in csv.lines().skip(1) {
        // index,value,input,attempts,worker,model,cpu_ms,wall_ms
        let worker = row.split(',').nth(4).expect("a worker column");
        *per.entry(worker.to_string()).or_insert(0) += 1;
    }
    per
}

#[test]
fn fifty_links_in_one_process_are_fifty_workers_and_a_tenth_may_vanish() {
    let mut c = Cluster::start(&FAST_LEASES);
    let sim = c.spawn_worker_with("sim", PER_LINK, &["--count", "45"]);
    let gone = c.spawn_worker_with("gone", PER_LINK, &["--count", "5"]);
    let workers = c.wait_workers(50);
    for w in &workers {
        let slots = ["process_slots", "thread_slots", "async_slots"].map(|k| w[k].as_u64());
        assert_eq!(slots, [Some(0), Some(1), Some(1)], "{w}");
    }
    let names = linked(&c);
    let want: BTreeSet<String> = (1..=45)
        .map(|i| format!("sim-{i}"))
        .chain((1..=5).map(|i| format!("gone-{i}")))
        .collect();
    assert_eq!(names.keys().cloned().collect::<BTreeSet<_>>(), want);
    let (sim_pid, gone_pid) = (c.worker_pid(sim), c.worker_pid(gone));
    for (name, pid) in &names {
        let holder = if name.starts_with("sim-") {
            sim_pid
        } else {
            gone_pid
        };
        assert_eq!(*pid, u64::from(holder), "{name} lives in its process");
    }

    // A no-op job over all fifty: exact, and every link ran some of it.
    let job = c.submit_json(&["noop", "--range", "0..20000", "--model", "thread", "--wait"]);
    assert_succeeded(&job, 20_000);
    c.assert_results(id_of(&job), identity(20_000));
    let per = tasks_per_worker(&c, id_of(&job));
    assert_eq!(
        per.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "{per:?}"
    );

    // A tenth of the links vanish at once mid-job (SIGKILL of their process):
    // they leave `workers`, their tasks run elsewhere, every result exact.
    let job = c.submit_json(&[
        "sleep", "--range", "0..1500", "--arg", "ms=20", "--model", "thread",
    ]);
    let id = id_of(&job);
    c.wait_mid_job(id, 100);
    c.kill_worker(gone);
    let left = c.wait_workers(45);
    assert!(
        left.iter()
            .all(|w| w["name"].as_str().is_some_and(|n| n.starts_with("sim-"))),
        "{left:?}"
    );
    let job = c.wait_job(id);
    assert_succeeded(&job, 1_500);
    // The vanished links held tasks (each link holds its slot's task and
    // its prefetch), which ran again.
    assert!(job["retries"].as_u64() > Some(0), "{job}");
    let csv = c.brigade_ok(&["results", &id.to_string(), "--format", "csv"]);
    assert_eq!(csv_index_value(&csv), results_csv(identity(1_500)));
}
