-- Bumped by every change of a product's stock, so an inventory actor loaded
-- between a release's commit and its in-memory release does not count it twice.
ALTER TABLE products ADD COLUMN stock_version BIGINT NOT NULL DEFAULT 0;
