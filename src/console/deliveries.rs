//! The delivery log officials export: every delivery of the occurrences that fired in a period,
//! with its person, masked address and outcome. It names residents, so only the roles allowed
//! may take it, an area-limited account gets its area's lines only, and each export is audited.
//!
//! A district's year is millions of lines: they are read from the database as a stream and
//! handed over through a short channel, so memory holds a few hundred lines whatever the
//! period, and a reader that stops (a closed download) stops the reading.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::mpsc;

use super::dashboard::DashboardQuery;
use super::{Actor, Console, ConsoleError, Permission};
use crate::calendar::local_midnight;
use crate::store::{Sql, from_epoch, to_epoch};

/// Lines read ahead of the reader: enough to keep the database busy while a chunk is written,
/// few enough that memory does not depend on the period's size.
const LINES_AHEAD: usize = 1024;

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryLogLine {
    pub id: i64,
    pub fire_at: DateTime<Utc>,
    pub schedule_id: String,
    pub observance: String,
    pub person_name: String,
    pub area_code: String,
    pub channel: String,
    pub address: String,
    pub status: String,
    pub attempts: i64,
    pub sent_at: Option<DateTime<Utc>>,
    pub reached_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The log of a period, for an actor: the local dates it covers, and its lines in order as
/// they are read. Dropping `lines` before its end stops the reading (and the audit entry says
/// the export was cut short).
pub struct DeliveryLog {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub lines: mpsc::Receiver<Result<DeliveryLogLine, ConsoleError>>,
}

/// How a reading of the log ended, as the audit entry tells it.
enum Ending {
    Complete,
    /// The reader went away (the download was closed).
    Abandoned,
    Failed,
}

impl Console {
    /// The delivery log of the period `q` names, within the actor's area. The taking of it is
    /// written to the audit log before the first line is read, and the entry completed with
    /// the number of lines handed over when the reading ends.
    pub async fn delivery_log(
        &self,
        actor: &Actor,
        q: &DashboardQuery,
    ) -> Result<DeliveryLog, ConsoleError> {
        actor.require(Permission::ExportDeliveries)?;
        let (_, _, from, to) = self.resolve_period(q)?;
        let tz = self.config.campaign.time_zone;
        let mut sql = Sql::new(
            "SELECT d.id, o.fire_at, o.schedule_id, o.observance, p.name, p.area_code, d.channel,
                    c.address, d.status, d.attempts, d.sent_at, d.reached_at, d.last_error
             FROM deliveries d
             JOIN occurrences o ON o.id = d.occurrence_id
             JOIN persons p ON p.id = d.person_id
             JOIN contacts c ON c.id = d.contact_id
             WHERE o.fire_at >= ",
        );
        sql.bind(to_epoch(local_midnight(from, tz)));
        sql.push(" AND o.fire_at < ");
        sql.bind(to_epoch(local_midnight(to + Duration::days(1), tz)));
        // The scope in the query, so another area's lines are never even read.
        match actor.scope(&self.config.areas) {
            None => {}
            Some(scope) if scope.is_empty() => {
                sql.push(" AND 1 = 0");
            }
            Some(scope) => {
                sql.push(" AND p.area_code IN (");
                sql.list(scope);
                sql.push(")");
            }
        }
        sql.push(" ORDER BY o.fire_at, d.id");
        let query = sql.query()?;

        let period = format!("{from} – {to}");
        let entry: i64 = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, subject, detail)
             VALUES ($1, $2, 'export.deliveries', NULL, $3) RETURNING id",
        )
        .bind(to_epoch(self.clock.now()))
        .bind(&actor.id)
        .bind(format!("{period}: đang tải…"))
        .fetch_one(&self.db.pool)
        .await?
        .try_get(0)?;

        let (sender, lines) = mpsc::channel(LINES_AHEAD);
        let pool = self.db.pool.clone();
        tokio::spawn(async move {
            let mut handed = 0u64;
            let ending = {
                let mut rows = query.fetch(&pool);
                loop {
                    let next = match rows.try_next().await {
                        Ok(Some(row)) => line(&row).map_err(ConsoleError::from),
                        Ok(None) => break Ending::Complete,
                        Err(e) => Err(e.into()),
                    };
                    let failed = next.is_err();
                    // A client that keeps the connection open but stops reading would hold
                    // this read (a snapshot, a connection) for ever: after a minute without
                    // taking a line, the download counts as abandoned.
                    match tokio::time::timeout(STALLED, sender.send(next)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => break Ending::Abandoned,
                    }
                    if failed {
                        break Ending::Failed;
                    }
                    handed += 1;
                }
            };
            let detail = match ending {
                Ending::Complete => format!("{period}: {handed} lượt gửi"),
                Ending::Abandoned => {
                    format!("{period}: người tải dừng giữa chừng, đã xuất {handed} lượt gửi")
                }
                Ending::Failed => format!("{period}: bị lỗi, dừng sau {handed} lượt gửi"),
            };
            if let Err(e) = sqlx::query("UPDATE audit_log SET detail = $1 WHERE id = $2")
                .bind(&detail)
                .bind(entry)
                .execute(&pool)
                .await
            {
                tracing::error!(
                    "delivery log export: audit entry {entry} not completed ({detail}): {e}"
                );
            }
        });
        Ok(DeliveryLog { from, to, lines })
    }
}

/// How long an export waits for its client to take the next line before giving up.
const STALLED: std::time::Duration = std::time::Duration::from_secs(60);

fn line(r: &AnyRow) -> Result<DeliveryLogLine, sqlx::Error> {
    Ok(DeliveryLogLine {
        id: r.try_get(0)?,
        fire_at: from_epoch(r.try_get(1)?),
        schedule_id: r.try_get(2)?,
        observance: r.try_get(3)?,
        person_name: r.try_get(4)?,
        area_code: r.try_get(5)?,
        channel: r.try_get(6)?,
        address: r.try_get(7)?,
        status: r.try_get(8)?,
        attempts: r.try_get(9)?,
        sent_at: r.try_get::<Option<i64>, _>(10)?.map(from_epoch),
        reached_at: r.try_get::<Option<i64>, _>(11)?.map(from_epoch),
        last_error: r.try_get(12)?,
    })
}
