//! Trips on the database executor. Writes to an existing trip arrive only
//! from its [`super::actor::TripActor`]; each is one transaction whose
//! updates are also guarded by the state they expect (member count, status),
//! so even a second node could not overfill a trip.

pub mod writes;

pub use writes::{TripCommand, TripReply, TripWrite};

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::chat::tx as chat;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::schema::{trip_grams, trip_members, trip_requests, trips};
use crate::storage::{DbConn, DbExecutor};
use crate::trips::model::TripStatus;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = trips)]
pub struct TripRow {
    pub id: i64,
    pub organizer_id: i64,
    pub destination: String,
    pub destination_lower: String,
    pub start_date: String,
    pub end_date: String,
    pub capacity: i64,
    pub member_count: i64,
    pub description: String,
    pub status: String,
    pub conversation_id: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = trip_requests)]
pub struct RequestRow {
    pub id: i64,
    pub trip_id: i64,
    pub user_id: i64,
    pub message: String,
    pub status: String,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TripView {
    pub trip_id: i64,
    pub organizer_id: i64,
    pub destination: String,
    pub start_date: String,
    pub end_date: String,
    pub capacity: i64,
    pub member_ids: Vec<i64>,
    /// `open`, `full` or `closed`.
    #[schema(value_type = crate::trips::model::TripStatus, inline)]
    pub status: String,
    pub conversation_id: i64,
    pub description: String,
    pub created_at: String,
}

impl TripView {
    fn new(t: TripRow, member_ids: Vec<i64>) -> Self {
        TripView {
            trip_id: t.id,
            organizer_id: t.organizer_id,
            destination: t.destination,
            start_date: t.start_date,
            end_date: t.end_date,
            capacity: t.capacity,
            member_ids,
            status: t.status,
            conversation_id: t.conversation_id,
            description: t.description,
            created_at: rfc3339(t.created_at_ms),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub request_id: i64,
    pub trip_id: i64,
    pub user_id: i64,
    pub message: String,
    /// `pending`, `accepted` or `rejected`.
    #[schema(value_type = crate::trips::model::RequestStatus, inline)]
    pub status: String,
    pub created_at: String,
}

impl From<RequestRow> for RequestView {
    fn from(r: RequestRow) -> Self {
        RequestView {
            request_id: r.id,
            trip_id: r.trip_id,
            user_id: r.user_id,
            message: r.message,
            status: r.status,
            created_at: rfc3339(r.created_at_ms),
        }
    }
}

pub(super) fn find_trip(c: &mut DbConn, id: i64) -> QueryResult<Option<TripRow>> {
    trips::table
        .find(id)
        .select(TripRow::as_select())
        .first(c)
        .optional()
}

pub(super) fn members(c: &mut DbConn, trip_id: i64) -> QueryResult<Vec<i64>> {
    trip_members::table
        .filter(trip_members::trip_id.eq(trip_id))
        .order((
            trip_members::joined_at_ms.asc(),
            trip_members::user_id.asc(),
        ))
        .select(trip_members::user_id)
        .load(c)
}

pub(super) fn view(c: &mut DbConn, t: TripRow) -> QueryResult<TripView> {
    let m = members(c, t.id)?;
    Ok(TripView::new(t, m))
}

pub(super) fn trip_or_404(c: &mut DbConn, id: i64) -> Result<TripRow, ApiError> {
    find_trip(c, id)?.ok_or_else(|| ApiError::not_found("no such trip"))
}

/// A new trip, its group conversation (organizer first member) and its index rows.
pub struct CreateTrip {
    pub organizer_id: i64,
    pub destination: String,
    pub start_date: String,
    pub end_date: String,
    pub capacity: i64,
    pub description: String,
}

impl Message for CreateTrip {
    type Result = Result<TripView, ApiError>;
}

impl Handler<CreateTrip> for DbExecutor {
    type Result = Result<TripView, ApiError>;
    fn handle(&mut self, msg: CreateTrip, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let now = now_ms();
        let conversation_id = self.ids.next_id();
        let row = TripRow {
            id: self.ids.next_id(),
            organizer_id: msg.organizer_id,
            destination_lower: msg.destination.to_lowercase(),
            destination: msg.destination,
            start_date: msg.start_date,
            end_date: msg.end_date,
            capacity: msg.capacity,
            member_count: 1,
            description: msg.description,
            status: TripStatus::Open.as_str().into(),
            conversation_id,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let grams: Vec<_> = super::bigrams(&row.destination)
            .into_iter()
            .map(|g| (trip_grams::gram.eq(g), trip_grams::trip_id.eq(row.id)))
            .collect();
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            chat::create_group(
                c,
                conversation_id,
                "trip",
                &row.destination,
                &[msg.organizer_id],
                now,
            )?;
            diesel::insert_into(trips::table).values(&row).execute(c)?;
            diesel::insert_into(trip_members::table)
                .values((
                    trip_members::trip_id.eq(row.id),
                    trip_members::user_id.eq(msg.organizer_id),
                    trip_members::joined_at_ms.eq(now),
                ))
                .execute(c)?;
            // A destination is at most 100 characters: at most 99 rows, one statement.
            if !grams.is_empty() {
                crate::per_backend!(c, |c| diesel::insert_into(trip_grams::table)
                    .values(&grams)
                    .execute(c))?;
            }
            Ok(())
        })?;
        let organizer = row.organizer_id;
        Ok(TripView::new(row, vec![organizer]))
    }
}

pub struct GetTrip {
    pub trip_id: i64,
}

impl Message for GetTrip {
    type Result = Result<TripView, ApiError>;
}

impl Handler<GetTrip> for DbExecutor {
    type Result = Result<TripView, ApiError>;
    fn handle(&mut self, msg: GetTrip, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let t = trip_or_404(&mut conn, msg.trip_id)?;
        Ok(view(&mut conn, t)?)
    }
}

/// Open trips overlapping `[from, to]` whose destination contains `text`,
/// soonest first. Driven by `trips_search_idx` (open, not ended before
/// `from` when given) and, for texts of two or more characters, one bigram of the text
/// looked up in `trip_grams`; the whole text is then checked on those rows.
pub struct SearchTrips {
    /// Lower-cased.
    pub text: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: i64,
    /// (start_date, id) of the last trip of the previous page.
    pub after: Option<(String, i64)>,
}

impl Message for SearchTrips {
    type Result = Result<Page<TripView>, ApiError>;
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

impl Handler<SearchTrips> for DbExecutor {
    type Result = Result<Page<TripView>, ApiError>;
    fn handle(&mut self, msg: SearchTrips, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = trips::table
            .filter(trips::status.eq(TripStatus::Open.as_str()))
            .into_boxed();
        if let Some(from) = &msg.from {
            q = q.filter(trips::end_date.ge(from.clone()));
        }
        if let Some(to) = &msg.to {
            q = q.filter(trips::start_date.le(to.clone()));
        }
        if let Some(text) = &msg.text {
            if let Some(gram) = super::bigrams(text).into_iter().next() {
                q = q.filter(
                    trips::id.eq_any(
                        trip_grams::table
                            .filter(trip_grams::gram.eq(gram))
                            .select(trip_grams::trip_id),
                    ),
                );
            }
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.filter(
                trips::destination_lower
                    .like(format!("%{escaped}%"))
                    .escape('\\'),
            );
        }
        if let Some((date, id)) = &msg.after {
            q = q.filter(
                trips::start_date
                    .gt(date.clone())
                    .or(trips::start_date.eq(date.clone()).and(trips::id.gt(*id))),
            );
        }
        let mut rows: Vec<TripRow> = q
            .order((trips::start_date.asc(), trips::id.asc()))
            .limit(msg.limit + 1)
            .select(TripRow::as_select())
            .load(&mut conn)?;
        let more = rows.len() as i64 > msg.limit;
        rows.truncate(usize::try_from(msg.limit).unwrap_or(0));
        let next_cursor = more
            .then(|| {
                rows.last()
                    .map(|r| super::http::encode_trip_cursor(&r.start_date, r.id))
            })
            .flatten();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let pairs: Vec<(i64, i64)> = trip_members::table
            .filter(trip_members::trip_id.eq_any(&ids))
            .order((
                trip_members::joined_at_ms.asc(),
                trip_members::user_id.asc(),
            ))
            .select((trip_members::trip_id, trip_members::user_id))
            .load(&mut conn)?;
        // Grouped once (in join order), not scanned per trip.
        let mut by_trip: std::collections::HashMap<i64, Vec<i64>> =
            std::collections::HashMap::new();
        for (tid, user) in pairs {
            by_trip.entry(tid).or_default().push(user);
        }
        let items = rows
            .into_iter()
            .map(|t| {
                let m = by_trip.remove(&t.id).unwrap_or_default();
                TripView::new(t, m)
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}

/// Join requests of a trip (its organizer only), oldest first.
pub struct ListRequests {
    pub trip_id: i64,
    pub caller: i64,
    pub status: Option<String>,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListRequests {
    type Result = Result<Page<RequestView>, ApiError>;
}

impl Handler<ListRequests> for DbExecutor {
    type Result = Result<Page<RequestView>, ApiError>;
    fn handle(&mut self, msg: ListRequests, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let t = trip_or_404(&mut conn, msg.trip_id)?;
        if t.organizer_id != msg.caller {
            return Err(ApiError::forbidden(
                "only the organizer sees the join requests",
            ));
        }
        let mut q = trip_requests::table
            .filter(trip_requests::trip_id.eq(msg.trip_id))
            .into_boxed();
        if let Some(s) = &msg.status {
            q = q.filter(trip_requests::status.eq(s.clone()));
        }
        if let Some(a) = msg.after_id {
            q = q.filter(trip_requests::id.gt(a));
        }
        let mut rows: Vec<RequestRow> = q
            .order(trip_requests::id.asc())
            .limit(msg.limit + 1)
            .select(RequestRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}

/// How many trips `user` organized (any status).
pub fn count_organized(conn: &mut DbConn, user: i64) -> QueryResult<i64> {
    trips::table
        .filter(trips::organizer_id.eq(user))
        .count()
        .get_result(conn)
}
