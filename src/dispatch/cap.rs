//! The per-person daily cap: at most `max_per_person_per_day` campaign messages reach one
//! person on one local day, across channels. Read once per claimed batch, then kept in memory
//! while the batch is sent (two deliveries of one person can be in one batch).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use crate::calendar::local_midnight;
use crate::delivery::Status;
use crate::store::{Db, Sql, to_epoch};

/// Messages each person has had today, counting those this batch has reserved a place for.
pub(super) struct DailyCounts {
    cap: i64,
    /// (messages per person today, person of each delivery holding a reserved place).
    state: Mutex<(HashMap<i64, i64>, HashMap<i64, i64>)>,
}

impl DailyCounts {
    /// The counts of `persons` today (campaign time), in one query.
    pub(super) async fn read(
        db: &Db,
        persons: &[i64],
        cap: u32,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Result<DailyCounts, sqlx::Error> {
        let mut persons = persons.to_vec();
        persons.sort_unstable();
        persons.dedup();
        let mut counts = HashMap::new();
        if !persons.is_empty() {
            let today = now.with_timezone(&tz).date_naive();
            let mut sql = Sql::new("SELECT person_id, COUNT(*) FROM deliveries WHERE sent_at >= ");
            sql.bind(to_epoch(local_midnight(today, tz)))
                .push(&format!(
                    " AND status IN {}",
                    Status::sql_list(&Status::OUT)
                ))
                .push(" AND person_id IN (")
                .list(persons)
                .push(") GROUP BY person_id");
            for row in sql.query()?.fetch_all(&db.pool).await? {
                counts.insert(row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?);
            }
        }
        Ok(DailyCounts {
            cap: i64::from(cap),
            state: Mutex::new((counts, HashMap::new())),
        })
    }

    /// Takes a place for `delivery`; false when its person has had their share today.
    pub(super) fn reserve(&self, delivery: i64, person: i64) -> bool {
        let mut state = self.state.lock().expect("daily counts lock");
        let (counts, reserved) = &mut *state;
        let count = counts.entry(person).or_default();
        if *count >= self.cap {
            return false;
        }
        *count += 1;
        reserved.insert(delivery, person);
        true
    }

    /// Keeps the place of a delivery that was sent; gives back any other's.
    /// Counts `n` more of `person`'s messages as going out today: sends of an earlier batch
    /// still in flight, which the database does not show yet.
    pub(super) fn add_in_flight(&self, person: i64, n: i64) {
        let mut state = self.state.lock().expect("daily counts lock");
        *state.0.entry(person).or_default() += n;
    }

    pub(super) fn settle(&self, delivery: i64, sent: bool) {
        let mut state = self.state.lock().expect("daily counts lock");
        let (counts, reserved) = &mut *state;
        if let Some(person) = reserved.remove(&delivery)
            && !sent
        {
            *counts.entry(person).or_default() -= 1;
        }
    }
}

/// When the next local day's sending hours open: a person who has had their share today
/// waits for it.
pub(super) fn tomorrows_opening(
    now: DateTime<Utc>,
    tz: Tz,
    quiet_hours: Option<(NaiveTime, NaiveTime)>,
) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let opening = quiet_hours.map_or(NaiveTime::MIN, |(_, end)| end);
    let tomorrow = today + Duration::days(1);
    tz.from_local_datetime(&tomorrow.and_time(opening))
        .earliest()
        .map_or(local_midnight(tomorrow, tz), |t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_kept_for_sends_and_given_back_otherwise() {
        let counts = DailyCounts {
            cap: 2,
            state: Mutex::new((HashMap::from([(7, 1)]), HashMap::new())),
        };
        assert!(counts.reserve(100, 7));
        assert!(
            !counts.reserve(101, 7),
            "the second message today fills the cap"
        );
        counts.settle(100, false);
        assert!(counts.reserve(101, 7), "an unsent place is given back");
        counts.settle(101, true);
        assert!(!counts.reserve(102, 7));
    }

    #[test]
    fn tomorrow_opens_when_quiet_hours_end() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let now = tz.with_ymd_and_hms(2023, 3, 8, 15, 0, 0).unwrap().to_utc();
        let quiet = Some((
            NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        ));
        assert_eq!(
            tomorrows_opening(now, tz, quiet),
            tz.with_ymd_and_hms(2023, 3, 9, 7, 0, 0).unwrap().to_utc()
        );
        assert_eq!(
            tomorrows_opening(now, tz, None),
            tz.with_ymd_and_hms(2023, 3, 9, 0, 0, 0).unwrap().to_utc()
        );
    }
}
