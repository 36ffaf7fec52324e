//! The content queue, and a content's page: write, preview, submit, approve, cancel.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{PageAuth, PageResult, channel_label};
use crate::console::content::{
    Content, ContentInput, Preview, QueueKey, State as ContentState, Transition,
};
use crate::console::{ConsoleError, Permission};
use crate::templates::staff::Placeholder;
use crate::templates::telegram_html;
use crate::web::auth::Auth;
use crate::web::error::PageError;
use crate::web::state::WebState;
use crate::web::views::{local, number_vi, page};

/// Items on one page of the queue: the unfinished ones come first, so the first page is the
/// work at hand; done and cancelled items, which pile up over the years, follow on later pages.
const QUEUE_PAGE: usize = 100;

#[derive(Deserialize)]
pub(super) struct QueuePage {
    after: Option<String>,
}

pub(super) async fn queue(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<QueuePage>,
) -> PageResult {
    let after = match q.after.as_deref() {
        None => None,
        Some(text) => Some(QueueKey::parse(text).ok_or_else(|| {
            ConsoleError::invalid(
                "after",
                "Đường dẫn trang không hợp lệ; xin mở lại trang Hàng đợi nội dung.",
            )
        })?),
    };
    let mut items = state
        .console()
        .contents_page(&auth.actor, after, QUEUE_PAGE + 1)
        .await?;
    let more = items.len() > QUEUE_PAGE;
    items.truncate(QUEUE_PAGE);
    let next = more
        .then(|| items.last().map(|c| QueueKey::of(c).cursor()))
        .flatten();
    // What each item would cost, from the calendar's estimate (items within its 90 days).
    let costs: std::collections::HashMap<String, (f64, bool)> = state
        .console()
        .upcoming(&auth.actor)
        .await?
        .into_iter()
        .map(|e| (e.id, (e.cost_vnd, e.over_budget)))
        .collect();
    let views: Vec<Value> = items
        .iter()
        .map(|c| json!({
            "cost_text": costs.get(&c.schedule_id()).map(|(cost, _)| crate::text::dong(*cost)),
            "over_budget": costs.get(&c.schedule_id()).is_some_and(|(_, over)| *over),
            "id": c.id,
            "title": c.title,
            "when": local(&state, c.send_at),
            "channels_text": c.channels.iter().map(|k| channel_label(&state, *k)).collect::<Vec<_>>().join(", "),
            "areas_text": areas_text(&state, &c.areas),
            "state": c.state,
            "state_text": c.state.label(),
            "author": c.author.trim_start_matches("user:"),
            "approver": c.approver.as_deref().map(|a| a.trim_start_matches("user:")),
        }))
        .collect();
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Hàng đợi nội dung",
        "queue",
        json!({
            "items": views,
            "next": next,
            "later_page": after.is_some(),
            "held": super::holds::held_views(&state, &auth, &state.console().budget(&auth.actor).await?.held),
            "csrf": auth.csrf(),
        }),
    ))
}

fn areas_text(state: &WebState, codes: &[String]) -> String {
    if codes.is_empty() {
        return "Toàn huyện".to_string();
    }
    codes
        .iter()
        .map(|c| {
            state
                .config
                .areas
                .get(c)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| c.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's fields, as posted (`areas` and `channels` repeat).
fn content_input(pairs: &[(String, String)]) -> (ContentInput, String) {
    let mut input = ContentInput::default();
    let mut csrf = String::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_csrf" => csrf = v.clone(),
            "title" => input.title = v.clone(),
            "template" => input.template = Some(v.clone()).filter(|v| !v.is_empty()),
            "areas" => input.areas.push(v.clone()),
            "tags" => input.tags.push(v.clone()),
            "channels" => input.channels.push(v.clone()),
            "observance" => input.observance = Some(v.clone()).filter(|v| !v.is_empty()),
            "unreached" => input.unreached = Some(v.clone()).filter(|v| !v.is_empty()),
            "below_band" => input.below_band = matches!(v.as_str(), "on" | "true" | "1"),
            "send_at" => input.send_at = v.clone(),
            // One text field per channel: `telegram_text`, `sms_text`, …
            other => {
                if let Some(channel) = other.strip_suffix("_text") {
                    input.texts.insert(channel.to_string(), v.clone());
                }
            }
        }
    }
    (input, csrf)
}

/// The audience picker's spans, the chosen one selected.
fn unreached_options(input: &ContentInput) -> Vec<Value> {
    [
        ("", "Không bỏ qua ai (gửi cho mọi người trong địa bàn)"),
        ("year", "Trong năm nay"),
        ("quarter", "Trong quý này"),
        ("month", "Trong tháng này"),
        ("observance", "Trong đợt sự kiện đã chọn"),
    ]
    .iter()
    .map(|(value, label)| {
        json!({
            "value": value, "label": label,
            "selected": input.unreached.as_deref().unwrap_or("") == *value,
        })
    })
    .collect()
}

fn input_of(state: &WebState, c: &Content) -> ContentInput {
    c.input(
        c.send_at
            .with_timezone(&state.config.campaign.time_zone)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
    )
}

fn preview_view(preview: &Preview) -> Value {
    json!({
        "recipients": number_vi(preview.recipients.max(0) as u64),
        "by_area": preview.by_area.iter().map(|a| json!({
            "code": a.code, "name": a.name, "recipients": number_vi(a.recipients.max(0) as u64),
        })).collect::<Vec<_>>(),
        "channels": preview.channels.iter().map(|c| {
            // Telegram: its few tags through the allow-list, everything else as text. SMS: text.
            let html = match (&c.rich, &c.text) {
                (Some(rich), _) => Some(telegram_html::rich_to_html(rich)),
                (None, Some(text)) => Some(handlebars::html_escape(text)),
                (None, None) => None,
            };
            let size_text = match (c.sms_segments, &c.sms_encoding) {
                (Some(parts), Some(enc)) => format!(
                    "{} ký tự · {parts} tin nhắn ({}) · chi phí ước tính {} đồng",
                    c.characters,
                    // What staff see: whether the SMS keeps its marks, not the encoding's name.
                    if enc == "GSM-7" { "không dấu" } else { "có dấu" },
                    number_vi(c.cost_vnd.unwrap_or(0.0).round() as u64)
                ),
                _ => match c.cost_vnd {
                    Some(cost) => format!(
                        "{} ký tự · chi phí ước tính {}",
                        c.characters,
                        crate::text::dong(cost)
                    ),
                    None => format!("{} ký tự", c.characters),
                },
            };
            let budget_text = c.budget_left.map(|left| {
                if c.over_budget {
                    format!(
                        "Vượt ngân sách năm của kênh (còn {}): khi đến giờ gửi, đợt gửi sẽ chờ quản trị viên quyết định.",
                        crate::text::dong(left)
                    )
                } else {
                    format!("Ngân sách năm của kênh còn {}.", crate::text::dong(left))
                }
            });
            json!({
                "channel": c.channel, "channel_label": c.channel_label,
                "recipients": number_vi(c.recipients.max(0) as u64),
                "error": c.error, "html": html, "size_text": size_text,
                "budget_text": budget_text, "over_budget": c.over_budget,
            })
        }).collect::<Vec<_>>(),
    })
}

async fn content_page(
    state: &WebState,
    auth: &Auth,
    content: Option<&Content>,
    input: &ContentInput,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> PageResult {
    let console = state.console();
    let preview = match console.preview(&auth.actor, input).await {
        Ok(p) => Some(preview_view(&p)),
        Err(ConsoleError::Invalid { .. }) | Err(ConsoleError::Forbidden(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut template_names: Vec<&str> = state.templates.names().map(|(n, _)| n).collect();
    template_names.dedup();
    let scope = auth.actor.scope(&state.config.areas);
    let editable = content.is_none_or(|c| c.state.is_open())
        && Permission::EditContent.allows(auth.actor.role);
    let is_author = content.is_some_and(|c| c.author == auth.actor.id);
    // The author and everyone who edited it since the last approval may not approve it.
    let wrote_it = match content {
        Some(c) => console.writers(c).await?.contains(&auth.actor.id),
        None => false,
    };
    let chosen = |k: &str| {
        input.channels.iter().any(|c| c == k) || (content.is_none() && input.channels.is_empty())
    };
    let typed = input.typed_fields();
    let channel_views: Vec<Value> = state
        .config
        .channels
        .iter()
        .map(|d| {
            json!({
                "name": d.kind,
                "label": d.label,
                "checked": chosen(d.kind.as_str()),
                "staff_text": d.staff_text,
                // SMS texts are short: a smaller box.
                "short": d.format.size("").is_some(),
                "value": typed.get(d.kind.as_str()),
            })
        })
        .collect();
    let data = json!({
        "id": content.map(|c| c.id),
        "state": content.map(|c| c.state),
        "state_text": content.map(|c| c.state.label()),
        "author": content.map(|c| c.author.trim_start_matches("user:").to_string()),
        "approver": content.and_then(|c| c.approver.as_deref()).map(|a| a.trim_start_matches("user:").to_string()),
        "csrf": auth.csrf(),
        "error": error,
        "notice": notice,
        "editable": editable,
        "approved_warning": content.is_some_and(|c| matches!(c.state, ContentState::AwaitingApproval | ContentState::Approved)),
        "can_submit": content.is_some_and(|c| c.state == ContentState::Draft) && Permission::EditContent.allows(auth.actor.role),
        "can_approve": content.is_some_and(|c| c.state == ContentState::AwaitingApproval) && !wrote_it && Permission::Approve.allows(auth.actor.role),
        "wrote_it": wrote_it && content.is_some_and(|c| c.state == ContentState::AwaitingApproval) && Permission::Approve.allows(auth.actor.role),
        "version": content.map(|c| c.version),
        "can_cancel": content.is_some_and(|c| c.state.is_open()) && (is_author || Permission::Approve.allows(auth.actor.role)),
        "title_value": input.title,
        "channels": channel_views,
        "tags_value": input.tags.join(", "),
        "send_at_value": input.send_at,
        "own_area": auth.actor.area.as_deref().and_then(|c| state.config.areas.get(c)).map(|a| a.name.clone()),
        "templates": template_names.iter().map(|n| json!({"name": n, "selected": input.template.as_deref() == Some(*n)})).collect::<Vec<_>>(),
        "areas": state.config.areas.tree_order().into_iter()
            .filter(|(_, a)| scope.as_ref().is_none_or(|s| s.contains(&a.code)))
            .map(|(depth, a)| json!({"code": a.code, "name": format!("{}{}", "— ".repeat(depth), a.name), "selected": input.areas.contains(&a.code)}))
            .collect::<Vec<_>>(),
        "observances": state.calendar.observances().iter().map(|o| json!({"id": o.id, "name": o.name, "selected": input.observance.as_deref() == Some(o.id.as_str())})).collect::<Vec<_>>(),
        "preview": preview,
        "unreached_options": unreached_options(input),
        "below_band": input.below_band,
        "band_text": format!(
            "{:.0} %",
            state.config.campaign.target.low * 100.0
        ),
        "placeholders": Placeholder::ALL.iter().map(|p| json!({"token": p.token(), "label": p.label()})).collect::<Vec<_>>(),
    });
    let title = content
        .map(|c| c.title.clone())
        .unwrap_or_else(|| "Soạn nội dung mới".to_string());
    Ok(page(state, Some(auth), status, &title, "content", data))
}

pub(super) async fn new_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    auth.actor.require(Permission::EditContent)?;
    let tomorrow = state
        .clock
        .now()
        .with_timezone(&state.config.campaign.time_zone)
        .date_naive()
        + chrono::Duration::days(1);
    let input = ContentInput {
        send_at: format!("{tomorrow}T08:00"),
        channels: vec!["telegram".to_string(), "sms".to_string()],
        ..ContentInput::default()
    };
    content_page(&state, &auth, None, &input, StatusCode::OK, None, None).await
}

pub(super) async fn create_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let (input, csrf) = content_input(&pairs);
    auth.check_csrf(Some(&csrf))?;
    match state.console().create_content(&auth.actor, &input).await {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}?saved=1", c.id)).into_response()),
        Err(ConsoleError::Invalid { message, .. }) => {
            content_page(
                &state,
                &auth,
                None,
                &input,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_id(id: &str) -> Result<i64, PageError> {
    id.parse().map_err(|_| PageError(ConsoleError::NotFound))
}

#[derive(Deserialize)]
pub(super) struct SavedQuery {
    saved: Option<String>,
}

pub(super) async fn show_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Query(q): Query<SavedQuery>,
) -> PageResult {
    let content = state.console().content(&auth.actor, parse_id(&id)?).await?;
    let input = input_of(&state, &content);
    let notice = q.saved.map(|_| "Đã lưu.");
    content_page(
        &state,
        &auth,
        Some(&content),
        &input,
        StatusCode::OK,
        None,
        notice,
    )
    .await
}

pub(super) async fn update_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let id = parse_id(&id)?;
    let (input, csrf) = content_input(&pairs);
    auth.check_csrf(Some(&csrf))?;
    let console = state.console();
    match console.update_content(&auth.actor, id, &input).await {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}?saved=1", c.id)).into_response()),
        Err(ConsoleError::Invalid { message, .. }) => {
            content_again(
                &state,
                &auth,
                id,
                Some(input),
                StatusCode::UNPROCESSABLE_ENTITY,
                message,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The content's page again with what went wrong above the form, and the form as posted
/// (`input`) or as stored.
async fn content_again(
    state: &WebState,
    auth: &Auth,
    id: i64,
    input: Option<ContentInput>,
    status: StatusCode,
    message: String,
) -> PageResult {
    let content = state.console().content(&auth.actor, id).await?;
    let input = input.unwrap_or_else(|| input_of(state, &content));
    content_page(
        state,
        auth,
        Some(&content),
        &input,
        status,
        Some(message),
        None,
    )
    .await
}

/// A button of the content page: the CSRF token and the version the page showed.
#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    _csrf: String,
    version: Option<i64>,
}

pub(super) async fn content_action(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    auth.check_csrf(Some(&form._csrf))?;
    let step = Transition::parse(&action).ok_or(PageError(ConsoleError::NotFound))?;
    let result = state
        .console()
        .apply(&auth.actor, id, step, form.version)
        .await;
    match result {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}", c.id)).into_response()),
        Err(ConsoleError::Conflict(message)) => {
            content_again(&state, &auth, id, None, StatusCode::CONFLICT, message).await
        }
        // An approver who wrote some of it: the reason above the content, not the generic
        // "no permission" page (they have the permission, not for this item).
        Err(ConsoleError::Forbidden(message)) if auth.actor.require(step.permission()).is_ok() => {
            content_again(&state, &auth, id, None, StatusCode::FORBIDDEN, message).await
        }
        Err(e) => Err(e.into()),
    }
}
