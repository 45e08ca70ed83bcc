//! Disk full, with real processes: a coordinator whose state file lives on
//! a 2 MiB tmpfs, filled up while jobs are submitted. Every submission gets
//! an answer; a refused one never runs (its `exec` command leaves no mark);
//! once space is freed the coordinator writes again by itself and says so.
//! Needs root to mount the tmpfs; skipped with a message otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{id_of, run_brigade, stderr, stdout, wait_until, Cluster, Slots, DEADLINE};

/// A tmpfs of `size` mounted at a fresh dir; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: statvfs writes into the zeroed struct we own.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_answers_every_submission_runs_no_refused_job_and_recovers_by_itself() {
    let mut c = Cluster::empty();
    let Some(fs) = Tmpfs::mount(&c.dir().join("small"), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let state = fs.0.join("state.db");
    let marks = c.dir().join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    c.start_coordinator(
        "127.0.0.1:0",
        &[
            "--state",
            &state.to_string_lossy(),
            "--lease-timeout-ms",
            "1000",
            "--heartbeat-ms",
            "200",
        ],
    );
    c.spawn_worker_with("exec", Slots::new(0, 2, 0), &["--allow-exec", "--insecure"]);
    c.wait_workers(1);
    // Job K's tasks leave a mark named after K: a job that ran shows.
    let submit = |k: usize| {
        let cmd = format!(
            "touch {}/job-{k}-$BRIGADE_TASK_INDEX; echo ok",
            marks.display()
        );
        let args = [
            "submit",
            "exec",
            "--range",
            "0..20",
            "--model",
            "thread",
            "--arg",
            &format!("cmd={cmd}"),
            "--format",
            "json",
            "--coordinator",
            c.url(),
        ];
        let started = Instant::now();
        // Every call gets an answer well within the deadline.
        let out = run_brigade(&args, &[], Duration::from_secs(30));
        (out, started.elapsed())
    };
    let (first, _) = submit(0);
    assert!(first.status.success(), "{}", stderr(&first));
    c.wait_job(id_of(&common::parse_json(&[], &stdout(&first))));
    // Fill the tmpfs but for a little room.
    let filler = fs.0.join("filler");
    let room = 48 * 1024;
    let fill = fs.free_bytes().saturating_sub(room);
    std::fs::write(&filler, vec![7u8; fill as usize]).expect("filler");
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for k in 1..40 {
        let (out, took) = submit(k);
        if out.status.success() {
            accepted.push((k, id_of(&common::parse_json(&[], &stdout(&out)))));
        } else {
            // In JSON mode the error is a JSON value on stdout.
            let err = common::parse_json(&[], &stdout(&out));
            let message = err["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("could not be stored"),
                "submission {k} failed otherwise ({took:?}): {err}; stderr: {}",
                stderr(&out)
            );
            refused.push(k);
            if refused.len() >= 3 {
                break;
            }
        }
    }
    assert!(!refused.is_empty(), "the disk never filled: {accepted:?}");
    eprintln!(
        "disk full: {} submissions accepted, {} refused",
        accepted.len(),
        refused.len()
    );
    // Free the space: the coordinator writes again by itself.
    std::fs::remove_file(&filler).expect("free");
    let recovered = wait_until("a submission is accepted again", DEADLINE, || {
        let (out, _) = submit(100);
        out.status
            .success()
            .then(|| id_of(&common::parse_json(&[], &stdout(&out))))
    });
    for (_, id) in accepted.iter().chain([(100, recovered)].iter()) {
        let end = c.wait_job(*id);
        assert_eq!(end["state"], "succeeded", "job {id}: {end}");
    }
    // A refused submission never ran: none of its tasks left a mark.
    let names: Vec<String> = std::fs::read_dir(&marks)
        .expect("marks")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for k in &refused {
        let prefix = format!("job-{k}-");
        assert!(
            !names.iter().any(|n| n.starts_with(&prefix)),
            "refused submission {k} ran: {names:?}"
        );
    }
    let log = std::fs::read_to_string(c.dir().join("coordinator.log")).unwrap_or_default();
    assert!(
        log.contains("state store writes again"),
        "no recovery logged:\n{log}"
    );
    c.kill_coordinator();
    drop(fs);
}
