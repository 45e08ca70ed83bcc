//! `sleep ms=M`: waits M milliseconds; blocking on thread and process slots,
//! non-blocking on async slots (the point of the comparison).

use std::time::Duration;

use brigade_proto::catalog::{ArgDef, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;

use super::{
    AsyncContext, BlockingContext, Registration, TaskBody, TaskInput, WaitingTask, MS_ARG_MAX,
};

/// The definition and code of `sleep`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "sleep",
            Kind::Io,
            Reduction::List,
            "waits `ms` milliseconds (non-blocking on async slots, blocking on thread and \
             process slots) and returns the task's index",
        )
        .arg(ArgDef::u64("ms", 0, MS_ARG_MAX, "milliseconds to wait per task").default("100")),
        |args| {
            Ok(TaskBody::waiting(Sleep {
                wait: Duration::from_millis(args.required_u64("ms")?),
            }))
        },
    )
}

/// A sleep job's tasks.
#[derive(Debug)]
pub struct Sleep {
    pub wait: Duration,
}

impl WaitingTask for Sleep {
    fn run_blocking(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        run_blocking(self.wait);
        Ok(Output::Int(input.index as u128))
    }

    fn run_async<'a>(
        &'a self,
        input: &'a TaskInput,
        _: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>> {
        Box::pin(async move {
            run_async(self.wait).await;
            Ok(Output::Int(input.index as u128))
        })
    }
}

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
