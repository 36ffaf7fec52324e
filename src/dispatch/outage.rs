//! Transports that are down: a gateway off for an hour costs time, not messages.
//!
//! A transport is marked down after [`TRIP_FAILURES`] transport-level failures in a row
//! (`SendError::Unavailable`: refused, reset, timed out, 5xx) across at least
//! [`TRIP_RECIPIENTS`] recipients over at least [`TRIP_SPAN`]: one bad number or one burst is
//! not an outage. Any other answer from the transport ends the streak.
//!
//! While it is down (a row in `channel_outages`, so every worker on the database sees it), its
//! deliveries are not claimed: they wait without spending attempts, and only their
//! occurrence's expiry ends them. One probe at a time — an ordinary delivery, claimed alone by
//! whichever worker wins the row's `probe_at` — goes out on a doubling backoff from
//! [`FIRST_PROBE`] up to [`MAX_PROBE`]; a probe the transport answers (whatever it says) brings
//! the channel back, and its deliveries resume at the channel's rate. The worker that marks a
//! channel down, and the one that brings it back, each queue one notice to the admins.
//!
//! Owns the table `channel_outages`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use crate::channel::{ChannelKind, ChannelSet};
use crate::store::{Db, from_epoch, to_epoch};
use crate::templates::escape_telegram_html;

/// Transport-level failures in a row that mark a transport down…
pub const TRIP_FAILURES: u32 = 10;
/// …across at least this many recipients…
pub const TRIP_RECIPIENTS: usize = 5;
/// …over at least this long.
pub const TRIP_SPAN: Duration = Duration::seconds(10);
/// The first probe after a channel went down, then doubling…
pub const FIRST_PROBE: Duration = Duration::seconds(15);
/// …up to this.
pub const MAX_PROBE: Duration = Duration::minutes(3);

/// A channel that is down, as `/healthz` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub channel: String,
    pub since: DateTime<Utc>,
    /// The failure that marked it down.
    pub reason: String,
    pub next_probe: DateTime<Utc>,
    pub probes: i64,
}

/// Every channel that is down now.
pub async fn current(db: &Db) -> Result<Vec<Outage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT channel, down_since, reason, probe_at, probes FROM channel_outages ORDER BY channel",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Outage {
                channel: r.try_get(0)?,
                since: from_epoch(r.try_get(1)?),
                reason: r.try_get(2)?,
                next_probe: from_epoch(r.try_get(3)?),
                probes: r.try_get(4)?,
            })
        })
        .collect()
}

/// What a send told about its transport's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Turn {
    /// Nothing changed.
    Same,
    /// This worker marked the channel down.
    WentDown { reason: String },
    /// This worker's probe brought the channel back after being down since then.
    CameBack { since: DateTime<Utc> },
}

/// Failures in a row on one transport.
struct Streak {
    failures: u32,
    recipients: HashSet<String>,
    since: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct Outages {
    streaks: Mutex<HashMap<ChannelKind, Streak>>,
    /// Channels down as this worker last read or marked them.
    down: Mutex<HashSet<ChannelKind>>,
    /// Channels that are down whose probe this worker holds: the delivery that is the probe.
    /// Kept until that delivery's send is answered or fails (a pump's next claim may come
    /// first), replaced when this worker wins the next probe.
    probing: Mutex<HashMap<ChannelKind, i64>>,
}

impl Outages {
    /// Reads which channels are down (another worker may have marked one down or back). A
    /// streak counted before a channel went down ends with it; a probe of a channel that is
    /// back is forgotten.
    pub(super) async fn refresh(&self, db: &Db, channels: &ChannelSet) -> Result<(), sqlx::Error> {
        let rows = sqlx::query("SELECT channel FROM channel_outages")
            .fetch_all(&db.pool)
            .await?;
        let mut down = HashSet::new();
        for row in &rows {
            let name: String = row.try_get(0)?;
            down.extend(channels.parse(&name));
        }
        self.streaks
            .lock()
            .expect("outages lock")
            .retain(|kind, _| !down.contains(kind));
        self.probing
            .lock()
            .expect("outages lock")
            .retain(|kind, _| down.contains(kind));
        *self.down.lock().expect("outages lock") = down;
        Ok(())
    }

    /// Whether `delivery` is this worker's probe of `kind`, a channel that is down.
    pub(super) fn is_probe(&self, kind: ChannelKind, delivery: i64) -> bool {
        self.probing.lock().expect("outages lock").get(&kind) == Some(&delivery)
    }

    /// After a probe was won and the claim made: `delivery` is the probe, or `None` when
    /// nothing of that channel was due.
    pub(super) fn hold_probe(&self, kind: ChannelKind, delivery: Option<i64>) {
        let mut probing = self.probing.lock().expect("outages lock");
        match delivery {
            Some(id) => probing.insert(kind, id),
            None => probing.remove(&kind),
        };
    }

    /// The channels down as this worker last read them.
    pub(super) fn down(&self) -> Vec<ChannelKind> {
        let mut down: Vec<_> = self
            .down
            .lock()
            .expect("outages lock")
            .iter()
            .copied()
            .collect();
        down.sort();
        down
    }

    pub(super) fn is_down(&self, kind: ChannelKind) -> bool {
        self.down.lock().expect("outages lock").contains(&kind)
    }

    /// For a channel that is down: whether this worker sends the probe now. Among workers,
    /// the database decides: the one whose update moves `probe_at` on takes it.
    pub(super) async fn take_probe(
        &self,
        db: &Db,
        kind: ChannelKind,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("SELECT probes, probe_at FROM channel_outages WHERE channel = $1")
            .bind(kind.as_str())
            .fetch_optional(&db.pool)
            .await?;
        let Some(row) = row else {
            // Brought back meanwhile by another worker.
            self.down.lock().expect("outages lock").remove(&kind);
            return Ok(false);
        };
        let (probes, probe_at): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if from_epoch(probe_at) > now {
            return Ok(false);
        }
        let next = now + probe_backoff(probes + 1);
        let won = sqlx::query(
            "UPDATE channel_outages SET probes = probes + 1, probe_at = $1
             WHERE channel = $2 AND probes = $3",
        )
        .bind(to_epoch(next))
        .bind(kind.as_str())
        .bind(probes)
        .execute(&db.pool)
        .await?
        .rows_affected();
        Ok(won == 1)
    }

    /// A transport-level failure sending `delivery` to `address`.
    pub(super) async fn failed(
        &self,
        db: &Db,
        kind: ChannelKind,
        delivery: i64,
        address: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Turn, sqlx::Error> {
        if self.is_down(kind) {
            // A probe, or a send that began before the channel went down: its next probe is
            // already set.
            self.probe_failed(kind, delivery);
            return Ok(Turn::Same);
        }
        let tripped = {
            let mut streaks = self.streaks.lock().expect("outages lock");
            let streak = streaks.entry(kind).or_insert_with(|| Streak {
                failures: 0,
                recipients: HashSet::new(),
                since: now,
            });
            streak.failures += 1;
            if streak.recipients.len() < TRIP_RECIPIENTS {
                streak.recipients.insert(address.to_string());
            }
            let tripped = streak.failures >= TRIP_FAILURES
                && streak.recipients.len() >= TRIP_RECIPIENTS
                && now - streak.since >= TRIP_SPAN;
            if tripped {
                streaks.remove(&kind);
            }
            tripped
        };
        if !tripped {
            return Ok(Turn::Same);
        }
        self.mark_down(db, kind, reason, now).await
    }

    /// The provider refused the account itself (`SendError::Account`): down at once, whatever
    /// the streak; while down, like any failure of a probe.
    pub(super) async fn account_refused(
        &self,
        db: &Db,
        kind: ChannelKind,
        delivery: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Turn, sqlx::Error> {
        if self.is_down(kind) {
            self.probe_failed(kind, delivery);
            return Ok(Turn::Same);
        }
        self.streaks.lock().expect("outages lock").remove(&kind);
        self.mark_down(db, kind, reason, now).await
    }

    /// `delivery`, if it was this worker's probe of `kind`, is over: the next probe waits for
    /// its time.
    fn probe_failed(&self, kind: ChannelKind, delivery: i64) {
        let mut probing = self.probing.lock().expect("outages lock");
        if probing.get(&kind) == Some(&delivery) {
            probing.remove(&kind);
        }
    }

    /// Marks `kind` down; `WentDown` when this worker's insert did it.
    async fn mark_down(
        &self,
        db: &Db,
        kind: ChannelKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Turn, sqlx::Error> {
        self.down.lock().expect("outages lock").insert(kind);
        let marked = sqlx::query(
            "INSERT INTO channel_outages (channel, down_since, reason, probe_at, probes)
             VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (channel) DO NOTHING",
        )
        .bind(kind.as_str())
        .bind(to_epoch(now))
        .bind(reason)
        .bind(to_epoch(now + FIRST_PROBE))
        .execute(&db.pool)
        .await?
        .rows_affected();
        Ok(if marked == 1 {
            Turn::WentDown {
                reason: reason.to_string(),
            }
        } else {
            Turn::Same
        })
    }

    /// The transport answered `delivery` (sent, refused, rate-limited: anything but a
    /// transport-level failure). Ends the streak; when it was this worker's probe, the
    /// channel is back.
    pub(super) async fn answered(
        &self,
        db: &Db,
        kind: ChannelKind,
        delivery: i64,
    ) -> Result<Turn, sqlx::Error> {
        self.streaks.lock().expect("outages lock").remove(&kind);
        let probe = {
            let mut probing = self.probing.lock().expect("outages lock");
            let probe = probing.get(&kind) == Some(&delivery);
            if probe {
                probing.remove(&kind);
            }
            probe
        };
        if !probe {
            return Ok(Turn::Same);
        }
        self.down.lock().expect("outages lock").remove(&kind);
        let since =
            sqlx::query("DELETE FROM channel_outages WHERE channel = $1 RETURNING down_since")
                .bind(kind.as_str())
                .fetch_optional(&db.pool)
                .await?;
        match since {
            Some(row) => Ok(Turn::CameBack {
                since: from_epoch(row.try_get(0)?),
            }),
            None => Ok(Turn::Same),
        }
    }
}

/// The admins' message when this worker changed a channel's state, in Vietnamese, times in
/// the campaign's time zone. Telegram HTML: the reason is escaped.
pub(super) fn notice(turn: &Turn, label: &str, tz: Tz, now: DateTime<Utc>) -> Option<String> {
    let at = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .format("%H:%M ngày %d/%m/%Y")
            .to_string()
    };
    let title = label.to_uppercase();
    match turn {
        Turn::Same => None,
        Turn::WentDown { reason } => Some(format!(
            "⚠️ <b>KÊNH {title} BỊ GIÁN ĐOẠN</b>\nTừ: {at}\nLỗi kỹ thuật: {reason}\n\n\
             Các tin nhắn chưa gửi qua kênh {label} được giữ lại; hệ thống tự động thử lại định kỳ \
             và gửi tiếp khi kênh hoạt động trở lại. Tin sắp hết hạn được chuyển sang kênh kế tiếp \
             của đợt, nếu người nhận có; tin đã quá thời hạn gửi của đợt sẽ không được gửi nữa. \
             Đề nghị bộ phận kỹ thuật kiểm tra kết nối tới {target}",
            at = at(now),
            reason = escape_telegram_html(reason),
            target = match label {
                "SMS" => "cổng SMS.".to_string(),
                "Telegram" => "máy chủ Telegram.".to_string(),
                "Zalo" => "dịch vụ Zalo (ZNS), cả số dư ZNS và mã truy cập của Official Account."
                    .to_string(),
                other => format!("nhà cung cấp kênh {other}."),
            },
        )),
        Turn::CameBack { since } => Some(format!(
            "✅ <b>KÊNH {title} ĐÃ HOẠT ĐỘNG TRỞ LẠI</b>\nLúc: {at} (gián đoạn trong {lasted})\n\n\
             Các tin nhắn đang chờ sẽ được gửi tiếp lần lượt theo tốc độ cho phép của kênh.",
            at = at(now),
            lasted = spoken_duration(now - *since),
        )),
    }
}

/// "2 ngày 3 giờ", "1 giờ 5 phút", "12 phút", "40 giây".
fn spoken_duration(d: Duration) -> String {
    let seconds = d.num_seconds().max(0);
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} giây"),
        (0, 0, m) => format!("{m} phút"),
        (0, h, 0) => format!("{h} giờ"),
        (0, h, m) => format!("{h} giờ {m} phút"),
        (d, 0, _) => format!("{d} ngày"),
        (d, h, _) => format!("{d} ngày {h} giờ"),
    }
}

/// The wait before the probe after `probes` probes: [`FIRST_PROBE`] doubled, up to
/// [`MAX_PROBE`].
pub fn probe_backoff(probes: i64) -> Duration {
    let doublings = probes.clamp(0, 16) as u32;
    (FIRST_PROBE * (1 << doublings)).min(MAX_PROBE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_back_off_doubling_up_to_a_few_minutes() {
        let waits: Vec<i64> = (0..7).map(|p| probe_backoff(p).num_seconds()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 180, 180, 180]);
        assert_eq!(probe_backoff(i64::MAX), MAX_PROBE);
    }

    #[test]
    fn the_admins_read_when_and_for_how_long_in_vietnamese() {
        let tz: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        let down: DateTime<Utc> = "2027-03-08T01:05:00Z".parse().unwrap();
        let text = notice(
            &Turn::WentDown {
                reason: "kannel answered 503: <html>".into(),
            },
            "SMS",
            tz,
            down,
        )
        .unwrap();
        assert!(text.starts_with("⚠️ <b>KÊNH SMS BỊ GIÁN ĐOẠN</b>\nTừ: 08:05 ngày 08/03/2027\n"));
        assert!(
            text.contains("Lỗi kỹ thuật: kannel answered 503: &lt;html&gt;"),
            "{text}"
        );
        assert!(text.contains("kiểm tra kết nối tới cổng SMS."), "{text}");
        let back = notice(
            &Turn::CameBack { since: down },
            "Telegram",
            tz,
            down + Duration::minutes(65),
        )
        .unwrap();
        assert!(
            back.starts_with(
                "✅ <b>KÊNH TELEGRAM ĐÃ HOẠT ĐỘNG TRỞ LẠI</b>\nLúc: 09:10 ngày 08/03/2027 (gián đoạn trong 1 giờ 5 phút)"
            ),
            "{back}"
        );
        assert_eq!(notice(&Turn::Same, "SMS", tz, down), None);
        assert_eq!(spoken_duration(Duration::seconds(40)), "40 giây");
        assert_eq!(spoken_duration(Duration::minutes(120)), "2 giờ");
        assert_eq!(spoken_duration(Duration::hours(51)), "2 ngày 3 giờ");
        assert_eq!(spoken_duration(Duration::hours(48)), "2 ngày");
    }
}
