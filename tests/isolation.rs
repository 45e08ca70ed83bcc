//! What a task starts dies with it, on every model: `exec` commands that
//! leave processes behind (`sleep N & sleep N; echo 1`, N unique per case)
//! are cancelled, time out, or lose their worker to SIGKILL; then `/proc`
//! is scanned for processes with N in their argv until none is left.
//! Also: `brigade up` SIGKILLed leaves none of its processes behind.

mod common;

use std::time::{Duration, Instant};

use common::{id_of, proc_alive, send_signal, wait_until, Cluster, Slots, DEADLINE, FAST_LEASES};

/// How long survivors get to die after the event.
const DIE_WITHIN: Duration = Duration::from_secs(10);

/// A number no other process has in its argv: this test binary's pid and
/// the case.
fn marker(case: u64) -> u64 {
    4_000_000_000 + u64::from(std::process::id() % 100_000) * 100 + case
}

/// Live processes with `marker` as a whole argument.
fn with_marker(marker: u64) -> Vec<u32> {
    let needle = marker.to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()))
                && proc_alive(pid)
        })
        .collect()
}

fn wait_for_processes(marker: u64, n: usize) {
    wait_until(&format!("{n} processes with {marker}"), DEADLINE, || {
        (with_marker(marker).len() >= n).then_some(())
    });
}

fn assert_none_survive(marker: u64, after: &str) {
    let start = Instant::now();
    loop {
        let left = with_marker(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < DIE_WITHIN,
            "{} process(es) started by tasks survive {after} by {DIE_WITHIN:?}: {left:?}",
            left.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two tasks of `model`, each a shell with two sleeps (one in the
/// background): 4 processes with the marker, plus the shells.
fn submit_sleepers(c: &Cluster, model: &str, marker: u64, extra: &[&str]) -> u64 {
    let cmd = format!("cmd=sleep {marker} & sleep {marker}; echo 1");
    let mut args = vec![
        "exec",
        "--range",
        "0..2",
        "--arg",
        &cmd,
        "--model",
        model,
        "--max-attempts",
        "1",
    ];
    args.extend_from_slice(extra);
    id_of(&c.submit_json(&args))
}

fn exec_cluster() -> Cluster {
    let mut c = Cluster::start(&FAST_LEASES);
    c.spawn_worker_with("w1", Slots::new(2, 2, 2), &["--allow-exec", "--insecure"]);
    c.wait_workers(1);
    c
}

/// Cancel, timeout and worker SIGKILL on one model: 0 survivors each time.
fn nothing_survives_on(model: &str, base: u64) {
    let mut c = exec_cluster();

    let m = marker(base);
    let id = submit_sleepers(&c, model, m, &[]);
    wait_for_processes(m, 4);
    c.brigade_ok(&["cancel", &id.to_string()]);
    assert_none_survive(m, &format!("the cancel of a {model} job"));
    let end = c.wait_job(id);
    assert_eq!(end["state"], "cancelled", "job: {end}");

    let m = marker(base + 1);
    let submitted = Instant::now();
    let id = submit_sleepers(&c, model, m, &["--timeout-ms", "1000"]);
    wait_for_processes(m, 4);
    let end = c.wait_job(id);
    let took = submitted.elapsed();
    assert_eq!(end["state"], "failed", "job: {end}");
    assert!(
        end["error"].as_str().is_some_and(|e| e.contains("timeout")),
        "job: {end}"
    );
    // Reported at the timeout, not when the command would have ended.
    assert!(
        took < Duration::from_secs(15),
        "a {model} job with a 1000 ms timeout took {took:?}"
    );
    assert_none_survive(m, &format!("the timeout of a {model} job"));

    let m = marker(base + 2);
    submit_sleepers(&c, model, m, &[]);
    wait_for_processes(m, 4);
    let worker = c.worker_pid(0);
    c.kill_worker(0);
    assert_none_survive(
        m,
        &format!("the SIGKILL of worker {worker} ({model} slots)"),
    );
}

#[test]
fn nothing_a_process_slot_task_starts_survives_cancel_timeout_or_worker_death() {
    nothing_survives_on("process", 10);
}

#[test]
fn nothing_a_thread_slot_task_starts_survives_cancel_timeout_or_worker_death() {
    nothing_survives_on("thread", 20);
}

#[test]
fn nothing_an_async_slot_task_starts_survives_cancel_timeout_or_worker_death() {
    nothing_survives_on("async", 30);
}

/// A command's leftovers die when its shell exits, and where the worker has
/// cgroup v2 leaves, even a process that left the group with `setsid`.
#[test]
fn a_finished_command_leaves_nothing_behind_even_past_setsid_with_cgroups() {
    let c = exec_cluster();
    let (plain, escaped) = (marker(40), marker(41));
    let cmd = format!(
        "cmd=sleep {plain} >/dev/null 2>&1 & setsid sleep {escaped} >/dev/null 2>&1 & echo 7"
    );
    for model in ["process", "thread", "async"] {
        let job = c.submit_json(&["exec", "--range", "0..1", "--arg", &cmd, "--model", model]);
        let end = c.wait_job(id_of(&job));
        assert_eq!(end["state"], "succeeded", "job: {end}");
        assert_none_survive(plain, &format!("its {model} task's end"));
        if c.worker_log(0).contains("cgroup v2 leaves of their own") {
            assert_none_survive(escaped, &format!("its {model} task's end (setsid, cgroup)"));
        } else {
            eprintln!("no cgroup v2 containment here: a setsid escapee is not checked");
            for pid in with_marker(escaped) {
                send_signal(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// `brigade up` is one unit: SIGKILL it mid-task and neither its workers,
/// their executors nor the commands their tasks started outlive it.
#[test]
fn a_sigkilled_brigade_up_leaves_no_process_behind() {
    let dir = common::TempDir::new("up");
    let state = dir.path().join("up.db");
    let mut up = common::brigade_command(&[
        "up",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
        "-w",
        "2",
        "--procs",
        "1",
        "--threads",
        "1",
        "--async",
        "1",
        "--allow-exec",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("brigade up starts");
    let up_pid = up.id();
    let line = common::first_line_in_background(up.stdout.take().expect("stdout"))
        .recv_timeout(DEADLINE)
        .expect("brigade up announces its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let client = common::Client::new(url);
    wait_until("2 workers linked to up", DEADLINE, || {
        (client.workers_json().len() == 2).then_some(())
    });
    let m = marker(50);
    let cmd = format!("cmd=sleep {m} & sleep {m}; echo 1");
    for model in ["process", "thread", "async"] {
        client.submit_json(&["exec", "--range", "0..1", "--arg", &cmd, "--model", model]);
    }
    wait_for_processes(m, 6);
    let family = descendants(up_pid);
    assert!(family.len() >= 4, "up's processes: {family:?}");
    send_signal(up_pid as i32, libc::SIGKILL);
    let _ = up.wait();
    assert_none_survive(m, "the SIGKILL of brigade up");
    wait_until("every process of brigade up to end", DIE_WITHIN, || {
        let left: Vec<u32> = family.iter().copied().filter(|&p| proc_alive(p)).collect();
        left.is_empty().then_some(())
    });
}

/// Every live descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for child in common::child_pids(p) {
            all.push(child);
            frontier.push(child);
        }
    }
    all
}

/// One coordinator per state file: a second one on the same file exits
/// non-zero naming the file and the pid that holds it; the first carries on.
#[test]
fn a_second_coordinator_on_one_state_file_is_refused_and_the_first_serves_on() {
    let (mut c, _) = Cluster::start_durable(&[]);
    let state = c.dir().join("state.db");
    let holder = c.coordinator_pid();
    let second = common::run_brigade(
        &[
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().unwrap(),
        ],
        &[],
        common::CLI_DEADLINE,
    );
    let err = common::stderr(&second);
    assert_eq!(second.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&state.display().to_string())
            && err.contains(&format!("pid {holder}"))
            && err.contains("another coordinator"),
        "the refusal names the file and the holder: {err}"
    );
    c.spawn_worker("w1", Slots::new(0, 0, 2));
    c.wait_workers(1);
    let job = c.submit_json(&[
        "sum-squares",
        "--range",
        "0..1000",
        "--chunk",
        "100",
        "--model",
        "async",
    ]);
    let end = c.wait_job(id_of(&job));
    assert_eq!(
        end["state"], "succeeded",
        "the first coordinator serves on: {end}"
    );
}

/// Detection time: a SIGSTOPped worker's task runs again on another worker
/// within the lease timeout (plus scheduling) after the stop — the
/// coordinator wakes at the lease deadline itself (bound: lease + 100 ms;
/// asserted with room for a loaded machine).
#[test]
fn a_frozen_worker_s_task_runs_again_soon_after_the_lease_timeout() {
    const LEASE_MS: u64 = 1_000;
    let mut c = Cluster::start(&["--lease-timeout-ms", "1000", "--heartbeat-ms", "200"]);
    for name in ["w1", "w2"] {
        c.spawn_worker_with(name, Slots::new(0, 0, 1), &["--allow-exec", "--insecure"]);
    }
    c.wait_workers(2);
    let log = c.dir().join("starts.log");
    let cmd = format!(
        "cmd=echo $PPID $(date +%s%N) >> {}; sleep {}",
        log.display(),
        marker(60)
    );
    c.submit_json(&["exec", "--range", "0..1", "--arg", &cmd, "--model", "async"]);
    let starts = || -> Vec<(u32, u128)> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (pid, ns) = l.split_once(' ')?;
                Some((pid.parse().ok()?, ns.trim().parse().ok()?))
            })
            .collect()
    };
    let (first, _) = wait_until("the task to start", DEADLINE, || starts().first().copied());
    let holder = (0..2)
        .find(|&i| c.worker_pid(i) == first)
        .unwrap_or_else(|| panic!("the task's shell's parent {first} is no worker"));
    c.freeze_worker(holder);
    let frozen_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let (again_on, again_at) = wait_until("the task to run again", DEADLINE, || {
        starts().get(1).copied()
    });
    c.thaw_worker(holder);
    assert_ne!(again_on, first, "it ran again on the other worker");
    let after_ms = (again_at.saturating_sub(frozen_at) / 1_000_000) as u64;
    eprintln!("re-run {after_ms} ms after the stop (lease {LEASE_MS} ms)");
    assert!(
        after_ms <= LEASE_MS + 500,
        "the task ran again {after_ms} ms after its worker stopped (lease {LEASE_MS} ms)"
    );
}
