//! `Chat`: what routes, the socket and other domains use of chat. It owns
//! chat's rebuildable caches (members per conversation, recent messages,
//! direct conversations) and its writers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::recent::Recent;
use super::store::requests::LoadMembers;
use super::writer::ChatWriters;
use crate::core::error::ApiError;
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::storage::Db;

/// The notice that a conversation's members changed (see `Registry::notice`).
pub(crate) const MEMBERS_NOTICE: &str = "chat.members";

/// Most entries the member cache keeps before it is cleared.
pub const MEMBER_CACHE_MAX: usize = 100_000;

/// A conversation's members (by user id) with the first seq each may read.
pub struct Members {
    ids: Vec<i64>,
    from: Vec<i64>,
}

impl Members {
    /// From (user, first visible seq) pairs.
    pub fn new(mut pairs: Vec<(i64, i64)>) -> Members {
        pairs.sort_unstable();
        let (ids, from) = pairs.into_iter().unzip();
        Members { ids, from }
    }

    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    pub fn contains(&self, user: i64) -> bool {
        self.ids.binary_search(&user).is_ok()
    }

    /// The first seq `user` may read (0: all), if a member.
    pub fn visible_from(&self, user: i64) -> Option<i64> {
        let at = self.ids.binary_search(&user).ok()?;
        self.from.get(at).copied()
    }
}

/// Chat's caches: rebuildable from the database at any time.
#[derive(Default)]
pub struct ChatCaches {
    /// Members per conversation.
    members: DashMap<i64, Arc<Members>>,
    /// Bumped on every membership change (trips), before the cache entry is
    /// dropped: a load that began earlier must not put an old list back.
    members_epoch: AtomicU64,
    /// Recent messages of active conversations.
    pub recent: Recent,
    /// (low user id, high user id) -> direct conversation id.
    pub direct: DashMap<(i64, i64), i64>,
}

#[derive(Clone)]
pub struct Chat {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub writers: ChatWriters,
    pub caches: Arc<ChatCaches>,
    pub registry: Arc<Registry>,
}

impl Chat {
    /// Members of a conversation, from the cache or the database.
    pub async fn members_of(&self, conversation_id: i64) -> Result<Arc<Members>, ApiError> {
        let caches = &self.caches;
        if let Some(m) = caches.members.get(&conversation_id) {
            return Ok(m.clone());
        }
        let epoch = caches.members_epoch.load(Ordering::Acquire);
        let members = self.db.call(LoadMembers { conversation_id }).await?;
        let members = Arc::new(Members::new(members));
        if members.ids.is_empty() {
            return Err(ApiError::not_found("no such conversation"));
        }
        if caches.members.len() >= MEMBER_CACHE_MAX {
            caches.members.clear();
        }
        // A membership change since the load began may have been read or not:
        // answer with what was read, but do not cache it.
        if caches.members_epoch.load(Ordering::Acquire) == epoch {
            caches.members.insert(conversation_id, members.clone());
            // Changed between the check and the insert: drop it again.
            if caches.members_epoch.load(Ordering::Acquire) != epoch {
                caches.members.remove(&conversation_id);
            }
        }
        Ok(members)
    }

    /// A conversation was just created with these members (committed).
    pub fn conversation_created(&self, conversation_id: i64, members: &[i64]) {
        let all = members.iter().map(|m| (*m, 0)).collect();
        self.caches
            .members
            .insert(conversation_id, Arc::new(Members::new(all)));
    }

    /// A conversation's members changed (committed): every cache of them, on
    /// every node, forgets the old list. Called where the change completes,
    /// not by the request handler, so a dropped request cannot skip it.
    pub fn membership_changed(&self, conversation_id: i64) {
        self.registry.notice(MEMBERS_NOTICE, conversation_id);
    }

    /// Follows membership notices of every node (once, at start).
    pub fn follow_notices(&self) {
        let chat = self.clone();
        self.registry.on_notice(
            MEMBERS_NOTICE,
            Arc::new(move |conversation_id| chat.forget_members(conversation_id)),
        );
    }

    fn forget_members(&self, conversation_id: i64) {
        self.caches.members_epoch.fetch_add(1, Ordering::AcqRel);
        self.caches.members.remove(&conversation_id);
        self.writers.forget_members(conversation_id);
    }

    /// A message's body changed or went away (committed): the recent ring
    /// must not serve the old one.
    pub fn message_changed(&self, conversation_id: i64) {
        self.caches.recent.forget(conversation_id);
    }
}

/// Chat tells realtime whom a user's presence concerns: the peers of their
/// direct conversations.
pub struct DirectPeersSource {
    pub db: Db,
}

#[async_trait::async_trait]
impl crate::realtime::registry::PresencePeers for DirectPeersSource {
    async fn peers_of(&self, user_id: i64) -> Result<Vec<i64>, ApiError> {
        self.db
            .call(super::store::requests::DirectPeers { user_id })
            .await
    }
}
