//! The staff console's domain: who may do what (accounts, roles, area scope), the audit log,
//! the content queue with its approval workflow, and offline activities. The web module only
//! turns HTTP into calls here; every rule (roles, scope, "not your own content") lives here so
//! the pages and the JSON API cannot disagree.

pub mod accounts;
pub mod activities;
pub mod audit;
pub mod budget;
pub mod content;
pub mod dashboard;
mod deliveries;
pub mod imports;
pub mod projection;
pub mod upcoming;

pub use deliveries::{DeliveryLog, DeliveryLogLine};

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::calendar::Calendar;
use crate::clock::SharedClock;
use crate::config::{AreaTree, Config};
use crate::store::Db;
use crate::templates::Templates;

/// What console operations need: the database, the configuration, the loaded templates and
/// calendar (to check and preview content), and Loa's clock.
#[derive(Clone)]
pub struct Console {
    pub db: Db,
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    pub calendar: Arc<Calendar>,
    pub clock: SharedClock,
}

/// What an account is for. Roles do not nest: each permission lists the roles it is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Communications staff: writes content and enters offline activities.
    Staff,
    /// Approves (or cancels) content others wrote.
    Approver,
    /// Reads figures and reports; writes nothing.
    Official,
    /// Everything, and the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Staff, Role::Approver, Role::Official, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Approver => "approver",
            Role::Official => "official",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// As the console shows it.
    pub fn label(self) -> &'static str {
        match self {
            Role::Staff => "Cán bộ truyền thông",
            Role::Approver => "Người duyệt",
            Role::Official => "Lãnh đạo",
            Role::Admin => "Quản trị",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something an actor may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Dashboard, calendar, printable report, reach export, offline activities list.
    ViewFigures,
    /// The content queue and previews.
    ViewQueue,
    /// Create, edit, submit content; cancel one's own.
    EditContent,
    /// Approve content, cancel anyone's.
    Approve,
    EnterActivities,
    /// The delivery log names persons and their contacts.
    ExportDeliveries,
    ViewAudit,
    /// Import residents' lists (within the account's area).
    ImportContacts,
    /// Residents' texts ("Tin nhắn đến"): read, answer, mark handled. Officials see counts
    /// (`ViewFigures`), never a text.
    ReadInbox,
    /// Decide what happens to an occurrence held over a channel's yearly budget.
    DecideBudget,
}

impl Permission {
    pub fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Permission::ViewFigures => true,
            Permission::ViewQueue
            | Permission::EditContent
            | Permission::EnterActivities
            | Permission::ReadInbox => matches!(role, Staff | Approver | Admin),
            Permission::Approve => matches!(role, Approver | Admin),
            Permission::ExportDeliveries => matches!(role, Official | Admin),
            Permission::ViewAudit | Permission::DecideBudget => role == Admin,
            Permission::ImportContacts => matches!(role, Staff | Admin),
        }
    }
}

/// Who is acting: a signed-in user, or an API token.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// As the audit log and content authorship record it: `user:lan`, `token:bao-cao`.
    pub id: String,
    /// As shown: the user's or the token's name.
    pub name: String,
    pub role: Role,
    /// The area the actor is limited to, with everything under it; `None`: the whole district.
    pub area: Option<String>,
}

impl Actor {
    pub fn require(&self, permission: Permission) -> Result<(), ConsoleError> {
        if permission.allows(self.role) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!(
                "the role {} may not do this",
                self.role
            )))
        }
    }

    /// The area codes this actor may see, or `None` for all.
    pub fn scope(&self, areas: &AreaTree) -> Option<BTreeSet<String>> {
        self.area.as_ref().map(|code| {
            areas
                .subtree(code)
                .into_iter()
                .map(|a| a.code.clone())
                .collect()
        })
    }

    /// Whether every area of `codes` (and so everything under them) is within scope; an empty
    /// list means the whole district.
    pub fn covers(&self, codes: &[String], areas: &AreaTree) -> bool {
        match self.scope(areas) {
            None => true,
            Some(scope) => !codes.is_empty() && codes.iter().all(|c| scope.contains(c)),
        }
    }

    /// `codes` (empty: the whole district) narrowed to this actor's scope, as leaf-or-not area
    /// codes; empty again only when the actor sees everything and asked for everything.
    /// `None` when nothing of `codes` is in scope.
    pub fn narrow(&self, codes: &[String], areas: &AreaTree) -> Option<Vec<String>> {
        let Some(scope) = self.scope(areas) else {
            return Some(codes.to_vec());
        };
        let wanted: BTreeSet<String> = if codes.is_empty() {
            areas.iter().map(|a| a.code.clone()).collect()
        } else {
            codes
                .iter()
                .flat_map(|c| areas.subtree(c).into_iter().map(|a| a.code.clone()))
                .collect()
        };
        let both: Vec<String> = wanted.intersection(&scope).cloned().collect();
        (!both.is_empty()).then_some(both)
    }
}

/// How a console operation can fail; the web module maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("sign-in required")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A field a person filled in wrongly; `message` is Vietnamese, shown beside the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The request is valid but the content is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// The caller already has such work running (an export); Vietnamese, shown as it is.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Internal(e.into())
    }
}

impl ConsoleError {
    pub fn invalid(field: &str, message: impl Into<String>) -> ConsoleError {
        ConsoleError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Text typed into a field, refused when it holds control characters other than line breaks
/// and tabs: nothing a person types needs them, and PostgreSQL refuses a NUL outright.
pub fn typed_text(field: &str, text: &str) -> Result<(), ConsoleError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ConsoleError::invalid(
            field,
            "Nội dung có ký tự điều khiển không hợp lệ.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_get_only_their_permissions() {
        assert!(Permission::Approve.allows(Role::Approver));
        assert!(!Permission::Approve.allows(Role::Staff));
        assert!(!Permission::EditContent.allows(Role::Official));
        assert!(!Permission::ViewAudit.allows(Role::Approver));
        assert!(!Permission::ExportDeliveries.allows(Role::Staff));
        assert!(!Permission::ImportContacts.allows(Role::Official));
        assert!(!Permission::ImportContacts.allows(Role::Approver));
        assert!(!Permission::ReadInbox.allows(Role::Official));
        assert!(Permission::ReadInbox.allows(Role::Staff));
        assert!(Role::ALL.iter().all(|r| Permission::ViewFigures.allows(*r)));
        assert_eq!(Role::parse(" approver"), Some(Role::Approver));
        assert_eq!(Role::parse("root"), None);
    }
}
