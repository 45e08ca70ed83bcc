//! Models, kinds and job states as users type and read them.

use brigade_proto::v1::{JobInfo, JobState, Kind, Model};

/// Parses a model name (`process`, `thread`, `async`, `auto`), or says which
/// names are allowed.
pub fn parse_model(s: &str) -> Result<Model, String> {
    match Model::parse(s) {
        Some(Model::Unspecified) | None => Err(format!(
            "unknown model {s:?}; allowed: process, thread, async, auto \
             (omit --model to route by kind: cpu → process, io → async)"
        )),
        Some(m) => Ok(m),
    }
}

/// Parses a kind name (`cpu`, `io`), or says which names are allowed.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown kind {s:?}; allowed: cpu, io"))
}

/// The name of a `JobInfo.state` (`unknown` for a value this client does not know).
pub fn state_name(state: i32) -> &'static str {
    JobState::try_from(state)
        .map(JobState::name)
        .unwrap_or("unknown")
}

/// The name of a `JobInfo.model` (`unknown` for a value this client does not know).
pub fn model_name(model: i32) -> &'static str {
    Model::try_from(model).map(Model::name).unwrap_or("unknown")
}

/// A job's total (the reduction of its task values; 0 when it has none).
pub fn total(info: &JobInfo) -> u128 {
    info.total.map(u128::from).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_kinds_name_the_allowed_values() {
        assert_eq!(parse_model("thread"), Ok(Model::Thread));
        assert!(parse_model("fiber")
            .unwrap_err()
            .contains("process, thread, async"));
        assert_eq!(parse_kind("io"), Ok(Kind::Io));
        assert!(parse_kind("gpu").unwrap_err().contains("cpu, io"));
    }
}
