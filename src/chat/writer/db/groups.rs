//! The writer's group changes: members in and out, settings, admins.

use std::sync::Arc;

use serde_json::json;

use super::{made, ConvState, Made, Pass, PendingMessage};
use crate::chat::model::{self, EntryKind, HistoryVisibility, Refusal};
use crate::chat::store::requests::MAX_GROUP_MEMBERS;
use crate::chat::store::{self, entries};
use crate::storage::{DbConn, QueryResult};

impl Pass<'_> {
    pub(super) fn add(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        mut st: ConvState,
        wanted: &[i64],
    ) -> QueryResult<Result<Made, Refusal>> {
        let new = match model::decide_add(m.sender_id, st.group(), wanted, MAX_GROUP_MEMBERS) {
            Ok(new) => new,
            Err(r) => return Ok(Err(r)),
        };
        if new.is_empty() {
            return Ok(Ok(made(Vec::new(), &st, false)));
        }
        if !crate::accounts::tx::all_exist(c, &new).unwrap_or(false) {
            return Ok(Err(("not_found", "a user_id names no user")));
        }
        // Nobody is put in a conversation with someone who blocked them or
        // whom they blocked.
        let pairs: Vec<(i64, i64)> = new
            .iter()
            .flat_map(|u| [(*u, m.sender_id), (m.sender_id, *u)])
            .collect();
        if !store::blocked_pairs(c, &pairs)?.is_empty() {
            return Ok(Err((
                "blocked",
                "a user_id names someone you blocked or who blocked you",
            )));
        }
        let data = json!({ "user_ids": new });
        let row = self.entry(
            c,
            m,
            0,
            EntryKind::MemberAdded,
            String::new(),
            None,
            Some(data),
        )?;
        let from = match HistoryVisibility::parse(&st.history) {
            Some(HistoryVisibility::SinceJoin) => row.seq,
            _ => 0,
        };
        entries::add_members(c, m.conversation_id, &new, row.seq, from, self.now)?;
        if from > 0 {
            st.late.extend(new.iter().map(|u| (*u, from)));
        }
        let mut members: Vec<i64> = st.members.iter().copied().chain(new).collect();
        members.sort_unstable();
        st.members = Arc::new(members);
        self.w.convs.insert(m.conversation_id, st.clone());
        // The new members get the entry that added them.
        Ok(Ok(made(vec![row], &st, true)))
    }

    pub(super) fn remove(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        mut st: ConvState,
        user: i64,
    ) -> QueryResult<Result<Made, Refusal>> {
        let heir = match model::decide_remove(m.sender_id, st.group(), user) {
            Ok(h) => h,
            Err(r) => return Ok(Err(r)),
        };
        // The one removed hears of it too: the entries go to the members before.
        let before = st.members.clone();
        let data = json!({ "user_id": user });
        let mut rows = vec![self.entry(
            c,
            m,
            0,
            EntryKind::MemberRemoved,
            String::new(),
            None,
            Some(data),
        )?];
        store::remove_member(c, m.conversation_id, user)?;
        if let Some(h) = heir {
            entries::update_group(c, m.conversation_id, None, Some(h), None)?;
            let data = json!({ "owner_id": h });
            rows.push(self.entry(
                c,
                m,
                1,
                EntryKind::OwnerChanged,
                String::new(),
                None,
                Some(data),
            )?);
            st.owner_id = Some(h);
        }
        st.members = Arc::new(st.members.iter().copied().filter(|u| *u != user).collect());
        st.late.retain(|(u, _)| *u != user);
        st.admins.retain(|a| *a != user);
        self.w.convs.insert(m.conversation_id, st);
        Ok(Ok(Made {
            entries: rows,
            deliver_to: before,
            group_changed: true,
        }))
    }

    pub(super) fn update(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        mut st: ConvState,
        title: Option<&str>,
        owner: Option<i64>,
        history: Option<HistoryVisibility>,
    ) -> QueryResult<Result<Made, Refusal>> {
        if let Err(r) = model::decide_update(m.sender_id, st.group(), owner, history.is_some()) {
            return Ok(Err(r));
        }
        let title = title.filter(|t| *t != st.title);
        let owner = owner.filter(|o| st.owner_id != Some(*o));
        let history = history.map(|h| h.as_str()).filter(|h| *h != st.history);
        let changes = [
            title.map(|t| (EntryKind::Renamed, json!({ "title": t }))),
            owner.map(|o| (EntryKind::OwnerChanged, json!({ "owner_id": o }))),
            history.map(|h| {
                (
                    EntryKind::HistoryChanged,
                    json!({ "history_visibility": h }),
                )
            }),
        ];
        let mut rows = Vec::new();
        for (kind, data) in changes.into_iter().flatten() {
            let part = rows.len();
            rows.push(self.entry(c, m, part, kind, String::new(), None, Some(data))?);
        }
        if rows.is_empty() {
            return Ok(Ok(made(rows, &st, false)));
        }
        entries::update_group(c, m.conversation_id, title, owner, history)?;
        if let Some(t) = title {
            t.clone_into(&mut st.title);
        }
        st.owner_id = owner.or(st.owner_id);
        if let Some(h) = history {
            h.clone_into(&mut st.history);
        }
        let out = made(rows, &st, true);
        self.w.convs.insert(m.conversation_id, st);
        Ok(Ok(out))
    }

    pub(super) fn set_admin(
        &mut self,
        c: &mut DbConn,
        m: &PendingMessage,
        mut st: ConvState,
        user: i64,
        admin: bool,
    ) -> QueryResult<Result<Made, Refusal>> {
        if let Err(r) = model::decide_set_admin(m.sender_id, st.group(), user) {
            return Ok(Err(r));
        }
        if st.admins.binary_search(&user).is_ok() == admin {
            return Ok(Ok(made(Vec::new(), &st, false)));
        }
        entries::set_admin(c, m.conversation_id, user, admin)?;
        let data = json!({ "user_id": user, "admin": admin });
        let kind = EntryKind::AdminChanged;
        let row = self.entry(c, m, 0, kind, String::new(), None, Some(data))?;
        if admin {
            st.admins.push(user);
            st.admins.sort_unstable();
        } else {
            st.admins.retain(|a| *a != user);
        }
        let out = made(vec![row], &st, true);
        self.w.convs.insert(m.conversation_id, st);
        Ok(Ok(out))
    }
}
