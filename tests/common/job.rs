//! Jobs as the tests submit and check them: common flags, the fields of a
//! job's JSON, the exact values a job must produce, and a sum-squares job
//! described once (its arguments, total and per-task results).

use serde_json::Value;

use super::client::Client;

/// Quick fault detection so fault scenarios stay short.
pub const FAST_LEASES: [&str; 4] = ["--lease-timeout-ms", "1000", "--heartbeat-ms", "200"];

/// The job's id in its JSON.
pub fn id_of(job: &Value) -> u64 {
    job["job_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no job_id in {job}"))
}

/// Tasks done so far.
pub fn done(job: &Value) -> u64 {
    job["tasks_done"].as_u64().unwrap_or(0)
}

/// Whether the job is over (whatever the outcome).
pub fn ended(job: &Value) -> bool {
    !matches!(job["state"].as_str(), Some("queued" | "running"))
}

/// The job succeeded with every one of its `tasks` tasks done and none
/// failed.
pub fn assert_succeeded(job: &Value, tasks: u64) {
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["tasks_total"], tasks, "job: {job}");
    assert_eq!(job["tasks_done"], tasks, "job: {job}");
    assert_eq!(job["tasks_failed"], 0, "job: {job}");
    assert_eq!(job["error"], "", "job: {job}");
}

/// Results that are exactly index → index for 0..n (noop, sleep, spin).
pub fn identity(n: u64) -> Vec<(u64, u128)> {
    (0..n).map(|i| (i, u128::from(i))).collect()
}

/// Σ i² for i in [0, n), exactly.
pub fn sum_squares_below(n: u64) -> u128 {
    if n == 0 {
        return 0;
    }
    let n = n as u128;
    (n - 1) * n * (2 * n - 1) / 6
}

/// Σ i² for i in [a, b), exactly.
pub fn sum_squares(a: u64, b: u64) -> u128 {
    sum_squares_below(b) - sum_squares_below(a)
}

/// W_CPU's total as README.md states it: a check on
/// [`SumSquares::total`] as much as on the cluster.
pub const W_CPU_TOTAL: &str = "71999998200000010000000";

/// A `sum-squares` job over `[0, tasks × chunk)` in `tasks` chunks.
#[derive(Debug, Clone, Copy)]
pub struct SumSquares {
    pub tasks: u64,
    pub chunk: u64,
}

impl SumSquares {
    /// W_CPU: sum-squares over [0, 60,000,000) in 40 chunks; its total is
    /// [`W_CPU_TOTAL`].
    pub const W_CPU: SumSquares = SumSquares::new(40, 1_500_000);
    /// A quick job that shows a cluster still computes: [0, 1000) in 10.
    pub const QUICK: SumSquares = SumSquares::new(10, 100);

    pub const fn new(tasks: u64, chunk: u64) -> SumSquares {
        SumSquares { tasks, chunk }
    }

    /// `sum-squares --range 0..N --chunk C`, then `extra` (e.g. `--model`).
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let head = [
            "sum-squares".to_string(),
            "--range".to_string(),
            format!("0..{}", self.tasks * self.chunk),
            "--chunk".to_string(),
            self.chunk.to_string(),
        ];
        head.into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    }

    /// The job's total, as its JSON spells it.
    pub fn total(&self) -> String {
        sum_squares_below(self.tasks * self.chunk).to_string()
    }

    /// Each task's (index, value).
    pub fn rows(&self) -> impl Iterator<Item = (u64, u128)> {
        let chunk = self.chunk;
        (0..self.tasks).map(move |i| (i, sum_squares(i * chunk, (i + 1) * chunk)))
    }

    /// `job` (its final JSON) succeeded with the exact total.
    pub fn assert_total(&self, job: &Value) {
        assert_succeeded(job, self.tasks);
        assert_eq!(job["total"], self.total().as_str(), "job: {job}");
    }

    /// `job` (its final JSON) succeeded with the exact total, and the
    /// coordinator holds every task's exact result once.
    pub fn assert_exact(&self, c: &Client, job: &Value) {
        self.assert_total(job);
        c.assert_results(id_of(job), self.rows());
    }
}
