//! The console in a real browser: Debian's Chromium, headless, driven by chromedriver over the
//! WebDriver protocol. Needs both installed (`apt-get install chromium chromium-driver`), so it
//! is ignored by `cargo test`; `.ci/run` installs them and runs it with `--ignored`.
//!
//! Waiting here is in real time by necessity — a browser renders and runs scripts on its own
//! clock — and always bounded.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine as _;
use common::TestApp;
use loa::config::ChannelKind;
use loa::console::content::ContentInput;
use loa::console::{Actor, Console, Role, accounts};
use serde_json::{Value, json};

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start() -> Browser {
        let chromium =
            std::env::var("LOA_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver =
            std::env::var("LOA_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} (apt-get install chromium-driver): {e}")
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.json::<Value>()
                    .await
                    .is_ok_and(|s| s["value"]["ready"] == true)
            {
                break;
            }
            assert!(
                started.elapsed() < StdDuration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600", "--lang=vi-VN"],
                },
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_string();
        // Elements of the next page may take a moment to appear after a click.
        http.post(format!("{base}/session/{session}/timeouts"))
            .json(&json!({"implicit": 5000}))
            .send()
            .await
            .unwrap();
        Browser {
            driver,
            base,
            session,
            http,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.http.request(method.parse().unwrap(), url);
        let req = if method == "GET" {
            req
        } else {
            req.json(&body)
        };
        let answer: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"]["error"].is_null(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call("POST", &format!("/element/{el}/click"), json!({}))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// A click that submits a form returns before the next page is there: wait for it.
    async fn wait_for_path(&self, path: &str) {
        self.wait_for(
            &format!("the page {path}"),
            &format!("return location.pathname === {path:?} && document.readyState === 'complete'"),
        )
        .await;
    }

    /// Polls `script` until it returns true, for at most 10 s.
    async fn wait_for(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.script(script).await != Value::Bool(true) {
            assert!(
                started.elapsed() < StdDuration::from_secs(10),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    }

    /// A new account's first visit: the page asks to sign in, the one-time password works once,
    /// the console asks for a new one, then shows the dashboard.
    async fn first_sign_in(
        &self,
        app: &TestApp,
        base: &str,
        name: &str,
        role: Role,
        area: Option<&str>,
    ) {
        let password = accounts::add_user(
            &app.db,
            &app.setup.config.areas,
            name,
            role,
            area,
            app.clock_now(),
        )
        .await
        .unwrap();
        self.goto(&format!("{base}/dashboard")).await;
        self.type_into("#name", name).await;
        self.type_into("#password", &password).await;
        self.click("form[action='/login'] button").await;
        self.wait_for_path("/account/password").await;
        self.type_into("#current", &password).await;
        self.type_into("#new", "mat-khau-moi-2026").await;
        self.click("form[action='/account/password'] button").await;
        self.wait_for_path("/dashboard").await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let png = self.call("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// 2,500 residents over 25 communes (100 each) with populations from 120 to 480, so the
/// communes fall above, within and below the 40–60 % band; one message sent to all of them.
async fn seeded_app() -> (TestApp, String) {
    let populations: BTreeMap<String, u64> = {
        let config = loa::config::Config::load(
            &common::repo_root().join("loa.toml"),
            &loa::config::Env::default(),
        )
        .unwrap();
        let communes: Vec<String> = config.areas.leaves().map(|a| a.code.clone()).collect();
        communes
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, 120 + 15 * i as u64))
            .collect()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut app = TestApp::spawn_adjusted("2026-12-01T07:30:00+07:00", move |c| {
        c.areas = c.areas.with_populations(&populations);
    })
    .await;
    app.serve_web(listener);
    app.engine.scheduler.tick().await.unwrap();
    app.seed_residents(2500).await;

    let console = Console {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        calendar: Arc::clone(&app.setup.calendar),
        clock: app.clock.clone(),
    };
    let actor = |name: &str, role| Actor {
        id: format!("user:{name}"),
        name: name.into(),
        role,
        area: None,
    };
    let mut input = ContentInput {
        title: "Tháng hành động vì bình đẳng giới".into(),
        channels: vec!["telegram".into()],
        send_at: "2026-12-01T08:00".into(),
        ..ContentInput::default()
    };
    input.set_text(
        ChannelKind::Telegram,
        "Hưởng ứng Tháng hành động vì bình đẳng giới, mời bà con {{area.name}} tham gia.",
    );
    let item = console
        .create_content(&actor("lan", Role::Staff), &input)
        .await
        .unwrap();
    console
        .submit_content(&actor("lan", Role::Staff), item.id, Some(item.version))
        .await
        .unwrap();
    console
        .approve_content(&actor("binh", Role::Approver), item.id, item.version)
        .await
        .unwrap();
    app.set_clock("2026-12-01T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    while app.engine.dispatcher.step().await.unwrap().claimed > 0 {}
    assert_eq!(app.telegram.sent().len(), 2500);
    (app, base)
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver; run by .ci/run"]
async fn the_dashboard_renders_each_commune_against_the_band_in_chromium() {
    let (app, base) = seeded_app().await;
    let browser = Browser::start().await;
    browser
        .first_sign_in(&app, &base, "lanh-dao", Role::Official, None)
        .await;
    browser
        .wait_for(
            "the commune table",
            "return document.querySelectorAll('tr.commune').length > 0",
        )
        .await;

    let rows = browser
        .script(
            "return [...document.querySelectorAll('tr.commune')].map(r => ({
                area: r.dataset.area,
                percent: Number(r.dataset.percent),
                status: r.dataset.status,
                shown: r.querySelector('td.percent').textContent.trim(),
                band: !!r.querySelector('svg rect.band'),
                bar: Number(r.querySelector('svg rect.value').getAttribute('width')),
            }))",
        )
        .await;
    let rows = rows.as_array().unwrap();
    let config = &app.setup.config;
    assert_eq!(rows.len(), 25, "one row per commune");
    let report = loa::reach::report(
        &app.db,
        &config.areas,
        config.campaign.target,
        "2026-01-01".parse().unwrap(),
        "2026-12-31".parse().unwrap(),
    )
    .await
    .unwrap();
    for row in rows {
        let area = row["area"].as_str().unwrap();
        let expected = report.areas.iter().find(|r| r.code == area).unwrap();
        assert_eq!(row["percent"].as_f64(), expected.percent, "{area}");
        let percent = expected.percent.unwrap();
        assert_eq!(
            row["shown"],
            format!("{percent:.2} %").replace('.', ","),
            "{area}: Vietnamese decimal comma"
        );
        assert_eq!(row["status"], expected.status.unwrap().as_str(), "{area}");
        assert!(
            row["band"].as_bool().unwrap(),
            "{area}: the 40–60 % band is drawn"
        );
        assert!(
            (row["bar"].as_f64().unwrap() - percent.min(100.0)).abs() < 0.01,
            "{area}: bar length"
        );
    }
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    for status in ["below", "within", "above"] {
        assert!(statuses.contains(&status), "{status} in {statuses:?}");
    }
    let percents: Vec<f64> = rows
        .iter()
        .map(|r| r["percent"].as_f64().unwrap())
        .collect();
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1] || w[0] >= 40.0),
        "furthest below first: {percents:?}"
    );
    // Nothing comes from another host: the console works on an office network without internet.
    let foreign = browser
        .script("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))")
        .await;
    assert_eq!(foreign, json!([]));

    // The year's reach drawn against the band, the projection dashed, one small chart per
    // commune.
    let chart = browser
        .script(
            "const svg = document.querySelector('#reach-chart svg');
             return svg && {
               band: !!svg.querySelector('rect.band'),
               reached: svg.querySelectorAll('polyline.reached').length,
               dashed: svg.querySelector('line.projected')?.getAttribute('stroke-dasharray'),
               fires: svg.querySelectorAll('line.fire').length,
               multiples: document.querySelectorAll('#multiples figure svg').length,
               wide: svg.getBoundingClientRect().width,
             }",
        )
        .await;
    assert_eq!(chart["band"], true, "{chart}");
    assert_eq!(chart["reached"], 1, "{chart}");
    assert_eq!(chart["multiples"], 25, "{chart}");
    assert!(chart["fires"].as_i64().unwrap() >= 20, "{chart}");
    assert!(chart["wide"].as_f64().unwrap() > 300.0, "{chart}");
    browser
        .script("document.querySelector('#reach-chart').scrollIntoView(); return true")
        .await;
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-chart.png"),
        browser.screenshot().await,
    )
    .unwrap();

    let png = browser.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 800 && height >= 600, "{width}×{height}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    // On a phone's width the page does not scroll sideways (the table scrolls in its box).
    browser
        .call("POST", "/window/rect", json!({"width": 390, "height": 844}))
        .await;
    browser.goto(&format!("{base}/dashboard")).await;
    let overflow = browser
        .script("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_f64().unwrap() <= 1.0,
        "page wider than a phone by {overflow}px"
    );
    // No cell of the communes' table is narrower than its longest word: "Xã Hương Lâm" never
    // breaks a letter per line.
    let squeezed = browser
        .script(
            "const out = [];
             for (const cell of document.querySelectorAll('#communes th, #communes td')) {
               const style = getComputedStyle(cell);
               const room = cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
               for (const word of cell.textContent.split(/\\s+/).filter(w => w)) {
                 const probe = document.createElement('span');
                 probe.style.whiteSpace = 'nowrap';
                 probe.textContent = word;
                 cell.appendChild(probe);
                 const need = probe.getBoundingClientRect().width;
                 probe.remove();
                 if (room + 0.5 < need) out.push([word, room, need]);
               }
             }
             return out;",
        )
        .await;
    assert_eq!(squeezed, json!([]), "cells narrower than a word at 390 px");
    std::fs::write(
        path.with_file_name("dashboard-phone.png"),
        browser.screenshot().await,
    )
    .unwrap();
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver; run by .ci/run"]
async fn the_content_form_previews_as_staff_type() {
    let (app, base) = seeded_app().await;
    let browser = Browser::start().await;
    browser
        .first_sign_in(&app, &base, "can-bo", Role::Staff, Some("bac-ly"))
        .await;

    browser.goto(&format!("{base}/queue/new")).await;
    browser.type_into("#title", "Mời họp").await;
    browser
        .type_into("#telegram_text", "Mời bà con <b>{{area.name}}</b> dự họp.")
        .await;
    browser.type_into("#sms_text", "Moi ba con du hop.").await;
    browser
        .wait_for(
            "the live preview",
            "const t = document.querySelector('.preview-channel[data-channel=telegram] .body');
             return !!t && t.textContent.includes('Xã Bắc Lý')",
        )
        .await;
    let preview = browser
        .script(
            "return {
                telegram: document.querySelector('.preview-channel[data-channel=telegram] .body').textContent,
                bold: document.querySelectorAll('.preview-channel[data-channel=telegram] .body b').length,
                sms: document.querySelector('.preview-channel[data-channel=sms] .size').textContent,
                recipients: document.getElementById('preview-recipients').textContent,
            }",
        )
        .await;
    // Typed tags are text, not markup; the account's commune is the audience (100 residents).
    assert_eq!(preview["telegram"], "Mời bà con <b>Xã Bắc Lý</b> dự họp.");
    assert_eq!(preview["bold"], 0);
    assert!(
        preview["sms"]
            .as_str()
            .unwrap()
            .contains("1 tin nhắn (không dấu)"),
        "{preview}"
    );
    assert_eq!(preview["recipients"], "100");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("content-form.png");
    std::fs::write(&path, browser.screenshot().await).unwrap();
    eprintln!("screenshot: {}", path.display());
    browser.click("#content-form button[type=submit]").await;
    browser
        .wait_for(
            "the saved content",
            "return /^\\/queue\\/[0-9]+$/.test(location.pathname)",
        )
        .await;
    let state = browser
        .script("return document.getElementById('state').dataset.state")
        .await;
    assert_eq!(state, "draft");
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver; run by .ci/run"]
async fn an_approver_opening_a_hostile_item_runs_none_of_its_authors_script() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = TestApp::spawn_at("2026-11-30T09:00:00+07:00").await;
    app.serve_web(listener);
    app.subscribe("Trần Thị Mai", "bac-ly", 7002).await;
    let console = Console {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        calendar: Arc::clone(&app.setup.calendar),
        clock: app.clock.clone(),
    };
    let author = Actor {
        id: "user:lan".into(),
        name: "lan".into(),
        role: Role::Staff,
        area: None,
    };
    // What handlebars used to write as markup into the approver's page.
    let payload = r#"{{{vn_date "<span autofocus tabindex=1 onfocus=document.body.dataset.pwned=1>x</span>"}}} {{{vn_date "<img src=x onerror=document.body.dataset.pwned=2>"}}}"#;
    let mut input = ContentInput {
        title: "<img src=x onerror=document.body.dataset.pwned=3>".into(),
        channels: vec!["telegram".into(), "sms".into()],
        areas: vec!["bac-ly".into()],
        send_at: "2026-12-01T08:00".into(),
        ..ContentInput::default()
    };
    input.set_text(ChannelKind::Telegram, payload);
    input.set_text(ChannelKind::Sms, payload);
    let item = console.create_content(&author, &input).await.unwrap();
    console
        .submit_content(&author, item.id, Some(item.version))
        .await
        .unwrap();

    let browser = Browser::start().await;
    browser
        .first_sign_in(&app, &base, "binh", Role::Approver, None)
        .await;
    browser.goto(&format!("{base}/queue/{}", item.id)).await;
    browser
        .wait_for(
            "the content page",
            "return !!document.querySelector('.preview-channel[data-channel=telegram] .body')",
        )
        .await;
    // Focus whatever could be focused, and let the live preview redraw from the API too.
    browser
        .script(
            "document.querySelectorAll('[autofocus],[tabindex],textarea').forEach(e => e.focus());
             document.getElementById('content-form').dispatchEvent(new Event('input'));
             return true",
        )
        .await;
    browser
        .wait_for(
            "the live preview",
            "const t = document.querySelector('.preview-channel[data-channel=telegram] .body');
             return !!t && t.textContent.includes('vn_date')",
        )
        .await;
    let seen = browser
        .script(
            "return {
                pwned: document.body.dataset.pwned || null,
                handlers: document.querySelectorAll('[onfocus],[onerror],img,span[autofocus]').length,
                telegram: document.querySelector('.preview-channel[data-channel=telegram] .body').textContent,
                approve: !!document.querySelector('form[action$=\"/approve\"] input[name=version]'),
            }",
        )
        .await;
    assert_eq!(
        seen["pwned"],
        Value::Null,
        "the author's script ran: {seen}"
    );
    assert_eq!(seen["handlers"], 0, "{seen}");
    assert!(
        seen["telegram"]
            .as_str()
            .unwrap()
            .contains("<span autofocus tabindex=1 onfocus=document.body.dataset.pwned=1>"),
        "the payload is shown as the text it is: {seen}"
    );
    assert_eq!(seen["approve"], true, "{seen}");
    // And were markup ever to slip through, the page's policy forbids inline handlers.
    let title = browser
        .script(
            "const d = document.createElement('div');
             d.setAttribute('onclick', \"document.title = 'INLINE'\");
             document.body.append(d);
             d.click();
             return document.title",
        )
        .await;
    assert_ne!(title, "INLINE", "the Content-Security-Policy is enforced");
}

/// A commune clerk on a phone: picks the commune's workbook, sees what would happen, confirms;
/// the page stays within a 390 px screen.
#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver; run by .ci/run"]
async fn a_clerk_imports_the_communes_workbook_from_a_phone() {
    let (app, base) = seeded_app().await;
    let browser = Browser::start().await;
    browser
        .call("POST", "/window/rect", json!({"width": 390, "height": 844}))
        .await;
    browser
        .first_sign_in(&app, &base, "thu-ky", Role::Staff, Some("doan-bai"))
        .await;
    browser.goto(&format!("{base}/import")).await;
    let workbook = common::repo_root().join("tests/fixtures/import/xa-doan-bai.xlsx");
    // A file input takes the file's path as typed keys (WebDriver).
    browser.type_into("#file", workbook.to_str().unwrap()).await;
    browser.click("form[action='/import'] button").await;
    browser
        .wait_for(
            "the preview",
            "return !!document.querySelector('form[action=\"/import/confirm\"]')",
        )
        .await;
    let seen = browser
        .script(
            "return {
                rejected: document.querySelectorAll('#rejected tbody tr').length,
                preview: document.querySelector('#preview tbody tr td:nth-child(2)').textContent,
                wide: document.documentElement.scrollWidth,
                // The commune's name on one line or two, not one letter per line.
                first_column: document.querySelector('#by-area tbody td').getBoundingClientRect().width,
                button: document.querySelector('form[action=\"/import/confirm\"] button').textContent,
            }",
        )
        .await;
    assert_eq!(seen["rejected"], 4, "{seen}");
    assert_eq!(seen["preview"], "Nguyễn Thị Lan");
    assert_eq!(seen["button"], "Xác nhận nhập 3 người");
    assert!(
        seen["wide"].as_i64().unwrap() <= 390,
        "no sideways scrolling: {seen}"
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("import-preview.png");
    std::fs::write(&path, browser.screenshot().await).unwrap();
    eprintln!("screenshot: {}", path.display());
    browser.click("form[action='/import/confirm'] button").await;
    browser
        .wait_for(
            "the result",
            "const n = document.querySelector('.notice'); return !!n && n.textContent.includes('thêm mới 3 người')",
        )
        .await;
}
