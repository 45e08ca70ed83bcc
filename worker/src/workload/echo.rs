//! `echo`: returns its input as bytes (an inputs task's items, one per line;
//! a range task's index as text). Measures the bytes path — inputs in,
//! byte outputs out — without any user code.

use brigade_proto::catalog::{Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;

use super::{BlockingContext, BlockingTask, Registration, TaskBody, TaskInput};

/// The definition and code of `echo`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "echo",
            Kind::Io,
            Reduction::List,
            "returns its input: an inputs task's items (one per line), a range task's index, \
             as text (measures the bytes path)",
        ),
        |_| Ok(TaskBody::blocking(Echo)),
    )
}

/// An echo job's tasks.
#[derive(Debug)]
pub struct Echo;

impl BlockingTask for Echo {
    fn run(&self, input: &TaskInput, _: &mut BlockingContext) -> Result<Output, String> {
        Ok(Output::Bytes(match input.items.as_slice() {
            [] => input.index.to_string().into_bytes(),
            [one] => one.clone(),
            many => many.join(&b'\n'),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_items_or_the_index() {
        let mut ctx = BlockingContext::new();
        let mut input = TaskInput::range(12, 0, 1);
        assert_eq!(
            Echo.run(&input, &mut ctx),
            Ok(Output::Bytes(b"12".to_vec()))
        );
        input.items = vec![b"{\"a\":1}".to_vec()];
        assert_eq!(
            Echo.run(&input, &mut ctx),
            Ok(Output::Bytes(b"{\"a\":1}".to_vec()))
        );
        input.items.push(b"x".to_vec());
        assert_eq!(
            Echo.run(&input, &mut ctx),
            Ok(Output::Bytes(b"{\"a\":1}\nx".to_vec()))
        );
    }
}
