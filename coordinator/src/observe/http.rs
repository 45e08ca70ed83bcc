//! The coordinator's HTTP port (`--http-listen`): `/` the dashboard page,
//! `/api/state` its JSON, `/metrics` Prometheus text. hyper 1's HTTP/1
//! server (hyper-util's tokio glue), which the workspace already builds for
//! the worker's io-target and http-get: three fixed GET routes need no
//! router. Every request asks the actor once, like a gRPC status call.
//!
//! Unauthenticated, read-only: it shows job and worker names, counts and
//! error messages, never results or tokens. Keep it on loopback or a
//! private network (SECURITY.md).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::dashboard::DashboardState;
use crate::actor::Request;

/// The dashboard page: served with the state of the moment in it, then
/// refreshed by its own script from `/api/state` every second.
const PAGE: &str = include_str!("dashboard.html");

/// Serves `listener` until the task running this is aborted (which also
/// ends every open connection: they live in this task's [`JoinSet`], so
/// none outlives it holding a sender to the actor).
pub(crate) async fn serve(listener: TcpListener, actor: mpsc::UnboundedSender<Request>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    continue;
                }
            },
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let actor = actor.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let actor = actor.clone();
                async move { Ok::<_, Infallible>(route(req, &actor).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    req: HttpRequest<Incoming>,
    actor: &mpsc::UnboundedSender<Request>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
    }
    match req.uri().path() {
        "/" => match ask(actor, Request::Dashboard).await {
            Some(state) => respond(StatusCode::OK, "text/html; charset=utf-8", page(&state).into()),
            None => stopping(),
        },
        "/metrics" => match ask(actor, Request::Metrics).await {
            Some(snapshot) => respond(
                StatusCode::OK,
                super::metrics::CONTENT_TYPE,
                super::metrics::encode(snapshot).into(),
            ),
            None => stopping(),
        },
        "/api/state" => match ask(actor, Request::Dashboard).await {
            Some(state) => match serde_json::to_vec(&state) {
                Ok(body) => respond(StatusCode::OK, "application/json", body.into()),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
            },
            None => stopping(),
        },
        other => plain(
            StatusCode::NOT_FOUND,
            &format!("no page {other:?} here: / (dashboard), /api/state (JSON) and /metrics (Prometheus) are\n"),
        ),
    }
}

/// The page with `state` in it (inside its script: `<` escaped, so no
/// text in a job or worker name can end the script element).
fn page(state: &DashboardState) -> String {
    let json = serde_json::to_string(state)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c");
    PAGE.replacen("/*STATE*/null", &json, 1)
}

/// Asks the actor; `None` once it has stopped.
async fn ask<T>(
    actor: &mpsc::UnboundedSender<Request>,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Option<T> {
    let (reply, rx) = oneshot::channel();
    actor.send(make(reply)).ok()?;
    rx.await.ok()
}

fn stopping() -> Response<Full<Bytes>> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "the coordinator is stopping\n",
    )
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(text.as_bytes()),
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        content_type.parse().expect("a valid header value"),
    );
    headers.insert(
        CACHE_CONTROL,
        "no-store".parse().expect("a valid header value"),
    );
    response
}
