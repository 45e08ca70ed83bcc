//! brigade's HTTP client for `http-get`: GET over http or https on hyper-util's
//! pooled (legacy) client and hyper-rustls (rustls with ring, the webpki
//! roots), so keep-alive, chunked bodies and TLS are maintained libraries'.
//! Redirects and the timeouts are the few lines here on top. [`HttpClient`] is
//! a blocking slot's (a thread slot, or a process slot's executor): its own
//! current-thread runtime, driven with `block_on` on the slot's own thread (no
//! extra thread per slot), and its own pool. [`AsyncHttpClient`] is an event
//! loop's: one pool shared by all of the loop's tasks. Both build their client
//! on first use and GET through one function, so every model follows one
//! policy:
//! - up to [`MAX_REDIRECTS`] redirects (301, 302, 303, 307, 308) are followed;
//! - [`CONNECT_TIMEOUT`] for a TCP connection, [`REQUEST_TIMEOUT`] for the
//!   whole GET (TLS handshake, redirects and body included); a job's
//!   `--timeout-ms` applies on top;
//! - a body is read whole, chunked or not, up to [`MAX_BODY_BYTES`];
//! - a connection that ends before any response (a kept-alive one the server
//!   closed while idle) is retried once on a fresh one: GET is idempotent;
//! - no proxy (`HTTP_PROXY` and friends are ignored);
//! - TLS trusts the webpki roots plus the PEM CA certificates of the file that
//!   [`CA_ENV`] (`BRIGADE_HTTP_CA`) names, if set.
//!
//! Why not reqwest: on the same loop it costs about twice the instructions per
//! GET (it re-parses the URL through `url` on every request and response, and
//! layers a redirect service and a proxy matcher on hyper-util's client);
//! BENCHMARKS.md has the figures.

use std::error::Error as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::node::error_chain;

/// How long to wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole GET may take, redirects and body included. Above the
/// io-target's 60 s `/slow` maximum so a legitimately slow response is never
/// cut off.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How many redirects are followed before the GET fails.
pub const MAX_REDIRECTS: usize = 10;
/// The largest body read (64 MiB): the task's value is its length, but the
/// bytes still travel, and a blocking slot keeps them.
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// The environment variable naming a PEM file of extra CA certificates to
/// trust (e.g. a private CA, or a test server's self-signed certificate).
pub const CA_ENV: &str = "BRIGADE_HTTP_CA";

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    #[error("cannot connect to {host}:{port}: {detail}")]
    Connect {
        host: String,
        port: u16,
        detail: String,
    },
    #[error("{during} {host}:{port} timed out after {} s", .after.as_secs_f64())]
    Timeout {
        during: &'static str,
        host: String,
        port: u16,
        after: Duration,
    },
    #[error("{host}:{port} redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects { host: String, port: u16 },
    #[error("{host}:{port} sent a redirect that cannot be followed: {why}")]
    BadRedirect {
        host: String,
        port: u16,
        why: String,
    },
    #[error("{during} {host}:{port} failed: {detail}")]
    Failed {
        during: &'static str,
        host: String,
        port: u16,
        detail: String,
    },
    #[error("the body from {host}:{port} exceeds the {limit}-byte limit")]
    BodyTooLarge { host: String, port: u16, limit: u64 },
}

/// An http or https URL to GET, parsed once per job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Boxed: a job spec carries it, and the two parsed forms are large.
    parsed: Box<Parsed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    /// For resolving a relative `Location`.
    url: url::Url,
    /// What hyper sends (cheap to clone per GET).
    uri: Uri,
}

impl HttpUrl {
    /// Parses `http[s]://host[:port][/path][?query]`; other schemes are refused.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let expected = "expected http://HOST[:PORT][/PATH] or https://...";
        let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e} ({expected})"))?;
        HttpUrl::from_url(url).map_err(|why| format!("URL {s:?} {why} ({expected})"))
    }

    fn from_url(mut url: url::Url) -> Result<HttpUrl, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("has scheme {}", url.scheme()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .to_string();
        let port = url
            .port_or_known_default()
            .filter(|&p| p != 0)
            .ok_or("has port 0")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("has a user name or password, which http-get does not send".into());
        }
        // Never sent: the fragment is the client's own.
        url.set_fragment(None);
        let uri = url
            .as_str()
            .parse::<Uri>()
            .map_err(|e| format!("is not a valid request target: {e}"))?;
        Ok(HttpUrl {
            host,
            port,
            parsed: Box::new(Parsed { url, uri }),
        })
    }

    pub fn is_https(&self) -> bool {
        self.parsed.url.scheme() == "https"
    }

    pub fn as_str(&self) -> &str {
        self.parsed.url.as_str()
    }
}

/// What a client is built with; [`HttpConfig::from_env`] is every slot's.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A PEM file of CA certificates to trust beside the webpki roots.
    pub extra_ca: Option<PathBuf>,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            extra_ca: None,
            request_timeout: REQUEST_TIMEOUT,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

type Connector = CountConnections<HttpsConnector<HttpConnector>>;
type Pool = hyper_util::client::legacy::Client<Connector, Empty<Bytes>>;

impl HttpConfig {
    /// The defaults, with [`CA_ENV`]'s file (if set and not empty) trusted.
    pub fn from_env() -> HttpConfig {
        HttpConfig {
            extra_ca: std::env::var_os(CA_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..HttpConfig::default()
        }
    }

    /// The webpki roots, plus the extra CA file's certificates.
    fn roots(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let Some(path) = &self.extra_ca else {
            return Ok(roots);
        };
        let shown = || format!("the CA file {} ({CA_ENV})", path.display());
        let pem = std::fs::read(path).map_err(|e| format!("{}: cannot read it: {e}", shown()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: bad PEM: {e}", shown()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a CA certificate: {e}", shown()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "{}: no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)",
                shown()
            ));
        }
        Ok(roots)
    }

    /// A pooled client with this policy, keeping up to `pool` idle
    /// connections per host and counting the connections it opens.
    fn build(&self, pool: usize, opened: &Arc<AtomicU64>) -> Result<Pool, String> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(self.roots()?)
        .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // https URLs go through it too, to the TLS layer.
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(pool)
                .build(CountConnections {
                    inner: https,
                    opened: opened.clone(),
                }),
        )
    }
}

/// A connector that counts the connections it opens (keep-alive makes it 1
/// for any number of sequential requests to one server).
#[derive(Debug, Clone)]
struct CountConnections<S> {
    inner: S,
    opened: Arc<AtomicU64>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for CountConnections<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let opened = self.opened.clone();
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let conn = connecting.await?;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(conn)
        })
    }
}

/// A response's status and how many body bytes came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedResponse {
    pub status: u16,
    pub body_len: u64,
}

/// A blocking slot's response; the body borrows the client's reusable buffer.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

/// Whether anything in `e`'s chain is an I/O timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether the connection ended before a response head came.
fn closed_before_response(e: &hyper_util::client::legacy::Error) -> bool {
    let mut next = e.source();
    while let Some(e) = next {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        next = e.source();
    }
    false
}

static BRIGADE: HeaderValue = HeaderValue::from_static("brigade");
static ANY: HeaderValue = HeaderValue::from_static("*/*");

/// What every GET goes through: the request policy on top of `pool`.
struct Get<'a> {
    pool: &'a Pool,
    url: &'a HttpUrl,
    config: &'a HttpConfig,
}

impl Get<'_> {
    fn named(&self, during: &'static str, e: &(dyn std::error::Error + 'static)) -> HttpError {
        HttpError::Failed {
            during,
            host: self.url.host.clone(),
            port: self.url.port,
            detail: error_chain(e),
        }
    }

    fn request_failed(&self, e: hyper_util::client::legacy::Error) -> HttpError {
        let (host, port) = (self.url.host.clone(), self.url.port);
        if e.is_connect() {
            if timed_out(&e) {
                return HttpError::Timeout {
                    during: "connecting to",
                    host,
                    port,
                    after: CONNECT_TIMEOUT,
                };
            }
            return HttpError::Connect {
                host,
                port,
                detail: error_chain(&e),
            };
        }
        self.named("exchange with", &e)
    }

    /// The GET under the request timeout.
    async fn run(&self, keep: Option<&mut Vec<u8>>) -> Result<CountedResponse, HttpError> {
        tokio::time::timeout(self.config.request_timeout, self.follow(keep))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout {
                    during: "waiting for a response from",
                    host: self.url.host.clone(),
                    port: self.url.port,
                    after: self.config.request_timeout,
                })
            })
    }

    /// GETs, following redirects, and reads the final body.
    async fn follow(&self, keep: Option<&mut Vec<u8>>) -> Result<CountedResponse, HttpError> {
        let mut uri = self.url.parsed.uri.clone();
        // Set once redirected: the URL a relative `Location` is resolved on.
        let mut here: Option<url::Url> = None;
        let mut redirects = 0;
        loop {
            let resp = self.send(&uri).await?;
            let status = resp.status();
            let location = is_redirect(status)
                .then(|| resp.headers().get(LOCATION))
                .flatten();
            let Some(location) = location else {
                return self.read_body(status, resp.into_body(), keep).await;
            };
            if redirects == MAX_REDIRECTS {
                return Err(HttpError::TooManyRedirects {
                    host: self.url.host.clone(),
                    port: self.url.port,
                });
            }
            let next = self.resolve(here.as_ref().unwrap_or(&self.url.parsed.url), location)?;
            // Read the redirect's own body so its connection goes back to the pool.
            self.read_body(status, resp.into_body(), None).await?;
            uri = next.parsed.uri.clone();
            here = Some(next.parsed.url);
            redirects += 1;
        }
    }

    /// One request. A connection that ends before any response comes is
    /// tried once more on a fresh one: a kept-alive connection the server
    /// closed while idle looks like that until its close has been read (and a
    /// blocking slot's runtime does not run between GETs to read it); GET is
    /// idempotent.
    async fn send(&self, uri: &Uri) -> Result<hyper::Response<Incoming>, HttpError> {
        let mut retried = false;
        loop {
            let mut req = Request::new(Empty::new());
            *req.uri_mut() = uri.clone();
            req.headers_mut().insert(USER_AGENT, BRIGADE.clone());
            req.headers_mut().insert(ACCEPT, ANY.clone());
            match self.pool.request(req).await {
                Ok(resp) => return Ok(resp),
                Err(e) if !retried && closed_before_response(&e) => retried = true,
                Err(e) => return Err(self.request_failed(e)),
            }
        }
    }

    fn resolve(&self, base: &url::Url, location: &HeaderValue) -> Result<HttpUrl, HttpError> {
        let bad = |why: String| HttpError::BadRedirect {
            host: self.url.host.clone(),
            port: self.url.port,
            why,
        };
        let location = location
            .to_str()
            .map_err(|_| bad("its Location is not text".into()))?;
        let next = base
            .join(location)
            .map_err(|e| bad(format!("Location {location:?}: {e}")))?;
        HttpUrl::from_url(next).map_err(|why| bad(format!("Location {location:?} {why}")))
    }

    /// Reads a body whole (chunked or not), counting it and keeping it in
    /// `keep` if given.
    async fn read_body(
        &self,
        status: StatusCode,
        mut body: Incoming,
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<CountedResponse, HttpError> {
        let limit = self.config.max_body_bytes;
        let too_large = || HttpError::BodyTooLarge {
            host: self.url.host.clone(),
            port: self.url.port,
            limit,
        };
        if let Some(len) = hyper::body::Body::size_hint(&body).exact() {
            if len > limit {
                return Err(too_large());
            }
            if let Some(kept) = keep.as_deref_mut() {
                kept.reserve(len as usize);
            }
        }
        let mut body_len = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.named("reading the body from", &e))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            body_len += data.len() as u64;
            if body_len > limit {
                return Err(too_large());
            }
            if let Some(kept) = keep.as_deref_mut() {
                kept.extend_from_slice(&data);
            }
        }
        Ok(CountedResponse {
            status: status.as_u16(),
            body_len,
        })
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A blocking slot's client: built on first use, on a current-thread runtime
/// that only runs while the slot waits for its GET.
#[derive(Debug, Default)]
pub struct HttpClient {
    /// `None`: [`HttpConfig::from_env`] on first use.
    config: Option<HttpConfig>,
    session: Option<Result<BlockingSession, String>>,
    body: Vec<u8>,
    opened: Arc<AtomicU64>,
}

#[derive(Debug)]
struct BlockingSession {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    config: HttpConfig,
}

impl BlockingSession {
    fn start(config: HttpConfig, opened: &Arc<AtomicU64>) -> Result<BlockingSession, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the slot's HTTP runtime: {e}"))?;
        // One idle connection: a blocking slot has one GET at a time.
        let pool = config.build(1, opened)?;
        Ok(BlockingSession {
            runtime: Some(runtime),
            pool,
            config,
        })
    }
}

impl Drop for BlockingSession {
    fn drop(&mut self) {
        // Without waiting, so it may also be dropped where blocking is not
        // allowed (a slot reset from inside an event loop).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl HttpClient {
    /// A client with [`HttpConfig::from_env`], built on first use.
    pub fn new() -> HttpClient {
        HttpClient::default()
    }

    pub fn with_config(config: HttpConfig) -> HttpClient {
        HttpClient {
            config: Some(config),
            ..HttpClient::default()
        }
    }

    /// How many connections this client has opened.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// GETs `url` on the calling thread, reusing a kept-alive connection
    /// where it can.
    pub fn get(&mut self, url: &HttpUrl) -> Result<Response<'_>, HttpError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(HttpError::Setup(
                "the blocking client was called on an async runtime's thread \
                 (use AsyncHttpClient there)"
                    .into(),
            ));
        }
        let session = self.session.get_or_insert_with(|| {
            let config = self.config.take().unwrap_or_else(HttpConfig::from_env);
            BlockingSession::start(config, &self.opened)
        });
        let session = session
            .as_ref()
            .map_err(|why| HttpError::Setup(why.clone()))?;
        let Some(runtime) = session.runtime.as_ref() else {
            return Err(HttpError::Setup("the slot's HTTP runtime is gone".into()));
        };
        self.body.clear();
        let get = Get {
            pool: &session.pool,
            url,
            config: &session.config,
        };
        let got = runtime.block_on(get.run(Some(&mut self.body)))?;
        Ok(Response {
            status: got.status,
            body: &self.body,
        })
    }
}

/// An event loop's client: one pool for all of its tasks, built on first use.
/// Clones share it.
#[derive(Debug, Clone)]
pub struct AsyncHttpClient {
    shared: Arc<AsyncShared>,
}

#[derive(Debug)]
struct AsyncShared {
    pool_size: usize,
    config: HttpConfig,
    pool: OnceLock<Result<Pool, String>>,
    opened: Arc<AtomicU64>,
}

impl AsyncHttpClient {
    /// Keeps up to `pool` idle connections per host (the loop's task cap, so
    /// steady-state requests never reconnect); [`HttpConfig::from_env`].
    pub fn new(pool: usize) -> AsyncHttpClient {
        AsyncHttpClient::with_config(pool, HttpConfig::from_env())
    }

    pub fn with_config(pool: usize, config: HttpConfig) -> AsyncHttpClient {
        AsyncHttpClient {
            shared: Arc::new(AsyncShared {
                pool_size: pool.max(1),
                config,
                pool: OnceLock::new(),
                opened: Arc::default(),
            }),
        }
    }

    /// How many connections this client has opened.
    pub fn connections_opened(&self) -> u64 {
        self.shared.opened.load(Ordering::Relaxed)
    }

    /// GETs `url` on the calling runtime (an async slot's event loop).
    pub async fn get(&self, url: &HttpUrl) -> Result<CountedResponse, HttpError> {
        let shared = &*self.shared;
        let pool = shared
            .pool
            .get_or_init(|| shared.config.build(shared.pool_size, &shared.opened))
            .as_ref()
            .map_err(|why| HttpError::Setup(why.clone()))?;
        let get = Get {
            pool,
            url,
            config: &shared.config,
        };
        get.run(None).await
    }
}

#[cfg(test)]
pub(crate) mod test_server {
    use std::future::Future;
    use std::path::{Path, PathBuf};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures::StreamExt;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::{Frame, Incoming};
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::sync::Notify;
    use tokio_rustls::rustls;

    use super::HttpConfig;

    /// The body bytes every route serves: `b'a' + i % 26`.
    pub fn body_bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    pub struct TestServer {
        pub port: u16,
        https: bool,
        /// The PEM file of the self-signed certificate (TLS servers only).
        ca_file: Option<PathBuf>,
        accepted: Arc<AtomicU64>,
        closed: Arc<AtomicU64>,
        _thread: ServerThread,
    }

    impl TestServer {
        /// Plain HTTP.
        pub fn start() -> TestServer {
            TestServer::launch(None)
        }

        /// HTTPS with a certificate for `localhost` and `127.0.0.1`, signed by
        /// itself; [`TestServer::ca_file`] is the PEM a client must trust.
        pub fn start_tls() -> TestServer {
            let key = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .expect("self-signed certificate");
            let cert = rustls::pki_types::CertificateDer::from(key.cert.der().to_vec());
            let private =
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], private)
            .expect("server certificate");
            let mut server =
                TestServer::launch(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))));
            let file = std::env::temp_dir().join(format!(
                "brigade-test-ca-{}-{}.pem",
                std::process::id(),
                server.port
            ));
            std::fs::write(&file, key.cert.pem()).expect("write the CA file");
            server.ca_file = Some(file);
            server
        }

        fn launch(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
            let accepted = Arc::new(AtomicU64::new(0));
            let closed = Arc::new(AtomicU64::new(0));
            let https = tls.is_some();
            let counters = (accepted.clone(), closed.clone());
            let thread = ServerThread::start(move |listener, shutdown| async move {
                tokio::select! {
                    () = shutdown => {}
                    () = accept_loop(listener, tls, counters) => {}
                }
            });
            TestServer {
                port: thread.port,
                https,
                ca_file: None,
                accepted,
                closed,
                _thread: thread,
            }
        }

        /// `http://127.0.0.1:PORT/path` (or https).
        pub fn url(&self, path: &str) -> String {
            let scheme = if self.https { "https" } else { "http" };
            format!("{scheme}://127.0.0.1:{}{path}", self.port)
        }

        pub fn ca_file(&self) -> &Path {
            self.ca_file.as_deref().expect("a TLS test server")
        }

        /// The default client config, trusting this TLS server's certificate.
        pub fn trusting_config(&self) -> HttpConfig {
            HttpConfig {
                extra_ca: Some(self.ca_file().to_path_buf()),
                ..HttpConfig::default()
            }
        }

        /// Connections accepted so far.
        pub fn accepted(&self) -> u64 {
            self.accepted.load(Ordering::SeqCst)
        }

        /// Waits (up to 10 s) until `n` connections have ended on the server.
        pub fn wait_closed(&self, n: u64) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.closed.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "{n} connections never closed");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            if let Some(file) = self.ca_file.take() {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    /// Resolves when the server is asked to stop.
    pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// A server on 127.0.0.1:0 on its own thread and current-thread runtime
    /// (a blocking client under test must not share a runtime with it),
    /// stopped and joined on drop.
    pub struct ServerThread {
        pub port: u16,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl ServerThread {
        /// Runs `serve(listener, shutdown)` until it returns.
        pub fn start<F, Fut>(serve: F) -> ServerThread
        where
            F: FnOnce(TcpListener, Shutdown) -> Fut + Send + 'static,
            Fut: Future<Output = ()>,
        {
            let (port_tx, port_rx) = std::sync::mpsc::channel();
            let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    port_tx
                        .send(listener.local_addr().expect("local addr").port())
                        .expect("send port");
                    serve(
                        listener,
                        Box::pin(async {
                            let _ = stop_rx.await;
                        }),
                    )
                    .await;
                });
            });
            ServerThread {
                port: port_rx.recv().expect("test server started"),
                stop: Some(stop),
                thread: Some(thread),
            }
        }
    }

    impl Drop for ServerThread {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    async fn accept_loop(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        (accepted, closed): (Arc<AtomicU64>, Arc<AtomicU64>),
    ) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).expect("nodelay");
            accepted.fetch_add(1, Ordering::SeqCst);
            let (tls, closed) = (tls.clone(), closed.clone());
            tokio::spawn(async move {
                match tls {
                    // A client that refuses the certificate ends the handshake.
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            serve_connection(TokioIo::new(stream)).await;
                        }
                    }
                    None => serve_connection(TokioIo::new(stream)).await,
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    }

    async fn serve_connection<I>(io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let bye = Arc::new(Notify::new());
        let service = {
            let bye = bye.clone();
            service_fn(move |req| respond(req, bye.clone()))
        };
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            // The connection first: it writes and flushes `/bye`'s response
            // in the poll that runs the service, so it is idle by the time
            // the second branch closes it.
            biased;
            _ = conn.as_mut() => {}
            () = bye.notified() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    type Reply = Response<BoxBody<Bytes, std::io::Error>>;

    fn fixed(status: StatusCode, body: Vec<u8>) -> Reply {
        let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
        *resp.status_mut() = status;
        resp
    }

    fn streamed(chunks: Vec<Result<Bytes, std::io::Error>>) -> Reply {
        let frames = futures::stream::iter(chunks.into_iter().map(|c| c.map(Frame::data)));
        Response::new(BodyExt::boxed(StreamBody::new(frames)))
    }

    fn number<T: std::str::FromStr>(s: Option<&str>) -> T {
        s.and_then(|s| s.parse().ok())
            .expect("a number in the test path")
    }

    async fn respond(req: Request<Incoming>, bye: Arc<Notify>) -> Result<Reply, std::io::Error> {
        let path = req.uri().path().to_string();
        let mut parts = path.trim_start_matches('/').split('/');
        let route = parts.next().unwrap_or_default();
        let (a, b) = (parts.next(), parts.next());
        Ok(match route {
            "bytes" => fixed(StatusCode::OK, body_bytes(number(a))),
            "chunked" => {
                let (n, k): (usize, usize) = (number(a), number(b));
                let body = body_bytes(n);
                streamed(
                    body.chunks(k)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect(),
                )
            }
            "redirect" => match number::<u32>(a) {
                0 => fixed(StatusCode::OK, body_bytes(5)),
                n => {
                    let mut resp = fixed(StatusCode::FOUND, Vec::new());
                    let to = format!("/redirect/{}", n - 1);
                    resp.headers_mut()
                        .insert(hyper::header::LOCATION, to.parse().expect("a header value"));
                    resp
                }
            },
            "slow" => {
                tokio::time::sleep(Duration::from_millis(number(a))).await;
                fixed(StatusCode::OK, body_bytes(5))
            }
            "status" => {
                let code: u16 = number(a);
                let status = StatusCode::from_u16(code).expect("a status code");
                fixed(status, format!("status {code}").into_bytes())
            }
            "bye" => {
                bye.notify_one();
                fixed(StatusCode::OK, body_bytes(3))
            }
            "truncated" => {
                // The pause flushes the head and the 3 bytes before the body
                // ends short (hyper then drops the connection).
                let pause = futures::stream::once(tokio::time::sleep(Duration::from_millis(20)))
                    .filter_map(|()| std::future::ready(None));
                let frames = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"abc")))])
                    .chain(pause);
                let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
                resp.headers_mut()
                    .insert(hyper::header::CONTENT_LENGTH, 10.into());
                resp
            }
            "drop" => return Err(std::io::Error::other("dropped on purpose")),
            _ => fixed(StatusCode::NOT_FOUND, b"no such test route".to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{body_bytes, TestServer};
    use super::*;

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap()
    }

    /// Runs `f` on a current-thread runtime, like an async slot's loop.
    fn on_loop<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn short_timeout() -> HttpConfig {
        HttpConfig {
            request_timeout: Duration::from_millis(300),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn urls_parse_http_and_https_and_refuse_the_rest() {
        let u = url("http://127.0.0.1:8080/slow?ms=5");
        assert_eq!(
            (u.host.as_str(), u.port, u.is_https()),
            ("127.0.0.1", 8080, false)
        );
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/slow?ms=5");
        assert_eq!(url("http://example").port, 80);
        let u = url("https://example.org/x");
        assert_eq!((u.port, u.is_https()), (443, true));
        for (bad, says) in [
            ("ftp://h/x", "scheme ftp"),
            ("h:80/x", "scheme h"),
            ("http://:80/", "invalid URL"),
            ("http://h:99999/", "invalid URL"),
            ("http://h:0/", "port 0"),
            ("not a url", "invalid URL"),
        ] {
            let e = HttpUrl::parse(bad).unwrap_err();
            assert!(e.contains(says) && e.contains("https://"), "{bad}: {e}");
        }
    }

    #[test]
    fn fixed_and_chunked_bodies_are_read_whole_over_one_connection() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        for path in ["/bytes/0", "/bytes/1", "/bytes/1024", "/bytes/300000"] {
            let n: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            let r = client.get(&url(&server.url(path))).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, body_bytes(n), "{path}");
        }
        for (path, n) in [
            ("/chunked/0/1", 0),
            ("/chunked/1/1", 1),
            ("/chunked/100000/999", 100_000),
        ] {
            let r = client.get(&url(&server.url(path))).unwrap();
            assert_eq!((r.status, r.body.len()), (200, n), "{path}");
            assert_eq!(r.body, body_bytes(n), "{path}");
        }
        assert_eq!(client.connections_opened(), 1);
        assert_eq!(server.accepted(), 1);

        let client = AsyncHttpClient::new(4);
        let got = on_loop(async {
            let mut got = Vec::new();
            for path in [
                "/bytes/0",
                "/bytes/1024",
                "/chunked/100000/999",
                "/chunked/1/1",
            ] {
                got.push(client.get(&url(&server.url(path))).await.unwrap());
            }
            got
        });
        let lens: Vec<(u16, u64)> = got.iter().map(|r| (r.status, r.body_len)).collect();
        assert_eq!(lens, [(200, 0), (200, 1024), (200, 100_000), (200, 1)]);
        assert_eq!(client.connections_opened(), 1);
    }

    #[test]
    fn async_tasks_in_flight_share_the_pool() {
        let server = TestServer::start();
        let client = AsyncHttpClient::new(8);
        let (lens, opened, again) = on_loop(async {
            let gets = (0..32).map(|i| {
                let client = client.clone();
                let url = url(&server.url(&format!("/chunked/{i}/7")));
                async move { client.get(&url).await.unwrap().body_len }
            });
            let lens = futures::future::join_all(gets).await;
            let opened = client.connections_opened();
            // Sequential GETs after the burst reuse its kept-alive connections.
            for _ in 0..8 {
                client.get(&url(&server.url("/bytes/3"))).await.unwrap();
            }
            (lens, opened, client.connections_opened())
        });
        assert_eq!(lens, (0..32).collect::<Vec<u64>>());
        // At most one connection per GET in flight.
        assert!((1..=32).contains(&opened), "{opened}");
        assert_eq!(again, opened);
    }

    #[test]
    fn redirects_are_followed_up_to_ten() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        let r = client.get(&url(&server.url("/redirect/10"))).unwrap();
        assert_eq!((r.status, r.body), (200, &body_bytes(5)[..]));
        let e = client.get(&url(&server.url("/redirect/11"))).unwrap_err();
        assert!(matches!(e, HttpError::TooManyRedirects { .. }), "{e}");
        assert!(e.to_string().contains("more than 10"), "{e}");

        let client = AsyncHttpClient::new(1);
        let (ok, e) = on_loop(async {
            let ok = client.get(&url(&server.url("/redirect/10"))).await;
            let e = client.get(&url(&server.url("/redirect/11"))).await;
            (ok, e)
        });
        assert_eq!(ok.unwrap().body_len, 5);
        let e = e.unwrap_err();
        assert!(matches!(e, HttpError::TooManyRedirects { .. }), "{e}");
    }

    #[test]
    fn a_slow_response_times_out_with_the_request_timeout() {
        let server = TestServer::start();
        let mut client = HttpClient::with_config(short_timeout());
        let started = std::time::Instant::now();
        let e = client.get(&url(&server.url("/slow/10000"))).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        let shown = e.to_string();
        assert!(shown.contains("timed out after 0.3 s"), "{shown}");
        assert!(
            shown.contains(&format!("127.0.0.1:{}", server.port)),
            "{shown}"
        );
        // Within the timeout it is just a slow response.
        let r = client.get(&url(&server.url("/slow/20"))).unwrap();
        assert_eq!(r.body.len(), 5);

        let client = AsyncHttpClient::with_config(2, short_timeout());
        let e = on_loop(client.get(&url(&server.url("/slow/10000")))).unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    }

    #[test]
    fn statuses_other_than_200_come_back_with_their_bodies() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        let r = client.get(&url(&server.url("/status/503"))).unwrap();
        assert_eq!((r.status, r.body), (503, &b"status 503"[..]));
        let r = client.get(&url(&server.url("/nowhere"))).unwrap();
        assert_eq!(r.status, 404);
        let r = on_loop(AsyncHttpClient::new(1).get(&url(&server.url("/status/204")))).unwrap();
        assert_eq!((r.status, r.body_len), (204, 0));
    }

    #[test]
    fn bodies_above_the_bound_fail_clearly() {
        let server = TestServer::start();
        let config = HttpConfig {
            max_body_bytes: 1000,
            ..HttpConfig::default()
        };
        let mut client = HttpClient::with_config(config.clone());
        assert_eq!(
            client
                .get(&url(&server.url("/bytes/1000")))
                .unwrap()
                .body
                .len(),
            1000
        );
        assert_eq!(
            client
                .get(&url(&server.url("/chunked/1000/100")))
                .unwrap()
                .body
                .len(),
            1000
        );
        // Announced by Content-Length, or found while reading chunks.
        for path in ["/bytes/1001", "/chunked/1001/100"] {
            let e = client.get(&url(&server.url(path))).unwrap_err();
            assert!(
                matches!(e, HttpError::BodyTooLarge { limit: 1000, .. }),
                "{e}"
            );
            assert!(e.to_string().contains("1000-byte limit"), "{e}");
        }
        let client = AsyncHttpClient::with_config(1, config);
        let e = on_loop(client.get(&url(&server.url("/chunked/5000/100")))).unwrap_err();
        assert!(matches!(e, HttpError::BodyTooLarge { .. }), "{e}");
    }

    #[test]
    fn cut_off_and_missing_responses_are_errors_not_short_bodies() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        let e = client.get(&url(&server.url("/truncated"))).unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::Failed {
                    during: "reading the body from",
                    ..
                }
            ),
            "{e}"
        );
        let e = client.get(&url(&server.url("/drop"))).unwrap_err();
        assert!(matches!(e, HttpError::Failed { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("127.0.0.1:{}", server.port)),
            "{e}"
        );
        let client = AsyncHttpClient::new(1);
        for (path, during) in [
            ("/truncated", "reading the body from"),
            ("/drop", "exchange with"),
        ] {
            let e = on_loop(client.get(&url(&server.url(path)))).unwrap_err();
            assert!(
                matches!(e, HttpError::Failed { during: d, .. } if d == during),
                "{path}: {e}"
            );
        }
    }

    #[test]
    fn a_kept_alive_connection_the_server_closed_is_replaced() {
        let server = TestServer::start();
        let mut client = HttpClient::new();
        assert_eq!(client.get(&url(&server.url("/bye"))).unwrap().body.len(), 3);
        // The server closed it while idle; the slot's runtime did not run
        // meanwhile, so the pool only finds out when it tries to reuse it.
        server.wait_closed(1);
        assert_eq!(
            client
                .get(&url(&server.url("/bytes/2")))
                .unwrap()
                .body
                .len(),
            2
        );
        assert_eq!(client.connections_opened(), 2);

        let client = AsyncHttpClient::new(1);
        let lens = on_loop(async {
            let first = client.get(&url(&server.url("/bye"))).await.unwrap();
            // Blocks the loop too: its connection task cannot notice the close.
            server.wait_closed(2);
            let second = client.get(&url(&server.url("/bytes/2"))).await.unwrap();
            (first.body_len, second.body_len)
        });
        assert_eq!(lens, (3, 2));
        assert_eq!(client.connections_opened(), 2);
    }

    #[test]
    fn a_refused_connection_names_the_address() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = url(&format!("http://127.0.0.1:{port}/"));
        let e = HttpClient::new().get(&target).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        let e = on_loop(AsyncHttpClient::new(1).get(&target)).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn https_works_with_the_trusted_ca_and_fails_without_it() {
        let server = TestServer::start_tls();
        let trusting = server.trusting_config();
        let mut client = HttpClient::with_config(trusting.clone());
        for (path, n) in [("/bytes/1024", 1024), ("/chunked/70000/4096", 70_000)] {
            let r = client.get(&url(&server.url(path))).unwrap();
            assert_eq!((r.status, r.body), (200, &body_bytes(n)[..]), "{path}");
        }
        assert_eq!(client.connections_opened(), 1);
        let client = AsyncHttpClient::with_config(2, trusting);
        let r = on_loop(client.get(&url(&server.url("/redirect/2")))).unwrap();
        assert_eq!((r.status, r.body_len), (200, 5));

        // The webpki roots alone do not know a self-signed certificate.
        let e = HttpClient::with_config(HttpConfig::default())
            .get(&url(&server.url("/bytes/1")))
            .unwrap_err();
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    }

    #[test]
    fn a_bad_ca_file_fails_every_get_naming_the_file() {
        let server = TestServer::start();
        let dir = std::env::temp_dir();
        let empty = dir.join(format!("brigade-test-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let missing = dir.join("brigade-test-no-such-ca.pem");
        for (file, says) in [(&empty, "no certificate"), (&missing, "cannot read")] {
            let config = HttpConfig {
                extra_ca: Some(file.clone()),
                ..HttpConfig::default()
            };
            let e = HttpClient::with_config(config.clone())
                .get(&url(&server.url("/bytes/1")))
                .unwrap_err();
            let shown = e.to_string();
            assert!(matches!(e, HttpError::Setup(_)), "{shown}");
            assert!(shown.contains(says) && shown.contains(CA_ENV), "{shown}");
            assert!(shown.contains(&file.display().to_string()), "{shown}");
            let e = on_loop(AsyncHttpClient::with_config(1, config).get(&url(&server.url("/"))))
                .unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        std::fs::remove_file(empty).unwrap();
    }

    /// Set in the child process of the test below: the URL it must GET.
    const CHILD_URL_ENV: &str = "BRIGADE_TEST_HTTPS_URL";

    #[test]
    fn clients_from_the_environment_trust_brigade_http_ca() {
        // The child: a fresh process, like an executor, configured only by
        // its environment.
        if let Ok(target) = std::env::var(CHILD_URL_ENV) {
            let target = url(&target);
            let mut blocking = HttpClient::new();
            assert_eq!(blocking.get(&target).unwrap().body.len(), 1024);
            let r = on_loop(AsyncHttpClient::new(1).get(&target)).unwrap();
            assert_eq!((r.status, r.body_len), (200, 1024));
            return;
        }
        let server = TestServer::start_tls();
        let name = "http_client::tests::clients_from_the_environment_trust_brigade_http_ca";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CA_ENV, server.ca_file())
            .env(CHILD_URL_ENV, server.url("/bytes/1024"))
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("1 passed"), "{shown}");
        // Both of the child's clients connected (TLS accepted each).
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_blocking_client_refuses_to_run_on_an_event_loop() {
        let e = HttpClient::new()
            .get(&url("http://127.0.0.1:9/"))
            .unwrap_err();
        assert!(e.to_string().contains("AsyncHttpClient"), "{e}");
    }
}
