//! A real MLflow tracking server on loopback, from the venv
//! `tools/setup-mlflow.sh` makes, with its SQLite store and artifact root in a
//! temporary directory that outlives a restart; stopped (with its workers)
//! when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::loopback::{LoopbackServer, free_port};

pub struct MlflowServer {
    server: LoopbackServer,
    pub url: String,
    mlflow: PathBuf,
    dir: tempfile::TempDir,
}

impl MlflowServer {
    /// Starts the server; `ready` waits until it answers.
    pub fn start() -> MlflowServer {
        let mlflow = std::env::var_os("DECANT_MLFLOW")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "DECANT_MLFLOW is not set: run `bash tools/setup-mlflow.sh` and export \
                 DECANT_MLFLOW=~/.cache/decant/mlflow-venv/bin/mlflow (tools/test.sh does both)"
                )
            });
        assert!(
            mlflow.is_file(),
            "DECANT_MLFLOW={} is not a file",
            mlflow.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let (server, url) = Self::spawn(&mlflow, &dir);
        MlflowServer {
            server,
            url,
            mlflow,
            dir,
        }
    }

    fn spawn(mlflow: &std::path::Path, dir: &tempfile::TempDir) -> (LoopbackServer, String) {
        let port = free_port();
        let mut command = Command::new(mlflow);
        command
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"));
        let server = LoopbackServer::spawn("mlflow server", command, dir.path().join("server.log"));
        (server, format!("http://127.0.0.1:{port}"))
    }

    pub fn ready(&mut self) {
        self.server
            .wait_ready(&format!("{}/health", self.url), Duration::from_secs(240));
    }

    /// The server's process group, for a test to kill it at a moment of its choosing.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Kills the server (as a crash would) and starts it again, on another
    /// port, with the same store and artifacts; waits until it answers.
    pub fn restart(&mut self) {
        self.server.stop("KILL");
        (self.server, self.url) = Self::spawn(&self.mlflow, &self.dir);
        self.ready();
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let mut request = ureq::get(format!("{}{endpoint}", self.url));
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        let mut reply = request
            .call()
            .unwrap_or_else(|e| panic!("GET {endpoint}: {e}"));
        reply.body_mut().read_json().unwrap()
    }

    pub fn post(&self, endpoint: &str, body: &Value) -> Value {
        let mut reply = ureq::post(format!("{}{endpoint}", self.url))
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {endpoint}: {e}"));
        reply.body_mut().read_json().unwrap()
    }

    /// An artifact's bytes, through the server's artifact proxy.
    pub fn artifact(&self, path: &str) -> Vec<u8> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.url);
        let mut reply = ureq::get(url)
            .call()
            .unwrap_or_else(|e| panic!("artifact {path}: {e}"));
        reply
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    }
}
