-- Companion trips, animal claims, reviews, moderation, and the indexes the
-- dashboards read through.

CREATE TABLE trips (
    id BIGINT PRIMARY KEY NOT NULL,
    organizer_id BIGINT NOT NULL REFERENCES users (id),
    destination TEXT NOT NULL,
    destination_lower TEXT NOT NULL,
    start_date TEXT NOT NULL,          -- YYYY-MM-DD (sorts as it reads)
    end_date TEXT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity BETWEEN 2 AND 50),
    -- The organizer counts. Never above capacity: the last guard against overfilling.
    member_count BIGINT NOT NULL CHECK (member_count >= 1 AND member_count <= capacity),
    description TEXT NOT NULL,
    status TEXT NOT NULL,              -- open | full | closed
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
-- Search: open trips that have not ended, by end date (overlap needs end >= from).
CREATE INDEX trips_search_idx ON trips (status, end_date, start_date);
CREATE INDEX trips_organizer_idx ON trips (organizer_id, id);

-- Character bigrams of each destination: a portable substring index
-- (the search looks one bigram up, then checks the whole text on those rows).
CREATE TABLE trip_grams (
    gram TEXT NOT NULL,
    trip_id BIGINT NOT NULL REFERENCES trips (id),
    PRIMARY KEY (gram, trip_id)
);

CREATE TABLE trip_members (
    trip_id BIGINT NOT NULL REFERENCES trips (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    joined_at_ms BIGINT NOT NULL,
    PRIMARY KEY (trip_id, user_id)
);
CREATE INDEX trip_members_user_idx ON trip_members (user_id, trip_id);

CREATE TABLE trip_requests (
    id BIGINT PRIMARY KEY NOT NULL,
    trip_id BIGINT NOT NULL REFERENCES trips (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    message TEXT NOT NULL,
    status TEXT NOT NULL,              -- pending | accepted | rejected
    created_at_ms BIGINT NOT NULL,
    decided_at_ms BIGINT
);
CREATE INDEX trip_requests_trip_idx ON trip_requests (trip_id, status, id);
CREATE INDEX trip_requests_user_idx ON trip_requests (trip_id, user_id);

-- An animal is sold through a hidden product of stock 1: its inventory actor
-- makes claims exclusive exactly as it makes stock exact.
CREATE TABLE animals (
    id BIGINT PRIMARY KEY NOT NULL,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    product_id BIGINT NOT NULL UNIQUE REFERENCES products (id),
    name TEXT NOT NULL,
    species TEXT NOT NULL,
    description TEXT NOT NULL,
    claim_price_cents BIGINT NOT NULL CHECK (claim_price_cents >= 0),
    claim_days BIGINT NOT NULL CHECK (claim_days BETWEEN 1 AND 3650),
    -- The paid claim holding the animal, until claimed_until_ms.
    claim_order_id BIGINT REFERENCES orders (id),
    claimed_by BIGINT REFERENCES users (id),
    claimed_until_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX animals_merchant_idx ON animals (merchant_id, id);
-- The claim-end timer.
CREATE INDEX animals_claimed_until_idx ON animals (claimed_until_ms);

CREATE TABLE animal_updates (
    id BIGINT PRIMARY KEY NOT NULL,
    animal_id BIGINT NOT NULL REFERENCES animals (id),
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX animal_updates_animal_idx ON animal_updates (animal_id, id);

CREATE TABLE reviews (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL UNIQUE REFERENCES orders (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    buyer_id BIGINT NOT NULL REFERENCES users (id),
    rating BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX reviews_merchant_idx ON reviews (merchant_id, id);

CREATE TABLE reports (
    id BIGINT PRIMARY KEY NOT NULL,
    reporter_id BIGINT NOT NULL REFERENCES users (id),
    target_type TEXT NOT NULL,         -- post | message | user
    target_id BIGINT NOT NULL,
    -- Whom a ban would hit: the author of the post or message, or the user.
    target_user_id BIGINT NOT NULL REFERENCES users (id),
    reason TEXT NOT NULL,
    status TEXT NOT NULL,              -- open | dismissed | removed | banned
    resolved_by BIGINT REFERENCES users (id),
    resolution_note TEXT,
    resolved_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX reports_queue_idx ON reports (status, id);
-- One open report per reporter and target, even when two arrive at once.
CREATE UNIQUE INDEX reports_open_once_idx ON reports (target_type, target_id, reporter_id)
    WHERE status = 'open';

-- Dashboards: counts by status and paid GMV per merchant, GMV of the day.
CREATE INDEX orders_merchant_status_idx ON orders (merchant_id, status);
CREATE INDEX orders_merchant_paid_idx ON orders (merchant_id, paid_at_ms);
CREATE INDEX orders_paid_idx ON orders (paid_at_ms);
