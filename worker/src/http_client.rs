//! A small blocking HTTP/1.1 client for thread and process slots: one
//! kept-alive `TcpStream` (TCP_NODELAY) per client, GET only, status line +
//! headers + a Content-Length (or close-delimited) body. Chunked bodies are
//! refused with a clear error: the I/O targets brigade measures against always
//! send Content-Length, and a whole chunked decoder is not worth its risk here.

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
                Err(name_failure(f, url))
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

fn name_failure(f: Failure, url: &HttpUrl) -> HttpError {
    let (host, port) = (url.host.clone(), url.port);
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
    let status = std::str::from_utf8(code)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s) && code.len() == 3)
        .ok_or_else(|| Failure::Malformed(format!("bad status code in {:?}", shown())))?;
    Ok((status, http10))
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
        let Some(colon) = h.iter().position(|&c| c == b':') else {
            return Err(Failure::Malformed(format!(
                "header line without a colon: {:?}",
                String::from_utf8_lossy(h)
            )));
        };
        let (name, value) = (trim(&h[..colon]), trim(&h[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let len = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
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
}
