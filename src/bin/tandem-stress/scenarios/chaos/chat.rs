//! Chat under faults: a sender and a receiver that reconnect as a real
//! client does. The sender resends an unacknowledged message with the same
//! `client_id`; the receiver applies each `seq` once, in order, and syncs
//! from the last one it applied after a reconnect or a gap.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::retry::Backoff;
use crate::ws::{next_json, ws, Ws};

/// Waiting for one frame (an ack, a delivery, `synced`) before the socket
/// counts as broken and the step is tried again.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting one socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One sender, one receiver and their direct conversation.
pub(super) struct ChatPair {
    base: String,
    sender: (i64, String),
    receiver: (i64, String),
    a: Option<Ws>,
    b: Option<Ws>,
    pub(super) conversation_id: i64,
    /// The receiver's last applied seq.
    last_applied: i64,
    next_client_id: u64,
    /// (client_id, seq) of every acknowledged message, in ack order.
    pub(super) acked: Vec<(String, i64)>,
    /// client_id by seq, as the receiver applied them (index = seq - 1).
    pub(super) applied: Vec<String>,
    /// Frames the receiver saw again (live and by sync) and dropped.
    pub(super) redelivered: u64,
    /// Acks of one client_id that named another seq than its first ack.
    pub(super) conflicting_acks: u64,
}

impl ChatPair {
    pub(super) fn new(base: &str, sender: (i64, String), receiver: (i64, String)) -> Self {
        ChatPair {
            base: base.to_owned(),
            sender,
            receiver,
            a: None,
            b: None,
            conversation_id: 0,
            last_applied: 0,
            next_client_id: 0,
            acked: Vec::new(),
            applied: Vec::new(),
            redelivered: 0,
            conflicting_acks: 0,
        }
    }

    /// The sender's token (a member's, to read the history).
    pub(super) fn sender_token(&self) -> &str {
        &self.sender.1
    }

    /// Sends one message and waits until it is acked and the receiver
    /// applied it, retrying through faults with the same client_id.
    pub(super) async fn send_one(&mut self) -> Result<(), String> {
        let client_id = format!("k{}", self.next_client_id);
        self.next_client_id += 1;
        let mut first_ack: Option<i64> = None;
        let mut backoff = Backoff::new();
        loop {
            match self.attempt(&client_id, &mut first_ack).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Whatever broke, both sockets start afresh: after a
                    // kill neither is alive, and a half-read frame is lost.
                    self.a = None;
                    self.b = None;
                    if !backoff.wait().await {
                        return Err(format!("message {client_id}: {e}"));
                    }
                }
            }
        }
    }

    async fn attempt(
        &mut self,
        client_id: &str,
        first_ack: &mut Option<i64>,
    ) -> Result<(), String> {
        self.connect().await?;
        let frame = if self.conversation_id == 0 {
            json!({"type": "send", "client_id": client_id, "to_user_id": self.receiver.0, "body": "chaos"})
        } else {
            json!({"type": "send", "client_id": client_id, "conversation_id": self.conversation_id, "body": "chaos"})
        };
        let a = self.a.as_mut().ok_or("no sender socket")?;
        a.send(Message::text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let (conversation, seq) = wait_ack(a, client_id).await?;
        match *first_ack {
            None => {
                *first_ack = Some(seq);
                self.conversation_id = conversation;
                self.acked.push((client_id.to_owned(), seq));
            }
            Some(s) if s != seq => self.conflicting_acks += 1,
            Some(_) => {}
        }
        if self.b.is_none() {
            // The conversation was just created: the receiver catches up.
            self.connect_receiver().await?;
        }
        while self.last_applied < seq {
            let b = self.b.as_mut().ok_or("no receiver socket")?;
            let v = frame_within(b).await?;
            self.receive(&v).await?;
        }
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), String> {
        if self.a.is_none() {
            self.a = Some(connect(&self.base, &self.sender.1).await?);
        }
        if self.b.is_none() && self.conversation_id != 0 {
            self.connect_receiver().await?;
        }
        Ok(())
    }

    /// A new receiver socket, synced from the last applied seq.
    async fn connect_receiver(&mut self) -> Result<(), String> {
        self.b = Some(connect(&self.base, &self.receiver.1).await?);
        self.sync().await
    }

    /// Asks for everything after the last applied seq and applies it up to `synced`.
    async fn sync(&mut self) -> Result<(), String> {
        let frame = json!({"type": "sync", "conversation_id": self.conversation_id, "after_seq": self.last_applied});
        let b = self.b.as_mut().ok_or("no receiver socket")?;
        b.send(Message::text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let b = self.b.as_mut().ok_or("no receiver socket")?;
            let v = frame_within(b).await?;
            if v["type"] == "synced" && v["conversation_id"] == self.conversation_id {
                let last = v["last_seq"].as_i64().unwrap_or(0);
                if last > self.last_applied {
                    // More than one page behind: the next page.
                    return Box::pin(self.sync()).await;
                }
                return Ok(());
            }
            self.apply(&v);
        }
    }

    /// A frame on the receiver socket: applied in order; a gap means frames
    /// were missed, and a sync fetches them.
    async fn receive(&mut self, v: &Value) -> Result<(), String> {
        if v["type"] != "message" || v["conversation_id"] != self.conversation_id {
            return Ok(());
        }
        let seq = v["seq"].as_i64().unwrap_or(0);
        if seq > self.last_applied + 1 {
            return self.sync().await;
        }
        self.apply(v);
        Ok(())
    }

    fn apply(&mut self, v: &Value) {
        if v["type"] != "message" || v["conversation_id"] != self.conversation_id {
            return;
        }
        let seq = v["seq"].as_i64().unwrap_or(0);
        if seq <= self.last_applied {
            self.redelivered += 1;
            return;
        }
        if seq == self.last_applied + 1 {
            self.last_applied = seq;
            self.applied
                .push(v["client_id"].as_str().unwrap_or_default().to_owned());
        }
    }
}

async fn connect(base: &str, token: &str) -> Result<Ws, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, ws(base, token)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("connecting: {e}")),
        Err(_) => Err("connecting: timed out".into()),
    }
}

async fn frame_within(s: &mut Ws) -> Result<Value, String> {
    tokio::time::timeout(FRAME_TIMEOUT, next_json(s))
        .await
        .map_err(|_| "timed out waiting for a frame".to_owned())?
}

/// Reads the sender socket up to the ack of `client_id`: (conversation, seq).
async fn wait_ack(a: &mut Ws, client_id: &str) -> Result<(i64, i64), String> {
    loop {
        let v = frame_within(a).await?;
        if v["type"] == "ack" && v["client_id"] == client_id {
            return Ok((
                v["conversation_id"].as_i64().unwrap_or(0),
                v["seq"].as_i64().unwrap_or(0),
            ));
        }
        if v["type"] == "error" && v["client_id"] == client_id {
            return Err(format!("send refused: {v}"));
        }
    }
}
