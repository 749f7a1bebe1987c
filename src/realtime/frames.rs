//! WebSocket frames, exactly as the contract names them.

use serde::{Deserialize, Serialize};

/// Client to server: one JSON object per text frame, told apart by `type`.
/// Unknown types and unknown fields are answered with an `error` frame.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    Send(SendFrame),
    Edit(EditFrame),
    Delete(DeleteFrame),
    Sync(SyncFrame),
    Read(ReadFrame),
    Typing(TypingFrame),
    Ping(PingFrame),
}

impl ClientFrame {
    /// Parses one text frame. A frame is a JSON object: serde alone would
    /// also take an array, its fields by position (`["ping"]`, found by
    /// the property tests in tests/api/parsers.rs).
    pub fn parse(text: &str) -> Result<ClientFrame, String> {
        if text.trim_start().as_bytes().first() != Some(&b'{') {
            return Err("a frame must be a JSON object".into());
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// A message to send: to `conversation_id`, or to `to_user_id` (the direct
/// conversation with that user, made on first use). Acked once stored;
/// `client_id` makes a resend return the first ack and store nothing.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFrame {
    #[schema(min_length = 1, max_length = 64)]
    pub client_id: String,
    pub conversation_id: Option<i64>,
    pub to_user_id: Option<i64>,
    /// 1 to 4,000 characters; no control characters but tab and line breaks.
    /// With `media_id`, a caption: may be empty or left out.
    #[schema(max_length = 4000)]
    #[serde(default)]
    pub body: String,
    /// A picture the sender uploaded: the message is of kind `image`, its
    /// `data` names the picture (`media_id`, `url`, `thumbnail_url`).
    #[schema(minimum = 1, maximum = 9007199254740991_i64)]
    pub media_id: Option<i64>,
}

/// New text for the sender's own text message at `seq`, within 15 minutes
/// of sending it. Acked with the `edit` entry's seq; members get that entry
/// as a `message` frame of kind `edit` (`target_seq`, the new `body`).
/// `client_id`, if given, makes a resend return the first ack.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditFrame {
    pub conversation_id: i64,
    #[schema(minimum = 1)]
    pub seq: i64,
    #[schema(min_length = 1, max_length = 4000)]
    pub body: String,
    #[schema(min_length = 1, max_length = 64)]
    pub client_id: Option<String>,
}

/// Deletes the message at `seq` for everyone (the sender's own, any time;
/// an admin's, any). Acked with the `delete` entry's seq; the message keeps
/// its seq with an empty body and `deleted: true`.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteFrame {
    pub conversation_id: i64,
    #[schema(minimum = 1)]
    pub seq: i64,
    #[schema(min_length = 1, max_length = 64)]
    pub client_id: Option<String>,
}

/// Every stored message with `seq > after_seq`, in order (at most 1,000),
/// then a `synced` frame.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncFrame {
    pub conversation_id: i64,
    #[schema(minimum = 0)]
    pub after_seq: i64,
}

/// Read up to `seq` (a read mark never moves back); the other members get a `read` frame.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFrame {
    pub conversation_id: i64,
    #[schema(minimum = 0)]
    pub seq: i64,
}

/// The other members get a `typing` frame (not stored).
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypingFrame {
    pub conversation_id: i64,
}

/// Answered with `pong`.
#[derive(Debug, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PingFrame {}

/// An entry of a conversation's `seq` stream as clients see it (HTTP
/// history, `sync` and `message` frames), in its latest state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub conversation_id: i64,
    pub message_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    /// Empty once deleted; an `edit` entry's new text.
    pub body: String,
    pub sent_at: String,
    pub client_id: String,
    /// `text`, `image`, `edit`, `delete`, `member_added`, `member_removed`,
    /// `renamed`, `owner_changed`, `history_changed`.
    #[schema(example = "text")]
    pub kind: String,
    /// The message an `edit` or `delete` entry changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<i64>,
    /// `member_added`: `{"user_ids"}`; `member_removed`: `{"user_id"}`;
    /// `renamed`: `{"title"}`; `owner_changed`: `{"owner_id"}`;
    /// `history_changed`: `{"history_visibility"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// When the text was last edited (null: never).
    pub edited_at: Option<String>,
    /// Deleted for everyone: the body is empty.
    pub deleted: bool,
}

/// Server to client: one JSON object per text frame, told apart by `type`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
        #[schema(value_type = Object)]
        post: &'a serde_json::Value,
    },
    Notification {
        notification_id: i64,
        kind: &'a str,
        #[schema(value_type = Object)]
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
        assert!(ClientFrame::parse(r#"["ping"]"#).is_err());
        assert!(ClientFrame::parse(r#"["sync", 1, 0]"#).is_err());
        assert_eq!(
            ClientFrame::parse(r#" {"type":"ping"}"#),
            Ok(ClientFrame::Ping(PingFrame {}))
        );
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
            kind: "text".into(),
            target_seq: None,
            data: None,
            edited_at: None,
            deleted: false,
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerFrame::Message(&m).encode()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 3);
        assert_eq!(&*ServerFrame::Pong.encode(), r#"{"type":"pong"}"#);
    }
}
