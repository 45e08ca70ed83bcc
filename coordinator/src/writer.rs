//! The store's writer thread: the actor hands it group commits and keeps
//! scheduling while SQLite writes (and fsyncs) on another core. Batches that
//! queue up while a commit runs are merged into the next transaction; every
//! batch's sequence number comes back with the outcome, in order.
//!
//! Each transaction's time and size are counted in [`COMMITS`] (read by the
//! metrics): one lock per group commit, never per task.

use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::sched::counters::Histogram;
use crate::store::{Store, WriteBatch};

/// Upper bounds (ns) of the group-commit latency buckets: 100 µs to 10 s.
pub(crate) const COMMIT_TIME_BOUNDS_NS: [u64; 12] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the group-commit size buckets (results in one
/// transaction).
pub(crate) const COMMIT_SIZE_BOUNDS: [u64; 8] = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

/// What the writer's transactions took and held.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CommitStats {
    /// Time of each transaction (begin to fsync'd commit), ns.
    pub time: Histogram<{ COMMIT_TIME_BOUNDS_NS.len() }>,
    /// Results written by each transaction.
    pub results: Histogram<{ COMMIT_SIZE_BOUNDS.len() }>,
    /// Transactions that failed.
    pub failed: u64,
}

/// Every writer of this process counts here (a process runs one
/// coordinator; the in-process tests that run several share it).
pub(crate) static COMMITS: Mutex<CommitStats> = Mutex::new(CommitStats {
    time: Histogram {
        counts: [0; COMMIT_TIME_BOUNDS_NS.len()],
        above: 0,
        sum: 0,
    },
    results: Histogram {
        counts: [0; COMMIT_SIZE_BOUNDS.len()],
        above: 0,
        sum: 0,
    },
    failed: 0,
});

/// What the writer reports: the sequence numbers one transaction covered,
/// and on failure the error with the merged batch (to retry).
pub(crate) type Committed = (Vec<u64>, Result<(), (String, WriteBatch)>);

pub(crate) struct StoreWriter {
    tx: Option<std_mpsc::Sender<(u64, WriteBatch)>>,
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    pub(crate) fn start(
        mut store: Store,
        done: mpsc::UnboundedSender<Committed>,
    ) -> std::io::Result<StoreWriter> {
        let (tx, rx) = std_mpsc::channel::<(u64, WriteBatch)>();
        let thread = std::thread::Builder::new()
            .name("brigade-store".into())
            .spawn(move || {
                while let Ok((seq, mut batch)) = rx.recv() {
                    let mut seqs = vec![seq];
                    while let Ok((seq, more)) = rx.try_recv() {
                        seqs.push(seq);
                        merge(&mut batch, more);
                    }
                    let (started, results) = (Instant::now(), batch.results.len() as u64);
                    let result = store.commit(&batch).map_err(|e| (e.to_string(), batch));
                    let took = started.elapsed().as_nanos() as u64;
                    if let Ok(mut stats) = COMMITS.lock() {
                        stats.time.observe(&COMMIT_TIME_BOUNDS_NS, took);
                        stats.results.observe(&COMMIT_SIZE_BOUNDS, results);
                        stats.failed += u64::from(result.is_err());
                    }
                    if result.is_err() {
                        // A full disk: give back what the log holds beyond
                        // the database, so the retry has room to write.
                        store.checkpoint_truncate();
                    }
                    if done.send((seqs, result)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(StoreWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a batch; false if the writer is gone.
    pub(crate) fn submit(&self, seq: u64, batch: WriteBatch) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send((seq, batch)).is_ok())
    }

    /// Lets the queued commits finish and stops the thread.
    pub(crate) fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Appends `more` to `into` (later batches after earlier ones).
pub(crate) fn merge(into: &mut WriteBatch, more: WriteBatch) {
    into.new_workers.extend(more.new_workers);
    into.new_jobs.extend(more.new_jobs);
    into.new_inputs.extend(more.new_inputs);
    into.results.extend(more.results);
    into.failures.extend(more.failures);
    into.ends.extend(more.ends);
    into.purged.extend(more.purged);
}
