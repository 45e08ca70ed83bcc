//! Models, kinds, job states, ranges, `KEY=VALUE` arguments and inputs
//! formats as users type and read them (the CLI's and the lab's flags).

use brigade_proto::v1::{InputsFormat, JobInfo, JobState, Kind, Model};

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

/// Parses `START..END` (half-open, `_` allowed in numbers), or says what a
/// range must look like.
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("range {s:?} must look like START..END, e.g. 0..60000000"))?;
    let num = |x: &str| {
        x.trim()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|_| format!("range bound {x:?} is not a non-negative integer"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a >= b {
        return Err(format!(
            "range {a}..{b} is empty or reversed; START must be less than END"
        ));
    }
    Ok((a, b))
}

/// Parses a workload argument `KEY=VALUE` (the value may hold `=`).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("argument {s:?} must look like KEY=VALUE, e.g. ms=10"))?;
    if k.is_empty() {
        return Err(format!("argument {s:?} has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses an inputs format: `text` or `jsonl`.
pub fn parse_inputs_format(s: &str) -> Result<InputsFormat, String> {
    match s {
        "text" => Ok(InputsFormat::Text),
        "jsonl" => Ok(InputsFormat::Jsonl),
        _ => Err(format!("inputs format {s:?} is not one of: text, jsonl")),
    }
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

    #[test]
    fn ranges_parse_or_say_what_is_allowed() {
        assert_eq!(parse_range("0..60000000"), Ok((0, 60_000_000)));
        assert_eq!(parse_range("0..60_000_000"), Ok((0, 60_000_000)));
        assert!(parse_range("5..5")
            .unwrap_err()
            .contains("START must be less than END"));
        assert!(parse_range("9..5").unwrap_err().contains("reversed"));
        assert!(parse_range("0-5").unwrap_err().contains("START..END"));
        assert!(parse_range("a..5").unwrap_err().contains("\"a\""));
    }

    #[test]
    fn key_values_parse() {
        assert_eq!(parse_kv("ms=10"), Ok(("ms".into(), "10".into())));
        assert_eq!(
            parse_kv("url=http://h/?a=b"),
            Ok(("url".into(), "http://h/?a=b".into()))
        );
        assert!(parse_kv("ms").is_err());
        assert!(parse_kv("=1").is_err());
    }
}
