//! WebSocket frames, exactly as the contract names them.

use serde::{Deserialize, Serialize};

/// Client to server. Unknown types and unknown fields are rejected.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    Send(SendFrame),
    Sync(SyncFrame),
    Read(ReadFrame),
    Typing(TypingFrame),
    Ping(PingFrame),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SendFrame {
    pub client_id: String,
    pub conversation_id: Option<i64>,
    pub to_user_id: Option<i64>,
    pub body: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncFrame {
    pub conversation_id: i64,
    pub after_seq: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReadFrame {
    pub conversation_id: i64,
    pub seq: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TypingFrame {
    pub conversation_id: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PingFrame {}

/// A stored chat message as clients see it (HTTP history and `message` frames).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub conversation_id: i64,
    pub message_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub body: String,
    pub sent_at: String,
    pub client_id: String,
}

/// Server to client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Ack {
        client_id: &'a str,
        conversation_id: i64,
        message_id: i64,
        seq: i64,
    },
    Message(&'a MessageView),
    Synced {
        conversation_id: i64,
        last_seq: i64,
    },
    Read {
        conversation_id: i64,
        user_id: i64,
        seq: i64,
    },
    Typing {
        conversation_id: i64,
        user_id: i64,
    },
    Presence {
        user_id: i64,
        online: bool,
    },
    Post {
        post: &'a serde_json::Value,
    },
    Notification {
        notification_id: i64,
        kind: &'a str,
        data: &'a serde_json::Value,
    },
    Pong,
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
    },
}

impl ServerFrame<'_> {
    /// Serialized once, shared by every connection it goes to.
    pub fn encode(&self) -> std::sync::Arc<str> {
        serde_json::to_string(self)
            .unwrap_or_else(|_| {
                "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"encoding\"}".to_owned()
            })
            .into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_frames() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","client_id":"a","conversation_id":3,"body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(
            f,
            ClientFrame::Send(SendFrame {
                conversation_id: Some(3),
                ..
            })
        ));
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping(PingFrame {}));
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"sync","conversation_id":1,"after_seq":0}"#).unwrap();
        assert!(matches!(f, ClientFrame::Sync(_)));
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping","x":1}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(
            r#"{"type":"send","client_id":"a","conversation_id":3,"body":"hi","extra":true}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"client_id":"a"}"#).is_err());
    }

    #[test]
    fn encodes_contract_frames() {
        let ack = ServerFrame::Ack {
            client_id: "c",
            conversation_id: 1,
            message_id: 2,
            seq: 3,
        }
        .encode();
        assert_eq!(
            &*ack,
            r#"{"type":"ack","client_id":"c","conversation_id":1,"message_id":2,"seq":3}"#
        );
        let m = MessageView {
            conversation_id: 1,
            message_id: 2,
            seq: 3,
            sender_id: 4,
            body: "b".into(),
            sent_at: "t".into(),
            client_id: "c".into(),
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerFrame::Message(&m).encode()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 3);
        assert_eq!(&*ServerFrame::Pong.encode(), r#"{"type":"pong"}"#);
    }
}
