//! One coordinator per state file: an exclusive `flock` on a sidecar
//! `FILE.lock` (SQLite's own locks are POSIX record locks on the database,
//! per process and released by any close, so they cannot be this lock),
//! taken before the file is opened and held for the store's life. The
//! holder writes its pid into the lock file so a refused second coordinator
//! can say who holds it. The lock file stays behind; only the lock matters
//! (the kernel releases it when its holder exits, however it ends).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::store::{StoreError, HINT_WRITE};

const HINT_IN_USE: &str =
    "stop that coordinator first, or give this one another state file with --state FILE";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock of `state` or says who holds it.
    pub fn acquire(state: &Path) -> Result<StateLock, StoreError> {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let fail = |what: String, hint: &'static str| StoreError::Open {
            path: state.to_path_buf(),
            what,
            hint,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                fail(
                    format!("cannot open its lock file {}: {e}", path.display()),
                    HINT_WRITE,
                )
            })?;
        // SAFETY: flock on an fd we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(fail(
                    format!("cannot lock {}: {err}", path.display()),
                    HINT_WRITE,
                ));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "a process that has not written its pid yet".to_string(),
            };
            return Err(fail(
                format!(
                    "in use by another coordinator ({holder}, holding the lock on {})",
                    path.display()
                ),
                HINT_IN_USE,
            ));
        }
        let wrote = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = wrote {
            tracing::warn!(lock = %path.display(), error = %e, "cannot write this coordinator's pid into the state file's lock");
        }
        Ok(StateLock { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_naming_the_holder() {
        let dir = std::env::temp_dir().join(format!("brigade-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("s.db");
        let held = StateLock::acquire(&state).unwrap();
        assert_eq!(held.path(), dir.join("s.db.lock"));
        // flock locks belong to the open file: a second open conflicts even
        // within one process, as between two coordinators.
        let e = StateLock::acquire(&state).unwrap_err().to_string();
        assert!(e.contains(&state.display().to_string()), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("--state"), "{e}");
        drop(held);
        StateLock::acquire(&state).expect("free again once dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
