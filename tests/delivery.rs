//! The delivery engine under faults and limits: quiet hours, expiry, the daily cap, catch-up
//! after downtime, retries to `dead`, giving work back on shutdown, several engines on one
//! database, and Telegram's rate limits shared by the processes of one bot token.
//! Runs on SQLite, and on PostgreSQL when `LOA_TEST_POSTGRES_URL` is set.

mod common;

use std::collections::HashMap;

use chrono::Duration;
use common::{TestApp, at};
use loa::config::ChannelKind;
use loa::dispatch::deliveries;
use loa::fakes::telegram::EnforcedLimits;
use loa::scheduler::occurrences;

fn schedule(app: &TestApp, id: &str) -> loa::calendar::Schedule {
    app.setup.calendar.get(id).unwrap().clone()
}

#[tokio::test]
async fn nothing_is_sent_in_quiet_hours_across_midnight() {
    let app = TestApp::spawn_at("2023-03-08T21:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 1).await;
    // An occurrence due at 21:00 that stays valid until 09:00 the next morning.
    let mut late = schedule(&app, "quoc-te-phu-nu-8-3");
    late.expires_after = Duration::hours(12);
    app.engine
        .scheduler
        .create_occurrence(&late, at("2023-03-08T21:00:00+07:00"))
        .await
        .unwrap();

    for local in [
        "2023-03-08T21:00:00+07:00",
        "2023-03-08T23:59:59+07:00",
        "2023-03-09T03:00:00+07:00",
        "2023-03-09T06:59:59+07:00",
    ] {
        app.set_clock(local);
        assert_eq!(
            app.engine.dispatcher.step().await.unwrap().claimed,
            0,
            "quiet at {local}"
        );
    }
    assert!(app.telegram.sent().is_empty());
    app.set_clock("2023-03-09T07:00:00+07:00");
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().sent,
        1,
        "sent when the quiet hours end"
    );
}

#[tokio::test]
async fn a_message_that_expires_during_the_night_is_never_sent() {
    let app = TestApp::spawn_at("2023-03-08T19:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 1).await;
    let evening = schedule(&app, "quoc-te-phu-nu-8-3");
    app.engine
        .scheduler
        .create_occurrence(&evening, at("2023-03-08T19:00:00+07:00"))
        .await
        .unwrap();
    app.telegram.answer_not_json_next(1);
    assert_eq!(app.engine.dispatcher.step().await.unwrap().retrying, 1);
    // Quiet from 21:00; expired at 07:00 (19:00 + 12 h), exactly when the quiet hours end.
    app.set_clock("2023-03-09T07:00:00+07:00");
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!((step.expired, step.sent), (1, 0), "{step:?}");
    assert!(app.telegram.sent().is_empty());
    assert_eq!(deliveries(&app.db).await.unwrap()[0].status, "expired");
}

#[tokio::test]
async fn at_most_two_campaign_messages_a_day_the_rest_wait_for_tomorrow_or_expire() {
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 1).await;
    for id in [
        "quoc-te-phu-nu-8-3",
        "quoc-te-phu-nu-truoc",
        "phap-luat-02-chien-luoc",
    ] {
        let mut s = schedule(&app, id);
        // Valid long enough to wait until tomorrow (an expiring one expires instead: see
        // `a_message_that_expires_during_the_night_is_never_sent`).
        s.expires_after = Duration::days(2);
        let created = app
            .engine
            .scheduler
            .create_occurrence(&s, at("2023-03-08T08:00:00+07:00"))
            .await
            .unwrap();
        assert!(created.is_some());
    }
    // One message a second to one chat (Telegram's per-chat limit), two a day to one person.
    let mut sent_today = 0;
    for _ in 0..5 {
        sent_today += app.engine.dispatcher.step().await.unwrap().sent;
        app.advance(Duration::seconds(1));
    }
    assert_eq!(sent_today, 2);
    app.advance(Duration::hours(3));
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().claimed,
        0,
        "waits for tomorrow"
    );
    app.set_clock("2023-03-09T07:00:00+07:00");
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().sent,
        1,
        "sent when tomorrow's sending hours begin"
    );
    assert_eq!(app.telegram.sent_to(1).len(), 3);
    let attempts: Vec<i64> = deliveries(&app.db)
        .await
        .unwrap()
        .iter()
        .map(|d| d.attempts)
        .collect();
    assert_eq!(attempts, [1, 1, 1], "a postponement is not an attempt");
}

#[tokio::test]
async fn occurrences_missed_while_down_are_recorded_not_sent_unless_still_valid() {
    let mut app = TestApp::spawn_at("2023-03-05T12:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 1).await;
    app.engine.scheduler.tick().await.unwrap();
    // Down from 5 March noon to 8 March 10:00.
    app.set_clock("2023-03-08T10:00:00+07:00");
    app.restart();
    let tick = app.engine.scheduler.tick().await.unwrap();
    let missed: Vec<_> = tick.missed.iter().map(|o| o.schedule_id.as_str()).collect();
    let created: Vec<_> = tick
        .created
        .iter()
        .map(|o| o.schedule_id.as_str())
        .collect();
    assert_eq!(
        missed,
        ["quoc-te-phu-nu-truoc"],
        "6 March's lead-up expired at 20:00 that day"
    );
    assert_eq!(
        created,
        ["quoc-te-phu-nu-8-3"],
        "today's greeting is still valid"
    );
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    let statuses: Vec<_> = occurrences(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.schedule_id, o.status))
        .collect();
    assert!(statuses.contains(&("quoc-te-phu-nu-truoc".into(), "missed".into())));
    // Restarting again changes nothing.
    app.restart();
    let again = app.engine.scheduler.tick().await.unwrap();
    assert!(again.created.is_empty() && again.missed.is_empty());
}

#[tokio::test]
async fn temporary_failures_back_off_then_end_dead_with_the_last_error() {
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 1).await;
    let max = app.setup.config.dispatch.max_attempts;
    for _ in 0..max {
        app.telegram.answer_not_json_next(1);
    }
    let s = schedule(&app, "quoc-te-phu-nu-8-3");
    app.engine
        .scheduler
        .create_occurrence(&s, at("2023-03-08T08:00:00+07:00"))
        .await
        .unwrap();
    let mut dues = Vec::new();
    for attempt in 1..=max {
        let step = app.engine.dispatcher.step().await.unwrap();
        assert_eq!(step.claimed, 1, "attempt {attempt}");
        let d = &deliveries(&app.db).await.unwrap()[0];
        dues.push(d.due_at);
        // Well past the longest backoff so far.
        app.advance(Duration::minutes(10 * i64::from(attempt)));
    }
    let d = &deliveries(&app.db).await.unwrap()[0];
    assert_eq!(d.status, "dead");
    assert_eq!(d.failures, i64::from(max));
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("not Bot API JSON"),
        "{d:?}"
    );
    assert!(app.telegram.sent().is_empty());
    // Each wait was longer than the one before (exponential, ±20 % jitter).
    let gaps: Vec<i64> = dues
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect();
    assert!(!gaps.is_empty());
}

#[tokio::test]
async fn a_stopping_worker_gives_back_what_it_has_not_sent() {
    let mut app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    let chats = app.seed_residents(20).await;
    app.engine.scheduler.tick().await.unwrap();
    let batch = app.engine.dispatcher.claim().await.unwrap();
    assert_eq!(batch.len(), chats.len());
    app.engine.dispatcher.request_stop();
    let report = app.engine.dispatcher.deliver(batch).await.unwrap();
    assert_eq!(report.released, chats.len());
    assert!(app.telegram.sent().is_empty());
    // Another worker takes them at once: no lease to wait for.
    app.restart();
    app.advance(Duration::seconds(11));
    assert_eq!(
        app.engine.dispatcher.step().await.unwrap().sent,
        chats.len()
    );
    assert!(
        deliveries(&app.db)
            .await
            .unwrap()
            .iter()
            .all(|d| d.attempts == 1)
    );
}

/// Steps a dispatcher on a running clock until nothing is left to send; a row put back for its
/// rate-limit turn is due again within a second.
async fn drain_running(app: &TestApp, dispatcher: &loa::dispatch::Dispatcher) -> usize {
    let mut sent = 0;
    loop {
        let step = dispatcher.step().await.unwrap();
        sent += step.sent;
        if step.claimed == 0 {
            if app
                .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
                .await
                == 0
            {
                return sent;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn two_engines_on_one_database_send_each_recipient_exactly_one_message() {
    let recipients = if std::env::var("LOA_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        20_000
    } else {
        2_000
    };
    let app =
        TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", |c| c.dispatch.batch_size = 200).await;
    let chats = app.seed_residents(recipients).await;
    let mut app = app;
    let mut other = app.second_engine();
    // Both tick over the same instant: one occurrence.
    let (a, b) = tokio::join!(app.engine.scheduler.tick(), other.scheduler.tick());
    assert_eq!(a.unwrap().created.len() + b.unwrap().created.len(), 1);
    // Both register; a worker joining another holds back until both have recounted.
    app.engine.dispatcher.heartbeat().await.unwrap();
    other.dispatcher.heartbeat().await.unwrap();
    app.advance(Duration::seconds(3));
    let (sent_a, sent_b) = tokio::join!(
        drain_dispatcher(&app, &app.engine.dispatcher),
        drain_dispatcher(&app, &other.dispatcher)
    );
    assert_eq!(sent_a + sent_b, recipients);
    assert!(sent_a > 0 && sent_b > 0, "both worked: {sent_a} + {sent_b}");
    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for m in app.telegram.sent() {
        *per_chat.entry(m.chat_id).or_default() += 1;
    }
    assert_eq!(per_chat.len(), chats.len());
    assert!(per_chat.values().all(|n| *n == 1), "someone got two");
}

async fn drain_dispatcher(app: &TestApp, dispatcher: &loa::dispatch::Dispatcher) -> usize {
    let mut sent = 0;
    loop {
        let step = dispatcher.step().await.unwrap();
        sent += step.sent;
        if step.claimed == 0 {
            let in_flight = app
                .count("SELECT COUNT(*) FROM deliveries WHERE status = 'sending'")
                .await;
            let waiting = app
                .count("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
                .await;
            if in_flight > 0 {
                // The other engine is still sending: moving the clock now would expire its leases.
                tokio::task::yield_now().await;
            } else if waiting > 0 {
                // A send that failed for a moment (a busy loopback) waits for its retry.
                // Less than a lease, so a batch the other engine has just claimed stays its own.
                app.clock.advance(Duration::seconds(60));
            } else {
                return sent;
            }
        }
    }
}

#[tokio::test]
async fn one_process_keeps_telegrams_limit_in_every_sliding_second() {
    let app = TestApp::spawn_running("2023-03-08T07:59:59+07:00", |c| {
        c.channels
            .get_mut(ChannelKind::Telegram)
            .unwrap()
            .limits
            .per_second = 28
    })
    .await;
    app.telegram.enforce_limits(EnforcedLimits {
        per_second: 30,
        per_chat_per_second: 1,
    });
    let chats = app.seed_residents(75).await;
    let mut app = app;
    // Wait (real time) for 08:00 on the running clock, then tick.
    while app.clock_now() < at("2023-03-08T08:00:00+07:00") {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.engine.scheduler.tick().await.unwrap();
    let sent = drain_running(&app, &app.engine.dispatcher).await;
    assert_eq!(sent, chats.len());
    assert_eq!(app.telegram.too_many_requests(), 0, "no 429 provoked");
    assert!(
        app.telegram.busiest_second() <= 30,
        "{}",
        app.telegram.busiest_second()
    );
}

#[tokio::test]
async fn two_processes_sharing_one_token_together_stay_within_its_limit() {
    // Loa at 28/s against a fake that refuses the 31st message in any second: the headroom an
    // operator would keep, and enough for a loaded CI machine's scheduling jitter.
    let app = TestApp::spawn_running("2023-03-08T08:00:00+07:00", |c| {
        c.channels
            .get_mut(ChannelKind::Telegram)
            .unwrap()
            .limits
            .per_second = 28
    })
    .await;
    app.telegram.enforce_limits(EnforcedLimits {
        per_second: 30,
        per_chat_per_second: 1,
    });
    let chats = app.seed_residents(120).await;
    let mut app = app;
    let other = app.second_engine();
    app.engine.scheduler.tick().await.unwrap();
    // Both register before either sends, as two running processes would have.
    app.engine.dispatcher.heartbeat().await.unwrap();
    other.dispatcher.heartbeat().await.unwrap();
    app.advance(Duration::seconds(3));
    let (a, b) = tokio::join!(
        drain_running(&app, &app.engine.dispatcher),
        drain_running(&app, &other.dispatcher)
    );
    assert_eq!(a + b, chats.len());
    assert_eq!(app.telegram.too_many_requests(), 0, "no 429 provoked");
    assert!(
        app.telegram.busiest_second() <= 30,
        "{}",
        app.telegram.busiest_second()
    );
    assert_eq!(other.dispatcher.rate_share(), 2);
}

#[tokio::test]
async fn under_429_bursts_and_failing_answers_every_delivery_ends_sent_or_dead_with_a_reason() {
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    let chats = app.seed_residents(2_000).await;
    let max = app.setup.config.dispatch.max_attempts as usize;
    // 10 % meet a 429 burst (three in a row), 20 % an answer that is not the Bot API's (a
    // proxy's error page), 2 % never get through.
    for (i, &chat) in chats.iter().enumerate() {
        match i % 50 {
            0..=4 => (0..3).for_each(|_| app.telegram.rate_limit_next(chat, 2)),
            5..=14 => app.telegram.answer_not_json_next(chat),
            15 => (0..max).for_each(|_| app.telegram.answer_not_json_next(chat)),
            _ => {}
        }
    }
    let mut app = app;
    app.engine.scheduler.tick().await.unwrap();
    loop {
        let step = app.engine.dispatcher.step().await.unwrap();
        if step.claimed == 0 {
            if app
                .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
                .await
                == 0
            {
                break;
            }
            app.advance(Duration::minutes(1));
        }
    }
    let records = deliveries(&app.db).await.unwrap();
    assert_eq!(records.len(), chats.len());
    let dead: Vec<_> = records.iter().filter(|d| d.status == "dead").collect();
    assert!(
        records
            .iter()
            .all(|d| d.status == "sent" || d.status == "dead")
    );
    assert_eq!(
        dead.len(),
        chats.len() / 50,
        "exactly the chats that never get through"
    );
    assert!(dead.iter().all(|d| {
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains("not Bot API JSON"))
    }));
    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for m in app.telegram.sent() {
        *per_chat.entry(m.chat_id).or_default() += 1;
    }
    assert_eq!(per_chat.len(), chats.len() - dead.len());
    assert!(per_chat.values().all(|n| *n == 1), "nobody got two");
    // 429s are not failures: those deliveries used no attempts of their budget.
    let limited = records
        .iter()
        .filter(|d| d.status == "sent" && d.attempts == 4)
        .count();
    assert_eq!(limited, chats.len() / 10);
    assert!(
        records
            .iter()
            .filter(|d| d.attempts == 4)
            .all(|d| d.failures == 0)
    );
}
