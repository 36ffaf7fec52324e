//! The budget as the console shows it: the year's spending per channel and month against each
//! channel's budget, the occurrences held over it, and an admin's decision on one.

use chrono::Datelike;
use serde::Serialize;

use super::{Actor, Console, ConsoleError, Permission, audit};
use crate::budget::decide::{self, DecideError, Decided, Decision, Held};
use crate::budget::{ChannelSpend, Pricer};

/// How many held occurrences the console lists (undecided first).
const HELD_SHOWN: i64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    pub year: i32,
    pub channels: Vec<ChannelSpend>,
    pub held: Vec<Held>,
}

impl BudgetView {
    /// Whether any channel has a budget (without one there is nothing to weigh spending by).
    pub fn has_budgets(&self) -> bool {
        self.channels.iter().any(|c| c.budget.is_some())
    }
}

impl Console {
    /// What prices a message for this deployment.
    pub fn pricer(&self) -> Pricer {
        Pricer::new(
            std::sync::Arc::clone(&self.config),
            std::sync::Arc::clone(&self.templates),
        )
    }

    /// This year's spending and the held occurrences. The budget is the district's: every
    /// account that sees figures sees it (it names no one).
    pub async fn budget(&self, actor: &Actor) -> Result<BudgetView, ConsoleError> {
        actor.require(Permission::ViewFigures)?;
        let tz = self.config.campaign.time_zone;
        let year = self.clock.now().with_timezone(&tz).year();
        let mut conn = self.db.pool.acquire().await?;
        let channels = crate::budget::year(&mut conn, &self.config.channels, tz, year).await?;
        let held = decide::held(&mut conn, HELD_SHOWN).await?;
        Ok(BudgetView {
            year,
            channels,
            held,
        })
    }

    /// An admin's decision on held occurrence `id`, audited in the same transaction.
    pub async fn decide_hold(
        &self,
        actor: &Actor,
        id: i64,
        decision: Decision,
    ) -> Result<Decided, ConsoleError> {
        actor.require(Permission::DecideBudget)?;
        let now = self.clock.now();
        let mut tx = self.db.pool.begin().await?;
        let decided =
            match decide::decide(&mut tx, &self.pricer(), id, decision, &actor.id, now).await {
                Ok(d) => d,
                Err(DecideError::NotFound) => return Err(ConsoleError::NotFound),
                Err(DecideError::NotHeld) => {
                    return Err(ConsoleError::Conflict(
                        "Đợt gửi này không ở trạng thái chờ quyết định về ngân sách.".to_string(),
                    ));
                }
                Err(DecideError::Decided(_)) => {
                    return Err(ConsoleError::Conflict(
                        "Đợt gửi này đã có quyết định.".to_string(),
                    ));
                }
                Err(DecideError::Expired) => {
                    return Err(ConsoleError::Conflict(
                        "Đợt gửi này đã quá hạn quyết định nên không gửi được nữa.".to_string(),
                    ));
                }
                Err(DecideError::Db(e)) => return Err(e.into()),
            };
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            "budget.decide",
            Some(&format!("occurrence:{id}")),
            Some(&format!(
                "{}: {} sending, {} cancelled",
                decision.as_str(),
                decided.sending,
                decided.cancelled
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(decided)
    }
}
