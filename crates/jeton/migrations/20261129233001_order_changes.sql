-- When an order last changed (placed, cancelled): other processes poll it
-- to drop their cached copies of its customer's orders, as they poll
-- products.updated_at for the catalogue.
ALTER TABLE orders ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET updated_at = created_at;
CREATE INDEX orders_updated_at ON orders (updated_at);
