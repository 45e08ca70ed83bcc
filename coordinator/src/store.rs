//! The durable state store: one SQLite file (rusqlite, bundled) in WAL mode.
//! The actor hands it one [`WriteBatch`] per loop iteration (group commit:
//! every job accepted, result recorded and job ended in that iteration, in
//! one transaction); submissions are acknowledged only after their batch
//! committed. On start, [`Store::load`] returns every job with its recorded
//! results so the scheduler can carry on where it stopped.
//!
//! Opening never panics: a file that is not a database, a database that is
//! not brigade's, one written by a newer brigade, a corrupt one, or one that
//! cannot be written (read-only, disk full) is a [`StoreError`] naming the
//! file, what is wrong and how to recover.
//!
//! Damage is detected, never served as data, and a refused file is never
//! written: [`Store::open`] checks the `-wal` log's format
//! ([`crate::wal_check`]), then opens the file read-only for every check
//! (schema, `quick_check`, the commit counter, every row and its checksum,
//! [`crate::row_sum`]) and only then opens it for writing. Every group
//! commit bumps a counter in `meta` and records it in `FILE.commits` after
//! the commit: a log that lost committed transactions (cut short, a frame
//! damaged, replaced) reads as fewer commits and is refused. A job whose
//! rows fail their checks loads as *damaged* (see [`StoredJob::damage`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brigade_proto::v1::{JobSpec, JobState, Model, ResultsOrder};
use brigade_proto::{Output, SlotModel};

use crate::inputs::Inputs;
use crate::row_sum;
use crate::sched::{ResultRow, RunInfo};
use crate::state_lock::StateLock;
use prost::Message;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// The schema this build writes. `PRAGMA user_version` holds a file's.
pub const SCHEMA_VERSION: i64 = 7;

/// `MIGRATIONS[i]` takes a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id           INTEGER PRIMARY KEY,
        spec         BLOB    NOT NULL,
        submitted_ms INTEGER NOT NULL,
        state        INTEGER NOT NULL,
        error        TEXT    NOT NULL DEFAULT '',
        started_ms   INTEGER NOT NULL DEFAULT 0,
        finished_ms  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE results (
        job_id  INTEGER NOT NULL,
        idx     INTEGER NOT NULL,
        lo      INTEGER NOT NULL,
        hi      INTEGER NOT NULL,
        cpu_ns  INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        PRIMARY KEY (job_id, idx)
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE failed_tasks (
        job_id INTEGER NOT NULL,
        idx    INTEGER NOT NULL,
        error  TEXT    NOT NULL,
        PRIMARY KEY (job_id, idx)
    ) WITHOUT ROWID;
",
    "
    ALTER TABLE results ADD COLUMN output BLOB;
    CREATE TABLE inputs (
        job_id INTEGER NOT NULL,
        part   INTEGER NOT NULL,
        data   BLOB    NOT NULL,
        PRIMARY KEY (job_id, part)
    ) WITHOUT ROWID;
",
    // How each result's task ran, the order results were recorded in (rows
    // stored before are numbered in index order), and the workers' names.
    "
    ALTER TABLE results ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE results ADD COLUMN worker   INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE results ADD COLUMN model    INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE results ADD COLUMN seq      INTEGER NOT NULL DEFAULT 0;
    UPDATE results SET seq = r.n FROM (
        SELECT job_id, idx, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY idx) - 1 AS n
        FROM results
    ) AS r WHERE results.job_id = r.job_id AND results.idx = r.idx;
    CREATE INDEX results_by_seq ON results (job_id, seq);
    CREATE TABLE workers (
        id   INTEGER PRIMARY KEY,
        name TEXT    NOT NULL
    );
",
    // Who submitted each job (the client token's name; '' without auth).
    "
    ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
",
    // A checksum per row (crate::row_sum), filled in for the rows already
    // there by `Store::migrate`; the commit counter and the file's id.
    "
    ALTER TABLE results ADD COLUMN sum INTEGER;
    ALTER TABLE jobs ADD COLUMN spec_sum INTEGER;
    ALTER TABLE jobs ADD COLUMN end_sum INTEGER;
    ALTER TABLE failed_tasks ADD COLUMN sum INTEGER;
    ALTER TABLE inputs ADD COLUMN sum INTEGER;
",
    // When each result was recorded (µs since the Unix epoch; 0 for rows
    // stored before: not known), for a job's timeline. In the row's sum
    // when not 0, so the sums of older rows stand.
    "
    ALTER TABLE results ADD COLUMN ended_us INTEGER NOT NULL DEFAULT 0;
",
];

/// The version that added row checksums and the commit counter.
const SUMS_VERSION: i64 = 6;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {path}: {what}; {hint}")]
    Open {
        path: PathBuf,
        what: String,
        hint: &'static str,
    },
    #[error("state file {path}: write failed: {source}")]
    Write {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

const HINT_NOT_OURS: &str =
    "move it aside (or pass another --state FILE) and start again; brigade will create a fresh one";
const HINT_RECOVER: &str = "nothing was changed; start with --state-recover to keep a copy of the damaged files \
     beside them (FILE.damaged-TIME*) and carry on with what can be read, or restore the file from a backup";
const HINT_NEWER: &str = "run the brigade release that wrote it, or pass another --state FILE";
pub(crate) const HINT_WRITE: &str =
    "make the file and its directory writable and check there is free disk space, or pass another --state FILE";

/// A job as stored.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: u64,
    pub spec: JobSpec,
    /// The client that submitted it ("" without authentication).
    pub owner: String,
    pub state: JobState,
    pub error: String,
    pub submitted_ms: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Every recorded result, in index order.
    pub results: Vec<StoredResult>,
    /// (task index, error) of every task that failed for good.
    pub failures: Vec<(u64, String)>,
    /// An inputs job's items.
    pub inputs: Option<Inputs>,
    /// Why the job cannot be restored as it was (a row failing its
    /// checksum, an unreadable spec, a value out of range), if it cannot:
    /// it is then shown as failed with this reason and nothing of it is
    /// served or run; its rows stay in the file as they are.
    pub damage: Option<String>,
}

/// One recorded task result.
pub use crate::sched::Recorded as StoredResult;

/// A job's row when it ends.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub job: u64,
    pub state: JobState,
    pub error: String,
    pub started_ms: u64,
    pub finished_ms: u64,
}

/// Everything one group commit writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// (id, name) of workers that linked.
    pub new_workers: Vec<(u64, String)>,
    /// (id, spec, submitted ms, owner) of each job accepted.
    pub new_jobs: Vec<(u64, JobSpec, u64, String)>,
    /// The items of the new inputs jobs among `new_jobs`.
    pub new_inputs: Vec<(u64, Arc<Inputs>)>,
    pub results: Vec<StoredResult>,
    /// (job, task index, error) of tasks that failed for good.
    pub failures: Vec<(u64, u64, String)>,
    pub ends: Vec<JobEnd>,
    /// Ended jobs to forget (after everything above is written): their
    /// rows go, and their ids stay taken (meta `purged_up_to`).
    pub purged: Vec<u64>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.new_jobs.is_empty()
            && self.new_workers.is_empty()
            && self.new_inputs.is_empty()
            && self.results.is_empty()
            && self.failures.is_empty()
            && self.ends.is_empty()
            && self.purged.is_empty()
    }
}

/// The open state file.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held as long as the store is: one coordinator per state file.
    _lock: StateLock,
    /// This file's id (meta `store_id`) and its commits so far (meta
    /// `commits`), mirrored in `FILE.commits` after every commit.
    store_id: String,
    commits: u64,
    counter: Option<std::fs::File>,
    /// What the checks at open read, handed out once by [`Store::load`].
    loaded: Option<Vec<StoredJob>>,
}

/// How [`Store::open_with`] treats a damaged file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// `--state-recover`: keep a copy of damaged files beside them, then
    /// carry on with what SQLite can read (a damaged log is set aside,
    /// lost commits are accepted, rows with impossible ids are skipped),
    /// saying what was lost.
    pub recover: bool,
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A missing or empty file is a new store; anything else must look like
/// SQLite.
fn check_header(path: &Path) -> Result<(), (String, &'static str)> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((format!("cannot read: {e}"), HINT_WRITE)),
    };
    let mut head = Vec::with_capacity(16);
    file.by_ref()
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| (format!("cannot read: {e}"), HINT_WRITE))?;
    if head.is_empty() || head == SQLITE_HEADER {
        return Ok(());
    }
    Err((
        format!(
            "not a brigade state database (not an SQLite file: it starts with {:?})",
            String::from_utf8_lossy(&head)
        ),
        HINT_NOT_OURS,
    ))
}

/// Errors that say the file cannot be used (permissions, I/O, full disk,
/// another process), not that its content is wrong.
fn unusable(code: rusqlite::ErrorCode) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        code,
        C::CannotOpen
            | C::PermissionDenied
            | C::ReadOnly
            | C::DiskFull
            | C::SystemIoFailure
            | C::DatabaseBusy
            | C::DatabaseLocked
    )
}

/// An error message on one line, without the SQL statement SQLite quotes.
fn one_line(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        e => e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Says whether a failed first read means "not ours" or "cannot use it".
fn explain(e: &rusqlite::Error, fail: impl Fn(String, &'static str) -> StoreError) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase) => fail(format!("not a brigade state database ({e})"), HINT_NOT_OURS),
        Some(C::DatabaseCorrupt) => fail(format!("corrupt ({e})"), HINT_NOT_OURS),
        Some(c) if unusable(c) => fail(format!("cannot use the file ({e})"), HINT_WRITE),
        _ => fail(format!("cannot read ({e})"), HINT_NOT_OURS),
    }
}

// SQLite integers are i64; u64 values are stored bit for bit.
fn to_sql(v: u64) -> i64 {
    v as i64
}
fn from_sql(v: i64) -> u64 {
    v as u64
}

/// `FILE` + `suffix` (`-wal`, `.commits`, ...).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The commit counter as last recorded in `FILE.commits`: (store id,
/// commits), if the file is there and readable.
fn recorded_commits(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(beside(path, ".commits")).ok()?;
    let mut words = text.split_whitespace();
    let id = words.next()?.to_string();
    let n = words.next()?.parse().ok()?;
    Some((id, n))
}

/// `--state-recover`: copies the state file and its log aside, named
/// after now; returns the copy's name.
fn keep_copy(path: &Path) -> std::io::Result<PathBuf> {
    let copy = beside(path, &format!(".damaged-{}", now_unix_ms()));
    std::fs::copy(path, &copy)?;
    let wal = beside(path, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, beside(&copy, "-wal"))?;
    }
    Ok(copy)
}

/// One column read leniently: a flipped type byte is damage to report,
/// not an error that hides every other job.
fn int_at(r: &rusqlite::Row<'_>, i: usize) -> Option<i64> {
    match r.get_ref(i).ok()? {
        rusqlite::types::ValueRef::Integer(v) => Some(v),
        _ => None,
    }
}
fn blob_at(r: &rusqlite::Row<'_>, i: usize) -> Option<Option<Vec<u8>>> {
    match r.get_ref(i).ok()? {
        rusqlite::types::ValueRef::Null => Some(None),
        rusqlite::types::ValueRef::Blob(b) => Some(Some(b.to_vec())),
        _ => None,
    }
}
fn text_at(r: &rusqlite::Row<'_>, i: usize) -> Option<String> {
    match r.get_ref(i).ok()? {
        rusqlite::types::ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
        _ => None,
    }
}

/// The `results` columns [`result_row`] reads, in its order.
const RESULT_COLUMNS: &str =
    "job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq, sum, ended_us";

/// A `results` row as stored, checked against its sum.
struct ResultRowRaw {
    job: i64,
    result: Option<StoredResult>,
}

/// Reads the columns [`RESULT_COLUMNS`] from `first` on; `result` is
/// `None` when the row fails its checksum or a value is out of range.
fn result_row(r: &rusqlite::Row<'_>, first: usize) -> ResultRowRaw {
    let job = int_at(r, first).unwrap_or(0);
    let checked = || -> Option<StoredResult> {
        let ints: Vec<i64> = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 12]
            .iter()
            .map(|k| int_at(r, first + k))
            .collect::<Option<_>>()?;
        let output = blob_at(r, first + 4)?;
        let sum = int_at(r, first + 11)?;
        let cols = row_sum::ResultCols {
            job: ints[0],
            idx: ints[1],
            lo: ints[2],
            hi: ints[3],
            output: output.as_deref(),
            attempts: ints[4],
            worker: ints[5],
            model: ints[6],
            cpu_ns: ints[7],
            wall_ns: ints[8],
            seq: ints[9],
            ended_us: ints[10],
        };
        if row_sum::result(&cols) != sum || cols.idx < 0 || cols.seq < 0 {
            return None;
        }
        let (lo, hi) = (cols.lo, cols.hi);
        Some(StoredResult {
            job: from_sql(cols.job),
            index: from_sql(cols.idx),
            run: RunInfo {
                attempts: u32::try_from(cols.attempts).ok()?,
                worker: from_sql(cols.worker),
                model: SlotModel::from_wire(i32::try_from(cols.model).ok()?),
                cpu_ns: from_sql(cols.cpu_ns),
                wall_ns: from_sql(cols.wall_ns),
                ended_us: from_sql(cols.ended_us),
            },
            seq: from_sql(cols.seq),
            value: output_of(lo, hi, output),
        })
    };
    ResultRowRaw {
        job,
        result: checked(),
    }
}

/// Every stored job with its rows, each row checked (see
/// [`StoredJob::damage`]). The file is refused only where no job can be
/// blamed: a job row whose id is impossible (skipped with `recover`), or a
/// read SQLite itself fails.
fn read_jobs(conn: &Connection, path: &Path, recover: bool) -> Result<Vec<StoredJob>, StoreError> {
    let read = |e: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        what: format!("cannot read: {}", one_line(&e)),
        hint: HINT_NOT_OURS,
    };
    let mut jobs: Vec<StoredJob> = Vec::new();
    let mut st = conn
        .prepare(
            "SELECT id, spec, submitted_ms, state, error, started_ms, finished_ms, owner, \
             spec_sum, end_sum FROM jobs ORDER BY id",
        )
        .map_err(read)?;
    let mut rows = st.query([]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        let id = int_at(r, 0).unwrap_or(0);
        if id < 1 {
            if recover {
                tracing::warn!(id, "state file: skipped a job row with an impossible id");
                continue;
            }
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                what: format!("a job row has the impossible id {id} (ids start at 1)"),
                hint: HINT_RECOVER,
            });
        }
        let spec_bytes = blob_at(r, 1).flatten();
        let ints: Option<Vec<i64>> = [2, 3, 5, 6].iter().map(|&k| int_at(r, k)).collect();
        let (error, owner) = (text_at(r, 4), text_at(r, 7));
        let (spec_sum, end_sum) = (int_at(r, 8), int_at(r, 9));
        let mut damage = None;
        let (submitted, state, started, finished) = match &ints {
            Some(v) => (v[0], v[1], v[2], v[3]),
            None => {
                damage = Some("its row has a value of the wrong type".to_string());
                (0, 0, 0, 0)
            }
        };
        let (error_text, owner_text) = (
            error.clone().unwrap_or_default(),
            owner.clone().unwrap_or_default(),
        );
        if damage.is_none() {
            damage = match (&spec_bytes, error, owner) {
                (Some(spec), Some(error), Some(owner)) => {
                    if spec_sum != Some(row_sum::job_spec(id, spec, submitted, &owner)) {
                        Some("its spec row fails its checksum".to_string())
                    } else if end_sum
                        != Some(row_sum::job_end(id, state, &error, started, finished))
                    {
                        Some("its state row fails its checksum".to_string())
                    } else {
                        None
                    }
                }
                _ => Some("its row has a value of the wrong type".to_string()),
            };
        }
        let spec = match spec_bytes.as_deref().map(JobSpec::decode) {
            Some(Ok(spec)) => spec,
            Some(Err(e)) => {
                damage.get_or_insert_with(|| format!("its spec cannot be decoded ({e})"));
                JobSpec::default()
            }
            None => JobSpec::default(),
        };
        let state = match i32::try_from(state)
            .ok()
            .and_then(|s| JobState::try_from(s).ok())
        {
            Some(s) => s,
            None => {
                damage.get_or_insert_with(|| format!("its state {state} is not a known state"));
                JobState::Unspecified
            }
        };
        if submitted < 0 || started < 0 || finished < 0 {
            damage.get_or_insert_with(|| "its times are negative".to_string());
        }
        jobs.push(StoredJob {
            id: from_sql(id),
            spec,
            owner: owner_text,
            state,
            error: error_text,
            submitted_ms: from_sql(submitted.max(0)),
            started_ms: from_sql(started.max(0)),
            finished_ms: from_sql(finished.max(0)),
            results: Vec::new(),
            failures: Vec::new(),
            inputs: None,
            damage,
        });
    }
    drop(rows);
    fn blame(jobs: &mut [StoredJob], job: i64, why: impl FnOnce() -> String) -> bool {
        match jobs.binary_search_by_key(&from_sql(job), |j| j.id) {
            Ok(k) => {
                jobs[k].damage.get_or_insert_with(why);
                true
            }
            Err(_) => false,
        }
    }
    let mut orphans = 0u64;
    let mut st = conn
        .prepare(&format!(
            "SELECT {RESULT_COLUMNS} FROM results ORDER BY job_id, idx"
        ))
        .map_err(read)?;
    let mut rows = st.query([]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        let raw = result_row(r, 0);
        let idx = int_at(r, 1).unwrap_or(-1);
        match raw.result {
            Some(res) => match jobs.binary_search_by_key(&res.job, |j| j.id) {
                Ok(k) => jobs[k].results.push(res),
                Err(_) => orphans += 1,
            },
            None => {
                if !blame(&mut jobs, raw.job, || {
                    format!("the stored result of task {idx} fails its checksum")
                }) {
                    orphans += 1;
                }
            }
        }
    }
    drop(rows);
    let mut st = conn
        .prepare("SELECT job_id, idx, error, sum FROM failed_tasks ORDER BY job_id, idx")
        .map_err(read)?;
    let mut rows = st.query([]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        let (job, idx) = (int_at(r, 0).unwrap_or(0), int_at(r, 1).unwrap_or(-1));
        let error = text_at(r, 2);
        let ok = match (&error, int_at(r, 3)) {
            (Some(e), Some(sum)) => idx >= 0 && row_sum::failed_task(job, idx, e) == sum,
            _ => false,
        };
        match (ok, jobs.binary_search_by_key(&from_sql(job), |j| j.id)) {
            (true, Ok(k)) => jobs[k]
                .failures
                .push((from_sql(idx), error.unwrap_or_default())),
            (false, Ok(_)) => {
                blame(&mut jobs, job, || {
                    format!("the stored failure of task {idx} fails its checksum")
                });
            }
            (_, Err(_)) => orphans += 1,
        }
    }
    drop(rows);
    let mut st = conn
        .prepare("SELECT job_id, part, data, sum FROM inputs ORDER BY job_id, part")
        .map_err(read)?;
    let mut rows = st.query([]).map_err(read)?;
    let mut parts: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    while let Some(r) = rows.next().map_err(read)? {
        let (job, part) = (int_at(r, 0).unwrap_or(0), int_at(r, 1).unwrap_or(-1));
        let data = blob_at(r, 2).flatten();
        let ok = match (&data, int_at(r, 3)) {
            (Some(d), Some(sum)) => row_sum::input_part(job, part, d) == sum,
            _ => false,
        };
        if ok {
            let list = parts.entry(from_sql(job)).or_default();
            if part == list.len() as i64 {
                list.push(data.unwrap_or_default());
                continue;
            }
        }
        if !blame(&mut jobs, job, || {
            format!("part {part} of its inputs fails its checksum or is out of order")
        }) {
            orphans += 1;
        }
    }
    drop(rows);
    for job in &mut jobs {
        let mine = parts.remove(&job.id).unwrap_or_default();
        if job.spec.has_inputs && job.damage.is_none() {
            match Inputs::from_parts(mine.iter().map(|p| p.as_slice())) {
                Ok(inputs) => job.inputs = Some(inputs),
                Err(why) => job.damage = Some(format!("its inputs are damaged ({why})")),
            }
        }
        if job.damage.is_some() {
            job.results = Vec::new();
            job.failures = Vec::new();
            job.inputs = None;
        }
    }
    if orphans > 0 {
        tracing::warn!(
            path = %path.display(),
            rows = orphans,
            "state file: rows of jobs that were never accepted (or whose job id is damaged) are ignored"
        );
    }
    Ok(jobs)
}

impl Store {
    /// Opens (creating if absent) and checks the state file, migrating an
    /// older schema, and proves it writable; refuses a damaged file
    /// without writing to it.
    #[cfg(test)]
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, OpenOptions::default())
    }

    /// [`Store::open`], with `--state-recover` if asked.
    pub fn open_with(path: &Path, options: OpenOptions) -> Result<Store, StoreError> {
        let fail = |what: String, hint: &'static str| StoreError::Open {
            path: path.to_path_buf(),
            what,
            hint,
        };
        // Before anything reads or writes the file.
        let lock = StateLock::acquire(path)?;
        tracing::debug!(lock = %lock.path().display(), "state file locked");
        let wal = beside(path, "-wal");
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut kept: Option<PathBuf> = None;
        let keep = |kept: &mut Option<PathBuf>| -> Result<PathBuf, StoreError> {
            if let Some(k) = kept {
                return Ok(k.clone());
            }
            let copy = keep_copy(path).map_err(|e| {
                fail(
                    format!("cannot keep a copy of the damaged files: {e}"),
                    HINT_WRITE,
                )
            })?;
            tracing::warn!(copy = %copy.display(), "state file: kept a copy of the damaged files");
            *kept = Some(copy.clone());
            Ok(copy)
        };
        if size(path) == 0 && size(&wal) > 0 {
            if !options.recover {
                return Err(fail(
                    format!(
                        "the database is missing or empty but its write-ahead log {} holds {} bytes",
                        wal.display(),
                        size(&wal)
                    ),
                    HINT_RECOVER,
                ));
            }
            let _ = keep(&mut kept)?;
            std::fs::remove_file(&wal)
                .map_err(|e| fail(format!("cannot set the log aside: {e}"), HINT_WRITE))?;
            tracing::warn!("state file: its log had no database; starting empty");
        }
        let fresh = size(path) == 0;
        // SQLite takes a file shorter than its header for an empty database
        // and would write over it: anything non-empty must carry the header.
        check_header(path).map_err(|(what, hint)| fail(what, hint))?;
        match crate::wal_check::check(&wal) {
            Err(e) => {
                return Err(fail(
                    format!("cannot read {}: {e}", wal.display()),
                    HINT_WRITE,
                ))
            }
            Ok(Ok(_)) => {}
            Ok(Err(damage)) if options.recover => {
                let copy = keep(&mut kept)?;
                std::fs::remove_file(&wal)
                    .map_err(|e| fail(format!("cannot set the log aside: {e}"), HINT_WRITE))?;
                tracing::warn!(
                    log = %wal.display(), %damage, copy = %copy.display(),
                    "state file: its write-ahead log is damaged; carrying on without it \
                     (every commit since the last checkpoint is lost)"
                );
            }
            Ok(Err(damage)) => {
                return Err(fail(
                    format!("its write-ahead log {} is damaged: {damage}", wal.display()),
                    HINT_RECOVER,
                ))
            }
        }
        let mut checked = None;
        if !fresh {
            checked = Some(Store::check_read_only(path, options, &mut || {
                keep(&mut kept).map(drop)
            })?);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(format!("cannot open: {e}"), HINT_WRITE))?;
        let (version, ids, loaded) = checked.unwrap_or((0, None, None));
        // FULL: a commit is on disk before a submission is acknowledged.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")
            .map_err(|e| fail(format!("cannot configure: {e}"), HINT_WRITE))?;
        let (store_id, commits) = ids.unwrap_or_else(|| {
            let mut id = [0u8; 8];
            let _ = getrandom::fill(&mut id);
            (format!("{:016x}", u64::from_le_bytes(id)), 0)
        });
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: lock,
            store_id,
            commits,
            counter: None,
            loaded,
        };
        store
            .migrate(version, options.recover)
            .map_err(|e| match e {
                MigrateError::Refused(e) => e,
                MigrateError::Sql(e) => match e.sqlite_error_code() {
                    Some(c) if unusable(c) => {
                        fail(format!("cannot write ({})", one_line(&e)), HINT_WRITE)
                    }
                    _ => fail(
                        format!(
                            "cannot bring schema version {version} up to {SCHEMA_VERSION} ({})",
                            one_line(&e)
                        ),
                        HINT_NOT_OURS,
                    ),
                },
            })?;
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| fail(format!("cannot enable WAL: {e}"), HINT_WRITE))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(
                format!("cannot enable WAL (journal mode stays {mode})"),
                HINT_WRITE,
            ));
        }
        store.counter = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(beside(path, ".commits"))
            .map_err(|e| tracing::warn!(error = %e, "state file: cannot record its commit counter"))
            .ok();
        store.record_commits();
        Ok(store)
    }

    /// Every check on a read-only connection: what a refused file is
    /// refused for is found before anything writes to it. Returns the
    /// schema version, the file's (id, commits) and, for a current schema,
    /// its jobs.
    #[allow(clippy::type_complexity)]
    fn check_read_only(
        path: &Path,
        options: OpenOptions,
        keep: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<(i64, Option<(String, u64)>, Option<Vec<StoredJob>>), StoreError> {
        let fail = |what: String, hint: &'static str| StoreError::Open {
            path: path.to_path_buf(),
            what,
            hint,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(format!("cannot open: {e}"), HINT_WRITE))?;
        // The first read tells a database from anything else, and a file we
        // cannot use (permissions, I/O, full disk) from one that is not ours.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| explain(&e, fail))?;
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| explain(&e, fail))?;
        // Every brigade schema has these; a database without them is not
        // ours, whatever its user_version says.
        let ours = ["jobs", "meta", "results"];
        let missing = ours.iter().find(|t| !tables.iter().any(|x| x == *t));
        if version < 0 || (version == 0 && !tables.is_empty()) {
            return Err(fail(
                format!(
                    "not a brigade state database (schema version {version}, tables: {})",
                    tables.join(", ")
                ),
                HINT_NOT_OURS,
            ));
        }
        if let (true, Some(missing)) = (version > 0, missing) {
            return Err(fail(
                format!(
                    "not a brigade state database (schema version {version} but no {missing} table; tables: {})",
                    tables.join(", ")
                ),
                HINT_NOT_OURS,
            ));
        }
        if version > SCHEMA_VERSION {
            return Err(fail(
                format!(
                    "written by a newer brigade (schema version {version}; this brigade reads up to {SCHEMA_VERSION})"
                ),
                HINT_NEWER,
            ));
        }
        if version > 0 {
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| fail(format!("integrity check failed: {e}"), HINT_NOT_OURS))?;
            if check != "ok" {
                return Err(fail(
                    format!(
                        "corrupt: {}",
                        check.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
                    HINT_NOT_OURS,
                ));
            }
        }
        let mut ids = None;
        if version >= SUMS_VERSION {
            let meta = |key: &str| -> Result<Option<String>, StoreError> {
                conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
                .map_err(|e| fail(format!("cannot read its meta table: {e}"), HINT_NOT_OURS))
            };
            let id = meta("store_id")?;
            let commits = meta("commits")?.and_then(|c| c.parse::<u64>().ok());
            let (Some(id), Some(commits)) = (id, commits) else {
                return Err(fail(
                    "its meta table lacks the file's id or commit counter".to_string(),
                    HINT_RECOVER,
                ));
            };
            if let Some((rec_id, rec)) = recorded_commits(path) {
                if rec_id == id && rec > commits {
                    let what = format!(
                        "it holds {commits} commits but {rec} were made (recorded in {}): \
                         the last {} are missing, its write-ahead log {} was cut short, damaged or replaced",
                        beside(path, ".commits").display(),
                        rec - commits,
                        beside(path, "-wal").display()
                    );
                    if !options.recover {
                        return Err(fail(what, HINT_RECOVER));
                    }
                    keep()?;
                    tracing::warn!(%what, "state file: carrying on with what can be read");
                }
            }
            ids = Some((id, commits));
        }
        let loaded = if version == SCHEMA_VERSION {
            let jobs = read_jobs(&conn, path, options.recover)?;
            if options.recover && jobs.iter().any(|j| j.damage.is_some()) {
                keep()?;
            }
            Some(jobs)
        } else {
            None
        };
        Ok((version, ids, loaded))
    }

    fn migrate(&mut self, from: i64, recover: bool) -> Result<(), MigrateError> {
        let tx = self.conn.transaction()?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (v + 1) as i64)?;
        }
        if from < SUMS_VERSION {
            fill_sums(&tx)?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', ?1), ('commits', ?2)",
                params![self.store_id, self.commits.to_string()],
            )?;
        }
        if self.loaded.is_none() {
            // A file of an older schema is checked inside the migration's
            // transaction: refused, it is rolled back.
            self.loaded = Some(read_jobs(&tx, &self.path, recover).map_err(MigrateError::Refused)?);
        }
        // Also proves the file writable before any job is accepted.
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_unix_ms', ?1)",
            params![now_unix_ms().to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records the commit counter beside the file (after the commit, so it
    /// is never ahead of what is durable; at worst behind after a power
    /// cut, which only weakens the check).
    fn record_commits(&mut self) {
        use std::os::unix::fs::FileExt;
        if let Some(f) = &self.counter {
            let line = format!("{} {:020}\n", self.store_id, self.commits);
            if let Err(e) = f.write_all_at(line.as_bytes(), 0) {
                tracing::warn!(error = %e, "state file: cannot record its commit counter");
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After a failed write (a full disk): moves the log into the database
    /// and truncates it, so what the log held is freed for the next write.
    pub fn checkpoint_truncate(&mut self) {
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            }) {
            Ok((0, frames)) => tracing::info!(
                frames,
                "state file: log checkpointed and truncated after a failed write"
            ),
            Ok((_, frames)) => tracing::warn!(
                frames,
                "state file: log checkpoint could not finish (readers busy)"
            ),
            Err(e) => tracing::warn!(error = %e, "state file: log checkpoint failed"),
        }
    }

    /// Moves what the log holds into the database (tests build files with
    /// part of their state in each).
    #[cfg(test)]
    pub fn conn_checkpoint(&self) {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
    }

    /// Every stored job with its recorded results, in id order (what the
    /// checks at open read; read again if asked twice).
    pub fn load(&mut self) -> Result<Vec<StoredJob>, StoreError> {
        match self.loaded.take() {
            Some(jobs) => Ok(jobs),
            None => read_jobs(&self.conn, &self.path, false),
        }
    }

    /// Writes the batch in one transaction (the group commit), each row
    /// with its checksum, and bumps the commit counter.
    pub fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO jobs (id, spec, submitted_ms, state, owner, spec_sum, end_sum) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(write)?;
            for (id, spec, submitted, owner) in &batch.new_jobs {
                let (id, spec, submitted) = (to_sql(*id), spec.encode_to_vec(), to_sql(*submitted));
                let state = JobState::Queued as i64;
                ins.execute(params![
                    id,
                    spec,
                    submitted,
                    state,
                    owner,
                    row_sum::job_spec(id, &spec, submitted, owner),
                    row_sum::job_end(id, state, "", 0, 0),
                ])
                .map_err(write)?;
            }
            let mut wrk = tx
                .prepare_cached("INSERT OR REPLACE INTO workers (id, name) VALUES (?1, ?2)")
                .map_err(write)?;
            for (id, name) in &batch.new_workers {
                wrk.execute(params![to_sql(*id), name]).map_err(write)?;
            }
            let mut res = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO results \
                     (job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq, sum, \
                      ended_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(write)?;
            for r in &batch.results {
                let (int, bytes) = match &r.value {
                    Output::Int(v) => (*v, None),
                    Output::Bytes(b) => (0, Some(b.as_slice())),
                };
                let c = row_sum::ResultCols {
                    job: to_sql(r.job),
                    idx: to_sql(r.index),
                    lo: to_sql(int as u64),
                    hi: to_sql((int >> 64) as u64),
                    output: bytes,
                    attempts: i64::from(r.run.attempts),
                    worker: to_sql(r.run.worker),
                    model: r.run.model.map_or(0, |m| Model::from(m) as i64),
                    cpu_ns: to_sql(r.run.cpu_ns),
                    wall_ns: to_sql(r.run.wall_ns),
                    seq: to_sql(r.seq),
                    ended_us: to_sql(r.run.ended_us),
                };
                res.execute(params![
                    c.job,
                    c.idx,
                    c.lo,
                    c.hi,
                    c.output,
                    c.attempts,
                    c.worker,
                    c.model,
                    c.cpu_ns,
                    c.wall_ns,
                    c.seq,
                    row_sum::result(&c),
                    c.ended_us,
                ])
                .map_err(write)?;
            }
            let mut inp = tx
                .prepare_cached(
                    "INSERT INTO inputs (job_id, part, data, sum) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(write)?;
            for (job, inputs) in &batch.new_inputs {
                for (part, data) in inputs.parts().iter().enumerate() {
                    let (job, part) = (to_sql(*job), part as i64);
                    inp.execute(params![
                        job,
                        part,
                        data,
                        row_sum::input_part(job, part, data)
                    ])
                    .map_err(write)?;
                }
            }
            let mut fail = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO failed_tasks (job_id, idx, error, sum) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(write)?;
            for (job, index, error) in &batch.failures {
                let (job, index) = (to_sql(*job), to_sql(*index));
                fail.execute(params![
                    job,
                    index,
                    error,
                    row_sum::failed_task(job, index, error)
                ])
                .map_err(write)?;
            }
            let mut end = tx
                .prepare_cached(
                    "UPDATE jobs SET state = ?2, error = ?3, started_ms = ?4, finished_ms = ?5, \
                     end_sum = ?6 WHERE id = ?1",
                )
                .map_err(write)?;
            for e in &batch.ends {
                let (id, state) = (to_sql(e.job), e.state as i64);
                let (started, finished) = (to_sql(e.started_ms), to_sql(e.finished_ms));
                end.execute(params![
                    id,
                    state,
                    e.error,
                    started,
                    finished,
                    row_sum::job_end(id, state, &e.error, started, finished),
                ])
                .map_err(write)?;
            }
            for sql in [
                "DELETE FROM results WHERE job_id = ?1",
                "DELETE FROM failed_tasks WHERE job_id = ?1",
                "DELETE FROM inputs WHERE job_id = ?1",
                "DELETE FROM jobs WHERE id = ?1",
            ] {
                let mut st = tx.prepare_cached(sql).map_err(write)?;
                for &id in &batch.purged {
                    st.execute(params![to_sql(id)]).map_err(write)?;
                }
            }
            if let Some(&highest) = batch.purged.iter().max() {
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES ('purged_up_to', ?1) \
                     ON CONFLICT (key) DO UPDATE SET value = \
                     MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                )
                .and_then(|mut st| st.execute(params![to_sql(highest)]))
                .map_err(write)?;
            }
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'commits'")
                .and_then(|mut st| st.execute(params![(self.commits + 1).to_string()]))
                .map_err(write)?;
        }
        tx.commit().map_err(write)?;
        self.commits += 1;
        self.record_commits();
        Ok(())
    }

    /// The highest id of a job purged from this file (0 if none): with the
    /// jobs still in it, job ids go on above it, so an id names one job for
    /// the file's life.
    pub fn purged_up_to(&self) -> Result<u64, StoreError> {
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'purged_up_to'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StoreError::Open {
                path: self.path.clone(),
                what: format!("cannot read: {e}"),
                hint: HINT_NOT_OURS,
            })?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The highest worker id stored (0 if none): ids go on above it, so a
    /// result's worker names one worker across restarts.
    pub fn max_worker_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM workers", [], |r| r.get(0))
            .map_err(|e| StoreError::Open {
                path: self.path.clone(),
                what: format!("cannot read: {e}"),
                hint: HINT_NOT_OURS,
            })?;
        Ok(max.map_or(0, from_sql))
    }

    /// The next free job id (one above the highest stored). Only tests ask:
    /// the scheduler takes its ids from the jobs it restores.
    #[cfg(test)]
    pub fn next_job_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM jobs", [], |r| r.get(0))
            .optional()
            .map_err(|e| StoreError::Open {
                path: self.path.clone(),
                what: format!("cannot read: {e}"),
                hint: HINT_NOT_OURS,
            })?
            .flatten();
        Ok(max.map_or(0, from_sql).max(self.purged_up_to()?) + 1)
    }
}

/// A read-only connection to a state file, for serving results without
/// touching the writer (WAL lets readers run beside it).
#[derive(Debug)]
pub struct StoreReader {
    conn: Connection,
}

impl StoreReader {
    pub fn open(path: &Path) -> rusqlite::Result<StoreReader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(StoreReader { conn })
    }

    /// Stored results of `job` from `from` on (a task index, or in
    /// completion order a count of results to skip): at most `max` of them,
    /// and no more once their outputs reach `max_bytes` (at least one);
    /// with the names of the workers that made them. Every row is checked
    /// against its checksum: one that fails is refused, never served.
    pub fn results_from(
        &self,
        job: u64,
        from: u64,
        order: ResultsOrder,
        max: usize,
        max_bytes: usize,
    ) -> Result<(Vec<ResultRow>, HashMap<u64, String>), ReadError> {
        const COLUMNS: &str =
            "SELECT r.job_id, r.idx, r.lo, r.hi, r.output, r.attempts, r.worker, \
             r.model, r.cpu_ns, r.wall_ns, r.seq, r.sum, r.ended_us, w.name \
             FROM results r LEFT JOIN workers w ON w.id = r.worker";
        let mut st = self.conn.prepare_cached(&match order {
            ResultsOrder::Index => {
                format!("{COLUMNS} WHERE r.job_id = ?1 AND r.idx >= ?2 ORDER BY r.idx LIMIT ?3")
            }
            ResultsOrder::Completion => {
                format!("{COLUMNS} WHERE r.job_id = ?1 AND r.seq >= ?2 ORDER BY r.seq LIMIT ?3")
            }
        })?;
        let mut rows = st.query(params![to_sql(job), to_sql(from), max as i64])?;
        let (mut out, mut names) = (Vec::new(), HashMap::new());
        let mut bytes = 0;
        // Rows are read as they are taken: the ones past the bound never are.
        while let Some(r) = rows.next()? {
            if !out.is_empty() && bytes >= max_bytes {
                break;
            }
            let raw = result_row(r, 0);
            let Some(stored) = raw.result.filter(|s| s.job == job) else {
                return Err(ReadError::Damaged {
                    job,
                    index: int_at(r, 1).unwrap_or(-1),
                });
            };
            let row = ResultRow {
                index: stored.index,
                value: stored.value,
                run: stored.run,
            };
            bytes += row.value.len();
            if let Some(name) = r.get::<_, Option<String>>(13).ok().flatten() {
                names.entry(row.run.worker).or_insert(name);
            }
            out.push(row);
        }
        Ok((out, names))
    }
}

/// A stored output: its bytes if it has any, else the integer in two words.
fn output_of(lo: i64, hi: i64, bytes: Option<Vec<u8>>) -> Output {
    match bytes {
        Some(b) => Output::Bytes(b),
        None => Output::Int(((from_sql(hi) as u128) << 64) | from_sql(lo) as u128),
    }
}

/// Why a migration did not complete.
enum MigrateError {
    Sql(rusqlite::Error),
    /// The checks refused the file (the migration is rolled back).
    Refused(StoreError),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// Fills in the checksum of every row written before rows had one (the
/// migration to [`SUMS_VERSION`]); what those rows held was not protected
/// before, and is from now on.
fn fill_sums(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    type Sums = Vec<(i64, i64, i64)>;
    type SumOf<'a> = &'a dyn Fn(&rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, i64)>;
    let collect = |sql: &str, f: SumOf<'_>| {
        let mut st = tx.prepare(sql)?;
        let rows = st.query_map([], |r| f(r))?;
        rows.collect::<rusqlite::Result<Sums>>()
    };
    let results = collect(
        "SELECT job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq FROM results",
        &|r| {
            let output: Option<Vec<u8>> = r.get(4)?;
            let c = row_sum::ResultCols {
                job: r.get(0)?,
                idx: r.get(1)?,
                lo: r.get(2)?,
                hi: r.get(3)?,
                output: output.as_deref(),
                attempts: r.get(5)?,
                worker: r.get(6)?,
                model: r.get(7)?,
                cpu_ns: r.get(8)?,
                wall_ns: r.get(9)?,
                seq: r.get(10)?,
                // The column is not there yet, or was just added: 0.
                ended_us: 0,
            };
            Ok((c.job, c.idx, row_sum::result(&c)))
        },
    )?;
    let mut st = tx.prepare("UPDATE results SET sum = ?3 WHERE job_id = ?1 AND idx = ?2")?;
    for (a, b, s) in results {
        st.execute(params![a, b, s])?;
    }
    let jobs = collect(
        "SELECT id, spec, submitted_ms, owner, state, error, started_ms, finished_ms FROM jobs",
        &|r| {
            let id: i64 = r.get(0)?;
            let spec: Vec<u8> = r.get(1)?;
            let owner: String = r.get(3)?;
            let error: String = r.get(5)?;
            let spec_sum = row_sum::job_spec(id, &spec, r.get(2)?, &owner);
            let end_sum = row_sum::job_end(id, r.get(4)?, &error, r.get(6)?, r.get(7)?);
            Ok((id, spec_sum, end_sum))
        },
    )?;
    let mut st = tx.prepare("UPDATE jobs SET spec_sum = ?2, end_sum = ?3 WHERE id = ?1")?;
    for (id, a, b) in jobs {
        st.execute(params![id, a, b])?;
    }
    let failed = collect("SELECT job_id, idx, error FROM failed_tasks", &|r| {
        let (job, idx, error): (i64, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok((job, idx, row_sum::failed_task(job, idx, &error)))
    })?;
    let mut st = tx.prepare("UPDATE failed_tasks SET sum = ?3 WHERE job_id = ?1 AND idx = ?2")?;
    for (a, b, s) in failed {
        st.execute(params![a, b, s])?;
    }
    let inputs = collect("SELECT job_id, part, data FROM inputs", &|r| {
        let (job, part, data): (i64, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok((job, part, row_sum::input_part(job, part, &data)))
    })?;
    let mut st = tx.prepare("UPDATE inputs SET sum = ?3 WHERE job_id = ?1 AND part = ?2")?;
    for (a, b, s) in inputs {
        st.execute(params![a, b, s])?;
    }
    Ok(())
}

/// Why stored results could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the stored result of job {job} task {index} fails its checksum (the state file was \
         damaged on disk): not served; restart the coordinator to see the job marked damaged"
    )]
    Damaged { job: u64, index: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "brigade-store-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    /// How a stored task ran: attempts, worker, and its CPU and wall ns.
    fn run(attempts: u32, worker: u64, ns: u64) -> RunInfo {
        RunInfo {
            attempts,
            worker,
            model: Some(SlotModel::Thread),
            cpu_ns: ns,
            wall_ns: ns + 1,
            // Kept exactly, to the µs.
            ended_us: 1_800_000_000_123_456 + ns,
        }
    }

    fn spec() -> JobSpec {
        JobSpec {
            workload: "sum-squares".into(),
            range_start: 0,
            range_end: 100,
            chunk: 10,
            ..Default::default()
        }
    }

    #[test]
    fn jobs_results_and_ends_round_trip() {
        let path = tmp("roundtrip");
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.next_job_id().unwrap(), 1);
        let big = u128::MAX - 5;
        let mut inputs = Inputs::default();
        inputs.push(b"Pizza Hut");
        inputs.push(b"");
        inputs.push("Caf\u{e9}".as_bytes());
        s.commit(&WriteBatch {
            new_jobs: vec![
                (
                    1,
                    JobSpec {
                        fail_fast: true,
                        allow_failures: 2,
                        ..spec()
                    },
                    111,
                    "alice".into(),
                ),
                (
                    2,
                    JobSpec {
                        has_inputs: true,
                        ..spec()
                    },
                    222,
                    String::new(),
                ),
            ],
            results: vec![
                StoredResult {
                    job: 1,
                    index: 3,
                    value: Output::Int(big),
                    run: run(2, 5, 7),
                    seq: 0,
                },
                StoredResult {
                    job: 2,
                    index: 0,
                    value: Output::Bytes(b"five".to_vec()),
                    run: run(1, 6, 1),
                    seq: 0,
                },
                StoredResult {
                    job: 1,
                    index: 1,
                    value: Output::Int(9),
                    run: run(1, 6, 0),
                    seq: 1,
                },
            ],
            new_workers: vec![(5, "w-five".into()), (6, "w-six".into())],
            failures: vec![],
            ends: vec![],
            new_inputs: vec![(2, Arc::new(inputs.clone()))],
            purged: vec![],
        })
        .unwrap();
        // A duplicate result is ignored: the first one stays.
        s.commit(&WriteBatch {
            results: vec![StoredResult {
                job: 1,
                index: 3,
                value: Output::Int(0),
                run: run(1, 6, 0),
                seq: 2,
            }],
            ends: vec![JobEnd {
                job: 2,
                state: JobState::Failed,
                error: "boom".into(),
                started_ms: 300,
                finished_ms: 400,
            }],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let jobs = s.load().unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(s.max_worker_id().unwrap(), 6);
        let owners: Vec<&str> = jobs.iter().map(|j| j.owner.as_str()).collect();
        assert_eq!(owners, ["alice", ""]);

        let reader = StoreReader::open(&path).unwrap();
        let rows = |job, from, max, bytes| {
            let (rows, _) = reader
                .results_from(job, from, ResultsOrder::Index, max, bytes)
                .unwrap();
            rows.into_iter()
                .map(|r| (r.index, r.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows(1, 0, 10, usize::MAX),
            vec![(1, Output::Int(9)), (3, Output::Int(big))]
        );
        assert_eq!(rows(1, 2, 10, usize::MAX), vec![(3, Output::Int(big))]);
        assert_eq!(rows(1, 0, 1, usize::MAX), vec![(1, Output::Int(9))]);
        // A byte bound stops the rows once reached, after one at least.
        assert_eq!(rows(1, 0, 10, 16), vec![(1, Output::Int(9))]);
        assert_eq!(
            rows(1, 0, 10, 17),
            vec![(1, Output::Int(9)), (3, Output::Int(big))]
        );
        let five = vec![(0, Output::Bytes(b"five".to_vec()))];
        assert_eq!(rows(2, 0, 10, 0), five);
        assert_eq!(rows(2, 0, 10, usize::MAX), five);
        assert!(rows(9, 0, 10, usize::MAX).is_empty());
        // In completion order, with how each ran and who ran it.
        let (done, names) = reader
            .results_from(1, 0, ResultsOrder::Completion, 10, usize::MAX)
            .unwrap();
        assert_eq!(
            done,
            vec![
                ResultRow {
                    index: 3,
                    value: Output::Int(big),
                    run: run(2, 5, 7),
                },
                ResultRow {
                    index: 1,
                    value: Output::Int(9),
                    run: run(1, 6, 0),
                },
            ]
        );
        assert_eq!(
            names,
            HashMap::from([(5, "w-five".to_string()), (6, "w-six".to_string())])
        );
        let (rest, _) = reader
            .results_from(1, 1, ResultsOrder::Completion, 10, usize::MAX)
            .unwrap();
        assert_eq!(rest.iter().map(|r| r.index).collect::<Vec<_>>(), [1]);
        assert_eq!(jobs[0].state, JobState::Queued);
        // The failure policy travels in the spec: a restart keeps it.
        let policy = JobSpec {
            fail_fast: true,
            allow_failures: 2,
            ..spec()
        };
        assert_eq!(jobs[0].spec, policy);
        assert_eq!(jobs[0].submitted_ms, 111);
        let idx: Vec<(u64, Output)> = jobs[0]
            .results
            .iter()
            .map(|r| (r.index, r.value.clone()))
            .collect();
        assert_eq!(idx, vec![(1, Output::Int(9)), (3, Output::Int(big))]);
        assert_eq!(jobs[0].inputs, None);
        assert_eq!(jobs[1].inputs, Some(inputs));
        assert_eq!(jobs[1].state, JobState::Failed);
        assert_eq!(jobs[1].error, "boom");
        assert_eq!((jobs[1].started_ms, jobs[1].finished_ms), (300, 400));
        assert_eq!(jobs[1].results.len(), 1);
        assert_eq!(s.next_job_id().unwrap(), 3);
    }

    /// A purged job's rows all go, in the commit that also writes what was
    /// still queued of it; its id stays taken across a reopen even when it
    /// was the highest.
    #[test]
    fn purged_jobs_lose_every_row_and_keep_their_id_taken() {
        let path = tmp("purge");
        let mut s = Store::open(&path).unwrap();
        let mut inputs = Inputs::default();
        inputs.push(b"x");
        s.commit(&WriteBatch {
            new_jobs: vec![(1, spec(), 1, String::new()), (2, spec(), 2, String::new())],
            new_inputs: vec![(2, Arc::new(inputs))],
            failures: vec![(2, 0, "boom".into())],
            results: (0..3)
                .map(|i| StoredResult {
                    job: 1 + i % 2,
                    index: i,
                    value: Output::Int(u128::from(i)),
                    run: run(1, 1, 0),
                    seq: i / 2,
                })
                .collect(),
            ..Default::default()
        })
        .unwrap();
        s.commit(&WriteBatch {
            ends: vec![JobEnd {
                job: 2,
                state: JobState::Failed,
                error: "boom".into(),
                started_ms: 3,
                finished_ms: 4,
            }],
            purged: vec![2],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let jobs = s.load().unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [1]);
        assert_eq!(jobs[0].results.len(), 2);
        for table in ["results", "failed_tasks", "inputs"] {
            let n: i64 = s
                .conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE job_id = 2"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 0, "{table} rows of the purged job");
        }
        assert_eq!(s.purged_up_to().unwrap(), 2);
        assert_eq!(s.next_job_id().unwrap(), 3, "job 2's id stays taken");
        // A lower id purged later does not lower the mark.
        s.commit(&WriteBatch {
            purged: vec![1],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.purged_up_to().unwrap(), 2);
        assert!(s.load().unwrap().is_empty());
    }

    #[test]
    fn failed_tasks_round_trip_and_a_v1_file_is_migrated() {
        let path = tmp("migrate");
        // A version-1 file, as the first release wrote it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch("PRAGMA user_version = 1;").unwrap();
        drop(c);
        let mut s = Store::open(&path).unwrap();
        s.commit(&WriteBatch {
            new_jobs: vec![(1, spec(), 1, String::new())],
            failures: vec![(1, 4, "executor died".into())],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let version: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let jobs = s.load().unwrap();
        assert_eq!(jobs[0].failures, vec![(4, "executor died".to_string())]);
        // Jobs from before owners were stored belong to no one ("").
        assert_eq!(jobs[0].owner, "");
    }

    #[test]
    fn a_v3_files_results_are_numbered_in_index_order_as_they_migrate() {
        let path = tmp("migrate-v3");
        let c = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..3] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO jobs (id, spec, submitted_ms, state) VALUES (1, x'', 0, 2), (2, x'', 0, 2);
             INSERT INTO results (job_id, idx, lo, hi, cpu_ns, wall_ns) VALUES
                 (1, 7, 70, 0, 1, 2), (1, 2, 20, 0, 1, 2), (2, 5, 50, 0, 1, 2), (1, 4, 40, 0, 1, 2);",
        )
        .unwrap();
        drop(c);
        drop(Store::open(&path).unwrap());
        let reader = StoreReader::open(&path).unwrap();
        let (rows, names) = reader
            .results_from(1, 0, ResultsOrder::Completion, 10, usize::MAX)
            .unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.index, r.value.clone())).collect();
        assert_eq!(
            got,
            vec![
                (2, Output::Int(20)),
                (4, Output::Int(40)),
                (7, Output::Int(70))
            ]
        );
        // What was not kept then is not known, and says so.
        assert_eq!(rows[0].run.worker, 0);
        assert_eq!(rows[0].run.model, None);
        assert!(names.is_empty());
        let (rows, _) = reader
            .results_from(2, 0, ResultsOrder::Completion, 10, usize::MAX)
            .unwrap();
        assert_eq!(rows.len(), 1);
    }

    fn open_err(path: &Path) -> String {
        Store::open(path).unwrap_err().to_string()
    }

    #[test]
    fn a_short_non_sqlite_file_is_refused_not_overwritten() {
        let path = tmp("short");
        std::fs::write(&path, b"x").unwrap();
        let e = open_err(&path);
        assert!(e.contains("not an SQLite file"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn garbage_truncated_and_foreign_files_are_clear_errors() {
        let path = tmp("garbage");
        std::fs::write(
            &path,
            b"this is not a database at all, just some text ......",
        )
        .unwrap();
        let e = open_err(&path);
        assert!(
            e.contains(&path.display().to_string()) && e.contains("not a brigade state database"),
            "{e}"
        );
        assert!(e.contains("move it aside"), "{e}");

        // A real brigade file cut short.
        let path = tmp("truncated");
        let mut s = Store::open(&path).unwrap();
        s.commit(&WriteBatch {
            new_jobs: vec![(1, spec(), 1, String::new())],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let e = open_err(&path);
        assert!(e.contains("state file"), "{e}");

        // Another program's SQLite database.
        let path = tmp("foreign");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE users (id INTEGER);").unwrap();
        drop(c);
        let e = open_err(&path);
        assert!(e.contains("tables: users"), "{e}");

        // One from the future.
        let path = tmp("newer");
        let c = Connection::open(&path).unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch("PRAGMA user_version = 99;").unwrap();
        drop(c);
        let e = open_err(&path);
        assert!(e.contains("newer brigade") && e.contains("99"), "{e}");

        // Another program's database with a user_version of its own.
        let path = tmp("foreign-versioned");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE users (id INTEGER); PRAGMA user_version = 7;")
            .unwrap();
        drop(c);
        let e = open_err(&path);
        assert!(
            e.contains("not a brigade state database") && e.contains("users"),
            "{e}"
        );

        // A v1 file that somehow has v2's table: the migration conflicts.
        let path = tmp("conflict");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(MIGRATIONS[1]).unwrap();
        c.execute_batch("PRAGMA user_version = 1;").unwrap();
        drop(c);
        let e = open_err(&path);
        assert!(e.contains("cannot bring schema version 1 up to"), "{e}");
        assert!(!e.contains('\n') && !e.contains("writable"), "{e}");
    }

    #[test]
    fn a_result_damaged_after_the_load_is_refused_when_read_naming_job_and_task() {
        let path = tmp("read-damage");
        let mut s = Store::open(&path).unwrap();
        s.commit(&WriteBatch {
            new_jobs: vec![(1, spec(), 1, String::new())],
            results: (0..4)
                .map(|i| StoredResult {
                    job: 1,
                    index: i,
                    value: Output::Int(u128::from(i) * 10),
                    run: run(1, 1, 1),
                    seq: i,
                })
                .collect(),
            ..Default::default()
        })
        .unwrap();
        let reader = StoreReader::open(&path).unwrap();
        let ok = reader
            .results_from(1, 0, ResultsOrder::Index, 10, usize::MAX)
            .unwrap();
        assert_eq!(ok.0.len(), 4);
        // Another writer changes a value under the running coordinator.
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE results SET lo = 99 WHERE job_id = 1 AND idx = 2",
            [],
        )
        .unwrap();
        drop(c);
        for order in [ResultsOrder::Index, ResultsOrder::Completion] {
            let e = reader
                .results_from(1, 0, order, 10, usize::MAX)
                .unwrap_err();
            assert!(matches!(e, ReadError::Damaged { job: 1, index: 2 }), "{e}");
            assert!(e.to_string().contains("job 1 task 2"), "{e}");
        }
        // Rows before it are still served.
        let (rows, _) = reader
            .results_from(1, 0, ResultsOrder::Index, 2, usize::MAX)
            .unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn lost_commits_are_refused_untouched_and_recovered_with_a_copy_kept() {
        let path = tmp("lost-commits");
        let mut s = Store::open(&path).unwrap();
        s.commit(&WriteBatch {
            new_jobs: vec![(1, spec(), 1, String::new())],
            ..Default::default()
        })
        .unwrap();
        s.conn_checkpoint();
        s.commit(&WriteBatch {
            new_jobs: vec![(2, spec(), 2, String::new())],
            ..Default::default()
        })
        .unwrap();
        // The log as it is while the coordinator runs, then lost.
        let db = std::fs::read(&path).unwrap();
        drop(s);
        std::fs::write(&path, &db).unwrap();
        let _ = std::fs::remove_file(beside(&path, "-wal"));
        let e = open_err(&path);
        assert!(
            e.contains("holds 1 commits but 2 were made") && e.contains("--state-recover"),
            "{e}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            db,
            "a refused file is not written"
        );
        let mut s = Store::open_with(&path, OpenOptions { recover: true }).unwrap();
        let jobs = s.load().unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [1]);
        let kept: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
            .collect();
        assert!(!kept.is_empty(), "a copy is kept");
        // Recovered, it carries on and opens cleanly next time.
        s.commit(&WriteBatch {
            new_jobs: vec![(2, spec(), 3, String::new())],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.load().unwrap().len(), 2);
    }
}
