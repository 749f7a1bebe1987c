//! Trip writes (join, accept, reject, leave, close), one per trip at a time
//! through its actor; each runs in one transaction with its notifications.

use actix::{Handler, Message};
use diesel::prelude::*;

use crate::core::error::ApiError;
use crate::core::ids::{now_ms, IdGenerator};
use crate::storage::outbox;
use crate::storage::schema::{trip_members, trip_requests, trips};
use crate::storage::{DbConn, DbExecutor};
use crate::trips::model::{RequestStatus, TripStatus};

use super::{members, trip_or_404, view, RequestRow, RequestView, TripRow, TripView};

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
    ApiError::conflict(crate::core::error::ErrorKind::TripFull, "the trip is full")
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

/// The status a loaded trip carries; text no status names is a corrupt row.
fn trip_status(t: &TripRow) -> Result<TripStatus, ApiError> {
    TripStatus::parse(&t.status).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "trip {} has unknown status {:?}",
            t.id,
            t.status
        ))
    })
}

/// Moves `member_count` by `delta` if it still is what we read, with the
/// status that follows. 0 rows: someone else changed the trip meanwhile.
fn set_count(c: &mut DbConn, t: &TripRow, delta: i64, now: i64) -> Result<(), ApiError> {
    let count = t.member_count + delta;
    let status = trip_status(t)?.with_count(count, t.capacity).as_str();
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
            crate::core::error::ErrorKind::InvalidState,
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
    if r.status != RequestStatus::Pending.as_str() {
        return Err(ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
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
                    crate::core::error::ErrorKind::AlreadyMember,
                    "you are already a member of this trip",
                ));
            }
            match trip_status(&t)? {
                TripStatus::Full => return Err(trip_full()),
                TripStatus::Closed => {
                    return Err(ApiError::conflict(
                        crate::core::error::ErrorKind::InvalidState,
                        "the trip is closed",
                    ))
                }
                TripStatus::Open => {}
            }
            let pending: Option<i64> = trip_requests::table
                .filter(trip_requests::trip_id.eq(t.id))
                .filter(trip_requests::user_id.eq(*user_id))
                .filter(trip_requests::status.eq(RequestStatus::Pending.as_str()))
                .select(trip_requests::id)
                .first(c)
                .optional()?;
            if pending.is_some() {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::RequestPending,
                    "you already asked to join this trip",
                ));
            }
            let row = RequestRow {
                id: ids.next_id(),
                trip_id: t.id,
                user_id: *user_id,
                message: message.clone(),
                status: RequestStatus::Pending.as_str().into(),
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
            match trip_status(&t)? {
                TripStatus::Closed => {
                    return Err(ApiError::conflict(
                        crate::core::error::ErrorKind::InvalidState,
                        "the trip is closed",
                    ))
                }
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
            crate::chat::tx::add_member(c, t.conversation_id, r.user_id, now)?;
            diesel::update(trip_requests::table.find(r.id))
                .set((
                    trip_requests::status.eq(RequestStatus::Accepted.as_str()),
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
                    trip_requests::status.eq(RequestStatus::Rejected.as_str()),
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
                    status: RequestStatus::Rejected.as_str().into(),
                    decided_at_ms: Some(now),
                    ..r
                }
                .into(),
            ))
        }
        TripCommand::Leave { user_id } => {
            if !is_member(c, t.id, *user_id)? {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::NotAMember,
                    "you are not a member of this trip",
                ));
            }
            if t.organizer_id == *user_id {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::InvalidState,
                    "the organizer cannot leave; close the trip instead",
                ));
            }
            set_count(c, &t, -1, now)?;
            diesel::delete(trip_members::table.find((t.id, *user_id))).execute(c)?;
            crate::chat::tx::remove_member(c, t.conversation_id, *user_id)?;
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
            if trip_status(&t)? == TripStatus::Closed {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::InvalidState,
                    "the trip is already closed",
                ));
            }
            let n = diesel::update(
                trips::table
                    .filter(trips::id.eq(t.id))
                    .filter(trips::status.eq(&t.status)),
            )
            .set((
                trips::status.eq(TripStatus::Closed.as_str()),
                trips::updated_at_ms.eq(now),
            ))
            .execute(c)?;
            if n != 1 {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::InvalidState,
                    "the trip changed meanwhile; retry",
                ));
            }
            // Pending requests can no longer be accepted: answer them.
            let pending: Vec<i64> = trip_requests::table
                .filter(trip_requests::trip_id.eq(t.id))
                .filter(trip_requests::status.eq(RequestStatus::Pending.as_str()))
                .select(trip_requests::user_id)
                .load(c)?;
            diesel::update(
                trip_requests::table
                    .filter(trip_requests::trip_id.eq(t.id))
                    .filter(trip_requests::status.eq(RequestStatus::Pending.as_str())),
            )
            .set((
                trip_requests::status.eq(RequestStatus::Rejected.as_str()),
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
