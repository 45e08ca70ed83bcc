//! Whatever bytes arrive on a worker link: decoded as the messages each side
//! reads, and every batch taken apart as the coordinator and the worker take
//! it apart. Errors are fine; a panic, an abort or a runaway allocation is a
//! bug.
#![no_main]

use brigade_proto::batch::assigned_tasks;
use brigade_proto::v1::{coordinator_message, worker_message, CoordinatorMessage, WorkerMessage};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = WorkerMessage::decode(data) {
        if let Some(worker_message::Msg::Results(batch)) = m.msg {
            for ok in &batch.ok {
                if let Ok(rows) = ok.outcomes() {
                    // Bounded: each row costs at least a byte of every column.
                    for _ in rows.take(1 << 20) {}
                }
            }
        }
    }
    if let Ok(m) = CoordinatorMessage::decode(data) {
        if let Some(coordinator_message::Msg::Assign(batch)) = m.msg {
            let _ = assigned_tasks(&batch);
        }
    }
});
