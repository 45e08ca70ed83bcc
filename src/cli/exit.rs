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
    /// A request that cannot be made as given (exit 2), e.g. a selector
    /// naming many jobs where one is wanted.
    #[error("{0}")]
    Usage(String),
    /// What was named does not exist (exit 2), e.g. a selector that
    /// matches no job.
    #[error("{0}")]
    NotFound(String),
    /// The coordinator answered that it does not serve (exit 1).
    #[error("{0}")]
    NotServing(String),
}

/// How a command's errors are reported: as text on stderr, or (JSON
/// formats) as one JSON value on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Text,
    Json,
}

impl ErrorStyle {
    /// Errors as a run in `format` reports them.
    pub fn of(format: crate::commands::Format) -> ErrorStyle {
        if format.is_json() {
            ErrorStyle::Json
        } else {
            ErrorStyle::Text
        }
    }
}

/// An error's exit code and its name in JSON errors (docs/cli-json.md):
/// its own if it has one, else by the first cause that tells (a
/// [`ClientError`] that is a refusal or an unreachable coordinator), else
/// [`FAILURE`] ("failed").
pub fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    for cause in e.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return match exit {
                Exit::JobEnded { .. } => (FAILURE, "job_failed"),
                Exit::Interrupted(_) => (INTERRUPTED, "interrupted"),
                Exit::Usage(_) => (USAGE, "usage"),
                Exit::NotFound(_) => (USAGE, "not_found"),
                Exit::NotServing(_) => (FAILURE, "not_serving"),
            };
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            if c.is_unreachable() {
                return (UNREACHABLE, "unreachable");
            }
            let name = client_error_name(c);
            return (if c.is_refusal() { USAGE } else { FAILURE }, name);
        }
    }
    (FAILURE, "failed")
}

/// A client error's name: the gRPC status code the coordinator answered
/// with (snake case), or what went wrong before it could.
fn client_error_name(c: &ClientError) -> &'static str {
    use tonic::Code;
    match c {
        ClientError::BadUrl { .. } => return "bad_url",
        ClientError::Input(_) => return "bad_input",
        ClientError::JobForgotten(_) => return "not_found",
        ClientError::Protocol(_) => return "protocol",
        _ => {}
    }
    match c.code() {
        Some(Code::InvalidArgument) => "invalid_argument",
        Some(Code::NotFound) => "not_found",
        Some(Code::AlreadyExists) => "already_exists",
        Some(Code::PermissionDenied) => "permission_denied",
        Some(Code::Unauthenticated) => "unauthenticated",
        Some(Code::ResourceExhausted) => "resource_exhausted",
        Some(Code::FailedPrecondition) => "failed_precondition",
        Some(Code::OutOfRange) => "out_of_range",
        Some(Code::DataLoss) => "data_loss",
        Some(Code::DeadlineExceeded) => "deadline_exceeded",
        Some(Code::Unimplemented) => "unimplemented",
        Some(Code::Internal) => "internal",
        Some(Code::Aborted) => "aborted",
        _ => "failed",
    }
}

/// An error as JSON: `{"error": {"code": NAME, "message": TEXT, "exit": N}}`.
pub fn error_json(code: &str, message: &str, exit: u8) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message, "exit": exit}})
}

/// Reports `e` (as text on stderr: `error: ...`, unless it was said
/// already or is an interruption, which speaks for itself; or as JSON on
/// stdout) and returns its exit code. A job that ended badly is reported
/// as text either way: in JSON its status was the command's value.
pub fn report(e: &anyhow::Error, style: ErrorStyle) -> ExitCode {
    let (exit, name) = classify(e);
    match e.chain().find_map(|c| c.downcast_ref::<Exit>()) {
        Some(Exit::JobEnded { message: None }) => {}
        Some(Exit::JobEnded { .. }) => eprintln!("error: {e:#}"),
        _ if style == ErrorStyle::Json => println!("{}", error_json(name, &format!("{e:#}"), exit)),
        Some(Exit::Interrupted(what)) => eprintln!("{what}"),
        _ => eprintln!("error: {e:#}"),
    }
    ExitCode::from(exit)
}

/// Reports flags that do not make a run (exit 2).
pub fn report_usage(message: &str, style: ErrorStyle) -> ExitCode {
    match style {
        ErrorStyle::Json => println!("{}", error_json("usage", message, USAGE)),
        ErrorStyle::Text => eprintln!("error: {message}"),
    }
    ExitCode::from(USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn code_of(e: &anyhow::Error) -> u8 {
        classify(e).0
    }

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

    #[test]
    fn json_errors_name_the_cause_and_carry_the_exit_code() {
        let not_found = ClientError::Status(tonic::Status::not_found("no job with id 9"));
        let e = anyhow::Error::from(not_found).context("could not get the job");
        assert_eq!(classify(&e), (USAGE, "not_found"));
        let lost = ClientError::Status(tonic::Status::unavailable("shutting down"));
        assert_eq!(classify(&lost.into()), (UNREACHABLE, "unreachable"));
        let serving = anyhow::Error::new(Exit::NotServing("NOT_SERVING".into()));
        assert_eq!(classify(&serving), (FAILURE, "not_serving"));
        assert_eq!(classify(&anyhow::anyhow!("disk full")), (FAILURE, "failed"));
        assert_eq!(
            error_json("not_found", "could not get the job: no job", USAGE),
            serde_json::json!({"error": {
                "code": "not_found", "message": "could not get the job: no job", "exit": 2
            }})
        );
    }

    fn tonic_status_invalid() -> tonic::Status {
        tonic::Status::invalid_argument("unknown workload")
    }
}
