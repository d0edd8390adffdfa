-- The change feed other processes poll: the newest audit event says when
-- credentials last changed, the newest products.updated_at when the
-- catalogue did. Both are index lookups.
CREATE INDEX products_updated_at ON products (updated_at);
