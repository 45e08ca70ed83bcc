//! Waiting for a condition with a deadline (tests never sleep to wait for
//! readiness): one polling loop that says, when it gives up, what it
//! waited for and what it saw last.

use std::time::{Duration, Instant};

/// How long any single wait in the harness may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a wait polls unless it says otherwise.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `probe` every `every` until it returns `Ok`, or panics after
/// `deadline` saying what was awaited and, unless empty, what the probe saw
/// last (its `Err`).
pub fn poll<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let seen = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        std::thread::sleep(every);
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, or panics after
/// `deadline` saying what was awaited.
pub fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    poll(what, deadline, POLL_EVERY, || {
        probe().ok_or_else(String::new)
    })
}
