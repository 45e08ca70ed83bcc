//! A generated table of damaged copies of a real state file (truncations,
//! byte flips, zeroed pages, damaged and missing logs, foreign databases,
//! odd rows with and without valid checksums). For every one, opening the
//! coordinator on it (the actor: store checks, load, restore) must end in
//! a clear refusal that left the files' bytes as they were, or a state in
//! which every job is as it was or visibly damaged and every result served
//! equals the original or is refused: no panic, no hang, no changed answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use brigade_proto::v1::{JobSpec, JobState, ResultsOrder};
use brigade_proto::{Output, SlotModel};
use prost::Message;
use rusqlite::{params, Connection};

use super::{Actor, CoordinatorConfig, DAMAGED};
use crate::inputs::Inputs;
use crate::row_sum;
use crate::sched::{Recorded, RunInfo};
use crate::store::{JobEnd, ReadError, Store, StoreReader, WriteBatch};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "brigade-damage-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn spec(workload: &str, end: u64, chunk: u64) -> JobSpec {
    JobSpec {
        workload: workload.into(),
        range_start: 0,
        range_end: end,
        chunk,
        ..Default::default()
    }
}

fn result(job: u64, index: u64, value: Output, seq: u64) -> Recorded {
    Recorded {
        job,
        index,
        value,
        run: RunInfo {
            attempts: 1,
            worker: 1,
            model: Some(SlotModel::Thread),
            cpu_ns: 1_000 + index,
            wall_ns: 2_000 + index,
            ended_us: 1_800_000_000_000_000 + index,
        },
        seq,
    }
}

/// The files of one state: the database, its log, the commit record.
#[derive(Clone)]
struct Files {
    db: Vec<u8>,
    wal: Option<Vec<u8>>,
    commits: Option<Vec<u8>>,
}

impl Files {
    fn read(path: &Path) -> Files {
        let beside = |s: &str| std::fs::read(format!("{}{s}", path.display())).ok();
        Files {
            db: std::fs::read(path).expect("db"),
            wal: beside("-wal"),
            commits: beside(".commits"),
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, &self.db).expect("write db");
        if let Some(w) = &self.wal {
            std::fs::write(format!("{}-wal", path.display()), w).expect("write wal");
        }
        if let Some(c) = &self.commits {
            std::fs::write(format!("{}.commits", path.display()), c).expect("write commits");
        }
    }
}

/// A real state file: seven jobs (succeeded with integer and byte
/// results, failed with task failures, an inputs job, running ones), its
/// later commits still in the log. Returns its files while the store is
/// open (closing would checkpoint the log away) and a copy checkpointed
/// into the database alone.
fn real_state() -> (Files, Files) {
    let d = dir("origin");
    let path = d.join("state.db");
    let mut s = Store::open(&path).expect("open");
    let mut inputs = Inputs::default();
    for i in 0..50 {
        inputs.push(format!("{{\"item\": {i}}}").as_bytes());
    }
    s.commit(&WriteBatch {
        new_workers: vec![(1, "w1".into())],
        new_jobs: vec![
            (1, spec("sum-squares", 3_000, 1), 10, String::new()),
            (2, spec("noop", 40, 1), 11, "alice".into()),
            (3, spec("sum-squares", 100, 10), 12, String::new()),
            (
                4,
                JobSpec {
                    has_inputs: true,
                    ..spec("noop", 50, 1)
                },
                13,
                String::new(),
            ),
        ],
        new_inputs: vec![(4, Arc::new(inputs))],
        ..Default::default()
    })
    .expect("commit");
    // Job 1 succeeds in three commits; job 2's outputs are bytes.
    for part in 0..3u64 {
        let results = (part * 1_000..(part + 1) * 1_000)
            .map(|i| result(1, i, Output::Int(u128::from(i * i) << 40), i))
            .collect();
        s.commit(&WriteBatch {
            results,
            ..Default::default()
        })
        .expect("commit");
    }
    s.commit(&WriteBatch {
        results: (0..40)
            .map(|i| result(2, i, Output::Bytes(format!("out-{i}").into_bytes()), i))
            .collect(),
        ends: vec![
            JobEnd {
                job: 1,
                state: JobState::Succeeded,
                error: String::new(),
                started_ms: 20,
                finished_ms: 30,
            },
            JobEnd {
                job: 2,
                state: JobState::Succeeded,
                error: String::new(),
                started_ms: 21,
                finished_ms: 31,
            },
        ],
        ..Default::default()
    })
    .expect("commit");
    s.conn_checkpoint();
    // Later commits stay in the log: job 3 fails, job 4 half done, jobs 5–7.
    s.commit(&WriteBatch {
        new_jobs: vec![
            (5, spec("sum-squares", 1_000, 1), 14, String::new()),
            (6, spec("noop", 10, 1), 15, "bob".into()),
            (7, spec("sum-squares", 64, 8), 16, String::new()),
        ],
        results: (0..9)
            .map(|i| result(3, i, Output::Int(u128::from(i) + 7), i))
            .chain((0..25).map(|i| result(4, i, Output::Bytes(vec![b'x'; 3]), i)))
            .chain((0..500).map(|i| result(5, i, Output::Int(u128::from(i) * 3), i)))
            .collect(),
        failures: vec![(3, 9, "task 9 failed: boom".into())],
        ends: vec![JobEnd {
            job: 3,
            state: JobState::Failed,
            error: "1 task failed".into(),
            started_ms: 22,
            finished_ms: 32,
        }],
        ..Default::default()
    })
    .expect("commit");
    s.commit(&WriteBatch {
        results: (0..8)
            .map(|i| result(7, i, Output::Int(u128::MAX - u128::from(i)), i))
            .collect(),
        ends: vec![JobEnd {
            job: 7,
            state: JobState::Succeeded,
            error: String::new(),
            started_ms: 23,
            finished_ms: 33,
        }],
        ..Default::default()
    })
    .expect("commit");
    let live = Files::read(&path);
    drop(s);
    let closed = Files::read(&path);
    assert!(
        live.wal.as_ref().is_some_and(|w| !w.is_empty()),
        "a log to damage"
    );
    let _ = std::fs::remove_dir_all(&d);
    (live, closed)
}

/// A job as clients see it, and every result served.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    state: i32,
    error: String,
    results: BTreeMap<u64, Output>,
}

#[derive(Debug)]
enum Outcome {
    Refused(String),
    /// Jobs (damaged ones by their error), and per job the served results
    /// or the refusal of a damaged row.
    Opened(BTreeMap<u64, Answer>, Vec<String>),
}

/// Opens the coordinator's state on `path`, as `brigade coordinator`
/// would, and reads back every job and every result it would serve.
fn open(path: &Path) -> Outcome {
    let config = CoordinatorConfig {
        state: Some(path.to_path_buf()),
        workloads: crate::testing::catalog(),
        ..CoordinatorConfig::default()
    };
    let actor = match Actor::new(config) {
        Ok(a) => a,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let infos = actor.list_jobs();
    let reader = StoreReader::open(path).expect("a reader beside an opened store");
    let (mut jobs, mut refusals) = (BTreeMap::new(), Vec::new());
    for info in infos {
        let id = info.job_id;
        let mut results = BTreeMap::new();
        if !info.error.starts_with(DAMAGED) {
            match reader.results_from(id, 0, ResultsOrder::Index, usize::MAX, usize::MAX) {
                Ok((rows, _)) => results.extend(rows.into_iter().map(|r| (r.index, r.value))),
                Err(e @ ReadError::Damaged { .. }) => refusals.push(e.to_string()),
                Err(e) => panic!("reading job {id}'s results: {e}"),
            }
        }
        jobs.insert(
            id,
            Answer {
                state: info.state,
                error: info.error,
                results,
            },
        );
    }
    drop(actor);
    Outcome::Opened(jobs, refusals)
}

fn hash(files: &Files) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&files.db);
    h.update(&[0xff]);
    // No log and an empty one are the same state (a read-only open of a
    // WAL database may create the empty file).
    h.update(files.wal.as_deref().unwrap_or(b""));
    h.digest()
}

/// The cases: a name and the damaged files.
fn cases(live: &Files, closed: &Files) -> Vec<(String, Files)> {
    let mut out = Vec::new();
    let page = 4096;
    let db_len = live.db.len();
    let wal = live.wal.clone().expect("a log");
    // Truncated databases (the log kept).
    for cut in [
        100,
        1_000,
        page,
        page + 17,
        2 * page,
        db_len / 2,
        db_len - page,
        db_len - 1,
    ] {
        let mut f = live.clone();
        f.db.truncate(cut.min(db_len - 1));
        out.push((format!("db cut to {cut} bytes"), f));
    }
    // Truncated logs: inside the header, at frame boundaries, mid-frame.
    let frame = 24 + page;
    let frames = (wal.len() - 32) / frame;
    for cut in [0, 10, 31, 32, 32 + 100, 32 + frame, 32 + frame + 500]
        .into_iter()
        .chain(
            (1..frames)
                .step_by((frames / 6).max(1))
                .map(|k| 32 + k * frame),
        )
        .chain([wal.len() - 1, wal.len() - 24])
    {
        let mut f = live.clone();
        f.wal.as_mut().expect("wal").truncate(cut);
        out.push((format!("wal cut to {cut} bytes"), f));
    }
    // The log gone, and the log of an earlier moment put back.
    let mut f = live.clone();
    f.wal = None;
    out.push(("wal deleted".into(), f));
    let mut f = live.clone();
    let mut w = wal.clone();
    w.truncate(32 + frame);
    f.wal = Some(w);
    out.push(("wal of an earlier moment".into(), f));
    // Byte flips in the database, across every page.
    let step = (db_len / 40).max(1);
    for at in (0..db_len).step_by(step).map(|a| a + 7) {
        let mut f = closed.clone();
        if at < f.db.len() {
            f.db[at] ^= 0x5a;
            out.push((format!("db byte {at} flipped"), f));
        }
    }
    // Byte flips in the log: its header and its frames.
    for at in [0, 5, 9, 13, 17, 21, 26, 30]
        .into_iter()
        .chain((0..20).map(|k| 32 + k * (wal.len() - 32) / 20 + 30))
    {
        let mut f = live.clone();
        f.wal.as_mut().expect("wal")[at] ^= 0x81;
        out.push((format!("wal byte {at} flipped"), f));
    }
    // Zeroed pages of the database (every page), and zeroed log frames.
    for p in 0..db_len / page {
        let mut f = closed.clone();
        f.db[p * page..(p + 1) * page].fill(0);
        out.push((format!("db page {} zeroed", p + 1), f));
    }
    for k in [0, frames / 2, frames - 1] {
        let mut f = live.clone();
        let at = 32 + k * frame;
        f.wal.as_mut().expect("wal")[at..at + frame].fill(0);
        out.push((format!("wal frame {k} zeroed"), f));
    }
    // Foreign SQLite files.
    for (name, sql) in [
        ("foreign database", "CREATE TABLE users (id INTEGER, name TEXT);"),
        ("foreign database with a version", "CREATE TABLE t (x); PRAGMA user_version = 6;"),
        (
            "brigade-like tables from the future",
            "CREATE TABLE jobs (id); CREATE TABLE meta (k); CREATE TABLE results (x); PRAGMA user_version = 60;",
        ),
    ] {
        let d = dir("foreign");
        let p = d.join("f.db");
        let c = Connection::open(&p).expect("foreign");
        c.execute_batch(sql).expect("foreign schema");
        drop(c);
        out.push((
            name.into(),
            Files {
                db: std::fs::read(&p).expect("foreign bytes"),
                wal: None,
                commits: None,
            },
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
    // Odd rows, written with SQL on a copy: once with checksums made to
    // match (the range checks must catch them), once without.
    // (name, SQL, whether a writer that also fixed the checksums would be
    // caught: a value rewritten consistently is not damage one can see).
    let odd: &[(&str, &str, bool)] = &[
        ("job id -5", "UPDATE jobs SET id = -5 WHERE id = 6", true),
        ("job id 0", "UPDATE jobs SET id = 0 WHERE id = 6", true),
        (
            "result index 10^9",
            "UPDATE results SET idx = 1000000000 WHERE job_id = 1 AND idx = 5",
            true,
        ),
        (
            "result of job -5",
            "UPDATE results SET job_id = -5 WHERE job_id = 1 AND idx = 6",
            true,
        ),
        (
            "result value changed",
            "UPDATE results SET lo = lo + 1 WHERE job_id = 1 AND idx = 7",
            false,
        ),
        (
            "byte output changed",
            "UPDATE results SET output = x'00' WHERE job_id = 2 AND idx = 3",
            false,
        ),
        (
            "result index negative",
            "UPDATE results SET idx = -1 WHERE job_id = 5 AND idx = 3",
            true,
        ),
        (
            "result of a succeeded job deleted",
            "DELETE FROM results WHERE job_id = 7 AND idx = 2",
            true,
        ),
        (
            "failure index 10^9",
            "UPDATE failed_tasks SET idx = 1000000000",
            true,
        ),
        ("state 99", "UPDATE jobs SET state = 99 WHERE id = 5", true),
        (
            "spec undecodable",
            "UPDATE jobs SET spec = x'ffffffff' WHERE id = 6",
            true,
        ),
        (
            "inputs part changed",
            "UPDATE inputs SET data = x'00' WHERE job_id = 4",
            false,
        ),
        (
            "inputs part deleted",
            "DELETE FROM inputs WHERE job_id = 4",
            true,
        ),
        ("worker id -5", "UPDATE workers SET id = -5", true),
        (
            "times negative",
            "UPDATE jobs SET submitted_ms = -1 WHERE id = 2",
            false,
        ),
        (
            "spec as text",
            "UPDATE jobs SET spec = 'text' WHERE id = 3",
            true,
        ),
    ];
    let huge = {
        let mut s = spec("sum-squares", u64::MAX, 1);
        s.range_start = 0;
        s.encode_to_vec()
    };
    let zero_chunk = spec("sum-squares", 100, 0).encode_to_vec();
    let specs: &[(&str, &[u8])] = &[("range 0..2^64-1", &huge), ("chunk 0", &zero_chunk)];
    for resum in [false, true] {
        for &(name, sql, caught_when_resummed) in odd {
            if resum && !caught_when_resummed {
                continue;
            }
            out.push((
                format!("{name}{}", if resum { " (sums fixed)" } else { "" }),
                edited(closed, |c| {
                    c.execute_batch(sql).expect("odd row");
                    if resum {
                        fix_sums(c);
                    }
                }),
            ));
        }
        for (name, bytes) in specs {
            out.push((
                format!("{name}{}", if resum { " (sums fixed)" } else { "" }),
                edited(closed, |c| {
                    c.execute("UPDATE jobs SET spec = ?1 WHERE id = 5", params![bytes])
                        .expect("odd spec");
                    if resum {
                        fix_sums(c);
                    }
                }),
            ));
        }
    }
    out
}

/// A copy of `files` changed by `edit` through a plain SQLite connection.
fn edited(files: &Files, edit: impl FnOnce(&Connection)) -> Files {
    let d = dir("edit");
    let p = d.join("e.db");
    files.write(&p);
    let c = Connection::open(&p).expect("edit open");
    edit(&c);
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    drop(c);
    let out = Files::read(&p);
    let _ = std::fs::remove_dir_all(&d);
    out
}

/// Recomputes every row's checksum, as a writer that damaged rows
/// consistently would.
fn fix_sums(c: &Connection) {
    type JobRow = (i64, Vec<u8>, i64, String, i64, String, i64, i64);
    let jobs: Vec<JobRow> = c
        .prepare("SELECT id, CAST(spec AS BLOB), submitted_ms, owner, state, error, started_ms, finished_ms FROM jobs")
        .expect("jobs")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .expect("jobs")
        .collect::<Result<_, _>>()
        .expect("jobs");
    for (id, spec, sub, owner, state, error, started, finished) in jobs {
        c.execute(
            "UPDATE jobs SET spec_sum = ?2, end_sum = ?3 WHERE id = ?1",
            params![
                id,
                row_sum::job_spec(id, &spec, sub, &owner),
                row_sum::job_end(id, state, &error, started, finished)
            ],
        )
        .expect("job sums");
    }
    type Row = (
        i64,
        i64,
        i64,
        i64,
        Option<Vec<u8>>,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let rows: Vec<Row> = c
        .prepare("SELECT job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq, ended_us FROM results")
        .expect("results")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })
        .expect("results")
        .collect::<Result<_, _>>()
        .expect("results");
    for (job, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq, ended_us) in rows
    {
        let sum = row_sum::result(&row_sum::ResultCols {
            job,
            idx,
            lo,
            hi,
            output: output.as_deref(),
            attempts,
            worker,
            model,
            cpu_ns,
            wall_ns,
            seq,
            ended_us,
        });
        c.execute(
            "UPDATE results SET sum = ?3 WHERE job_id = ?1 AND idx = ?2",
            params![job, idx, sum],
        )
        .expect("result sum");
    }
    let failed: Vec<(i64, i64, String)> = c
        .prepare("SELECT job_id, idx, error FROM failed_tasks")
        .expect("failed")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("failed")
        .collect::<Result<_, _>>()
        .expect("failed");
    for (job, idx, error) in failed {
        c.execute(
            "UPDATE failed_tasks SET sum = ?3 WHERE job_id = ?1 AND idx = ?2",
            params![job, idx, row_sum::failed_task(job, idx, &error)],
        )
        .expect("failure sum");
    }
    let inputs: Vec<(i64, i64, Vec<u8>)> = c
        .prepare("SELECT job_id, part, data FROM inputs")
        .expect("inputs")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("inputs")
        .collect::<Result<_, _>>()
        .expect("inputs");
    for (job, part, data) in inputs {
        c.execute(
            "UPDATE inputs SET sum = ?3 WHERE job_id = ?1 AND part = ?2",
            params![job, part, row_sum::input_part(job, part, &data)],
        )
        .expect("input sum");
    }
}

/// Whether `got` says nothing the original did not: every job there is
/// as it was (same state, same error, results a subset of the original's
/// with equal values) or visibly damaged; none appears from nowhere.
fn check_answers(
    name: &str,
    original: &BTreeMap<u64, Answer>,
    got: &BTreeMap<u64, Answer>,
) -> Result<(), String> {
    for (id, answer) in got {
        if answer.error.starts_with(DAMAGED) {
            continue;
        }
        let Some(orig) = original.get(id) else {
            return Err(format!("{name}: job {id} appeared: {answer:?}"));
        };
        let terminal = |s: i32| JobState::try_from(s).is_ok_and(|s| s.is_terminal());
        if terminal(orig.state) != terminal(answer.state)
            || (terminal(orig.state) && (orig.state, &orig.error) != (answer.state, &answer.error))
        {
            return Err(format!(
                "{name}: job {id} changed state: {} {:?} → {} {:?}",
                orig.state, orig.error, answer.state, answer.error
            ));
        }
        for (i, v) in &answer.results {
            if orig.results.get(i) != Some(v) {
                return Err(format!(
                    "{name}: job {id} task {i} served {v:?}, was {:?}",
                    orig.results.get(i)
                ));
            }
        }
        // A finished job's results are all there (a missing one would be
        // a changed answer too).
        if terminal(orig.state) && answer.results.len() != orig.results.len() {
            return Err(format!(
                "{name}: job {id} serves {} results, had {}",
                answer.results.len(),
                orig.results.len()
            ));
        }
    }
    for id in original.keys() {
        if !got.contains_key(id) {
            return Err(format!("{name}: job {id} vanished"));
        }
    }
    Ok(())
}

#[test]
fn damaged_state_files_are_refused_untouched_or_served_only_as_they_were() {
    let started = std::time::Instant::now();
    let (live, closed) = real_state();
    let baseline = |files: &Files| {
        let d = dir("baseline");
        let p = d.join("state.db");
        files.write(&p);
        let out = open(&p);
        let _ = std::fs::remove_dir_all(&d);
        match out {
            Outcome::Opened(jobs, refusals) if refusals.is_empty() => jobs,
            other => panic!("the undamaged state does not open: {other:?}"),
        }
    };
    let original = baseline(&live);
    assert_eq!(original.len(), 7, "{original:?}");
    assert_eq!(baseline(&closed), original);
    let cases = cases(&live, &closed);
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let (mut refused, mut opened, mut damaged_jobs, mut refused_rows) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    // What became of each case: the refusal, or the damaged jobs' errors.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, files) in cases {
        let d = dir("case");
        let path = d.join("state.db");
        files.write(&path);
        let before = hash(&files);
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let out = std::panic::catch_unwind(|| open(&p));
            let _ = tx.send(out);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Err(_) => failures.push(format!("{name}: hung")),
            Ok(Err(_)) => failures.push(format!("{name}: panicked")),
            Ok(Ok(Outcome::Refused(e))) => {
                seen.insert(name.clone(), format!("refused: {e}"));
                refused += 1;
                let after = hash(&Files::read(&path));
                if after != before {
                    failures.push(format!("{name}: refused ({e}) but the files changed"));
                }
                if !e.contains(&path.display().to_string()) {
                    failures.push(format!("{name}: the refusal does not name the file: {e}"));
                }
            }
            Ok(Ok(Outcome::Opened(jobs, refusals))) => {
                let damaged: Vec<String> = jobs
                    .iter()
                    .filter(|(_, a)| a.error.starts_with(DAMAGED))
                    .map(|(id, a)| format!("job {id}: {}", a.error))
                    .collect();
                seen.insert(name.clone(), format!("opened: {}", damaged.join(" | ")));
                opened += 1;
                damaged_jobs += jobs
                    .values()
                    .filter(|a| a.error.starts_with(DAMAGED))
                    .count();
                refused_rows += refusals.len();
                if let Err(e) = check_answers(&name, &original, &jobs) {
                    failures.push(e);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }
    eprintln!(
        "damage table: {refused} refused untouched, {opened} opened ({damaged_jobs} jobs shown damaged, \
         {refused_rows} rows refused) in {:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
