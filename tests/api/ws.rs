//! A small WebSocket client for tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

impl Ws {
    pub async fn connect(app: &TestApp, token: &str) -> Ws {
        let url = format!(
            "{}/api/v1/ws?token={token}",
            app.address.replacen("http://", "ws://", 1)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Ws { stream }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, text: String) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("ws send");
    }

    /// The next JSON frame within `secs`; panics on timeout or close.
    pub async fn recv_within(&mut self, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).expect("JSON frame")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        self.recv_within(10).await
    }

    /// The next frame of this type, skipping others (presence, typing, ...).
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// True if no text frame arrives within `ms`.
    pub async fn quiet_for(&mut self, ms: u64) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return false,
            }
        }
    }

    /// True if no text frame arrives within `ms` but frames of the `allowed`
    /// types (a peer's presence may come at any time).
    pub async fn quiet_except(&mut self, ms: u64, allowed: &[&str]) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if !allowed.iter().any(|a| v["type"] == *a) {
                        return false;
                    }
                }
                Ok(_) => return false,
            }
        }
    }

    /// Every text frame that arrives until none has for `ms`.
    pub async fn frames_until_quiet(&mut self, ms: u64) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
                Err(_) | Ok(None) => return frames,
                Ok(Some(Ok(Message::Text(t)))) => {
                    frames.push(serde_json::from_str(t.as_str()).unwrap_or_default());
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("socket failed: {e}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn ended_within(&mut self, secs: u64) -> Ended {
        match self.close_frame_within(secs).await {
            Some((code, _)) => Ended::Closed(code),
            None => Ended::Dropped,
        }
    }

    /// The close frame's code and reason within `secs` (None: dropped).
    pub async fn close_frame_within(&mut self, secs: u64) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("socket ended in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    pub fn from_stream(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        Ws { stream }
    }

    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }
}
