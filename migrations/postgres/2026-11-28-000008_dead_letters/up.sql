-- Events a consumer failed to apply several times in a row, parked so that
-- later events keep flowing; retried with backoff until they apply, and
-- visible to admins and in /metrics.
CREATE TABLE dead_letters (
    consumer TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    parked_at_ms BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX dead_letters_due_idx ON dead_letters (next_attempt_at_ms);
