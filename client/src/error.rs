//! What can go wrong talking to a coordinator, in messages that say what to do.

use std::time::Duration;

/// An error of a [`Client`](crate::Client) call.
///
/// The messages are written for a terminal: they say what was wrong and, where
/// there is one, how to fix it. None of them carries a `source`, so a caller
/// that adds context (anyhow's `{:#}`) prints each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The coordinator URL is not `http://HOST:PORT`.
    #[error("invalid coordinator URL {url:?}: {why} (expected http://HOST:PORT, or https://HOST:PORT for TLS)")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Nothing answered at the coordinator URL.
    #[error(
        "could not reach the coordinator at {url}: {why}\n\
         is `brigade coordinator` or `brigade up` running there? \
         (set --coordinator or BRIGADE_COORDINATOR)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The connection error and its causes, joined with `: `.
        why: String,
    },
    /// The coordinator answered a call with an error status.
    #[error("{} ({:?})", .0.message(), .0.code())]
    Status(tonic::Status),
    /// The job being waited for is not known to the coordinator.
    #[error(
        "{} (a coordinator restarted without --state forgets its jobs; one with --auth-file \
         shows a job only to the client that submitted it and to admins)",
        .0.message()
    )]
    JobForgotten(tonic::Status),
    /// The coordinator went away while a job was followed and did not come
    /// back in time.
    #[error(
        "lost the coordinator while waiting for job {job_id} and it did not come back within {} s: {why}",
        .within.as_secs()
    )]
    Lost {
        /// The job being followed.
        job_id: u64,
        /// How long reconnecting was tried.
        within: Duration,
        /// Why the last attempt failed.
        why: String,
    },
    /// The coordinator answered with something the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// A job's inputs could not be read or are not what their format says
    /// (the message names the source and the line).
    #[error("{0}")]
    Input(String),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status(explain_transport(status))
    }
}

/// A call that failed below gRPC (the connection, TLS, HTTP/2) gets its
/// causes spelled out and a hint: the usual reason is a TLS mismatch.
fn explain_transport(status: tonic::Status) -> tonic::Status {
    let m = status.message();
    if status.code() == tonic::Code::Cancelled && m == "operation was canceled" {
        // The connection closed under the call: with TLS 1.3 that is how a
        // coordinator refusing a missing client certificate often shows.
        return tonic::Status::new(
            status.code(),
            "the connection was closed during the call: if the coordinator requires client \
             certificates (--tls-client-ca), pass --tls-cert and --tls-key",
        );
    }
    if !is_transport(&status) {
        return status;
    }
    let mut why = m.to_string();
    let mut src = std::error::Error::source(&status);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !why.contains(&s_text) {
            why = format!("{why}: {s_text}");
        }
        src = s.source();
    }
    let lower = why.to_ascii_lowercase();
    let hint =
        if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
            "the TLS handshake failed: check --tls-ca (the CA that signed the coordinator's \
         certificate) and, if the coordinator requires client certificates (--tls-client-ca), \
         pass --tls-cert and --tls-key"
        } else {
            "the connection broke below gRPC: if the coordinator serves TLS (--tls-cert), connect \
         with https:// and --tls-ca CA.pem; if it requires client certificates, also pass \
         --tls-cert and --tls-key"
        };
    tonic::Status::new(status.code(), format!("{why}\n{hint}"))
}

impl ClientError {
    /// The gRPC status code, when the coordinator answered with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) | ClientError::JobForgotten(s) => Some(s.code()),
            _ => None,
        }
    }

    /// Whether the connection went away (a coordinator restart, the network),
    /// so that trying again later may work.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ClientError::Status(s) if is_lost(s))
    }

    /// Whether no coordinator could be reached or kept: nothing answered,
    /// the connection went away and did not come back, or the coordinator
    /// said it is unavailable (shutting down, its state file not writable).
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Lost { .. } => true,
            // Failed below gRPC: the connection, TLS or HTTP/2.
            ClientError::Status(s) => is_lost(s) || is_transport(s),
            _ => false,
        }
    }

    /// Whether the request itself was refused: a bad URL or input, or a
    /// coordinator that answered no to it (an invalid job, an unknown job
    /// id, a missing permission or token, a quota).
    pub fn is_refusal(&self) -> bool {
        use tonic::Code;
        match self {
            ClientError::BadUrl { .. } | ClientError::Input(_) | ClientError::JobForgotten(_) => {
                true
            }
            ClientError::Status(s) => matches!(
                s.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::AlreadyExists
                    | Code::PermissionDenied
                    | Code::Unauthenticated
                    | Code::ResourceExhausted
                    | Code::FailedPrecondition
                    | Code::OutOfRange
            ),
            _ => false,
        }
    }
}

/// Whether a call failed below gRPC (the connection, TLS, HTTP/2) rather
/// than being answered.
fn is_transport(s: &tonic::Status) -> bool {
    let m = s.message();
    m.starts_with("transport error") || m.starts_with("h2 protocol error")
}

/// Whether a status means the coordinator went away rather than refused.
pub(crate) fn is_lost(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}
