//! `http-get url [expect-status] [expect-len]`: one keep-alive HTTP/1.1 GET,
//! returning the body length. Thread and process slots use the blocking
//! [`HttpClient`] (one connection per thread or
//! process); async slots share one pool of kept-alive connections on the event
//! loop ([`AsyncHttpClient`]).

use brigade_proto::catalog::{parse_http_url, HttpUrl};

use brigade_proto::catalog::{ArgDef, ArgType, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;

use super::{AsyncContext, BlockingContext, Registration, TaskBody, TaskInput, WaitingTask};
pub use crate::http_client::AsyncHttpClient;
use crate::http_client::{GetRequest, HttpClient, RESPONSE_TIMEOUT};

/// Builds the one client an async loop shares between its tasks, keeping up to
/// `pool` idle connections (one per task in flight) so that steady-state
/// requests never reconnect.
pub fn async_http_client(pool: usize) -> AsyncHttpClient {
    AsyncHttpClient::new(pool)
}

/// A parsed `http-get` task spec.
#[derive(Debug, Clone)]
pub struct HttpGet {
    /// The URL as given (kept to hand the spec to executor children verbatim).
    pub raw_url: String,
    pub url: HttpUrl,
    request: GetRequest,
    pub expect_status: u16,
    pub expect_len: Option<u64>,
}

impl HttpGet {
    /// Parses already-validated arguments.
    pub fn new(url: &str, expect_status: u16, expect_len: Option<u64>) -> Result<HttpGet, String> {
        let parsed = parse_http_url(url)?;
        Ok(HttpGet {
            raw_url: url.to_string(),
            request: GetRequest::new(&parsed),
            url: parsed,
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
        // Same bound as the blocking client's read timeout, so a stalled server
        // fails the task on every model alike.
        let resp = tokio::time::timeout(RESPONSE_TIMEOUT, client.get(&self.request))
            .await
            .map_err(|_| {
                format!(
                    "GET {} got no complete response within {} s",
                    self.raw_url,
                    RESPONSE_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("GET {} failed: {e}", self.raw_url))?;
        self.check(resp.status, resp.body_len)
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

/// The definition and code of `http-get`.
pub fn registration() -> Registration {
    Registration::new(
        WorkloadDef::new(
            "http-get",
            Kind::Io,
            Reduction::List,
            "GETs `url` and returns the body length; another status or length fails the task",
        )
        .arg(ArgDef::new("url", ArgType::Url, "the URL to GET").required())
        .arg(
            ArgDef::u64(
                "expect-status",
                100,
                599,
                "the status every response must have",
            )
            .default("200"),
        )
        .arg(ArgDef::u64(
            "expect-len",
            0,
            u64::MAX,
            "the body length every response must have (unchecked when absent)",
        )),
        |args| {
            let status = args.required_u64("expect-status")?;
            let status = u16::try_from(status)
                .map_err(|_| format!("expect-status {status} is not an HTTP status"))?;
            Ok(TaskBody::waiting(HttpGet::new(
                args.required_text("url")?,
                status,
                args.u64("expect-len"),
            )?))
        },
    )
}

impl WaitingTask for HttpGet {
    fn run_blocking(&self, _: &TaskInput, ctx: &mut BlockingContext) -> Result<Output, String> {
        HttpGet::run_blocking(self, &mut ctx.http).map(Output::Int)
    }

    fn run_async<'a>(
        &'a self,
        _: &'a TaskInput,
        ctx: &'a AsyncContext,
    ) -> LocalBoxFuture<'a, Result<Output, String>> {
        Box::pin(async move { HttpGet::run_async(self, &ctx.http).await.map(Output::Int) })
    }
}
