//! A server binary the tests run on a loopback port, in its own process group
//! so that its workers stop with it, its output appended to a log file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LoopbackServer {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

/// A port free now; the server binds it a moment later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `signal` to the process group `pid` leads.
pub fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .status();
}

impl LoopbackServer {
    pub fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> LoopbackServer {
        use std::os::unix::process::CommandExt;
        // Appending: a restarted server's log follows the one it replaces.
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        LoopbackServer {
            name,
            child,
            log,
            stopped: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until GET `probe` answers at all.
    pub fn wait_ready(&mut self, probe: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log());
            }
            if ureq::get(probe).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{} did not answer {probe} within {within:?}: {}",
            self.name,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server and its workers with `signal` (`KILL` for a crash).
    pub fn stop(&mut self, signal: &str) {
        if !self.stopped {
            signal_group(self.child.id(), signal);
            let _ = self.child.wait();
            self.stopped = true;
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop("TERM");
    }
}
