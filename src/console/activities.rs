//! Offline activities: banners, loudspeaker broadcasts, mobile communication sessions,
//! trainings. Their audiences are estimates someone typed in, so reports show them beside
//! measured reach and never add them to it. Owns the table `offline_activities`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Actor, ConsoleError, Permission, audit};
use crate::config::AreaTree;
use crate::store::{Db, Sql, to_epoch};

/// The kinds the plan names, as the console offers them.
pub const KINDS: [(&str, &str); 5] = [
    ("banner", "Pano, áp phích, băng rôn"),
    ("loudspeaker", "Phát thanh trên loa truyền thanh"),
    ("session", "Buổi truyền thông trực tiếp, lưu động"),
    ("training", "Tập huấn, bồi dưỡng"),
    ("other", "Hoạt động khác"),
];

/// A note on an activity, as long as a paragraph.
pub const MAX_NOTE_CHARS: usize = 500;

pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, label)| *label)
        .unwrap_or("Hoạt động khác")
}

/// What a form or the API sends.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ActivityInput {
    /// YYYY-MM-DD.
    pub date: String,
    pub area: String,
    pub kind: String,
    /// A number, or text as a form posts it.
    pub audience: NumberOrText,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(i64),
    Text(String),
}

impl Default for NumberOrText {
    fn default() -> Self {
        NumberOrText::Text(String::new())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Activity {
    pub id: i64,
    pub date: NaiveDate,
    pub area: String,
    pub area_name: String,
    pub kind: String,
    pub kind_label: String,
    pub audience: i64,
    pub note: String,
    pub entered_by: String,
}

pub async fn add(
    db: &Db,
    areas: &AreaTree,
    actor: &Actor,
    input: &ActivityInput,
    now: DateTime<Utc>,
) -> Result<Activity, ConsoleError> {
    actor.require(Permission::EnterActivities)?;
    let date = NaiveDate::parse_from_str(input.date.trim(), "%Y-%m-%d")
        .map_err(|_| ConsoleError::invalid("date", "Ngày không hợp lệ (dạng YYYY-MM-DD)."))?;
    let area = input.area.trim();
    let Some(area_row) = areas.get(area) else {
        return Err(ConsoleError::invalid("area", "Không có địa bàn này."));
    };
    if !actor.covers(&[area.to_string()], areas) {
        return Err(ConsoleError::Forbidden(format!(
            "area {area} is outside the account's area"
        )));
    }
    let kind = input.kind.trim();
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(ConsoleError::invalid(
            "kind",
            "Loại hoạt động không hợp lệ.",
        ));
    }
    let audience = match &input.audience {
        NumberOrText::Number(n) => Some(*n),
        NumberOrText::Text(t) => t.trim().replace(['.', ','], "").parse().ok(),
    };
    let audience: i64 = audience
        .filter(|n| (0..=10_000_000).contains(n))
        .ok_or_else(|| {
            ConsoleError::invalid("audience", "Số người ước tính phải là số nguyên không âm.")
        })?;
    super::typed_text("note", &input.note)?;
    let note = input.note.trim().to_string();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ConsoleError::invalid(
            "note",
            format!("Ghi chú tối đa {MAX_NOTE_CHARS} ký tự."),
        ));
    }
    let mut tx = db.pool.begin().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO offline_activities (day, area_code, kind, audience, note, entered_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(date.to_string())
    .bind(area)
    .bind(kind)
    .bind(audience)
    .bind(&note)
    .bind(&actor.id)
    .bind(to_epoch(now))
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let detail = format!("{date} {area} {kind} ~{audience}");
    audit::record(
        &mut *tx,
        now,
        &actor.id,
        "activity.add",
        Some(&format!("activity:{id}")),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(Activity {
        id,
        date,
        area: area.to_string(),
        area_name: area_row.name.clone(),
        kind: kind.to_string(),
        kind_label: kind_label(kind).to_string(),
        audience,
        note,
        entered_by: actor.id.clone(),
    })
}

/// Activities on the local dates `from..=to` within the actor's scope, latest first.
pub async fn list(
    db: &Db,
    areas: &AreaTree,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Activity>, ConsoleError> {
    page(db, areas, actor, (from, to), None, None).await
}

/// Like [`list`], from below the activity `after` (its date and id: the order's key) and at
/// most `limit` of them: a page of the JSON API.
pub async fn page(
    db: &Db,
    areas: &AreaTree,
    actor: &Actor,
    (from, to): (NaiveDate, NaiveDate),
    after: Option<(NaiveDate, i64)>,
    limit: Option<i64>,
) -> Result<Vec<Activity>, ConsoleError> {
    actor.require(Permission::ViewFigures)?;
    let mut sql = Sql::new(
        "SELECT id, day, area_code, kind, audience, note, entered_by FROM offline_activities
         WHERE day >= ",
    );
    sql.bind(from.to_string());
    sql.push(" AND day <= ");
    sql.bind(to.to_string());
    // The scope in the query, so a page holds only what the actor may see.
    match actor.scope(areas) {
        None => {}
        Some(scope) if scope.is_empty() => {
            sql.push(" AND 1 = 0");
        }
        Some(scope) => {
            sql.push(" AND area_code IN (");
            sql.list(scope);
            sql.push(")");
        }
    }
    if let Some((day, id)) = after {
        sql.push(" AND (day < ");
        sql.bind(day.to_string());
        sql.push(" OR (day = ");
        sql.bind(day.to_string());
        sql.push(" AND id < ");
        sql.bind(id);
        sql.push("))");
    }
    sql.push(" ORDER BY day DESC, id DESC");
    if let Some(limit) = limit {
        sql.push(" LIMIT ");
        sql.bind(limit);
    }
    let rows = sql.query()?.fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let area: String = r.try_get(2)?;
        let day: String = r.try_get(1)?;
        let kind: String = r.try_get(3)?;
        out.push(Activity {
            id: r.try_get(0)?,
            date: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|e| anyhow::anyhow!("offline_activities.day {day:?}: {e}"))?,
            area_name: areas.get(&area).map(|a| a.name.clone()).unwrap_or_default(),
            area,
            kind_label: kind_label(&kind).to_string(),
            kind,
            audience: r.try_get(4)?,
            note: r.try_get(5)?,
            entered_by: r.try_get(6)?,
        });
    }
    Ok(out)
}
