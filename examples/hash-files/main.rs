//! A CPU-bound task of your own: hash files. Each task reads one file (its
//! input: a path, one per line of the inputs file) and returns its size and
//! 64-bit FNV-1a hash. The task is a plain blocking function: process and
//! thread slots run it on every core (see README.md here).
//!
//! Run it as `cargo run --example hash-files -- --coordinator URL`; it takes
//! every flag of `brigade worker`.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use brigade::task::{sync_task, Kind, Reduction, Registry, TaskContext, WorkloadDef};
use serde::Serialize;

/// A task's output.
#[derive(Serialize)]
struct FileHash {
    path: PathBuf,
    bytes: u64,
    /// The 64-bit FNV-1a hash of the file's bytes, 16 hex digits.
    fnv1a64: String,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Hashes the file at `path`, reading it in 64 KiB blocks.
fn hash_file(path: PathBuf, _: &TaskContext) -> Result<FileHash, String> {
    let mut file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut block = vec![0u8; 64 * 1024];
    let (mut hash, mut bytes) = (FNV_OFFSET, 0u64);
    loop {
        let n = match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for &b in &block[..n] {
            hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        bytes += n as u64;
    }
    Ok(FileHash {
        path,
        bytes,
        fnv1a64: format!("{hash:016x}"),
    })
}

fn main() -> ExitCode {
    let mut registry = Registry::builtin();
    registry
        .register(sync_task(
            WorkloadDef::new(
                "hash-file",
                Kind::Cpu,
                Reduction::List,
                "a file's size and 64-bit FNV-1a hash (input: its path)",
            ),
            hash_file,
        ))
        .expect("the hash-file workload is well defined");
    brigade::worker::main(registry)
}
