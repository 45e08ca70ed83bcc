//! How `brigade` exits: the documented codes, the errors that carry one,
//! and which code any other error gets (by what it was, found in its
//! chain of causes).

use std::process::ExitCode;

use brigade_client::ClientError;

/// Success.
pub const SUCCESS: u8 = 0;
/// The job failed or was cancelled (`submit --wait`, `job ID --wait`,
/// `results ID --wait`), or another error not listed here.
pub const FAILURE: u8 = 1;
/// A usage error (bad flags or values, an unreadable file a flag names)
/// or a request the coordinator refused (an invalid job, an unknown job
/// id, a missing permission or token, a quota).
pub const USAGE: u8 = 2;
/// The coordinator is unreachable: nothing answers at its URL, the
/// connection or its TLS handshake fails (a CA or client certificate
/// missing), it went away and did not come back, or it said it is
/// unavailable.
pub const UNREACHABLE: u8 = 3;
/// Interrupted (Ctrl-C), as a shell reports a process ended by SIGINT.
pub const INTERRUPTED: u8 = 130;

/// The exit codes as `--help` and the README list them.
pub const HELP: &str = "\
Exit codes:
  0    success
  1    the job failed or was cancelled (submit --wait, job ID --wait, results ID --wait),
       or another error
  2    usage error, or a request the coordinator refused (an invalid job, an unknown
       job id, a missing permission)
  3    the coordinator is unreachable: nothing answers, the connection or its TLS
       handshake fails, or it said it is unavailable
  130  interrupted (Ctrl-C); a job being followed keeps running";

/// An end of a command that has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// The job followed ended without succeeding. `message` is printed as
    /// the error, if any (`None`: what was printed already says it).
    #[error("{}", .message.as_deref().unwrap_or("the job did not succeed"))]
    JobEnded { message: Option<String> },
    /// Ctrl-C; the message says what became of the job.
    #[error("{0}")]
    Interrupted(String),
}

/// The exit code of an error: its own if it has one, else by the first
/// cause that tells (a [`ClientError`] that is a refusal or an unreachable
/// coordinator), else [`FAILURE`].
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return match exit {
                Exit::JobEnded { .. } => FAILURE,
                Exit::Interrupted(_) => INTERRUPTED,
            };
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            if c.is_unreachable() {
                return UNREACHABLE;
            }
            if c.is_refusal() {
                return USAGE;
            }
        }
    }
    FAILURE
}

/// Reports `e` on stderr (`error: ...`, unless it was said already or is
/// an interruption, which speaks for itself) and returns its exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    match e.chain().find_map(|c| c.downcast_ref::<Exit>()) {
        Some(Exit::JobEnded { message: None }) => {}
        Some(Exit::Interrupted(what)) => eprintln!("{what}"),
        _ => eprintln!("error: {e:#}"),
    }
    ExitCode::from(code_of(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errors_map_to_their_documented_codes_through_context() {
        let unreachable = ClientError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            why: "refused".into(),
        };
        let e = Err::<(), _>(unreachable).context("could not list jobs");
        assert_eq!(code_of(&e.unwrap_err()), UNREACHABLE);
        let refused = ClientError::Status(tonic_status_invalid());
        let e = Err::<(), _>(refused).context("the coordinator refused the job");
        assert_eq!(code_of(&e.unwrap_err()), USAGE);
        let ended = anyhow::Error::new(Exit::JobEnded { message: None });
        assert_eq!(code_of(&ended), FAILURE);
        let stopped = anyhow::Error::new(Exit::Interrupted("interrupted".into()));
        assert_eq!(code_of(&stopped), INTERRUPTED);
        assert_eq!(code_of(&anyhow::anyhow!("disk full")), FAILURE);
        let protocol = ClientError::Protocol("no job".into());
        assert_eq!(code_of(&protocol.into()), FAILURE);
    }

    fn tonic_status_invalid() -> tonic::Status {
        tonic::Status::invalid_argument("unknown workload")
    }
}
