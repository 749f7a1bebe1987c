//! One actor per WebSocket: parses frames, enforces size, rate and heartbeat,
//! and forwards work to the chat writers and the database executor. Chat's
//! socket protocol; realtime's sessions reach it only through the messages
//! of `realtime::socket`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Handler, Message, StreamHandler, WrapFuture,
};
use actix_web::web;
use actix_web_actors::ws;

use crate::chat::model::Change;
use crate::chat::store::requests::{EnsureDirect, LoadMessages, MarkRead, SYNC_LIMIT};
use crate::chat::writer::{ChatSend, ReplyTo};
use crate::chat::Chat;
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::realtime::frames::{
    ClientFrame, DeleteFrame, EditFrame, ReadFrame, SendFrame, ServerFrame, SyncFrame, TypingFrame,
};
use crate::realtime::registry::ConnShared;
use crate::realtime::session::Deliver;
use crate::realtime::socket::{Kick, Push, SocketAddr};
use crate::realtime::sync_hold::{SyncHold, SyncOutcome};

/// Largest frame a client may send, in bytes; larger closes with 1009.
pub const MAX_FRAME_BYTES: usize = 65_536;
pub const MAX_BODY_CHARS: usize = 4_000;
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Per-connection frame budget (when rate limits are on): burst and refill per second.
const FRAME_BURST: f64 = 60.0;
const FRAMES_PER_S: f64 = 30.0;

pub struct WsConn {
    state: web::Data<Chat>,
    shared: Arc<ConnShared>,
    /// Conversations being synced on this socket, with the live frames held back meanwhile.
    syncing: HashMap<i64, SyncHold>,
    tokens: f64,
    refilled_at: Instant,
    /// A fragmented message being assembled: (is text, bytes so far).
    fragments: Option<(bool, Vec<u8>)>,
}

impl WsConn {
    fn user_id(&self) -> i64 {
        self.shared.user_id
    }

    fn send_error(
        ctx: &mut ws::WebsocketContext<Self>,
        code: &str,
        message: &str,
        client_id: Option<&str>,
    ) {
        ctx.text(
            &*ServerFrame::Error {
                code,
                message,
                client_id,
            }
            .encode(),
        );
    }

    fn api_error(ctx: &mut ws::WebsocketContext<Self>, e: &ApiError, client_id: Option<&str>) {
        let code = match e.kind() {
            crate::core::error::ErrorKind::NotFound => "not_member",
            _ => e.code(),
        };
        Self::send_error(ctx, code, e.detail(), client_id);
    }

    /// True if the frame may be served under the per-connection budget.
    fn take_token(&mut self) -> bool {
        if !self.state.ctx.config.rate_limits_enabled() {
            return true;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * FRAMES_PER_S).min(FRAME_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => {
                return Self::send_error(ctx, "invalid_input", &format!("bad frame: {e}"), None)
            }
        };
        if !self.take_token() {
            let client_id = match &frame {
                ClientFrame::Send(s) => Some(s.client_id.as_str()),
                ClientFrame::Edit(e) => e.client_id.as_deref(),
                ClientFrame::Delete(d) => d.client_id.as_deref(),
                _ => None,
            };
            return Self::send_error(ctx, "rate_limited", "too many frames; slow down", client_id);
        }
        match frame {
            ClientFrame::Send(f) => self.on_send(f, ctx),
            ClientFrame::Edit(f) => self.on_edit(f, ctx),
            ClientFrame::Delete(f) => self.on_delete(f, ctx),
            ClientFrame::Sync(f) => self.on_sync(f, ctx),
            ClientFrame::Read(f) => self.on_read(f, ctx),
            ClientFrame::Typing(f) => self.on_typing(f, ctx),
            ClientFrame::Ping(_) => ctx.text(&*ServerFrame::Pong.encode()),
        }
    }

    fn on_send(&mut self, f: SendFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let cid = f.client_id.clone();
        let n = f.client_id.chars().count();
        if n == 0 || n > MAX_CLIENT_ID_CHARS {
            return Self::send_error(
                ctx,
                "invalid_input",
                "client_id must be 1-64 characters",
                Some(&cid),
            );
        }
        let captioned_picture = f.media_id.is_some() && f.body.is_empty();
        if !captioned_picture {
            if let Err(why) = crate::core::text::check_message_text(&f.body, MAX_BODY_CHARS) {
                return Self::send_error(ctx, "invalid_input", &why, Some(&cid));
            }
        }
        if f.media_id.is_some_and(|m| m <= 0) {
            return Self::send_error(
                ctx,
                "invalid_input",
                "media_id must be positive",
                Some(&cid),
            );
        }
        let me = self.user_id();
        match (f.conversation_id, f.to_user_id) {
            (Some(conv), None) if conv > 0 => self.forward_send(conv, f, ctx),
            (None, Some(peer)) if peer > 0 && peer != me => {
                let key = (me.min(peer), me.max(peer));
                if let Some(conv) = self.state.caches.direct.get(&key).map(|c| *c) {
                    return self.forward_send(conv, f, ctx);
                }
                let db = self.state.db.clone();
                // `wait`, not `spawn`: no further frame of this socket is handled
                // until the conversation is known, so one socket's sends keep their
                // order (and so their seq order) even on a first message.
                ctx.wait(
                    async move {
                        db.call(EnsureDirect {
                            user_id: me,
                            peer_id: peer,
                        })
                        .await
                    }
                    .into_actor(self)
                    .map(move |res, this, ctx| match res {
                        Ok(conv) => {
                            this.state.caches.direct.insert(key, conv);
                            this.state.registry.add_peers(me, peer);
                            this.forward_send(conv, f, ctx);
                        }
                        // Unknown peer: `not_found`; blocked: `blocked` (codes as they are, not `not_member`).
                        Err(e) => Self::send_error(ctx, e.code(), e.detail(), Some(&cid)),
                    }),
                );
            }
            _ => Self::send_error(
                ctx,
                "invalid_input",
                "give exactly one of conversation_id or to_user_id (another user)",
                Some(&cid),
            ),
        }
    }

    fn forward_send(
        &mut self,
        conversation_id: i64,
        f: SendFrame,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let change = match f.media_id {
            Some(media_id) => Change::Image {
                media_id,
                body: f.body,
            },
            None => Change::Text { body: f.body },
        };
        self.forward(conversation_id, f.client_id, change, ctx);
    }

    /// A change of a conversation from this socket: to its writer, which
    /// answers this socket with the ack or an error frame.
    fn forward(
        &mut self,
        conversation_id: i64,
        client_id: String,
        change: Change,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let req = ChatSend {
            sender_id: self.user_id(),
            reply: ReplyTo::Socket {
                conn: ctx.address(),
                conn_id: self.shared.id,
            },
            conversation_id,
            client_id,
            change,
        };
        if let Err(rejected) = self.state.writers.submit(req) {
            Self::send_error(
                ctx,
                "unavailable",
                "the server is busy; resend later",
                Some(&rejected.client_id),
            );
        }
    }

    /// The frame's `client_id`, checked, or a fresh one (an edit or a
    /// deletion need not be resent; if it is, the same id dedupes it).
    fn change_client_id(
        &self,
        given: Option<String>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Option<String> {
        match given {
            Some(c) if (1..=MAX_CLIENT_ID_CHARS).contains(&c.chars().count()) => Some(c),
            Some(c) => {
                Self::send_error(
                    ctx,
                    "invalid_input",
                    "client_id must be 1-64 characters",
                    Some(&c),
                );
                None
            }
            None => Some(format!("~{}", self.state.ctx.ids.next_id())),
        }
    }

    fn on_edit(&mut self, f: EditFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(cid) = self.change_client_id(f.client_id, ctx) else {
            return;
        };
        if f.conversation_id <= 0 || f.seq <= 0 {
            let why = "conversation_id and seq must be positive";
            return Self::send_error(ctx, "invalid_input", why, Some(&cid));
        }
        if let Err(why) = crate::core::text::check_message_text(&f.body, MAX_BODY_CHARS) {
            return Self::send_error(ctx, "invalid_input", &why, Some(&cid));
        }
        let change = Change::Edit {
            target_seq: f.seq,
            body: f.body,
        };
        self.forward(f.conversation_id, cid, change, ctx);
    }

    fn on_delete(&mut self, f: DeleteFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(cid) = self.change_client_id(f.client_id, ctx) else {
            return;
        };
        if f.conversation_id <= 0 || f.seq <= 0 {
            let why = "conversation_id and seq must be positive";
            return Self::send_error(ctx, "invalid_input", why, Some(&cid));
        }
        let change = Change::Delete { target_seq: f.seq };
        self.forward(f.conversation_id, cid, change, ctx);
    }

    fn on_sync(&mut self, f: SyncFrame, ctx: &mut ws::WebsocketContext<Self>) {
        if f.conversation_id <= 0 || f.after_seq < 0 {
            return Self::send_error(
                ctx,
                "invalid_input",
                "conversation_id must be positive, after_seq >= 0",
                None,
            );
        }
        let conv = f.conversation_id;
        // Hold live frames of this conversation until every sync of it has answered.
        self.syncing.entry(conv).or_default().begin();
        let state = self.state.clone();
        let user_id = self.user_id();
        let after_seq = f.after_seq;
        let load = async move {
            // From memory when the ring covers the range (members only); else the database.
            if let Ok(members) = state.members_of(conv).await {
                // Only where one process writes every conversation (SQLite): with several
                // nodes on PostgreSQL, another node's messages would be missing here.
                let single_node = matches!(
                    state.ctx.config.database_url,
                    crate::core::config::DatabaseUrl::Sqlite(_)
                );
                if let (true, Some(from)) = (single_node, members.visible_from(user_id)) {
                    let limit = usize::try_from(SYNC_LIMIT).unwrap_or(1_000);
                    // A member added to a `since_join` group reads from its entry on.
                    let after = after_seq.max(from - 1);
                    if let Some((mut items, last_seq)) =
                        state.caches.recent.after(conv, after, limit)
                    {
                        crate::chat::store::requests::hide_earlier(&mut items, from);
                        return Ok(crate::chat::store::requests::MessagePage { items, last_seq });
                    }
                }
            }
            let msg = LoadMessages {
                user_id,
                conversation_id: conv,
                after_seq: Some(after_seq),
                before_seq: None,
                limit: SYNC_LIMIT,
            };
            state.db.call(msg).await
        };
        ctx.spawn(load.into_actor(self).map(move |res, this, ctx| {
            let outcome = match res {
                Ok(page) => {
                    let mut last_sent = f.after_seq;
                    for m in &page.items {
                        ctx.text(&*ServerFrame::Message(m).encode());
                        last_sent = m.seq;
                    }
                    ctx.text(
                        &*ServerFrame::Synced {
                            conversation_id: conv,
                            last_seq: page.last_seq,
                        }
                        .encode(),
                    );
                    // The page stopped at the limit: the client syncs again from
                    // `last_sent`, and gets the held messages then, in order.
                    if last_sent < page.last_seq {
                        SyncOutcome::Truncated
                    } else {
                        SyncOutcome::Complete { up_to: last_sent }
                    }
                }
                Err(e) => {
                    Self::api_error(ctx, &e, None);
                    SyncOutcome::Failed
                }
            };
            // Release what arrived meanwhile, minus what the syncs already
            // sent, once the last outstanding sync of this conversation is done.
            let release = this.syncing.get_mut(&conv).and_then(|h| h.finish(outcome));
            if let Some(frames) = release {
                this.syncing.remove(&conv);
                for frame in frames {
                    ctx.text(&*frame);
                }
            }
        }));
    }

    fn on_read(&mut self, f: ReadFrame, ctx: &mut ws::WebsocketContext<Self>) {
        if f.conversation_id <= 0 || f.seq < 0 {
            return Self::send_error(
                ctx,
                "invalid_input",
                "conversation_id must be positive, seq >= 0",
                None,
            );
        }
        let db = self.state.db.clone();
        let me = self.user_id();
        let msg = MarkRead {
            user_id: me,
            conversation_id: f.conversation_id,
            seq: f.seq,
        };
        ctx.spawn(
            async move { db.call(msg).await }.into_actor(self).map(
                move |res, this, ctx| match res {
                    Ok((members, seq)) => {
                        let frame = ServerFrame::Read {
                            conversation_id: f.conversation_id,
                            user_id: me,
                            seq,
                        }
                        .encode();
                        for m in members.iter().filter(|m| **m != me) {
                            this.state
                                .registry
                                .deliver(*m, Deliver::plain(frame.clone()));
                        }
                    }
                    Err(e) => Self::api_error(ctx, &e, None),
                },
            ),
        );
    }

    fn on_typing(&mut self, f: TypingFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let me = self.user_id();
        let conv = f.conversation_id;
        let state = self.state.clone();
        ctx.spawn(
            async move { state.members_of(conv).await }
                .into_actor(self)
                .map(move |res, this, ctx| match res {
                    Ok(members) if members.contains(me) => {
                        let frame = ServerFrame::Typing {
                            conversation_id: conv,
                            user_id: me,
                        }
                        .encode();
                        for m in members.ids().iter().filter(|m| **m != me) {
                            this.state
                                .registry
                                .deliver(*m, Deliver::plain(frame.clone()));
                        }
                    }
                    Ok(_) => Self::send_error(
                        ctx,
                        "not_member",
                        "not a member of this conversation",
                        None,
                    ),
                    Err(e) => Self::api_error(ctx, &e, None),
                }),
        );
    }

    /// Assembles a fragmented message; the whole message obeys the 64 KiB limit.
    fn on_fragment(&mut self, item: actix_http::ws::Item, ctx: &mut ws::WebsocketContext<Self>) {
        use actix_http::ws::Item;
        let (start, text, chunk, last) = match item {
            Item::FirstText(b) => (true, true, b, false),
            Item::FirstBinary(b) => (true, false, b, false),
            Item::Continue(b) => (false, false, b, false),
            Item::Last(b) => (false, false, b, true),
        };
        if start {
            self.fragments = Some((text, Vec::with_capacity(chunk.len())));
        }
        let Some((is_text, buf)) = self.fragments.as_mut() else {
            return Self::send_error(
                ctx,
                "invalid_input",
                "continuation without a first fragment",
                None,
            );
        };
        if buf.len() + chunk.len() > MAX_FRAME_BYTES {
            self.fragments = None;
            return Self::close(ctx, ws::CloseCode::Size, "message larger than 65536 bytes");
        }
        buf.extend_from_slice(&chunk);
        if last {
            let is_text = *is_text;
            let bytes = self.fragments.take().map(|(_, b)| b).unwrap_or_default();
            match (is_text, String::from_utf8(bytes)) {
                (true, Ok(text)) => self.on_text(&text, ctx),
                _ => Self::send_error(ctx, "invalid_input", "send JSON text frames", None),
            }
        }
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }
}

impl WsConn {
    /// A socket of `shared`'s user, not yet started.
    pub(crate) fn new(state: web::Data<Chat>, shared: Arc<ConnShared>) -> WsConn {
        WsConn {
            state,
            shared,
            syncing: HashMap::new(),
            tokens: FRAME_BURST,
            refilled_at: Instant::now(),
            fragments: None,
        }
    }
}

impl Actor for WsConn {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state
            .registry
            .attach(SocketAddr::of(&ctx.address()), self.shared.clone());
        let idle_ms = self.state.registry.limits.idle_timeout_ms;
        // Ping at a third of the idle timeout: 15 s for the default 45 s.
        let ping_every =
            Duration::from_millis(u64::try_from(idle_ms / 3).unwrap_or(15_000).max(100));
        ctx.run_interval(ping_every, move |this, ctx| {
            if now_ms() - this.shared.last_seen_ms.load(Ordering::Acquire) > idle_ms {
                Self::close(ctx, ws::CloseCode::Away, "idle timeout");
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.state
            .registry
            .detach(self.shared.user_id, self.shared.id);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConn {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        // Any frame from the client counts as alive.
        self.shared.last_seen_ms.store(now_ms(), Ordering::Release);
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) => {
                Self::send_error(ctx, "invalid_input", "send JSON text frames", None)
            }
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Close(_)) => Self::close(ctx, ws::CloseCode::Normal, "bye"),
            Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => {
                Self::close(ctx, ws::CloseCode::Size, "frame larger than 65536 bytes")
            }
            Err(e) => Self::close(ctx, ws::CloseCode::Protocol, &e.to_string()),
        }
    }
}

impl Handler<Push> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        let bytes: usize = msg.frames.iter().map(|f| f.frame.len()).sum();
        self.shared
            .pending_frames
            .fetch_sub(msg.frames.len(), Ordering::AcqRel);
        self.shared.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
        for f in msg.frames {
            if let (Some(conv), Some(seq)) = (f.conversation_id, f.seq) {
                if let Some(hold) = self.syncing.get_mut(&conv) {
                    if hold.hold(seq, f.frame).is_err() {
                        return Self::close(
                            ctx,
                            ws::CloseCode::Again,
                            "too far behind; reconnect and sync",
                        );
                    }
                    continue;
                }
            }
            ctx.text(&*f.frame);
        }
    }
}

/// A frame straight to this socket (acks and errors to the sender).
pub struct Reply(pub Arc<str>);

impl Message for Reply {
    type Result = ();
}

impl Handler<Reply> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: Reply, ctx: &mut Self::Context) {
        ctx.text(&*msg.0);
    }
}

impl Handler<Kick> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: Kick, ctx: &mut Self::Context) {
        Self::close(ctx, ws::CloseCode::from(msg.code), msg.reason);
    }
}
