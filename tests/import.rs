//! `loa import contacts` on the files communes actually send (tests/fixtures/import, made by
//! its make.py): workbooks with a title above the header, Vietnamese headers, numbers Excel
//! stored as numbers, pre-2018 prefixes, a Windows-1258 CSV, Excel's UTF-16 "Unicode text".

mod common;

use std::path::Path;
use std::process::{Command, Output};

use loa::calendar::Audience;
use loa::channel::ChannelKind;
use loa::config::Env;
use sqlx::Row;

fn loa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(args)
        .current_dir(dir)
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fixture(dir: &Path, name: &str) {
    std::fs::copy(
        common::repo_root().join("tests/fixtures/import").join(name),
        dir.join(name),
    )
    .unwrap();
}

async fn database_of(dir: &Path) -> (loa::app::Setup, loa::store::Db) {
    let env = Env::default().with(
        "LOA_DATABASE_URL",
        format!("sqlite://{}/data/loa.db", dir.display()),
    );
    let setup = loa::app::Setup::load(&dir.join("loa.toml"), &env).unwrap();
    let db = setup.open_database().await.unwrap();
    (setup, db)
}

/// Every person with an SMS number: (number, name, area, birth year, tags joined by ',').
async fn persons(db: &loa::store::Db) -> Vec<(String, String, String, Option<i64>, String)> {
    let rows = sqlx::query(
        "SELECT c.address, p.name, p.area_code, p.birth_year,
                COALESCE((SELECT GROUP_CONCAT(t.tag, ',') FROM person_tags t WHERE t.person_id = p.id), '')
         FROM persons p JOIN contacts c ON c.person_id = p.id AND c.channel = 'sms'
         ORDER BY c.address",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get(0).unwrap(),
                r.try_get(1).unwrap(),
                r.try_get(2).unwrap(),
                r.try_get(3).unwrap(),
                r.try_get(4).unwrap(),
            )
        })
        .collect()
}

fn person(
    number: &str,
    name: &str,
    area: &str,
    year: i64,
    tag: &str,
) -> (String, String, String, Option<i64>, String) {
    (
        number.into(),
        name.into(),
        area.into(),
        Some(year),
        tag.into(),
    )
}

/// The same commune list as .xlsx, .xls and .ods: the header found under two title rows,
/// numbers as they were stored, communes as typed; the two bad rows refused with their
/// reasons and written to a file that imports once fixed.
#[tokio::test]
async fn a_communes_workbook_imports_as_meant_in_every_format() {
    for (file, sheet) in [
        ("xa-doan-bai.xlsx", "Danh sách"),
        ("xa-doan-bai.xls", "Sheet1"),
        ("xa-doan-bai.ods", "Trang1"),
    ] {
        let dir = common::copy_of_repo();
        fixture(dir.path(), file);
        let out = loa(dir.path(), &["import", "contacts", file]);
        let report = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: rows were rejected\n{report}"
        );
        for expected in [
            format!("{file}: read as sheet {sheet:?}"),
            format!("{file}: columns not used: STT, Ghi chú"),
            format!(
                "{file}:4: imported; phone: its leading zero, dropped by the spreadsheet, was put back"
            ),
            format!(
                "{file}:6: imported; phone: converted from the pre-2018 number 01662345678 to 0362345678"
            ),
            format!(
                "{file}:7: imported; phone: its leading zero, dropped by the spreadsheet, was put back; converted from the pre-2018 number 01682345679 to 0382345679"
            ),
            format!("{file}:8: phone: \"02043871234\" is a landline"),
            format!(
                "{file}:9: area: unknown area \"Xã Đoan Ba\"; did you mean Xã Đoan Bái (doan-bai)?"
            ),
            "5 added, 0 updated, 2 rejected".to_string(),
            "The rejected rows are in xa-doan-bai.rejected.csv".to_string(),
        ] {
            assert!(report.contains(&expected), "{file}: {expected}\n{report}");
        }
        // Per area: Đoan Bái has three in, one refused; the unknown commune's row on its own.
        let line = |name: &str| {
            report
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().rev().take(4).collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("{file}: no line for {name}\n{report}"))
        };
        assert_eq!(
            line("Xã Đoan Bái"),
            ["1", "1", "0", "3"],
            "rejected, converted, updated, added"
        );
        assert_eq!(line("Xã Bắc Lý"), ["0", "1", "0", "1"]);
        assert_eq!(line("(area not recognised)"), ["1", "0", "0", "0"]);

        let (_, db) = database_of(dir.path()).await;
        assert_eq!(
            persons(&db).await,
            [
                person("+84362345678", "Lê Thị Hoa", "doan-bai", 2001, "phu-nu"),
                person("+84382345679", "Phạm Văn Đức", "bac-ly", 1960, "nam"),
                person("+84912345678", "Nguyễn Thị Lan", "doan-bai", 1998, "phu-nu"),
                person("+84912345679", "Trần Văn Hùng", "doan-bai", 1990, "nam"),
                person("+84912345681", "Vũ Thị Mai", "tt-thang", 2008, "phu-nu"),
            ],
            "{file}"
        );

        // The clerk fixes the two rows in the rejected file and imports it.
        let rejected = dir.path().join("xa-doan-bai.rejected.csv");
        let text = std::fs::read_to_string(&rejected).unwrap();
        assert!(
            text.starts_with('\u{feff}'),
            "Excel needs the mark to show Vietnamese"
        );
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap().trim_start_matches('\u{feff}'),
            "STT,Họ và tên,Số điện thoại,Xã,Giới tính,Năm sinh,Ghi chú,Lý do không nhập được"
        );
        assert_eq!(lines.clone().count(), 2, "{text}");
        assert!(
            text.contains("Đỗ Thị Yến,02043871234,Xã Đoan Bái"),
            "{text}"
        );
        let fixed = text
            .replace("02043871234", "0977123456")
            .replace("Xã Đoan Ba,", "Xã Đoan Bái,");
        std::fs::write(&rejected, fixed).unwrap();
        let again = loa(
            dir.path(),
            &["import", "contacts", "xa-doan-bai.rejected.csv"],
        );
        assert!(again.status.success(), "{}", stdout(&again));
        assert!(
            stdout(&again).contains("2 added, 0 updated, 0 rejected"),
            "{}",
            stdout(&again)
        );
    }
}

#[tokio::test]
async fn another_sheet_by_name_and_an_unknown_one_listed() {
    let dir = common::copy_of_repo();
    fixture(dir.path(), "xa-doan-bai.xlsx");
    let out = loa(
        dir.path(),
        &[
            "import",
            "contacts",
            "xa-doan-bai.xlsx",
            "--sheet",
            "xã bắc lý",
        ],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("read as sheet \"Xã Bắc Lý\""));
    let (_, db) = database_of(dir.path()).await;
    assert_eq!(persons(&db).await[0].1, "Ngô Thị Thu");

    let wrong = loa(
        dir.path(),
        &[
            "import",
            "contacts",
            "xa-doan-bai.xlsx",
            "--sheet",
            "Tổng hợp",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("xa-doan-bai.xlsx: no sheet named \"Tổng hợp\"; the workbook has \"Danh sách\", \"Xã Bắc Lý\"; nothing was imported"),
        "{err}"
    );
}

/// Windows-1258 spells "ệ" as "ê" and a combining dot: names come out NFC, as typed in Unicode.
#[tokio::test]
async fn a_windows_1258_csv_and_excel_unicode_text() {
    let dir = common::copy_of_repo();
    fixture(dir.path(), "windows-1258.csv");
    fixture(dir.path(), "unicode-text.txt");
    let out = loa(dir.path(), &["import", "contacts", "windows-1258.csv"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("windows-1258.csv: read as CSV, Windows-1258, ','-separated"));
    assert!(
        stdout(&out).contains("3 added, 0 updated, 0 rejected"),
        "{}",
        stdout(&out)
    );
    let out = loa(dir.path(), &["import", "contacts", "unicode-text.txt"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("unicode-text.txt: read as CSV, UTF-16, tab-separated"));
    assert!(
        stdout(&out).contains("1 added, 1 updated, 0 rejected"),
        "{}",
        stdout(&out)
    );

    let (_, db) = database_of(dir.path()).await;
    let got = persons(&db).await;
    let no_year = |n: &str, name: &str, area: &str, tags: &str| {
        (
            n.to_string(),
            name.to_string(),
            area.to_string(),
            None,
            tags.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            person("+84382345670", "Trần Thị Hằng", "hop-thinh", 2000, ""),
            no_year("+84977000111", "Lê Văn Dũng", "hoa-son", ""),
            no_year("+84987654321", "Đinh Văn Toàn", "dong-lo", ""),
            person(
                "+84912345678",
                "Nguyễn Thị Lan",
                "doan-bai",
                1998,
                "hoi-phu-nu"
            ),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    use unicode_normalization::UnicodeNormalization;
    for (_, name, ..) in &got {
        assert_eq!(name.nfc().collect::<String>(), *name, "NFC");
    }
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let dir = common::copy_of_repo();
    fixture(dir.path(), "xa-doan-bai.xlsx");
    let out = loa(
        dir.path(),
        &["import", "contacts", "xa-doan-bai.xlsx", "--dry-run"],
    );
    let report = stdout(&out);
    assert!(
        report.contains("Dry run, nothing written: would be 5 added, 0 updated, 2 rejected"),
        "{report}"
    );
    assert!(
        report.contains("xa-doan-bai.xlsx:4: would be imported; phone:"),
        "{report}"
    );
    let (_, db) = database_of(dir.path()).await;
    assert!(persons(&db).await.is_empty());
    // After the import, a dry run sees the same numbers as updates.
    loa(dir.path(), &["import", "contacts", "xa-doan-bai.xlsx"]);
    let out = loa(
        dir.path(),
        &["import", "contacts", "xa-doan-bai.xlsx", "--dry-run"],
    );
    assert!(
        stdout(&out).contains("would be 0 added, 5 updated, 2 rejected"),
        "{}",
        stdout(&out)
    );
}

/// All 21 prefixes retired in 2018, typed with their zero and without.
#[test]
fn every_pre_2018_prefix_is_converted() {
    let table = [
        ("0162", "032"),
        ("0163", "033"),
        ("0164", "034"),
        ("0165", "035"),
        ("0166", "036"),
        ("0167", "037"),
        ("0168", "038"),
        ("0169", "039"),
        ("0120", "070"),
        ("0121", "079"),
        ("0122", "077"),
        ("0126", "076"),
        ("0128", "078"),
        ("0123", "083"),
        ("0124", "084"),
        ("0125", "085"),
        ("0127", "081"),
        ("0129", "082"),
        ("0186", "056"),
        ("0188", "058"),
        ("0199", "059"),
    ];
    let dir = common::copy_of_repo();
    let mut csv = String::from("Họ và tên,SĐT\n");
    for (i, (old, _)) in table.iter().enumerate() {
        csv.push_str(&format!("Người {i},{old}{:07}\n", 1000000 + i));
        csv.push_str(&format!("Người {i}b,{}{:07}\n", &old[1..], 2000000 + i));
    }
    std::fs::write(dir.path().join("cu.csv"), csv).unwrap();
    let out = loa(
        dir.path(),
        &["import", "contacts", "cu.csv", "--area", "Xã Hương Lâm"],
    );
    let report = stdout(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("42 added, 0 updated, 0 rejected"),
        "{report}"
    );
    for (i, (old, new)) in table.iter().enumerate() {
        let line = 2 + 2 * i;
        let expected = format!(
            "cu.csv:{line}: imported; phone: converted from the pre-2018 number {old}{:07} to {new}{:07}",
            1000000 + i,
            1000000 + i
        );
        assert!(report.contains(&expected), "{expected}\n{report}");
        assert!(
            report.contains(&format!("to {new}{:07}", 2000000 + i)),
            "{new} without its zero\n{report}"
        );
    }
}

/// `thanh-nien` (16–30) follows from a birth year in the year the audience is for.
#[tokio::test]
async fn youth_is_derived_from_the_birth_year_for_the_year_of_the_send() {
    let dir = common::copy_of_repo();
    fixture(dir.path(), "xa-doan-bai.xlsx");
    loa(dir.path(), &["import", "contacts", "xa-doan-bai.xlsx"]);
    let (setup, db) = database_of(dir.path()).await;
    let youth = Audience {
        areas: vec![],
        tags: vec!["thanh-nien".into()],
        ..Audience::default()
    };
    let count = |year| {
        let (db, youth, areas) = (&db, &youth, &setup.config.areas);
        async move {
            loa::audience::count(db, youth, &[ChannelKind::Sms], areas, year)
                .await
                .unwrap()
        }
    };
    // Born 1998, 1990, 2001, 1960, 2008.
    assert_eq!(count(2026).await, 3, "28, 25 and 18 in 2026");
    assert_eq!(
        count(2020).await,
        3,
        "22, 30 and 19 in 2020; 12 is too young"
    );
    assert_eq!(count(2040).await, 0);
    let women = Audience {
        areas: vec![],
        tags: vec!["phu-nu".into()],
        ..Audience::default()
    };
    assert_eq!(
        loa::audience::count(&db, &women, &[ChannelKind::Sms], &setup.config.areas, 2026)
            .await
            .unwrap(),
        3
    );
}

/// One cell at the sheet's far corner (XFD1048576) in a 5 KB file: read as the two rows it has,
/// not as a rectangle of 17 billion cells that would take the process down.
#[test]
fn a_far_cell_in_a_small_workbook_costs_nothing() {
    let dir = common::copy_of_repo();
    fixture(dir.path(), "far-cell.xlsx");
    let out = loa(dir.path(), &["import", "contacts", "far-cell.xlsx"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("1 added, 0 updated, 0 rejected"),
        "{}",
        stdout(&out)
    );
}
