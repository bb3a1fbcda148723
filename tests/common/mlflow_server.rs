//! A real MLflow tracking server on loopback, from the venv
//! `tools/setup-mlflow.sh` makes, with its SQLite store and artifact root in a
//! temporary directory; stopped (with its workers) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct MlflowServer {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MlflowServer {
    /// Starts the server; `ready` waits until it answers.
    pub fn start() -> MlflowServer {
        use std::os::unix::process::CommandExt;
        let mlflow = std::env::var_os("DECANT_MLFLOW").map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "DECANT_MLFLOW is not set: run `bash tools/setup-mlflow.sh` and export \
                 DECANT_MLFLOW=~/.cache/decant/mlflow-venv/bin/mlflow (tools/test.sh does both)"
            )
        });
        assert!(mlflow.is_file(), "DECANT_MLFLOW={} is not a file", mlflow.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(mlflow)
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.path().join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("mlflow server starts");
        MlflowServer { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir }
    }

    pub fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mlflow server exited ({status}): {}", self.log());
            }
            if ureq::get(format!("{}/health", self.url)).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("mlflow server did not answer within 240 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let mut request = ureq::get(format!("{}{endpoint}", self.url));
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        let mut reply = request.call().unwrap_or_else(|e| panic!("GET {endpoint}: {e}"));
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
        let mut reply = ureq::get(url).call().unwrap_or_else(|e| panic!("artifact {path}: {e}"));
        reply.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // The server runs its workers in its own process group: stop them all.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}
