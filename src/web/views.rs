//! How the console's pages look: the handlebars views (`views/`, built into the binary), the
//! layout every page sits in, the sign-in form (the answer to a page requested without a
//! session, and the sign-in page itself), the Vietnamese ways of writing numbers, percentages
//! and local times, and the SVG bar of the reach figures.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use handlebars::Handlebars;
use serde_json::{Value, json};

use super::auth::Auth;
use super::state::WebState;
use crate::console::Permission;
use crate::console::accounts;
use crate::reach::BandStatus;

static VIEWS: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut hb = Handlebars::new();
    for (name, source) in [
        ("layout", include_str!("views/layout.hbs")),
        ("login", include_str!("views/login.hbs")),
        ("password", include_str!("views/password.hbs")),
        ("error", include_str!("views/error.hbs")),
        ("dashboard", include_str!("views/dashboard.hbs")),
        ("report", include_str!("views/report.hbs")),
        ("calendar", include_str!("views/calendar.hbs")),
        ("queue", include_str!("views/queue.hbs")),
        ("content", include_str!("views/content.hbs")),
        ("activities", include_str!("views/activities.hbs")),
        ("audit", include_str!("views/audit.hbs")),
        ("import", include_str!("views/import.hbs")),
        ("inbox", include_str!("views/inbox.hbs")),
        ("inbox_item", include_str!("views/inbox_item.hbs")),
        ("posters", include_str!("views/posters.hbs")),
    ] {
        hb.register_template_string(name, source)
            .unwrap_or_else(|e| panic!("views/{name}.hbs: {e}"));
    }
    hb
});

pub(super) fn render(view: &str, data: &Value) -> String {
    VIEWS.render(view, data).unwrap_or_else(|e| {
        tracing::error!("view {view}: {e}");
        format!("<p class=\"error\">Lỗi hiển thị trang ({view}).</p>")
    })
}

/// A page inside the layout, with the navigation the actor may use.
pub(super) fn page(
    state: &WebState,
    auth: Option<&Auth>,
    status: StatusCode,
    title: &str,
    view: &str,
    data: Value,
) -> Response {
    let body = render(view, &data);
    let layout = json!({
        "title": title,
        "campaign": state.config.campaign.name_in(
            state.clock.now().with_timezone(&state.config.campaign.time_zone).year()
        ),
        "body": body,
        "user": auth.map(|a| a.actor.name.clone()),
        "csrf": auth.and_then(|a| a.csrf()),
        "can_queue": auth.is_some_and(|a| Permission::ViewQueue.allows(a.actor.role)),
        "can_audit": auth.is_some_and(|a| Permission::ViewAudit.allows(a.actor.role)),
        "can_import": auth.is_some_and(|a| Permission::ImportContacts.allows(a.actor.role)),
    });
    (status, Html(render("layout", &layout))).into_response()
}

/// The cookie carrying the sign-in form's own CSRF token (there is no session yet).
pub(super) const LOGIN_COOKIE: &str = "loa_login";

/// The sign-in form, as the answer to a page requested without a session: with a fresh token
/// in the form and in a cookie only `/login` receives, which the sign-in must echo.
pub(super) fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let token = accounts::random_token();
    let body = render(
        "login",
        &json!({"next": safe_next(next), "error": error, "csrf": token}),
    );
    let layout = json!({"title": "Đăng nhập", "campaign": "", "body": body});
    (
        status,
        [(
            header::SET_COOKIE,
            format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600"),
        )],
        Html(render("layout", &layout)),
    )
        .into_response()
}

/// Only local paths: a `next` pointing elsewhere would make the sign-in form an open redirect.
/// One leading `/`, not followed by `/` or `\` (a browser reads both as another host), and no
/// control character or space anywhere (browsers drop some, which could form `//` again).
pub(super) fn safe_next(next: &str) -> &str {
    let mut chars = next.chars();
    let local = chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if local { next } else { "/dashboard" }
}

/// 12345 → "12.345".
pub(super) fn number_vi(n: u64) -> String {
    crate::text::number_vi(n)
}

/// 41.25 → "41,25 %".
pub(super) fn percent_vi(p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{p:.2} %").replace('.', ","),
        None => "—".to_string(),
    }
}

pub(super) fn status_text(status: Option<BandStatus>) -> &'static str {
    match status {
        Some(BandStatus::Below) => "Chưa đạt",
        Some(BandStatus::Within) => "Đạt",
        Some(BandStatus::Above) => "Vượt",
        None => "Chưa có dân số",
    }
}

pub(super) fn local(state: &WebState, at: DateTime<Utc>) -> String {
    at.with_timezone(&state.config.campaign.time_zone)
        .format("%H:%M %d/%m/%Y")
        .to_string()
}

/// A horizontal bar of 0–100 %, with the target band shaded and the value coloured by where it
/// falls. Numbers only go into it, so it is safe to insert unescaped.
pub(super) fn bar_svg(
    percent: Option<f64>,
    low: f64,
    high: f64,
    status: Option<BandStatus>,
) -> String {
    let value = percent.unwrap_or(0.0).clamp(0.0, 100.0);
    let colour = match status {
        Some(BandStatus::Below) | None => "var(--below)",
        Some(BandStatus::Within) => "var(--within)",
        Some(BandStatus::Above) => "var(--above)",
    };
    format!(
        "<svg class=\"bar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{label} (mục tiêu {low:.0}–{high:.0} %)\">\
<rect x=\"0\" y=\"0\" width=\"100\" height=\"10\" fill=\"#eee\"/>\
<rect class=\"band\" x=\"{low}\" y=\"0\" width=\"{band}\" height=\"10\" fill=\"var(--band)\" opacity=\"0.55\"/>\
<rect class=\"value\" x=\"0\" y=\"2.5\" width=\"{value}\" height=\"5\" fill=\"{colour}\"/>\
<line x1=\"{low}\" y1=\"0\" x2=\"{low}\" y2=\"10\" stroke=\"#333\" stroke-width=\"0.4\"/>\
<line x1=\"{high}\" y1=\"0\" x2=\"{high}\" y2=\"10\" stroke=\"#333\" stroke-width=\"0.4\"/></svg>",
        label = percent_vi(percent),
        band = high - low,
    )
}

/// What a reach-through-the-year chart shows.
pub(super) struct ReachChart<'a> {
    /// Reached by the end of each month, cumulative.
    pub by_month: &'a [u64; 12],
    pub population: u64,
    /// Projected year-end reach (drawn dashed from the current month to December).
    pub projected: u64,
    /// 0-based month of today: the solid line stops there.
    pub month_now: usize,
    pub low: f64,
    pub high: f64,
    /// Day of the year (0-based) of each fire time: ticks along the bottom.
    pub fire_days: &'a [u32],
    pub label: &'a str,
}

/// Cumulative reach through the year against the band, inline SVG (no script): the band shaded,
/// the months so far solid, the projection dashed, fire times ticked below.
pub(super) fn reach_chart_svg(c: &ReachChart<'_>) -> String {
    let (left, width, top, height) = (8.0, 110.0, 4.0, 44.0);
    // The axis runs to 100 % when anything goes above the band's top, else to 80 %.
    let share = |n: u64| {
        if c.population == 0 {
            0.0
        } else {
            n as f64 / c.population as f64
        }
    };
    let top_share = if share(c.projected.max(c.by_month[11])) > 0.8 {
        1.0
    } else {
        0.8
    };
    let y = |s: f64| top + height * (1.0 - (s / top_share).clamp(0.0, 1.0));
    let x = |month_end: f64| left + width * month_end / 12.0;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 120 56\" role=\"img\" aria-label=\"{label}\">\
<rect x=\"{left}\" y=\"{top}\" width=\"{width}\" height=\"{height}\" fill=\"#fff\" stroke=\"#ccc\" stroke-width=\"0.3\"/>\
<rect class=\"band\" x=\"{left}\" y=\"{band_y:.2}\" width=\"{width}\" height=\"{band_h:.2}\" fill=\"var(--band)\" opacity=\"0.45\"/>",
        label = crate::text::telegram_html::escape(c.label),
        band_y = y(c.high),
        band_h = y(c.low) - y(c.high),
    );
    for (s, text) in [(c.low, c.low), (c.high, c.high), (top_share, top_share)] {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.2}\" font-size=\"3\" text-anchor=\"end\" fill=\"#555\">{:.0}%</text>",
            left - 0.8,
            y(s) + 1.0,
            text * 100.0
        ));
    }
    let now = c.month_now.min(11);
    let mut points = format!("{:.2},{:.2}", x(0.0), y(0.0));
    for m in 0..=now {
        points.push_str(&format!(
            " {:.2},{:.2}",
            x(m as f64 + 1.0),
            y(share(c.by_month[m]))
        ));
    }
    svg.push_str(&format!(
        "<polyline class=\"reached\" points=\"{points}\" fill=\"none\" stroke=\"#8b1a1a\" stroke-width=\"1\"/>"
    ));
    if now < 11 {
        svg.push_str(&format!(
            "<line class=\"projected\" x1=\"{:.2}\" y1=\"{:.2}\" x2=\"{:.2}\" y2=\"{:.2}\" stroke=\"#8b1a1a\" stroke-width=\"0.8\" stroke-dasharray=\"2 1.5\"/>",
            x(now as f64 + 1.0),
            y(share(c.by_month[now])),
            x(12.0),
            y(share(c.projected)),
        ));
    }
    for day in c.fire_days {
        let fx = left + width * f64::from(*day) / 365.0;
        svg.push_str(&format!(
            "<line class=\"fire\" x1=\"{fx:.2}\" y1=\"{:.2}\" x2=\"{fx:.2}\" y2=\"{:.2}\" stroke=\"#1f5fa8\" stroke-width=\"0.4\"/>",
            top + height,
            top + height + 2.0
        ));
    }
    for m in [0usize, 3, 6, 9] {
        svg.push_str(&format!(
            "<text x=\"{:.2}\" y=\"55\" font-size=\"3\" fill=\"#555\">T{}</text>",
            x(m as f64) + 0.5,
            m + 1
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// One channel's figures by month, for [`month_bars_svg`].
pub(super) struct Series<'a> {
    pub label: &'a str,
    pub color: &'static str,
    pub by_month: [f64; 12],
}

/// A colour per channel, the same on every chart.
pub(super) fn channel_color(kind: crate::channel::ChannelKind) -> &'static str {
    use crate::channel::ChannelKind;
    match kind {
        ChannelKind::Telegram => "#1f5fa8",
        ChannelKind::Zalo => "#0f8a6a",
        ChannelKind::Sms => "#b0601a",
        _ => "#777777",
    }
}

/// Twelve monthly bars, each stacked by series, as inline SVG; `top` labels the axis' top in
/// the chart's unit.
pub(super) fn month_bars_svg(
    label: &str,
    series: &[Series<'_>],
    top: impl Fn(f64) -> String,
) -> String {
    let (left, width, bottom, height) = (14.0, 104.0, 48.0, 44.0);
    let totals: Vec<f64> = (0..12)
        .map(|m| series.iter().map(|s| s.by_month[m].max(0.0)).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let scale = if max > 0.0 { height / max } else { 0.0 };
    let slot = width / 12.0;
    let mut svg = format!(
        "<svg class=\"chart bars\" viewBox=\"0 0 120 56\" role=\"img\" aria-label=\"{}\">\
<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#999\" stroke-width=\"0.3\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"3\" text-anchor=\"end\" fill=\"#555\">{}</text>",
        crate::text::telegram_html::escape(label),
        left + width,
        left - 0.8,
        bottom - height + 2.0,
        crate::text::telegram_html::escape(&top(max)),
    );
    for m in 0..12 {
        let x = left + slot * m as f64 + slot * 0.15;
        let mut y = bottom;
        for s in series {
            let h = s.by_month[m].max(0.0) * scale;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            svg.push_str(&format!(
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{h:.2}\" fill=\"{}\"><title>{} T{}: {}</title></rect>",
                slot * 0.7,
                s.color,
                crate::text::telegram_html::escape(s.label),
                m + 1,
                crate::text::number_vi(s.by_month[m].round() as u64),
            ));
        }
        if m % 3 == 0 {
            svg.push_str(&format!(
                "<text x=\"{x:.2}\" y=\"55\" font-size=\"3\" fill=\"#555\">T{}</text>",
                m + 1
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_percentages_read_the_vietnamese_way() {
        assert_eq!(number_vi(0), "0");
        assert_eq!(number_vi(1234), "1.234");
        assert_eq!(number_vi(1234567), "1.234.567");
        assert_eq!(percent_vi(Some(41.25)), "41,25 %");
        assert_eq!(percent_vi(None), "—");
    }

    #[test]
    fn sign_in_never_redirects_off_site() {
        assert_eq!(safe_next("/queue/3?x=1"), "/queue/3?x=1");
        assert_eq!(safe_next("/"), "/");
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/x\u{0}",
            "",
            "evil",
        ] {
            assert_eq!(safe_next(evil), "/dashboard", "{evil:?}");
        }
    }

    #[test]
    fn every_view_compiles() {
        assert!(VIEWS.get_templates().len() >= 11);
    }
}
