//! No one's words are lost (issue 16, Must 5 and 6): every SMS reply and private Telegram text
//! that is not a command goes to the inbox; a call for help is forwarded to the commune's
//! contact point and the admins on Telegram within one dispatch step, the sender gets the
//! hotlines once; DK with a commune's name subscribes and confirms that commune; texts are
//! deleted after `inbox.keep_days`.

mod common;

use chrono::Duration;
use common::{TestApp, copy_of_repo};
use loa::config::SmsGateway;
use loa::fakes::kannel::FakeKannel;
use sqlx::Row;

const SECRET: &str = "bi-mat-webhook";
/// The Telegram chat of Hòa Sơn's contact point (a group: negative id).
const CONTACT_POINT: i64 = -100_777;
const ADMIN: i64 = 9001;
const NUMBER: &str = "+84912345678";

struct Inbox {
    app: TestApp,
    kannel: FakeKannel,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Loa on the shipped configuration with Hòa Sơn's contact point on Telegram, one admin, the
/// fake Kannel and its webhooks served.
async fn spawn(start: &str) -> Inbox {
    let dir = copy_of_repo();
    let path = dir.path().join("loa.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replace(
        "code = \"hoa-son\"\n",
        &format!("code = \"hoa-son\"\ntelegram_chat = {CONTACT_POINT}\n"),
    );
    std::fs::write(&path, toml).unwrap();
    let kannel = FakeKannel::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (url, public) = (kannel.sendsms_url(), base.clone());
    let app = TestApp::spawn_custom(&path, start, 0.0, move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url,
            username: "loa".into(),
            password: "matkhau".into(),
        });
        c.sms.from = "UBND HHoa".into();
        c.public_url = Some(public);
        c.webhook_secret = Some(SECRET.into());
        c.telegram.as_mut().unwrap().admins = vec![ADMIN];
    })
    .await;
    app.serve_web(listener);
    Inbox {
        app,
        kannel,
        base,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Inbox {
    async fn sms(&self, from: &str, text: &str) {
        let status = self
            .http
            .post(format!("{}/webhooks/sms/mo", self.base))
            .header("X-Loa-Webhook-Secret", SECRET)
            .json(&serde_json::json!({"from": from, "text": text}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{text}");
    }

    fn sms_to(&self, number: &str) -> Vec<String> {
        self.kannel
            .sent()
            .into_iter()
            .filter(|m| m.to == number)
            .map(|m| m.text)
            .collect()
    }

    /// (area, text, urgent, state) of every kept text, oldest first.
    async fn kept(&self) -> Vec<(Option<String>, String, bool, String)> {
        sqlx::query("SELECT area_code, text, urgent, state FROM inbox ORDER BY id")
            .fetch_all(&self.app.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get(0).unwrap(),
                    r.try_get(1).unwrap(),
                    r.try_get::<i64, _>(2).unwrap() != 0,
                    r.try_get(3).unwrap(),
                )
            })
            .collect()
    }

    async fn person_of(&self, number: &str) -> Option<(String, bool)> {
        sqlx::query(
            "SELECT p.area_code, p.opted_out_at IS NULL FROM persons p
             JOIN contacts c ON c.person_id = p.id WHERE c.channel = 'sms' AND c.address = $1",
        )
        .bind(number)
        .fetch_optional(&self.app.db.pool)
        .await
        .unwrap()
        .map(|r| {
            (
                r.try_get(0).unwrap(),
                r.try_get::<bool, _>(1)
                    .or_else(|_| r.try_get::<i64, _>(1).map(|v| v != 0))
                    .unwrap(),
            )
        })
    }
}

/// The test: an urgent SMS reaches the contact point's Telegram through the fake Bot API
/// within one dispatch step — at 23:00, in quiet hours — and the sender gets the hotlines once.
/// It starts with a stop word and opts no one out.
#[tokio::test]
async fn an_urgent_sms_reaches_the_contact_point_in_one_step_and_the_hotlines_go_once() {
    let inbox = spawn("2026-12-04T23:00:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;

    inbox
        .sms("0912345678", "Dừng lại, chồng em lại đánh em")
        .await;
    assert!(
        app.telegram.sent_to(CONTACT_POINT).is_empty(),
        "queued, not yet sent"
    );
    assert_eq!(
        inbox.person_of(NUMBER).await,
        Some(("hoa-son".into(), true)),
        "not opted out"
    );

    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.outbox, 3, "contact point, admin, hotlines: {step:?}");
    let forward = app.telegram.sent_to(CONTACT_POINT);
    assert_eq!(forward.len(), 1);
    let text = &forward[0].text;
    for expected in [
        "KHẨN CẤP",
        "Xã Hòa Sơn",
        "0912345678",
        "chồng em lại đánh em",
        "23:00",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    assert_eq!(forward[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(app.telegram.sent_to(ADMIN).len(), 1, "the admins too");
    let hotlines = inbox.sms_to(NUMBER);
    assert_eq!(hotlines.len(), 1, "{hotlines:?}");
    assert!(
        hotlines[0].contains("113 (công an)") && hotlines[0].contains("111 (bảo vệ trẻ em)"),
        "{}",
        hotlines[0]
    );

    // A burst: every text is kept; the contact point, who has the number and the page already,
    // is not called out again within ten minutes, and the hotlines are not sent again.
    inbox.sms("0912345678", "cứu em với").await;
    inbox.sms("0912345678", "cuu em").await;
    for _ in 0..4 {
        app.advance(Duration::seconds(5));
        app.engine.dispatcher.step().await.unwrap();
    }
    assert_eq!(app.telegram.sent_to(CONTACT_POINT).len(), 1);
    assert_eq!(inbox.sms_to(NUMBER).len(), 1, "the hotlines once");
    let kept = inbox.kept().await;
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|(area, _, urgent, state)| {
        area.as_deref() == Some("hoa-son") && *urgent && state == "new"
    }));
    // Nothing more goes out on the next step.
    assert_eq!(app.engine.dispatcher.step().await.unwrap().outbox, 0);
    // Ten minutes on, a new call is forwarded again — on one line, whatever lines it had.
    app.advance(Duration::minutes(10));
    inbox
        .sms("0912345678", "cứu\n\nĐề nghị gọi số 0999999999")
        .await;
    app.engine.dispatcher.step().await.unwrap();
    let forwards = app.telegram.sent_to(CONTACT_POINT);
    assert_eq!(forwards.len(), 2);
    assert!(
        forwards[1]
            .text
            .contains("\"cứu Đề nghị gọi số 0999999999\""),
        "{}",
        forwards[1].text
    );
}

/// A reply asking to stop the campaign's messages, naming their topic, stops; it is no call
/// for help and goes to no one.
#[tokio::test]
async fn a_stop_that_names_the_campaigns_topic_stops_and_alarms_no_one() {
    let inbox = spawn("2026-12-04T10:00:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    inbox
        .sms("0912345678", "Dừng gửi tin về bạo lực gia đình")
        .await;
    assert_eq!(
        inbox.person_of(NUMBER).await,
        Some(("hoa-son".into(), false))
    );
    app.engine.dispatcher.step().await.unwrap();
    assert!(app.telegram.sent_to(CONTACT_POINT).is_empty());
}

#[tokio::test]
async fn a_forward_telegram_fails_once_is_sent_on_a_later_step() {
    let inbox = spawn("2026-12-04T10:00:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    app.telegram.answer_not_json_next(CONTACT_POINT);
    inbox.sms("0912345678", "tôi bị bạo lực gia đình").await;
    app.engine.dispatcher.step().await.unwrap();
    assert!(app.telegram.sent_to(CONTACT_POINT).is_empty());
    assert_eq!(app.telegram.sent_to(ADMIN).len(), 1);
    // Not due again at once: after the retry delay.
    app.engine.dispatcher.step().await.unwrap();
    assert!(app.telegram.sent_to(CONTACT_POINT).is_empty());
    app.advance(Duration::minutes(1));
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(app.telegram.sent_to(CONTACT_POINT).len(), 1, "retried");
    assert_eq!(app.telegram.sent_to(ADMIN).len(), 1, "sent once");
}

/// An unknown sender's urgent text goes to the district's contact point (none configured here)
/// and the admins; an ordinary text goes to the inbox with one help reply a day.
#[tokio::test]
async fn every_other_text_is_kept_and_an_unknown_senders_call_reaches_the_admins() {
    let inbox = spawn("2026-12-04T10:00:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    inbox
        .sms("0912345678", "Cho tôi hỏi lịch tập huấn ở xã")
        .await;
    inbox.sms("0912345678", "alo").await;
    assert_eq!(inbox.sms_to(NUMBER).len(), 1, "one help reply a day");
    inbox.sms("0987000111", "em bi ep cuoi").await;
    app.engine.dispatcher.step().await.unwrap();
    assert!(
        app.telegram.sent_to(CONTACT_POINT).is_empty(),
        "not Hòa Sơn's"
    );
    let admin = app.telegram.sent_to(ADMIN);
    assert_eq!(admin.len(), 1);
    assert!(admin[0].text.contains("Chưa rõ địa bàn") && admin[0].text.contains("0987000111"));
    let kept = inbox.kept().await;
    assert_eq!(
        kept,
        vec![
            (
                Some("hoa-son".into()),
                "Cho tôi hỏi lịch tập huấn ở xã".into(),
                false,
                "new".into()
            ),
            (Some("hoa-son".into()), "alo".into(), false, "new".into()),
            (None, "em bi ep cuoi".into(), true, "new".into()),
        ]
    );
    // Commands are not texts to keep.
    inbox.sms("0912345678", "TC").await;
    inbox.sms("0912345678", "DK").await;
    assert_eq!(inbox.kept().await.len(), 3);
}

/// DK followed by a commune: a known number moves there and is told so; an unknown number is
/// added there, subscribed at its own request; a name that is no commune goes to the inbox.
#[tokio::test]
async fn dk_with_a_commune_subscribes_there_and_confirms_it() {
    let mut inbox = spawn("2026-03-05T09:00:00+07:00").await;
    inbox
        .app
        .subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER)
        .await;
    inbox.sms("0912345678", "TC").await;
    assert_eq!(
        inbox.person_of(NUMBER).await,
        Some(("hoa-son".into(), false))
    );
    inbox.app.set_clock("2026-03-06T09:00:00+07:00");
    inbox.sms("0912345678", "DK Đoan Bái").await;
    assert_eq!(
        inbox.person_of(NUMBER).await,
        Some(("doan-bai".into(), true))
    );
    let reply = inbox.sms_to(NUMBER).last().unwrap().clone();
    assert!(
        reply.contains("đã đăng ký nhận tin") && reply.contains("xã Đoan Bái"),
        "{reply}"
    );

    // Unknown numbers: with a commune (no diacritics, with its kind word), added there.
    inbox.sms("0987000111", "dang ky xa doan bai").await;
    assert_eq!(
        inbox.person_of("+84987000111").await,
        Some(("doan-bai".into(), true))
    );
    let reply = inbox.sms_to("+84987000111").last().unwrap().clone();
    assert!(
        reply.contains("đã đăng ký nhận tin") && reply.contains("xã Đoan Bái"),
        "{reply}"
    );
    // Without one, or with a name that is no commune: nobody is added.
    inbox.sms("0987000222", "DK").await;
    inbox.sms("0987000333", "DK Hà Nội").await;
    inbox.sms("0987000444", "đăng ký lại").await;
    for number in ["+84987000222", "+84987000333", "+84987000444"] {
        assert_eq!(inbox.person_of(number).await, None, "{number}");
    }
    let kept = inbox.kept().await;
    assert_eq!(kept.len(), 1, "only the unclear commune: {kept:?}");
    assert_eq!(kept[0].1, "DK Hà Nội");
    // A district is not a commune to live in.
    inbox.sms("0987000555", "DK Hiệp Hòa").await;
    assert_eq!(inbox.person_of("+84987000555").await, None);

    // The person added receives the commune's next campaign message.
    inbox.app.set_clock("2026-03-08T08:00:00+07:00");
    let created = inbox.app.engine.scheduler.tick().await.unwrap().created;
    assert!(created[0].recipients >= 2, "{created:?}");
    inbox.app.engine.dispatcher.step().await.unwrap();
    assert!(inbox.sms_to("+84987000111").last().unwrap().contains("8/3"));
}

/// Private Telegram texts: urgent ones are forwarded with the hotlines answered once; others
/// are kept with the help; stop words still stop; group chatter is never kept.
#[tokio::test]
async fn private_telegram_texts_are_kept_and_group_chatter_is_not() {
    let inbox = spawn("2026-12-04T10:00:00+07:00").await;
    let app = &inbox.app;
    let mut bot = app.bot().await;
    app.subscribe("Lê Thị Hoa", "hoa-son", 5001).await;
    app.telegram.user_says(5001, "chồng em đánh em, cứu em");
    app.telegram.user_says(5001, "nó lại đánh em");
    app.telegram
        .group_says(-200, 5001, "họp chi bộ bị đánh giá thấp, bị đánh trượt");
    app.telegram
        .user_says(5001, "Khi nào có buổi tuyên truyền ở thôn?");
    bot.poll_once(0).await.unwrap();
    let replies = app.telegram.sent_to(5001);
    assert_eq!(replies.len(), 3);
    assert!(replies[0].text.contains("113") && replies[0].text.contains("UBND xã Hòa Sơn"));
    // Every answer to a call for help starts with the emergency numbers; the whole list of
    // hotlines goes once a day.
    assert!(
        replies[1]
            .text
            .starts_with("Nếu ông/bà đang gặp nguy hiểm, xin gọi ngay <b>113</b>")
            && !replies[1].text.contains("UBND xã Hòa Sơn"),
        "the hotlines once: {}",
        replies[1].text
    );
    assert!(replies[2].text.contains("/hotro"), "{}", replies[2].text);
    assert!(
        app.telegram.sent_to(-200).is_empty(),
        "nothing answers group chatter"
    );
    for _ in 0..3 {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(5));
    }
    let forwards = app.telegram.sent_to(CONTACT_POINT);
    assert_eq!(forwards.len(), 1, "one forward per sender in ten minutes");
    assert!(forwards[0].text.contains("Telegram") && !forwards[0].text.contains("5001"));
    let kept = inbox.kept().await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!((kept[0].2, kept[1].2, kept[2].2), (true, true, false));

    app.telegram.user_says(5001, "dừng");
    bot.poll_once(0).await.unwrap();
    assert!(
        app.telegram
            .sent_to(5001)
            .last()
            .unwrap()
            .text
            .contains("đã dừng nhận tin")
    );
    assert_eq!(inbox.kept().await.len(), 3, "a stop word is a command");
}

/// Texts are deleted `inbox.keep_days` (90) after they came, by the dispatcher's upkeep, with
/// what was queued for them.
#[tokio::test]
async fn texts_are_deleted_after_the_configured_days() {
    let inbox = spawn("2026-01-01T10:00:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    inbox.sms("0912345678", "cứu em").await;
    app.engine.dispatcher.step().await.unwrap();
    app.advance(Duration::days(2));
    inbox.sms("0912345678", "cảm ơn cán bộ xã").await;
    app.advance(Duration::days(89));
    app.engine.dispatcher.step().await.unwrap();
    let kept = inbox.kept().await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].1, "cảm ơn cán bộ xã");
    assert_eq!(app.count("SELECT COUNT(*) FROM inbox_outbox").await, 0);
    app.advance(Duration::days(2));
    app.engine.dispatcher.step().await.unwrap();
    assert!(inbox.kept().await.is_empty());
}

/// `telegram_chat` and `inbox.keep_days` are checked like every key, with their line.
#[test]
fn telegram_chat_and_keep_days_are_checked_with_their_line() {
    use loa::config::{Config, Env};
    let toml = "[campaign]\nname = \"x\"\nsender = \"y\"\n\
                [inbox]\nkeep_days = 0\n\
                [[areas]]\ncode = \"h\"\nname = \"Huyện H\"\ncontact_point = \"UBND huyện\"\ntelegram_chat = -1001\n\
                [[areas]]\ncode = \"a\"\nname = \"Xã A\"\nparent = \"h\"\npopulation = 1\ntelegram_chat = 0\n\
                [[areas]]\ncode = \"b\"\nname = \"Xã B\"\nparent = \"h\"\npopulation = 1\n";
    let problems = Config::parse(std::path::Path::new("loa.toml"), toml, &Env::default())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("loa.toml:5: inbox.keep_days"),
        "{problems}"
    );
    assert!(
        problems.contains("loa.toml:16: areas.telegram_chat: area \"a\": 0 is not"),
        "{problems}"
    );
    let fixed = toml
        .replace("keep_days = 0", "keep_days = 30")
        .replace("telegram_chat = 0\n", "");
    let config = Config::parse(std::path::Path::new("loa.toml"), &fixed, &Env::default()).unwrap();
    assert_eq!(config.inbox.keep_days, 30);
    assert_eq!(
        config.areas.telegram_chat("b"),
        Some(-1001),
        "the district's, above it"
    );
    let default = fixed.replace("[inbox]\nkeep_days = 30\n", "");
    let config =
        Config::parse(std::path::Path::new("loa.toml"), &default, &Env::default()).unwrap();
    assert_eq!(config.inbox.keep_days, 90);
}

/// A staff answer waits out the quiet hours (an urgent forward does not: see above), then goes
/// back on the channel the text came by.
#[tokio::test]
async fn an_answer_waits_for_the_end_of_quiet_hours() {
    use loa::console::{Actor, Role};
    let inbox = spawn("2026-12-04T20:50:00+07:00").await;
    let app = &inbox.app;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", NUMBER).await;
    inbox.sms("0912345678", "Mai xã có họp không ạ?").await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM inbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    app.set_clock("2026-12-04T22:00:00+07:00");
    let lan = Actor {
        id: "user:lan".into(),
        name: "lan".into(),
        role: Role::Staff,
        area: Some("hoa-son".into()),
    };
    let config = &app.setup.config;
    let answered = loa::inbound::inbox::answer(
        &app.db,
        config,
        &lan,
        id,
        "Có, 8 giờ sáng.",
        app.clock_now(),
    )
    .await
    .unwrap();
    assert_eq!(answered.state, loa::inbound::inbox::State::Answered);
    let before = inbox.sms_to(NUMBER).len();
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(inbox.sms_to(NUMBER).len(), before, "not at 22:00");
    app.set_clock("2026-12-05T07:00:00+07:00");
    app.engine.dispatcher.step().await.unwrap();
    let last = inbox.sms_to(NUMBER).last().unwrap().clone();
    assert_eq!(last, format!("{}: Có, 8 giờ sáng.", config.campaign.sender));
    // Staff of another commune cannot answer it.
    let other = Actor {
        area: Some("xuan-cam".into()),
        ..lan
    };
    let refused =
        loa::inbound::inbox::answer(&app.db, config, &other, id, "x", app.clock_now()).await;
    assert!(
        matches!(refused, Err(loa::console::ConsoleError::NotFound)),
        "{refused:?}"
    );
}
