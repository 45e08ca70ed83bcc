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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brigade_proto::v1::{JobSpec, JobState, Model, ResultsOrder};
use brigade_proto::{Output, SlotModel};

use crate::inputs::Inputs;
use crate::sched::{ResultRow, RunInfo};
use crate::state_lock::StateLock;
use prost::Message;
use rusqlite::{params, Connection, OpenFlags};

/// The schema this build writes. `PRAGMA user_version` holds a file's.
pub const SCHEMA_VERSION: i64 = 5;

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
];

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
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.new_jobs.is_empty()
            && self.new_workers.is_empty()
            && self.new_inputs.is_empty()
            && self.results.is_empty()
            && self.failures.is_empty()
            && self.ends.is_empty()
    }
}

/// The open state file.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held as long as the store is: one coordinator per state file.
    _lock: StateLock,
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

impl Store {
    /// Opens (creating if absent) and checks the state file, migrating an
    /// older schema, and proves it writable.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |what: String, hint: &'static str| StoreError::Open {
            path: path.to_path_buf(),
            what,
            hint,
        };
        // Before anything reads or writes the file.
        let lock = StateLock::acquire(path)?;
        tracing::debug!(lock = %lock.path().display(), "state file locked");
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(format!("cannot open: {e}"), HINT_WRITE))?;
        // SQLite takes a file shorter than its header for an empty database
        // and would write over it: anything non-empty must carry the header.
        check_header(path).map_err(|(what, hint)| fail(what, hint))?;
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
                return Err(fail(format!("corrupt: {check}"), HINT_NOT_OURS));
            }
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| fail(format!("cannot enable WAL: {e}"), HINT_WRITE))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(
                format!("cannot enable WAL (journal mode stays {mode})"),
                HINT_WRITE,
            ));
        }
        // FULL: a commit is on disk before a submission is acknowledged.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")
            .map_err(|e| fail(format!("cannot configure: {e}"), HINT_WRITE))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: lock,
        };
        store
            .migrate(version)
            .map_err(|e| match e.sqlite_error_code() {
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
            })?;
        Ok(store)
    }

    fn migrate(&mut self, from: i64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (v + 1) as i64)?;
        }
        // Also proves the file writable before any job is accepted.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_unix_ms', ?1)",
            params![now.to_string()],
        )?;
        tx.commit()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored job with its recorded results, in id order.
    pub fn load(&self) -> Result<Vec<StoredJob>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Open {
            path: self.path.clone(),
            what: format!("cannot read: {e}"),
            hint: HINT_NOT_OURS,
        };
        let mut jobs = Vec::new();
        let mut st = self
            .conn
            .prepare(
                "SELECT id, spec, submitted_ms, state, error, started_ms, finished_ms, owner FROM jobs ORDER BY id",
            )
            .map_err(read)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(read)?;
        for row in rows {
            let (id, spec, submitted, state, error, started, finished, owner) =
                row.map_err(read)?;
            let spec = JobSpec::decode(spec.as_slice()).map_err(|e| StoreError::Open {
                path: self.path.clone(),
                what: format!("job {id} has an unreadable spec ({e})"),
                hint: HINT_NOT_OURS,
            })?;
            jobs.push(StoredJob {
                id: from_sql(id),
                spec,
                owner,
                state: JobState::try_from(state).unwrap_or(JobState::Unspecified),
                error,
                submitted_ms: from_sql(submitted),
                started_ms: from_sql(started),
                finished_ms: from_sql(finished),
                results: Vec::new(),
                failures: Vec::new(),
                inputs: None,
            });
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq \
                 FROM results ORDER BY job_id, idx",
            )
            .map_err(read)?;
        let rows = st
            .query_map([], |r| {
                Ok(StoredResult {
                    job: from_sql(r.get(0)?),
                    index: from_sql(r.get(1)?),
                    value: output_of(r.get(2)?, r.get(3)?, r.get(4)?),
                    run: run_of(r, 5)?,
                    seq: from_sql(r.get(10)?),
                })
            })
            .map_err(read)?;
        let mut k = 0;
        for row in rows {
            let r = row.map_err(read)?;
            while k < jobs.len() && jobs[k].id < r.job {
                k += 1;
            }
            if k < jobs.len() && jobs[k].id == r.job {
                jobs[k].results.push(r);
            }
        }
        let mut st = self
            .conn
            .prepare("SELECT job_id, idx, error FROM failed_tasks ORDER BY job_id, idx")
            .map_err(read)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    from_sql(r.get(0)?),
                    from_sql(r.get(1)?),
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(read)?;
        for row in rows {
            let (job, index, error) = row.map_err(read)?;
            if let Ok(k) = jobs.binary_search_by_key(&job, |j| j.id) {
                jobs[k].failures.push((index, error));
            }
        }
        let mut st = self
            .conn
            .prepare("SELECT job_id, data FROM inputs ORDER BY job_id, part")
            .map_err(read)?;
        let rows = st
            .query_map([], |r| Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?)))
            .map_err(read)?;
        let mut parts: Vec<(u64, Vec<u8>)> = Vec::new();
        for row in rows {
            parts.push(row.map_err(read)?);
        }
        for job in &mut jobs {
            let mine: Vec<&[u8]> = parts
                .iter()
                .filter(|(j, _)| *j == job.id)
                .map(|(_, d)| d.as_slice())
                .collect();
            if job.spec.has_inputs {
                let inputs = Inputs::from_parts(mine).map_err(|why| StoreError::Open {
                    path: self.path.clone(),
                    what: format!("job {} has damaged inputs ({why})", job.id),
                    hint: HINT_NOT_OURS,
                })?;
                job.inputs = Some(inputs);
            }
        }
        Ok(jobs)
    }

    /// Writes the batch in one transaction (the group commit).
    pub fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO jobs (id, spec, submitted_ms, state, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(write)?;
            for (id, spec, submitted, owner) in &batch.new_jobs {
                ins.execute(params![
                    to_sql(*id),
                    spec.encode_to_vec(),
                    to_sql(*submitted),
                    JobState::Queued as i32,
                    owner
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
                     (job_id, idx, lo, hi, output, attempts, worker, model, cpu_ns, wall_ns, seq) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(write)?;
            for r in &batch.results {
                let (int, bytes) = match &r.value {
                    Output::Int(v) => (*v, None),
                    Output::Bytes(b) => (0, Some(b.as_slice())),
                };
                res.execute(params![
                    to_sql(r.job),
                    to_sql(r.index),
                    to_sql(int as u64),
                    to_sql((int >> 64) as u64),
                    bytes,
                    r.run.attempts,
                    to_sql(r.run.worker),
                    r.run.model.map_or(0, |m| Model::from(m) as i32),
                    to_sql(r.run.cpu_ns),
                    to_sql(r.run.wall_ns),
                    to_sql(r.seq),
                ])
                .map_err(write)?;
            }
            let mut inp = tx
                .prepare_cached("INSERT INTO inputs (job_id, part, data) VALUES (?1, ?2, ?3)")
                .map_err(write)?;
            for (job, inputs) in &batch.new_inputs {
                for (part, data) in inputs.parts().iter().enumerate() {
                    inp.execute(params![to_sql(*job), part as i64, data])
                        .map_err(write)?;
                }
            }
            let mut fail = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO failed_tasks (job_id, idx, error) VALUES (?1, ?2, ?3)",
                )
                .map_err(write)?;
            for (job, index, error) in &batch.failures {
                fail.execute(params![to_sql(*job), to_sql(*index), error])
                    .map_err(write)?;
            }
            let mut end = tx
                .prepare_cached(
                    "UPDATE jobs SET state = ?2, error = ?3, started_ms = ?4, finished_ms = ?5 WHERE id = ?1",
                )
                .map_err(write)?;
            for e in &batch.ends {
                end.execute(params![
                    to_sql(e.job),
                    e.state as i32,
                    e.error,
                    to_sql(e.started_ms),
                    to_sql(e.finished_ms)
                ])
                .map_err(write)?;
            }
        }
        tx.commit().map_err(write)
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
        use rusqlite::OptionalExtension;
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
        Ok(max.map_or(1, |m| from_sql(m) + 1))
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
    /// with the names of the workers that made them.
    pub fn results_from(
        &self,
        job: u64,
        from: u64,
        order: ResultsOrder,
        max: usize,
        max_bytes: usize,
    ) -> rusqlite::Result<(Vec<ResultRow>, HashMap<u64, String>)> {
        const COLUMNS: &str = "SELECT r.idx, r.lo, r.hi, r.output, r.attempts, r.worker, r.model, \
             r.cpu_ns, r.wall_ns, w.name FROM results r LEFT JOIN workers w ON w.id = r.worker";
        let mut st = self.conn.prepare_cached(&match order {
            ResultsOrder::Index => {
                format!("{COLUMNS} WHERE r.job_id = ?1 AND r.idx >= ?2 ORDER BY r.idx LIMIT ?3")
            }
            ResultsOrder::Completion => {
                format!("{COLUMNS} WHERE r.job_id = ?1 AND r.seq >= ?2 ORDER BY r.seq LIMIT ?3")
            }
        })?;
        let rows = st.query_map(params![to_sql(job), to_sql(from), max as i64], |r| {
            let row = ResultRow {
                index: from_sql(r.get(0)?),
                value: output_of(r.get(1)?, r.get(2)?, r.get(3)?),
                run: run_of(r, 4)?,
            };
            Ok((row, r.get::<_, Option<String>>(9)?))
        })?;
        let (mut out, mut names) = (Vec::new(), HashMap::new());
        let mut bytes = 0;
        // Rows are read as they are taken: the ones past the bound never are.
        for row in rows {
            if !out.is_empty() && bytes >= max_bytes {
                break;
            }
            let (row, name) = row?;
            bytes += row.value.len();
            if let Some(name) = name {
                names.entry(row.run.worker).or_insert(name);
            }
            out.push(row);
        }
        Ok((out, names))
    }
}

/// How a stored result's task ran, from the columns attempts, worker,
/// model, cpu_ns and wall_ns starting at `first`.
fn run_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RunInfo> {
    Ok(RunInfo {
        attempts: r.get(first)?,
        worker: from_sql(r.get(first + 1)?),
        model: SlotModel::from_wire(r.get(first + 2)?),
        cpu_ns: from_sql(r.get(first + 3)?),
        wall_ns: from_sql(r.get(first + 4)?),
    })
}

/// A stored output: its bytes if it has any, else the integer in two words.
fn output_of(lo: i64, hi: i64, bytes: Option<Vec<u8>>) -> Output {
    match bytes {
        Some(b) => Output::Bytes(b),
        None => Output::Int(((from_sql(hi) as u128) << 64) | from_sql(lo) as u128),
    }
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
                (1, spec(), 111, "alice".into()),
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
        let s = Store::open(&path).unwrap();
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
        assert_eq!(jobs[0].spec, spec());
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
        let s = Store::open(&path).unwrap();
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
}
