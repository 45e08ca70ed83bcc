//! Which jobs a command names: selectors as users type them (`3`, `last`,
//! `all`, `1-10`, `1,3,5-8`), parsed and checked here, and matched against
//! the ids of the jobs a caller sees. Pure: the commands fetch the ids.

use std::fmt;

/// One part of a list: an id or an inclusive range of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Id(u64),
    Range(u64, u64),
}

/// The jobs a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSelector {
    /// `last`: the caller's newest job.
    Last,
    /// `all`: every job of the caller's.
    All,
    /// `3`, `1-10`, `1,3,5-8`.
    List(Vec<Part>),
}

/// What a selector may be, for error messages.
const FORMS: &str = "a job id (3), a range (1-10), a list (1,3,5-8), last or all";

impl JobSelector {
    /// Parses a selector as typed on the command line.
    pub fn parse(s: &str) -> Result<JobSelector, String> {
        match s {
            "last" => return Ok(JobSelector::Last),
            "all" => return Ok(JobSelector::All),
            _ => {}
        }
        let bad = |why: &str| format!("job selector {s:?}: {why}; expected {FORMS}");
        let id = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{t:?} is not a job id")));
            }
            t.parse::<u64>()
                .map_err(|_| bad(&format!("{t} is too large for a job id")))
        };
        let parts = s
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (id(a)?, id(b)?);
                    if a > b {
                        return Err(bad(&format!("the range {a}-{b} runs backwards")));
                    }
                    Ok(Part::Range(a, b))
                }
                None => id(part).map(Part::Id),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobSelector::List(parts))
    }

    /// The one job id it names, when it is a plain id.
    pub fn id(&self) -> Option<u64> {
        match self {
            JobSelector::List(parts) => match parts[..] {
                [Part::Id(id)] => Some(id),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether it names one job by its form (`3`, `last`): a command prints
    /// that job alone, not a listing, however many jobs exist.
    pub fn is_one(&self) -> bool {
        matches!(self, JobSelector::Last) || self.id().is_some()
    }

    /// The ids it names among `seen` (the ids of the caller's jobs),
    /// ascending and each once. Ids listed by themselves are kept whether
    /// or not `seen` has them (the coordinator says whether they exist:
    /// an admin's may be another client's); ranges, `all` and `last` take
    /// what `seen` has.
    pub fn ids_among(&self, seen: &[u64]) -> Vec<u64> {
        let mut ids: Vec<u64> = match self {
            JobSelector::Last => seen.iter().max().copied().into_iter().collect(),
            JobSelector::All => seen.to_vec(),
            JobSelector::List(parts) => {
                let mut ids: Vec<u64> = parts
                    .iter()
                    .filter_map(|p| match *p {
                        Part::Id(id) => Some(id),
                        Part::Range(..) => None,
                    })
                    .collect();
                ids.extend(seen.iter().filter(|&&id| {
                    parts
                        .iter()
                        .any(|p| matches!(*p, Part::Range(a, b) if (a..=b).contains(&id)))
                }));
                ids
            }
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl fmt::Display for JobSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSelector::Last => f.write_str("last"),
            JobSelector::All => f.write_str("all"),
            JobSelector::List(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match p {
                        Part::Id(id) => write!(f, "{id}")?,
                        Part::Range(a, b) => write!(f, "{a}-{b}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// clap's value parser for a job selector.
pub fn parse_job_selector(s: &str) -> Result<JobSelector, String> {
    JobSelector::parse(s)
}

/// A job's state as `jobs --state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateFilter {
    /// Bit i: `JobState` i is wanted.
    bits: u8,
}

/// The states `--state` takes, and the groups.
const STATES: &str = "queued, running, succeeded, failed, cancelled, active (queued and \
                      running), ended (succeeded, failed and cancelled) or any";

impl StateFilter {
    const QUEUED: u8 = 1 << 1;
    const RUNNING: u8 = 1 << 2;
    const SUCCEEDED: u8 = 1 << 3;
    const FAILED: u8 = 1 << 4;
    const CANCELLED: u8 = 1 << 5;
    /// Jobs that have not ended: `jobs`' default.
    pub const ACTIVE: StateFilter = StateFilter {
        bits: Self::QUEUED | Self::RUNNING,
    };
    /// Every job (`--history`).
    pub const ANY: StateFilter = StateFilter { bits: u8::MAX };

    /// `running,failed`: a comma-separated list of states or groups.
    pub fn parse(s: &str) -> Result<StateFilter, String> {
        let mut bits = 0;
        for name in s.split(',') {
            bits |= match name {
                "queued" => Self::QUEUED,
                "running" => Self::RUNNING,
                "succeeded" => Self::SUCCEEDED,
                "failed" => Self::FAILED,
                "cancelled" => Self::CANCELLED,
                "active" => Self::ACTIVE.bits,
                "ended" => Self::SUCCEEDED | Self::FAILED | Self::CANCELLED,
                "any" => u8::MAX,
                other => return Err(format!("state {other:?} is not one of: {STATES}")),
            };
        }
        Ok(StateFilter { bits })
    }

    /// Whether a job in the wire state `state` passes.
    pub fn admits(self, state: i32) -> bool {
        self.bits == u8::MAX || (0..8).contains(&state) && self.bits & (1 << state) != 0
    }
}

/// clap's value parser for `--state`.
pub fn parse_state_filter(s: &str) -> Result<StateFilter, String> {
    StateFilter::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_proto::v1::JobState;

    #[test]
    fn every_selector_form_parses_and_prints_back() {
        for s in ["3", "last", "all", "1-10", "1,3,5-8", "7-7"] {
            assert_eq!(
                JobSelector::parse(s).map(|j| j.to_string()),
                Ok(s.to_string())
            );
        }
        assert_eq!(JobSelector::parse("3").unwrap().id(), Some(3));
        assert!(JobSelector::parse("last").unwrap().is_one());
        assert!(!JobSelector::parse("3,4").unwrap().is_one());
        assert!(!JobSelector::parse("3-3").unwrap().is_one());
        assert!(!JobSelector::parse("all").unwrap().is_one());
    }

    #[test]
    fn a_bad_selector_says_what_is_wrong_and_what_is_allowed() {
        for (s, why) in [
            ("", "\"\" is not a job id"),
            ("x", "\"x\" is not a job id"),
            ("1,,2", "\"\" is not a job id"),
            ("-3", "\"\" is not a job id"),
            ("5-2", "the range 5-2 runs backwards"),
            ("1-", "\"\" is not a job id"),
            ("99999999999999999999", "too large for a job id"),
            ("LAST", "\"LAST\" is not a job id"),
        ] {
            let e = JobSelector::parse(s).unwrap_err();
            assert!(e.contains(why), "{s:?}: {e}");
            assert!(e.ends_with(FORMS), "{s:?}: {e}");
        }
    }

    #[test]
    fn selectors_match_the_jobs_seen_and_keep_ids_named_alone() {
        let seen = [1, 2, 4, 5, 9];
        let ids = |s: &str| JobSelector::parse(s).unwrap().ids_among(&seen);
        assert_eq!(ids("last"), [9]);
        assert_eq!(ids("all"), seen);
        assert_eq!(ids("2"), [2]);
        assert_eq!(ids("3"), [3], "the coordinator says whether 3 exists");
        assert_eq!(ids("1-4"), [1, 2, 4]);
        assert_eq!(ids("5,1-2,2,7-8"), [1, 2, 5]);
        assert_eq!(ids("10-20"), Vec::<u64>::new());
        assert_eq!(JobSelector::Last.ids_among(&[]), Vec::<u64>::new());
    }

    #[test]
    fn state_filters_take_states_and_groups() {
        let f = StateFilter::parse("running,failed").unwrap();
        assert!(f.admits(JobState::Running as i32) && f.admits(JobState::Failed as i32));
        assert!(!f.admits(JobState::Queued as i32) && !f.admits(JobState::Succeeded as i32));
        let active = StateFilter::parse("active").unwrap();
        assert_eq!(active, StateFilter::ACTIVE);
        assert!(
            active.admits(JobState::Queued as i32) && !active.admits(JobState::Cancelled as i32)
        );
        let ended = StateFilter::parse("ended").unwrap();
        assert!(
            ended.admits(JobState::Cancelled as i32) && !ended.admits(JobState::Running as i32)
        );
        assert!(StateFilter::parse("any")
            .unwrap()
            .admits(JobState::Unspecified as i32));
        let e = StateFilter::parse("running,done").unwrap_err();
        assert!(
            e.contains("\"done\"") && e.contains("active (queued and running)"),
            "{e}"
        );
    }
}
