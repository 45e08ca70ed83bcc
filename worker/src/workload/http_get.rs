//! `http-get url [expect-status] [expect-len]`: one keep-alive HTTP/1.1 GET,
//! returning the body length. Thread and process slots use the blocking
//! [`HttpClient`](crate::http_client::HttpClient) (one connection per thread or
//! process); async slots share one pooled hyper client on the event loop.

use std::time::Duration;

use brigade_proto::catalog::{parse_http_url, HttpUrl};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::http_client::{HttpClient, RESPONSE_TIMEOUT};

/// The async side's shared client: pooled keep-alive connections.
pub type AsyncHttpClient = Client<HttpConnector, Empty<Bytes>>;

/// How long the async side waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the one client an async loop shares between its tasks, keeping up to
/// `pool` idle connections (one per task in flight) so that steady-state
/// requests never reconnect.
pub fn async_http_client(pool: usize) -> AsyncHttpClient {
    let mut connector = HttpConnector::new();
    // Small requests and responses: Nagle would hold them back for milliseconds.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool.max(1))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// A parsed `http-get` task spec.
#[derive(Debug, Clone)]
pub struct HttpGet {
    /// The URL as given (kept to hand the spec to executor children verbatim).
    pub raw_url: String,
    pub url: HttpUrl,
    uri: hyper::Uri,
    pub expect_status: u16,
    pub expect_len: Option<u64>,
}

impl HttpGet {
    /// Parses already-validated arguments.
    pub fn new(url: &str, expect_status: u16, expect_len: Option<u64>) -> Result<HttpGet, String> {
        let parsed = parse_http_url(url)?;
        let uri = url
            .parse::<hyper::Uri>()
            .map_err(|e| format!("url {url:?} is not a valid URI: {e}"))?;
        Ok(HttpGet {
            raw_url: url.to_string(),
            url: parsed,
            uri,
            expect_status,
            expect_len,
        })
    }

    /// GET on the calling thread's kept-alive connection.
    pub fn run_blocking(&self, client: &mut HttpClient) -> Result<u128, String> {
        let resp = client.get(&self.url).map_err(|e| e.to_string())?;
        self.check(resp.status, resp.body.len() as u64)
    }

    /// GET through the loop's shared pool.
    pub async fn run_async(&self, client: &AsyncHttpClient) -> Result<u128, String> {
        let exchange = async {
            let resp = client
                .get(self.uri.clone())
                .await
                .map_err(|e| format!("GET {} failed: {}", self.raw_url, error_chain(&e)))?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            // Count the body as it streams instead of collecting it: only the
            // length matters.
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    format!(
                        "reading the body of {} failed: {}",
                        self.raw_url,
                        error_chain(&e)
                    )
                })?;
                if let Some(data) = frame.data_ref() {
                    len += data.len() as u64;
                }
            }
            Ok::<_, String>((status, len))
        };
        // Same bound as the blocking client's read timeout, so a stalled server
        // fails the task on every model alike.
        let (status, len) = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "GET {} got no complete response within {} s",
                    self.raw_url,
                    RESPONSE_TIMEOUT.as_secs()
                )
            })??;
        self.check(status, len)
    }

    fn check(&self, status: u16, len: u64) -> Result<u128, String> {
        if status != self.expect_status {
            return Err(format!(
                "GET {} returned status {status}, expected {}",
                self.raw_url, self.expect_status
            ));
        }
        if let Some(want) = self.expect_len {
            if len != want {
                return Err(format!(
                    "GET {} returned a body of {len} bytes, expected {want}",
                    self.raw_url
                ));
            }
        }
        Ok(len as u128)
    }
}

/// An error with its sources, `a: b: c` (hyper's top-level messages are vague).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
