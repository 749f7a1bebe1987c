//! The parsers that take untrusted input, fed arbitrary input: WebSocket
//! client frames, paging cursors and limits, text fields, account fields
//! (rebate rules have their own property tests in `src/rebates/rules.rs`).
//! None may panic; what they accept must be what the
//! contract allows (a cursor decodes to what was encoded, a username
//! parsed is one the contract allows).

use proptest::prelude::*;
use serde_json::{json, Value};

use tandem::accounts::domain::{Password, Username};
use tandem::core::paging::{decode_cursor, encode_cursor, parse_limit};
use tandem::core::text::{text_problem, Lines};
use tandem::realtime::frames::ClientFrame;

/// JSON values of any shape, a few levels deep, with the frames' own
/// field names and types among the keys so that near-valid frames appear.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "send", "edit", "delete", "sync", "read", "typing", "ping"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "client_id",
            "conversation_id",
            "to_user_id",
            "body",
            "media_id",
            "seq",
            "after_seq",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn client_frames_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ClientFrame::parse(&text);
    }

    #[test]
    fn client_frames_never_panic_on_arbitrary_json(v in json_value()) {
        let parsed = ClientFrame::parse(&v.to_string());
        // A frame accepted is an object of a known type; anything else is refused.
        if parsed.is_ok() {
            prop_assert!(v.is_object(), "{v}");
            let ty = v["type"].as_str().unwrap_or_default();
            prop_assert!(["send", "edit", "delete", "sync", "read", "typing", "ping"].contains(&ty), "{v}");
        }
    }

    #[test]
    fn cursors_decode_what_was_encoded(parts in prop::collection::vec(any::<i64>(), 1..4)) {
        prop_assert_eq!(decode_cursor(&encode_cursor(&parts), parts.len()).unwrap(), parts.clone());
        prop_assert!(decode_cursor(&encode_cursor(&parts), parts.len() + 1).is_err());
    }

    #[test]
    fn cursors_and_limits_never_panic(token in ".{0,64}", hexish in "[0-9a-f]{0,80}", n in 0usize..5) {
        let _ = decode_cursor(&token, n);
        let _ = decode_cursor(&hexish, n);
        if let Ok(limit) = parse_limit(Some(&token)) {
            prop_assert!((1..=200).contains(&limit), "limit {limit} from {token:?}");
        }
    }

    #[test]
    fn text_checks_never_panic(value in "\\PC{0,64}|.{0,64}", max in 0usize..80, required in any::<bool>()) {
        for lines in [Lines::One, Lines::Many] {
            if text_problem(&value, max, lines, required).is_none() {
                prop_assert!(value.chars().count() <= max);
            }
        }
    }

    #[test]
    fn account_fields_accept_only_what_the_contract_allows(raw in ".{0,40}") {
        if let Ok(u) = serde_json::from_value::<Username>(json!(raw)) {
            let n = u.as_str().chars().count();
            prop_assert!((3..=32).contains(&n));
            prop_assert!(u.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
        let _ = serde_json::from_value::<Password>(json!(raw));
    }
}
