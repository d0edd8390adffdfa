-- Carts on the server (API.md §16): one per customer and one per guest
-- token, each reached only through its owner's credential. A cart has no id
-- the API shows: its owner is the only way in.
--
-- `guest_id` is the id of a guest token in the credential store. It is not
-- a foreign key: the credentials belong to the auth library's tables, and a
-- guest's cart is removed with the guest (on merge, and by `token prune`).
CREATE TABLE carts (
    id          TEXT PRIMARY KEY,
    customer_id TEXT UNIQUE REFERENCES customers (id),
    guest_id    TEXT UNIQUE,
    updated_at  BIGINT NOT NULL,
    CHECK ((customer_id IS NULL) <> (guest_id IS NULL))
);

-- A line per product; `position` keeps the lines in the order the owner
-- first added them (a count, not a time: two lines added within one clock
-- tick keep their order).
CREATE TABLE cart_items (
    cart_id    TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    position   BIGINT NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
