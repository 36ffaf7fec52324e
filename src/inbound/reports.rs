//! Delivery reports from SMS gateways (`/webhooks/sms/dlr`): Kannel's DLR types, or a brandname
//! API's callback mapped onto them; and Zalo's receipts (`/webhooks/zalo`, a received message
//! as DLR 1). A gateway accepting a message is not delivery: an SMS or a ZNS message counts as
//! reaching its person when its report says delivered.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use crate::channel::ChannelKind;
use crate::config::Config;
use crate::delivery::{Attempt, Status, log_attempt};
use crate::reach;
use crate::store::{Db, to_epoch};

/// What a gateway's delivery report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The delivery moved to this status.
    Updated(Status),
    /// Nothing to change (a report of submission, or an older report after a final one).
    Unchanged,
    /// No SMS delivery has this id: refused, nothing changed.
    UnknownDelivery,
}

/// The SMS delivery a provider's message id names, if any.
pub async fn delivery_of_provider_message(
    db: &Db,
    provider_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM deliveries WHERE provider_message_id = $1 AND channel = $2")
        .bind(provider_id)
        .bind(ChannelKind::Sms.as_str())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
}

/// Applies an SMS delivery report, by Kannel's DLR type: 1 delivered, 2 failed, 4 buffered,
/// 8 submitted to the SMSC, 16 rejected by the SMSC. A delivered SMS counts the person as
/// reached. A report naming anything but an SMS delivery changes nothing.
pub async fn record_delivery_report(
    db: &Db,
    config: &Config,
    channel: ChannelKind,
    delivery_id: i64,
    dlr: u32,
    at: DateTime<Utc>,
) -> anyhow::Result<ReportOutcome> {
    static UPDATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries SET status = $1, updated_at = $2,
                 delivered_at = CASE WHEN $1 = {delivered} THEN $2 ELSE delivered_at END,
                 reached_at = CASE WHEN $1 = {delivered} THEN $2 ELSE reached_at END,
                 last_error = CASE WHEN $1 = {failed} THEN $3 ELSE last_error END
             WHERE id = $4",
            delivered = Status::Delivered.sql(),
            failed = Status::Failed.sql(),
        )
    });
    let Some(row) = sqlx::query(
        "SELECT d.status, d.person_id, p.area_code, p.kind FROM deliveries d
         JOIN persons p ON p.id = d.person_id WHERE d.id = $1 AND d.channel = $2",
    )
    .bind(delivery_id)
    .bind(channel.as_str())
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(ReportOutcome::UnknownDelivery);
    };
    let status = Status::parse(&row.try_get::<String, _>(0)?);
    let person_id: i64 = row.try_get(1)?;
    let area_code: String = row.try_get(2)?;
    let kind: String = row.try_get(3)?;
    let (new_status, attempt) = match dlr {
        1 => (Status::Delivered, Attempt::Delivered),
        2 | 16 => (Status::Failed, Attempt::Failed),
        4 => (Status::Buffered, Attempt::Buffered),
        _ => return Ok(ReportOutcome::Unchanged),
    };
    // Final states stay final. A report can beat the worker that sent the message to the
    // database (the gateway answers, the SMSC reports at once): a `sending` row takes it, and
    // the worker's own record keeps it.
    let open = matches!(
        status,
        Some(Status::Sending | Status::Sent | Status::Buffered)
    );
    if !open || status == Some(new_status) {
        return Ok(ReportOutcome::Unchanged);
    }
    let detail = format!("delivery report {dlr}");
    let mut tx = db.pool.begin().await?;
    sqlx::query(AssertSqlSafe(UPDATE.as_str()))
        .bind(new_status.as_str())
        .bind(to_epoch(at))
        .bind(&detail)
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?;
    log_attempt(&mut *tx, delivery_id, at, attempt, &detail).await?;
    if new_status == Status::Delivered {
        reach::record(
            &mut tx,
            person_id,
            &area_code,
            channel,
            &kind,
            at,
            config.campaign.time_zone,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ReportOutcome::Updated(new_status))
}
