//! How and when a person agreed to receive Loa's messages: recorded once, by the first way
//! they were subscribed, and never overwritten by a later one (the Law on Personal Data
//! Protection asks the controller to show the consent it relies on). The columns
//! `persons.consent_via`, `consent_at`, `consent_detail`; also what reports of where
//! subscribers come from read.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Sql, to_epoch};

/// The ways a person comes to be subscribed, spelled once: [`ConsentSource::sql`] is what the
/// database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentSource {
    /// They chose their commune with the bot's buttons (`/start`).
    Bot,
    /// They texted the subscribe keyword with a commune (`DK <xã>`).
    Sms,
    /// Staff imported a list naming them; the detail names the file.
    Import,
    /// An admin registered a group chat as an organisation (`/tochuc`).
    Organisation,
    /// They followed a commune's poster link (a `/start <area>` deep link) and confirmed; the
    /// detail names the area.
    Poster,
    /// Subscribed before consent was recorded: how is not known.
    Legacy,
}

impl ConsentSource {
    pub const ALL: [ConsentSource; 6] = [
        ConsentSource::Bot,
        ConsentSource::Sms,
        ConsentSource::Import,
        ConsentSource::Organisation,
        ConsentSource::Poster,
        ConsentSource::Legacy,
    ];

    /// Its one spelling in the database and in exports.
    pub fn sql(self) -> &'static str {
        match self {
            ConsentSource::Bot => "bot",
            ConsentSource::Sms => "sms",
            ConsentSource::Import => "import",
            ConsentSource::Organisation => "organisation",
            ConsentSource::Poster => "poster",
            ConsentSource::Legacy => "legacy",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentSource> {
        ConsentSource::ALL.into_iter().find(|c| c.sql() == s)
    }

    /// As a resident or a clerk reads it.
    pub fn label(self) -> &'static str {
        match self {
            ConsentSource::Bot => "Tự đăng ký qua Telegram (chọn xã bằng nút bấm)",
            ConsentSource::Sms => "Tự đăng ký bằng tin nhắn SMS (DK <tên xã>)",
            ConsentSource::Import => "Cán bộ nhập từ danh sách",
            ConsentSource::Organisation => "Quản trị viên đăng ký nhóm của tổ chức",
            ConsentSource::Poster => "Tự đăng ký qua đường dẫn trên áp phích",
            ConsentSource::Legacy => "Đăng ký trước khi Loa ghi nhận sự đồng ý (không rõ cách)",
        }
    }
}

/// Residents (and organisations) by the way they first subscribed, per area: what officials
/// compare to see which way of growing the audience works. Forgotten persons are left out.
pub async fn counts_by_area(
    db: &crate::store::Db,
) -> Result<Vec<(String, ConsentSource, i64)>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT area_code, consent_via, COUNT(*) FROM persons
         WHERE consent_via IS NOT NULL AND forgotten_at IS NULL
         GROUP BY area_code, consent_via",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let via: String = row.try_get(1)?;
        if let Some(source) = ConsentSource::parse(&via) {
            out.push((row.try_get(0)?, source, row.try_get(2)?));
        }
    }
    Ok(out)
}

/// Records how `person` agreed, unless something is recorded already: the first way wins.
pub async fn record<'c, E>(
    executor: E,
    person: i64,
    source: ConsentSource,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE persons SET consent_via = $1, consent_at = $2, consent_detail = $3
         WHERE id = $4 AND consent_via IS NULL",
    )
    .bind(source.sql())
    .bind(to_epoch(now))
    .bind(detail)
    .bind(person)
    .execute(executor)
    .await?;
    Ok(())
}

/// [`record`] for many persons in one statement (an imported list's batch).
pub async fn record_many<'c, E>(
    executor: E,
    persons: &[i64],
    source: ConsentSource,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if persons.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE persons SET consent_via = ");
    sql.bind(source.sql())
        .push(", consent_at = ")
        .bind(to_epoch(now))
        .push(", consent_detail = ")
        .bind(detail)
        .push(" WHERE consent_via IS NULL AND id IN (")
        .list(persons.iter().copied())
        .push(")");
    sql.query()?.execute(executor).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_reads_back_from_its_spelling() {
        for source in ConsentSource::ALL {
            assert_eq!(ConsentSource::parse(source.sql()), Some(source));
        }
        assert_eq!(ConsentSource::parse("web"), None);
    }
}
