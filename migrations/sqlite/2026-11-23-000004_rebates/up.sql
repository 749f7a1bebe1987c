-- Rebates, referral commissions, the wallet ledger and withdrawals.
CREATE TABLE rebate_rule_sets (
    version BIGINT PRIMARY KEY NOT NULL,
    rules TEXT NOT NULL,               -- JSON, validated on the way in
    referral_levels_bps TEXT NOT NULL, -- JSON array, at most 3
    hold_seconds BIGINT NOT NULL,
    created_by BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE rebates (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,                -- purchase | referral_1 | referral_2 | referral_3
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    status TEXT NOT NULL,              -- pending | available | cancelled | reversed
    rule_version BIGINT NOT NULL,
    rule_name TEXT,
    rate_bps BIGINT NOT NULL,
    fixed_cents BIGINT NOT NULL,
    hold_seconds BIGINT NOT NULL,
    available_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (order_id, user_id, kind)
);
CREATE INDEX rebates_user_idx ON rebates (user_id, id);
CREATE INDEX rebates_due_idx ON rebates (status, available_at_ms);

-- Append-only: never updated or deleted. Wallets follow from it.
CREATE TABLE ledger_entries (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    rebate_id BIGINT,
    withdrawal_id BIGINT,
    pending_delta BIGINT NOT NULL,
    available_delta BIGINT NOT NULL,
    withdrawing_delta BIGINT NOT NULL,
    withdrawn_delta BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX ledger_entries_user_idx ON ledger_entries (user_id, id);

-- Materialized balances, updated in the same transaction as the entries.
CREATE TABLE wallets (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users (id),
    pending_cents BIGINT NOT NULL,
    available_cents BIGINT NOT NULL,
    withdrawing_cents BIGINT NOT NULL,
    withdrawn_cents BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE withdrawals (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL,              -- pending | paid | rejected
    created_at_ms BIGINT NOT NULL,
    decided_at_ms BIGINT
);
CREATE INDEX withdrawals_status_idx ON withdrawals (status, id);
CREATE INDEX withdrawals_user_idx ON withdrawals (user_id, id);
