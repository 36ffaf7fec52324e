//! While a channel is down its deliveries wait: the resident gets the message late rather than
//! twice or by a dearer channel. Only a delivery that would otherwise expire before the channel
//! comes back goes by the occurrence's next channel the person has (Zalo down on 8 March: the
//! message goes by SMS in its last half hour rather than not at all). Its contact on the
//! channel that is down stays active: the channel, not the person, failed. A delivery that
//! already met a transport failure on that channel stays: the provider may have taken the
//! message before the connection broke, and the resident must not get it twice.

use chrono::{DateTime, Duration, Utc};
use sqlx::{AssertSqlSafe, Row};

use crate::channel::{ChannelKind, ChannelSet};
use crate::delivery::Status;
use crate::store::{Db, to_epoch};

/// How long before its expiry a waiting delivery of a channel that is down moves on.
pub const RESCUE_BEFORE: Duration = Duration::minutes(30);
/// Rows moved per step and channel, soonest expiry first.
const BATCH: i64 = 500;

/// Moves the deliveries of `down` channels expiring within [`RESCUE_BEFORE`] to their
/// occurrence's next channel; returns how many moved.
pub(super) async fn rescue(
    db: &Db,
    down: &[ChannelKind],
    channels: &ChannelSet,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let select = format!(
        "SELECT d.id, d.person_id, o.channels FROM deliveries d
         JOIN occurrences o ON o.id = d.occurrence_id
         WHERE d.status = {pending} AND d.channel = $1 AND d.expires_at <= $2 AND d.expires_at > $3
           AND d.failures = 0
         ORDER BY d.expires_at LIMIT {BATCH}",
        pending = Status::Pending.sql()
    );
    let update = format!(
        "UPDATE deliveries SET channel = $1, contact_id = $2, due_at = $3, updated_at = $3,
             last_error = $4
         WHERE id = $5 AND status = {pending} AND channel = $6",
        pending = Status::Pending.sql()
    );
    let mut moved = 0;
    for &kind in down {
        let rows = sqlx::query(AssertSqlSafe(select.clone()))
            .bind(kind.as_str())
            .bind(to_epoch(now + RESCUE_BEFORE))
            .bind(to_epoch(now))
            .fetch_all(&db.pool)
            .await?;
        for row in rows {
            let (id, person): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            let order: String = row.try_get(2)?;
            let later = order
                .split(',')
                .filter_map(|c| channels.parse(c.trim()))
                .skip_while(|c| *c != kind)
                .skip(1);
            for next in later {
                let contact: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM contacts WHERE person_id = $1 AND channel = $2 AND active = 1
                     ORDER BY id LIMIT 1",
                )
                .bind(person)
                .bind(next.as_str())
                .fetch_optional(&db.pool)
                .await?;
                let Some(contact) = contact else { continue };
                moved += sqlx::query(AssertSqlSafe(update.clone()))
                    .bind(next.as_str())
                    .bind(contact)
                    .bind(to_epoch(now))
                    .bind(format!(
                        "{kind} down and the message about to expire: sent by {next}"
                    ))
                    .bind(id)
                    .bind(kind.as_str())
                    .execute(&db.pool)
                    .await?
                    .rows_affected() as usize;
                break;
            }
        }
    }
    Ok(moved)
}
