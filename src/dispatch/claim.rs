//! Taking due deliveries under a lease, and what nobody works on any more: rows of a worker
//! that died or froze (see `liveness`) go back to the queue; rows past their occurrence's
//! expiry end `expired`.
//!
//! A claim sets `claim_token`, `claimed_by` and `lease_until`; every later write is guarded by
//! the token, so a worker whose rows were taken over records nothing. PostgreSQL adds
//! `FOR UPDATE SKIP LOCKED` so several processes take disjoint rows; SQLite has one writer.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::{AssertSqlSafe, Row};

use super::liveness::RELEASE_AFTER_MS;
use crate::channel::{ChannelKind, ChannelSet};
use crate::delivery::Status;
use crate::store::{Backend, Db, from_epoch, to_epoch};

/// A delivery this worker holds, with everything needed to render and send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub claim_token: String,
    pub person_id: i64,
    pub contact_id: i64,
    pub channel: ChannelKind,
    pub address: String,
    pub contact_active: bool,
    pub opted_out: bool,
    pub person_name: String,
    pub area_code: String,
    pub area_name: String,
    pub template: String,
    pub observance: String,
    pub fire_at: DateTime<Utc>,
    /// The observance's first day (YYYY-MM-DD), for "days until" in templates.
    pub observance_date: Option<String>,
    /// The observance's theme for the occurrence's year, `""` when none is known.
    pub theme: String,
    /// The occurrence's channels in order of preference: where a delivery falls back to.
    pub occurrence_channels: Vec<ChannelKind>,
    /// `resident` or `organisation`.
    pub person_kind: String,
    /// Whether the person gave their name (import, `/ten`), or it is a Telegram display name.
    pub name_given: bool,
    pub failures: i64,
    /// The occurrence's own text for this channel (queued content), instead of `template`.
    pub body: Option<String>,
    /// When this worker claimed it, on its monotonic clock: a row claimed before its fence
    /// last closed is never sent (see `liveness`).
    pub claimed_at: std::time::Instant,
    /// Until when the claim holds on Loa's clock: a row still waiting for a slot then goes back
    /// unsent (another worker may take it).
    pub lease_until: DateTime<Utc>,
}

impl ClaimedDelivery {
    /// The channel after this one in the occurrence's order, if any.
    pub fn next_channels(&self) -> impl Iterator<Item = ChannelKind> + '_ {
        self.occurrence_channels
            .iter()
            .skip_while(move |c| **c != self.channel)
            .skip(1)
            .copied()
    }
}

/// Rows of a worker that died or froze back to the queue (never `worker`'s own: its fence
/// decides for them), then every waiting row past its
/// occurrence's expiry `expired`. A row goes back when its worker has not stamped its
/// liveness for [`RELEASE_AFTER_MS`] by the database's clock (or has left the worker table),
/// and in any case when its lease passed on Loa's clock. Two statements, so each uses the
/// status index. Returns how many expired.
pub(super) async fn expire(
    db: &Db,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    static ORPHANS: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Backend::Sqlite, Backend::Postgres].map(|backend| {
            format!(
                "UPDATE deliveries SET status = {pending}, lease_until = NULL, claim_token = NULL,
                     claimed_by = NULL, updated_at = $1
                 WHERE status = {sending}
                   AND (lease_until < $1
                        OR (claimed_by <> $2
                            AND (claimed_by IN (SELECT id FROM dispatch_workers
                                                WHERE alive_at IS NULL OR alive_at < {now} - {RELEASE_AFTER_MS})
                                 OR claimed_by NOT IN (SELECT id FROM dispatch_workers))))",
                pending = Status::Pending.sql(),
                sending = Status::Sending.sql(),
                now = backend.now_millis(),
            )
        })
    });
    static EXPIRED: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries SET status = {expired}, updated_at = $1,
                 last_error = COALESCE(last_error, 'expired before it could be sent')
             WHERE status IN ({pending}, {held}) AND expires_at <= $1",
            expired = Status::Expired.sql(),
            pending = Status::Pending.sql(),
            held = Status::Held.sql(),
        )
    });
    let now = to_epoch(now);
    let released = sqlx::query(AssertSqlSafe(
        ORPHANS[usize::from(db.backend == Backend::Postgres)].as_str(),
    ))
    .bind(now)
    .bind(worker)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if released > 0 {
        tracing::warn!(
            released,
            "rows of a worker that stopped answering are back in the queue"
        );
    }
    let done = sqlx::query(AssertSqlSafe(EXPIRED.as_str()))
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() as usize)
}

/// Takes due deliveries for `worker` under a lease until `lease_until`: per channel of
/// `limits`, at most its number, oldest due first. The rows come back with everything a send needs — whatever
/// the channel, its body is the occurrence's text for that channel, if it has one.
pub(super) async fn claim(
    db: &Db,
    worker: &str,
    channels: &ChannelSet,
    limits: &[(ChannelKind, i64)],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> anyhow::Result<Vec<ClaimedDelivery>> {
    static CLAIM: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Backend::Sqlite, Backend::Postgres].map(|backend| {
            let lock = match backend {
                // Several processes on one PostgreSQL: each takes rows no one else has locked.
                Backend::Postgres => "FOR UPDATE SKIP LOCKED",
                // SQLite has one writer at a time: the UPDATE is atomic on its own.
                Backend::Sqlite => "",
            };
            format!(
                "UPDATE deliveries SET status = {sending}, claim_token = $1, lease_until = $2,
                     attempts = attempts + 1, updated_at = $3, claimed_by = $6
                 WHERE id IN (
                     SELECT id FROM deliveries
                     WHERE status = {pending} AND due_at <= $3 AND channel = $5
                     ORDER BY due_at, id
                     LIMIT $4 {lock})",
                sending = Status::Sending.sql(),
                pending = Status::Pending.sql(),
            )
        })
    });
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    let token = format!("{:016x}", rand::rng().random::<u64>());
    let claimed_at = std::time::Instant::now();
    let sql = &CLAIM[usize::from(db.backend == Backend::Postgres)];
    let mut claimed = 0;
    for &(kind, limit) in limits {
        claimed += sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&token)
            .bind(to_epoch(lease_until))
            .bind(to_epoch(now))
            .bind(limit)
            .bind(kind.as_str())
            .bind(worker)
            .execute(&db.pool)
            .await?
            .rows_affected();
    }
    if claimed == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT d.id, d.person_id, d.contact_id, d.channel, c.address, c.active, p.name, p.opted_out_at,
                p.area_code, a.name, o.template, o.observance, o.fire_at, d.failures, o.observance_date,
                o.channels, p.kind, b.body, o.theme, p.name_given
         FROM deliveries d
         JOIN contacts c ON c.id = d.contact_id
         JOIN persons p ON p.id = d.person_id
         JOIN areas a ON a.code = p.area_code
         JOIN occurrences o ON o.id = d.occurrence_id
         LEFT JOIN occurrence_bodies b ON b.occurrence_id = d.occurrence_id AND b.channel = d.channel
         WHERE d.claim_token = $1
         ORDER BY d.due_at, d.id",
    )
    .bind(&token)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let channel: String = r.try_get(3)?;
            let occurrence_channels: String = r.try_get(15)?;
            Ok(ClaimedDelivery {
                id: r.try_get(0)?,
                claim_token: token.clone(),
                person_id: r.try_get(1)?,
                contact_id: r.try_get(2)?,
                channel: channels
                    .parse(&channel)
                    .ok_or_else(|| anyhow::anyhow!("unknown channel {channel:?} in deliveries"))?,
                address: r.try_get(4)?,
                contact_active: r.try_get::<i64, _>(5)? != 0,
                person_name: r.try_get(6)?,
                opted_out: r.try_get::<Option<i64>, _>(7)?.is_some(),
                area_code: r.try_get(8)?,
                area_name: r.try_get(9)?,
                template: r.try_get(10)?,
                observance: r.try_get(11)?,
                fire_at: from_epoch(r.try_get(12)?),
                failures: r.try_get(13)?,
                observance_date: r.try_get(14)?,
                occurrence_channels: occurrence_channels
                    .split(',')
                    .filter_map(|c| channels.parse(c.trim()))
                    .collect(),
                person_kind: r.try_get(16)?,
                body: r.try_get(17)?,
                theme: r.try_get(18)?,
                name_given: r.try_get::<i64, _>(19)? != 0,
                claimed_at,
                lease_until,
            })
        })
        .collect()
}

/// Gives a claimed row back unsent, as if never claimed.
pub(super) async fn release(
    db: &Db,
    d: &ClaimedDelivery,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    static RELEASE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries SET status = {pending}, lease_until = NULL, claim_token = NULL,
                 claimed_by = NULL, attempts = attempts - 1, updated_at = $1
             WHERE id = $2 AND claim_token = $3",
            pending = Status::Pending.sql(),
        )
    });
    sqlx::query(AssertSqlSafe(RELEASE.as_str()))
        .bind(to_epoch(now))
        .bind(d.id)
        .bind(&d.claim_token)
        .execute(&db.pool)
        .await?;
    Ok(())
}
