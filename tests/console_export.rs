//! The delivery log of a large year, sent as it is read: a whole file, only the account's
//! area, one export per account at a time, and a closed download lets the account start again.

mod common;

use std::time::{Duration, Instant};

use common::console::{Console, spawn_console};
use loa::console::Role;
use reqwest::StatusCode;

const YEAR: &str = "/exports/deliveries.csv?period=year&year=2023";

/// A year of 20,000 residents, 10 occurrences each: 200,000 deliveries, some 25 MB of CSV,
/// more than sockets buffer, so a download not read stays running.
async fn a_large_year(c: &Console) -> i64 {
    loa::perf::seed(&c.app.db, &c.app.setup.config, 20_000)
        .await
        .unwrap();
    loa::perf::synthesise_year(&c.app.db, 10).await.unwrap()
}

async fn export(c: &Console, token: &str) -> reqwest::Response {
    c.http
        .get(c.url(YEAR))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_second_export_waits_for_the_first_and_a_closed_download_frees_the_account() {
    let c = spawn_console().await;
    a_large_year(&c).await;
    let official = c.token("lanh-dao", Role::Official, None).await;

    let first = export(&c, &official).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = export(&c, &official).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = second.text().await.unwrap();
    assert!(page.contains("Xin chờ tải xong tệp đó"), "{page}");
    // Another account is not held up by this one's export.
    let other = c.token("lanh-dao-2", Role::Official, None).await;
    assert_eq!(export(&c, &other).await.status(), StatusCode::OK);

    // The browser closes the download half-way.
    drop(first);
    let started = Instant::now();
    let again = loop {
        let r = export(&c, &official).await;
        if r.status() != StatusCode::TOO_MANY_REQUESTS
            || started.elapsed() > Duration::from_secs(20)
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the closed download still holds the account"
    );
    drop(again);

    // The audit log says the closed one was cut short, not that it was taken whole.
    let admin = c.token("quan-tri", Role::Admin, None).await;
    let started = Instant::now();
    loop {
        let (_, log) = c.api(&admin, "GET", "/api/audit?limit=100", None).await;
        let cut_short = log.as_array().unwrap().iter().any(|e| {
            e["action"] == "export.deliveries"
                && e["actor"] == "token:lanh-dao"
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("2023-01-01 – 2023-12-31: người tải dừng giữa chừng, đã xuất")
        });
        if cut_short {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_large_year_comes_whole_and_a_commune_gets_its_own_lines_only() {
    let c = spawn_console().await;
    let deliveries = a_large_year(&c).await;

    let commune = c
        .token("lanh-dao-bac-ly", Role::Official, Some("bac-ly"))
        .await;
    let r = export(&c, &commune).await;
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    assert_eq!(&reader.headers().unwrap()[5], "Địa bàn");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let in_bac_ly = c
        .app
        .count(
            "SELECT COUNT(*) FROM deliveries d JOIN persons p ON p.id = d.person_id
             WHERE p.area_code = 'bac-ly'",
        )
        .await;
    assert!(in_bac_ly > 0);
    assert_eq!(rows.len() as i64, in_bac_ly);
    assert!(rows.iter().all(|r| &r[5] == "Xã Bắc Lý"));

    let district = c.token("lanh-dao", Role::Official, None).await;
    let r = export(&c, &district).await;
    let bytes = r.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let mut lines = 0i64;
    let mut last_id = 0i64;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).unwrap() {
        lines += 1;
        // Chat ids are masked to their last three digits.
        assert!(record[7].starts_with('…'), "{record:?}");
        last_id = record[0].parse().unwrap();
    }
    assert_eq!(
        lines, deliveries,
        "every delivery of the year, each on one line"
    );
    assert!(last_id > 0);
    // The export is over: the account may take another.
    assert_eq!(export(&c, &district).await.status(), StatusCode::OK);
}
