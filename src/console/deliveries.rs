//! The delivery log officials export: every delivery of the occurrences that fired in a period,
//! with its person, masked address and outcome. It names residents, so only the roles allowed
//! may take it, an area-limited account gets its area's lines only, and each export is audited.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::Row;

use super::dashboard::DashboardQuery;
use super::{Actor, Console, ConsoleError, Permission, audit};
use crate::calendar::local_midnight;
use crate::store::{Db, from_epoch, to_epoch};

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

/// The log of a period, for an actor: its lines, and the local dates it covers.
pub struct DeliveryLog {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub lines: Vec<DeliveryLogLine>,
}

impl Console {
    /// The delivery log of the period `q` names, within the actor's area; the taking of it is
    /// written to the audit log.
    pub async fn delivery_log(
        &self,
        actor: &Actor,
        q: &DashboardQuery,
    ) -> Result<DeliveryLog, ConsoleError> {
        actor.require(Permission::ExportDeliveries)?;
        let (_, _, from, to) = self.resolve_period(q)?;
        let tz = self.config.campaign.time_zone;
        let scope = actor.scope(&self.config.areas);
        let lines: Vec<DeliveryLogLine> = lines(
            &self.db,
            local_midnight(from, tz),
            local_midnight(to + Duration::days(1), tz),
        )
        .await?
        .into_iter()
        .filter(|l| scope.as_ref().is_none_or(|s| s.contains(&l.area_code)))
        .collect();
        audit::record(
            &self.db.pool,
            self.clock.now(),
            &actor.id,
            "export.deliveries",
            None,
            Some(&format!("{from} – {to}: {} lượt gửi", lines.len())),
        )
        .await?;
        Ok(DeliveryLog { from, to, lines })
    }
}

/// Deliveries of the occurrences that fired in `[from, until)`, in order.
async fn lines(
    db: &Db,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DeliveryLogLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, o.fire_at, o.schedule_id, o.observance, p.name, p.area_code, d.channel, c.address,
                d.status, d.attempts, d.sent_at, d.reached_at, d.last_error
         FROM deliveries d
         JOIN occurrences o ON o.id = d.occurrence_id
         JOIN persons p ON p.id = d.person_id
         JOIN contacts c ON c.id = d.contact_id
         WHERE o.fire_at >= $1 AND o.fire_at < $2
         ORDER BY o.fire_at, d.id",
    )
    .bind(to_epoch(from))
    .bind(to_epoch(until))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}
