//! `cargo bench --bench export`: the delivery-log CSV of a district's year — 250,000 residents,
//! 11 occurrences each, 2,750,000 deliveries (`-- --persons N --occurrences K` for another
//! size) — downloaded over HTTP from the real `loa run` process, on the SQLite default. Prints
//! the download's time, its rows and the peak resident memory of `loa run` beside the 150 MB
//! target, and fails when over it.
//!
//! The database is built set-wise (as the pipeline benchmark's synthetic year); `loa run` and
//! `loa token create` are the binary Cargo builds for benchmarks (`CARGO_BIN_EXE_loa`), run in
//! a folder of their own with the shipped configuration. Memory is `VmHWM` of the process
//! (its peak since it started: migrations, the engine, the download), and the highest `VmRSS`
//! seen while the download ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use loa::app::Setup;
use loa::config::Env;

const TARGET_MB: f64 = 150.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> anyhow::Result<usize> {
        Ok(args
            .iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let persons = arg("--persons", 250_000)?;
    let occurrences = arg("--occurrences", 11)?;

    let dir = std::env::temp_dir().join("loa-bench-export");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("loa.toml"), dir.join("loa.toml"))?;
    for folder in ["schedules", "messages"] {
        copy_dir(&repo.join(folder), &dir.join(folder))?;
    }
    let database_url = format!("sqlite://{}", dir.join("loa.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env = [
        ("LOA_DATABASE_URL", database_url.clone()),
        ("LOA_HTTP_ADDR", format!("127.0.0.1:{port}")),
    ];

    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let deliveries = runtime.block_on(async {
        let setup = Setup::load(
            &dir.join("loa.toml"),
            &Env::default().with("LOA_DATABASE_URL", database_url.clone()),
        )
        .map_err(|p| anyhow::anyhow!("{p}"))?;
        let db = setup.open_database().await?;
        loa::perf::seed(&db, &setup.config, persons).await?;
        let deliveries = loa::perf::synthesise_year(&db, occurrences).await?;
        db.close().await;
        anyhow::Ok(deliveries)
    })?;
    println!(
        "database: {persons} persons, {deliveries} deliveries, built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let loa = env!("CARGO_BIN_EXE_loa");
    let token = Command::new(loa)
        .args([
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "bench-export",
        ])
        .current_dir(&dir)
        .envs(env.iter().cloned())
        .stderr(Stdio::null())
        .output()
        .context("loa token create")?;
    anyhow::ensure!(token.status.success(), "loa token create failed");
    let token = String::from_utf8(token.stdout)?.trim().to_string();

    let log = std::fs::File::create(dir.join("loa.log"))?;
    let server = Server(
        Command::new(loa)
            .arg("run")
            .current_dir(&dir)
            .envs(env.iter().cloned())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("loa run")?,
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");

    let result = runtime.block_on(async {
        let http = reqwest::Client::new();
        let up = Instant::now();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            anyhow::ensure!(
                up.elapsed() < Duration::from_secs(60),
                "loa run did not answer /healthz; see {}",
                dir.join("loa.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before_mb = memory_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;

        // The highest VmRSS while the download runs, sampled every 20 ms.
        let running = Arc::new(AtomicBool::new(true));
        let highest = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (running, highest) = (Arc::clone(&running), Arc::clone(&highest));
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    if let Some(kb) = memory_kb(pid, "VmRSS:") {
                        highest.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let started = Instant::now();
        let mut r = http
            .get(format!("{base}/exports/deliveries.csv?period=year&year=2023"))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "export: {}", r.status());
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = r.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        running.store(false, Ordering::Relaxed);
        sampler.join().ok();
        let rows = lines.saturating_sub(1);
        let peak_mb = memory_kb(pid, "VmHWM:").context("VmHWM of loa run")? as f64 / 1024.0;
        let sampled_mb = highest.load(Ordering::Relaxed) as f64 / 1024.0;
        println!(
            "{:<44} {:>8.1} s    {rows} rows, {:.0} MB of CSV, {:.0} rows/s",
            "export the delivery log (SQLite, HTTP)",
            seconds,
            bytes as f64 / 1e6,
            rows as f64 / seconds,
        );
        println!(
            "{:<44} {:>8.0} MB   target ≤ {TARGET_MB:.0} MB (VmHWM; {before_mb:.0} MB before the export, highest VmRSS during it {sampled_mb:.0} MB)",
            "peak memory of loa run",
            peak_mb,
        );
        anyhow::ensure!(
            rows as i64 == deliveries,
            "the file has {rows} rows for {deliveries} deliveries"
        );
        anyhow::Ok(peak_mb)
    });
    drop(server);
    let peak_mb = result?;
    std::io::stdout().flush()?;
    if peak_mb > TARGET_MB {
        eprintln!("peak memory {peak_mb:.0} MB is over the {TARGET_MB:.0} MB target");
        std::process::exit(1);
    }
    Ok(())
}

/// `loa run`, stopped when the benchmark ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kB` line (`VmHWM:`, `VmRSS:`) of `/proc/<pid>/status`.
fn memory_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn copy_dir(from: &Path, to: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
