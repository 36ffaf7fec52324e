//! `cargo bench --bench pipeline`: fan-out, dispatch, limit-hugging, reach report and memory at
//! district (250,000) and province (1,000,000) scale; `-- --national` adds 10,000,000;
//! `-- --only sizes|fanout|dispatch|hug` runs one part.
//! Each figure is printed beside the limit it chases, measured in the same run.
//!
//! Environment: `LOA_BENCH_HUG_SECONDS` (default 60), `LOA_BENCH_DISPATCH` (messages, default
//! 20000), `LOA_TEST_POSTGRES_URL` (two processes on PostgreSQL for the shared-limit figure).

use loa::app::Setup;
use loa::config::Env;
use loa::perf::{PerfOptions, run};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut sizes = vec![250_000, 1_000_000];
    if args.iter().any(|a| a == "--national") {
        sizes.push(10_000_000);
    }
    if let Some(only) = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
    {
        sizes = vec![only.parse()?];
    }
    let env_number = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let options = PerfOptions {
        sizes,
        dispatch_messages: env_number("LOA_BENCH_DISPATCH", 20_000) as usize,
        hug_seconds: env_number("LOA_BENCH_HUG_SECONDS", 60),
        report_occurrences: 10,
        dir: std::env::temp_dir().join("loa-bench"),
        postgres_url: std::env::var("LOA_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        only: args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .cloned(),
    };
    let setup = Setup::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loa.toml"),
        &Env::default(),
    )
    .map_err(|p| anyhow::anyhow!("{p}"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&setup, &options))?;
    Ok(())
}
