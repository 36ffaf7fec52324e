//! Residents' rights over their data (Law 91/2025/QH15 on Personal Data Protection): see what
//! Loa holds about them ([`export`]), be forgotten ([`forget`]), and have delivery attempts and
//! audit details deleted past a retention ([`retention`]).
//!
//! Owns the anonymous persons (`persons.forgotten_at`) and the table `upkeep_runs`.

pub mod export;
pub mod forget;
pub mod retention;

use sqlx::Row;

use crate::audience::phone::MobileNumber;
use crate::channel::ChannelKind;
use crate::store::Sql;

pub use export::{Export, export};
pub use forget::{ForgetReport, forget};

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(
        "{0:?} is neither a Vietnamese mobile number nor a Telegram chat id (write a chat id as telegram:ID)"
    )]
    NotAnAddress(String),
    #[error("no person has the number or Telegram chat {0}")]
    NotFound(String),
    #[error(
        "{0} is the number of one person and the Telegram chat of another: write the number with its 0 or +84, or the chat as telegram:ID"
    )]
    Ambiguous(String),
    #[error(
        "a message to this person is being sent right now; nothing was erased, try again in a minute"
    )]
    Busy,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A person as the operator names them: a phone number in any form people write it, or a
/// Telegram chat id. Digits alone may be either (`912345678`): both are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// What was typed, for messages (the operator's own input).
    pub typed: String,
    number: Option<MobileNumber>,
    chat: Option<i64>,
}

impl Who {
    pub fn parse(input: &str) -> Result<Who, PrivacyError> {
        let typed = input.trim().to_string();
        let not = || PrivacyError::NotAnAddress(typed.clone());
        let explicit = ["telegram:", "tg:"]
            .iter()
            .find_map(|prefix| typed.strip_prefix(prefix));
        if let Some(chat) = explicit {
            let chat = chat.trim().parse::<i64>().map_err(|_| not())?;
            return Ok(Who {
                typed: typed.clone(),
                number: None,
                chat: Some(chat),
            });
        }
        let number = MobileNumber::parse(&typed).ok();
        // A number written with its 0 or +84 is a number; bare digits (or a group's negative
        // id) may be a chat.
        let chat = (!typed.starts_with('0') && !typed.starts_with('+'))
            .then(|| typed.parse::<i64>().ok())
            .flatten();
        if number.is_none() && chat.is_none() {
            return Err(not());
        }
        Ok(Who {
            typed,
            number,
            chat,
        })
    }

    /// The contacts it may be: (channel, address).
    fn addresses(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = &self.number {
            out.push((ChannelKind::Sms.as_str(), n.as_str().to_string()));
        }
        if let Some(c) = self.chat {
            out.push((ChannelKind::Telegram.as_str(), c.to_string()));
        }
        out
    }
}

/// The one person `who` names (never an anonymous one).
pub async fn find<'c, E>(executor: E, who: &Who) -> Result<i64, PrivacyError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let mut sql = Sql::new(
        "SELECT DISTINCT c.person_id FROM contacts c JOIN persons p ON p.id = c.person_id
         WHERE p.forgotten_at IS NULL AND (",
    );
    for (i, (channel, address)) in who.addresses().iter().enumerate() {
        sql.push(if i == 0 { "" } else { " OR " })
            .push("(c.channel = ")
            .bind(*channel)
            .push(" AND c.address = ")
            .bind(address.as_str())
            .push(")");
    }
    sql.push(")");
    let ids: Vec<i64> = sql
        .query()?
        .fetch_all(executor)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [] => Err(PrivacyError::NotFound(who.typed.clone())),
        [one] => Ok(*one),
        _ => Err(PrivacyError::Ambiguous(who.typed.clone())),
    }
}

/// What a person's data may be written as in free text (an audit detail, a note): each of
/// their addresses in the forms people write them, longest first, and their name. Short
/// strings are left out: they would match other people's text.
pub(crate) fn traces(name: &str, contacts: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (channel, address) in contacts {
        if channel == ChannelKind::Sms.as_str()
            && let Some(national) = address.strip_prefix("+84")
        {
            out.push(address.clone());
            out.push(format!("84{national}"));
            out.push(format!("0{national}"));
            out.push(national.to_string());
        } else if address.trim_start_matches('-').len() >= 6 {
            out.push(address.clone());
        }
    }
    let name = name.trim();
    if name.chars().count() >= 4 && name != forget::ANONYMOUS_NAME {
        out.push(name.to_string());
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    out.dedup();
    out
}

/// `pattern` for `LIKE … ESCAPE '\'` matching text that contains `s`.
pub(crate) fn like_containing(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The person's name and contacts (channel, address).
pub(crate) async fn person_traces(
    conn: &mut sqlx::AnyConnection,
    person: i64,
) -> Result<(String, Vec<(String, String)>), sqlx::Error> {
    let name: String = sqlx::query("SELECT name FROM persons WHERE id = $1")
        .bind(person)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let contacts = sqlx::query("SELECT channel, address FROM contacts WHERE person_id = $1")
        .bind(person)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((name, contacts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_chats_are_told_apart_where_they_can_be() {
        let n = Who::parse("091 234 5678").unwrap();
        assert_eq!(n.addresses(), [("sms", "+84912345678".to_string())]);
        let c = Who::parse("telegram:912345678").unwrap();
        assert_eq!(c.addresses(), [("telegram", "912345678".to_string())]);
        let either = Who::parse("912345678").unwrap();
        assert_eq!(either.addresses().len(), 2);
        let group = Who::parse("-1001234567").unwrap();
        assert_eq!(group.addresses(), [("telegram", "-1001234567".to_string())]);
        assert!(matches!(
            Who::parse("không rõ"),
            Err(PrivacyError::NotAnAddress(_))
        ));
    }

    #[test]
    fn a_number_is_looked_for_in_every_form() {
        let t = traces("Nguyễn Thị Lan", &[("sms".into(), "+84912345678".into())]);
        for form in ["+84912345678", "84912345678", "0912345678", "912345678"] {
            assert!(t.iter().any(|s| s == form), "{form}: {t:?}");
        }
        assert!(t.iter().any(|s| s == "Nguyễn Thị Lan"));
        assert!(traces("An", &[]).is_empty(), "too short to be told apart");
    }
}
