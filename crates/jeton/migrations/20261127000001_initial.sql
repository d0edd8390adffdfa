-- One schema for SQLite and PostgreSQL: only types both understand the same
-- way (TEXT, BIGINT), timestamps as BIGINT microseconds since the Unix epoch,
-- ids as UUIDv7 text. Tokens are stored only as SHA-256 hex, plus last4.

CREATE TABLE clients (
    id                           TEXT PRIMARY KEY,
    name                         TEXT NOT NULL,
    kind                         TEXT NOT NULL CHECK (kind IN ('publishable', 'secret')),
    abilities                    TEXT NOT NULL,
    allowed_origins              TEXT NOT NULL,
    rate_limit_per_minute        BIGINT,
    per_ip_rate_limit_per_minute BIGINT,
    created_at                   BIGINT NOT NULL,
    revoked_at                   BIGINT
);

CREATE TABLE client_keys (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id),
    kind        TEXT NOT NULL CHECK (kind IN ('publishable', 'secret')),
    token_hash  TEXT NOT NULL UNIQUE,
    last4       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX client_keys_client ON client_keys (client_id);

CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE user_tokens (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    client_id    TEXT REFERENCES clients (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    last4        TEXT NOT NULL,
    abilities    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX user_tokens_customer ON user_tokens (customer_id);
CREATE INDEX user_tokens_client ON user_tokens (client_id);

CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL,
    stock        BIGINT NOT NULL CHECK (stock >= 0),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    status       TEXT NOT NULL,
    total_amount BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, id);

CREATE TABLE order_items (
    order_id   TEXT NOT NULL REFERENCES orders (id),
    line_no    BIGINT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    sku        TEXT NOT NULL,
    name       TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
