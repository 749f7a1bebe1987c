-- Merchants, products, orders, payments.
CREATE TABLE merchants (
    id BIGINT PRIMARY KEY NOT NULL,
    owner_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,              -- pending | approved | rejected
    rating_sum BIGINT NOT NULL DEFAULT 0,
    review_count BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX merchants_status_idx ON merchants (status, id);
CREATE INDEX merchants_owner_idx ON merchants (owner_id);

CREATE TABLE products (
    id BIGINT PRIMARY KEY NOT NULL,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    -- What can still be ordered. Never negative: the last guard against overselling.
    stock BIGINT NOT NULL CHECK (stock >= 0),
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX products_merchant_idx ON products (merchant_id, id);
CREATE INDEX products_category_idx ON products (category, id);

CREATE TABLE orders (
    id BIGINT PRIMARY KEY NOT NULL,
    buyer_id BIGINT NOT NULL REFERENCES users (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    status TEXT NOT NULL,
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at_ms BIGINT NOT NULL,
    pay_deadline_ms BIGINT NOT NULL,
    paid_at_ms BIGINT,
    shipped_at_ms BIGINT,
    completed_at_ms BIGINT,
    auto_complete_at_ms BIGINT,
    refund_requested BOOLEAN NOT NULL DEFAULT FALSE,
    refund_reason TEXT,
    gift_to_user_id BIGINT REFERENCES users (id),
    gift_message TEXT,
    shipping_address TEXT,
    carrier TEXT,
    tracking_no TEXT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_buyer_idx ON orders (buyer_id, id);
CREATE INDEX orders_merchant_idx ON orders (merchant_id, id);
-- The timers: unpaid orders by deadline, shipped orders by auto-complete time.
CREATE INDEX orders_deadline_idx ON orders (status, pay_deadline_ms);
CREATE INDEX orders_autocomplete_idx ON orders (status, auto_complete_at_ms);

CREATE TABLE order_items (
    order_id BIGINT NOT NULL REFERENCES orders (id),
    product_id BIGINT NOT NULL REFERENCES products (id),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);

CREATE TABLE payments (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL UNIQUE REFERENCES orders (id),
    provider TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    status TEXT NOT NULL,              -- created | succeeded | failed | refund_needed
    created_at_ms BIGINT NOT NULL,
    notified_at_ms BIGINT
);
