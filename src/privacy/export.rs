//! `loa person export`: everything Loa holds about one person, as JSON — for the person who
//! asked to see it (their right of access). It holds their number in full: it is theirs.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::Row;

use super::{PrivacyError, Who, find, like_containing, person_traces, traces};
use crate::audience::consent::ConsentSource;
use crate::console::audit;
use crate::store::{Db, Sql, from_epoch};

#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub exported_at: String,
    pub person: Person,
    pub contacts: Vec<Contact>,
    pub consent: Consent,
    pub deliveries: Vec<Delivery>,
    pub reach: Vec<Reach>,
    pub engagements: Vec<Engagement>,
    /// What they wrote to Loa (SMS and Telegram texts that were not commands), with what was
    /// sent back about each.
    pub texts: Vec<Text>,
    /// The days an automatic SMS reply or the hotlines went to them.
    pub automatic_replies: Vec<AutomaticReply>,
    /// Entries of the audit log that name them or their texts.
    pub audit: Vec<AuditEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub id: i64,
    pub name: String,
    /// Whether they gave the name (a list, /ten) rather than Telegram showing it.
    pub name_given: bool,
    pub area_code: String,
    pub area_name: Option<String>,
    /// `resident` or `organisation`.
    pub kind: String,
    pub tags: Vec<String>,
    pub birth_year: Option<i32>,
    pub created_at: String,
    pub opted_out_at: Option<String>,
    pub opted_out_via: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub channel: String,
    pub address: String,
    pub active: bool,
    pub inactive_reason: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    /// `bot`, `sms`, `import`, `organisation`, `poster`, `legacy` (see `ConsentSource`).
    pub via: Option<String>,
    /// The same, in words.
    pub description: Option<String>,
    pub at: Option<String>,
    /// The commune chosen, or the imported file's name.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub fire_at: String,
    pub observance: String,
    pub template: String,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub reached_at: Option<String>,
    pub attempt_log: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: String,
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    pub period: String,
    pub area_code: String,
    pub channel: String,
    pub first_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Engagement {
    pub occurrence_id: i64,
    pub observance: String,
    pub day: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Text {
    pub id: i64,
    pub at: String,
    pub channel: String,
    pub text: String,
    pub urgent: bool,
    pub state: String,
    pub sent_back: Vec<SentBack>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SentBack {
    /// `answer` (staff), `hotlines`, `alert` (forwarded to the contact point).
    pub kind: String,
    pub to: String,
    pub text: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutomaticReply {
    pub kind: String,
    pub day: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

/// Everything about the person `who` names; the export itself is audited (without their
/// data) as done by `actor`.
pub async fn export(
    db: &Db,
    tz: Tz,
    who: &Who,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Export, PrivacyError> {
    let mut conn = db.pool.acquire().await?;
    let id = find(&mut *conn, who).await?;
    let t = |secs: i64| from_epoch(secs).with_timezone(&tz).to_rfc3339();
    let ot = |secs: Option<i64>| secs.map(t);

    let r = sqlx::query(
        "SELECT p.name, CAST(p.name_given AS BIGINT), p.area_code, a.name, p.kind,
                CAST(p.birth_year AS BIGINT), p.created_at,
                p.opted_out_at, p.opted_out_via, p.consent_via, p.consent_at, p.consent_detail
         FROM persons p LEFT JOIN areas a ON a.code = p.area_code WHERE p.id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let tags = sqlx::query("SELECT tag FROM person_tags WHERE person_id = $1 ORDER BY tag")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let via: Option<String> = r.try_get(9)?;
    let person = Person {
        id,
        name: r.try_get(0)?,
        name_given: r.try_get::<i64, _>(1)? != 0,
        area_code: r.try_get(2)?,
        area_name: r.try_get(3)?,
        kind: r.try_get(4)?,
        tags,
        birth_year: r.try_get::<Option<i64>, _>(5)?.map(|y| y as i32),
        created_at: t(r.try_get(6)?),
        opted_out_at: ot(r.try_get(7)?),
        opted_out_via: r.try_get(8)?,
    };
    let consent = Consent {
        description: via
            .as_deref()
            .and_then(ConsentSource::parse)
            .map(|c| c.label().to_string()),
        via,
        at: ot(r.try_get(10)?),
        detail: r.try_get(11)?,
    };

    let contacts = sqlx::query(
        "SELECT channel, address, active, inactive_reason, created_at FROM contacts
         WHERE person_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(Contact {
            channel: r.try_get(0)?,
            address: r.try_get(1)?,
            active: r.try_get::<i64, _>(2)? != 0,
            inactive_reason: r.try_get(3)?,
            created_at: t(r.try_get(4)?),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;

    let mut deliveries = Vec::new();
    for r in sqlx::query(
        "SELECT d.id, o.fire_at, o.observance, o.template, d.channel, d.status, d.attempts,
                d.sent_at, d.delivered_at, d.reached_at
         FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id
         WHERE d.person_id = $1 ORDER BY o.fire_at, d.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    {
        let delivery: i64 = r.try_get(0)?;
        let attempt_log = sqlx::query(
            "SELECT at, outcome, detail FROM delivery_attempts WHERE delivery_id = $1 ORDER BY at, id",
        )
        .bind(delivery)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|a| {
            Ok(Attempt {
                at: t(a.try_get(0)?),
                outcome: a.try_get(1)?,
                detail: a.try_get(2)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        deliveries.push(Delivery {
            id: delivery,
            fire_at: t(r.try_get(1)?),
            observance: r.try_get(2)?,
            template: r.try_get(3)?,
            channel: r.try_get(4)?,
            status: r.try_get(5)?,
            attempts: r.try_get(6)?,
            sent_at: ot(r.try_get(7)?),
            delivered_at: ot(r.try_get(8)?),
            reached_at: ot(r.try_get(9)?),
            attempt_log,
        });
    }

    let reach = sqlx::query(
        "SELECT period, area_code, channel, first_at FROM reach WHERE person_id = $1
         ORDER BY first_at, period",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(Reach {
            period: r.try_get(0)?,
            area_code: r.try_get(1)?,
            channel: r.try_get(2)?,
            first_at: t(r.try_get(3)?),
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;

    let engagements = sqlx::query(
        "SELECT e.occurrence_id, o.observance, e.day, e.at FROM engagements e
         JOIN occurrences o ON o.id = e.occurrence_id WHERE e.person_id = $1 ORDER BY e.at",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(Engagement {
            occurrence_id: r.try_get(0)?,
            observance: r.try_get(1)?,
            day: r.try_get(2)?,
            at: t(r.try_get(3)?),
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;

    let (name, addresses) = person_traces(&mut conn, id).await?;
    let text_ids = text_ids(&mut conn, id, &addresses).await?;
    let mut texts = Vec::new();
    for &text in &text_ids {
        let r = sqlx::query("SELECT at, channel, text, urgent, state FROM inbox WHERE id = $1")
            .bind(text)
            .fetch_one(&mut *conn)
            .await?;
        let sent_back = sqlx::query(
            "SELECT kind, address, text, status, created_at FROM inbox_outbox
             WHERE inbox_id = $1 ORDER BY id",
        )
        .bind(text)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|o| {
            Ok(SentBack {
                kind: o.try_get(0)?,
                to: o.try_get(1)?,
                text: o.try_get(2)?,
                status: o.try_get(3)?,
                created_at: t(o.try_get(4)?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        texts.push(Text {
            id: text,
            at: t(r.try_get(0)?),
            channel: r.try_get(1)?,
            text: r.try_get(2)?,
            urgent: r.try_get::<i64, _>(3)? != 0,
            state: r.try_get(4)?,
            sent_back,
        });
    }

    let mut automatic_replies = Vec::new();
    for (channel, address) in &addresses {
        if channel == "sms" {
            for r in sqlx::query(
                "SELECT kind, day, at FROM sms_auto_replies WHERE number = $1 ORDER BY at",
            )
            .bind(address)
            .fetch_all(&mut *conn)
            .await?
            {
                automatic_replies.push(AutomaticReply {
                    kind: r.try_get(0)?,
                    day: r.try_get(1)?,
                    at: t(r.try_get(2)?),
                });
            }
        }
        for r in sqlx::query(
            "SELECT day, at FROM inbox_hotline_replies WHERE channel = $1 AND address = $2 ORDER BY at",
        )
        .bind(channel)
        .bind(address)
        .fetch_all(&mut *conn)
        .await?
        {
            automatic_replies.push(AutomaticReply {
                kind: "hotlines".to_string(),
                day: r.try_get(0)?,
                at: t(r.try_get(1)?),
            });
        }
    }

    let mut sql =
        Sql::new("SELECT at, actor, action, subject, detail FROM audit_log WHERE subject = ");
    sql.bind(format!("person:{id}"));
    for text in &text_ids {
        sql.push(" OR subject = ").bind(format!("inbox:{text}"));
    }
    for trace in traces(&name, &addresses) {
        let pattern = like_containing(&trace);
        sql.push(" OR subject LIKE ")
            .bind(pattern.clone())
            .push(" ESCAPE '\\' OR detail LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\'");
    }
    sql.push(" ORDER BY at, id");
    let audit_entries = sql
        .query()?
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                at: t(r.try_get(0)?),
                actor: r.try_get(1)?,
                action: r.try_get(2)?,
                subject: r.try_get(3)?,
                detail: r.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;

    // Who looked, and when: the entry names the person by id only.
    audit::record(
        &mut *conn,
        now,
        actor,
        "person.export",
        Some(&format!("person:{id}")),
        None,
    )
    .await?;
    Ok(Export {
        exported_at: t(crate::store::to_epoch(now)),
        person,
        contacts,
        consent,
        deliveries,
        reach,
        engagements,
        texts,
        automatic_replies,
        audit: audit_entries,
    })
}

/// The ids of the texts the person sent: linked to them, or sent from one of their addresses.
pub(crate) async fn text_ids(
    conn: &mut sqlx::AnyConnection,
    person: i64,
    addresses: &[(String, String)],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut sql = Sql::new("SELECT id FROM inbox WHERE person_id = ");
    sql.bind(person);
    for (channel, address) in addresses {
        sql.push(" OR (channel = ")
            .bind(channel.as_str())
            .push(" AND address = ")
            .bind(address.as_str())
            .push(")");
    }
    sql.push(" ORDER BY id");
    sql.query()?
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}
