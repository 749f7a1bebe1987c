//! Chat's entry kinds and the pure rules of who may change what in a
//! conversation. The writer gathers the facts inside its transaction and
//! asks these functions; nothing here touches the database.

crate::text_enum! {
    /// What an entry of a conversation's `seq` stream is.
    pub enum EntryKind {
        Text = "text",
        Image = "image",
        /// `target_seq`'s new text (the target shows it, with `edited_at`).
        Edit = "edit",
        /// `target_seq` deleted for everyone (the target shows `deleted`).
        Delete = "delete",
        /// `data`: `{"user_ids":[...]}`.
        MemberAdded = "member_added",
        /// `data`: `{"user_id":N}` (the sender is the owner, or the member who left).
        MemberRemoved = "member_removed",
        /// `data`: `{"title":"..."}`.
        Renamed = "renamed",
        /// `data`: `{"owner_id":N}`.
        OwnerChanged = "owner_changed",
        /// `data`: `{"history_visibility":"full"|"since_join"}`.
        HistoryChanged = "history_changed",
        /// `data`: `{"user_id":N,"admin":true|false}`.
        AdminChanged = "admin_changed",
    }
}

crate::text_enum! {
    /// What a member added to a group later may read of its history.
    pub enum HistoryVisibility {
        /// Everything since the group began.
        Full = "full",
        /// From the entry that added them on.
        SinceJoin = "since_join",
    }
}

/// How long after sending its author may edit a text message.
pub const EDIT_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A refusal as the socket and HTTP report it: (code, message).
pub type Refusal = (&'static str, &'static str);

const NOT_MEMBER: Refusal = ("not_member", "not a member of this conversation");

/// A change asked of a conversation; each becomes one or more entries.
#[derive(Debug, Clone)]
pub enum Change {
    Text {
        body: String,
    },
    /// A picture the sender uploaded, with an optional caption.
    Image {
        media_id: i64,
        body: String,
    },
    Edit {
        target_seq: i64,
        body: String,
    },
    Delete {
        target_seq: i64,
    },
    AddMembers {
        user_ids: Vec<i64>,
    },
    /// By the owner, or by the member itself (leaving).
    RemoveMember {
        user_id: i64,
    },
    Update {
        title: Option<String>,
        owner_id: Option<i64>,
        history: Option<HistoryVisibility>,
    },
    /// The owner makes a member an admin of the group, or not.
    SetAdmin {
        user_id: i64,
        admin: bool,
    },
}

/// The message an edit or delete names, as stored.
#[derive(Debug, Clone)]
pub struct Target {
    pub sender_id: i64,
    pub kind: String,
    pub sent_at_ms: i64,
    pub deleted: bool,
}

/// A conversation as the rules need it.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub kind: &'a str,
    pub owner_id: Option<i64>,
    /// Sorted ascending.
    pub members: &'a [i64],
    /// Members who manage it with the owner; sorted ascending.
    pub admins: &'a [i64],
}

impl Group<'_> {
    fn has(&self, user: i64) -> bool {
        self.members.binary_search(&user).is_ok()
    }

    /// Only groups made over HTTP change hands; a trip's chat follows its
    /// trip, a direct conversation is its two people.
    fn managed(&self) -> Result<(), Refusal> {
        if self.kind == "group" {
            Ok(())
        } else {
            Err((
                "invalid_state",
                "only group conversations are managed this way",
            ))
        }
    }

    fn owned_by(&self, actor: i64) -> Result<(), Refusal> {
        if self.owner_id == Some(actor) {
            Ok(())
        } else {
            Err(("forbidden", "only the group's owner may do this"))
        }
    }

    fn is_admin(&self, user: i64) -> bool {
        self.admins.binary_search(&user).is_ok()
    }

    /// The owner or an admin.
    fn managed_by(&self, actor: i64) -> Result<(), Refusal> {
        if self.owner_id == Some(actor) || self.is_admin(actor) {
            Ok(())
        } else {
            Err((
                "forbidden",
                "only the group's owner or its admins may do this",
            ))
        }
    }
}

/// May `actor` edit `target` at `now_ms`? Their own text message, within
/// [`EDIT_WINDOW_MS`], not deleted.
pub fn decide_edit(actor: i64, target: Option<&Target>, now_ms: i64) -> Result<(), Refusal> {
    let t = target.ok_or(("not_found", "no message with that seq"))?;
    if t.sender_id != actor {
        return Err(("forbidden", "only its author may edit a message"));
    }
    if t.kind != EntryKind::Text.as_str() {
        return Err(("invalid_state", "only text messages can be edited"));
    }
    if t.deleted {
        return Err(("invalid_state", "the message was deleted"));
    }
    if now_ms - t.sent_at_ms > EDIT_WINDOW_MS {
        return Err((
            "invalid_state",
            "a message can be edited for 15 minutes after it was sent",
        ));
    }
    Ok(())
}

/// May `actor` (an admin when `is_admin`) delete `target`? Their own text or
/// image message at any time; an admin any such message; once.
pub fn decide_delete(actor: i64, is_admin: bool, target: Option<&Target>) -> Result<(), Refusal> {
    let t = target.ok_or(("not_found", "no message with that seq"))?;
    if t.kind != EntryKind::Text.as_str() && t.kind != EntryKind::Image.as_str() {
        return Err(("invalid_state", "only messages can be deleted"));
    }
    if t.sender_id != actor && !is_admin {
        return Err(("forbidden", "only its author may delete a message"));
    }
    if t.deleted {
        return Err(("invalid_state", "the message was already deleted"));
    }
    Ok(())
}

/// Who of `wanted` joins the group (the owner adds; members already in are
/// skipped); at most `max_members` in all.
pub fn decide_add(
    actor: i64,
    group: Group<'_>,
    wanted: &[i64],
    max_members: usize,
) -> Result<Vec<i64>, Refusal> {
    if !group.has(actor) {
        return Err(NOT_MEMBER);
    }
    group.managed()?;
    group.managed_by(actor)?;
    let mut new: Vec<i64> = wanted.iter().copied().filter(|u| !group.has(*u)).collect();
    new.sort_unstable();
    new.dedup();
    if group.members.len() + new.len() > max_members {
        return Err(("invalid_input", "a group has at most 1,000 members"));
    }
    Ok(new)
}

/// May `actor` remove `user`? The owner removes anyone else, an admin
/// members who are neither owner nor admin; anyone may leave.
/// Returns the new owner when the owner leaves (the member with the lowest
/// id among those who stay; `None` when nobody stays or ownership stays).
pub fn decide_remove(actor: i64, group: Group<'_>, user: i64) -> Result<Option<i64>, Refusal> {
    if !group.has(actor) {
        return Err(NOT_MEMBER);
    }
    group.managed()?;
    if actor != user {
        group.managed_by(actor)?;
        let above = group.owner_id == Some(user) || group.is_admin(user);
        if group.owner_id != Some(actor) && above {
            return Err(("forbidden", "only the owner removes the owner's admins"));
        }
    }
    if !group.has(user) {
        return Err(("not_found", "that user is not a member"));
    }
    if group.owner_id == Some(user) {
        return Ok(group.members.iter().copied().find(|m| *m != user));
    }
    Ok(None)
}

/// May `actor` change the group's settings? Admins rename it; only the
/// owner hands it on (`new_owner`) or changes what later members read
/// (`owner_only`).
pub fn decide_update(
    actor: i64,
    group: Group<'_>,
    new_owner: Option<i64>,
    owner_only: bool,
) -> Result<(), Refusal> {
    if !group.has(actor) {
        return Err(NOT_MEMBER);
    }
    group.managed()?;
    if owner_only || new_owner.is_some() {
        group.owned_by(actor)?;
    } else {
        group.managed_by(actor)?;
    }
    if new_owner.is_some_and(|o| !group.has(o)) {
        return Err(("invalid_input", "owner_id must name a member of the group"));
    }
    Ok(())
}

/// May `actor` make `user` an admin (or not)? The owner, of a member who is
/// not the owner.
pub fn decide_set_admin(actor: i64, group: Group<'_>, user: i64) -> Result<(), Refusal> {
    if !group.has(actor) {
        return Err(NOT_MEMBER);
    }
    group.managed()?;
    group.owned_by(actor)?;
    if !group.has(user) {
        return Err(("not_found", "that user is not a member"));
    }
    if group.owner_id == Some(user) {
        return Err(("invalid_input", "the owner manages the group already"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sender: i64, at: i64) -> Target {
        Target {
            sender_id: sender,
            kind: "text".into(),
            sent_at_ms: at,
            deleted: false,
        }
    }

    #[test]
    fn edits_are_the_authors_within_the_window() {
        assert!(decide_edit(1, Some(&text(1, 0)), EDIT_WINDOW_MS).is_ok());
        assert_eq!(
            decide_edit(1, Some(&text(1, 0)), EDIT_WINDOW_MS + 1)
                .unwrap_err()
                .0,
            "invalid_state"
        );
        assert_eq!(
            decide_edit(2, Some(&text(1, 0)), 1).unwrap_err().0,
            "forbidden"
        );
        assert_eq!(decide_edit(1, None, 1).unwrap_err().0, "not_found");
        let mut gone = text(1, 0);
        gone.deleted = true;
        assert_eq!(
            decide_edit(1, Some(&gone), 1).unwrap_err().0,
            "invalid_state"
        );
        let mut sys = text(1, 0);
        sys.kind = "member_added".into();
        assert_eq!(
            decide_edit(1, Some(&sys), 1).unwrap_err().0,
            "invalid_state"
        );
    }

    #[test]
    fn deletes_are_the_authors_or_an_admins_once() {
        assert!(decide_delete(1, false, Some(&text(1, 0))).is_ok());
        assert_eq!(
            decide_delete(2, false, Some(&text(1, 0))).unwrap_err().0,
            "forbidden"
        );
        assert!(decide_delete(2, true, Some(&text(1, 0))).is_ok());
        let mut gone = text(1, 0);
        gone.deleted = true;
        assert_eq!(
            decide_delete(1, false, Some(&gone)).unwrap_err().0,
            "invalid_state"
        );
    }

    #[test]
    fn only_the_owner_manages_and_anyone_may_leave() {
        let members = [1, 2, 3];
        let g = Group {
            kind: "group",
            owner_id: Some(1),
            members: &members,
            admins: &[],
        };
        assert_eq!(decide_add(1, g, &[3, 4, 4, 5], 1_000).unwrap(), vec![4, 5]);
        assert_eq!(decide_add(2, g, &[4], 1_000).unwrap_err().0, "forbidden");
        assert_eq!(decide_add(9, g, &[4], 1_000).unwrap_err().0, "not_member");
        assert_eq!(decide_add(1, g, &[4, 5], 4).unwrap_err().0, "invalid_input");
        assert_eq!(decide_remove(1, g, 2).unwrap(), None);
        assert_eq!(decide_remove(2, g, 3).unwrap_err().0, "forbidden");
        assert_eq!(decide_remove(3, g, 3).unwrap(), None);
        // The owner leaving hands the group to the lowest remaining id.
        assert_eq!(decide_remove(1, g, 1).unwrap(), Some(2));
        assert_eq!(decide_remove(1, g, 7).unwrap_err().0, "not_found");
        assert!(decide_update(1, g, Some(3), false).is_ok());
        assert_eq!(
            decide_update(1, g, Some(8), false).unwrap_err().0,
            "invalid_input"
        );
        assert_eq!(decide_update(2, g, None, false).unwrap_err().0, "forbidden");
        let trip = Group {
            kind: "trip",
            owner_id: None,
            members: &members,
            admins: &[],
        };
        assert_eq!(
            decide_add(1, trip, &[4], 1_000).unwrap_err().0,
            "invalid_state"
        );
        assert_eq!(decide_remove(2, trip, 2).unwrap_err().0, "invalid_state");
    }

    #[test]
    fn admins_manage_members_but_not_the_owner_or_each_other() {
        let members = [1, 2, 3, 4];
        let g = Group {
            kind: "group",
            owner_id: Some(1),
            members: &members,
            admins: &[2, 3],
        };
        assert_eq!(decide_add(2, g, &[5], 1_000).unwrap(), vec![5]);
        assert_eq!(decide_remove(2, g, 4).unwrap(), None);
        assert_eq!(decide_remove(2, g, 1).unwrap_err().0, "forbidden");
        assert_eq!(decide_remove(2, g, 3).unwrap_err().0, "forbidden");
        assert_eq!(decide_remove(1, g, 3).unwrap(), None);
        assert!(decide_update(2, g, None, false).is_ok());
        assert_eq!(decide_update(2, g, None, true).unwrap_err().0, "forbidden");
        assert_eq!(
            decide_update(2, g, Some(4), false).unwrap_err().0,
            "forbidden"
        );
        assert!(decide_set_admin(1, g, 4).is_ok());
        assert_eq!(decide_set_admin(2, g, 4).unwrap_err().0, "forbidden");
        assert_eq!(decide_set_admin(1, g, 1).unwrap_err().0, "invalid_input");
        assert_eq!(decide_set_admin(1, g, 9).unwrap_err().0, "not_found");
        assert_eq!(decide_add(4, g, &[5], 1_000).unwrap_err().0, "forbidden");
    }
}
