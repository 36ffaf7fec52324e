//! The console over HTTP as a browser or a script uses it: Loa with the fake Bot API and a fake
//! Kannel, its web side served, signed-in browsers and bearer tokens.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::TestApp;
use loa::config::{ChannelKind, SmsGateway};
use loa::console::{Role, accounts};
use loa::fakes::kannel::FakeKannel;

pub const SECRET: &str = "bi-mat-webhook";

pub struct Console {
    pub app: TestApp,
    pub kannel: FakeKannel,
    pub base: String,
    pub http: reqwest::Client,
}

/// A signed-in browser: its session cookie and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// Loa with the fake Bot API and a fake Kannel, its web side served, on 30 November 2026.
pub async fn spawn_console() -> Console {
    spawn_console_with(|_| {}).await
}

/// The same, with the configuration as `adjust` changes it.
pub async fn spawn_console_with(adjust: impl FnOnce(&mut loa::config::Config)) -> Console {
    let kannel = FakeKannel::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (url, public) = (kannel.sendsms_url(), base.clone());
    let mut app = TestApp::spawn_adjusted("2026-11-30T09:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url,
            username: "loa".into(),
            password: "matkhau".into(),
        });
        if let Some(sms) = c.channels.get_mut(ChannelKind::Sms) {
            sms.price = loa::channel::Price::PerSegment(350.0);
        }
        c.public_url = Some(public);
        c.webhook_secret = Some(SECRET.into());
        adjust(c);
    })
    .await;
    app.serve_web(listener);
    // The scheduler's first tick: later ticks only see fire times after now.
    app.engine.scheduler.tick().await.unwrap();
    Console {
        app,
        kannel,
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Console {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn token(&self, name: &str, role: Role, area: Option<&str>) -> String {
        accounts::create_token(
            &self.app.db,
            &self.app.setup.config.areas,
            name,
            role,
            area,
            self.app.clock_now(),
        )
        .await
        .unwrap()
    }

    /// Creates a user, signs in with the one-time password and chooses a new one.
    pub async fn sign_in(&self, name: &str, role: Role, area: Option<&str>) -> Browser {
        let otp = accounts::add_user(
            &self.app.db,
            &self.app.setup.config.areas,
            name,
            role,
            area,
            self.app.clock_now(),
        )
        .await
        .unwrap();
        let r = self.log_in(name, &otp, "/dashboard").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()["location"],
            "/account/password",
            "the one-time password must be changed"
        );
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let mut browser = Browser {
            cookie,
            csrf: String::new(),
        };
        // The one-time password opens the password page only; its form carries the CSRF token.
        let (status, _) = self.api_as(&browser, "GET", "/api/me", None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the API waits for a real password"
        );
        let (_, page) = self.page(&browser, "/account/password").await;
        browser.csrf = hidden_field(&page, "_csrf");
        let new_password = format!("{name}-mat-khau-moi");
        let (status, _) = self
            .form(
                &browser,
                "/account/password",
                &[("current", &otp), ("new", &new_password)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        browser
    }

    /// Opens the sign-in page (which sets its CSRF cookie) and posts the form as a browser does.
    pub async fn log_in(&self, name: &str, password: &str, next: &str) -> reqwest::Response {
        self.log_in_via(name, password, next, None).await
    }

    /// The same through a proxy that says the client is `forwarded`.
    pub async fn log_in_from(
        &self,
        name: &str,
        password: &str,
        forwarded: &str,
    ) -> reqwest::Response {
        self.log_in_via(name, password, "/dashboard", Some(forwarded))
            .await
    }

    /// A sign-in form as a browser gets it: its cookie and its CSRF token.
    pub async fn login_form(&self) -> (String, String) {
        let form = self.http.get(self.url("/login")).send().await.unwrap();
        let cookie = form.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let token = hidden_field(&form.text().await.unwrap(), "_csrf");
        (cookie, token)
    }

    async fn log_in_via(
        &self,
        name: &str,
        password: &str,
        next: &str,
        forwarded: Option<&str>,
    ) -> reqwest::Response {
        let (cookie, token) = self.login_form().await;
        let mut request = self.http.post(self.url("/login")).header("cookie", cookie);
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        request
            .form(&[
                ("_csrf", token.as_str()),
                ("name", name),
                ("password", password),
                ("next", next),
            ])
            .send()
            .await
            .unwrap()
    }

    /// The version of content `id` now: what an approver is shown.
    pub async fn version(&self, id: i64) -> Option<Value> {
        use sqlx::Row;
        let version: i64 = sqlx::query("SELECT version FROM contents WHERE id = $1")
            .bind(id)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        Some(json!({ "version": version }))
    }

    pub async fn page(&self, browser: &Browser, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(self.url(path))
            .header("cookie", &browser.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    pub async fn form(
        &self,
        browser: &Browser,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut all = vec![("_csrf", browser.csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .http
            .post(self.url(path))
            .header("cookie", &browser.cookie)
            .form(&all)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, location.unwrap_or(r.text().await.unwrap()))
    }

    pub async fn api_as(
        &self,
        browser: &Browser,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .header("cookie", &browser.cookie)
            .header("x-csrf-token", &browser.csrf);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

/// The value of a form's hidden field in a page.
pub fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

pub fn content(title: &str, areas: &[&str]) -> Value {
    json!({
        "title": title,
        "telegram_text": "Kính gửi {{person.name}}: tuần này {{area.in_sentence}} tổ chức nói chuyện về bình đẳng giới.",
        "sms_text": "UBND huyen: tuan nay co buoi noi chuyen ve binh dang gioi tai {{area.name}}.",
        "channels": ["telegram", "sms"],
        "areas": areas,
        "send_at": "2026-12-01T08:00",
    })
}
