//! brigade's HTTP/1.1 clients, GET only: status line + headers + a
//! Content-Length (or close-delimited) body, TCP_NODELAY, keep-alive.
//! [`HttpClient`] is blocking, for thread and process slots: one kept-alive
//! `TcpStream` per client. [`AsyncHttpClient`] is an event loop's: a pool of
//! kept-alive tokio streams, each driven by the task that uses it. Both share
//! one response parser. Chunked bodies are refused with a clear error: the I/O
//! targets brigade measures against always send Content-Length, and a whole
//! chunked decoder is not worth its risk here.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use brigade_proto::catalog::HttpUrl;

/// How long to wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may take. Above the io-target's 60 s `/slow` maximum so
/// a legitimately slow response is never cut off.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(90);

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("{during} {host}:{port} timed out after {} s", .after.as_secs())]
    Timeout {
        during: &'static str,
        host: String,
        port: u16,
        after: Duration,
    },
    #[error("{during} {host}:{port} failed: {source}")]
    Io {
        during: &'static str,
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("{host}:{port} closed the connection before sending a response")]
    ClosedBeforeResponse { host: String, port: u16 },
    #[error("malformed response from {host}:{port}: {why}")]
    Malformed {
        host: String,
        port: u16,
        why: String,
    },
    #[error(
        "{host}:{port} sent a chunked body, which this client does not support \
         (expected a Content-Length)"
    )]
    Chunked { host: String, port: u16 },
}

/// A response; the body borrows the client's reusable buffer.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

#[derive(Debug)]
struct Connection {
    host: String,
    port: u16,
    reader: BufReader<TcpStream>,
}

/// Low-level failures of one exchange, before they get the peer's name.
enum Failure {
    /// Nothing at all came back on a reused connection: the peer had closed it.
    Stale,
    Io(&'static str, io::Error),
    Malformed(String),
    Chunked,
}

/// What an exchange leaves behind.
struct Exchanged {
    status: u16,
    keep_alive: bool,
}

/// A blocking HTTP/1.1 client holding at most one kept-alive connection.
#[derive(Debug, Default)]
pub struct HttpClient {
    conn: Option<Connection>,
    request: Vec<u8>,
    line: Vec<u8>,
    body: Vec<u8>,
    connections_opened: u64,
}

impl HttpClient {
    pub fn new() -> HttpClient {
        HttpClient::default()
    }

    /// How many TCP connections this client has opened (keep-alive makes it 1
    /// for any number of requests to one server).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened
    }

    /// GETs `url`, reusing the kept-alive connection when it goes to the same
    /// host and port. A reused connection the peer closed while idle is
    /// reopened once (servers time idle connections out; that is not an error).
    pub fn get(&mut self, url: &HttpUrl) -> Result<Response<'_>, HttpError> {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.host != url.host || c.port != url.port)
        {
            self.conn = None;
        }
        let reused = self.conn.is_some();
        if !reused {
            self.connect(url)?;
        }
        let outcome = match self.exchange(url) {
            Err(Failure::Stale) if reused => {
                self.conn = None;
                self.connect(url)?;
                self.exchange(url)
            }
            other => other,
        };
        match outcome {
            Ok(Exchanged { status, keep_alive }) => {
                if !keep_alive {
                    self.conn = None;
                }
                Ok(Response {
                    status,
                    body: &self.body,
                })
            }
            Err(f) => {
                // After any failure the stream is in an unknown state.
                self.conn = None;
                Err(name_failure(f, &url.host, url.port))
            }
        }
    }

    fn connect(&mut self, url: &HttpUrl) -> Result<(), HttpError> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|source| HttpError::Resolve {
                host: url.host.clone(),
                port: url.port,
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    let named = |source| HttpError::Connect {
                        host: url.host.clone(),
                        port: url.port,
                        source,
                    };
                    stream.set_nodelay(true).map_err(named)?;
                    stream
                        .set_read_timeout(Some(RESPONSE_TIMEOUT))
                        .map_err(named)?;
                    stream
                        .set_write_timeout(Some(RESPONSE_TIMEOUT))
                        .map_err(named)?;
                    self.conn = Some(Connection {
                        host: url.host.clone(),
                        port: url.port,
                        reader: BufReader::with_capacity(16 * 1024, stream),
                    });
                    self.connections_opened += 1;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        if matches!(
            last.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return Err(HttpError::Timeout {
                during: "connecting to",
                host: url.host.clone(),
                port: url.port,
                after: CONNECT_TIMEOUT,
            });
        }
        Err(HttpError::Connect {
            host: url.host.clone(),
            port: url.port,
            source: last,
        })
    }

    /// Sends one GET and reads its whole response into `self.body`.
    fn exchange(&mut self, url: &HttpUrl) -> Result<Exchanged, Failure> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Io(
                "sending to",
                io::Error::new(io::ErrorKind::NotConnected, "no connection"),
            ));
        };
        self.request.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            self.request,
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: brigade\r\nAccept: */*\r\n\r\n",
            url.path, url.host, url.port
        );
        if let Err(e) = conn.reader.get_mut().write_all(&self.request) {
            // A write to a connection the peer already closed fails with EPIPE
            // or ECONNRESET; nothing was processed, so retrying is safe.
            return Err(if is_closed(&e) {
                Failure::Stale
            } else {
                Failure::Io("sending to", e)
            });
        }

        // Status line; skip interim 1xx responses.
        let (status, http10, headers) = loop {
            self.line.clear();
            match read_line(&mut conn.reader, &mut self.line) {
                Ok(0) => return Err(Failure::Stale),
                Ok(_) => {}
                Err(e) if is_closed(&e) => return Err(Failure::Stale),
                Err(e) => return Err(Failure::Io("reading from", e)),
            }
            let (status, http10) = parse_status_line(&self.line)?;
            let mut headers = Headers::default();
            read_headers(&mut conn.reader, &mut self.line, &mut headers)?;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            break (status, http10, headers);
        };

        if headers.chunked {
            return Err(Failure::Chunked);
        }
        let keep_alive = if http10 {
            headers.keep_alive
        } else {
            !headers.close
        };
        self.body.clear();
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        if bodiless {
            return Ok(Exchanged { status, keep_alive });
        }
        match headers.content_length {
            Some(len) => {
                if len > MAX_BODY_BYTES {
                    return Err(Failure::Malformed(format!(
                        "Content-Length {len} exceeds the {MAX_BODY_BYTES}-byte limit"
                    )));
                }
                self.body.resize(len as usize, 0);
                conn.reader
                    .read_exact(&mut self.body)
                    .map_err(|e| Failure::Io("reading the body from", e))?;
                Ok(Exchanged { status, keep_alive })
            }
            None => {
                // No length: the body runs until the peer closes.
                (&mut conn.reader)
                    .take(MAX_BODY_BYTES + 1)
                    .read_to_end(&mut self.body)
                    .map_err(|e| Failure::Io("reading the body from", e))?;
                if self.body.len() as u64 > MAX_BODY_BYTES {
                    return Err(Failure::Malformed(format!(
                        "the body exceeds the {MAX_BODY_BYTES}-byte limit"
                    )));
                }
                Ok(Exchanged {
                    status,
                    keep_alive: false,
                })
            }
        }
    }
}

fn name_failure(f: Failure, host: &str, port: u16) -> HttpError {
    let host = host.to_string();
    match f {
        Failure::Stale => HttpError::ClosedBeforeResponse { host, port },
        Failure::Io(during, source)
            if matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            HttpError::Timeout {
                during,
                host,
                port,
                after: RESPONSE_TIMEOUT,
            }
        }
        Failure::Io(during, source) => HttpError::Io {
            during,
            host,
            port,
            source,
        },
        Failure::Malformed(why) => HttpError::Malformed { host, port, why },
        Failure::Chunked => HttpError::Chunked { host, port },
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Reads one `\n`-terminated line, refusing absurdly long ones.
fn read_line(reader: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<usize> {
    let n = reader
        .by_ref()
        .take(MAX_HEADER_BYTES as u64)
        .read_until(b'\n', line)?;
    if n > 0 && line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "response line cut off or longer than 64 KiB",
        ));
    }
    Ok(n)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Parses `HTTP/1.x NNN reason`; returns the status and whether it is HTTP/1.0.
fn parse_status_line(line: &[u8]) -> Result<(u16, bool), Failure> {
    let line = trim(line);
    let shown = || String::from_utf8_lossy(line).into_owned();
    let mut parts = line.splitn(3, |&c| c == b' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => {
            return Err(Failure::Malformed(format!(
                "expected an HTTP/1.x status line, got {:?}",
                shown()
            )))
        }
    };
    let code = parts.next().unwrap_or_default();
    let status = parse_decimal(code)
        .filter(|s| (100..=999).contains(s) && code.len() == 3)
        .ok_or_else(|| Failure::Malformed(format!("bad status code in {:?}", shown())))?;
    Ok((status as u16, http10))
}

/// `1*DIGIT` as a u64; no sign, no spaces, no overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

#[derive(Default)]
struct Headers {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

fn read_headers(
    reader: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    headers: &mut Headers,
) -> Result<(), Failure> {
    let mut total = 0usize;
    loop {
        line.clear();
        let n = read_line(reader, line).map_err(|e| Failure::Io("reading headers from", e))?;
        if n == 0 {
            return Err(Failure::Io(
                "reading headers from",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-headers",
                ),
            ));
        }
        total += n;
        if total > MAX_HEADER_BYTES {
            return Err(Failure::Malformed("headers exceed 64 KiB".into()));
        }
        let h = trim(line);
        if h.is_empty() {
            return Ok(());
        }
        parse_header_line(h, headers)?;
    }
}

/// Applies one (trimmed, non-empty) header line to `headers`.
fn parse_header_line(h: &[u8], headers: &mut Headers) -> Result<(), Failure> {
    let Some(colon) = h.iter().position(|&c| c == b':') else {
        return Err(Failure::Malformed(format!(
            "header line without a colon: {:?}",
            String::from_utf8_lossy(h)
        )));
    };
    let name = trim(&h[..colon]);
    // Only these three names matter: every other header (Date, Server, ...)
    // is skipped by its name's length, its value never looked at.
    if !matches!(name.len(), 10 | 14 | 17) {
        return Ok(());
    }
    let value = trim(&h[colon + 1..]);
    if name.eq_ignore_ascii_case(b"content-length") {
        let len = parse_decimal(value).ok_or_else(|| {
            Failure::Malformed(format!(
                "Content-Length {:?} is not a number",
                String::from_utf8_lossy(value)
            ))
        })?;
        if headers.content_length.is_some_and(|l| l != len) {
            return Err(Failure::Malformed(
                "conflicting Content-Length headers".into(),
            ));
        }
        headers.content_length = Some(len);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        // Any transfer coding other than identity means a length we can't read.
        if !value.eq_ignore_ascii_case(b"identity") {
            headers.chunked = true;
        }
    } else if name.eq_ignore_ascii_case(b"connection") {
        for token in value.split(|&c| c == b',') {
            let token = trim(token);
            if token.eq_ignore_ascii_case(b"close") {
                headers.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                headers.keep_alive = true;
            }
        }
    }
    Ok(())
}

/// One GET, rendered once per task spec: every request of an `http-get` job
/// is the same bytes.
#[derive(Debug, Clone)]
pub struct GetRequest {
    host: String,
    port: u16,
    bytes: Vec<u8>,
}

impl GetRequest {
    pub fn new(url: &HttpUrl) -> GetRequest {
        GetRequest {
            host: url.host.clone(),
            port: url.port,
            bytes: format!(
                "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: brigade\r\nAccept: */*\r\n\r\n",
                url.path, url.host, url.port
            )
            .into_bytes(),
        }
    }
}

/// What the async client keeps of a response: the body is counted as it
/// streams past, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedResponse {
    pub status: u16,
    pub body_len: u64,
}

/// A kept-alive connection of the async client with its read buffer.
#[derive(Debug)]
struct AsyncConnection {
    host: String,
    port: u16,
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// Read buffer of one async connection: a whole `/fast` response (1,024-byte
/// body and its head) arrives in one read.
const ASYNC_READ_BUF: usize = 4 * 1024;

#[derive(Debug)]
struct IdleConnections {
    conns: std::sync::Mutex<Vec<AsyncConnection>>,
    max_idle: usize,
    opened: std::sync::atomic::AtomicU64,
}

/// The HTTP/1.1 client an event loop shares between its tasks: a pool of
/// kept-alive connections (TCP_NODELAY), each used by one task at a time,
/// which writes its request and reads the response itself. One task, one
/// write and (for small responses) one read per GET: no connection task, no
/// channel between the request and its connection. Same parsing and the same
/// refusals as [`HttpClient`]; the body is counted, not kept. Clones share the
/// pool.
#[derive(Debug, Clone)]
pub struct AsyncHttpClient {
    idle: std::sync::Arc<IdleConnections>,
}

impl AsyncHttpClient {
    /// Keeps up to `max_idle` connections alive (one per task in flight means
    /// steady-state requests never reconnect).
    pub fn new(max_idle: usize) -> AsyncHttpClient {
        AsyncHttpClient {
            idle: std::sync::Arc::new(IdleConnections {
                conns: std::sync::Mutex::new(Vec::new()),
                max_idle: max_idle.max(1),
                opened: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// How many TCP connections this client (and its clones) opened.
    pub fn connections_opened(&self) -> u64 {
        self.idle.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many connections are idle in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AsyncConnection>> {
        // The pool is a plain list: a panic while it was held cannot have left
        // it half-changed.
        self.idle
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_idle(&self, req: &GetRequest) -> Option<AsyncConnection> {
        let mut idle = self.lock();
        let i = idle
            .iter()
            .rposition(|c| c.port == req.port && c.host == req.host)?;
        Some(idle.swap_remove(i))
    }

    fn put_idle(&self, conn: AsyncConnection) {
        let mut idle = self.lock();
        if idle.len() < self.idle.max_idle {
            idle.push(conn);
        }
    }

    /// Sends `req` on an idle connection to its host (or a new one) and reads
    /// the whole response. A reused connection the peer closed while idle is
    /// replaced once, as in [`HttpClient::get`].
    pub async fn get(&self, req: &GetRequest) -> Result<CountedResponse, HttpError> {
        // Connecting is rare (once per pooled connection): boxed, so its
        // state does not enlarge every task's future.
        let (mut conn, reused) = match self.take_idle(req) {
            Some(conn) => (conn, true),
            None => (Box::pin(self.connect(req)).await?, false),
        };
        let mut outcome = exchange_async(&mut conn, &req.bytes).await;
        if reused && matches!(outcome, Err(Failure::Stale)) {
            conn = Box::pin(self.connect(req)).await?;
            outcome = exchange_async(&mut conn, &req.bytes).await;
        }
        match outcome {
            Ok((response, keep_alive)) => {
                if keep_alive {
                    self.put_idle(conn);
                }
                Ok(response)
            }
            // After any failure the stream is in an unknown state: dropped.
            Err(f) => Err(name_failure(f, &req.host, req.port)),
        }
    }

    async fn connect(&self, req: &GetRequest) -> Result<AsyncConnection, HttpError> {
        let (host, port) = (req.host.as_str(), req.port);
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| HttpError::Resolve {
                host: host.to_string(),
                port,
                source,
            })?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
        for addr in addrs {
            let stream =
                match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        last = e;
                        continue;
                    }
                    Err(_) => {
                        last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        continue;
                    }
                };
            stream
                .set_nodelay(true)
                .map_err(|source| HttpError::Connect {
                    host: host.to_string(),
                    port,
                    source,
                })?;
            self.idle
                .opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(AsyncConnection {
                host: host.to_string(),
                port,
                stream,
                buf: vec![0; ASYNC_READ_BUF],
            });
        }
        if last.kind() == io::ErrorKind::TimedOut {
            return Err(HttpError::Timeout {
                during: "connecting to",
                host: host.to_string(),
                port,
                after: CONNECT_TIMEOUT,
            });
        }
        Err(HttpError::Connect {
            host: host.to_string(),
            port,
            source: last,
        })
    }
}

/// Where the head in `buf` ends (just past its empty line), once it is whole.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(nl) = buf[from..].iter().position(|&c| c == b'\n') {
        let next = from + nl + 1;
        match &buf[next..] {
            [b'\n', ..] => return Some(next + 1),
            [b'\r', b'\n', ..] => return Some(next + 2),
            _ => from = next,
        }
    }
    None
}

/// Parses a whole response head: status line, then header lines.
fn parse_head(head: &[u8]) -> Result<(u16, bool, Headers), Failure> {
    let mut lines = head.split(|&c| c == b'\n');
    let (status, http10) = parse_status_line(lines.next().unwrap_or_default())?;
    let mut headers = Headers::default();
    for line in lines {
        let h = trim(line);
        if !h.is_empty() {
            parse_header_line(h, &mut headers)?;
        }
    }
    Ok((status, http10, headers))
}

/// Reads into `buf[filled..]`; a closed connection is `Ok(0)`.
async fn read_some(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
    during: &'static str,
) -> Result<usize, Failure> {
    use tokio::io::AsyncReadExt;
    stream.read(buf).await.map_err(|e| Failure::Io(during, e))
}

/// One GET on `conn`: the response and whether the connection may be reused.
async fn exchange_async(
    conn: &mut AsyncConnection,
    request: &[u8],
) -> Result<(CountedResponse, bool), Failure> {
    use tokio::io::AsyncWriteExt;
    if let Err(e) = conn.stream.write_all(request).await {
        // Nothing was processed by a peer that had closed: safe to retry.
        return Err(if is_closed(&e) {
            Failure::Stale
        } else {
            Failure::Io("sending to", e)
        });
    }
    let stream = &mut conn.stream;
    let buf = &mut conn.buf;
    // The response so far is buf[start..filled].
    let (mut start, mut filled) = (0, 0);
    let mut got_any = false;
    // Status line and headers; interim 1xx responses are skipped.
    let (status, http10, headers, mut rest) = loop {
        let end = loop {
            if let Some(len) = head_end(&buf[start..filled]) {
                break start + len;
            }
            if start > 0 {
                // Only after an interim response: move what is left to the front.
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
            }
            if filled == buf.len() {
                if buf.len() >= MAX_HEADER_BYTES {
                    return Err(Failure::Malformed("headers exceed 64 KiB".into()));
                }
                buf.resize((buf.len() * 2).min(MAX_HEADER_BYTES), 0);
            }
            let n = match read_some(stream, &mut buf[filled..], "reading from").await {
                Err(Failure::Io(_, e)) if !got_any && is_closed(&e) => return Err(Failure::Stale),
                other => other?,
            };
            if n == 0 {
                if !got_any {
                    return Err(Failure::Stale);
                }
                return Err(Failure::Io(
                    "reading headers from",
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-headers",
                    ),
                ));
            }
            got_any = true;
            filled += n;
        };
        let (status, http10, headers) = parse_head(&buf[start..end])?;
        start = end;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, http10, headers, filled - end);
    };
    if headers.chunked {
        return Err(Failure::Chunked);
    }
    let keep_alive = if http10 {
        headers.keep_alive
    } else {
        !headers.close
    };
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let body_len = if bodiless {
        Some(0)
    } else {
        headers.content_length
    };
    match body_len {
        Some(len) => {
            // `rest` bytes of the body are already in the buffer.
            while (rest as u64) < len {
                let n = read_some(stream, buf, "reading the body from").await?;
                if n == 0 {
                    return Err(Failure::Io(
                        "reading the body from",
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("connection closed after {rest} of {len} body bytes"),
                        ),
                    ));
                }
                rest += n;
            }
            // Bytes beyond the body were never asked for: the connection's
            // framing can no longer be trusted, so it is not reused.
            let clean = rest as u64 == len;
            Ok((
                CountedResponse {
                    status,
                    body_len: len,
                },
                keep_alive && clean,
            ))
        }
        None => {
            // No length: the body runs until the peer closes.
            let mut len = rest as u64;
            loop {
                let n = read_some(stream, buf, "reading the body from").await?;
                if n == 0 {
                    break;
                }
                len += n as u64;
            }
            Ok((
                CountedResponse {
                    status,
                    body_len: len,
                },
                false,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_proto::catalog::parse_http_url;
    use std::net::TcpListener;

    fn url(port: u16, path: &str) -> HttpUrl {
        parse_http_url(&format!("http://127.0.0.1:{port}{path}")).unwrap()
    }

    /// Reads one request head from a raw test server's socket.
    fn read_request(stream: &mut TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
    }

    #[test]
    fn a_reused_connection_closed_by_the_peer_is_reopened_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                read_request(&mut s);
                // Keep-alive is implied, then the connection is dropped anyway
                // (like a server timing out an idle connection).
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
            }
        });
        let mut client = HttpClient::new();
        for _ in 0..2 {
            let r = client.get(&url(port, "/")).unwrap();
            assert_eq!((r.status, r.body), (200, &b"ok"[..]));
        }
        assert_eq!(client.connections_opened(), 2);
        server.join().unwrap();
    }

    #[test]
    fn chunked_bodies_are_refused_clearly() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            read_request(&mut s);
            s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .unwrap();
        });
        let e = HttpClient::new().get(&url(port, "/")).unwrap_err();
        assert!(matches!(e, HttpError::Chunked { .. }), "{e}");
        assert!(e.to_string().contains("chunked"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn close_delimited_and_http10_bodies_are_read_and_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            read_request(&mut s);
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello").unwrap();
        });
        let mut client = HttpClient::new();
        let r = client.get(&url(port, "/")).unwrap();
        assert_eq!(r.body, b"hello");
        assert!(client.conn.is_none());
        server.join().unwrap();
    }

    #[test]
    fn garbage_is_a_malformed_response() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            read_request(&mut s);
            s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap();
        });
        let e = HttpClient::new().get(&url(port, "/")).unwrap_err();
        assert!(matches!(e, HttpError::Malformed { .. }), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn a_refused_connection_names_the_address() {
        // Bind then drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = HttpClient::new().get(&url(port, "/")).unwrap_err();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
    /// Runs `f` on a current-thread runtime, like an async slot's loop.
    fn on_loop<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn request(port: u16, path: &str) -> GetRequest {
        GetRequest::new(&url(port, path))
    }

    /// A raw server answering each of `replies` on its own connection.
    fn serve_each(replies: Vec<Vec<&'static [u8]>>) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for parts in replies {
                let (mut s, _) = listener.accept().unwrap();
                s.set_nodelay(true).unwrap();
                read_request(&mut s);
                for part in parts {
                    s.write_all(part).unwrap();
                }
            }
        });
        (port, server)
    }

    #[test]
    fn async_reused_connection_closed_by_the_peer_is_reopened_once() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (port, server) = serve_each(vec![vec![ok], vec![ok]]);
        let client = AsyncHttpClient::new(4);
        on_loop(async {
            for _ in 0..2 {
                let r = client.get(&request(port, "/")).await.unwrap();
                assert_eq!(
                    r,
                    CountedResponse {
                        status: 200,
                        body_len: 2
                    }
                );
            }
        });
        assert_eq!(client.connections_opened(), 2);
        server.join().unwrap();
    }

    #[test]
    fn async_interim_responses_and_split_bodies_are_read_and_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            for _ in 0..3 {
                read_request(&mut s);
                for part in [
                    &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not"[..],
                    b" Found\r\ncontent-length:  6\r\nConnection: keep-alive\r\n",
                    b"\r\nmis",
                    b"sed",
                ] {
                    s.write_all(part).unwrap();
                }
            }
        });
        let client = AsyncHttpClient::new(1);
        on_loop(async {
            for _ in 0..3 {
                let r = client.get(&request(port, "/x")).await.unwrap();
                assert_eq!((r.status, r.body_len), (404, 6));
            }
        });
        assert_eq!(client.connections_opened(), 1);
        assert_eq!(client.idle_connections(), 1);
        server.join().unwrap();
    }

    #[test]
    fn async_close_delimited_bodies_are_counted_and_not_reused() {
        let (port, server) = serve_each(vec![vec![b"HTTP/1.0 200 OK\r\n\r\nhel", b"lo"]]);
        let client = AsyncHttpClient::new(4);
        let r = on_loop(client.get(&request(port, "/"))).unwrap();
        assert_eq!((r.status, r.body_len), (200, 5));
        assert_eq!(client.idle_connections(), 0);
        server.join().unwrap();
    }

    #[test]
    fn async_bad_responses_fail_with_clear_errors() {
        let (port, server) = serve_each(vec![
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
            vec![b"SSH-2.0-OpenSSH\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"],
            vec![],
        ]);
        let client = AsyncHttpClient::new(4);
        let errors: Vec<HttpError> = on_loop(async {
            let mut errors = Vec::new();
            for _ in 0..5 {
                errors.push(client.get(&request(port, "/")).await.unwrap_err());
            }
            errors
        });
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            matches!(errors[0], HttpError::Chunked { .. }),
            "{}",
            shown[0]
        );
        assert!(shown[0].contains("chunked"), "{}", shown[0]);
        assert!(
            matches!(errors[1], HttpError::Malformed { .. }),
            "{}",
            shown[1]
        );
        assert!(shown[1].contains("status line"), "{}", shown[1]);
        assert!(shown[2].contains("3 of 10 body bytes"), "{}", shown[2]);
        assert!(
            shown[3].contains("conflicting Content-Length"),
            "{}",
            shown[3]
        );
        assert!(
            matches!(errors[4], HttpError::ClosedBeforeResponse { .. }),
            "{}",
            shown[4]
        );
        assert!(shown
            .iter()
            .all(|e| e.contains(&format!("127.0.0.1:{port}"))));
        // No connection that failed goes back to the pool.
        assert_eq!(client.idle_connections(), 0);
        server.join().unwrap();
    }

    #[test]
    fn async_a_refused_connection_names_the_address() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = on_loop(AsyncHttpClient::new(1).get(&request(port, "/"))).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn heads_parse_the_headers_that_matter_and_refuse_bad_lengths() {
        let (status, http10, h) = parse_head(
            b"HTTP/1.1 200 OK\r\ndate: Thu, 26 Nov 2026 14:00:00 GMT\r\nServer: x\r\n\
              Content-Length:  1024 \r\nconnection: keep-alive, Close\r\n\r\n",
        )
        .unwrap_or_else(|_| panic!("a valid head"));
        assert_eq!((status, http10), (200, false));
        assert_eq!(h.content_length, Some(1024));
        assert!(h.close && h.keep_alive && !h.chunked);
        let (_, http10, h) = parse_head(b"HTTP/1.0 204 No Content\nTransfer-Encoding: gzip\n\n")
            .unwrap_or_else(|_| panic!("a valid head"));
        assert!(http10 && h.chunked && h.content_length.is_none());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 99 OK\r\n\r\n",
            b"HTTP/1.1x 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), Err(Failure::Malformed(_))),
                "{:?} must be refused",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn head_end_finds_the_empty_line_with_or_without_cr() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nbody"), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(head_end(b""), None);
    }
}
