//! Connecting to a coordinator as a client, with errors that say what to do.

use std::time::Duration;

use anyhow::{anyhow, Context};
use brigade_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::{Channel, Endpoint};

/// The default coordinator address for client commands.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7070";

pub type Client = CoordinatorClient<Channel>;

/// Connects to the coordinator at `url` or explains why not.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    brigade_proto::catalog::parse_http_url(url).map_err(|why| {
        anyhow!("invalid coordinator URL {url:?}: {why} (expected http://HOST:PORT)")
    })?;
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow!("invalid coordinator URL {url:?}: {e} (expected http://HOST:PORT)"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3));
    let channel = endpoint.connect().await.map_err(|e| {
        let mut why = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            why = format!("{why}: {s}");
            src = s.source();
        }
        anyhow!(
            "could not reach the coordinator at {url}: {why}\n\
             is `brigade coordinator` or `brigade up` running there? \
             (set --coordinator or BRIGADE_COORDINATOR)"
        )
    })?;
    Ok(CoordinatorClient::new(channel).max_decoding_message_size(64 << 20))
}

/// Turns a gRPC status into an error that reads well on a terminal.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{} ({:?})", s.message(), s.code())
}

/// Adds `context` to a gRPC error.
pub trait StatusContext<T> {
    fn or_status(self, context: &str) -> anyhow::Result<T>;
}

impl<T> StatusContext<T> for Result<T, tonic::Status> {
    fn or_status(self, context: &str) -> anyhow::Result<T> {
        self.map_err(status_error)
            .with_context(|| context.to_string())
    }
}
