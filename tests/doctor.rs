//! `loa doctor` as an IT officer runs it the evening before 8 March: green against working
//! (fake) Telegram and Kannel, and each fault named with what to do — a wrong token, an
//! unreachable gateway, a webhook another service took, a clock that drifted, a channel down.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BOT_TOKEN, copy_of_repo};
use loa::fakes::kannel::FakeKannel;
use loa::fakes::telegram::FakeTelegram;

struct Fakes {
    telegram: FakeTelegram,
    kannel: FakeKannel,
}

async fn fakes() -> Fakes {
    Fakes {
        telegram: FakeTelegram::start(BOT_TOKEN).await.unwrap(),
        kannel: FakeKannel::start().await.unwrap(),
    }
}

/// `loa doctor ARGS` in `dir` against `fakes`, with `env` on top.
fn doctor(dir: &Path, fakes: &Fakes, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loa"));
    command
        .arg("doctor")
        .args(args)
        .current_dir(dir)
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("LOA_LOG", "error")
        .env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .env("TELEGRAM_API_URL", fakes.telegram.api_url())
        .env("LOA_KANNEL_URL", fakes.kannel.sendsms_url())
        .env("LOA_KANNEL_USERNAME", "loa")
        .env("LOA_KANNEL_PASSWORD", "mat-khau-kannel");
    for (k, v) in env {
        command.env(k, v);
    }
    let out: Output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn migrated() -> tempfile::TempDir {
    let dir = copy_of_repo();
    let out = Command::new(env!("CARGO_BIN_EXE_loa"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    dir
}

fn failing_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("FAILING")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_on_the_shipped_configuration_with_working_gateways() {
    let dir = migrated();
    let fakes = fakes().await;
    let (code, text) = doctor(dir.path(), &fakes, &[], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(failing_lines(&text).is_empty(), "{text}");
    for line in [
        "ok       telegram: the token is the bot @",
        "ok       telegram: updates by long polling",
        "ok       sms: the gateway at http://",
        "ok       database: sqlite://data/loa.db: reachable and writable",
        "ok       database: its clock agrees with Loa's",
        "ok       deliveries: 0 waiting or in flight",
        "no check failing",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(!text.contains("mat-khau-kannel"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bot_token_is_named_and_never_printed() {
    let dir = migrated();
    let fakes = fakes().await;
    let wrong = "999999:not-the-bots-token";
    let (code, text) = doctor(dir.path(), &fakes, &[], &[("TELEGRAM_BOT_TOKEN", wrong)]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        failing_lines(&text),
        ["FAILING  telegram: Telegram refuses the bot token (401)"],
        "{text}"
    );
    assert!(text.contains("→ set TELEGRAM_BOT_TOKEN"), "{text}");
    assert!(!text.contains(wrong), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_named() {
    let dir = migrated();
    let fakes = fakes().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{closed}/cgi-bin/sendsms");
    let (code, text) = doctor(dir.path(), &fakes, &[], &[("LOA_KANNEL_URL", &url)]);
    assert_eq!(code, 1, "{text}");
    let failing = failing_lines(&text);
    assert_eq!(failing.len(), 1, "{text}");
    assert!(
        failing[0].starts_with(&format!(
            "FAILING  sms: cannot reach the gateway at http://127.0.0.1:{closed}: cannot connect"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_another_service_took_is_named_in_either_mode() {
    let fakes = fakes().await;
    fakes
        .telegram
        .point_webhook_at("https://bot-khac.example/hook");

    // Long polling: a webhook set elsewhere means no update ever arrives.
    let dir = migrated();
    let (code, text) = doctor(dir.path(), &fakes, &[], &[]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        failing_lines(&text),
        [
            "FAILING  telegram: a webhook is set (https://bot-khac.example/hook), so long polling receives nothing"
        ],
        "{text}"
    );

    // Webhook mode: it must point at this Loa's public URL.
    let config = dir.path().join("loa.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "# webhook_secret = \"...\"",
        "webhook_secret = \"bi-mat-webhook-telegram\"",
    );
    std::fs::write(&config, toml).unwrap();
    let public = [("LOA_PUBLIC_URL", "https://loa.hoanghoa.example")];
    fakes.telegram.webhook_fails_with("Connection timed out");
    let (code, text) = doctor(dir.path(), &fakes, &[], &public);
    assert_eq!(code, 1, "{text}");
    assert!(
        failing_lines(&text).contains(
            &"FAILING  telegram: the webhook points at https://bot-khac.example/hook, not at this Loa (https://loa.hoanghoa.example/webhooks/telegram)"
        ),
        "{text}"
    );
    assert!(
        text.contains("warning  telegram: Telegram's last error delivering updates"),
        "{text}"
    );
    assert!(text.contains("Connection timed out"), "{text}");

    fakes
        .telegram
        .point_webhook_at("https://loa.hoanghoa.example/webhooks/telegram");
    let (_, text) = doctor(dir.path(), &fakes, &[], &public);
    assert!(
        text.contains(
            "ok       telegram: webhook at https://loa.hoanghoa.example/webhooks/telegram"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_that_drifted_is_named() {
    let dir = migrated();
    let fakes = fakes().await;
    let drifted = (chrono::Utc::now() - chrono::Duration::minutes(7)).to_rfc3339();
    let (code, text) = doctor(dir.path(), &fakes, &["--clock", &drifted], &[]);
    assert_eq!(code, 1, "{text}");
    let failing = failing_lines(&text);
    assert_eq!(failing.len(), 1, "{text}");
    assert!(
        failing[0].starts_with("FAILING  database: the database's clock is +4"),
        "{text}"
    );
    assert!(text.contains("timedatectl set-ntp true"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_is_down_and_a_broken_configuration_fail() {
    let dir = migrated();
    let fakes = fakes().await;
    let db = loa::store::Db::connect(&format!("sqlite://{}/data/loa.db", dir.path().display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO channel_outages (channel, down_since, reason, probe_at, probes)
         VALUES ('sms', 1700000000, 'kannel unreachable: cannot connect', 1700000015, 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db.close().await;
    let (code, text) = doctor(dir.path(), &fakes, &[], &[]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        failing_lines(&text),
        [
            "FAILING  channels: sms is down since 14/11/2023 22:13 UTC: kannel unreachable: cannot connect"
        ],
        "{text}"
    );

    let config = dir.path().join("loa.toml");
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("keep = 7", "keep = 0");
    std::fs::write(&config, toml).unwrap();
    let (code, text) = doctor(dir.path(), &fakes, &[], &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAILING  configuration: loa.toml:") && text.contains("backup.keep"),
        "{text}"
    );
}
