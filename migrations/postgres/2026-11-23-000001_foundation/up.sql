-- Foundation: accounts, sessions, server settings, idempotency keys.
-- Times are BIGINT milliseconds since the Unix epoch (UTC); ids are assigned
-- by the server (time-ordered, below 2^53) so batches need no round trip.
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id BIGINT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    bio TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT 'user',
    invite_code TEXT NOT NULL UNIQUE,
    inviter_id BIGINT REFERENCES users (id),
    banned BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX users_inviter_idx ON users (inviter_id);

CREATE TABLE sessions (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_idx ON sessions (revoked, expires_at_ms);

CREATE TABLE idempotency_keys (
    user_id BIGINT NOT NULL,
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, scope, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at_ms);
