//! `noop`: returns the task's index; measures per-task overhead only.

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
