//! A tansu broker a test owns: started on a free loopback port with SQLite storage in a
//! directory the test gives, killed (SIGKILL) and restarted at will. Shared by the Kafka fault
//! tests (`kafka_faults.rs`, `processor_kafka.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker this test owns.
pub(crate) struct Tansu {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Tansu {
    /// Finds the binary, or `None` (after printing why) when tansu is not installed.
    pub(crate) fn find() -> Option<PathBuf> {
        if let Ok(bin) = std::env::var("OPENFRAME_TEST_TANSU_BIN") {
            return Some(PathBuf::from(bin));
        }
        let path = std::env::var_os("PATH")?;
        let found = std::env::split_paths(&path)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file());
        if found.is_none() {
            println!(
                "skipped: tansu is not installed (set OPENFRAME_TEST_TANSU_BIN or run scripts/test-services.sh)"
            );
        }
        found
    }

    pub(crate) fn start(bin: PathBuf, dir: &Path) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut tansu = Self {
            bin,
            dir: dir.to_owned(),
            port,
            child: None,
        };
        tansu.spawn();
        tansu
    }

    pub(crate) fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default();
                panic!("tansu exited with {status}: {log}");
            }
            assert!(Instant::now() < deadline, "tansu did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (SIGKILL: no graceful shutdown).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}
