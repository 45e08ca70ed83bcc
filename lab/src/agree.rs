//! How the runs of a user's job (`--job`) are checked. There is no formula
//! for what a user's task returns, so every model must return the same: each
//! run streams its rows into a spill file (full outputs, integers and bytes,
//! in index order; memory stays bounded whatever the job's size), and after
//! the clock stops the file is compared row by row with the reference, the
//! first run that completed the whole job. A prefix run (the `1 slot`
//! baseline) that ended before any full run waits for the reference.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use brigade_client::{Output, ResultRow};

/// A spill row's first byte: what follows.
const INT: u8 = 0;
const BYTES: u8 = 1;

/// A run's rows on their way to disk, checked to come one per task in
/// index order.
pub struct Spill {
    out: BufWriter<File>,
    rows: u64,
}

impl Spill {
    pub fn create(path: &Path) -> anyhow::Result<Spill> {
        let file = File::create(path)
            .with_context(|| format!("could not create the spill file {}", path.display()))?;
        Ok(Spill {
            out: BufWriter::with_capacity(1 << 16, file),
            rows: 0,
        })
    }

    pub fn push(&mut self, row: &ResultRow) -> anyhow::Result<()> {
        if row.index != self.rows {
            anyhow::bail!("result {} has index {}", self.rows, row.index);
        }
        let written = match &row.output {
            Output::Int(v) => self
                .out
                .write_all(&[INT])
                .and_then(|()| self.out.write_all(&v.to_le_bytes())),
            Output::Bytes(b) => self
                .out
                .write_all(&[BYTES])
                .and_then(|()| self.out.write_all(&(b.len() as u64).to_le_bytes()))
                .and_then(|()| self.out.write_all(b)),
        };
        written.context("could not write the spill file")?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes the file; returns how many rows it holds.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.out.flush().context("could not write the spill file")?;
        Ok(self.rows)
    }
}

/// The next row of a spill file (`None` at its end).
fn read_row(r: &mut impl Read) -> io::Result<Option<Output>> {
    let mut tag = [0u8; 1];
    if r.read(&mut tag)? == 0 {
        return Ok(None);
    }
    match tag[0] {
        INT => {
            let mut v = [0u8; 16];
            r.read_exact(&mut v)?;
            Ok(Some(Output::Int(u128::from_le_bytes(v))))
        }
        BYTES => {
            let mut len = [0u8; 8];
            r.read_exact(&mut len)?;
            let mut b = Vec::new();
            r.take(u64::from_le_bytes(len)).read_to_end(&mut b)?;
            if b.len() as u64 != u64::from_le_bytes(len) {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(Some(Output::Bytes(b)))
        }
        t => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("row tag {t}"),
        )),
    }
}

/// An output as an error message shows it: the integer, or the byte count
/// and the first 40 bytes as text.
fn describe(o: &Output) -> String {
    match o {
        Output::Int(v) => format!("the integer {v}"),
        Output::Bytes(b) => {
            let head = String::from_utf8_lossy(&b[..b.len().min(40)]);
            let more = if b.len() > 40 { "..." } else { "" };
            format!("{} bytes {head:?}{more}", b.len())
        }
    }
}

/// Compares the first `rows` rows of `run` with `reference`'s: the first
/// task whose outputs differ fails the run, saying both outputs.
fn compare(reference: &Path, ref_label: &str, run: &Path, rows: u64) -> Result<(), String> {
    let open = |p: &Path| {
        File::open(p)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .map_err(|e| format!("could not read the spill file {}: {e}", p.display()))
    };
    let (mut a, mut b) = (open(run)?, open(reference)?);
    let broken = |e: io::Error| format!("could not compare the outputs: {e}");
    for i in 0..rows {
        let mine = read_row(&mut a).map_err(broken)?;
        let theirs = read_row(&mut b).map_err(broken)?;
        match (mine, theirs) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                return Err(format!(
                    "outputs disagree at index {i}: {} here, {} in the {ref_label} run",
                    describe(&x),
                    describe(&y)
                ))
            }
            (None, _) => return Err(format!("no output for index {i}")),
            (_, None) => return Err(format!("the {ref_label} run has no output for index {i}")),
        }
    }
    Ok(())
}

/// A run that waits for the reference.
struct Pending {
    id: usize,
    path: PathBuf,
    rows: u64,
}

/// The runs of one job, checked against each other.
pub struct Agreement {
    dir: PathBuf,
    files: u64,
    full_tasks: u64,
    /// The first run that returned every task's output: (label, spill file).
    reference: Option<(String, PathBuf)>,
    pending: Vec<Pending>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);

impl Agreement {
    /// For a job of `full_tasks` tasks; its spill files go to a directory of
    /// their own under the system's temporary directory.
    pub fn new(full_tasks: u64) -> anyhow::Result<Agreement> {
        let dir = std::env::temp_dir().join(format!(
            "brigade-bench-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {} for the job's outputs", dir.display()))?;
        Ok(Agreement {
            dir,
            files: 0,
            full_tasks,
            reference: None,
            pending: Vec::new(),
        })
    }

    /// Where the next run writes its rows.
    pub fn spill_path(&mut self) -> PathBuf {
        self.files += 1;
        self.dir.join(format!("run-{}.bin", self.files))
    }

    /// A run that did not complete: its file is not compared.
    pub fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// A run (`id`, `label`) that completed with `rows` rows in `path`:
    /// returns what can be said now, of it and of runs that waited for a
    /// reference. The first full run becomes the reference (it agrees with
    /// itself); a prefix run before it waits.
    pub fn check(
        &mut self,
        id: usize,
        label: &str,
        path: PathBuf,
        rows: u64,
    ) -> Vec<(usize, Result<(), String>)> {
        match &self.reference {
            Some((ref_label, ref_path)) => {
                let r = compare(ref_path, ref_label, &path, rows);
                self.discard(&path);
                vec![(id, r)]
            }
            None if rows == self.full_tasks => {
                let mut out = vec![(id, Ok(()))];
                for p in std::mem::take(&mut self.pending) {
                    out.push((p.id, compare(&path, label, &p.path, p.rows)));
                    self.discard(&p.path);
                }
                self.reference = Some((label.to_string(), path));
                out
            }
            None => {
                self.pending.push(Pending { id, path, rows });
                Vec::new()
            }
        }
    }

    /// Runs that are still waiting: no full run completed to compare them
    /// with (their ids, and why they are not verified).
    pub fn unsettled(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| {
                self.discard(&p.path);
                (
                    p.id,
                    "no run of the whole job completed to compare its outputs with".to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Agreement {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill(a: &mut Agreement, outputs: &[Output]) -> PathBuf {
        let path = a.spill_path();
        let mut s = Spill::create(&path).unwrap();
        for (i, o) in outputs.iter().enumerate() {
            s.push(&ResultRow {
                index: i as u64,
                output: o.clone(),
                run: Default::default(),
            })
            .unwrap();
        }
        assert_eq!(s.finish().unwrap(), outputs.len() as u64);
        path
    }

    fn bytes(s: &str) -> Output {
        Output::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn spill_rows_read_back_exactly_and_must_come_in_index_order() {
        let mut a = Agreement::new(3).unwrap();
        let rows = [Output::Int(u128::MAX), bytes(""), bytes("caf\u{e9}\n")];
        let path = spill(&mut a, &rows);
        let mut r = BufReader::new(File::open(&path).unwrap());
        for o in &rows {
            assert_eq!(read_row(&mut r).unwrap().as_ref(), Some(o));
        }
        assert_eq!(read_row(&mut r).unwrap(), None);
        let mut s = Spill::create(&a.spill_path()).unwrap();
        let skipped = ResultRow {
            index: 1,
            output: Output::Int(0),
            run: Default::default(),
        };
        assert!(s
            .push(&skipped)
            .unwrap_err()
            .to_string()
            .contains("result 0 has index 1"));
    }

    #[test]
    fn runs_agree_with_the_first_full_run_or_fail_naming_the_index() {
        let good = [bytes("a"), bytes("b"), Output::Int(7), bytes("d")];
        let mut a = Agreement::new(4).unwrap();
        // The 2-task baseline prefix ends first and waits.
        let base = spill(&mut a, &good[..2]);
        assert!(a.check(0, "1 slot", base, 2).is_empty());
        // The first full run is the reference and settles the baseline.
        let first = spill(&mut a, &good);
        assert_eq!(a.check(1, "process", first, 4), [(1, Ok(())), (0, Ok(()))]);
        let same = spill(&mut a, &good);
        assert_eq!(a.check(2, "thread", same, 4), [(2, Ok(()))]);
        let mut off = good.clone();
        off[3] = bytes("d!");
        let path = spill(&mut a, &off);
        let (id, r) = a.check(3, "async", path.clone(), 4).remove(0);
        assert_eq!(id, 3);
        assert_eq!(
            r.unwrap_err(),
            "outputs disagree at index 3: 2 bytes \"d!\" here, 1 bytes \"d\" in the process run"
        );
        assert!(!path.exists(), "a compared file is removed");
        // An integer and its decimal text are different outputs.
        let mut text = good.clone();
        text[2] = bytes("7");
        let path = spill(&mut a, &text);
        let r = a.check(4, "auto", path, 4).remove(0).1;
        assert!(
            r.unwrap_err()
                .contains("index 2: 1 bytes \"7\" here, the integer 7"),
            "an integer is not its text"
        );
        let dir = a.dir.clone();
        drop(a);
        assert!(!dir.exists(), "the spill directory goes with the agreement");
    }

    #[test]
    fn a_wrong_baseline_prefix_fails_once_the_reference_arrives() {
        let mut a = Agreement::new(3).unwrap();
        let base = spill(
            &mut a,
            &[
                bytes("x"),
                bytes("long output, longer than forty bytes in all"),
            ],
        );
        assert!(a.check(0, "1 slot", base, 2).is_empty());
        let full = spill(&mut a, &[bytes("x"), bytes("y"), bytes("z")]);
        let got = a.check(5, "thread", full, 3);
        assert_eq!(got[0], (5, Ok(())));
        assert_eq!(got[1].0, 0);
        let e = got[1].1.clone().unwrap_err();
        assert!(
            e.contains("index 1: 43 bytes \"long output, longer than forty bytes in \"..."),
            "{e}"
        );
        assert!(a.unsettled().is_empty());
    }

    #[test]
    fn a_prefix_with_no_full_run_is_unsettled() {
        let mut a = Agreement::new(10).unwrap();
        let base = spill(&mut a, &[bytes("x")]);
        assert!(a.check(0, "1 slot", base.clone(), 1).is_empty());
        let left = a.unsettled();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, 0);
        assert!(left[0].1.contains("no run of the whole job"));
        assert!(!base.exists());
    }
}
