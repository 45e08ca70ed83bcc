//! Running the pieces: a coordinator, a worker node, and `brigade up` (a
//! coordinator plus N local worker processes), each until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use brigade_coordinator::{Coordinator, CoordinatorConfig};
use brigade_worker::node::{self, NodeConfig};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

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

/// Binds `addr`, saying clearly when that fails.
///
/// The accept backlog is deep (4,096, tokio's default is 1,024): an I/O run
/// opens thousands of connections at once, and a full queue drops SYNs that
/// the client only retries a second later.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let fail = || format!("could not listen on {addr}");
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .with_context(fail)?
        .collect();
    let mut last = None;
    for a in resolved {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let listener = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(LISTEN_BACKLOG)
        });
        match listener {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow::Error::new(e).context(fail()),
        None => anyhow::anyhow!("{}: the address resolves to nothing", fail()),
    })
}

const LISTEN_BACKLOG: u32 = 4096;

/// The `http://` URL clients use to reach a bound listener (an unspecified
/// address is reached through loopback).
pub fn url_of(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    format!("http://{ip}:{}", addr.port())
}

/// Runs a coordinator on `listener` until a signal.
pub async fn coordinator(listener: TcpListener, config: CoordinatorConfig) -> anyhow::Result<()> {
    let coordinator = Coordinator::open(config)?;
    let addr = listener.local_addr()?;
    println!("brigade coordinator listening on {}", url_of(addr));
    tracing::info!(%addr, "coordinator listening");
    coordinator
        .serve(listener, shutdown_signal())
        .await
        .context("coordinator failed")
}

/// The arguments of a `brigade worker` this process starts: its link, name,
/// slots and spin window (`spin::process_window()`, this process's own).
pub fn worker_args(url: &str, name: &str, slots: Slots, spin: Duration) -> Vec<String> {
    let mut args: Vec<String> = ["worker", "--coordinator", url, "--name", name]
        .map(String::from)
        .into();
    for (flag, n) in [
        ("--procs", slots.procs),
        ("--threads", slots.threads),
        ("--async", slots.async_slots),
    ] {
        args.extend([flag.to_string(), n.to_string()]);
    }
    if !spin.is_zero() {
        args.extend(["--spin-us".to_string(), spin.as_micros().to_string()]);
    }
    args
}

/// The executor command of local workers: this very binary.
pub fn executor_program() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("could not find the brigade binary to run executors")
}

/// Runs a worker node until a signal (then drains and exits).
pub async fn worker(config: NodeConfig) -> anyhow::Result<()> {
    node::run(config, shutdown_signal())
        .await
        .context("worker stopped")
}

/// Slot options shared by `worker`, `up` and `demo`.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub procs: usize,
    pub threads: usize,
    pub async_slots: usize,
}

/// `brigade up`: a coordinator here plus `workers` local worker processes,
/// until Ctrl-C; then the workers drain and the coordinator stops.
pub async fn up(
    listener: TcpListener,
    config: CoordinatorConfig,
    workers: usize,
    slots: Slots,
    allow_exec: bool,
) -> anyhow::Result<()> {
    let coordinator = Coordinator::open(config)?;
    let addr = listener.local_addr()?;
    let url = url_of(addr);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coordinator.serve(listener, async {
        let _ = stop_rx.await;
    }));
    let exe = executor_program()?;
    let mut children: Vec<Child> = Vec::with_capacity(workers);
    for i in 0..workers {
        let child = Command::new(&exe)
            .args(worker_args(
                &url,
                &format!("local-{}", i + 1),
                slots,
                brigade_worker::spin::process_window(),
            ))
            .args(allow_exec.then_some("--allow-exec"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start local worker {}", i + 1))?;
        children.push(child);
    }
    println!(
        "brigade up: coordinator on {url} with {workers} local worker(s) \
         ({} process, {} thread, {} async slots each); Ctrl-C to stop",
        slots.procs, slots.threads, slots.async_slots
    );
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
    fn started_workers_get_their_slots_and_the_spin_window_only_when_set() {
        let slots = Slots {
            procs: 2,
            threads: 3,
            async_slots: 64,
        };
        let args = worker_args("http://127.0.0.1:7070", "local-1", slots, Duration::ZERO);
        assert_eq!(
            args.join(" "),
            "worker --coordinator http://127.0.0.1:7070 --name local-1 \
             --procs 2 --threads 3 --async 64"
        );
        let spun = worker_args("http://h:1", "b", slots, Duration::from_micros(300));
        assert_eq!(spun[spun.len() - 2..], ["--spin-us", "300"]);
    }
}
