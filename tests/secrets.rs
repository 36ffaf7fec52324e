//! Secrets and residents' numbers stay inside: when a gateway is down, slow, or unreachable at
//! the network level, the bot token, Kannel's credentials, the webhook secret, the recipient's
//! number and the message text appear in no log line, no `deliveries.last_error` and no
//! `delivery_attempts.detail` — however the transport describes its failure.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::{BOT_TOKEN, TestApp};
use loa::app::Engine;
use loa::channels::sms::{Callback, KannelChannel};
use loa::channels::telegram::TelegramChannel;
use loa::clock::SharedClock;
use loa::config::{ChannelKind, SmsGateway};
use loa::dispatch::Transports;
use loa::fakes::kannel::FakeKannel;
use sqlx::Row;

const USERNAME: &str = "nguoi-dung-kannel-7f3a";
const PASSWORD: &str = "mat-khau-kannel-9b1c";
const SECRET: &str = "bi-mat-webhook-42";
const NUMBER: &str = "+84912345678";
const CHAT: i64 = 4_207_331;

/// Every line any tracing event writes while the guard lives (this thread: the test's
/// runtime runs every task it spawns on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (a bounded while) for the `n`th line containing `needle`, written by a task
    /// running concurrently.
    async fn wait_for(&self, needle: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
        while self.text().matches(needle).count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {needle:?}:\n{}",
                self.text()
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }
}

/// A loopback URL where nothing listens: connection refused.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A loopback URL that accepts connections and never answers.
async fn silent_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

/// Loa with Kannel at `kannel_url`, delivery reports signed with the webhook secret.
async fn app_with_kannel_at(kannel_url: String) -> TestApp {
    TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url: kannel_url,
            username: USERNAME.into(),
            password: PASSWORD.into(),
        });
        c.sms.from = "UBND HHoa".into();
        c.public_url = Some("http://127.0.0.1:9".into());
        c.webhook_secret = Some(SECRET.into());
    })
    .await
}

fn kannel(url: &str) -> KannelChannel {
    KannelChannel::new(
        url,
        USERNAME,
        PASSWORD,
        "UBND HHoa",
        Some(Callback {
            public_url: "http://127.0.0.1:9".into(),
            secret: Some(SECRET.into()),
        }),
    )
}

fn use_transports(app: &mut TestApp, transports: Transports) {
    app.engine = Engine::new(
        &app.setup,
        app.db.clone(),
        app.clock.clone() as SharedClock,
        transports,
    );
}

/// What the failed attempts left in the database: `last_error` and every attempt's detail.
async fn stored_errors(app: &TestApp) -> Vec<String> {
    let mut stored: Vec<String> = loa::dispatch::deliveries(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.last_error)
        .collect();
    for row in sqlx::query("SELECT detail FROM delivery_attempts")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
    {
        stored.extend(row.try_get::<Option<String>, _>(0).unwrap());
    }
    assert!(!stored.is_empty(), "the failure is recorded");
    stored
}

/// Once the gateway is back, the retry goes through `transports`: returns what the gateway
/// then received, i.e. the text the failed attempts carried.
async fn retry_through(app: &mut TestApp, transports: Transports) {
    use_transports(app, transports);
    app.advance(Duration::minutes(30));
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.sent, 1, "{step:?}");
}

/// The values that must stay inside, each also as it travels in a query string.
fn secrets(text: &str) -> Vec<(&'static str, String)> {
    let urlencoded = |v: &str| serde_urlencoded::to_string([("v", v)]).unwrap()[2..].to_string();
    vec![
        ("bot token", BOT_TOKEN.to_string()),
        ("bot token's secret part", "TEST-token".to_string()),
        ("Kannel username", USERNAME.to_string()),
        ("Kannel password", PASSWORD.to_string()),
        ("webhook secret", SECRET.to_string()),
        // In E.164, national (0912…) and bare (84912…) form alike.
        ("recipient number", "912345678".to_string()),
        ("message text", text.to_string()),
        ("message text, URL-encoded", urlencoded(text)),
    ]
}

fn assert_kept_inside(text: &str, logs: &str, stored: &[String]) {
    assert!(!text.trim().is_empty());
    for (what, value) in secrets(text) {
        assert!(
            !logs.contains(&value),
            "the {what} is in a log line:\n{logs}"
        );
        for s in stored {
            assert!(!s.contains(&value), "the {what} is stored: {s}");
        }
    }
}

#[tokio::test]
async fn kannel_down_leaks_neither_credentials_nor_number_nor_text() {
    let (logs, _guard) = Logs::capture();
    let mut app = app_with_kannel_at(format!("{}/cgi-bin/sendsms", closed_port().await)).await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.retrying, 1, "{step:?}");
    let stored = stored_errors(&app).await;
    assert!(
        logs.text().contains("temporary failure on kannel"),
        "{}",
        logs.text()
    );
    let failure_logs = logs.text();

    let up = FakeKannel::start().await.unwrap();
    retry_through(
        &mut app,
        Transports::new().with(ChannelKind::Sms, Arc::new(kannel(&up.sendsms_url()))),
    )
    .await;
    assert_kept_inside(&up.sent()[0].text, &failure_logs, &stored);
}

#[tokio::test]
async fn a_kannel_that_never_answers_times_out_without_leaking() {
    let (logs, _guard) = Logs::capture();
    let silent = format!("{}/cgi-bin/sendsms", silent_port().await);
    let mut app = app_with_kannel_at(silent.clone()).await;
    use_transports(
        &mut app,
        Transports::new().with(
            ChannelKind::Sms,
            Arc::new(kannel(&silent).with_timeout(StdDuration::from_millis(300))),
        ),
    );
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.retrying, 1, "{step:?}");
    let stored = stored_errors(&app).await;
    let failure_logs = logs.text();

    let up = FakeKannel::start().await.unwrap();
    retry_through(
        &mut app,
        Transports::new().with(ChannelKind::Sms, Arc::new(kannel(&up.sendsms_url()))),
    )
    .await;
    assert_kept_inside(&up.sent()[0].text, &failure_logs, &stored);
    assert!(
        stored.iter().any(|s| s.contains("timed out")),
        "the reason is kept: {stored:?}"
    );
}

/// Telegram unreachable at the network level. (teloxide already leaves the URL out of its
/// network errors; this keeps it so.)
#[tokio::test]
async fn telegram_unreachable_leaks_no_token() {
    let (logs, _guard) = Logs::capture();
    let closed = closed_port().await;
    let mut app = TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.telegram.as_mut().unwrap().api_url = closed;
    })
    .await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", CHAT).await;
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.retrying, 1, "{step:?}");
    let stored = stored_errors(&app).await;
    assert!(
        logs.text().contains("temporary failure on telegram"),
        "{}",
        logs.text()
    );
    let failure_logs = logs.text();

    let mut reachable = app.setup.config.telegram.clone().unwrap();
    reachable.api_url = app.telegram.api_url();
    retry_through(
        &mut app,
        Transports::new().with(
            ChannelKind::Telegram,
            Arc::new(TelegramChannel::new(&reachable).unwrap()),
        ),
    )
    .await;
    assert_kept_inside(&app.telegram.sent_to(CHAT)[0].text, &failure_logs, &stored);
}

/// A proxy in front of the Bot API answers with an error page that echoes the request path.
#[tokio::test]
async fn a_proxy_page_echoing_the_path_leaks_no_token() {
    let (logs, _guard) = Logs::capture();
    let mut app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", CHAT).await;
    app.telegram.answer_through_broken_proxy(true);
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.retrying, 1, "{step:?}");
    let stored = stored_errors(&app).await;
    assert!(
        stored.iter().any(|s| s.contains("Cannot POST")),
        "the page is still quoted: {stored:?}"
    );
    let failure_logs = logs.text();

    app.telegram.answer_through_broken_proxy(false);
    app.advance(Duration::minutes(30));
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    assert_kept_inside(&app.telegram.sent_to(CHAT)[0].text, &failure_logs, &stored);
}

/// Replies the bot cannot send, Telegram being unreachable or behind a broken proxy: the
/// handler's error is logged without the token.
#[tokio::test]
async fn a_bot_reply_that_cannot_be_sent_is_logged_without_the_token() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    let reachable = app.setup.config.telegram.clone().unwrap();
    let me = teloxide::prelude::Requester::get_me(TelegramChannel::new(&reachable).unwrap().bot())
        .await
        .unwrap();
    let mut unreachable = reachable.clone();
    unreachable.api_url = closed_port().await;
    // From text, as the webhook reads it (teloxide's `Update` does not read from a `Value`).
    let update = serde_json::json!({
        "update_id": 1,
        "message": {"message_id": 1, "date": 1678237200,
                    "chat": {"id": CHAT, "type": "private", "first_name": "A"},
                    "from": {"id": CHAT, "is_bot": false, "first_name": "A"}, "text": "/hotro",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
    })
    .to_string();
    for config in [&unreachable, &reachable] {
        let webhook = loa::bot::Webhook {
            bot: TelegramChannel::new(config).unwrap().bot().clone(),
            me: me.clone(),
            state: app.bot_state(),
            secret: "khong-dung".into(),
        };
        app.telegram.answer_through_broken_proxy(true);
        webhook.handle(serde_json::from_str(&update).unwrap()).await;
    }
    let text = logs.text();
    assert_eq!(
        text.matches("loa::bot: bot: ").count(),
        2,
        "both failures are logged: {text}"
    );
    assert_kept_inside("/hotro", &text, &[]);
}

/// `loa run` while Telegram cannot be reached at start, while a proxy answers for it, then
/// while `getUpdates` fails: the polling loop's log lines carry no token.
#[tokio::test]
async fn the_polling_loop_logs_no_token() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    let run = |api_url: String| {
        let mut setup = app.setup.clone();
        let config = Arc::make_mut(&mut setup.config);
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.telegram.as_mut().unwrap().api_url = api_url;
        tokio::spawn(loa::app::run(
            setup,
            app.clock.clone() as SharedClock,
            std::future::pending::<()>(),
        ))
    };

    let unreachable = run(closed_port().await);
    logs.wait_for("Telegram bot cannot start yet", 1).await;
    unreachable.abort();

    app.telegram.answer_through_broken_proxy(true);
    let behind_proxy = run(app.telegram.api_url());
    logs.wait_for("Telegram bot cannot start yet", 2).await;
    behind_proxy.abort();

    app.telegram.answer_through_broken_proxy(false);
    let polling = run(app.telegram.api_url());
    logs.wait_for("Telegram bot: long polling", 1).await;
    app.telegram.answer_through_broken_proxy(true);
    logs.wait_for("telegram getUpdates", 1).await;
    polling.abort();
    assert_kept_inside("/start", &logs.text(), &[]);
}

/// A message from a number that is not a Vietnamese mobile: the warning masks it as it masks
/// valid numbers.
#[tokio::test]
async fn invalid_sender_numbers_are_masked_in_logs() {
    let (logs, _guard) = Logs::capture();
    let app = app_with_kannel_at(closed_port().await).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    app.serve_web(listener);
    let client = reqwest::Client::new();
    for from in ["02043123456", "+14155552671", "098765"] {
        let answer = client
            .post(format!("{base}/webhooks/sms/mo"))
            .header("X-Loa-Webhook-Secret", SECRET)
            .json(&serde_json::json!({"from": from, "text": "alo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{from}");
    }
    let text = logs.text();
    assert!(text.contains("inbound SMS not handled"), "{text}");
    for digits in ["2043123456", "4155552671", "098765"] {
        assert!(!text.contains(digits), "{digits} in a log line:\n{text}");
    }
}
