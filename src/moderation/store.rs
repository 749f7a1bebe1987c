//! Reports, the admin report queue and admin figures, on the database executor.

use actix::{Handler, Message};
use diesel::dsl::count_star;
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::domain::Role;
use crate::accounts::tx::require_role;
use crate::commerce::tx::{day_start_ms, paid_gmv};
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::outbox;
use crate::storage::schema::reports;
use crate::storage::{DbConn, DbExecutor};

pub use super::model::{Action, ReportStatus, Target};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reports)]
pub struct ReportRow {
    pub id: i64,
    pub reporter_id: i64,
    pub target_type: String,
    pub target_id: i64,
    pub target_user_id: i64,
    pub reason: String,
    pub status: String,
    pub resolved_by: Option<i64>,
    pub resolution_note: Option<String>,
    pub resolved_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub report_id: i64,
    pub reporter_id: i64,
    /// `post`, `message` or `user`.
    #[schema(value_type = crate::moderation::model::Target, inline)]
    pub target_type: String,
    pub target_id: i64,
    /// The author of the post or message, or the reported user.
    pub target_user_id: i64,
    pub reason: String,
    /// `open`, `dismissed`, `removed` or `banned`.
    #[schema(value_type = crate::moderation::model::ReportStatus, inline)]
    pub status: String,
    pub resolved_by: Option<i64>,
    pub resolution_note: Option<String>,
    pub resolved_at: Option<String>,
    pub created_at: String,
}

impl From<ReportRow> for ReportView {
    fn from(r: ReportRow) -> Self {
        ReportView {
            report_id: r.id,
            reporter_id: r.reporter_id,
            target_type: r.target_type,
            target_id: r.target_id,
            target_user_id: r.target_user_id,
            reason: r.reason,
            status: r.status,
            resolved_by: r.resolved_by,
            resolution_note: r.resolution_note,
            resolved_at: r.resolved_at_ms.map(rfc3339),
            created_at: rfc3339(r.created_at_ms),
        }
    }
}

/// The user behind a target the reporter can see; 404 for anything else.
fn target_user(c: &mut DbConn, reporter: i64, target: Target, id: i64) -> Result<i64, ApiError> {
    let gone = || ApiError::not_found(format!("no such {}", target.as_str()));
    // Someone who blocked the reporter is hidden from them (their profile
    // and posts are 404): a report must not confirm what the block hides.
    let hidden = |c: &mut DbConn, owner: i64| crate::chat::tx::is_blocked(c, owner, reporter);
    match target {
        Target::Post => {
            let author = crate::social::tx::post_author(c, id)?.ok_or_else(gone)?;
            if hidden(c, author)? {
                return Err(gone());
            }
            Ok(author)
        }
        // Only what the reporter could read: members of its conversation.
        Target::Message => crate::chat::tx::message_seen_by(c, id, reporter)?
            .map(|(_, sender)| sender)
            .ok_or_else(gone),
        Target::User => {
            if !crate::accounts::tx::user_exists(c, id)? || hidden(c, id)? {
                return Err(gone());
            }
            Ok(id)
        }
    }
}

pub struct FileReport {
    pub reporter: i64,
    pub target: Target,
    pub target_id: i64,
    pub reason: String,
}

impl Message for FileReport {
    type Result = Result<ReportView, ApiError>;
}

impl Handler<FileReport> for DbExecutor {
    type Result = Result<ReportView, ApiError>;
    fn handle(&mut self, msg: FileReport, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let id = self.ids.next_id();
        let now = now_ms();
        crate::storage::transaction(&mut conn, |c| -> Result<ReportView, ApiError> {
            let target_user_id = target_user(c, msg.reporter, msg.target, msg.target_id)?;
            if target_user_id == msg.reporter {
                return Err(ApiError::invalid_input("you cannot report yourself"));
            }
            let open: Option<i64> = reports::table
                .filter(reports::target_type.eq(msg.target.as_str()))
                .filter(reports::target_id.eq(msg.target_id))
                .filter(reports::reporter_id.eq(msg.reporter))
                .filter(reports::status.eq(ReportStatus::Open.as_str()))
                .select(reports::id)
                .first(c)
                .optional()?;
            if open.is_some() {
                return Err(ApiError::conflict(
                    crate::core::error::ErrorKind::AlreadyReported,
                    "you have an open report on this already",
                ));
            }
            diesel::insert_into(reports::table)
                .values((
                    reports::id.eq(id),
                    reports::reporter_id.eq(msg.reporter),
                    reports::target_type.eq(msg.target.as_str()),
                    reports::target_id.eq(msg.target_id),
                    reports::target_user_id.eq(target_user_id),
                    reports::reason.eq(&msg.reason),
                    reports::status.eq(ReportStatus::Open.as_str()),
                    reports::created_at_ms.eq(now),
                ))
                .execute(c)?;
            Ok(ReportRow {
                id,
                reporter_id: msg.reporter,
                target_type: msg.target.as_str().into(),
                target_id: msg.target_id,
                target_user_id,
                reason: msg.reason.clone(),
                status: ReportStatus::Open.as_str().into(),
                resolved_by: None,
                resolution_note: None,
                resolved_at_ms: None,
                created_at_ms: now,
            }
            .into())
        })
    }
}

pub struct ListReports {
    pub admin: crate::core::ids::UserId,
    pub status: String,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for ListReports {
    type Result = Result<Page<ReportView>, ApiError>;
}

impl Handler<ListReports> for DbExecutor {
    type Result = Result<Page<ReportView>, ApiError>;
    fn handle(&mut self, msg: ListReports, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let mut q = reports::table
            .filter(reports::status.eq(msg.status.clone()))
            .into_boxed();
        if let Some(a) = msg.after_id {
            q = q.filter(reports::id.gt(a));
        }
        let mut rows: Vec<ReportRow> = q
            .order(reports::id.asc())
            .limit(msg.limit + 1)
            .select(ReportRow::as_select())
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}

fn open_report(c: &mut DbConn, id: i64) -> Result<ReportRow, ApiError> {
    let r: ReportRow = reports::table
        .find(id)
        .select(ReportRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such report"))?;
    if r.status != ReportStatus::Open.as_str() {
        return Err(ApiError::conflict(
            crate::core::error::ErrorKind::InvalidState,
            format!("the report is already {}", r.status),
        ));
    }
    Ok(r)
}

/// Closes a report (and every other open report on the same target) and, for
/// `remove_content`, removes the post (with its likes and comments) or blanks
/// the message (its `seq` stays: history must not get a gap). The author is
/// told through a notification. Returns the report and, for a removed message,
/// its conversation (whose in-memory ring the caller drops).
pub struct ResolveReport {
    pub admin: crate::core::ids::UserId,
    pub report_id: i64,
    pub action: Action,
    pub note: Option<String>,
    /// Runs after the commit when a chat message was removed (with its
    /// conversation): chat's caches must not serve the old body. Run by the
    /// executor, not the request, so a dropped request cannot skip it.
    pub message_removed: Box<dyn Fn(i64) + Send>,
}

impl Message for ResolveReport {
    type Result = Result<(ReportView, Option<i64>), ApiError>;
}

impl Handler<ResolveReport> for DbExecutor {
    type Result = Result<(ReportView, Option<i64>), ApiError>;
    fn handle(&mut self, msg: ResolveReport, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let ids = &self.ids;
        let now = now_ms();
        let result = crate::storage::transaction(
            &mut conn,
            |c| -> Result<(ReportView, Option<i64>), ApiError> {
                let r = open_report(c, msg.report_id)?;
                let target = Target::parse(&r.target_type)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad report target")))?;
                let mut changed_conversation = None;
                if msg.action == Action::RemoveContent {
                    match target {
                        Target::User => {
                            return Err(ApiError::invalid_input(
                                "a user report has no content to remove: dismiss or ban_user",
                            ))
                        }
                        Target::Post => crate::social::tx::remove_post(c, r.target_id)?,
                        Target::Message => {
                            changed_conversation = crate::chat::tx::blank_message(c, r.target_id)?;
                        }
                    }
                    let data = serde_json::json!({"target_type": r.target_type, "target_id": r.target_id,
                        "report_id": r.id});
                    outbox::enqueue(
                        c,
                        ids,
                        "user.content_removed",
                        &serde_json::json!({"report_id": r.id, "notify": [
                            {"user_id": r.target_user_id, "kind": "moderation.content_removed", "data": data}]}),
                    )?;
                }
                let status = msg.action.status().as_str();
                diesel::update(
                    reports::table
                        .filter(reports::target_type.eq(&r.target_type))
                        .filter(reports::target_id.eq(r.target_id))
                        .filter(reports::status.eq(ReportStatus::Open.as_str())),
                )
                .set((
                    reports::status.eq(status),
                    reports::resolved_by.eq(Some(msg.admin.get())),
                    reports::resolution_note.eq(msg.note.clone()),
                    reports::resolved_at_ms.eq(Some(now)),
                ))
                .execute(c)?;
                Ok((
                    ReportRow {
                        status: status.into(),
                        resolved_by: Some(msg.admin.get()),
                        resolution_note: msg.note.clone(),
                        resolved_at_ms: Some(now),
                        ..r
                    }
                    .into(),
                    changed_conversation,
                ))
            },
        )?;
        if let Some(conv) = result.1 {
            (msg.message_removed)(conv);
        }
        Ok(result)
    }
}

/// Puts a report back in the queue (its ban could not be applied).
pub struct ReopenReport {
    pub report_id: i64,
    pub status: ReportStatus,
}

impl Message for ReopenReport {
    type Result = Result<(), ApiError>;
}

impl Handler<ReopenReport> for DbExecutor {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: ReopenReport, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| {
            diesel::update(
                reports::table
                    .find(msg.report_id)
                    .filter(reports::status.eq(msg.status.as_str())),
            )
            .set((
                reports::status.eq(ReportStatus::Open.as_str()),
                reports::resolved_by.eq(None::<i64>),
                reports::resolution_note.eq(None::<String>),
                reports::resolved_at_ms.eq(None::<i64>),
            ))
            .execute(c)
        })?;
        Ok(())
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    pub users: i64,
    /// Users with at least one open WebSocket on this node.
    pub online_users: i64,
    /// Orders created since 00:00 UTC.
    pub orders_today: i64,
    /// Total of orders paid since 00:00 UTC and not refunded.
    pub gmv_today_cents: i64,
    /// Rebates recorded but not yet settled, over every wallet.
    pub rebates_pending_cents: i64,
    pub open_reports: i64,
    /// The last `STATS_DAYS` days (UTC), oldest first, today last.
    pub daily: Vec<DayStats>,
    pub generated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Orders created that day.
    pub orders: i64,
    /// Total of orders paid that day and not refunded since.
    pub gmv_cents: i64,
}

/// How many days the statistics chart.
pub const STATS_DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;

fn daily(conn: &mut crate::storage::DbConn, today_ms: i64) -> Result<Vec<DayStats>, ApiError> {
    (0..STATS_DAYS)
        .rev()
        .map(|back| {
            let from = today_ms - back * DAY_MS;
            let (orders, gmv_cents) = crate::commerce::tx::day_figures(conn, from, from + DAY_MS)?;
            let date = rfc3339(from).chars().take(10).collect();
            Ok(DayStats {
                date,
                orders,
                gmv_cents,
            })
        })
        .collect()
}

/// The database part of the admin stats (the caller adds `online_users`).
pub struct Stats {
    pub admin: crate::core::ids::UserId,
}

impl Message for Stats {
    type Result = Result<StatsView, ApiError>;
}

impl Handler<Stats> for DbExecutor {
    type Result = Result<StatsView, ApiError>;
    fn handle(&mut self, msg: Stats, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin, Role::Admin)?;
        let now = now_ms();
        let today = day_start_ms(now);
        let users = crate::accounts::tx::count_users(&mut conn)?;
        let orders_today = crate::commerce::tx::count_orders_since(&mut conn, today)?;
        let gmv_today_cents = paid_gmv(&mut conn, None, today)?;
        let rebates_pending_cents = crate::rebates::tx::total_pending_cents(&mut conn)?;
        let open_reports: i64 = reports::table
            .filter(reports::status.eq(ReportStatus::Open.as_str()))
            .select(count_star())
            .first(&mut conn)?;
        Ok(StatsView {
            users,
            online_users: 0,
            orders_today,
            gmv_today_cents,
            rebates_pending_cents,
            open_reports,
            daily: daily(&mut conn, today)?,
            generated_at: rfc3339(now),
        })
    }
}
