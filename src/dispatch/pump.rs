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
use std::sync::Arc;
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
        let mut running = FuturesUnordered::new();
        // Persons with a send in flight, and how many.
        let mut in_flight: HashMap<i64, i64> = HashMap::new();
        loop {
            let stopping = *stop.borrow();
            let mut claimed = 0;
            if !stopping && queue.is_empty() && running.len() <= slots / 2 {
                match self.claim_for_pump(&in_flight).await {
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
                *in_flight.entry(person).or_default() += 1;
                running.push(async move { (person, self.deliver_one(d, &today).await) });
            }
            if stopping && queue.is_empty() && running.is_empty() {
                return;
            }
            if claimed > 0 && running.len() <= slots / 2 {
                // A small batch: more may be due at once.
                continue;
            }
            tokio::select! {
                Some((person, outcome)) = running.next(), if !running.is_empty() => {
                    if let Some(n) = in_flight.get_mut(&person) {
                        *n -= 1;
                        if *n == 0 {
                            in_flight.remove(&person);
                        }
                    }
                    if let Err(e) = outcome {
                        // Its row stays claimed; it comes back when this worker's lease or
                        // liveness says so.
                        tracing::error!("dispatch: {e:#}");
                    }
                }
                _ = tokio::time::sleep(idle), if claimed == 0 => {}
                _ = stop.changed(), if !stopping => {}
            }
        }
    }

    /// The step's chores, then a batch with its daily counts (the persons' sends still in
    /// flight counted in).
    async fn claim_for_pump(
        &self,
        in_flight: &HashMap<i64, i64>,
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
        let today = self.daily_counts(&persons).await?;
        for person in &persons {
            if let Some(n) = in_flight.get(person) {
                today.add_in_flight(*person, *n);
            }
        }
        let today = Arc::new(today);
        Ok(batch.into_iter().map(|d| (d, Arc::clone(&today))).collect())
    }
}
