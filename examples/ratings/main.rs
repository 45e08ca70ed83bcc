//! The blog post's I/O example as a brigade worker of your own: one
//! restaurant's rating per task, fetched over HTTP from a slow web service
//! (`brigade io-target`'s `GET /rating?name=NAME&ms=N`). The task is an
//! `async fn`: async slots run hundreds at once on one thread, thread and
//! process slots one per slot, which is the lesson (see README.md here).
//!
//! Run it as `cargo run --example ratings -- --coordinator URL`; it takes
//! every flag of `brigade worker`.

use std::process::ExitCode;

use brigade::task::{
    async_task, ArgDef, ArgType, Kind, Reduction, Registry, TaskContext, WorkloadDef,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// The job's arguments (`--arg url=... --arg ms=...`), checked by brigade
/// against the definition in `main` before any task runs.
#[derive(Deserialize)]
struct Args {
    url: String,
    ms: u64,
}

/// A task's output, and what the service answers.
#[derive(Serialize, Deserialize)]
struct Rating {
    name: String,
    rating: u64,
}

type Http = Client<HttpConnector, Empty<Bytes>>;

thread_local! {
    // One pool of kept-alive connections per slot thread: the async slots'
    // event loop shares one, each thread slot (and each process slot's
    // executor) has its own, driven by that thread's runtime.
    static HTTP: Http = Client::builder(TokioExecutor::new()).build_http();
}

/// Fetches `name`'s rating from the service at the job's `url`.
async fn rating(name: String, ctx: TaskContext) -> Result<Rating, String> {
    let args: Args = ctx.args_as()?;
    let uri = format!(
        "{}/rating?name={}&ms={}",
        args.url.trim_end_matches('/'),
        query_escape(&name),
        args.ms
    );
    let uri: hyper::Uri = uri.parse().map_err(|e| format!("bad URL {uri}: {e}"))?;
    let response = HTTP
        .with(Http::clone)
        .get(uri.clone())
        .await
        .map_err(|e| format!("GET {uri}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {uri}: the body broke off: {e}"))?
        .to_bytes();
    if !status.is_success() {
        let why = String::from_utf8_lossy(&body);
        return Err(format!("GET {uri}: status {status}: {}", why.trim()));
    }
    let answer: Rating = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {uri}: the answer is not a rating: {e}"))?;
    if answer.name != name {
        return Err(format!(
            "GET {uri}: asked for {name:?}, got the rating of {:?}",
            answer.name
        ));
    }
    Ok(answer)
}

/// `text` for a URL's query: every byte but the unreserved ones as `%XX`.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() -> ExitCode {
    let mut registry = Registry::builtin();
    registry
        .register(async_task(
            WorkloadDef::new(
                "rating",
                Kind::Io,
                Reduction::List,
                "a restaurant's rating (input: its name) from the web service at url",
            )
            .arg(
                ArgDef::new(
                    "url",
                    ArgType::Url,
                    "the service's base URL, e.g. http://127.0.0.1:8088",
                )
                .required(),
            )
            .arg(
                ArgDef::u64(
                    "ms",
                    0,
                    60_000,
                    "how long the service takes per request (ms)",
                )
                .default("50"),
            ),
            rating,
        ))
        .expect("the rating workload is well defined");
    brigade::worker::main(registry)
}
