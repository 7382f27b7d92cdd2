//! One silo command at a time changes a workspace: a second one waits, then finds the
//! work done (image built, container running) instead of racing podman for the name.

use std::fs::{File, TryLockError};

use anyhow::{Context, Result};

use crate::safe_fs::Dir;

const LOCK_FILE: &str = ".lock";

/// Held while building, creating, starting, stopping or removing; released on drop.
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: File,
}

/// Locks `.silo/.lock` (never through a link), waiting for another silo if needed.
pub fn acquire(silo: &Dir) -> Result<WorkspaceLock> {
    let file = silo
        .lock_file(LOCK_FILE)
        .context("opening the workspace lock")?;
    let path = silo.join(LOCK_FILE);
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!("Waiting for another silo command on this workspace to finish...");
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(WorkspaceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(&Dir::open(dir.path()).unwrap()).unwrap();
        let path = dir.path().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = acquire(&Dir::open(&path).unwrap()).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "did not wait"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("got the lock after release");
        waiter.join().unwrap();
    }
}
