//! The one schema both backends share. Only portable types: BigInt, Integer,
//! Text, Bool. Times are BigInt milliseconds (UTC).

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        username_lower -> Text,
        display_name -> Text,
        bio -> Text,
        password_hash -> Text,
        roles -> Text,
        invite_code -> Text,
        inviter_id -> Nullable<BigInt>,
        banned -> Bool,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        created_at_ms -> BigInt,
        expires_at_ms -> BigInt,
        revoked -> Bool,
    }
}

diesel::table! {
    idempotency_keys (user_id, scope, idem_key) {
        user_id -> BigInt,
        scope -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status_code -> Integer,
        response_body -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(settings, users, sessions, idempotency_keys);
