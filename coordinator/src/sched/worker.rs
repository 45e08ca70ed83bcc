//! What the core knows of one worker: its slots, the credits it announced,
//! what it holds, and when it was last heard from.

use std::collections::HashSet;

use brigade_proto::{PerModel, SlotModel};

use super::{WorkerId, WorkerView};

/// Slots (or credits) per model.
pub type SlotCounts = PerModel<u32>;

/// What a worker says of itself when it joins.
#[derive(Debug, Clone, Default)]
pub struct WorkerHello {
    pub name: String,
    pub hostname: String,
    pub pid: u32,
    pub slots: SlotCounts,
    /// How many tasks per model it takes before returning any outcome
    /// (slots plus prefetch).
    pub credits: SlotCounts,
    pub connected_unix_ms: u64,
    /// The workloads it runs (`None`: any, for tests and benches).
    pub workloads: Option<HashSet<String>>,
}

#[derive(Debug)]
pub struct WorkerState {
    pub id: WorkerId,
    pub hello: WorkerHello,
    pub slots: SlotCounts,
    pub credits: SlotCounts,
    /// Assigned minus outcomes returned, per model.
    pub in_flight: PerModel<u32>,
    pub last_seen_ms: u64,
    pub draining: bool,
    pub tasks_done: u64,
}

impl WorkerState {
    pub fn new(id: WorkerId, hello: WorkerHello, now_ms: u64) -> Self {
        let mut w = WorkerState {
            id,
            slots: hello.slots,
            credits: hello.slots,
            hello,
            in_flight: PerModel::default(),
            last_seen_ms: now_ms,
            draining: false,
            tasks_done: 0,
        };
        w.set_credits(w.hello.credits);
        w
    }

    /// Credits below the slot count would leave slots idle.
    pub fn set_credits(&mut self, credits: SlotCounts) {
        self.credits = PerModel::from_fn(|m| credits[m].max(self.slots[m]));
    }

    /// Slots of this model with nothing assigned.
    pub fn idle_slots(&self, model: SlotModel) -> usize {
        self.slots[model].saturating_sub(self.in_flight[model]) as usize
    }

    /// Whether the worker runs this workload.
    pub fn offers(&self, workload: &str) -> bool {
        self.hello
            .workloads
            .as_ref()
            .is_none_or(|w| w.contains(workload))
    }

    /// Whether the worker takes tasks on slots of this model.
    pub fn serves(&self, model: SlotModel) -> bool {
        self.slots[model] > 0 && !self.draining
    }

    /// Credits of this model not yet used.
    pub fn free_credits(&self, model: SlotModel) -> usize {
        self.credits[model].saturating_sub(self.in_flight[model]) as usize
    }

    pub fn view(&self) -> WorkerView {
        WorkerView {
            id: self.id,
            name: self.hello.name.clone(),
            hostname: self.hello.hostname.clone(),
            pid: self.hello.pid,
            slots: self.slots,
            running_tasks: self.in_flight.values().sum(),
            tasks_done: self.tasks_done,
            connected_unix_ms: self.hello.connected_unix_ms,
            draining: self.draining,
        }
    }
}
