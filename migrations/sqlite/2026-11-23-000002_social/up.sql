-- Chat, feed, notifications, and the transactional outbox.
CREATE TABLE conversations (
    id BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,                -- direct | group | trip
    title TEXT NOT NULL DEFAULT '',
    direct_key TEXT UNIQUE,            -- "<low id>:<high id>" for direct conversations
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_activity_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_at_ms BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id);

CREATE TABLE messages (
    id BIGINT PRIMARY KEY NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL,
    UNIQUE (conversation_id, seq),
    UNIQUE (sender_id, client_id)
);

CREATE TABLE blocks (
    blocker_id BIGINT NOT NULL REFERENCES users (id),
    blocked_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users (id),
    followee_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id BIGINT PRIMARY KEY NOT NULL,
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    like_count BIGINT NOT NULL DEFAULT 0,
    comment_count BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);
-- The timeline reads each followee's newest posts through this index.
CREATE INDEX posts_author_idx ON posts (author_id, id);

CREATE TABLE post_likes (
    post_id BIGINT NOT NULL REFERENCES posts (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE post_comments (
    id BIGINT PRIMARY KEY NOT NULL,
    post_id BIGINT NOT NULL REFERENCES posts (id),
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX post_comments_post_idx ON post_comments (post_id, id);

CREATE TABLE notifications (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    event_id BIGINT,
    read BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (user_id, event_id)
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);

-- Transactional outbox: written in the same transaction as the change it
-- describes; the relay publishes and then sets published_at_ms.
CREATE TABLE outbox (
    id BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    published_at_ms BIGINT
);
CREATE INDEX outbox_unpublished_idx ON outbox (published_at_ms, id);

-- Consumers remember what they applied: at-least-once in, exactly-once effect.
CREATE TABLE processed_events (
    consumer TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
