//! Notification preferences: the kinds a member turned off
//! (`notification_mutes`; no row means on).

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::core::error::ApiError;
use crate::storage::schema::notification_mutes;
use crate::storage::{DbConn, DbExecutor};

crate::text_enum! {
    /// Every kind of notification Tandem stores.
    pub enum NotificationKind {
        OrderPaid = "order.paid",
        OrderShipped = "order.shipped",
        OrderCompleted = "order.completed",
        OrderCancelled = "order.cancelled",
        OrderExpired = "order.expired",
        OrderRefundRequested = "order.refund_requested",
        OrderRefunded = "order.refunded",
        OrderRefundRejected = "order.refund_rejected",
        OrderAddressGiven = "order.address_given",
        GiftReceived = "gift.received",
        RebatePending = "rebate.pending",
        RebateAvailable = "rebate.available",
        RebateReversed = "rebate.reversed",
        RebateCancelled = "rebate.cancelled",
        UserFollowed = "user.followed",
        ContentRemoved = "moderation.content_removed",
        TripJoinRequested = "trip.join_requested",
        TripJoinAccepted = "trip.join_accepted",
        TripJoinRejected = "trip.join_rejected",
        TripMemberLeft = "trip.member_left",
        TripClosed = "trip.closed",
        AnimalUpdate = "animal.update",
        AnimalClaimEnded = "animal.claim_ended",
    }
}

/// Most rows [`AllMutes`] loads at start (a bound, not an expected size).
pub const MAX_MUTE_ROWS: i64 = 2_000_000;

/// The kinds `user` turned off.
pub fn muted_kinds(conn: &mut DbConn, user: i64) -> QueryResult<Vec<String>> {
    notification_mutes::table
        .filter(notification_mutes::user_id.eq(user))
        .order(notification_mutes::kind.asc())
        .select(notification_mutes::kind)
        .load(conn)
}

/// One kind's setting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KindSetting {
    #[schema(value_type = NotificationKind, inline)]
    pub kind: &'static str,
    pub enabled: bool,
}

/// Every kind with whether it is on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreferencesView {
    pub kinds: Vec<KindSetting>,
}

fn view(off: &[String]) -> PreferencesView {
    let kinds = NotificationKind::ALL
        .iter()
        .map(|k| KindSetting {
            kind: k.as_str(),
            enabled: !off.iter().any(|o| o == k.as_str()),
        })
        .collect();
    PreferencesView { kinds }
}

/// Turns kinds on or off (all in one transaction) and answers with every
/// kind's setting and the kinds now off.
pub struct SetPreferences {
    pub user: i64,
    pub changes: Vec<(NotificationKind, bool)>,
}

impl Message for SetPreferences {
    type Result = Result<(PreferencesView, Vec<String>), ApiError>;
}

impl Handler<SetPreferences> for DbExecutor {
    type Result = Result<(PreferencesView, Vec<String>), ApiError>;

    fn handle(&mut self, msg: SetPreferences, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let now = crate::core::ids::now_ms();
        let off = crate::storage::transaction(&mut conn, |c| -> QueryResult<Vec<String>> {
            for (kind, enabled) in &msg.changes {
                let row = notification_mutes::table.find((msg.user, kind.as_str()));
                diesel::delete(row).execute(c)?;
                if !enabled {
                    diesel::insert_into(notification_mutes::table)
                        .values((
                            notification_mutes::user_id.eq(msg.user),
                            notification_mutes::kind.eq(kind.as_str()),
                            notification_mutes::created_at_ms.eq(now),
                        ))
                        .execute(c)?;
                }
            }
            muted_kinds(c, msg.user)
        })?;
        Ok((view(&off), off))
    }
}

/// A member's settings.
pub struct GetPreferences {
    pub user: i64,
}

impl Message for GetPreferences {
    type Result = Result<PreferencesView, ApiError>;
}

impl Handler<GetPreferences> for DbExecutor {
    type Result = Result<PreferencesView, ApiError>;

    fn handle(&mut self, msg: GetPreferences, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(view(&muted_kinds(&mut conn, msg.user)?))
    }
}

/// Every (user, kind) turned off, or one user's (at most [`MAX_MUTE_ROWS`]).
pub struct LoadMutes {
    pub user: Option<i64>,
}

impl Message for LoadMutes {
    type Result = Result<Vec<(i64, String)>, ApiError>;
}

impl Handler<LoadMutes> for DbExecutor {
    type Result = Result<Vec<(i64, String)>, ApiError>;

    fn handle(&mut self, msg: LoadMutes, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = notification_mutes::table.into_boxed();
        if let Some(u) = msg.user {
            q = q.filter(notification_mutes::user_id.eq(u));
        }
        Ok(
            q.order((notification_mutes::user_id, notification_mutes::kind))
                .select((notification_mutes::user_id, notification_mutes::kind))
                .limit(MAX_MUTE_ROWS)
                .load(&mut conn)?,
        )
    }
}
