//! Running the pieces: a coordinator, a worker node, and `brigade up` (a
//! coordinator plus N local worker processes, which die with it whatever
//! ends it: PR_SET_PDEATHSIG), each until Ctrl-C / SIGTERM.
//! Binding, URLs and the worker command line are shared with the lab
//! (`brigade_lab::cluster`).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use brigade_coordinator::{Coordinator, CoordinatorConfig};
use brigade_worker::node::{self, NodeConfig};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use brigade_lab::cluster::worker_args;
pub use brigade_lab::cluster::{bind, executor_program, url_of, Slots};

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

/// What a coordinator on a non-loopback address lacks, or nothing.
pub struct Exposure {
    pub tls: bool,
    pub auth: bool,
    /// `--insecure`: listen anyway.
    pub insecure: bool,
}

/// Refuses a listener on a non-loopback address that lacks TLS or tokens,
/// unless `--insecure`: anyone who reaches it could submit jobs (commands,
/// on `--allow-exec` workers), read every result or link a rogue worker.
pub fn check_exposure(listener: &TcpListener, e: &Exposure) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if addr.ip().is_loopback() || e.insecure || (e.tls && e.auth) {
        return Ok(());
    }
    let missing = match (e.tls, e.auth) {
        (false, false) => "without TLS and without tokens",
        (false, true) => "without TLS (tokens would cross the network in clear)",
        _ => "without tokens (anyone who connects may submit jobs and link workers)",
    };
    anyhow::bail!(
        "refusing to listen on {addr} {missing}: anyone who reaches this port could submit \
         jobs, read every result and link a rogue worker. Pass --tls-cert/--tls-key (see \
         `brigade certs`) and --auth-file (see `brigade token create`), listen on \
         127.0.0.1, or pass --insecure if the network is yours alone (SECURITY.md)"
    )
}

/// Binds `--http-listen`'s address, if given. A port beyond loopback is
/// allowed (it is read-only) but logged: anyone who reaches it sees job and
/// worker names, counts and error messages.
pub async fn bind_http(addr: Option<&str>) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = bind(addr).await.context("--http-listen")?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            %local,
            "the dashboard and metrics port is unauthenticated: anyone who reaches {local} sees \
             job and worker names, counts and error messages; keep it on a private network"
        );
    }
    Ok(Some(listener))
}

/// Serves the dashboard and metrics on `http` (if any) too, and says where.
fn with_http(coordinator: Coordinator, http: Option<TcpListener>) -> anyhow::Result<Coordinator> {
    let Some(http) = http else {
        return Ok(coordinator);
    };
    let url = url_of(http.local_addr()?);
    tracing::info!(%url, "dashboard at /, JSON at /api/state, Prometheus metrics at /metrics");
    eprintln!("brigade dashboard on {url}/ (metrics at {url}/metrics)");
    Ok(coordinator.with_http(http))
}

/// Runs a coordinator on `listener` (and the dashboard and metrics on
/// `http`) until a signal.
pub async fn coordinator(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: CoordinatorConfig,
) -> anyhow::Result<()> {
    let tls = config.tls.is_some();
    let coordinator = with_http(Coordinator::open(config)?, http)?;
    let addr = listener.local_addr()?;
    println!(
        "brigade coordinator listening on {}",
        where_listening(addr, tls)
    );
    tracing::info!(%addr, "coordinator listening");
    coordinator
        .serve(listener, shutdown_signal())
        .await
        .context("coordinator failed")
}

/// Where a server bound to `addr` listens, for people: its URL with the
/// address it is bound to (the port it got for port 0), and for an
/// unspecified address (every interface) also the URL this host reaches
/// it by. The URL comes first: scripts read the first word.
pub fn where_listening(addr: std::net::SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let local = url_of(addr);
    let local = match local.strip_prefix("http://") {
        Some(rest) => format!("{scheme}://{rest}"),
        None => local,
    };
    if addr.ip().is_unspecified() {
        format!("{scheme}://{addr} (every interface; from this host: {local})")
    } else {
        local
    }
}

/// Runs a worker node until a signal (then drains and exits).
pub async fn worker(config: NodeConfig) -> anyhow::Result<()> {
    node::run(config, shutdown_signal())
        .await
        .context("worker stopped")
}

/// `brigade worker --count N`: N workers in this process, each its own
/// link to the coordinator (a connection, heartbeats, leases, slots), as
/// N worker processes would be; until a signal, then every link drains.
/// The first link that stops with an error stops them all.
pub async fn workers(configs: Vec<NodeConfig>) -> anyhow::Result<()> {
    use futures::FutureExt;
    use tracing::Instrument;
    let (Some(first), Some(last)) = (configs.first(), configs.last()) else {
        return Ok(());
    };
    println!(
        "brigade worker: {} links to {} ({} process, {} thread, {} async slots each), named {} … {}",
        configs.len(),
        first.coordinator,
        first.procs,
        first.threads,
        first.async_slots,
        first.name,
        last.name
    );
    let stop = shutdown_signal().boxed().shared();
    let mut links = tokio::task::JoinSet::new();
    for config in configs {
        let (name, stop) = (config.name.clone(), stop.clone());
        let span = tracing::info_span!("link", %name);
        links.spawn(
            async move {
                node::run(config, stop)
                    .await
                    .with_context(|| format!("worker {name} stopped"))
            }
            .instrument(span),
        );
    }
    while let Some(ended) = links.join_next().await {
        ended.context("a worker link panicked")??;
    }
    Ok(())
}

/// `brigade up`: a coordinator here plus `workers` local worker processes,
/// until Ctrl-C; then the workers drain and the coordinator stops.
pub async fn up(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: CoordinatorConfig,
    workers: usize,
    slots: Slots,
    allow_exec: bool,
) -> anyhow::Result<()> {
    let coordinator = with_http(Coordinator::open(config)?, http)?;
    let addr = listener.local_addr()?;
    let url = url_of(addr);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coordinator.serve(listener, async {
        let _ = stop_rx.await;
    }));
    let exe = executor_program()?;
    let mut children: Vec<Child> = Vec::with_capacity(workers);
    for i in 0..workers {
        let mut cmd = Command::new(&exe);
        // Whatever ends `up` (even SIGKILL) ends its workers, and with them
        // their executors and the commands their tasks started.
        brigade_worker::contain::die_with_parent(&mut cmd);
        let child = cmd
            .args(worker_args(
                &url,
                &format!("local-{}", i + 1),
                slots,
                brigade_worker::idle_spin::process_window(),
            ))
            // `up`'s coordinator does not authenticate its workers: exec is
            // for a cluster on loopback (`up` refuses other addresses
            // without --insecure).
            .args(
                allow_exec
                    .then_some(["--allow-exec", "--insecure"])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start local worker {}", i + 1))?;
        children.push(child);
    }
    println!(
        "brigade up: coordinator on {} with {workers} local worker(s) \
         ({} process, {} thread, {} async slots each); Ctrl-C to stop",
        where_listening(addr, false),
        slots.procs,
        slots.threads,
        slots.async_slots
    );
    tracing::info!(%addr, "coordinator listening");
    println!("try: brigade submit sum-squares --range 0..60000000 --chunk 1500000 --wait --coordinator {url}");
    shutdown_signal().await;
    eprintln!("stopping: workers drain, then the coordinator stops");
    for c in &children {
        if let Some(pid) = c.id() {
            // SAFETY: plain kill(2) on a child we spawned.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    for mut c in children {
        if tokio::time::timeout(Duration::from_secs(15), c.wait())
            .await
            .is_err()
        {
            let _ = c.kill().await;
        }
    }
    let _ = stop_tx.send(());
    server.await?.context("coordinator failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_says_the_address_it_is_bound_to() {
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            where_listening(at("127.0.0.1:7070"), false),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            where_listening(at("10.1.2.3:41234"), true),
            "https://10.1.2.3:41234"
        );
        assert_eq!(
            where_listening(at("0.0.0.0:7070"), false),
            "http://0.0.0.0:7070 (every interface; from this host: http://127.0.0.1:7070)"
        );
        assert_eq!(
            where_listening(at("[::]:7071"), true),
            "https://[::]:7071 (every interface; from this host: https://127.0.0.1:7071)"
        );
    }
}
