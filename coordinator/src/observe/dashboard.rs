//! `/api/state`: what the dashboard page shows, as JSON (serde), and the
//! tasks-per-second history behind its chart. The actor fills a
//! [`DashboardState`] from the core's views on each request; jobs count
//! only durable results, as every client view does.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Slot counts (or tasks) per slot model, as the page names them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Models {
    pub process: u64,
    pub thread: u64,
    #[serde(rename = "async")]
    pub async_: u64,
}

impl From<brigade_proto::PerModel<u64>> for Models {
    fn from(m: brigade_proto::PerModel<u64>) -> Self {
        Models {
            process: m.process,
            thread: m.thread,
            async_: m.async_,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    pub id: u64,
    pub name: String,
    pub hostname: String,
    pub slots: Models,
    /// Tasks assigned and not answered yet (running, or queued on the
    /// worker ahead of a free slot).
    pub assigned: Models,
    /// Slots running a task: `assigned`, at most `slots`.
    pub busy: Models,
    pub tasks_done: u64,
    pub draining: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub id: u64,
    pub workload: String,
    pub owner: String,
    pub state: &'static str,
    pub model: &'static str,
    pub tasks_total: u64,
    pub tasks_done: u64,
    pub tasks_failed: u64,
    pub tasks_running: u64,
    pub submitted_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// Why its queued tasks go nowhere ("" when they do).
    pub waiting: String,
    pub error: String,
}

/// Failed tasks that share an error message.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    pub message: String,
    pub tasks: u64,
    pub jobs: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub workers: u64,
    pub slots: Models,
    pub assigned: Models,
    pub busy: Models,
    pub tasks_queued: u64,
    pub jobs_active: u64,
    pub jobs_total: u64,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardState {
    pub version: &'static str,
    pub now_unix_ms: u64,
    pub uptime_ms: u64,
    pub totals: Totals,
    pub workers: Vec<WorkerRow>,
    /// Jobs that have not ended (oldest first), then the most recent
    /// [`RECENT_JOBS`] that have (newest first).
    pub jobs: Vec<JobRow>,
    /// Failures of the jobs shown, grouped by cause (the task's part left
    /// out, numbers aside), most tasks first (at most [`FAILURE_GROUPS`];
    /// per job, its first 1,000 failed tasks).
    pub failures: Vec<FailureGroup>,
    /// Tasks done per second, oldest first, one value a second for up to
    /// [`HISTORY_SECONDS`].
    pub tasks_per_second: Vec<f64>,
}

/// Ended jobs the page lists.
pub const RECENT_JOBS: usize = 20;
/// Failure groups the page lists.
pub const FAILURE_GROUPS: usize = 10;
/// Seconds of tasks-per-second history kept.
pub const HISTORY_SECONDS: usize = 300;

/// Groups `(job, message)` pairs by message with every run of digits
/// taken as the same number (pids, indices, sizes differ between tasks that
/// failed for one reason), most tasks first. A group shows its first
/// message.
pub fn group_failures(failed: impl IntoIterator<Item = (u64, String)>) -> Vec<FailureGroup> {
    let mut out: Vec<FailureGroup> = group_by_message(failed, usize::MAX)
        .into_iter()
        .map(|g| FailureGroup {
            message: g.message,
            tasks: g.count,
            jobs: g.members,
        })
        .collect();
    out.truncate(FAILURE_GROUPS);
    out
}

/// Items that share a message (numbers aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    /// The first item's message.
    pub message: String,
    pub count: u64,
    /// The distinct members (jobs, task indices) of its items, in the order
    /// first seen, at most the number asked for.
    pub members: Vec<u64>,
}

/// Groups `(member, message)` pairs by message with every run of digits
/// taken as the same number, most items first (then by message), keeping
/// up to `keep` distinct members per group. Every group is returned.
pub fn group_by_message(
    items: impl IntoIterator<Item = (u64, String)>,
    keep: usize,
) -> Vec<Grouped> {
    let mut groups: BTreeMap<String, Grouped> = BTreeMap::new();
    for (member, message) in items {
        let group = groups
            .entry(digits_as_one(&message))
            .or_insert_with(|| Grouped {
                message,
                count: 0,
                members: Vec::new(),
            });
        group.count += 1;
        if group.members.len() < keep && !group.members.contains(&member) {
            group.members.push(member);
        }
    }
    let mut out: Vec<Grouped> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
    out
}

/// `text` with each run of ASCII digits replaced by one `#`.
fn digits_as_one(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// Tasks done, sampled about once a second (on the actor's tick).
#[derive(Debug, Default)]
pub struct Throughput {
    /// (ms, tasks done so far) samples, oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl Throughput {
    /// Takes a sample if a second has passed since the last one.
    pub fn sample(&mut self, now_ms: u64, done: u64) {
        if let Some(&(last, _)) = self.samples.back() {
            if now_ms < last + 1_000 {
                return;
            }
        }
        self.samples.push_back((now_ms, done));
        while self.samples.len() > HISTORY_SECONDS + 1 {
            self.samples.pop_front();
        }
    }

    /// Tasks per second between consecutive samples, oldest first.
    pub fn rates(&self) -> Vec<f64> {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(&(t0, n0), &(t1, n1))| {
                (n1.saturating_sub(n0)) as f64 * 1_000.0 / (t1 - t0).max(1) as f64
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_group_by_message_numbers_aside_most_tasks_first() {
        let failed = [
            (
                1,
                "executor died: executor process 5305 died: killed by signal 6",
            ),
            (
                1,
                "executor died: executor process 5412 died: killed by signal 6",
            ),
            (
                2,
                "executor died: executor process 77 died: killed by signal 6",
            ),
            (2, "failed: bad input"),
        ];
        let groups = group_failures(failed.map(|(j, m)| (j, m.to_string())));
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].message,
            "executor died: executor process 5305 died: killed by signal 6"
        );
        assert_eq!(groups[0].tasks, 3);
        assert_eq!(groups[0].jobs, vec![1, 2]);
        assert_eq!(groups[1].message, "failed: bad input");
        assert_eq!(groups[1].jobs, vec![2]);
    }

    #[test]
    fn throughput_is_one_rate_a_second_between_samples() {
        let mut t = Throughput::default();
        t.sample(10_000, 0);
        t.sample(10_500, 40); // within the second: not taken
        t.sample(11_000, 100);
        t.sample(13_000, 300);
        assert_eq!(t.rates(), vec![100.0, 100.0]);
        for s in 0..400 {
            t.sample(20_000 + s * 1_000, 300 + s);
        }
        assert_eq!(t.rates().len(), HISTORY_SECONDS);
        assert!(t.rates().iter().all(|&r| r == 1.0));
    }
}
