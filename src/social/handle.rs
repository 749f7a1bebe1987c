//! `Social`: what routes use of follows, blocks, posts, the feed and
//! notifications.

use std::sync::Arc;

use actix::Addr;

use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Social {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    /// Sockets, for live feed pushes and presence.
    pub registry: Arc<Registry>,
    /// What later domains add to a member's profile.
    pub profile_hook: Arc<dyn super::hooks::ProfileHook>,
}

/// The notice that a member's notification preferences changed.
const MUTES_NOTICE: &str = "social.notification_mutes";

impl Social {
    /// Loads the notification kinds every member turned off into the
    /// registry (which leaves their frames unpushed) and follows changes
    /// made on other nodes. Once, at start.
    pub fn follow_mutes(&self) {
        let social = self.clone();
        self.registry.on_notice(
            MUTES_NOTICE,
            Arc::new(move |user| {
                let social = social.clone();
                tokio::spawn(async move { social.reload_mutes(Some(user)).await });
            }),
        );
        let social = self.clone();
        tokio::spawn(async move {
            // Until loaded, every kind is pushed: retried until it is.
            let mut wait = std::time::Duration::from_millis(500);
            while !social.reload_mutes(None).await {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        });
    }

    /// A member's preferences changed (committed): every node rereads them.
    pub fn mutes_changed(&self, user: i64, off: Vec<String>) {
        self.registry.set_quiet_kinds(user, off);
        self.registry.notice_others(MUTES_NOTICE, user);
    }

    /// Whether they were loaded.
    async fn reload_mutes(&self, user: Option<i64>) -> bool {
        let rows = match self.db.call(super::store::prefs::LoadMutes { user }).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "notification preferences not loaded; every kind is pushed");
                return false;
            }
        };
        let mut by_user: std::collections::HashMap<i64, Vec<String>> =
            std::collections::HashMap::new();
        if let Some(u) = user {
            by_user.insert(u, Vec::new());
        }
        for (u, kind) in rows {
            by_user.entry(u).or_default().push(kind);
        }
        for (u, kinds) in by_user {
            self.registry.set_quiet_kinds(u, kinds);
        }
        true
    }
}
