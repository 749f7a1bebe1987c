DROP TABLE idempotency_keys;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE settings;
