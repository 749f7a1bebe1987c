//! Trips on the database executor. Writes to an existing trip arrive only
//! from its [`super::actor::TripActor`]; each is one transaction whose
//! updates are also guarded by the state they expect (member count, status),
//! so even a second node could not overfill a trip.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::chat::store::{self as chat, ConversationRow};
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339, IdGenerator};
use crate::core::paging::Page;
use crate::storage::outbox;
use crate::storage::schema::{
    conversation_members, trip_grams, trip_members, trip_requests, trips,
};
use crate::storage::{DbConn, DbExecutor};

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

fn find_trip(c: &mut DbConn, id: i64) -> QueryResult<Option<TripRow>> {
    trips::table
        .find(id)
        .select(TripRow::as_select())
        .first(c)
        .optional()
}

fn members(c: &mut DbConn, trip_id: i64) -> QueryResult<Vec<i64>> {
    trip_members::table
        .filter(trip_members::trip_id.eq(trip_id))
        .order((
            trip_members::joined_at_ms.asc(),
            trip_members::user_id.asc(),
        ))
        .select(trip_members::user_id)
        .load(c)
}

fn view(c: &mut DbConn, t: TripRow) -> QueryResult<TripView> {
    let m = members(c, t.id)?;
    Ok(TripView::new(t, m))
}

fn trip_or_404(c: &mut DbConn, id: i64) -> Result<TripRow, ApiError> {
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
        let conversation = ConversationRow {
            id: self.ids.next_id(),
            kind: "trip".into(),
            title: msg.destination.clone(),
            direct_key: None,
            last_seq: 0,
            last_activity_ms: now,
            created_at_ms: now,
        };
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
            status: "open".into(),
            conversation_id: conversation.id,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let grams: Vec<_> = super::bigrams(&row.destination)
            .into_iter()
            .map(|g| (trip_grams::gram.eq(g), trip_grams::trip_id.eq(row.id)))
            .collect();
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            chat::insert_conversation(c, &conversation, &[msg.organizer_id], now)?;
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
        let mut q = trips::table.filter(trips::status.eq("open")).into_boxed();
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
                    .map(|r| super::routes::encode_trip_cursor(&r.start_date, r.id))
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

/// A write to one existing trip. Sent only by the trip's actor.
#[derive(Debug, Clone)]
pub enum TripCommand {
    Join { user_id: i64, message: String },
    Accept { caller: i64, request_id: i64 },
    Reject { caller: i64, request_id: i64 },
    Leave { user_id: i64 },
    Close { caller: i64 },
}

pub enum TripReply {
    Request(RequestView),
    /// The trip after the change, and whether its conversation's members changed.
    Trip {
        view: TripView,
        membership_changed: bool,
    },
}

pub struct TripWrite {
    pub trip_id: i64,
    pub cmd: TripCommand,
}

impl Message for TripWrite {
    type Result = Result<TripReply, ApiError>;
}

impl Handler<TripWrite> for DbExecutor {
    type Result = Result<TripReply, ApiError>;
    fn handle(&mut self, msg: TripWrite, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let ids = &self.ids;
        crate::storage::transaction(&mut conn, |c| apply(c, ids, msg.trip_id, &msg.cmd))
    }
}

fn trip_full() -> ApiError {
    ApiError::conflict("trip_full", "the trip is full")
}

fn notify(
    c: &mut DbConn,
    ids: &IdGenerator,
    kind: &str,
    trip: &TripRow,
    to: &[i64],
    data: serde_json::Value,
) -> QueryResult<i64> {
    let notify: Vec<_> = to
        .iter()
        .map(|u| serde_json::json!({"user_id": u, "kind": kind, "data": data}))
        .collect();
    outbox::enqueue(
        c,
        ids,
        kind,
        &serde_json::json!({"trip_id": trip.id, "data": data, "notify": notify}),
    )
}

/// Moves `member_count` by `delta` if it still is what we read, with the
/// status that follows. 0 rows: someone else changed the trip meanwhile.
fn set_count(c: &mut DbConn, t: &TripRow, delta: i64, now: i64) -> Result<(), ApiError> {
    let count = t.member_count + delta;
    let status = match t.status.as_str() {
        "closed" => "closed",
        _ if count >= t.capacity => "full",
        _ => "open",
    };
    let n = diesel::update(
        trips::table
            .filter(trips::id.eq(t.id))
            .filter(trips::member_count.eq(t.member_count))
            .filter(trips::status.eq(&t.status)),
    )
    .set((
        trips::member_count.eq(count),
        trips::status.eq(status),
        trips::updated_at_ms.eq(now),
    ))
    .execute(c)?;
    if n != 1 {
        return Err(ApiError::conflict(
            "invalid_state",
            "the trip changed meanwhile; retry",
        ));
    }
    Ok(())
}

fn is_member(c: &mut DbConn, trip_id: i64, user_id: i64) -> QueryResult<bool> {
    Ok(trip_members::table
        .find((trip_id, user_id))
        .select(trip_members::user_id)
        .first::<i64>(c)
        .optional()?
        .is_some())
}

fn decided_request(
    c: &mut DbConn,
    t: &TripRow,
    caller: i64,
    request_id: i64,
) -> Result<RequestRow, ApiError> {
    if t.organizer_id != caller {
        return Err(ApiError::forbidden(
            "only the organizer decides join requests",
        ));
    }
    let r: RequestRow = trip_requests::table
        .find(request_id)
        .filter(trip_requests::trip_id.eq(t.id))
        .select(RequestRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such join request"))?;
    if r.status != "pending" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("the request is already {}", r.status),
        ));
    }
    Ok(r)
}

fn apply(
    c: &mut DbConn,
    ids: &IdGenerator,
    trip_id: i64,
    cmd: &TripCommand,
) -> Result<TripReply, ApiError> {
    let t = trip_or_404(c, trip_id)?;
    let now = now_ms();
    match cmd {
        TripCommand::Join { user_id, message } => {
            if is_member(c, t.id, *user_id)? {
                return Err(ApiError::conflict(
                    "already_member",
                    "you are already a member of this trip",
                ));
            }
            match t.status.as_str() {
                "full" => return Err(trip_full()),
                "closed" => return Err(ApiError::conflict("invalid_state", "the trip is closed")),
                _ => {}
            }
            let pending: Option<i64> = trip_requests::table
                .filter(trip_requests::trip_id.eq(t.id))
                .filter(trip_requests::user_id.eq(*user_id))
                .filter(trip_requests::status.eq("pending"))
                .select(trip_requests::id)
                .first(c)
                .optional()?;
            if pending.is_some() {
                return Err(ApiError::conflict(
                    "request_pending",
                    "you already asked to join this trip",
                ));
            }
            let row = RequestRow {
                id: ids.next_id(),
                trip_id: t.id,
                user_id: *user_id,
                message: message.clone(),
                status: "pending".into(),
                created_at_ms: now,
                decided_at_ms: None,
            };
            diesel::insert_into(trip_requests::table)
                .values(&row)
                .execute(c)?;
            notify(
                c,
                ids,
                "trip.join_requested",
                &t,
                &[t.organizer_id],
                serde_json::json!({"trip_id": t.id, "request_id": row.id, "user_id": user_id,
                    "message": message, "destination": t.destination}),
            )?;
            Ok(TripReply::Request(row.into()))
        }
        TripCommand::Accept { caller, request_id } => {
            let r = decided_request(c, &t, *caller, *request_id)?;
            match t.status.as_str() {
                "closed" => return Err(ApiError::conflict("invalid_state", "the trip is closed")),
                _ if t.member_count >= t.capacity => return Err(trip_full()),
                _ => {}
            }
            set_count(c, &t, 1, now)?;
            diesel::insert_into(trip_members::table)
                .values((
                    trip_members::trip_id.eq(t.id),
                    trip_members::user_id.eq(r.user_id),
                    trip_members::joined_at_ms.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(conversation_members::table)
                .values((
                    conversation_members::conversation_id.eq(t.conversation_id),
                    conversation_members::user_id.eq(r.user_id),
                    conversation_members::last_read_seq.eq(0_i64),
                    conversation_members::joined_at_ms.eq(now),
                ))
                .execute(c)?;
            diesel::update(trip_requests::table.find(r.id))
                .set((
                    trip_requests::status.eq("accepted"),
                    trip_requests::decided_at_ms.eq(Some(now)),
                ))
                .execute(c)?;
            notify(
                c,
                ids,
                "trip.join_accepted",
                &t,
                &[r.user_id],
                serde_json::json!({"trip_id": t.id, "request_id": r.id,
                    "conversation_id": t.conversation_id, "destination": t.destination}),
            )?;
            let t = trip_or_404(c, t.id)?;
            Ok(TripReply::Trip {
                view: view(c, t)?,
                membership_changed: true,
            })
        }
        TripCommand::Reject { caller, request_id } => {
            let r = decided_request(c, &t, *caller, *request_id)?;
            diesel::update(trip_requests::table.find(r.id))
                .set((
                    trip_requests::status.eq("rejected"),
                    trip_requests::decided_at_ms.eq(Some(now)),
                ))
                .execute(c)?;
            notify(
                c,
                ids,
                "trip.join_rejected",
                &t,
                &[r.user_id],
                serde_json::json!({"trip_id": t.id, "request_id": r.id, "destination": t.destination}),
            )?;
            Ok(TripReply::Request(
                RequestRow {
                    status: "rejected".into(),
                    decided_at_ms: Some(now),
                    ..r
                }
                .into(),
            ))
        }
        TripCommand::Leave { user_id } => {
            if !is_member(c, t.id, *user_id)? {
                return Err(ApiError::conflict(
                    "not_a_member",
                    "you are not a member of this trip",
                ));
            }
            if t.organizer_id == *user_id {
                return Err(ApiError::conflict(
                    "invalid_state",
                    "the organizer cannot leave; close the trip instead",
                ));
            }
            set_count(c, &t, -1, now)?;
            diesel::delete(trip_members::table.find((t.id, *user_id))).execute(c)?;
            diesel::delete(conversation_members::table.find((t.conversation_id, *user_id)))
                .execute(c)?;
            notify(
                c,
                ids,
                "trip.member_left",
                &t,
                &[t.organizer_id],
                serde_json::json!({"trip_id": t.id, "user_id": user_id, "destination": t.destination}),
            )?;
            let t = trip_or_404(c, t.id)?;
            Ok(TripReply::Trip {
                view: view(c, t)?,
                membership_changed: true,
            })
        }
        TripCommand::Close { caller } => {
            if t.organizer_id != *caller {
                return Err(ApiError::forbidden("only the organizer closes the trip"));
            }
            if t.status == "closed" {
                return Err(ApiError::conflict(
                    "invalid_state",
                    "the trip is already closed",
                ));
            }
            let n = diesel::update(
                trips::table
                    .filter(trips::id.eq(t.id))
                    .filter(trips::status.eq(&t.status)),
            )
            .set((trips::status.eq("closed"), trips::updated_at_ms.eq(now)))
            .execute(c)?;
            if n != 1 {
                return Err(ApiError::conflict(
                    "invalid_state",
                    "the trip changed meanwhile; retry",
                ));
            }
            // Pending requests can no longer be accepted: answer them.
            let pending: Vec<i64> = trip_requests::table
                .filter(trip_requests::trip_id.eq(t.id))
                .filter(trip_requests::status.eq("pending"))
                .select(trip_requests::user_id)
                .load(c)?;
            diesel::update(
                trip_requests::table
                    .filter(trip_requests::trip_id.eq(t.id))
                    .filter(trip_requests::status.eq("pending")),
            )
            .set((
                trip_requests::status.eq("rejected"),
                trip_requests::decided_at_ms.eq(Some(now)),
            ))
            .execute(c)?;
            let mut tell = members(c, t.id)?;
            tell.retain(|u| *u != t.organizer_id);
            tell.extend(pending);
            notify(
                c,
                ids,
                "trip.closed",
                &t,
                &tell,
                serde_json::json!({"trip_id": t.id, "destination": t.destination}),
            )?;
            let t = trip_or_404(c, t.id)?;
            Ok(TripReply::Trip {
                view: view(c, t)?,
                membership_changed: false,
            })
        }
    }
}
