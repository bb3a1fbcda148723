//! A real OCI registry on loopback: Debian's docker-registry (the CNCF
//! distribution server), unpacked by `tools/setup-oci-registry.sh`, storing in
//! a temporary directory; stopped when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::loopback::{LoopbackServer, free_port};

pub struct OciRegistryServer {
    server: LoopbackServer,
    /// `127.0.0.1:PORT`.
    pub addr: String,
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
        assert!(
            binary.is_file(),
            "DECANT_OCI_REGISTRY={} is not a file",
            binary.display()
        );
        let addr = format!("127.0.0.1:{}", free_port());
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
        let mut command = Command::new(binary);
        command.arg("serve").arg(&config);
        let mut server =
            LoopbackServer::spawn("docker-registry", command, dir.path().join("registry.log"));
        server.wait_ready(&format!("http://{addr}/v2/"), Duration::from_secs(60));
        OciRegistryServer {
            server,
            addr,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// GET `/v2/{path}`, with `accept` as the Accept header.
    pub fn get(&self, path: &str, accept: &str) -> Vec<u8> {
        let url = format!("http://{}/v2/{path}", self.addr);
        let mut reply = ureq::get(url)
            .header("Accept", accept)
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        reply
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    }

    pub fn get_json(&self, path: &str, accept: &str) -> serde_json::Value {
        serde_json::from_slice(&self.get(path, accept)).unwrap()
    }

    /// The status GET `/v2/{path}` answers, for what must not exist.
    pub fn status(&self, path: &str, accept: &str) -> u16 {
        let url = format!("http://{}/v2/{path}", self.addr);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        agent
            .get(url)
            .header("Accept", accept)
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .status()
            .as_u16()
    }
}
