//! The three executors (process, thread, async) that run tasks on a worker.
