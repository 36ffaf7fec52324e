//! The residents' bot through the fake Bot API: `getUpdates` returns scripted updates and the
//! tests assert the replies, the stored rows, and what the next occurrence sends.

mod common;

use chrono::Duration;
use common::{BOT_TOKEN, TestApp};
use serde_json::Value;

const RESIDENT: i64 = 5001;
const ADMIN: i64 = 9001;

async fn app() -> TestApp {
    TestApp::spawn_adjusted("2023-03-08T07:00:00+07:00", |c| {
        c.telegram.as_mut().unwrap().admins = vec![ADMIN];
    })
    .await
}

fn buttons(markup: &Value) -> Vec<(String, String)> {
    markup["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["callback_data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn start_asks_consent_then_a_commune_and_subscribes() {
    let app = app().await;
    let mut bot = app.bot().await;
    assert_eq!(
        app.telegram.other_calls("setMyCommands").len(),
        1,
        "the command list is registered"
    );
    let commands = &app.telegram.other_calls("setMyCommands")[0].params["commands"];
    assert!(
        commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "hotro")
    );

    app.telegram.user_says(RESIDENT, "/start");
    assert_eq!(bot.poll_once(0).await.unwrap(), 1);
    let consent = &app.telegram.sent_to(RESIDENT)[0];
    // How often, counted from the calendar: the busiest month of the year.
    let setup = &app.setup;
    let year = 2023;
    let mut per_month = [0; 12];
    for fire in setup
        .calendar
        .plan(
            chrono::NaiveDate::from_ymd_opt(year, 1, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(year, 12, 31).unwrap(),
            setup.config.campaign.time_zone,
        )
        .iter()
        .filter(|f| f.fires())
    {
        per_month[fire.at[5..7].parse::<usize>().unwrap() - 1] += 1;
    }
    let most = per_month.iter().max().unwrap();
    assert!(
        consent
            .text
            .contains(&format!("nhiều nhất {most} tin trong một tháng"))
            && consent.text.contains("21:00 đến 07:00")
            && consent.text.contains("/stop"),
        "{}",
        consent.text
    );
    let first_page = buttons(consent.reply_markup.as_ref().unwrap());
    assert_eq!(
        first_page
            .iter()
            .filter(|(_, d)| d.starts_with("area:"))
            .count(),
        8,
        "paged: 8 communes a page"
    );
    assert!(
        first_page
            .iter()
            .any(|(t, d)| t == "Sau ›" && d == "page:1")
    );

    // Next page, then a commune.
    app.telegram
        .user_presses(RESIDENT, consent.message_id, "page:1");
    bot.poll_once(0).await.unwrap();
    let edited = &app.telegram.other_calls("editMessageReplyMarkup")[0].params;
    assert!(
        buttons(&edited["reply_markup"])
            .iter()
            .any(|(t, _)| t == "‹ Trước")
    );
    app.telegram
        .user_presses(RESIDENT, consent.message_id, "area:bac-ly");
    bot.poll_once(0).await.unwrap();
    let confirmation = app.telegram.sent_to(RESIDENT).last().unwrap().text.clone();
    assert!(confirmation.contains("xã Bắc Lý"), "{confirmation}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons p JOIN contacts c ON c.person_id = p.id WHERE p.area_code = 'bac-ly' AND c.address = '5001'").await,
        1
    );
    // Every callback is acknowledged.
    assert_eq!(app.telegram.other_calls("answerCallbackQuery").len(), 2);
}

#[tokio::test]
async fn a_poster_link_shows_the_consent_for_its_commune_and_one_button_subscribes() {
    let app = app().await;
    let mut bot = app.bot().await;
    // `t.me/<bot>?start=doan-bai` opens the chat and sends this.
    app.telegram.user_says(RESIDENT, "/start doan-bai");
    bot.poll_once(0).await.unwrap();
    let consent = &app.telegram.sent_to(RESIDENT)[0];
    assert!(
        consent.text.contains("nhiều nhất")
            && consent.text.contains("/stop")
            && consent.text.contains("Nơi nhận tin: <b>Xã Đoan Bái</b>"),
        "{}",
        consent.text
    );
    assert_eq!(
        buttons(consent.reply_markup.as_ref().unwrap()),
        [(
            "✅ Đồng ý nhận tin".to_string(),
            "poster:doan-bai".to_string()
        )],
        "one confirm button, the commune already chosen"
    );
    app.telegram
        .user_presses(RESIDENT, consent.message_id, "poster:doan-bai");
    bot.poll_once(0).await.unwrap();
    let confirmation = app.telegram.sent_to(RESIDENT).last().unwrap().text.clone();
    assert!(confirmation.contains("xã Đoan Bái"), "{confirmation}");
    let row = sqlx::query(
        "SELECT p.area_code, p.consent_via, p.consent_detail FROM persons p
         JOIN contacts c ON c.person_id = p.id WHERE c.channel = 'telegram' AND c.address = $1",
    )
    .bind(RESIDENT.to_string())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    use sqlx::Row;
    assert_eq!(row.get::<String, _>(0), "doan-bai");
    assert_eq!(
        row.get::<String, _>(1),
        "poster",
        "counted as a poster subscription"
    );
    assert_eq!(row.get::<Option<String>, _>(2).as_deref(), Some("doan-bai"));

    // A link naming no commune (or a district) is the ordinary /start.
    for link in ["/start khong-co", "/start hiep-hoa"] {
        app.telegram.user_says(RESIDENT + 1, link);
        bot.poll_once(0).await.unwrap();
        let answer = app.telegram.sent_to(RESIDENT + 1).last().unwrap().clone();
        assert!(
            buttons(answer.reply_markup.as_ref().unwrap())
                .iter()
                .any(|(_, d)| d.starts_with("area:")),
            "{link}: the commune keyboard"
        );
    }
    // A forged poster button in a group does nothing.
    app.telegram
        .user_presses(RESIDENT + 2, 1, "poster:hiep-hoa");
    bot.poll_once(0).await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons WHERE consent_via = 'poster'")
            .await,
        1
    );
}

async fn subscribed(app: &TestApp, bot: &mut loa::bot::Poller, user: i64, area: &str) {
    app.telegram.user_says(user, "/start");
    bot.poll_once(0).await.unwrap();
    app.telegram.user_presses(user, 1, &format!("area:{area}"));
    bot.poll_once(0).await.unwrap();
}

/// A Telegram display name ("Cư dân", a nickname) is never printed as "ông/bà <nickname>":
/// messages greet a subscriber by name only once they give it with /ten.
#[tokio::test]
async fn messages_greet_by_name_only_a_name_the_resident_gave() {
    let mut app = app().await;
    let mut bot = app.bot().await;
    subscribed(&app, &mut bot, 6200, "bac-ly").await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    let first = app
        .telegram
        .sent_to(6200)
        .into_iter()
        .find(|m| m.text.contains("8/3"))
        .unwrap();
    assert!(first.text.contains("Kính gửi ông/bà,"), "{}", first.text);
    assert!(!first.text.contains("Cư dân"), "{}", first.text);

    app.telegram.user_says(6200, "/ten   Nguyễn  Thị Lan ");
    bot.poll_once(0).await.unwrap();
    let answer = app.telegram.sent_to(6200).last().unwrap().text.clone();
    assert!(answer.contains("ông/bà <b>Nguyễn Thị Lan</b>"), "{answer}");
    app.telegram.user_says(6200, "/ten");
    bot.poll_once(0).await.unwrap();
    let usage = app.telegram.sent_to(6200).last().unwrap().text.clone();
    assert!(usage.contains("/ten Nguyễn Thị Lan"), "{usage}");

    app.set_clock("2023-06-01T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    let june = app.telegram.sent_to(6200).last().unwrap().text.clone();
    assert!(june.contains("Kính gửi ông/bà Nguyễn Thị Lan,"), "{june}");
}

#[tokio::test]
async fn stop_in_any_spelling_opts_out_at_once_and_nothing_more_is_sent() {
    let mut app = app().await;
    let mut bot = app.bot().await;
    for (i, word) in ["/stop", "dừng", "HUỶ", "hủy", "Dung"].iter().enumerate() {
        let user = 6000 + i as i64;
        subscribed(&app, &mut bot, user, "mai-dinh").await;
        app.telegram.user_says(user, word);
        bot.poll_once(0).await.unwrap();
        let reply = app.telegram.sent_to(user).last().unwrap().text.clone();
        assert!(reply.contains("Ông/bà đã dừng nhận tin"), "{word}: {reply}");
    }
    // Someone who stops after the fan-out gets nothing either: checked at send time.
    subscribed(&app, &mut bot, 6100, "mai-dinh").await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(
        created[0].recipients, 1,
        "the five who stopped are not in the fan-out"
    );
    app.telegram.user_says(6100, "/stop");
    bot.poll_once(0).await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.skipped, 1, "{step:?}");
    for user in [6000, 6001, 6002, 6003, 6004, 6100] {
        assert!(
            app.telegram
                .sent_to(user)
                .iter()
                .all(|m| !m.text.contains("8/3")),
            "user {user} got a campaign message"
        );
    }
    // /start again subscribes again, after the same consent.
    app.telegram.user_says(6000, "/start");
    bot.poll_once(0).await.unwrap();
    assert!(
        app.telegram
            .sent_to(6000)
            .last()
            .unwrap()
            .text
            .contains("tin trong một tháng")
    );
    app.telegram.user_presses(6000, 1, "area:mai-dinh");
    bot.poll_once(0).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM persons p JOIN contacts c ON c.person_id = p.id WHERE c.address = '6000' AND p.opted_out_at IS NULL").await, 1);
}

#[tokio::test]
async fn hotro_answers_anyone_and_records_nothing() {
    let app = app().await;
    let mut bot = app.bot().await;
    app.telegram.user_says(7001, "/hotro");
    bot.poll_once(0).await.unwrap();
    let text = &app.telegram.sent_to(7001)[0].text;
    for hotline in &app.setup.config.support.hotlines {
        assert!(text.contains(&hotline.number), "{text}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM persons").await, 0);
    // A subscriber gets their commune's contact point.
    subscribed(&app, &mut bot, 7002, "hoa-son").await;
    app.telegram.user_says(7002, "/hotro");
    bot.poll_once(0).await.unwrap();
    assert!(
        app.telegram
            .sent_to(7002)
            .last()
            .unwrap()
            .text
            .contains("UBND xã Hòa Sơn")
    );
    // /khuvuc moves them.
    app.telegram.user_says(7002, "/khuvuc");
    bot.poll_once(0).await.unwrap();
    app.telegram.user_presses(7002, 1, "area:xuan-cam");
    bot.poll_once(0).await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons WHERE area_code = 'xuan-cam'")
            .await,
        1
    );
    // /help comes from the command enum.
    app.telegram.user_says(7002, "/help");
    bot.poll_once(0).await.unwrap();
    let help = app.telegram.sent_to(7002).last().unwrap().text.clone();
    assert!(
        help.contains("/hotro") && help.contains("/stop") && help.contains("/khuvuc"),
        "{help}"
    );
}

#[tokio::test]
async fn the_read_button_records_one_engagement_per_person_per_occurrence() {
    let mut app = app().await;
    let mut bot = app.bot().await;
    subscribed(&app, &mut bot, RESIDENT, "bac-ly").await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    let campaign = app
        .telegram
        .sent_to(RESIDENT)
        .into_iter()
        .find(|m| m.text.contains("8/3"))
        .unwrap();
    let (label, data) = buttons(campaign.reply_markup.as_ref().unwrap()).remove(0);
    assert_eq!(label, "✅ Tôi đã đọc");
    for _ in 0..2 {
        app.telegram
            .user_presses(RESIDENT, campaign.message_id, &data);
        bot.poll_once(0).await.unwrap();
    }
    // Someone else cannot press it for them.
    app.telegram.user_presses(4444, campaign.message_id, &data);
    bot.poll_once(0).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM engagements").await, 1);
    let answers = app.telegram.other_calls("answerCallbackQuery");
    assert_eq!(answers.last().unwrap().params["text"], "Xin cảm ơn!");
    assert!(
        answers
            .iter()
            .any(|a| a.params["text"] == "Cảm ơn ông/bà đã đọc tin!")
    );
    let c = &app.setup.config;
    let report = loa::reach::report(
        &app.db,
        &c.areas,
        c.campaign.target,
        "2023-01-01".parse().unwrap(),
        "2023-12-31".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((report.total.reached, report.total.engaged), (1, 1));
}

#[tokio::test]
async fn admin_commands_are_for_admins_only() {
    let app = app().await;
    let mut bot = app.bot().await;
    app.telegram.user_says(ADMIN, "/reach");
    app.telegram.user_says(ADMIN, "/upcoming");
    app.telegram.user_says(RESIDENT, "/reach");
    bot.poll_once(0).await.unwrap();
    let admin = app.telegram.sent_to(ADMIN);
    assert!(
        admin[0].text.contains("Tiếp cận năm 2023") && admin[0].text.contains("Xa mục tiêu nhất"),
        "{}",
        admin[0].text
    );
    let upcoming = &admin[1].text;
    assert_eq!(upcoming.matches("• ").count(), 10, "{upcoming}");
    assert!(upcoming.contains("08/03/2023 08:00"), "{upcoming}");
    let resident = &app.telegram.sent_to(RESIDENT)[0].text;
    assert!(
        !resident.contains("Tiếp cận") && resident.contains("/start"),
        "{resident}"
    );
}

#[tokio::test]
async fn organisations_are_registered_by_an_admin_and_counted_apart() {
    let mut app = app().await;
    let mut bot = app.bot().await;
    let group = -100_123;
    app.telegram
        .group_says(group, ADMIN, "/tochuc <b>nowhere</b>");
    app.telegram.group_says(group, ADMIN, "/tochuc bac-ly");
    app.telegram.group_says(group, RESIDENT, "/tochuc bac-ly");
    bot.poll_once(0).await.unwrap();
    let replies = app.telegram.sent_to(group);
    assert!(
        replies[0].text.contains("&lt;b&gt;nowhere&lt;/b&gt;"),
        "user input is escaped: {}",
        replies[0].text
    );
    assert!(
        replies[1].text.contains("là tổ chức của xã Bắc Lý"),
        "{}",
        replies[1].text
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons WHERE kind = 'organisation'")
            .await,
        1
    );

    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    assert!(
        app.telegram
            .sent_to(group)
            .iter()
            .any(|m| m.text.contains("8/3"))
    );
    let c = &app.setup.config;
    let report = loa::reach::report(
        &app.db,
        &c.areas,
        c.campaign.target,
        "2023-01-01".parse().unwrap(),
        "2023-12-31".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.organisations_informed,
            report.organisations_registered
        ),
        (1, 1)
    );
    assert_eq!(report.total.reached, 0, "an organisation is not a resident");
}

#[tokio::test]
async fn sharing_a_known_phone_number_joins_the_imported_person() {
    let app = app().await;
    let mut bot = app.bot().await;
    let person = app
        .subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.telegram.user_shares_contact(RESIDENT, "84912345678");
    bot.poll_once(0).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM persons").await, 1);
    let contacts = app.count("SELECT COUNT(*) FROM contacts").await;
    assert_eq!(contacts, 2, "one person, two contacts");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE channel = 'telegram' AND address = '5001'")
            .await,
        1
    );
    let _ = person;
}

#[tokio::test]
async fn webhook_updates_need_the_secret_token_and_use_the_same_handlers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = TestApp::spawn_adjusted("2023-03-08T07:00:00+07:00", |c| {
        let telegram = c.telegram.as_mut().unwrap();
        telegram.admins = vec![ADMIN];
        telegram.webhook_secret = Some("webhook_secret-1".into());
    })
    .await;
    app.serve_web(listener);
    let update = serde_json::json!({
        "update_id": 1,
        "message": {"message_id": 1, "date": 1678237200, "chat": {"id": 8001, "type": "private", "first_name": "A"},
                    "from": {"id": 8001, "is_bot": false, "first_name": "A"}, "text": "/hotro",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
    });
    let client = reqwest::Client::new();
    let post = |secret: Option<&str>| {
        let mut r = client
            .post(format!("{base}/webhooks/telegram"))
            .json(&update);
        if let Some(s) = secret {
            r = r.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert!(app.telegram.sent_to(8001).is_empty(), "ignored");
    assert_eq!(post(Some("webhook_secret-1")).await.unwrap().status(), 200);
    assert!(app.telegram.sent_to(8001)[0].text.contains("Cần giúp đỡ"));
    let _ = (BOT_TOKEN, Duration::zero());
}

const GROUP: i64 = -100_777;
const GROUP_ADMIN: i64 = 7100;
const MEMBER: i64 = 7200;

/// The organisation of `GROUP`: (area, kind, opted out).
async fn organisation(app: &TestApp) -> (String, String, bool) {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT p.area_code, p.kind, p.opted_out_at FROM persons p JOIN contacts c ON c.person_id = p.id
         WHERE c.channel = 'telegram' AND c.address = $1",
    )
    .bind(GROUP.to_string())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    (
        row.try_get(0).unwrap(),
        row.try_get(1).unwrap(),
        row.try_get::<Option<i64>, _>(2).unwrap().is_some(),
    )
}

/// What the bot sent to the group with an inline keyboard.
fn keyboards_in_group(app: &TestApp) -> usize {
    app.telegram
        .sent_to(GROUP)
        .iter()
        .filter(|m| m.reply_markup.is_some())
        .count()
}

#[tokio::test]
async fn in_a_group_only_its_administrators_and_loa_s_admins_stop_or_move_the_organisation() {
    let app = app().await;
    let mut bot = app.bot().await;
    app.telegram
        .set_member_status(GROUP, GROUP_ADMIN, "administrator");
    app.telegram.set_member_status(GROUP, MEMBER, "member");
    app.telegram.group_says(GROUP, ADMIN, "/tochuc bac-ly");
    bot.poll_once(0).await.unwrap();
    let registered = organisation(&app).await;
    assert_eq!(registered, ("bac-ly".into(), "organisation".into(), false));

    // A plain member: /stop, /khuvuc and a commune button change nothing.
    app.telegram.group_says(GROUP, MEMBER, "/stop");
    app.telegram.group_says(GROUP, MEMBER, "/khuvuc");
    app.telegram
        .user_presses_in_group(GROUP, MEMBER, 1, "area:mai-dinh");
    bot.poll_once(0).await.unwrap();
    assert_eq!(organisation(&app).await, registered);
    assert_eq!(keyboards_in_group(&app), 0, "no keyboard for a member");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons").await,
        1,
        "the group chat did not become a resident"
    );
    assert!(
        !app.telegram.other_calls("getChatMember").is_empty(),
        "Telegram is asked who administers the group"
    );

    // The group's administrator moves the organisation with the keyboard; it stays one.
    app.telegram.group_says(GROUP, GROUP_ADMIN, "/khuvuc");
    bot.poll_once(0).await.unwrap();
    assert_eq!(keyboards_in_group(&app), 1);
    app.telegram
        .user_presses_in_group(GROUP, GROUP_ADMIN, 2, "area:mai-dinh");
    bot.poll_once(0).await.unwrap();
    assert_eq!(
        organisation(&app).await,
        ("mai-dinh".into(), "organisation".into(), false)
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM persons").await, 1);

    // Loa's admin may too, without being the group's administrator.
    app.telegram
        .user_presses_in_group(GROUP, ADMIN, 2, "area:hoa-son");
    bot.poll_once(0).await.unwrap();
    assert_eq!(organisation(&app).await.0, "hoa-son");

    // The group's administrator stops it.
    app.telegram.group_says(GROUP, GROUP_ADMIN, "/stop");
    bot.poll_once(0).await.unwrap();
    assert!(organisation(&app).await.2, "opted out");
    assert_eq!(organisation(&app).await.1, "organisation");
}

#[tokio::test]
async fn a_group_chat_never_becomes_a_resident() {
    let app = app().await;
    let mut bot = app.bot().await;
    app.telegram
        .set_member_status(GROUP, GROUP_ADMIN, "creator");
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;

    // Subscribing is for private chats: /start in a group points there, with no keyboard.
    app.telegram.group_says(GROUP, GROUP_ADMIN, "/start");
    bot.poll_once(0).await.unwrap();
    let replies = app.telegram.sent_to(GROUP);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].text.contains("nhắn riêng"),
        "{}",
        replies[0].text
    );
    assert_eq!(keyboards_in_group(&app), 0);

    // An unregistered group is told it is not registered and whom to ask, even its administrator.
    app.telegram.group_says(GROUP, GROUP_ADMIN, "/khuvuc");
    bot.poll_once(0).await.unwrap();
    let told = app.telegram.sent_to(GROUP).last().unwrap().text.clone();
    assert!(
        told.contains("chưa được đăng ký") && told.contains("liên hệ"),
        "{told}"
    );
    assert_eq!(keyboards_in_group(&app), 0);

    // A commune button pressed in the group (an old keyboard) subscribes no one.
    app.telegram
        .user_presses_in_group(GROUP, GROUP_ADMIN, 1, "area:bac-ly");
    // A contact shared in the group does not join the group chat to the known number.
    app.telegram
        .group_shares_contact(GROUP, MEMBER, "+84912345678");
    bot.poll_once(0).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM persons").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE channel = 'telegram'")
            .await,
        0
    );

    // Registered by Loa's admin, the group's creator may choose its commune.
    app.telegram.group_says(GROUP, ADMIN, "/tochuc bac-ly");
    app.telegram.group_says(GROUP, GROUP_ADMIN, "/khuvuc");
    bot.poll_once(0).await.unwrap();
    assert_eq!(keyboards_in_group(&app), 1);
}

#[tokio::test]
async fn callback_data_names_a_commune_and_a_real_page() {
    let app = app().await;
    let mut bot = app.bot().await;
    app.telegram.user_says(RESIDENT, "/start");
    bot.poll_once(0).await.unwrap();
    // The district itself, an unknown code, nonsense pages: refused, nothing edited.
    for data in [
        "area:hiep-hoa",
        "area:khong-co",
        "area:",
        "page:999",
        "page:-1",
        "page:abc",
    ] {
        app.telegram.user_presses(RESIDENT, 1, data);
    }
    bot.poll_once(0).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM persons").await, 0);
    assert!(
        app.telegram
            .other_calls("editMessageReplyMarkup")
            .is_empty()
    );
    assert_eq!(
        app.telegram.other_calls("answerCallbackQuery").len(),
        6,
        "every press is answered"
    );
    // A real commune still works.
    app.telegram.user_presses(RESIDENT, 1, "area:bac-ly");
    bot.poll_once(0).await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons WHERE area_code = 'bac-ly' AND kind = 'resident'")
            .await,
        1
    );
}
