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
        display_name_lower -> Text,
        avatar_media_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    media (id) {
        id -> BigInt,
        owner_id -> BigInt,
        content_type -> Text,
        width -> BigInt,
        height -> BigInt,
        byte_size -> BigInt,
        etag -> Text,
        thumb_etag -> Text,
        attached_at_ms -> Nullable<BigInt>,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    media_blobs (blob_key) {
        blob_key -> Text,
        bytes -> Binary,
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

diesel::table! {
    conversations (id) {
        id -> BigInt,
        kind -> Text,
        title -> Text,
        direct_key -> Nullable<Text>,
        last_seq -> BigInt,
        last_activity_ms -> BigInt,
        created_at_ms -> BigInt,
        owner_id -> Nullable<BigInt>,
        history_visibility -> Text,
    }
}

diesel::table! {
    conversation_members (conversation_id, user_id) {
        conversation_id -> BigInt,
        user_id -> BigInt,
        last_read_seq -> BigInt,
        joined_at_ms -> BigInt,
        visible_from_seq -> BigInt,
        muted -> Bool,
        is_admin -> Bool,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        seq -> BigInt,
        sender_id -> BigInt,
        body -> Text,
        client_id -> Text,
        sent_at_ms -> BigInt,
        kind -> Text,
        target_seq -> Nullable<BigInt>,
        data -> Nullable<Text>,
        edited_at_ms -> Nullable<BigInt>,
        deleted_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    notification_mutes (user_id, kind) {
        user_id -> BigInt,
        kind -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    blocks (blocker_id, blocked_id) {
        blocker_id -> BigInt,
        blocked_id -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    follows (follower_id, followee_id) {
        follower_id -> BigInt,
        followee_id -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    posts (id) {
        id -> BigInt,
        author_id -> BigInt,
        body -> Text,
        like_count -> BigInt,
        comment_count -> BigInt,
        created_at_ms -> BigInt,
        edited_at_ms -> Nullable<BigInt>,
        media_ids -> Nullable<Text>,
    }
}

diesel::table! {
    post_likes (post_id, user_id) {
        post_id -> BigInt,
        user_id -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    post_comments (id) {
        id -> BigInt,
        post_id -> BigInt,
        author_id -> BigInt,
        body -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        data -> Text,
        event_id -> Nullable<BigInt>,
        read -> Bool,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        payload -> Text,
        created_at_ms -> BigInt,
        published_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    dead_letters (consumer, event_id) {
        consumer -> Text,
        event_id -> BigInt,
        kind -> Text,
        payload -> Text,
        occurred_at_ms -> BigInt,
        error -> Text,
        attempts -> BigInt,
        parked_at_ms -> BigInt,
        next_attempt_at_ms -> BigInt,
    }
}

diesel::table! {
    processed_events (consumer, event_id) {
        consumer -> Text,
        event_id -> BigInt,
        processed_at_ms -> BigInt,
    }
}

diesel::joinable!(conversation_members -> conversations (conversation_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(posts -> users (author_id));

diesel::table! {
    merchants (id) {
        id -> BigInt,
        owner_id -> BigInt,
        name -> Text,
        status -> Text,
        rating_sum -> BigInt,
        review_count -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        merchant_id -> BigInt,
        name -> Text,
        category -> Text,
        price_cents -> BigInt,
        stock -> BigInt,
        active -> Bool,
        created_at_ms -> BigInt,
        stock_version -> BigInt,
        image_media_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    orders (id) {
        id -> BigInt,
        buyer_id -> BigInt,
        merchant_id -> BigInt,
        status -> Text,
        total_cents -> BigInt,
        created_at_ms -> BigInt,
        pay_deadline_ms -> BigInt,
        paid_at_ms -> Nullable<BigInt>,
        shipped_at_ms -> Nullable<BigInt>,
        completed_at_ms -> Nullable<BigInt>,
        auto_complete_at_ms -> Nullable<BigInt>,
        refund_requested -> Bool,
        refund_reason -> Nullable<Text>,
        gift_to_user_id -> Nullable<BigInt>,
        gift_message -> Nullable<Text>,
        shipping_address -> Nullable<Text>,
        carrier -> Nullable<Text>,
        tracking_no -> Nullable<Text>,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    order_items (order_id, product_id) {
        order_id -> BigInt,
        product_id -> BigInt,
        quantity -> BigInt,
        price_cents -> BigInt,
    }
}

diesel::table! {
    payments (id) {
        id -> BigInt,
        order_id -> BigInt,
        provider -> Text,
        amount_cents -> BigInt,
        status -> Text,
        created_at_ms -> BigInt,
        notified_at_ms -> Nullable<BigInt>,
    }
}

diesel::joinable!(products -> merchants (merchant_id));
diesel::joinable!(order_items -> orders (order_id));

diesel::table! {
    rebate_rule_sets (version) {
        version -> BigInt,
        rules -> Text,
        referral_levels_bps -> Text,
        hold_seconds -> BigInt,
        created_by -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    rebates (id) {
        id -> BigInt,
        order_id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        amount_cents -> BigInt,
        status -> Text,
        rule_version -> BigInt,
        rule_name -> Nullable<Text>,
        rate_bps -> BigInt,
        fixed_cents -> BigInt,
        hold_seconds -> BigInt,
        available_at_ms -> Nullable<BigInt>,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        rebate_id -> Nullable<BigInt>,
        withdrawal_id -> Nullable<BigInt>,
        pending_delta -> BigInt,
        available_delta -> BigInt,
        withdrawing_delta -> BigInt,
        withdrawn_delta -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    wallets (user_id) {
        user_id -> BigInt,
        pending_cents -> BigInt,
        available_cents -> BigInt,
        withdrawing_cents -> BigInt,
        withdrawn_cents -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    withdrawals (id) {
        id -> BigInt,
        user_id -> BigInt,
        amount_cents -> BigInt,
        status -> Text,
        created_at_ms -> BigInt,
        decided_at_ms -> Nullable<BigInt>,
    }
}

diesel::joinable!(rebates -> orders (order_id));
diesel::joinable!(order_items -> products (product_id));

diesel::table! {
    trips (id) {
        id -> BigInt,
        organizer_id -> BigInt,
        destination -> Text,
        destination_lower -> Text,
        start_date -> Text,
        end_date -> Text,
        capacity -> BigInt,
        member_count -> BigInt,
        description -> Text,
        status -> Text,
        conversation_id -> BigInt,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    trip_grams (gram, trip_id) {
        gram -> Text,
        trip_id -> BigInt,
    }
}

diesel::table! {
    trip_members (trip_id, user_id) {
        trip_id -> BigInt,
        user_id -> BigInt,
        joined_at_ms -> BigInt,
    }
}

diesel::table! {
    trip_requests (id) {
        id -> BigInt,
        trip_id -> BigInt,
        user_id -> BigInt,
        message -> Text,
        status -> Text,
        created_at_ms -> BigInt,
        decided_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    animals (id) {
        id -> BigInt,
        merchant_id -> BigInt,
        product_id -> BigInt,
        name -> Text,
        species -> Text,
        description -> Text,
        claim_price_cents -> BigInt,
        claim_days -> BigInt,
        claim_order_id -> Nullable<BigInt>,
        claimed_by -> Nullable<BigInt>,
        claimed_until_ms -> Nullable<BigInt>,
        created_at_ms -> BigInt,
        image_media_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    animal_updates (id) {
        id -> BigInt,
        animal_id -> BigInt,
        author_id -> BigInt,
        body -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    reviews (id) {
        id -> BigInt,
        order_id -> BigInt,
        merchant_id -> BigInt,
        buyer_id -> BigInt,
        rating -> BigInt,
        body -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    reports (id) {
        id -> BigInt,
        reporter_id -> BigInt,
        target_type -> Text,
        target_id -> BigInt,
        target_user_id -> BigInt,
        reason -> Text,
        status -> Text,
        resolved_by -> Nullable<BigInt>,
        resolution_note -> Nullable<Text>,
        resolved_at_ms -> Nullable<BigInt>,
        created_at_ms -> BigInt,
    }
}

diesel::joinable!(trip_members -> trips (trip_id));
diesel::joinable!(trip_grams -> trips (trip_id));

// One list of every table, so any two may be joined or used in subqueries.
diesel::allow_tables_to_appear_in_same_query!(
    settings,
    users,
    media,
    media_blobs,
    sessions,
    idempotency_keys,
    conversations,
    conversation_members,
    messages,
    blocks,
    follows,
    posts,
    post_likes,
    post_comments,
    notifications,
    outbox,
    dead_letters,
    processed_events,
    merchants,
    products,
    orders,
    order_items,
    payments,
    rebate_rule_sets,
    rebates,
    ledger_entries,
    wallets,
    withdrawals,
    trips,
    trip_grams,
    trip_members,
    trip_requests,
    animals,
    animal_updates,
    reviews,
    reports,
);

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
