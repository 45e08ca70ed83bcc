//! `http-get url [expect-status] [expect-len]`: one GET of an http or https
//! URL (redirects followed, the body read whole, chunked or not), returning
//! the body length. Thread and process slots use the blocking [`HttpClient`]
//! (their own pool each); async slots share one pool on the event loop
//! ([`AsyncHttpClient`]). Both follow `crate::http_client`'s policy:
//! timeouts, redirect and body limits, extra CAs.

use brigade_proto::catalog::{ArgDef, ArgType, Reduction, WorkloadDef};
use brigade_proto::v1::Kind;
use brigade_proto::Output;
use futures::future::LocalBoxFuture;

use super::{AsyncContext, BlockingContext, Registration, TaskBody, TaskInput, WaitingTask};
pub use crate::http_client::AsyncHttpClient;
use crate::http_client::{HttpClient, HttpError, HttpUrl};

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
    pub expect_status: u16,
    pub expect_len: Option<u64>,
}

impl HttpGet {
    /// Parses already-validated arguments; the URL must be http:// or https://.
    pub fn new(url: &str, expect_status: u16, expect_len: Option<u64>) -> Result<HttpGet, String> {
        Ok(HttpGet {
            raw_url: url.to_string(),
            url: HttpUrl::parse(url)?,
            expect_status,
            expect_len,
        })
    }

    /// GET on the calling thread, through the slot's own client.
    pub fn run_blocking(&self, client: &mut HttpClient) -> Result<u128, String> {
        let resp = client.get(&self.url).map_err(|e| self.failed(e))?;
        self.check(resp.status, resp.body.len() as u64)
    }

    /// GET through the loop's shared pool.
    pub async fn run_async(&self, client: &AsyncHttpClient) -> Result<u128, String> {
        let resp = client.get(&self.url).await.map_err(|e| self.failed(e))?;
        self.check(resp.status, resp.body_len)
    }

    fn failed(&self, e: HttpError) -> String {
        format!("GET {} failed: {e}", self.raw_url)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::test_server::TestServer;

    fn get(server: &TestServer, path: &str, expect_len: Option<u64>) -> HttpGet {
        HttpGet::new(&server.url(path), 200, expect_len).unwrap()
    }

    #[test]
    fn urls_other_than_http_and_https_are_refused_clearly() {
        assert!(HttpGet::new("https://example.org/x", 200, None).is_ok());
        let e = HttpGet::new("ftp://example.org/x", 200, None).unwrap_err();
        assert!(e.contains("http://") && e.contains("https://"), "{e}");
    }

    #[test]
    fn blocking_entry_checks_status_and_exact_length() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        assert_eq!(
            get(&server, "/chunked/5000/64", Some(5000)).run_blocking(&mut client),
            Ok(5000)
        );
        assert_eq!(
            get(&server, "/redirect/3", None).run_blocking(&mut client),
            Ok(5)
        );
        let e = get(&server, "/status/503", None)
            .run_blocking(&mut client)
            .unwrap_err();
        assert!(
            e.contains("status 503") && e.contains("expected 200"),
            "{e}"
        );
        let e = get(&server, "/bytes/7", Some(8))
            .run_blocking(&mut client)
            .unwrap_err();
        assert!(e.contains("7 bytes") && e.contains("expected 8"), "{e}");
        let e = get(&server, "/redirect/11", None)
            .run_blocking(&mut client)
            .unwrap_err();
        assert!(
            e.starts_with(&format!("GET {} failed: ", server.url("/redirect/11"))),
            "{e}"
        );
    }

    #[test]
    fn async_entry_checks_status_and_exact_length() {
        let server = TestServer::start();
        let client = async_http_client(4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                get(&server, "/chunked/5000/64", Some(5000))
                    .run_async(&client)
                    .await,
                Ok(5000)
            );
            assert_eq!(
                get(&server, "/redirect/3", None).run_async(&client).await,
                Ok(5)
            );
            let e = get(&server, "/status/404", None)
                .run_async(&client)
                .await
                .unwrap_err();
            assert!(e.contains("status 404"), "{e}");
            let e = get(&server, "/bytes/7", Some(3))
                .run_async(&client)
                .await
                .unwrap_err();
            assert!(e.contains("7 bytes") && e.contains("expected 3"), "{e}");
        });
    }

    #[test]
    fn https_on_both_entries_with_the_test_ca() {
        let server = TestServer::start_tls();
        let config = server.trusting_config();
        let spec = get(&server, "/chunked/12345/1000", Some(12_345));
        assert!(spec.url.is_https());
        let mut blocking = HttpClient::with_config(config.clone());
        assert_eq!(spec.run_blocking(&mut blocking), Ok(12_345));
        let shared = AsyncHttpClient::with_config(4, config);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(spec.run_async(&shared)), Ok(12_345));
    }
}
