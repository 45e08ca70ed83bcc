//! Local clusters: binding a listener, the URL that reaches it, the
//! `brigade worker` command line and this binary as the executor program
//! (shared with the CLI's `up`, `coordinator` and `demo`); the bench's own
//! cluster: the io-target as a child process, an embedded coordinator in this
//! process with N `brigade worker` child processes (or an existing cluster
//! reached by URL), and the start-up measurement.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brigade_client::{Client, WorkerInfo};
use brigade_coordinator::CoordinatorConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Slots of each kind a local worker gets (`worker`, `up`, `demo`, `bench`).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    /// Executor child processes (process slots).
    pub procs: usize,
    /// OS threads in the worker process (thread slots).
    pub threads: usize,
    /// Tasks in flight on the worker's event loop (async slots).
    pub async_slots: usize,
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

/// The arguments of a `brigade worker` this process starts: its link, name,
/// slots and spin window (`idle_spin::process_window()`, this process's own).
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

/// The program of local workers, executors and the io-target: this very
/// binary (`brigade`).
pub fn executor_program() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("could not find the brigade binary to run executors")
}

/// The HTTP target, as a child process so that its CPU time and memory are
/// not counted as the cluster's.
pub struct IoTarget {
    child: Child,
    pub url: String,
}

impl IoTarget {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for IoTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `brigade io-target` on a free loopback port and reads its address
/// from the line it prints.
pub fn start_io_target() -> anyhow::Result<IoTarget> {
    let mut child = Command::new(executor_program()?)
        .args(["io-target", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("could not start the io-target")?;
    let stdout = child.stdout.take().context("io-target has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .map(str::to_string);
    match url {
        Some(url) => Ok(IoTarget { child, url }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("io-target printed {line:?} instead of its address")
        }
    }
}

/// Polls the coordinator until at least `n` workers are linked.
pub async fn wait_for_workers(
    client: &mut Client,
    n: usize,
    deadline: Duration,
) -> anyhow::Result<Vec<WorkerInfo>> {
    let start = Instant::now();
    loop {
        let workers = client.workers().await.context("could not list workers")?;
        if workers.len() >= n && n > 0 {
            return Ok(workers);
        }
        if start.elapsed() > deadline {
            bail!(
                "{} of {n} worker(s) linked to the coordinator within {deadline:?}",
                workers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A coordinator in this process plus `brigade worker` children.
pub(crate) struct LocalCluster {
    pub url: String,
    /// From before the coordinator's bind until every worker is linked
    /// (executors spawned and connected).
    pub ready: Duration,
    stop: watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    workers: Vec<tokio::process::Child>,
}

impl LocalCluster {
    /// Starts the coordinator on a free loopback port and `n` workers with
    /// `slots` each (offering `exec` when `allow_exec`), and waits until all
    /// of them are linked.
    pub async fn start(
        n: usize,
        slots: Slots,
        allow_exec: bool,
    ) -> anyhow::Result<(LocalCluster, Client)> {
        let started = Instant::now();
        let listener = bind("127.0.0.1:0").await?;
        let url = url_of(listener.local_addr()?);
        let (stop, mut rx) = watch::channel(false);
        let server = tokio::spawn(async move {
            let config = CoordinatorConfig {
                workloads: brigade_worker::workload::builtin_catalog(),
                ..CoordinatorConfig::default()
            };
            brigade_coordinator::serve(listener, config, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
        });
        let exe = executor_program()?;
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            workers.push(
                tokio::process::Command::new(&exe)
                    .args(worker_args(
                        &url,
                        &format!("bench-{}", i + 1),
                        slots,
                        brigade_worker::idle_spin::process_window(),
                    ))
                    .args(["--connect-timeout-s", "15"])
                    // The bench's own coordinator, on loopback, does not
                    // authenticate workers.
                    .args(
                        allow_exec
                            .then_some(["--allow-exec", "--insecure"])
                            .into_iter()
                            .flatten(),
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    // Workers log every link and drain at info; the bench
                    // output is the table, so only their warnings show.
                    .env(
                        "BRIGADE_LOG",
                        std::env::var("BRIGADE_LOG").unwrap_or_else(|_| "warn".into()),
                    )
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("could not start bench worker {}", i + 1))?,
            );
        }
        let mut cluster = LocalCluster {
            url,
            ready: Duration::ZERO,
            stop,
            server,
            workers,
        };
        let linked = async {
            let mut client = Client::connect(&cluster.url).await?;
            wait_for_workers(&mut client, n, Duration::from_secs(30)).await?;
            anyhow::Ok(client)
        }
        .await;
        match linked {
            Ok(client) => {
                cluster.ready = started.elapsed();
                Ok((cluster, client))
            }
            Err(e) => {
                cluster.stop().await;
                Err(e)
            }
        }
    }

    /// Workers drain on SIGTERM (their executors stop with them), then the
    /// coordinator stops. A worker that does not exit in time is killed.
    pub async fn stop(mut self) {
        for w in &self.workers {
            if let Some(pid) = w.id() {
                // SAFETY: plain kill(2) on a child we spawned and have not reaped.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
        for w in &mut self.workers {
            if tokio::time::timeout(Duration::from_secs(10), w.wait())
                .await
                .is_err()
            {
                let _ = w.kill().await;
            }
        }
        let _ = self.stop.send(true);
        match (&mut self.server).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "bench coordinator stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "bench coordinator task failed"),
            Ok(Ok(())) => {}
        }
    }
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
