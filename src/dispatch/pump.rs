//! The dispatcher as `loa run` drives it: sends flow `dispatch.concurrency` at a time, and the
//! next batch is claimed as soon as the queue is empty and half the slots are free.
//!
//! A step ends when its slowest send does, so stepping back to back would let one send that
//! hangs until the transport's timeout hold up the whole next batch; here it holds one slot.
//! The parts are the step's own — its chores, `claim`, `deliver_one` — so what the tests
//! prove by stepping holds here. Two batches in flight at once may hold messages to one
//! person: the daily cap of a new batch counts the person's sends still in flight, which the
//! database does not show yet.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;

use super::cap::DailyCounts;
use super::{ClaimedDelivery, Dispatcher};

impl Dispatcher {
    /// Sends until `stop` turns true (after [`Dispatcher::request_stop`]): what is claimed but
    /// not sent then goes back, and the sends in flight finish. Pauses `idle` when nothing is
    /// due.
    pub async fn pump(&self, idle: Duration, mut stop: watch::Receiver<bool>) {
        let slots = self.config.dispatch.concurrency.max(1);
        let mut queue: VecDeque<(ClaimedDelivery, Arc<DailyCounts>)> = VecDeque::new();
        // Persons with a send in flight, and how many; each send counts itself out once its
        // outcome is recorded.
        let in_flight: Mutex<HashMap<i64, i64>> = Mutex::new(HashMap::new());
        let in_flight = &in_flight;
        let mut running = FuturesUnordered::new();
        loop {
            let stopping = *stop.borrow();
            let mut claimed = 0;
            if !stopping && queue.is_empty() && running.len() <= slots / 2 {
                // The sends in flight are polled while claiming: one may hold the database's
                // writer (SQLite has one), which the claim's own writes wait for.
                let claim = self.claim_for_pump(in_flight);
                tokio::pin!(claim);
                let batch = loop {
                    tokio::select! {
                        batch = &mut claim => break batch,
                        Some(outcome) = running.next(), if !running.is_empty() => log_failure(outcome),
                    }
                };
                match batch {
                    Ok(batch) => {
                        claimed = batch.len();
                        queue.extend(batch);
                    }
                    Err(e) => tracing::error!("dispatch: {e:#}"),
                }
            }
            while running.len() < slots {
                let Some((d, today)) = queue.pop_front() else {
                    break;
                };
                let person = d.person_id;
                *lock(in_flight).entry(person).or_default() += 1;
                running.push(async move {
                    let outcome = self.deliver_one(d, &today).await;
                    let mut persons = lock(in_flight);
                    if let Some(n) = persons.get_mut(&person) {
                        *n -= 1;
                        if *n == 0 {
                            persons.remove(&person);
                        }
                    }
                    outcome
                });
            }
            if stopping && queue.is_empty() && running.is_empty() {
                return;
            }
            if claimed > 0 && running.len() <= slots / 2 {
                // A small batch: more may be due at once.
                continue;
            }
            tokio::select! {
                Some(outcome) = running.next(), if !running.is_empty() => log_failure(outcome),
                _ = tokio::time::sleep(idle), if claimed == 0 => {}
                _ = stop.changed(), if !stopping => {}
            }
        }
    }

    /// The step's chores, then a batch with its daily counts (the persons' sends still in
    /// flight counted in).
    async fn claim_for_pump(
        &self,
        in_flight: &Mutex<HashMap<i64, i64>>,
    ) -> anyhow::Result<Vec<(ClaimedDelivery, Arc<DailyCounts>)>> {
        if !self.chores().await?.may_claim {
            return Ok(Vec::new());
        }
        let batch = self.claim().await?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut persons: Vec<i64> = batch.iter().map(|d| d.person_id).collect();
        persons.sort_unstable();
        persons.dedup();
        // The sends in flight, taken before the database is read: one recorded in between
        // then counts twice (a place under the cap too few), never not at all.
        let flying: Vec<(i64, i64)> = {
            let in_flight = lock(in_flight);
            persons
                .iter()
                .filter_map(|p| in_flight.get(p).map(|n| (*p, *n)))
                .collect()
        };
        let today = self.daily_counts(&persons).await?;
        for (person, n) in flying {
            today.add_in_flight(person, n);
        }
        let today = Arc::new(today);
        Ok(batch.into_iter().map(|d| (d, Arc::clone(&today))).collect())
    }
}

fn lock(in_flight: &Mutex<HashMap<i64, i64>>) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
    in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A send whose outcome could not be recorded: its row stays claimed and comes back when this
/// worker's lease or liveness says so.
fn log_failure(outcome: anyhow::Result<super::record::Outcome>) {
    if let Err(e) = outcome {
        tracing::error!("dispatch: {e:#}");
    }
}
