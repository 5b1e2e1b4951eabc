//! Spawns the real `openframe-server` binary and reads its startup summary.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a start may take (debug build, argon2 hash of the owner password).
const START_LIMIT: Duration = Duration::from_secs(60);

/// The binary with a clean `OPENFRAME_*` environment.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openframe-server"));
    for (name, _) in openframe_server::config::ENV_VARS {
        cmd.env_remove(name);
    }
    cmd.env_remove("OPENFRAME_CONFIG");
    cmd
}

/// A running server process.
pub struct Spawned {
    pub child: Child,
    /// The summary lines, `key: value` (e.g. `owner password`).
    pub summary: HashMap<String, String>,
    /// Every stdout line read so far.
    pub stdout: Vec<String>,
    pub base: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Spawned {
    /// `serve --listen 127.0.0.1:0 --data-dir DIR` plus `extra` args and `env`.
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = command();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("OPENFRAME_LOG_LEVEL", "info,openframe_server=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn openframe-server");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + START_LIMIT;
        // The summary ends with the registration secret (first start) or the "exists" line.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains("registration secret:")
                        || line.contains("exists (created on an earlier start");
                    lines.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let err = stderr.join().unwrap_or_default();
                    panic!("no startup summary; stdout: {lines:#?}\nstderr: {err}");
                }
            }
        }
        let summary = lines
            .iter()
            .filter_map(|l| l.trim().split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect::<HashMap<_, _>>();
        let base = summary["server"].trim_end_matches('/').to_owned();
        Self {
            child,
            summary,
            stdout: lines,
            base,
            stderr: Some(stderr),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.summary.get(key).map(String::as_str)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit; returns the status and stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that never reuses a proxy from the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Registers the machine `ws-01` with the registration `secret`; the status and JSON body.
pub async fn enroll(server: &Spawned, secret: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let response = http()
        .post(server.url("/clients/api/agents/register"))
        .header("X-Initial-Key", secret)
        .json(&serde_json::json!({"hostname": "ws-01", "agentVersion": "1.0.0", "osType": "LINUX"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap();
    (status, body)
}
