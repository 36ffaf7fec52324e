//! The benchmark harness at a tiny size: it keeps compiling and its figures stay sane. Nothing
//! here is timed against a target; that is `cargo bench --bench pipeline`.

mod common;

use common::repo_root;
use loa::app::Setup;
use loa::config::Env;
use loa::perf::{PerfOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_harness_runs_at_a_tiny_size() {
    let setup = Setup::load(&repo_root().join("loa.toml"), &Env::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = PerfOptions {
        sizes: vec![300],
        dispatch_messages: 200,
        hug_seconds: 3,
        report_occurrences: 3,
        dir: dir.path().to_path_buf(),
        postgres_url: None,
        only: None,
    };
    let figures = run(&setup, &options).await.unwrap();
    let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("fan-out 300")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("reach report 300 persons / 1200 deliveries")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("dispatch 200 messages")),
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("limit-hugging"))
            .count(),
        2
    );
    for f in &figures {
        assert!(f.value > 0.0, "{f}");
    }
    // Targets are the benchmark's business (a loaded CI machine is no place to judge them);
    // the limit itself is tested in tests/delivery.rs.
}
