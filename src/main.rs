//! `brigade`: one binary, thin CLI. Every subcommand wires the crates together.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "brigade", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP target for I/O workloads: GET /fast and GET /slow?ms=N.
    IoTarget {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
    },
    /// Executor child process (spawned by a worker; speaks frames on stdin/stdout).
    #[command(hide = true)]
    Executor,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Executor => std::process::exit(brigade_worker::exec::child::run_stdio()),
        Command::IoTarget { listen } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen).await?;
                println!("brigade io-target listening on http://{}", listener.local_addr()?);
                brigade_worker::io_target::serve(listener, std::future::pending::<()>()).await?;
                anyhow::Ok(())
            })
        }
    }
}
