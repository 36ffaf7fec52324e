//! At the fan-out: each delivery's estimated cost, and the hold when the occurrence would take
//! a channel over its yearly budget. Both run in the scheduler's transaction, so an occurrence
//! is never seen half-priced or pending for a moment before it is held.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Message, Pricer};
use crate::delivery::Status;
use crate::store::Sql;
use crate::text::dong;

/// A channel the occurrence would take over its budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Over {
    /// The channel's name (`sms`) and label (`SMS`), as they were when it was held.
    pub channel: String,
    pub channel_label: String,
    /// The occurrence's estimated cost on it, in đồng.
    pub estimate: f64,
    /// What the budget had left before it.
    pub left: f64,
    pub budget: f64,
}

/// Writes each delivery's estimated cost: one price per (channel, commune) of the occurrence.
pub async fn estimate(
    conn: &mut sqlx::AnyConnection,
    pricer: &Pricer,
    occurrence_id: i64,
    message: &Message,
) -> Result<(), sqlx::Error> {
    let pairs = sqlx::query(
        "SELECT DISTINCT d.channel, p.area_code FROM deliveries d
         JOIN persons p ON p.id = d.person_id WHERE d.occurrence_id = $1",
    )
    .bind(occurrence_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in pairs {
        let channel: String = row.try_get(0)?;
        let area: String = row.try_get(1)?;
        let Some(kind) = pricer.channels().parse(&channel) else {
            continue;
        };
        let each = pricer.each(message, kind, &area);
        if each == 0.0 {
            continue;
        }
        sqlx::query(
            "UPDATE deliveries SET cost = $1
             WHERE occurrence_id = $2 AND channel = $3
               AND person_id IN (SELECT id FROM persons WHERE area_code = $4)",
        )
        .bind(each)
        .bind(occurrence_id)
        .bind(channel)
        .bind(area)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The channels the occurrence (priced, still pending) would take over their budgets in
/// `year`; when there are any, its deliveries are held and the reasons kept on it.
pub async fn check(
    conn: &mut sqlx::AnyConnection,
    pricer: &Pricer,
    occurrence_id: i64,
    year: i32,
) -> Result<Vec<Over>, sqlx::Error> {
    let config = pricer.config();
    if config.channels.iter().all(|d| d.yearly_budget.is_none()) {
        return Ok(Vec::new());
    }
    super::lock(&mut *conn).await?;
    let mut sql =
        Sql::new("SELECT channel, COALESCE(SUM(cost), 0.0) FROM deliveries WHERE occurrence_id = ");
    sql.bind(occurrence_id).push(" GROUP BY channel");
    let mut mine: Vec<(String, f64)> = Vec::new();
    for row in sql.query()?.fetch_all(&mut *conn).await? {
        mine.push((row.try_get(0)?, row.try_get(1)?));
    }
    let spends = super::year(
        &mut *conn,
        &config.channels,
        config.campaign.time_zone,
        year,
    )
    .await?;
    let mut over = Vec::new();
    for spend in spends {
        let Some(budget) = spend.budget else {
            continue;
        };
        let estimate = mine
            .iter()
            .find(|(c, _)| c == spend.channel.as_str())
            .map_or(0.0, |(_, e)| *e);
        // Its own pending deliveries are among the committed ones.
        if estimate > 0.0 && spend.spent + spend.committed > budget {
            over.push(Over {
                channel: spend.channel.as_str().to_string(),
                channel_label: spend.channel_label.to_string(),
                estimate,
                left: (budget - spend.spent - (spend.committed - estimate)).max(0.0),
                budget,
            });
        }
    }
    if !over.is_empty() {
        hold(conn, occurrence_id, &over).await?;
    }
    Ok(over)
}

async fn hold(
    conn: &mut sqlx::AnyConnection,
    occurrence_id: i64,
    over: &[Over],
) -> Result<(), sqlx::Error> {
    let mut held = Sql::new(format!(
        "UPDATE deliveries SET status = {} WHERE status = {} AND occurrence_id = ",
        Status::Held.sql(),
        Status::Pending.sql()
    ));
    held.bind(occurrence_id);
    held.query()?.execute(&mut *conn).await?;
    sqlx::query("UPDATE occurrences SET hold_detail = $1 WHERE id = $2")
        .bind(serde_json::to_string(over).expect("plain data"))
        .bind(occurrence_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The admins' message about an occurrence held over budget, in Vietnamese.
pub fn notice(observance: &str, over: &[Over]) -> String {
    let mut text =
        format!("ĐỢT GỬI CHỜ QUYẾT ĐỊNH: “{observance}” vượt ngân sách năm và chưa được gửi.\n");
    for o in over {
        let label = &o.channel_label;
        text.push_str(&format!(
            "- {label}: chi phí dự tính {}, ngân sách còn {} (cả năm {}).\n",
            dong(o.estimate),
            dong(o.left),
            dong(o.budget),
        ));
    }
    text.push_str(
        "Đề nghị quản trị viên vào mục “Nội dung” trên trang quản trị để chọn: chỉ gửi trong \
         phạm vi ngân sách còn lại, vẫn gửi cho tất cả, hoặc hủy. Nếu quá hạn mà chưa có quyết \
         định, đợt gửi sẽ không được gửi.",
    );
    text
}
