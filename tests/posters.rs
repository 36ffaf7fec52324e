//! Posters: a commune's A4 page with its Telegram link (the commune chosen), the Zalo OA and
//! the SMS keyword, each as an inline QR code; printed by `loa poster` or from the console,
//! where an account limited to an area gets only its own communes, and where subscriptions
//! are counted by the way people came.

mod common;

use std::process::Command;

use common::console::spawn_console_with;
use common::copy_of_repo;
use loa::console::Role;

#[test]
fn loa_poster_writes_a_printable_page_with_the_commune_s_links() {
    let dir = copy_of_repo();
    let config = dir.path().join("loa.toml");
    let source = std::fs::read_to_string(&config).unwrap();
    let source = source
        .replace(
            "# username = \"hiephoa_binhdang_bot\"",
            "username = \"hiephoa_binhdang_bot\"",
        )
        .replace("# reply_number = \"8079\"", "reply_number = \"8079\"")
        .replace(
            "# oa_link = \"https://zalo.me/1234567890123456789\"",
            "oa_link = \"https://zalo.me/1234567890123456789\"",
        );
    std::fs::write(&config, source).unwrap();
    let out = dir.path().join("doan-bai.html");
    let run = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["poster", "Đoan Bái", "--out"])
        .arg(&out)
        .current_dir(dir.path())
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("@page{size:A4 portrait"));
    assert!(html.contains("https://t.me/hiephoa_binhdang_bot?start=doan-bai"));
    assert!(html.contains("https://zalo.me/1234567890123456789"));
    assert!(
        html.contains("DK DOAN BAI") && html.contains("8079"),
        "the SMS keyword"
    );
    assert!(html.contains("người dân xã Đoan Bái"));
    assert_eq!(html.matches("<svg").count(), 2, "a QR code per link");
    assert!(
        !html.contains("<script"),
        "nothing runs, nothing is fetched"
    );
    assert!(!html.contains("src=\"http"));

    // A district is not a commune; an unknown name says which are close.
    let run = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["poster", "hiep-hoa"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a commune"));
    let run = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["poster", "Doan Bay"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("Đoan Bái"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[tokio::test]
async fn the_console_prints_posters_within_the_account_s_area_and_counts_subscriptions_by_way() {
    let c = spawn_console_with(|config| {
        config.telegram_username = Some("hiephoa_binhdang_bot".into());
        config.sms.reply_number = Some("8079".into());
    })
    .await;
    let app = &c.app;
    let now = app.clock_now();
    // Two came by the poster, one by the bot's buttons, one imported, in Đoan Bái.
    for (name, via) in [
        ("A", "poster"),
        ("B", "poster"),
        ("C", "bot"),
        ("D", "import"),
    ] {
        let person =
            loa::audience::add_person(&app.db, &app.setup.config.areas, name, "doan-bai", &[], now)
                .await
                .unwrap();
        let source = loa::audience::consent::ConsentSource::parse(via).unwrap();
        loa::audience::consent::record(&app.db.pool, person, source, Some("doan-bai"), now)
            .await
            .unwrap();
    }
    let clerk = c
        .token("can-bo-doan-bai", Role::Staff, Some("doan-bai"))
        .await;
    let page = c
        .http
        .get(c.url("/posters"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<a href=\"/posters/doan-bai\">Xã Đoan Bái</a>"));
    assert!(
        !html.contains("/posters/bac-ly"),
        "a commune clerk sees their own commune only"
    );
    let row = html
        .split("<tr>")
        .find(|r| r.contains("/posters/doan-bai"))
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    let cells: Vec<&str> = row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap())
        .collect();
    assert_eq!(
        cells,
        ["2", "1", "0", "1", "0", "0"],
        "poster, Telegram, SMS, list, …"
    );

    let own = c
        .http
        .get(c.url("/posters/doan-bai"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let poster = own.text().await.unwrap();
    assert!(poster.contains("https://t.me/hiephoa_binhdang_bot?start=doan-bai"));
    assert!(poster.contains("<svg"));
    let other = c
        .http
        .get(c.url("/posters/bac-ly"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403, "another commune's poster");
    let none = c
        .http
        .get(c.url("/posters/hiep-hoa"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404, "a district has no poster");
}
