//! A directory's lock file, holding the holder's pid: a run directory has one
//! `decant` process working in it at a time, a registry one publish. A lock
//! whose process is gone (killed, crashed) is stale and taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{}: {what} is in use by decant pid {pid}; wait for it to finish, or use another directory",
        path.display()
    )]
    Held {
        path: PathBuf,
        what: String,
        pid: u32,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Removes its file when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes `path` for this process; `what` names the locked thing in errors.
    pub fn take(path: &Path, what: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id())
                        .and_then(|()| file.sync_all())
                        .map_err(io)?;
                    return Ok(Lock {
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(path).map_err(io)?;
                    match holder.trim().parse::<u32>() {
                        Ok(pid) if is_alive(pid) => {
                            return Err(LockError::Held {
                                path: path.to_owned(),
                                what: what.to_owned(),
                                pid,
                            });
                        }
                        // A dead holder, or a file torn by a crash before its pid was written.
                        _ => std::fs::remove_file(path).map_err(io)?,
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other(
            "the lock file keeps reappearing; another process is taking it",
        )))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Nothing to report to: a lock left behind is detected as stale.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process `pid` exists. Without `/proc` every holder counts as alive.
fn is_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}
