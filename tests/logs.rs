//! `LOA_LOG_FORMAT`: the log lines a journal or a log shipper reads, from the binary itself.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::copy_of_repo;

fn loa(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loa"));
    command
        .current_dir(dir)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("LOA_KANNEL_URL");
    command
}

/// Kills the child on drop, so a failed assertion never leaves a server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_with_json_logs_writes_one_json_object_per_line() {
    let dir = copy_of_repo();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = loa(dir.path())
        .arg("run")
        .env("LOA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LOA_LOG", "info")
        .env("LOA_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Every line up to the web server's start is a JSON object with a level, a target and the
    // message at the top level.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no \"web server on\" line: {seen:#?}"));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no \"web server on\" line: {seen:#?}"));
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}; before it: {seen:#?}"));
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(event["level"].is_string(), "{line}");
        assert!(event["target"].is_string(), "{line}");
        let message = event["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no top-level message: {line}"))
            .to_string();
        seen.push(line);
        if message.contains("web server on") {
            assert_eq!(event["level"], "INFO");
            break;
        }
    }
}

#[test]
fn an_unknown_log_format_is_refused_with_the_variable_named() {
    let dir = copy_of_repo();
    let out = loa(dir.path())
        .arg("check")
        .env("LOA_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LOA_LOG_FORMAT") && err.contains("\"xml\""),
        "{err}"
    );

    // `text`, like unset, is today's format: `check` passes on the shipped files.
    let out = loa(dir.path())
        .arg("check")
        .env("LOA_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
