//! `noop`: returns the task's index; measures per-task overhead only.

use brigade_proto::catalog::{Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;

use super::{BlockingContext, BlockingTask, Registration, TaskBody, TaskInput};

/// The definition and code of `noop`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "noop",
            Kind::Io,
            Reduction::List,
            "does nothing and returns the task's index (measures per-task overhead)",
        ),
        |_| Ok(TaskBody::blocking(Noop)),
    )
}

/// A noop job's tasks.
#[derive(Debug)]
pub struct Noop;

impl BlockingTask for Noop {
    fn run(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        Ok(Output::Int(run(input.index)))
    }
}

/// The result of a noop task: its own index.
#[inline]
pub fn run(index: u64) -> u128 {
    index as u128
}

#[cfg(test)]
mod tests {
    #[test]
    fn returns_the_index() {
        assert_eq!(super::run(0), 0);
        assert_eq!(super::run(u64::MAX), u64::MAX as u128);
    }
}
