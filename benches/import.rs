//! `cargo bench --bench import`: a whole district's contact list (300,000 rows, `-- --rows N`
//! for another size) imported into the SQLite default, as `loa import contacts` does it, printed
//! beside its 30 s target on the project's 2-core machine.
//!
//! The list is written the way communes write them: Vietnamese headers under a title row,
//! communes by name (with and without diacritics), numbers with spaces, some with a pre-2018
//! prefix or a dropped leading zero, a gender and a birth year. A second run of the same file
//! (every row an update) is printed too, and first a dry run (reading and checking every row,
//! looking up which numbers are known: the import without its writes).

use std::time::Instant;

use loa::app::Setup;
use loa::audience::import::{ImportOptions, import_file};
use loa::config::Env;
use loa::perf::{peak_rss_mb, reset_peak_rss};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(300_000);
    let dir = std::env::temp_dir().join("loa-bench-import");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let base = Setup::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loa.toml"),
        &Env::default().with(
            "LOA_DATABASE_URL",
            format!("sqlite://{}", dir.join("loa.db").display()),
        ),
    )
    .map_err(|p| anyhow::anyhow!("{p}"))?;
    let file = dir.join("danh-sach-huyen.csv");
    std::fs::write(&file, district_list(&base, rows))?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = base.open_database().await?;
        for (pass, dry_run) in [
            ("dry run", true),
            ("first import", false),
            ("again (all updates)", false),
        ] {
            reset_peak_rss();
            let started = Instant::now();
            let bar = indicatif::ProgressBar::new(0);
            let report = import_file(
                &db,
                &base.config.areas,
                &file,
                &ImportOptions {
                    dry_run,
                    ..ImportOptions::default()
                },
                chrono::Utc::now(),
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                report.rejected.is_empty() && report.imported() == rows,
                "{pass}: {} imported, {} rejected (first: {:?})",
                report.imported(),
                report.rejected.len(),
                report.rejected.first()
            );
            println!(
                "{:<44} {:>10.1} s    target ≤ 30 s; {:.0} rows/s; {} added, {} updated, {} converted; peak {:.0} MB",
                format!("import {rows} rows, {pass} (SQLite)"),
                seconds,
                rows as f64 / seconds,
                report.added,
                report.updated,
                report.by_area.values().map(|c| c.converted).sum::<usize>(),
                peak_rss_mb().unwrap_or(0.0),
            );
        }
        db.close().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// `rows` residents spread over the communes, as a district's merged list would hold them.
fn district_list(setup: &Setup, rows: usize) -> String {
    let communes: Vec<String> = setup
        .config
        .areas
        .leaves()
        .map(|a| a.name.clone())
        .collect();
    let family = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đỗ", "Ngô"];
    let middle = ["Thị", "Văn", "Đức", "Thu", "Minh"];
    let given = ["Lan", "Hùng", "Hoa", "Đức", "Yến", "Mai", "Toàn", "Hằng"];
    let mut out = String::from(
        "DANH SÁCH NGƯỜI DÂN NHẬN TIN\nSTT,Họ và tên,Số điện thoại,Xã,Giới tính,Năm sinh\n",
    );
    for i in 0..rows {
        let commune = &communes[i % communes.len()];
        // Every tenth commune cell without diacritics, in lower case.
        let commune = if i % 10 == 0 {
            loa::templates::unaccent(commune).to_lowercase()
        } else {
            commune.clone()
        };
        // Distinct numbers: 09xx for most, an old 016x prefix or a dropped zero for some.
        let n = 10_000_000 + i;
        let phone = match i % 20 {
            0 => format!("0166{n:07}", n = n % 10_000_000),
            1 => format!(
                "9{:02} {:03} {:03}",
                60 + n / 1_000_000 % 10,
                n / 1000 % 1000,
                n % 1000
            ),
            _ => format!("09{:01}{:07}", 1 + (i / 10_000_000), n % 10_000_000),
        };
        let name = format!(
            "{} {} {}",
            family[i % family.len()],
            middle[i / 8 % middle.len()],
            given[i / 40 % given.len()]
        );
        let gender = if i % 2 == 0 { "Nữ" } else { "Nam" };
        out.push_str(&format!(
            "{},{name},{phone},{commune},{gender},{}\n",
            i + 1,
            1950 + i % 60
        ));
    }
    out
}
