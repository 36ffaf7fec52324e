//! The content rules against a hostile staff account, a careless resident and a careless
//! operator: the opt-out line of every campaign SMS, DK to come back, area kinds and support
//! lines in the configuration, themes by year, and what a gateway's answer may carry.

mod common;

use common::console::{Console, SECRET, spawn_console, spawn_console_with};
use loa::channel::ChannelKind;
use loa::channels::{Outbound, Secrets, excerpt};
use loa::config::{AreaKind, AreaName};
use loa::console::Role;
use loa::fakes::kannel::SentSms;
use loa::templates::{SmsVars, sms_size};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `MAX_FREE_SMS_SEGMENTS` of the console: the parts a staff-typed SMS may take.
const MAX_FREE_SMS_SEGMENTS: usize = 5;

fn id_of(item: &Value) -> i64 {
    item["id"].as_i64().expect("an id")
}

/// Staff-typed SMS content for `areas`, written by one approver, approved by another, sent at
/// 08:00 on 1 December 2026: what Kannel was given.
async fn send_sms_content(c: &mut Console, text: &str, areas: &[&str]) -> Vec<SentSms> {
    let writer = c.sign_in("nguoi-viet", Role::Approver, None).await;
    let approver = c.sign_in("nguoi-duyet", Role::Approver, None).await;
    let (status, item) = c
        .api_as(
            &writer,
            "POST",
            "/api/contents",
            Some(json!({
                "title": "Tin nhắn thử",
                "sms_text": text,
                "channels": ["sms"],
                "areas": areas,
                "send_at": "2026-12-01T08:00",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = id_of(&item);
    let (status, item) = c
        .api_as(&writer, "POST", &format!("/api/contents/{id}/submit"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    let (status, item) = c
        .api_as(
            &approver,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    c.app.set_clock("2026-12-01T08:05:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    c.kannel.sent()
}

/// The opt-out line a resident of `area` gets.
fn opt_out_of(c: &Console, area: &str) -> String {
    SmsVars::for_area(&c.app.setup.config, area).opt_out
}

// ---------------------------------------------------------------------------------------------
// 1. Every campaign SMS ends with how to stop.
// ---------------------------------------------------------------------------------------------

/// "Every campaign SMS ends with it" (SmsVars): staff who put `{{sms.opt_out}}` first and their
/// message after it get the line at the top, where a reader takes it for part of the header,
/// and the SMS ends with whatever they wrote ("…bỏ qua dòng trên").
#[tokio::test]
async fn staff_sms_with_the_opt_out_placeholder_first_still_ends_with_how_to_stop() {
    let mut c = spawn_console().await;
    c.app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    let sent = send_sms_content(
        &mut c,
        "{{sms.opt_out}}\nUBND huyện: mời bà con dự buổi nói chuyện về bình đẳng giới. Tin này không cần trả lời.",
        &["bac-ly"],
    )
    .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let opt_out = opt_out_of(&c, "bac-ly");
    assert!(
        sent[0].text.trim_end().ends_with(&opt_out),
        "the SMS does not end with how to stop:\n{}",
        sent[0].text
    );
}

/// `{{ sms.opt_out }}` (spaces inside, as the console's own placeholder parser allows) is filled
/// in, but `compose` looks for the exact token, misses it and adds the line a second time: the
/// resident reads it twice and the district pays for the characters in every SMS.
#[tokio::test]
async fn staff_sms_with_a_spaced_opt_out_placeholder_says_how_to_stop_once() {
    let mut c = spawn_console().await;
    c.app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    let sent = send_sms_content(
        &mut c,
        "UBND huyện: mời bà con dự buổi nói chuyện về bình đẳng giới.\n{{ sms.opt_out }}",
        &["bac-ly"],
    )
    .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let opt_out = opt_out_of(&c, "bac-ly");
    assert_eq!(
        sent[0].text.matches(&opt_out).count(),
        1,
        "the opt-out line is not there exactly once:\n{}",
        sent[0].text
    );
}

/// The form's preview and the check before storing render with the audience's *first* area's
/// opt-out line ("báo UBND xã Bắc Lý" when no reply number is set); another area's line is
/// longer. A text the console accepted at exactly its 5-part budget goes out in 6 parts to the
/// other area: the budget the preview promised (and the cost it showed) did not hold. The
/// check now counts with the audience's longest line.
#[tokio::test]
async fn approved_sms_at_the_budget_stays_within_it_in_every_area_of_its_audience() {
    let mut c = spawn_console().await;
    let config = c.app.setup.config.clone();
    assert!(
        config.sms.reply_number.is_none(),
        "the shipped loa.toml sets no reply number"
    );
    // The first area of the audience (codes are sorted) with the shortest line, and one after
    // it with a longer line.
    let first = "bac-ly";
    let longer = config
        .areas
        .leaves()
        .map(|a| a.code.clone())
        .filter(|code| code.as_str() > first)
        .max_by_key(|code| opt_out_of(&c, code).chars().count())
        .unwrap();
    let (short_line, long_line) = (opt_out_of(&c, first), opt_out_of(&c, &longer));
    assert!(
        long_line.chars().count() > short_line.chars().count(),
        "{short_line:?} vs {long_line:?}"
    );
    c.app
        .subscribe_sms("Lê Văn Nam", first, "+84912345678")
        .await;
    c.app
        .subscribe_sms("Trần Thị Mai", &longer, "+84987654321")
        .await;
    // UCS-2 (the line has diacritics): 5 parts of 67 units = 335. The text plus "\n" plus the
    // longest line of the audience fills them exactly: the check before storing counts with the
    // longest, so this text is accepted, and goes out within budget everywhere.
    let filler = 335 - 1 - long_line.chars().count();
    let text: String = "Bình đẳng giới ".chars().cycle().take(filler - 1).collect();
    let text = format!("{text}.");
    let sent = send_sms_content(&mut c, &text, &[first, &longer]).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    for sms in &sent {
        let size = sms_size(&sms.text);
        assert!(
            size.segments <= MAX_FREE_SMS_SEGMENTS,
            "an approved SMS to {} went out in {} parts (budget {MAX_FREE_SMS_SEGMENTS}): {} units",
            sms.to,
            size.segments,
            size.units
        );
    }
}

/// What the preview shows for SMS is what a resident of that area receives (held).
#[tokio::test]
async fn the_sms_preview_is_the_text_sent() {
    let mut c = spawn_console().await;
    c.app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    let token = c.token("xem-truoc", Role::Approver, None).await;
    let text = "UBND huyện: {{area.in_sentence}} tổ chức nói chuyện {{ person.name }}.";
    let (status, preview) = c
        .api(
            &token,
            "POST",
            "/api/preview",
            Some(json!({
                "title": "x",
                "sms_text": text,
                "channels": ["sms"],
                "areas": ["bac-ly"],
                "send_at": "2026-12-01T08:00",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let shown = preview["channels"][0]["text"].as_str().unwrap().to_string();
    let sent = send_sms_content(&mut c, text, &["bac-ly"]).await;
    assert_eq!(shown.replace("Nguyễn Thị Lan", "Lê Văn Nam"), sent[0].text);
    assert!(sent[0].text.ends_with(&opt_out_of(&c, "bac-ly")));
}

// ---------------------------------------------------------------------------------------------
// 2. SMS replies: DK takes back an opt-out.
// ---------------------------------------------------------------------------------------------

async fn mo(c: &Console, from: &str, text: &str) -> StatusCode {
    c.http
        .post(c.url("/webhooks/sms/mo"))
        .header("X-Loa-Webhook-Secret", SECRET)
        .json(&json!({"from": from, "text": text}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn opted_out(c: &Console, person: i64) -> bool {
    use sqlx::Row;
    sqlx::query("SELECT opted_out_at FROM persons WHERE id = $1")
        .bind(person)
        .fetch_one(&c.app.db.pool)
        .await
        .unwrap()
        .try_get::<Option<i64>, _>(0)
        .unwrap()
        .is_some()
}

/// A number that no longer reaches its person (the contact was deactivated: the number is gone,
/// and operators recycle numbers) still carries the person's consent: its new owner texting DK
/// takes back the opt-out of a stranger, who then gets campaign messages on Telegram again.
#[tokio::test]
async fn dk_from_a_number_no_longer_the_persons_does_not_resubscribe_them() {
    let c = spawn_console().await;
    let person = c.app.subscribe("Trần Thị Mai", "bac-ly", 90_001).await;
    let sms_contact = loa::audience::add_contact(
        &c.app.db,
        person,
        ChannelKind::Sms,
        "+84912345678",
        c.app.clock_now(),
    )
    .await
    .unwrap();
    // The gateway said the number is gone; later the person said /stop on Telegram.
    loa::audience::deactivate_contact(&c.app.db.pool, sms_contact, "number gone")
        .await
        .unwrap();
    loa::audience::opt_out(&c.app.db, person, c.app.clock_now())
        .await
        .unwrap();
    assert!(opted_out(&c, person).await);
    // The number's new owner texts DK.
    assert_eq!(mo(&c, "0912345678", "DK").await, StatusCode::OK);
    assert!(
        opted_out(&c, person).await,
        "a number that is no longer the person's took back their opt-out"
    );
}

/// An opt-out given on Telegram (/stop) or at the commune office is the person's; DK by SMS from
/// a number listed for them (a husband's phone, a shared family phone) lifts it on every
/// channel. A woman who stopped the messages for her safety gets them again without asking.
#[tokio::test]
async fn dk_by_sms_does_not_undo_an_opt_out_given_on_telegram() {
    let c = spawn_console().await;
    let person = c.app.subscribe("Trần Thị Mai", "bac-ly", 90_002).await;
    loa::audience::add_contact(
        &c.app.db,
        person,
        ChannelKind::Sms,
        "+84912345679",
        c.app.clock_now(),
    )
    .await
    .unwrap();
    // /stop on Telegram.
    loa::audience::opt_out(&c.app.db, person, c.app.clock_now())
        .await
        .unwrap();
    assert_eq!(mo(&c, "0912345679", "Đăng ký").await, StatusCode::OK);
    assert!(
        opted_out(&c, person).await,
        "DK by SMS lifted an opt-out given on Telegram"
    );
}

/// Held: the webhook refuses a wrong, empty or missing secret, so nobody outside can text DK or
/// STOP for someone else, nor make Loa reply (at the district's cost) to numbers of their choice.
#[tokio::test]
async fn the_reply_webhook_needs_its_secret() {
    let c = spawn_console().await;
    let person = c
        .app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    loa::audience::opt_out(&c.app.db, person, c.app.clock_now())
        .await
        .unwrap();
    for url in [
        "/webhooks/sms/mo?from=0912345678&text=DK",
        "/webhooks/sms/mo?from=0912345678&text=DK&secret=",
        "/webhooks/sms/mo?from=0912345678&text=DK&secret=bi-mat-webhoo",
        "/webhooks/sms/mo?from=0912345678&text=DK&secret=bi-mat-webhookk",
        "/webhooks/sms/mo?from=0912345678&text=DK&secret=BI-MAT-WEBHOOK",
    ] {
        let status = c.http.get(c.url(url)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
    }
    assert!(opted_out(&c, person).await);
    assert!(c.kannel.sent().is_empty(), "no reply went out");
}

/// Held: a flood of help requests from one number gets one reply a day; each start word from an
/// unknown number is answered at most once a day too.
#[tokio::test]
async fn one_automatic_reply_a_day_whatever_the_words() {
    let c = spawn_console().await;
    for text in ["DK", "STOP", "hello", "START", "TC", "dang ky", "?"] {
        assert_eq!(mo(&c, "0912000111", text).await, StatusCode::OK);
    }
    assert_eq!(c.kannel.sent().len(), 1, "{:?}", c.kannel.sent());
    // A sender that is not a number is refused without a reply.
    assert_eq!(mo(&c, "UBND HHoa", "DK").await, StatusCode::BAD_REQUEST);
    assert_eq!(mo(&c, "\u{202e}0912", "DK").await, StatusCode::BAD_REQUEST);
    assert_eq!(c.kannel.sent().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Configuration: area kinds, support lines, themes; odd UTF-8.
// ---------------------------------------------------------------------------------------------

fn write_config(dir: &std::path::Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("loa.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(source)).unwrap();
}

fn check(dir: &std::path::Path) -> Result<(), String> {
    let env = loa::config::Env::default().with("LOA_DATABASE_URL", "sqlite::memory:");
    loa::app::Setup::load(&dir.join("loa.toml"), &env)
        .map(|_| ())
        .map_err(|p| p.to_string())
}

/// A support line with a field left empty is refused, but the message names neither its line in
/// loa.toml nor which `[[support.hotlines]]` entry (an empty number is printed as `""`): with a
/// dozen lines the operator hunts for it.
#[test]
fn an_incomplete_support_line_is_reported_with_its_line() {
    let dir = common::copy_of_repo();
    write_config(dir.path(), |s| {
        s.replacen(
            "hotlines = [\n",
            "hotlines = [\n  { serves = \"adults\", name = \"Đường dây mới\", label = \"tư vấn\", number = \"  \", hours = \"24/7\", free = true },\n",
            1,
        )
    });
    let problems = check(dir.path()).unwrap_err();
    let line = problems
        .lines()
        .find(|l| l.contains("support.hotlines"))
        .unwrap_or_else(|| panic!("{problems}"));
    assert!(
        line.split(':')
            .nth(1)
            .is_some_and(|n| n.trim().parse::<usize>().is_ok()),
        "no line number: {line}"
    );
}

/// `kind = "phường"` on an area whose name still begins with "Xã" is taken silently: residents
/// read "Phường Xã Đoan Bái", "công an phường" and "tổ trưởng tổ dân phố" in a xã.
#[test]
fn an_area_kind_that_contradicts_its_name_is_refused() {
    let dir = common::copy_of_repo();
    write_config(dir.path(), |s| {
        s.replacen(
            "name = \"Xã Đoan Bái\"",
            "name = \"Xã Đoan Bái\"\nkind = \"phường\"",
            1,
        )
    });
    let result = check(dir.path());
    assert!(
        result.as_ref().is_err_and(|p| p.contains("kind")),
        "accepted: the area reads {:?}",
        AreaName::new(Some(AreaKind::Phuong), "Xã Đoan Bái").full
    );
}

/// Held: an unknown kind and a bad reply number are refused with their line and field.
#[test]
fn bad_kinds_and_reply_numbers_name_their_line() {
    let dir = common::copy_of_repo();
    write_config(dir.path(), |s| {
        s.replacen(
            "name = \"Xã Đoan Bái\"",
            "name = \"Xã Đoan Bái\"\nkind = \"thôn\"",
            1,
        )
        .replacen("# reply_number = \"8079\"", "reply_number = \"80 79\"", 1)
    });
    let problems = check(dir.path()).unwrap_err();
    for field in ["areas.kind", "sms.reply_number"] {
        let line = problems
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("{field} not reported:\n{problems}"));
        assert!(line.starts_with(&format!("{}:", dir.path().join("loa.toml").display())));
        assert!(
            line.split(':')
                .nth(1)
                .is_some_and(|n| n.parse::<usize>().is_ok()),
            "{line}"
        );
    }
    for number in ["８０７９", "+8079", "80", "1234567890123456", "8079\u{0}"] {
        let dir = common::copy_of_repo();
        write_config(dir.path(), |s| {
            s.replacen(
                "# reply_number = \"8079\"",
                &format!("reply_number = {:?}", number),
                1,
            )
        });
        assert!(check(dir.path()).is_err(), "{number:?} accepted");
    }
}

/// Held: names in odd UTF-8 (decomposed, combining marks, emoji, Turkish dotted I) never panic
/// the kind reader, and read back as configured.
#[test]
fn area_names_in_odd_utf8_do_not_panic() {
    use unicode_normalization::UnicodeNormalization;
    let nfd: String = "Xã Đoan Bái".nfd().collect();
    for name in [
        nfd.as_str(),
        "X\u{0303}",
        "Xã",
        "Xã ",
        "Xã\u{00a0}Bắc Lý",
        "İİİ İstanbul",
        "🏠🏠🏠 Xã",
        "thị",
        "Thị xã",
        "THỊ TRẤN  Thắng",
        "ẞ",
        "",
        " ",
        "\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}",
    ] {
        for kind in [None, Some(AreaKind::ThiTran), Some(AreaKind::Xa)] {
            let read = AreaName::new(kind, name);
            assert!(!read.full.is_empty() || name.trim().is_empty(), "{name:?}");
        }
        let _ = AreaKind::split(name);
    }
}

/// Two keys of one year in `themes` (`2024` and `02024`, or `" 2024"`): one theme silently
/// replaces the other; the reviewer of the schedules file cannot tell which goes out.
#[test]
fn a_theme_given_twice_for_one_year_is_refused() {
    let dir = common::copy_of_repo();
    let path = dir.path().join("schedules/00-observances.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    let edited = source.replacen(
        "[observance.themes]\n",
        "[observance.themes]\n\"02099\" = \"Chủ đề thứ nhất\"\n2099 = \"Chủ đề thứ hai\"\n",
        1,
    );
    assert_ne!(edited, source);
    std::fs::write(&path, edited).unwrap();
    let result = check(dir.path());
    assert!(
        result.as_ref().is_err_and(|p| p.contains("2099")),
        "two themes for 2099 accepted: {result:?}"
    );
}

/// `loa check` checks templates with a sample theme and says a template that fits with it fits
/// with any year's; nothing compares the themes configured with that sample. A longer theme in
/// the schedules passes the check and goes out over the template's budget.
#[test]
fn loa_check_checks_templates_with_the_themes_configured() {
    let dir = common::copy_of_repo();
    // An SMS template that prints the theme, within its budget with the sample: the smallest
    // budget `loa check` accepts.
    let fits = (1..=10)
        .find(|parts| {
            std::fs::write(
                dir.path().join("messages/bdg-phat-dong.sms.hbs"),
                format!("{{{{!-- loa: max_segments={parts} --}}}}\n{{{{campaign.sender}}}}: {{{{observance}}}}{{{{#if theme}}}}: {{{{theme}}}}{{{{/if}}}}.\n{{{{sms.opt_out}}}}\n"),
            )
            .unwrap();
            check(dir.path()).is_ok()
        })
        .expect("the template fits some budget with the sample");
    assert!(fits < 10);
    // A theme a little longer than the sample, as next year's may be.
    let path = dir.path().join("schedules/00-observances.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    let long_theme = format!(
        "{} và xây dựng gia đình no ấm, tiến bộ, hạnh phúc, văn minh trên địa bàn toàn huyện",
        loa::templates::SAMPLE_THEME
    );
    let edited = source.replace(
        "# 2021: CV 3496/LĐTBXH-BĐG",
        &format!("2099 = {long_theme:?}\n# 2021: CV 3496/LĐTBXH-BĐG"),
    );
    assert_ne!(edited, source);
    std::fs::write(&path, edited).unwrap();
    let uses = std::fs::read_dir(dir.path().join("schedules"))
        .unwrap()
        .any(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .contains("\"bdg-phat-dong\"")
        });
    assert!(uses, "a schedule sends bdg-phat-dong");
    assert!(
        check(dir.path()).is_err(),
        "a theme longer than the sample passed loa check; its SMS goes over max_segments={fits}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Second-round trust fixes.
// ---------------------------------------------------------------------------------------------

/// Admins are "never area-limited" — but only new accounts are checked. An admin account (or an
/// admin token) created with `--area` before the fix keeps its area: nothing at start-up, at
/// sign-in or in a migration clears or refuses it.
#[tokio::test]
async fn an_admin_from_an_older_database_is_not_area_limited() {
    let c = spawn_console().await;
    let browser = c
        .sign_in("quan-tri-cu", Role::Approver, Some("bac-ly"))
        .await;
    // What the database of a deployment before e2afcdd may hold.
    sqlx::query("UPDATE users SET role = 'admin' WHERE name = 'quan-tri-cu'")
        .execute(&c.app.db.pool)
        .await
        .unwrap();
    let (status, me) = c.api_as(&browser, "GET", "/api/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["area"], Value::Null, "an admin is area-limited: {me}");
}

/// A gateway's answer is read whole (`response.text()`) and every character of it goes through
/// the redaction before the excerpt is cut to 80: a long run of digits (an HTML error page with
/// an inline image, a log dump) takes quadratic time in `blank_bot_tokens` on the dispatcher.
#[test]
fn quoting_a_megabyte_gateway_answer_quotes_its_head() {
    let message = Outbound {
        delivery_id: 1,
        kind: ChannelKind::Sms,
        address: "+84912345678",
        text: "Xin chào",
    };
    // Before, a run of digits took time growing with the square of its length (minutes for
    // 200 kB, on the dispatcher); only the head of an answer is quoted now.
    let body = "7".repeat(1_000_000);
    let quoted = excerpt(&body, &message, &Secrets::default());
    assert!(quoted.chars().count() <= 81);
}

/// A configured secret echoed the way PHP's `json_encode` writes it (`\/` for `/`) or with
/// lower-case percent-escapes, outside a credential-named field, is quoted as is.
#[test]
fn configured_secrets_are_blanked_in_every_common_echo() {
    let message = Outbound {
        delivery_id: 1,
        kind: ChannelKind::Sms,
        address: "+84912345678",
        text: "Xin chào",
    };
    let secrets = Secrets::new(["Kx9/Qp2+Zt"]);
    let leaks: Vec<String> = [
        r#"{"error":"request rejected for Kx9\/Qp2+Zt"}"#,
        "rejected: /send?u=loa&p=Kx9%2fQp2%2bZt",
        "rejected Kx9%2FQp2%2BZt",
        "rejected Kx9%2FQp2%2BZt".replace("%2B", "%2b").as_str(),
    ]
    .iter()
    .map(|body| (body, excerpt(body, &message, &secrets)))
    .filter(|(_, quoted)| quoted.contains("Kx9") || quoted.contains("Qp2"))
    .map(|(body, quoted)| format!("{body} -> {quoted}"))
    .collect();
    assert!(leaks.is_empty(), "secret quoted:\n{}", leaks.join("\n"));
}

/// Held: credential-shaped parameters and odd UTF-8 around `=` and `:` never panic the quoting.
#[test]
fn quoting_odd_utf8_does_not_panic() {
    let message = Outbound {
        delivery_id: 1,
        kind: ChannelKind::Sms,
        address: "+84912345678",
        text: "Xin chào",
    };
    let secrets = Secrets::new(["mật-khẩu-dài", "ké"]);
    for body in [
        "ư=ư:ư",
        "password=ế",
        "\"pass\":\"",
        "token:",
        "key=\u{0301}\u{0301}",
        "ḿật=:=:=:",
        "http://ü@ḧ/x?y=z",
        "://",
        "a://",
        "é://é",
        "bot123:é",
        "bot",
        "123456:",
        "mật-khẩu-dài=mật-khẩu-dài",
        &"€".repeat(200),
    ] {
        let _ = excerpt(body, &message, &secrets);
        let _ = loa::channels::redact(body);
    }
}

/// Held: the per-name throttle is not bypassed by case, spaces or control characters in the
/// name: the 11th guess gets 429 however the name is spelt.
#[tokio::test]
async fn the_name_throttle_holds_against_spelling_tricks() {
    let c = spawn_console_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let _ = c.sign_in("lan", Role::Approver, None).await;
    for i in 0..10 {
        let r = c
            .log_in_from("lan", "sai", &format!("203.0.113.{}", i + 1))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for name in ["LAN", " lan ", "lan\u{0}", "Lan\t"] {
        // A fresh address each time: only the name's count can refuse it.
        let r = c
            .log_in_from(name, "sai", &format!("198.51.100.{}", name.len()))
            .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{name:?}");
    }
    // And the right password does not get through either while locked.
    let r = c
        .log_in_from("lan", "lan-mat-khau-moi", "198.51.100.200")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Held: the unlabelled-number check of `loa check` walks lines of multi-byte text around a
/// support number (and a number at the very start or end of a line) without panicking.
#[test]
fn the_unlabelled_number_check_survives_odd_utf8() {
    let dir = common::copy_of_repo();
    std::fs::write(
        dir.path().join("messages/thu-utf8.sms.hbs"),
        format!(
            "111\nế111ế\n{}111\n111{}\n🏠111🏠 bảo vệ trẻ em\n{{{{sms.opt_out}}}}\n",
            "ữ".repeat(70),
            "ữ".repeat(70)
        ),
    )
    .unwrap();
    let problems = check(dir.path()).unwrap_err();
    assert!(problems.contains("thu-utf8.sms.hbs"), "{problems}");
    assert!(problems.contains("111"), "{problems}");
}
