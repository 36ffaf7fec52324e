//! The spine end to end: a schedule fires, the fan-out makes one delivery per subscriber, the
//! dispatcher renders and sends through the (fake) Telegram Bot API, every outcome is recorded
//! and reach is counted. Runs on SQLite, and on PostgreSQL when `LOA_TEST_POSTGRES_URL` is set.

mod common;

use chrono::Duration;
use common::{TestApp, at};
use loa::dispatch::{StepReport, deliveries};
use loa::reach::{self, BandStatus};
use loa::scheduler::occurrences;

const BEFORE_8_MARCH: &str = "2023-03-08T07:59:00+07:00";

/// Residents in several communes, with their Telegram chats.
const RESIDENTS: [(&str, &str, i64); 4] = [
    ("Nguyễn Thị Lan", "bac-ly", 1001),
    ("Trần Văn Hùng", "mai-dinh", 1002),
    ("Lê Thị Hoa", "tt-thang", 1003),
    ("Phạm Thị Đào", "dong-lo", 1004),
];

async fn app_with_residents() -> TestApp {
    let app = TestApp::spawn_at(BEFORE_8_MARCH).await;
    for (name, area, chat) in RESIDENTS {
        app.subscribe(name, area, chat).await;
    }
    app
}

#[tokio::test]
async fn eight_march_fires_once_at_0800_and_each_subscriber_gets_their_message() {
    let mut app = app_with_residents().await;

    let early = app.engine.scheduler.tick().await.unwrap();
    assert!(early.created.is_empty(), "nothing is due at 07:59");

    app.advance(Duration::minutes(1));
    let due = app.engine.scheduler.tick().await.unwrap();
    assert_eq!(due.created.len(), 1);
    assert_eq!(due.created[0].schedule_id, "quoc-te-phu-nu-8-3");
    assert_eq!(due.created[0].fire_at, at("2023-03-08T08:00:00+07:00"));
    assert_eq!(due.created[0].recipients, RESIDENTS.len() as u64);

    // Ticking again, now or later, never makes a second occurrence.
    assert!(
        app.engine
            .scheduler
            .tick()
            .await
            .unwrap()
            .created
            .is_empty()
    );
    app.advance(Duration::minutes(5));
    assert!(
        app.engine
            .scheduler
            .tick()
            .await
            .unwrap()
            .created
            .is_empty()
    );
    assert_eq!(occurrences(&app.db).await.unwrap().len(), 1);

    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.sent, RESIDENTS.len(), "{step:?}");

    let sent = app.telegram.sent();
    assert_eq!(sent.len(), RESIDENTS.len());
    for (name, area, chat) in RESIDENTS {
        let to_chat = app.telegram.sent_to(chat);
        assert_eq!(to_chat.len(), 1, "chat {chat} gets exactly one message");
        let message = &to_chat[0];
        let commune = &app.setup.config.areas.get(area).unwrap().in_sentence;
        assert!(
            message.text.contains(name),
            "name rendered: {}",
            message.text
        );
        assert!(
            message.text.contains(commune.as_str()),
            "commune rendered: {}",
            message.text
        );
        assert!(
            !message.text.contains("8/3, ngày 8 tháng 3"),
            "no date doubled after the observance's name: {}",
            message.text
        );
        assert!(
            message.text.contains("Ngày Quốc tế Phụ nữ 8/3"),
            "observance rendered"
        );
        assert_eq!(message.parse_mode.as_deref(), Some("HTML"));
    }
    let records = deliveries(&app.db).await.unwrap();
    assert!(records.iter().all(|d| d.status == "sent"), "{records:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM delivery_attempts WHERE outcome = 'sent'")
            .await,
        4
    );

    // Nothing left to do.
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap(),
        StepReport::default()
    );
}

#[tokio::test]
async fn restart_between_fan_out_and_send_produces_no_duplicate() {
    let mut app = app_with_residents().await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();

    // A worker claims the batch, then the process dies before sending anything.
    let claimed = app.engine.dispatcher.claim().await.unwrap();
    assert_eq!(claimed.len(), RESIDENTS.len());
    app.restart();

    // The new process ticks over the same instant: no second occurrence, no second row.
    assert!(
        app.engine
            .scheduler
            .tick()
            .await
            .unwrap()
            .created
            .is_empty()
    );
    assert_eq!(deliveries(&app.db).await.unwrap().len(), RESIDENTS.len());

    // The dead worker's lease still holds: nobody sends yet.
    assert_eq!(app.engine.dispatcher.step().await.unwrap().claimed, 0);
    assert!(app.telegram.sent().is_empty());

    // Once it has passed, the rows are claimed again and each resident gets one message.
    app.advance(Duration::seconds(
        i64::from(app.setup.config.dispatch.lease_seconds) + 1,
    ));
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.sent, RESIDENTS.len());
    app.restart();
    assert_eq!(app.engine.dispatcher.step().await.unwrap().claimed, 0);
    for (_, _, chat) in RESIDENTS {
        assert_eq!(app.telegram.sent_to(chat).len(), 1, "chat {chat}");
    }
}

#[tokio::test]
async fn restart_right_after_fan_out_sends_each_message_once() {
    let mut app = app_with_residents().await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.restart();
    app.advance(Duration::seconds(30));
    assert!(
        app.engine
            .scheduler
            .tick()
            .await
            .unwrap()
            .created
            .is_empty()
    );
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().sent,
        RESIDENTS.len()
    );
    assert_eq!(app.telegram.sent().len(), RESIDENTS.len());
}

#[tokio::test]
async fn blocked_chat_is_marked_inactive_and_never_retried() {
    let mut app = app_with_residents().await;
    let blocked_chat = RESIDENTS[1].2;
    app.telegram.block(blocked_chat);
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();

    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(
        (step.sent, step.failed),
        (RESIDENTS.len() - 1, 1),
        "{step:?}"
    );
    let requests_after_first_try = app.telegram.requests();

    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE active = 0 AND address = '1002'")
            .await,
        1,
        "the blocked contact is marked inactive"
    );
    let failed: Vec<_> = deliveries(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.status == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].last_error.as_deref().unwrap().contains("blocked"),
        "{failed:?}"
    );

    // Hours later nothing is retried...
    app.advance(Duration::hours(6));
    assert_eq!(app.engine.dispatcher.step().await.unwrap().claimed, 0);
    // ...and next year's occurrence leaves the contact out.
    app.set_clock("2024-03-08T08:00:00+07:00");
    let next_year = app.engine.scheduler.tick().await.unwrap();
    assert_eq!(next_year.created[0].recipients, RESIDENTS.len() as u64 - 1);
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(
        app.telegram.requests() - requests_after_first_try,
        RESIDENTS.len() - 1,
        "no request ever goes to the blocked chat again"
    );
    assert!(app.telegram.sent_to(blocked_chat).is_empty());
}

#[tokio::test]
async fn rate_limited_send_waits_exactly_retry_after_then_delivers() {
    let mut app = app_with_residents().await;
    let chat = RESIDENTS[0].2;
    app.telegram.rate_limit_next(chat, 7);
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();

    let first = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(
        (first.sent, first.retrying),
        (RESIDENTS.len() - 1, 1),
        "{first:?}"
    );
    let waiting = deliveries(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.status == "pending")
        .unwrap();
    assert_eq!(
        waiting.due_at,
        at("2023-03-08T08:00:07+07:00"),
        "due exactly retry_after later"
    );
    assert_eq!(waiting.failures, 0, "a 429 is not a failure");

    app.advance(Duration::seconds(6));
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().claimed,
        0,
        "not before retry_after"
    );
    assert!(app.telegram.sent_to(chat).is_empty());

    app.advance(Duration::seconds(1));
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    assert_eq!(app.telegram.sent_to(chat).len(), 1);
    let done = deliveries(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == waiting.id)
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.attempts, done.failures),
        ("sent", 2, 0)
    );
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_retried_not_lost() {
    let mut app = app_with_residents().await;
    let chat = RESIDENTS[2].2;
    app.telegram.answer_not_json_next(chat);
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();

    let first = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(first.retrying, 1, "{first:?}");
    let waiting = deliveries(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.status == "pending")
        .unwrap();
    assert_eq!(waiting.failures, 1);

    // The first retry comes after retry_base_seconds, give or take 20 % jitter.
    let base = i64::from(app.setup.config.dispatch.retry_base_seconds);
    app.advance(Duration::seconds(base * 6 / 5 + 1));
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    assert_eq!(app.telegram.sent_to(chat).len(), 1);
}

#[tokio::test]
async fn a_greeting_that_could_not_be_sent_in_time_expires() {
    let mut app = app_with_residents().await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    // Telegram was unreachable all day: 8 March's greeting is not sent on 9 March.
    app.set_clock("2023-03-09T08:00:00+07:00");
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!((step.expired, step.sent), (RESIDENTS.len(), 0), "{step:?}");
    assert!(app.telegram.sent().is_empty());
}

#[tokio::test]
async fn a_fire_time_missed_while_down_is_caught_up_within_its_expiry() {
    // Loa was down at 08:00 and comes back at 10:00: the greeting still goes, once.
    let mut app = app_with_residents().await;
    app.set_clock("2023-03-08T10:00:00+07:00");
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].fire_at, at("2023-03-08T08:00:00+07:00"));
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().sent,
        RESIDENTS.len()
    );
}

#[tokio::test]
async fn reach_counts_each_person_once_per_period_and_rolls_up() {
    let mut app = app_with_residents().await;
    for year in ["2023", "2024"] {
        app.set_clock(&format!("{year}-03-08T08:00:00+07:00"));
        app.engine.scheduler.tick().await.unwrap();
        app.engine.dispatcher.step().await.unwrap();
    }
    assert_eq!(app.telegram.sent().len(), 2 * RESIDENTS.len());

    let config = &app.setup.config;
    let d = |s: &str| s.parse().unwrap();
    let one_year = reach::report(
        &app.db,
        &config.areas,
        config.campaign.target,
        d("2023-01-01"),
        d("2023-12-31"),
    )
    .await
    .unwrap();
    assert_eq!(one_year.total.code, "hiep-hoa");
    assert_eq!(one_year.total.reached, RESIDENTS.len() as u64);
    assert_eq!(
        one_year.total.population,
        config.areas.population("hiep-hoa")
    );
    assert_eq!(one_year.total.status, Some(BandStatus::Below));
    let bac_ly = one_year.areas.iter().find(|r| r.code == "bac-ly").unwrap();
    assert_eq!(bac_ly.reached, 1);
    assert_eq!(
        one_year
            .areas
            .iter()
            .find(|r| r.code == "hoa-son")
            .unwrap()
            .reached,
        0
    );

    // Two messages in two years: still one person each over both years.
    let both = reach::report(
        &app.db,
        &config.areas,
        config.campaign.target,
        d("2023-03-01"),
        d("2024-03-31"),
    )
    .await
    .unwrap();
    assert_eq!(both.total.reached, RESIDENTS.len() as u64);

    // A range that holds no message reaches no one.
    let june = reach::report(
        &app.db,
        &config.areas,
        config.campaign.target,
        d("2023-06-01"),
        d("2023-06-30"),
    )
    .await
    .unwrap();
    assert_eq!(june.total.reached, 0);
}

#[tokio::test]
async fn support_messages_name_the_hotlines_and_the_residents_own_contact_point() {
    let mut app = TestApp::spawn_at("2023-06-08T07:59:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 2001).await;
    app.subscribe("Trần Văn Hùng", "mai-dinh", 2002).await;
    app.advance(Duration::minutes(1));
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created[0].schedule_id, "pcbldg-hang-tuan");
    app.engine.dispatcher.step().await.unwrap();

    let bac_ly = &app.telegram.sent_to(2001)[0].text;
    for hotline in &app.setup.config.support.hotlines {
        assert!(
            bac_ly.contains(&hotline.number),
            "{} missing:\n{bac_ly}",
            hotline.number
        );
    }
    assert!(bac_ly.contains("UBND xã Bắc Lý"), "{bac_ly}");
    assert!(!bac_ly.contains("Mai Đình"));
    assert!(
        app.telegram.sent_to(2002)[0]
            .text
            .contains("UBND xã Mai Đình")
    );
}

/// The theme is the schedules' for the message's year, fixed on the occurrence when it is
/// created: the same template says 2024's theme in 2024.
#[tokio::test]
async fn the_june_launch_carries_the_theme_of_its_year() {
    let mut app = TestApp::spawn_at("2024-06-01T07:59:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "tt-thang", 2001).await;
    app.advance(Duration::minutes(1));
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created[0].schedule_id, "pcbldg-phat-dong");
    let stored = app
        .count(
            "SELECT COUNT(*) FROM occurrences WHERE schedule_id = 'pcbldg-phat-dong'
             AND theme = 'Chấm dứt bạo lực, vun đắp yêu thương'",
        )
        .await;
    assert_eq!(stored, 1, "the theme is kept with the occurrence");
    app.engine.dispatcher.step().await.unwrap();
    let text = &app.telegram.sent_to(2001)[0].text;
    assert!(
        text.contains("với chủ đề:\n\n<b>“Chấm dứt bạo lực, vun đắp yêu thương”</b>"),
        "{text}"
    );
    // Names and roles as a thị trấn has them.
    assert!(text.contains("mỗi gia đình ở thị trấn Thắng"), "{text}");
    assert!(
        text.contains("tổ trưởng tổ dân phố, công an thị trấn"),
        "{text}"
    );
}

#[tokio::test]
async fn a_lead_up_message_counts_the_days_to_its_observance() {
    let mut app = TestApp::spawn_at("2023-10-18T07:59:00+07:00").await;
    app.subscribe("Lê Thị Hoa", "tt-thang", 3001).await;
    app.advance(Duration::minutes(1));
    assert_eq!(
        app.engine.scheduler.tick().await.unwrap().created[0].schedule_id,
        "phu-nu-viet-nam-truoc"
    );
    app.engine.dispatcher.step().await.unwrap();
    let text = &app.telegram.sent_to(3001)[0].text;
    assert!(
        text.contains("Còn 2 ngày nữa là Ngày Phụ nữ Việt Nam 20/10"),
        "{text}"
    );
}

#[tokio::test]
async fn the_series_keeps_off_tet_and_the_scheduler_agrees_with_the_plan() {
    // The series' February message fires on Saturday 10 February 2024, the first day of Tết. Loa
    // runs through February ticking every three hours; what it creates is what `loa plan`
    // shows: the message on Thursday 15th, after the announced break (8–14 February).
    let mut app = TestApp::spawn_at("2024-02-01T00:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 4001).await;
    let mut created = Vec::new();
    for _ in 0..29 * 8 {
        app.advance(Duration::hours(3));
        let report = app.engine.scheduler.tick().await.unwrap();
        assert!(report.missed.is_empty(), "{:?}", report.missed);
        created.extend(
            report
                .created
                .into_iter()
                .map(|o| (o.schedule_id, o.fire_at)),
        );
    }
    let tz = app.setup.config.campaign.time_zone;
    let planned: Vec<(String, chrono::DateTime<chrono::Utc>)> = app
        .setup
        .calendar
        .plan(
            chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            tz,
        )
        .into_iter()
        .filter(|p| p.fires())
        .map(|p| (p.schedule, at(&p.at)))
        .collect();
    assert_eq!(created, planned);
    assert_eq!(
        created,
        [(
            "phap-luat-02-chien-luoc".to_string(),
            at("2024-02-15T09:00:00+07:00")
        )]
    );
    // One occurrence, keyed by the time it fired, with its resident's delivery.
    let stored = occurrences(&app.db).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].fire_at, at("2024-02-15T09:00:00+07:00"));
    assert_eq!(stored[0].recipients, 1);
}

/// The series' May message speaks of the 2022 law on domestic violence as coming while it is
/// (sent on 10 May 2023) and as in force a year later.
#[tokio::test]
async fn the_law_on_domestic_violence_is_announced_before_1_july_2023_and_in_force_after() {
    for (now, chat, before) in [
        ("2023-05-10T08:59:00+07:00", 5001, true),
        ("2024-05-10T08:59:00+07:00", 5002, false),
    ] {
        let mut app = TestApp::spawn_at(now).await;
        app.subscribe("Nguyễn Thị Lan", "bac-ly", chat).await;
        app.advance(Duration::minutes(1));
        let created = app.engine.scheduler.tick().await.unwrap().created;
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].schedule_id, "phap-luat-05-bao-luc-gia-dinh");
        app.engine.dispatcher.step().await.unwrap();
        let text = &app.telegram.sent_to(chat)[0].text;
        assert!(text.contains("13/2022/QH15"), "{text}");
        assert_eq!(
            text.contains("<b>có hiệu lực từ ngày 1/7/2023</b>"),
            before,
            "{now}: {text}"
        );
        assert_eq!(text.contains("thông qua ngày 14/11/2022"), before, "{text}");
    }
}

/// The youth schedule reaches the residents tagged `thanh-nien`, and only them.
#[tokio::test]
async fn the_summer_message_for_the_youth_reaches_only_thanh_nien() {
    let mut app = TestApp::spawn_at("2023-07-20T08:59:00+07:00").await;
    let now = app.clock_now();
    let young = loa::audience::add_person(
        &app.db,
        &app.setup.config.areas,
        "Đỗ Văn Nam",
        "tt-thang",
        &["thanh-nien"],
        now,
    )
    .await
    .unwrap();
    loa::audience::add_contact(
        &app.db,
        young,
        loa::config::ChannelKind::Telegram,
        "6001",
        now,
    )
    .await
    .unwrap();
    app.subscribe("Nguyễn Thị Lan", "tt-thang", 6002).await;
    app.advance(Duration::minutes(1));
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].schedule_id, "thanh-nien-07-tinh-yeu-ton-trong");
    assert_eq!(created[0].recipients, 1);
    app.engine.dispatcher.step().await.unwrap();
    let text = &app.telegram.sent_to(6001)[0].text;
    assert!(text.contains("các bạn thanh niên thị trấn Thắng"), "{text}");
    assert!(app.telegram.sent_to(6002).is_empty());
}
