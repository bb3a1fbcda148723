//! A real OCI registry on loopback: Debian's docker-registry (the CNCF
//! distribution server), unpacked by `tools/setup-oci-registry.sh`, storing in
//! a temporary directory; stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OciRegistryServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OciRegistryServer {
    pub fn start() -> OciRegistryServer {
        let binary = std::env::var_os("DECANT_OCI_REGISTRY").map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "DECANT_OCI_REGISTRY is not set: run `bash tools/setup-oci-registry.sh` and export \
                 DECANT_OCI_REGISTRY=~/.cache/decant/docker-registry/usr/bin/docker-registry \
                 (tools/test.sh does both)"
            )
        });
        assert!(binary.is_file(), "DECANT_OCI_REGISTRY={} is not a file", binary.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("docker-registry starts");
        let mut server = OciRegistryServer { child, addr, log, _dir: dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            if ureq::get(format!("http://{}/v2/", self.addr)).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("docker-registry did not answer within 60 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `/v2/{path}`, with `accept` as the Accept header.
    pub fn get(&self, path: &str, accept: &str) -> Vec<u8> {
        let url = format!("http://{}/v2/{path}", self.addr);
        let mut reply = ureq::get(url).header("Accept", accept).call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        reply.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap()
    }

    pub fn get_json(&self, path: &str, accept: &str) -> serde_json::Value {
        serde_json::from_slice(&self.get(path, accept)).unwrap()
    }
}

impl Drop for OciRegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
