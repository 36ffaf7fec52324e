//! The officials' dashboard (reach per commune against the target band, with filters) and its
//! printable report.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use chrono::Datelike;
use serde_json::{Value, json};

use super::common::{PageAuth, PageResult, activity_view, split_columns};
use crate::console::dashboard::{AreaLine, Dashboard, DashboardQuery};
use crate::console::{ConsoleError, Permission};
use crate::web::auth::Auth;
use crate::web::state::WebState;
use crate::web::views::{
    ReachChart, Series, bar_svg, channel_color, month_bars_svg, number_vi, page, percent_vi,
    reach_chart_svg, render, status_text,
};

fn line_view(l: &AreaLine, d: &Dashboard, columns: &[(String, String)]) -> Value {
    json!({
        "splits": columns.iter().map(|(key, label)| json!({
            "label": label, "value": number_vi(l.split.get(key)),
        })).collect::<Vec<_>>(),
        "code": l.code,
        "name": l.name,
        "percent": l.percent,
        "status": l.status.map(|s| s.as_str()),
        "status_text": status_text(l.status),
        "population_text": number_vi(l.population),
        "reached_text": number_vi(l.reached),
        "percent_text": percent_vi(l.percent),
        "engaged_text": number_vi(l.engaged),
        "offline_text": number_vi(l.offline_estimate),
        "bar": bar_svg(l.percent, d.target_low_percent, d.target_high_percent, l.status),
    })
}
fn dashboard_query_string(q: &DashboardQuery) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let mut push = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_string()));
        }
    };
    push("period", &q.period);
    push("from", &q.from);
    push("to", &q.to);
    push("observance", &q.observance);
    push("content", &q.content);
    push("tag", &q.tag);
    if let Some(y) = q.year {
        pairs.push(("year", y.to_string()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// What the figures are narrowed to, in words.
fn filters_text(state: &WebState, d: &Dashboard) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &d.filter_observance
        && let Some(o) = state.calendar.observances().iter().find(|o| &o.id == id)
    {
        parts.push(format!("Tin nhắn về: {}", o.name));
    }
    if let Some(id) = d.filter_content {
        parts.push(format!("Đợt truyền thông số {id}"));
    }
    if let Some(tag) = &d.filter_tag {
        parts.push(format!("Nhóm đối tượng: {tag}"));
    }
    parts.join(" · ")
}

async fn dashboard_data(
    state: &WebState,
    auth: &Auth,
    q: &DashboardQuery,
) -> Result<(Dashboard, Value), ConsoleError> {
    let console = state.console();
    let d = console.dashboard(&auth.actor, q).await?;
    let year = q.year.unwrap_or(d.from.year());
    let columns = split_columns(state);
    let rows: Vec<Value> = d
        .communes
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut v = line_view(l, &d, &columns);
            v["index"] = json!(i + 1);
            v
        })
        .collect();
    let activities_audience: u64 = d.activities.iter().map(|a| a.audience.max(0) as u64).sum();
    let campaigns = console.sent_campaigns(&auth.actor).await?;
    let data = json!({
        "d": d,
        "rows": rows,
        "total_view": line_view(&d.total, &d, &columns),
        "split_columns": columns.iter().map(|(_, label)| json!({"label": label})).collect::<Vec<_>>(),
        "band_text": format!("{:.0}–{:.0} %", d.target_low_percent, d.target_high_percent),
        "periods": console.period_options(year, &d.period),
        "custom": d.period == "custom",
        "year": year,
        "from_value": d.from.to_string(),
        "to_value": d.to.to_string(),
        "observances": state.calendar.observances().iter().map(|o| json!({
            "id": o.id, "name": o.name, "selected": d.filter_observance.as_deref() == Some(o.id.as_str()),
        })).collect::<Vec<_>>(),
        "campaigns": campaigns.iter().map(|(id, title)| json!({
            "id": id, "title": title, "selected": d.filter_content == Some(*id),
        })).collect::<Vec<_>>(),
        "tag": d.filter_tag,
        "filters_text": filters_text(state, &d),
        "activities": d.activities.iter().map(activity_view).collect::<Vec<_>>(),
        "activities_count": d.activities.len(),
        "activities_audience": number_vi(activities_audience),
        "query": dashboard_query_string(q),
        "can_export_deliveries": Permission::ExportDeliveries.allows(auth.actor.role),
        "sender_upper": state.config.campaign.sender.to_uppercase(),
    });
    Ok((d, data))
}

pub(super) async fn dashboard(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    match dashboard_data(&state, &auth, &q).await {
        Ok((_, mut data)) => {
            data["projection"] = projection_view(&state.console().projection(&auth.actor).await?);
            data["budget"] = budget_view(&state.console().budget(&auth.actor).await?);
            Ok(page(
                &state,
                Some(&auth),
                StatusCode::OK,
                "Kết quả truyền thông",
                "dashboard",
                data,
            ))
        }
        Err(ConsoleError::Invalid { message, .. }) => {
            // Show the form again with the problem, over the default period.
            let (_, mut data) = dashboard_data(&state, &auth, &DashboardQuery::default()).await?;
            data["error"] = json!(message);
            Ok(page(
                &state,
                Some(&auth),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Kết quả truyền thông",
                "dashboard",
                data,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// This year's outlook as the dashboard shows it: the communes projected below the band first,
/// each with what would close its gap, in Vietnamese.
fn projection_view(p: &crate::console::projection::Projection) -> Value {
    let rows: Vec<Value> = p
        .communes
        .iter()
        .map(|c| {
            let top_up = c.top_up.as_ref().map(|t| {
                let parts: Vec<String> = t
                    .by_channel
                    .iter()
                    .map(|part| match part.parts {
                        Some(n) => format!(
                            "{} người qua {} ({n} tin/người)",
                            number_vi(part.persons),
                            part.channel_label
                        ),
                        None => format!(
                            "{} người qua {}",
                            number_vi(part.persons),
                            part.channel_label
                        ),
                    })
                    .collect();
                let budget = t
                    .by_channel
                    .iter()
                    .filter(|p| p.cost_vnd > 0.0)
                    .filter_map(|p| {
                        p.budget_left.map(|left| {
                            format!("{} còn {}", p.channel_label, crate::text::dong(left))
                        })
                    })
                    .collect::<Vec<_>>();
                let budget = match (budget.is_empty(), t.within_budget) {
                    (true, _) => String::new(),
                    (false, true) => format!(" Trong ngân sách ({}).", budget.join(", ")),
                    (false, false) => format!(" Vượt ngân sách còn lại ({}).", budget.join(", ")),
                };
                format!(
                    "Gửi tin “{}” tới {} người chưa được tiếp cận: {}; chi phí khoảng {}.{budget}",
                    t.observance,
                    number_vi(t.persons),
                    parts.join(", "),
                    crate::text::dong(t.cost_vnd)
                )
            });
            json!({
                "code": c.code,
                "name": c.name,
                "reached_text": number_vi(c.reached),
                "unreached_text": number_vi(c.unreached),
                "fires_left": c.fires_left,
                "projected_text": number_vi(c.outlook.projected),
                "share_text": percent_vi(c.projected_share.map(|s| s * 100.0)),
                "below": c.projected_below,
                "needed_text": number_vi(c.outlook.needed),
                "needed": c.outlook.needed > 0,
                "top_up": top_up,
            })
        })
        .collect();
    let month_now = p.as_of.month0() as usize;
    let fire_days: Vec<u32> = p.fire_dates.iter().map(|d| d.ordinal0()).collect();
    let chart = |by_month: &[u64; 12], population: u64, projected: u64, label: &str| {
        reach_chart_svg(&ReachChart {
            by_month,
            population,
            projected,
            month_now,
            low: p.band.0,
            high: p.band.1,
            fire_days: &fire_days,
            label,
        })
    };
    let mut total = [0u64; 12];
    for c in &p.communes {
        for (m, n) in c.by_month.iter().enumerate() {
            total[m] += n;
        }
    }
    let population: u64 = p.communes.iter().map(|c| c.population).sum();
    let projected: u64 = p.communes.iter().map(|c| c.outlook.projected).sum();
    let mut multiples: Vec<&crate::console::projection::CommuneProjection> =
        p.communes.iter().collect();
    multiples.sort_by(|a, b| a.name.cmp(&b.name));
    json!({
        "year": p.year,
        "below_count": p.communes.iter().filter(|c| c.projected_below).count(),
        "rows": rows,
        "chart": chart(&total, population, projected, "Tỷ lệ đã tiếp cận cộng dồn trong năm, toàn địa bàn"),
        "multiples": multiples.iter().map(|c| json!({
            "code": c.code,
            "name": c.name,
            "share_text": percent_vi(c.projected_share.map(|s| s * 100.0)),
            "below": c.projected_below,
            "svg": chart(&c.by_month, c.population, c.outlook.projected, &c.name),
        })).collect::<Vec<_>>(),
    })
}

/// The year's spending against each channel's budget, and the channels month by month: what
/// reached people by which channel, and what it cost.
pub(super) fn budget_view(b: &crate::console::budget::BudgetView) -> Value {
    use crate::text::dong;
    let rows: Vec<Value> = b
        .channels
        .iter()
        .map(|c| {
            let left = c.left();
            json!({
                "label": c.channel_label,
                "color": channel_color(c.channel),
                "budget_text": c.budget.map_or("Chưa đặt".to_string(), dong),
                "spent_text": dong(c.spent),
                "committed_text": dong(c.committed),
                "held_text": dong(c.held),
                "left_text": left.map_or("–".to_string(), |l| if l < 0.0 { format!("Vượt {}", dong(-l)) } else { dong(l) }),
                "over": left.is_some_and(|l| l < 0.0),
            })
        })
        .collect();
    let series = |pick: &dyn Fn(&crate::budget::ChannelSpend) -> [f64; 12]| -> Vec<Series<'_>> {
        b.channels
            .iter()
            .map(|c| Series {
                label: c.channel_label,
                color: channel_color(c.channel),
                by_month: pick(c),
            })
            .collect()
    };
    let reached = series(&|c| c.reached_by_month.map(|n| n as f64));
    let cost = series(&|c| c.spent_by_month);
    json!({
        "year": b.year,
        "has_budgets": b.has_budgets(),
        "rows": rows,
        "undecided": b.held.iter().filter(|h| h.decision.is_none()).count(),
        "split_chart": month_bars_svg(
            &format!("Số tin đã gửi đến người nhận theo tháng, theo kênh, năm {}", b.year),
            &reached,
            |max| format!("{} tin", number_vi(max.round() as u64)),
        ),
        "cost_chart": month_bars_svg(
            &format!("Số tiền đã chi theo tháng, theo kênh, năm {}", b.year),
            &cost,
            dong,
        ),
    })
}

pub(super) async fn report(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    let (_, mut data) = dashboard_data(&state, &auth, &q).await?;
    let today = state
        .clock
        .now()
        .with_timezone(&state.config.campaign.time_zone)
        .date_naive();
    let place = state
        .config
        .areas
        .roots()
        .next()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    data["place_date"] = json!(format!(
        "{}, ngày {} tháng {} năm {}",
        place
            .trim_start_matches("Huyện ")
            .trim_start_matches("huyện "),
        today.day(),
        today.month(),
        today.year()
    ));
    Ok(Html(render("report", &data)).into_response())
}
