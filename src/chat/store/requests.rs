//! Chat reads and conversation management on the database executor.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use super::{self as store, ConversationRow};
use crate::accounts::tx as accounts;
use crate::chat::model::HistoryVisibility;
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::core::paging::Page;
use crate::realtime::frames::MessageView;
use crate::storage::schema::{conversation_members, conversations};
use crate::storage::DbExecutor;

/// Most messages one `sync` returns (the client syncs again from the last).
pub const SYNC_LIMIT: i64 = 1_000;
/// Most members a group conversation may have.
pub const MAX_GROUP_MEMBERS: usize = 1_000;

fn blocked_error() -> ApiError {
    ApiError::new(
        crate::core::error::ErrorKind::Blocked,
        "this user does not accept your messages",
    )
}

/// Finds or creates the direct conversation of two users.
pub struct EnsureDirect {
    pub user_id: i64,
    pub peer_id: i64,
}

impl Message for EnsureDirect {
    type Result = Result<i64, ApiError>;
}

impl Handler<EnsureDirect> for DbExecutor {
    type Result = Result<i64, ApiError>;

    fn handle(&mut self, msg: EnsureDirect, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        if accounts::find_user(&mut conn, msg.peer_id)?.is_none() {
            return Err(ApiError::not_found("no such user"));
        }
        if store::is_blocked(&mut conn, msg.peer_id, msg.user_id)? {
            return Err(blocked_error());
        }
        let key = store::direct_key(msg.user_id, msg.peer_id);
        if let Some(id) = store::find_direct(&mut conn, &key)? {
            return Ok(id);
        }
        let now = now_ms();
        let row = ConversationRow {
            id: self.ids.next_id(),
            kind: "direct".into(),
            title: String::new(),
            direct_key: Some(key.clone()),
            last_seq: 0,
            last_activity_ms: now,
            created_at_ms: now,
            owner_id: None,
            history_visibility: HistoryVisibility::Full.as_str().into(),
        };
        // Both users may open it at once: the loser's insert violates the unique
        // direct_key, its transaction is retried, and the retry finds the winner's.
        let members = [msg.user_id.min(msg.peer_id), msg.user_id.max(msg.peer_id)];
        let id =
            crate::storage::transaction(&mut conn, |c| -> Result<i64, diesel::result::Error> {
                if let Some(id) = store::find_direct(c, &key)? {
                    return Ok(id);
                }
                store::insert_conversation(c, &row, &members, now)?;
                Ok(row.id)
            })?;
        Ok(id)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub conversation_id: i64,
    #[schema(example = "group")]
    pub kind: String,
    pub title: String,
    pub member_ids: Vec<i64>,
    pub last_seq: i64,
    pub unread: i64,
    pub created_at: String,
    /// A group's owner (null for direct and trip conversations).
    pub owner_id: Option<i64>,
    /// What members added later may read: the whole history, or from the
    /// entry that added them.
    #[schema(value_type = HistoryVisibility, inline)]
    pub history_visibility: String,
    /// The caller muted it: clients raise no alert for it; unread counts go on.
    pub muted: bool,
    /// Members who manage a group with its owner (add, remove, rename).
    pub admin_ids: Vec<i64>,
}

impl ConversationView {
    fn of(
        c: ConversationRow,
        (member_ids, admin_ids): (Vec<i64>, Vec<i64>),
        (last_read_seq, muted): (i64, bool),
    ) -> ConversationView {
        ConversationView {
            conversation_id: c.id,
            member_ids,
            admin_ids,
            unread: (c.last_seq - last_read_seq).max(0),
            last_seq: c.last_seq,
            kind: c.kind,
            title: c.title,
            created_at: crate::core::ids::rfc3339(c.created_at_ms),
            owner_id: c.owner_id,
            history_visibility: c.history_visibility,
            muted,
        }
    }
}

pub struct CreateGroup {
    pub creator_id: i64,
    pub member_ids: Vec<i64>,
    pub title: String,
    pub kind: &'static str,
    pub history: HistoryVisibility,
}

impl Message for CreateGroup {
    type Result = Result<ConversationView, ApiError>;
}

impl Handler<CreateGroup> for DbExecutor {
    type Result = Result<ConversationView, ApiError>;

    fn handle(&mut self, msg: CreateGroup, _: &mut Self::Context) -> Self::Result {
        let mut members: Vec<i64> = msg.member_ids.clone();
        members.push(msg.creator_id);
        members.sort_unstable();
        members.dedup();
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(ApiError::invalid_input(format!(
                "a group has at most {MAX_GROUP_MEMBERS} members"
            )));
        }
        let mut conn = self.conn()?;
        let now = now_ms();
        let row = ConversationRow {
            id: self.ids.next_id(),
            kind: msg.kind.into(),
            title: msg.title,
            direct_key: None,
            last_seq: 0,
            last_activity_ms: now,
            created_at_ms: now,
            owner_id: Some(msg.creator_id),
            history_visibility: msg.history.as_str().into(),
        };
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            if !accounts::all_exist(c, &members)? {
                return Err(ApiError::not_found("a member_id names no user"));
            }
            // Nobody is put in a conversation with someone who blocked them
            // or whom they blocked.
            let pairs: Vec<(i64, i64)> = members
                .iter()
                .filter(|m| **m != msg.creator_id)
                .flat_map(|m| [(*m, msg.creator_id), (msg.creator_id, *m)])
                .collect();
            if !store::blocked_pairs(c, &pairs)?.is_empty() {
                return Err(ApiError::new(
                    crate::core::error::ErrorKind::Blocked,
                    "a member_id names someone you blocked or who blocked you",
                ));
            }
            store::insert_conversation(c, &row, &members, now)?;
            Ok(())
        })?;
        Ok(ConversationView::of(row, (members, Vec::new()), (0, false)))
    }
}

/// The caller's conversations, most recent activity first.
pub struct ListConversations {
    pub user_id: i64,
    pub limit: i64,
    /// (last_activity_ms, id) of the last item of the previous page.
    pub after: Option<(i64, i64)>,
}

impl Message for ListConversations {
    type Result = Result<Page<ConversationView>, ApiError>;
}

impl Handler<ListConversations> for DbExecutor {
    type Result = Result<Page<ConversationView>, ApiError>;

    fn handle(&mut self, msg: ListConversations, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = conversation_members::table
            .inner_join(conversations::table)
            .filter(conversation_members::user_id.eq(msg.user_id))
            .into_boxed();
        if let Some((at, id)) = msg.after {
            q = q.filter(
                conversations::last_activity_ms
                    .lt(at)
                    .or(conversations::last_activity_ms
                        .eq(at)
                        .and(conversations::id.lt(id))),
            );
        }
        let mut rows: Vec<(ConversationRow, (i64, bool))> = q
            .order((
                conversations::last_activity_ms.desc(),
                conversations::id.desc(),
            ))
            .limit(msg.limit + 1)
            .select((
                ConversationRow::as_select(),
                (
                    conversation_members::last_read_seq,
                    conversation_members::muted,
                ),
            ))
            .load(&mut conn)?;
        let ids: Vec<i64> = rows.iter().map(|(c, _)| c.id).collect();
        let pairs: Vec<(i64, i64, bool)> = conversation_members::table
            .filter(conversation_members::conversation_id.eq_any(&ids))
            .order((
                conversation_members::conversation_id,
                conversation_members::user_id,
            ))
            .select((
                conversation_members::conversation_id,
                conversation_members::user_id,
                conversation_members::is_admin,
            ))
            .load(&mut conn)?;
        let mut by_conv: std::collections::HashMap<i64, (Vec<i64>, Vec<i64>)> =
            std::collections::HashMap::new();
        for (c, u, admin) in pairs {
            let (members, admins) = by_conv.entry(c).or_default();
            members.push(u);
            if admin {
                admins.push(u);
            }
        }
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |(c, _)| {
            vec![c.last_activity_ms, c.id]
        });
        let items = rows
            .into_iter()
            .map(|(c, read)| {
                let members = by_conv.remove(&c.id).unwrap_or_default();
                ConversationView::of(c, members, read)
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}

/// One conversation as its member sees it; 404 for others.
pub struct LoadConversation {
    pub user_id: i64,
    pub conversation_id: i64,
}

impl Message for LoadConversation {
    type Result = Result<ConversationView, ApiError>;
}

impl Handler<LoadConversation> for DbExecutor {
    type Result = Result<ConversationView, ApiError>;

    fn handle(&mut self, msg: LoadConversation, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let conv = msg.conversation_id;
        let not_found = || ApiError::not_found("no such conversation");
        let me =
            store::entries::member_state(&mut conn, conv, msg.user_id)?.ok_or_else(not_found)?;
        let row = store::find_conversation(&mut conn, conv)?.ok_or_else(not_found)?;
        let members = store::members(&mut conn, conv)?;
        let admins = store::entries::admins(&mut conn, conv)?;
        Ok(ConversationView::of(
            row,
            (members, admins),
            (me.last_read_seq, me.muted),
        ))
    }
}

/// Mutes or unmutes a conversation for one member; 404 for others.
pub struct SetMuted {
    pub user_id: i64,
    pub conversation_id: i64,
    pub muted: bool,
}

impl Message for SetMuted {
    type Result = Result<(), ApiError>;
}

impl Handler<SetMuted> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: SetMuted, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let row = conversation_members::table.find((msg.conversation_id, msg.user_id));
        let n = diesel::update(row)
            .set(conversation_members::muted.eq(msg.muted))
            .execute(&mut conn)?;
        if n == 0 {
            return Err(ApiError::not_found("no such conversation"));
        }
        Ok(())
    }
}

/// What a member who reads from `from_seq` on may see of entries that
/// refer back: an edit of a message sent before it shows no text.
pub fn hide_earlier(items: &mut [MessageView], from_seq: i64) {
    for m in items.iter_mut() {
        if m.kind == "edit" && m.target_seq.is_some_and(|t| t < from_seq) {
            m.body.clear();
        }
    }
}

/// Messages after or before a seq, for members only.
pub struct LoadMessages {
    pub user_id: i64,
    pub conversation_id: i64,
    pub after_seq: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// The conversation's latest seq when read.
    pub last_seq: i64,
}

impl Message for LoadMessages {
    type Result = Result<MessagePage, ApiError>;
}

impl Handler<LoadMessages> for DbExecutor {
    type Result = Result<MessagePage, ApiError>;

    fn handle(&mut self, msg: LoadMessages, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let Some(me) = store::entries::member_state(&mut conn, msg.conversation_id, msg.user_id)?
        else {
            return Err(ApiError::not_found("no such conversation"));
        };
        let from = me.visible_from_seq;
        // Read last_seq first: every message up to it is committed, so the
        // page plus `last_seq` never promise a message the page skipped.
        let conv = store::find_conversation(&mut conn, msg.conversation_id)?
            .ok_or_else(|| ApiError::not_found("no such conversation"))?;
        let rows = match (msg.after_seq, msg.before_seq) {
            (_, Some(before)) => {
                store::messages_before(&mut conn, msg.conversation_id, before, from, msg.limit)?
            }
            // A member added to a `since_join` group reads from its entry on.
            (after, None) => store::messages_after(
                &mut conn,
                msg.conversation_id,
                after.unwrap_or(0).max(from - 1),
                msg.limit,
            )?,
        };
        let mut items: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
        hide_earlier(&mut items, from);
        Ok(MessagePage {
            items,
            last_seq: conv.last_seq,
        })
    }
}

/// Records a read receipt; returns the members (to tell) and the stored seq.
pub struct MarkRead {
    pub user_id: i64,
    pub conversation_id: i64,
    pub seq: i64,
}

impl Message for MarkRead {
    type Result = Result<(Vec<i64>, i64), ApiError>;
}

impl Handler<MarkRead> for DbExecutor {
    type Result = Result<(Vec<i64>, i64), ApiError>;

    fn handle(&mut self, msg: MarkRead, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let conv = msg.conversation_id;
        crate::storage::transaction(&mut conn, |c| -> Result<(Vec<i64>, i64), ApiError> {
            let current = store::membership(c, conv, msg.user_id)?
                .ok_or_else(|| ApiError::not_found("no such conversation"))?;
            let last = store::find_conversation(c, conv)?.map_or(0, |r| r.last_seq);
            // Never past the end, never backwards.
            let seq = msg.seq.min(last).max(current);
            if seq != current {
                diesel::update(conversation_members::table.find((conv, msg.user_id)))
                    .set(conversation_members::last_read_seq.eq(seq))
                    .execute(c)?;
            }
            Ok((store::members(c, conv)?, seq))
        })
    }
}

pub struct LoadMembers {
    pub conversation_id: i64,
}

/// (user, first visible seq) of every member.
impl Message for LoadMembers {
    type Result = Result<Vec<(i64, i64)>, ApiError>;
}

impl Handler<LoadMembers> for DbExecutor {
    type Result = Result<Vec<(i64, i64)>, ApiError>;

    fn handle(&mut self, msg: LoadMembers, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(store::entries::members_with_visibility(
            &mut conn,
            msg.conversation_id,
        )?)
    }
}

pub struct DirectPeers {
    pub user_id: i64,
}

impl Message for DirectPeers {
    type Result = Result<Vec<i64>, ApiError>;
}

impl Handler<DirectPeers> for DbExecutor {
    type Result = Result<Vec<i64>, ApiError>;

    fn handle(&mut self, msg: DirectPeers, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(store::direct_peers(&mut conn, msg.user_id)?)
    }
}
