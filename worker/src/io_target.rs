//! The HTTP target the I/O workloads hit (`brigade io-target`): `GET /fast`
//! answers at once, `GET /slow?ms=N` after a non-blocking delay, and
//! `GET /rating?name=NAME&ms=N` is the ratings example's web service (a
//! restaurant's rating, after a delay). HTTP/1.1 keep-alive on hyper 1;
//! TCP_NODELAY on every accepted socket because small responses would
//! otherwise wait on Nagle's algorithm.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// The body of every successful response: 1,023 × `x` then `\n`.
pub static FAST_BODY: [u8; 1024] = {
    let mut b = [b'x'; 1024];
    b[1023] = b'\n';
    b
};

/// `/slow` without `ms=`.
pub const SLOW_DEFAULT_MS: u64 = 100;
/// `/rating` without `ms=`.
pub const RATING_DEFAULT_MS: u64 = 50;
/// The longest `/slow` or `/rating` delay accepted.
pub const SLOW_MAX_MS: u64 = 60_000;

/// How long in-flight requests get to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves GET /fast (200, exactly 1,024 bytes: 1,023 'x' then '\n',
/// Content-Length set), GET /slow?ms=N (same body after a non-blocking delay
/// of N ms, default 100, N ≤ 60000 else 400 with a message) and
/// GET /rating?name=NAME&ms=N (after a non-blocking delay of N ms, default
/// 50: `{"name":NAME,"rating":R}` as JSON, R = 1 + the 64-bit FNV-1a hash of
/// NAME's UTF-8 bytes mod 5; NAME percent-encoded, `+` for a space; 400 with
/// a message if NAME is missing, empty or not UTF-8); anything else 404. HTTP/1.1 keep-alive via hyper 1 + hyper-util; set_nodelay(true) on
/// every accepted socket. Returns when `shutdown` completes (after giving
/// in-flight requests a short grace period).
///
/// The server runs on its own thread with a current-thread runtime, whatever
/// runtime calls this: one event loop, like the reference target (nginx with
/// one worker), so it never spreads over every core of a machine it shares
/// with the workers it serves, and no request is handed between threads.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let listener = listener.into_std()?;
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done, mut done_rx) = tokio::sync::oneshot::channel::<io::Result<()>>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("io-target".into())
        .spawn(move || {
            let served = rt.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve_on_this_thread(listener, async {
                    let _ = stop_rx.await;
                })
                .await
            });
            let _ = done.send(served);
        })?;
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {
            let _ = stop.send(());
        }
        // The server ended on its own: an accept error.
        served = &mut done_rx => {
            return served.unwrap_or_else(|_| Err(io::Error::other("the io-target thread panicked")));
        }
    }
    done_rx
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the io-target thread panicked")))
}

async fn serve_on_this_thread(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!(error = %e, "io-target accept failed; retrying");
                // Out of file descriptors: give connections a moment to close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set_nodelay failed");
        }
        let conn = http.serve_connection(TokioIo::new(stream), service_fn(respond));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "io-target connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("io-target shut down with requests still in flight");
    }
    Ok(())
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

type Reply = Response<Full<Bytes>>;

fn text(status: StatusCode, msg: String) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(msg)));
    *resp.status_mut() = status;
    resp
}

fn fast() -> Reply {
    // hyper sets Content-Length from the body's exact size.
    Response::new(Full::new(Bytes::from_static(&FAST_BODY)))
}

/// The `ms` of a `/slow` query, or the message for a 400.
fn slow_delay(query: Option<&str>) -> Result<u64, String> {
    delay(query, SLOW_DEFAULT_MS)
}

/// The `ms` of a query (`default` without one), or the message for a 400.
fn delay(query: Option<&str>, default: u64) -> Result<u64, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("ms="))
    else {
        return Ok(default);
    };
    match value.parse::<u64>() {
        Ok(ms) if ms <= SLOW_MAX_MS => Ok(ms),
        _ => Err(format!(
            "ms={value:?} is invalid: expected an integer in 0..={SLOW_MAX_MS}\n"
        )),
    }
}

/// A restaurant's rating, 1 to 5: a deterministic function of its name
/// (1 + the 64-bit FNV-1a hash of the name's UTF-8 bytes, mod 5).
fn rating_of(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1 + hash % 5
}

/// A `/rating` query's name (percent-decoded, `+` a space) and delay, or
/// the message for a 400.
fn rating_query(query: Option<&str>) -> Result<(String, u64), String> {
    let raw = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("name="))
        .unwrap_or_default();
    let name = percent_decode(raw)?;
    if name.is_empty() {
        return Err("name= is missing or empty: ask for /rating?name=NAME\n".into());
    }
    Ok((name, delay(query, RATING_DEFAULT_MS)?))
}

/// A query value's text: `%XX` escapes and `+` for a space, UTF-8.
fn percent_decode(raw: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest
                    .get(..2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("{raw:?} has a bad %-escape: expected %XX with two hex digits\n")
                    })?;
                bytes.push(hex);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("{raw:?} is not UTF-8 once decoded\n"))
}

fn rating(name: String) -> Reply {
    let body = serde_json::json!({ "name": name, "rating": rating_of(&name) });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn respond(req: Request<Incoming>) -> Result<Reply, Infallible> {
    if req.method() != Method::GET {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    Ok(match req.uri().path() {
        "/fast" => fast(),
        "/slow" => match slow_delay(req.uri().query()) {
            Ok(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                fast()
            }
            Err(msg) => text(StatusCode::BAD_REQUEST, msg),
        },
        "/rating" => match rating_query(req.uri().query()) {
            Ok((name, ms)) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                rating(name)
            }
            Err(msg) => text(StatusCode::BAD_REQUEST, msg),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /fast, /slow?ms=N or /rating?name=NAME\n".into(),
        ),
    })
}

/// A target on 127.0.0.1:0 on its own runtime thread, for tests of blocking
/// clients that must not share a runtime with it.
#[cfg(test)]
pub(crate) struct TestTarget(crate::http_client::test_server::ServerThread);

#[cfg(test)]
impl TestTarget {
    pub fn start() -> TestTarget {
        TestTarget(crate::http_client::test_server::ServerThread::start(
            |listener, shutdown| async move { serve(listener, shutdown).await.expect("serve") },
        ))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::{HttpClient, HttpUrl};
    use crate::workload::{AsyncContext, BlockingContext, TaskInput, Workload};
    use brigade_proto::Output;
    use std::collections::HashMap;

    fn url(t: &TestTarget, path: &str) -> HttpUrl {
        HttpUrl::parse(&t.url(path)).unwrap()
    }

    #[test]
    fn fast_body_is_exactly_as_specified() {
        assert_eq!(FAST_BODY.len(), 1024);
        assert!(FAST_BODY[..1023].iter().all(|&b| b == b'x'));
        assert_eq!(FAST_BODY[1023], b'\n');
    }

    #[test]
    fn slow_delay_parses_defaults_and_bounds() {
        assert_eq!(slow_delay(None), Ok(100));
        assert_eq!(slow_delay(Some("x=1")), Ok(100));
        assert_eq!(slow_delay(Some("x=1&ms=5")), Ok(5));
        assert_eq!(slow_delay(Some("ms=60000")), Ok(60_000));
        assert!(slow_delay(Some("ms=60001"))
            .unwrap_err()
            .contains("0..=60000"));
        assert!(slow_delay(Some("ms=soon")).is_err());
    }

    #[test]
    fn ratings_are_fnv1a_of_the_name_and_queries_decode() {
        // FNV-1a 64 of "" is the offset basis; of "a" a published value.
        assert_eq!(rating_of(""), 1 + 0xcbf2_9ce4_8422_2325 % 5);
        assert_eq!(rating_of("a"), 1 + 0xaf63_dc4c_8601_ec8c % 5);
        for name in ["Chez Panisse", "Noma", "Café de Flore", "L'As du Fallafel"] {
            assert!((1..=5).contains(&rating_of(name)), "{name}");
        }
        assert_eq!(
            rating_query(Some("name=Caf%C3%A9+de+Flore")),
            Ok(("Café de Flore".to_string(), RATING_DEFAULT_MS))
        );
        assert_eq!(
            rating_query(Some("ms=5&name=A%26B%3DC")),
            Ok(("A&B=C".to_string(), 5))
        );
        assert!(rating_query(None).unwrap_err().contains("name="));
        assert!(rating_query(Some("name=")).unwrap_err().contains("name="));
        assert!(rating_query(Some("name=%zz")).unwrap_err().contains("%XX"));
        assert!(rating_query(Some("name=%4")).unwrap_err().contains("%XX"));
        assert!(rating_query(Some("name=%FF"))
            .unwrap_err()
            .contains("UTF-8"));
        assert!(rating_query(Some("name=x&ms=60001"))
            .unwrap_err()
            .contains("0..=60000"));
    }

    #[test]
    fn blocking_client_gets_fast_slow_and_errors_over_one_connection() {
        let target = TestTarget::start();
        let mut client = HttpClient::new();
        for _ in 0..3 {
            let r = client.get(&url(&target, "/fast")).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, &FAST_BODY[..]);
        }
        let r = client.get(&url(&target, "/slow?ms=5")).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 1024));
        let r = client.get(&url(&target, "/nope")).unwrap();
        assert_eq!(r.status, 404);
        let r = client.get(&url(&target, "/slow?ms=70000")).unwrap();
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(r.body).contains("60000"));
        // Keep-alive: every request above went over the first connection.
        assert_eq!(client.connections_opened(), 1);
    }

    #[test]
    fn http_get_workload_checks_status_and_length_on_blocking_slots() {
        let target = TestTarget::start();
        let spec = |path: &str, extra: &[(&str, &str)]| {
            let mut args: HashMap<String, String> = extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            args.insert("url".into(), target.url(path));
            Workload::from_spec("http-get", &args).unwrap()
        };
        let mut ctx = BlockingContext::new();
        let input = TaskInput::range(0, 0, 1);
        let ok = spec("/fast", &[("expect-len", "1024")]);
        assert_eq!(ok.run_blocking(&input, &mut ctx), Ok(Output::Int(1024)));
        assert_eq!(
            spec("/slow?ms=5", &[]).run_blocking(&input, &mut ctx),
            Ok(Output::Int(1024))
        );
        let e = spec("/missing", &[])
            .run_blocking(&input, &mut ctx)
            .unwrap_err();
        assert!(
            e.contains("status 404") && e.contains("expected 200"),
            "{e}"
        );
        let e = spec("/fast", &[("expect-len", "10")])
            .run_blocking(&input, &mut ctx)
            .unwrap_err();
        assert!(e.contains("1024 bytes") && e.contains("expected 10"), "{e}");
        assert_eq!(ctx.http.connections_opened(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_get_workload_works_on_a_current_thread_loop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stop_rx.await;
        }));
        let ctx = AsyncContext::new(4);
        let input = TaskInput::range(0, 0, 1);
        let get = |path: &str, len: Option<&str>| {
            let mut args = HashMap::new();
            args.insert("url".to_string(), format!("http://127.0.0.1:{port}{path}"));
            if let Some(len) = len {
                args.insert("expect-len".to_string(), len.to_string());
            }
            Workload::from_spec("http-get", &args).unwrap()
        };
        for _ in 0..3 {
            assert_eq!(
                get("/fast", Some("1024")).run_async(&input, &ctx).await,
                Ok(Output::Int(1024))
            );
        }
        assert_eq!(
            get("/slow?ms=5", None).run_async(&input, &ctx).await,
            Ok(Output::Int(1024))
        );
        let e = get("/x", None).run_async(&input, &ctx).await.unwrap_err();
        assert!(e.contains("status 404"), "{e}");
        let e = get("/fast", Some("3"))
            .run_async(&input, &ctx)
            .await
            .unwrap_err();
        assert!(e.contains("1024 bytes") && e.contains("expected 3"), "{e}");
        // Keep-alive: one task at a time, so one pooled connection served all.
        assert_eq!(ctx.http.connections_opened(), 1);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
