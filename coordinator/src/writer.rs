//! The store's writer thread: the actor hands it group commits and keeps
//! scheduling while SQLite writes (and fsyncs) on another core. Batches that
//! queue up while a commit runs are merged into the next transaction; every
//! batch's sequence number comes back with the outcome, in order.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::store::{Store, WriteBatch};

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
                    let result = store.commit(&batch).map_err(|e| (e.to_string(), batch));
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
}
