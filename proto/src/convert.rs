//! Small conversions between wire types and Rust types used on every side.

use crate::v1::{JobState, Kind, Model, U128};

impl From<u128> for U128 {
    fn from(v: u128) -> Self {
        U128 {
            lo: v as u64,
            hi: (v >> 64) as u64,
        }
    }
}

impl From<U128> for u128 {
    fn from(v: U128) -> Self {
        ((v.hi as u128) << 64) | v.lo as u128
    }
}

/// Joins the parallel `lo`/`hi` columns of a results chunk into values.
pub fn join_u128<'a>(lo: &'a [u64], hi: &'a [u64]) -> impl Iterator<Item = u128> + 'a {
    lo.iter()
        .enumerate()
        .map(move |(i, &l)| ((hi.get(i).copied().unwrap_or(0) as u128) << 64) | l as u128)
}

/// Names users type for models, in the order they are listed in errors.
pub const MODEL_NAMES: &[&str] = &["process", "thread", "async", "auto"];
/// Names users type for kinds.
pub const KIND_NAMES: &[&str] = &["cpu", "io"];

impl Model {
    /// The user-facing name (`process`, `thread`, `async`; `auto` for unspecified).
    pub fn name(self) -> &'static str {
        match self {
            Model::Unspecified => "default",
            Model::Auto => "auto",
            Model::Process => "process",
            Model::Thread => "thread",
            Model::Async => "async",
        }
    }

    /// Parses a user-facing model name.
    pub fn parse(s: &str) -> Option<Model> {
        match s {
            "process" => Some(Model::Process),
            "thread" => Some(Model::Thread),
            "async" => Some(Model::Async),
            "auto" => Some(Model::Auto),
            _ => None,
        }
    }

    /// The three concrete models, in display order.
    pub const ALL: [Model; 3] = [Model::Process, Model::Thread, Model::Async];
}

impl Kind {
    /// The user-facing name (`cpu`, `io`; `default` for unspecified).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unspecified => "default",
            Kind::Cpu => "cpu",
            Kind::Io => "io",
        }
    }

    /// Parses a user-facing kind name.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "cpu" => Some(Kind::Cpu),
            "io" => Some(Kind::Io),
            _ => None,
        }
    }
}

impl JobState {
    /// The user-facing name (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Unspecified => "unknown",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u128_round_trips_through_the_wire_type() {
        for v in [0u128, 1, u64::MAX as u128, u64::MAX as u128 + 1, u128::MAX] {
            assert_eq!(u128::from(U128::from(v)), v);
        }
    }

    #[test]
    fn join_u128_treats_missing_hi_as_zero() {
        let v: Vec<u128> = join_u128(&[1, 2], &[]).collect();
        assert_eq!(v, vec![1, 2]);
        let v: Vec<u128> = join_u128(&[1, 2], &[0, 1]).collect();
        assert_eq!(v, vec![1, (1u128 << 64) | 2]);
    }

    #[test]
    fn model_names_round_trip() {
        for m in Model::ALL {
            assert_eq!(Model::parse(m.name()), Some(m));
        }
        assert_eq!(Model::parse("fiber"), None);
    }
}
