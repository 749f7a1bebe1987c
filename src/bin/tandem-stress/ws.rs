//! WebSocket helpers: connecting, reading JSON frames, and the direct-chat
//! sender/receiver pairs shared by `chat-direct` and `mixed`.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::REQUEST_TIMEOUT;

/// A sender socket, a receiver socket, their direct conversation, the last seq
/// the receiver saw, and whether everything so far arrived once and in order.
pub(crate) type Pair = (Ws, Ws, i64, i64, bool);

/// One message sent, acked to the sender and delivered to the receiver.
pub(crate) async fn chat_roundtrip(pair: &mut Pair, cid: &str) -> Result<(), String> {
    let (sa, sb, conv, last_seq, in_order) = pair;
    sa.send(Message::text(json!({"type": "send", "client_id": cid, "conversation_id": *conv, "body": "stress message"}).to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        if !delivered {
            let f = next_seen(sb, cid).await?;
            if f.kind == Kind::Message {
                let seq = f.seq.unwrap_or(0);
                if seq != *last_seq + 1 || !f.ours {
                    *in_order = false;
                }
                *last_seq = seq;
                delivered = true;
            }
            continue;
        }
        let f = next_seen(sa, cid).await?;
        match f.kind {
            Kind::Ack if f.ours => acked = true,
            Kind::Error => return Err(format!("send refused: {}", f.text)),
            _ => {}
        }
    }
    Ok(())
}

#[derive(PartialEq)]
enum Kind {
    Message,
    Ack,
    Error,
    Other,
}

/// What the pairs' checks read of a frame: its type, seq, and whether its
/// `client_id` is the one sent.
struct Seen {
    kind: Kind,
    seq: Option<i64>,
    ours: bool,
    /// The frame itself, kept for an error's message only.
    text: String,
}

/// The fields of a server frame the chat checks read, borrowed from its
/// text: a full `Value` per frame made the harness (hundreds of sockets in
/// `chat-group`) a large CPU user on the machine it shares with the server.
#[derive(serde::Deserialize)]
pub(crate) struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub(crate) seq: Option<i64>,
    #[serde(default, borrow)]
    pub(crate) client_id: Option<std::borrow::Cow<'a, str>>,
}

async fn next_seen(s: &mut Ws, cid: &str) -> Result<Seen, String> {
    let t = next_text(s).await?;
    let f: Fields = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
    let kind = match f.kind.as_ref() {
        "message" => Kind::Message,
        "ack" => Kind::Ack,
        "error" => Kind::Error,
        _ => Kind::Other,
    };
    Ok(Seen {
        ours: f.client_id.as_deref() == Some(cid),
        seq: f.seq,
        text: if kind == Kind::Error {
            t.as_str().to_owned()
        } else {
            String::new()
        },
        kind,
    })
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn ws(base: &str, token: &str) -> anyhow::Result<Ws> {
    let url = format!(
        "{}/api/v1/ws?token={token}",
        base.replacen("http://", "ws://", 1)
    );
    Ok(
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await?
            .0,
    )
}

/// Client sockets read small frames: tungstenite's default 128 KiB read buffer
/// is zero-filled on every read, which made `memset` a quarter of the machine's
/// CPU in `chat-group` (496 receiving sockets) and starved the server.
pub(crate) fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

pub(crate) async fn next_json(s: &mut Ws) -> Result<Value, String> {
    let t = next_text(s).await?;
    serde_json::from_str(t.as_str()).map_err(|e| e.to_string())
}

/// The next text frame (bounded by [`REQUEST_TIMEOUT`]).
async fn next_text(s: &mut Ws) -> Result<tokio_tungstenite::tungstenite::Utf8Bytes, String> {
    loop {
        match tokio::time::timeout(REQUEST_TIMEOUT, s.next()).await {
            Err(_) => return Err("timed out waiting for a frame".into()),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t),
            Ok(Some(Ok(Message::Close(f)))) => return Err(format!("closed: {f:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("socket ended".into()),
        }
    }
}

/// One sender/receiver pair per two users, their direct conversation opened
/// outside the measurement.
pub(crate) async fn open_pairs(
    api: &Api,
    users: &[(i64, String)],
) -> anyhow::Result<Vec<tokio::sync::Mutex<Pair>>> {
    // Every socket first. On a cluster, a pair's two ends are on different
    // nodes, and a node learns where a new socket is a few ms after it
    // opened: a frame sent before that would not be pushed there live.
    let mut sockets = Vec::with_capacity(users.len() / 2);
    for (i, p) in users.chunks_exact(2).enumerate() {
        let sa = ws(api.base_for(i), &p[0].1).await?;
        let sb = ws(api.base_for(i + 1), &p[1].1).await?;
        sockets.push((sa, sb));
    }
    if api.bases.len() > 1 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut pairs = Vec::with_capacity(users.len() / 2);
    for ((mut sa, mut sb), p) in sockets.into_iter().zip(users.chunks_exact(2)) {
        let b = &p[1];
        sa.send(Message::text(
            json!({"type": "send", "client_id": "open", "to_user_id": b.0, "body": "hi"})
                .to_string(),
        ))
        .await?;
        let conv = loop {
            let v = next_json(&mut sa).await.map_err(anyhow::Error::msg)?;
            if v["type"] == "ack" {
                break v["conversation_id"].as_i64().unwrap_or(0);
            }
        };
        let opened = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let v = next_json(&mut sb).await.map_err(anyhow::Error::msg)?;
                if v["type"] == "message" {
                    break anyhow::Ok(());
                }
            }
        });
        opened
            .await
            .context("a pair's first message did not arrive within 10 s")??;
        pairs.push(tokio::sync::Mutex::new((sa, sb, conv, 1_i64, true)));
    }
    Ok(pairs)
}

/// Every pair saw its messages once and in seq order, and nothing more arrives.
pub(crate) async fn pairs_consistent(pairs: &[tokio::sync::Mutex<Pair>]) -> bool {
    let mut ok = true;
    for p in pairs {
        let mut g = p.lock().await;
        ok &= g.4;
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), g.1.next()).await
        {
            if t.as_str().contains("\"message\"") {
                ok = false;
            }
        }
    }
    ok
}
