//! `sleep ms=M`: waits M milliseconds; blocking on thread and process slots,
//! non-blocking on async slots (the point of the comparison).

use std::time::Duration;

/// Blocks the calling thread (thread and process slots).
pub fn run_blocking(dur: Duration) {
    std::thread::sleep(dur);
}

/// Yields to the event loop while waiting (async slots).
pub async fn run_async(dur: Duration) {
    tokio::time::sleep(dur).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn blocking_sleep_waits_at_least_the_duration() {
        let t = Instant::now();
        run_blocking(Duration::from_millis(5));
        assert!(t.elapsed() >= Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn async_sleep_follows_the_tokio_clock() {
        let t = tokio::time::Instant::now();
        run_async(Duration::from_millis(250)).await;
        assert_eq!(t.elapsed(), Duration::from_millis(250));
    }
}
