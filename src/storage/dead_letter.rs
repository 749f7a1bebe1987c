//! Parked events (`dead_letters`): the rows behind `runtime::dead_letter`.

use actix::{Handler, Message};
use diesel::prelude::*;

use crate::core::error::ApiError;
use crate::storage::outbox::Event;
use crate::storage::schema::dead_letters;
use crate::storage::{DbConn, DbExecutor};

/// Parked events retried per round.
const RETRY_BATCH: i64 = 100;
/// Longest pause between two retries of a parked event.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// One parked event, as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dead_letters)]
pub struct DeadLetter {
    pub consumer: String,
    pub event_id: i64,
    pub kind: String,
    pub payload: String,
    pub occurred_at_ms: i64,
    pub error: String,
    pub attempts: i64,
    pub parked_at_ms: i64,
    pub next_attempt_at_ms: i64,
}

impl DeadLetter {
    pub fn new(consumer: &str, event: &Event, error: String, attempts: i64, now: i64) -> Self {
        DeadLetter {
            consumer: consumer.to_owned(),
            event_id: event.id,
            kind: event.kind.clone(),
            payload: event.payload.to_string(),
            occurred_at_ms: event.occurred_at_ms,
            error,
            attempts,
            parked_at_ms: now,
            next_attempt_at_ms: now.saturating_add(backoff_ms(attempts)),
        }
    }

    pub fn event(&self) -> Event {
        Event {
            id: self.event_id,
            kind: self.kind.clone(),
            payload: serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null),
            occurred_at_ms: self.occurred_at_ms,
        }
    }
}

/// Pause before the next retry of an event that failed `attempts` times:
/// 1 s after the third, doubling, at most an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(3).clamp(0, 22)).unwrap_or(22);
    1_000_i64.saturating_mul(1 << doublings).min(MAX_BACKOFF_MS)
}

/// Stores a parked event (a group-commit job). Parked already (two nodes,
/// a redelivery): the first row stays.
pub fn park(c: &mut DbConn, letter: &DeadLetter) -> Result<(), ApiError> {
    crate::per_backend!(&mut *c, |b| diesel::insert_into(dead_letters::table)
        .values(letter)
        .on_conflict_do_nothing()
        .execute(b))?;
    Ok(())
}

/// A retried event applied: it is no longer parked.
pub fn unpark(c: &mut DbConn, consumer: &str, event_id: i64) -> Result<(), ApiError> {
    diesel::delete(dead_letters::table.find((consumer, event_id))).execute(c)?;
    Ok(())
}

/// A retry failed again: count it and push the next one back.
pub fn failed_again(
    c: &mut DbConn,
    letter: &DeadLetter,
    error: &str,
    now: i64,
) -> Result<(), ApiError> {
    let attempts = letter.attempts.saturating_add(1);
    diesel::update(dead_letters::table.find((letter.consumer.as_str(), letter.event_id)))
        .set((
            dead_letters::attempts.eq(attempts),
            dead_letters::error.eq(error),
            dead_letters::next_attempt_at_ms.eq(now.saturating_add(backoff_ms(attempts))),
        ))
        .execute(c)?;
    Ok(())
}

/// Parked events due for a retry, oldest due first, and how many are parked.
pub struct Due {
    pub now_ms: i64,
}

impl Message for Due {
    type Result = Result<(Vec<DeadLetter>, i64), ApiError>;
}

impl Handler<Due> for DbExecutor {
    type Result = Result<(Vec<DeadLetter>, i64), ApiError>;
    fn handle(&mut self, msg: Due, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let due = dead_letters::table
            .filter(dead_letters::next_attempt_at_ms.le(msg.now_ms))
            .order(dead_letters::next_attempt_at_ms.asc())
            .limit(RETRY_BATCH)
            .select(DeadLetter::as_select())
            .load(&mut conn)?;
        let total: i64 = dead_letters::table.count().get_result(&mut conn)?;
        Ok((due, total))
    }
}

/// Parked events ordered by (event id, consumer), after `after` (the last
/// row of the previous page). One event may be parked by several consumers,
/// so the position is the pair, not the event id alone.
pub fn list(
    conn: &mut DbConn,
    limit: i64,
    after: Option<(i64, &str)>,
) -> QueryResult<Vec<DeadLetter>> {
    let mut q = dead_letters::table
        .order((dead_letters::event_id.asc(), dead_letters::consumer.asc()))
        .limit(limit)
        .select(DeadLetter::as_select())
        .into_boxed();
    if let Some((event_id, consumer)) = after {
        q = q.filter(
            dead_letters::event_id
                .gt(event_id)
                .or(dead_letters::event_id
                    .eq(event_id)
                    .and(dead_letters::consumer.gt(consumer.to_owned()))),
        );
    }
    q.load(conn)
}

/// A page position of [`list`] as an opaque cursor, and back (400 if it is
/// not one).
pub fn encode_cursor(event_id: i64, consumer: &str) -> String {
    hex::encode(format!("dl1:{event_id}:{consumer}"))
}

pub fn decode_cursor(token: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::invalid_input("invalid cursor");
    let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let rest = text.strip_prefix("dl1:").ok_or_else(bad)?;
    let (id, consumer) = rest.split_once(':').ok_or_else(bad)?;
    Ok((id.parse().map_err(|_| bad())?, consumer.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn letter(consumer: &str, event_id: i64) -> DeadLetter {
        DeadLetter {
            consumer: consumer.to_owned(),
            event_id,
            kind: "order.paid".into(),
            payload: "{}".into(),
            occurred_at_ms: 0,
            error: "boom".into(),
            attempts: 3,
            parked_at_ms: 0,
            next_attempt_at_ms: 0,
        }
    }

    #[test]
    fn pages_walk_every_parked_letter_once_even_when_consumers_share_an_event() {
        let dir = std::env::temp_dir().join(format!(
            "tandem-dead-letters-{}-{}",
            std::process::id(),
            crate::core::ids::now_ms()
        ));
        let url = crate::core::config::DatabaseUrl::Sqlite(
            dir.join("t.db").to_string_lossy().into_owned(),
        );
        let pool =
            crate::storage::open_pool(&url, 1, crate::core::config::SqliteSync::Full).unwrap();
        let mut c = pool.get().unwrap();
        crate::storage::run_migrations(&mut c).unwrap();
        for (consumer, event) in [("notifier", 7), ("rebates", 7), ("notifier", 9)] {
            park(&mut c, &letter(consumer, event)).unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = list(&mut c, 1, after.as_ref().map(|(e, s)| (*e, s.as_str()))).unwrap();
            let Some(last) = page.last() else { break };
            seen.push((last.consumer.clone(), last.event_id));
            let token = encode_cursor(last.event_id, &last.consumer);
            after = Some(decode_cursor(&token).unwrap());
        }
        assert_eq!(
            seen,
            [
                ("notifier".into(), 7),
                ("rebates".into(), 7),
                ("notifier".into(), 9)
            ]
        );
        assert!(decode_cursor("zz").is_err());
        drop(c);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_an_hour() {
        assert_eq!(backoff_ms(3), 1_000);
        assert_eq!(backoff_ms(4), 2_000);
        assert_eq!(backoff_ms(8), 32_000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(i64::MAX), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0), 1_000);
    }
}
