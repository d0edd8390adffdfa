// A shop developer's storefront flow, written against the types
// openapi-typescript generates from the live document (`./schema.js`), with
// openapi-fetch: no cast, no `any`, no non-null assertion (the test counts
// them), under `strict`, `noUncheckedIndexedAccess` and
// `exactOptionalPropertyTypes`. Run by
// crates/jeton/tests/api/typescript_client.rs against a fresh server.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];
type ProblemCode = components["schemas"]["ProblemCode"];

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set`);
  }
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`failed: ${what}`);
  }
}

// What a storefront shows for a problem: narrowed by its `code`.
function explain(problem: Problem): string {
  const code: ProblemCode = problem.code;
  switch (code) {
    case "unauthenticated":
    case "invalid_token":
      return "Please log in again.";
    case "insufficient_scope":
      return "This key or token may not do that.";
    case "rate_limited":
    case "service_unavailable":
      return "Busy; try again in a moment.";
    default:
      return problem.detail;
  }
}

const baseUrl = env("JETON_URL");
const origin = env("JETON_ORIGIN");
const storefront = { Authorization: `Bearer ${env("JETON_PK")}` };

// A guest browses and searches with the storefront's publishable key.
const guest = createClient<paths>({ baseUrl, headers: storefront });
const catalogue = await guest.GET("/api/v1/products", { params: { query: { limit: 10 } } });
if (catalogue.error !== undefined) {
  throw new Error(`browse: ${explain(catalogue.error)}`);
}
const first = catalogue.data.data[0];
check(first !== undefined, "the catalogue has a product");
const found = await guest.GET("/api/v1/products", {
  params: { query: { q: first.name.slice(0, 3), in_stock: true } },
});
if (found.error !== undefined) {
  throw new Error(`search: ${explain(found.error)}`);
}
check(
  found.data.data.some((product) => product.id === first.id),
  "the search finds the product",
);
const product = await guest.GET("/api/v1/products/{id}", {
  params: { path: { id: first.id } },
});
check(product.data?.sku === first.sku, "the product by id");
const price: number = first.price.amount;
check(Number.isInteger(price), "prices are minor units");

// Registration, and the documented conflict.
const email = `ts-${Date.now()}@example.com`;
const password = "correct horse battery";
const registered = await guest.POST("/api/v1/customers", {
  body: { email, password, name: "Tess" },
});
check(registered.data?.email === email, "registered");
const again = await guest.POST("/api/v1/customers", {
  body: { email, password, name: "Tess" },
});
check(
  again.error?.status === 409 && again.error.code === "email_taken",
  "a second registration is 409 email_taken",
);

// A wrong password: one answer for a wrong email or password.
const wrong = await guest.POST("/api/v1/auth/login", {
  body: { email, password: "not the password" },
});
check(wrong.error?.code === "invalid_credentials", "a wrong password is refused");

// Logging in for a bearer token.
const login = await guest.POST("/api/v1/auth/login", {
  body: { email, password, device_name: "flow" },
});
if (login.error !== undefined) {
  throw new Error(`login: ${explain(login.error)}`);
}
const issued = login.data;
if (!("token" in issued)) {
  throw new Error("a login without `session` answers a token");
}
const bearer: "Bearer" = issued.token_type;
const customer = createClient<paths>({
  baseUrl,
  headers: { Authorization: `${bearer} ${issued.token}` },
});
const me = await customer.GET("/api/v1/me");
check(me.data?.email === email, "the profile");

// An order, with an idempotency key, and its replay.
const key = `flow-${Date.now()}`;
const order = { items: [{ product_id: first.id, quantity: 1 }] };
const placed = await customer.POST("/api/v1/orders", {
  params: { header: { "Idempotency-Key": key } },
  body: order,
});
if (placed.error !== undefined) {
  throw new Error(`order: ${explain(placed.error)}`);
}
check(placed.data.status === "placed", "the order is placed");
const line = placed.data.items[0];
check(line !== undefined && line.product_id === first.id, "the order's line");
const replay = await customer.POST("/api/v1/orders", {
  params: { header: { "Idempotency-Key": key } },
  body: order,
});
check(replay.data?.id === placed.data.id, "the replay answers the same order");
check(replay.response.headers.get("Idempotent-Replayed") === "true", "marked as a replay");

// My orders.
const orders = await customer.GET("/api/v1/me/orders", { params: { query: { limit: 5 } } });
check(
  orders.data?.data.some((mine) => mine.id === placed.data.id) === true,
  "my orders list the order",
);
const one = await customer.GET("/api/v1/me/orders/{id}", {
  params: { path: { id: placed.data.id } },
});
check(one.data?.total.amount === placed.data.total.amount, "my order by id");

// A personal token that may only read orders: listed, refused where it
// lacks the ability (403 by `code`), revoked, then refused (401 by `code`).
const minted = await customer.POST("/api/v1/me/tokens", {
  body: { name: "reports", abilities: ["orders:read"], expires_in_seconds: 3600 },
});
if (minted.error !== undefined) {
  throw new Error(`token: ${explain(minted.error)}`);
}
const reports = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${minted.data.token}` },
});
const tokens = await customer.GET("/api/v1/me/tokens");
check(
  tokens.data?.data.some((token) => token.id === minted.data.token_id && !token.current) === true,
  "my tokens list the new one",
);
const refused = await reports.POST("/api/v1/orders", { body: order });
if (refused.error === undefined) {
  throw new Error("a read-only token placed an order");
}
if (refused.error.status === 403) {
  check(refused.error.code === "insufficient_scope", "403 insufficient_scope");
} else {
  throw new Error(`expected 403, got ${refused.error.status}: ${explain(refused.error)}`);
}
const revoked = await customer.DELETE("/api/v1/me/tokens/{id}", {
  params: { path: { id: minted.data.token_id } },
});
check(revoked.response.status === 204, "revoked");
const dead = await reports.GET("/api/v1/me/orders");
if (dead.error?.status === 401) {
  check(dead.error.code === "invalid_token", "401 invalid_token");
  check(explain(dead.error) === "Please log in again.", "explained");
} else {
  throw new Error("a revoked token still works");
}

// A cookie session, as the shop's own storefront has one: from its origin,
// the token only in the cookie, the CSRF token sent back on a logout.
const session = await guest.POST("/api/v1/auth/login", {
  headers: { Origin: origin },
  body: { email, password, session: "cookie" },
});
if (session.error !== undefined) {
  throw new Error(`cookie login: ${explain(session.error)}`);
}
const cookieSession = session.data;
if (!("csrf_token" in cookieSession)) {
  throw new Error("a cookie login answers a cookie session");
}
check(cookieSession.customer.email === email, "the session's customer");
const cookies = session.response.headers
  .getSetCookie()
  .map((cookie) => cookie.split(";")[0] ?? "")
  .join("; ");
const browser = createClient<paths>({ baseUrl, headers: { Cookie: cookies, Origin: origin } });
const profile = await browser.GET("/api/v1/me");
check(profile.data?.id === registered.data?.id, "the cookie session reads the profile");
const forged = await browser.POST("/api/v1/auth/logout");
check(
  forged.error?.status === 403 && forged.error.code === "csrf_failed",
  "a logout without the CSRF header is 403 csrf_failed",
);
const ended = await browser.POST("/api/v1/auth/logout", {
  params: { header: { "X-CSRF-Token": cookieSession.csrf_token } },
});
check(ended.response.status === 204, "the cookie session logs out");
const after = await browser.GET("/api/v1/me");
check(after.error?.status === 401, "the ended session is refused");

// Logging out the bearer token.
const out = await customer.POST("/api/v1/auth/logout");
check(out.response.status === 204, "logged out");
const gone = await customer.GET("/api/v1/me");
check(gone.error?.code === "invalid_token", "the logged-out token is refused");

console.log("the typed storefront flow passed");
