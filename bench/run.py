#!/usr/bin/env python3
"""Jeton's benchmark: builds the release binary, seeds databases, drives the
server with wrk, and writes docs/BENCHMARKS.md.

Every number is measured side by side in one run and reported as a ratio to
`/healthz` (no auth, no database) measured in the same run, so the figures
say what authentication and storage cost on this machine, not how fast the
machine is. Nothing here is a test: no threshold fails the run.

Usage: python3 bench/run.py [--duration 3] [--rounds 7] [--no-build] [--no-criterion]
                            [--overhead-runs 5]
                            [--postgres postgres://postgres@127.0.0.1:5432/postgres]

`bench/notes.md`, kept by hand, is copied to the end of the report: what a
figure alone does not say (for example a comparison with an earlier version
of the code, which this script cannot measure).
"""

import argparse
import base64
import json
import os
import platform
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "jeton")
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


# ------------------------------------------------------------------ tokens

def checksum(body):
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        digits.append(BASE62[value % 62])
        value //= 62
    return "".join(reversed(digits))


def token(kind):
    """A well-formed token with a valid checksum: unknown to any server."""
    body = "jt_%s_%s" % (kind, "".join(secrets.choice(BASE62) for _ in range(30)))
    return body + checksum(body)


def bad_checksum(kind):
    good = token(kind)
    last = good[-1]
    return good[:-1] + ("0" if last != "0" else "1")


# ------------------------------------------------------------------ processes

def run(args, **kwargs):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)


def jeton(url, *args):
    return run([BIN, "--database-url", url, *args]).stdout


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The benchmark hammers one customer on purpose (their orders, their reads):
# the per-customer limits (600 requests and 60 orders a minute by default)
# are off for the whole run, and the report says so.
CUSTOMER_LIMITS_OFF = ("--customer-rate-limit", "0", "--customer-order-limit", "0")


class Server:
    def __init__(self, url, extra=()):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.NamedTemporaryFile(prefix="jeton-bench-", suffix=".log", delete=False)
        env = dict(os.environ, RUST_LOG="warn")
        self.process = subprocess.Popen(
            [BIN, "--database-url", url, "serve", "--addr", "127.0.0.1:%d" % self.port, *CUSTOMER_LIMITS_OFF,
             *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        deadline = time.time() + 60
        while True:
            try:
                if http("GET", self.base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise SystemExit("jeton serve did not start; see " + self.log.name)
            time.sleep(0.1)

    def rss_mb(self):
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Redis:
    """A redis-server of the benchmark's own, on a free port, saving nothing."""

    def __init__(self):
        import socket
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d" % self.port
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)

    def stop(self):
        self.process.kill()
        self.process.wait()


def limited_key(url):
    """A publishable key whose per-key and per-IP limits are checked on every
    request but not reached: what the limit backend costs, not a refusal. The
    highest limit a client may have (a million a minute) is more than a row
    sends in its rounds of one second (the Redis rows run for one second a
    round for that reason); the report counts any refusal as non-2xx."""
    return json.loads(jeton(url, "client", "create", "--name", "bench-limited", "--kind", "publishable",
                            "--ability", "products:read", "--origin", BENCH_ORIGIN,
                            "--rate-limit", "1000000", "--per-ip-rate-limit", "1000000", "--json"))["key"]


def http(method, url, body=None, token=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text and text[0] in "[{" else text)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, (json.loads(text) if text.startswith("{") else text)


# ------------------------------------------------------------------ wrk

def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(url, duration, script, connections=32, threads=2):
    """Runs wrk; returns (requests per second, p99 in ms, non-2xx count)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    out = run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
               "--latency", "-s", lua.name, url]).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = parse_latency(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(non2xx.group(1)) if non2xx else 0


def parse_latency(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


SPREAD_IPS = """
spread = function()
  wrk.headers["X-Forwarded-For"] = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
end
"""


FRESH_TOKENS = """
local bit = require("bit")
local alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then c = bit.bxor(0xEDB88320, bit.rshift(c, 1)) else c = bit.rshift(c, 1) end
  end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bit.bxor(crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  c = bit.bxor(c, 0xFFFFFFFF)
  if c < 0 then c = c + 4294967296 end
  return c
end
-- A never-seen, checksum-valid token: always a cache miss and a lookup.
fresh_token = function(kind)
  local chars = {}
  for i = 1, 30 do local r = math.random(62); chars[i] = alphabet:sub(r, r) end
  local body = "jt_" .. kind .. "_" .. table.concat(chars)
  local c, check = crc32(body), {}
  for i = 6, 1, -1 do local d = c % 62; check[i] = alphabet:sub(d + 1, d + 1); c = math.floor(c / 62) end
  return body .. table.concat(check)
end
"""


def fresh_tokens_script(kind):
    """Every request carries a new checksum-valid unknown token, from a
    random client IP: the worst case for the store-lookup path."""
    return SPREAD_IPS + FRESH_TOKENS + """
request = function()
  spread()
  wrk.headers["Authorization"] = "Bearer " .. fresh_token("%s")
  return wrk.format(nil)
end
""" % kind


def get_script(token=None, tokens=None, extra_headers=None, spread_ips=False):
    """A GET script. `spread_ips`: a random client IP per request (through
    the trusted proxy), so a flood of bad tokens measures their own cost,
    not the per-IP failed-authentication limit that would answer 429."""
    lines = [SPREAD_IPS] if spread_ips else []
    if token:
        lines.append('wrk.headers["Authorization"] = "Bearer %s"' % token)
    for name, value in (extra_headers or {}).items():
        lines.append("wrk.headers[%s] = %s" % (lua_string(name), lua_string(value)))
    if tokens or spread_ips:
        lines.append("tokens = {%s}" % ", ".join(lua_string(t) for t in (tokens or [])))
        lines.append("request = function()")
        if tokens:
            lines.append('  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]')
        if spread_ips:
            lines.append("  spread()")
        lines.append("  return wrk.format(nil)")
        lines.append("end")
    return "\n".join(lines) + "\n"


def order_script(token, product_ids):
    return """
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer %s"
wrk.headers["Content-Type"] = "application/json"
ids = {%s}
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format(nil, nil, nil, '{"items":[{"product_id":"' .. id .. '","quantity":1}]}')
end
""" % (token, ", ".join(lua_string(i) for i in product_ids))


def login_flood_script(key):
    # Distinct emails and (through a trusted proxy) distinct client IPs, so
    # every login reaches Argon2 instead of the cheap throttle refusal.
    return """
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer %s"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["X-Forwarded-For"] = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format(nil, nil, nil, '{"email":"flood' .. math.random(1, 1000000000) .. '@example.com","password":"wrong password"}')
end
""" % key


# ------------------------------------------------------------------ scenarios

# The benchmark storefront's origin, where its cookie session is used from.
BENCH_ORIGIN = "http://localhost:8080"


def seed(server, url, products=0):
    """A customer with a user token, an unlimited publishable key, and an
    admin key; optionally `products` extra products with plenty of stock."""
    admin = json.loads(jeton(url, "client", "create", "--name", "bench-admin", "--kind", "secret",
                             "--ability", "admin", "--rate-limit", "none", "--json"))["key"]
    storefront = json.loads(jeton(url, "client", "create", "--name", "bench-storefront", "--kind", "publishable",
                                  "--ability", "products:read", "--ability", "customers:create",
                                  "--ability", "auth:login", "--origin", BENCH_ORIGIN,
                                  "--rate-limit", "none", "--per-ip-rate-limit", "none", "--json"))
    pk = storefront["key"]
    email = "bench-%s@example.com" % secrets.token_hex(4)
    http("POST", server.base + "/api/v1/customers", {"email": email, "password": "bench password", "name": "Bench"}, pk)
    status, login = http("POST", server.base + "/api/v1/auth/login", {"email": email, "password": "bench password"}, pk)
    assert status == 201, login
    cookie = cookie_session(server, email, pk)
    ids = []
    for n in range(products):
        status, product = http("POST", server.base + "/api/v1/admin/products", {
            "sku": "BENCH-%s-%d" % (secrets.token_hex(3), n), "name": "Bench product %d" % n,
            "price": {"amount": 100, "currency": "EUR"}, "stock": 1_000_000_000}, admin)
        assert status == 201, product
        ids.append(product["id"])
    oauth = json.loads(jeton(url, "client", "create", "--name", "bench-oauth", "--kind", "secret",
                             "--ability", "products:read", "--rate-limit", "none", "--json"))
    at = access_token(server, oauth["client_id"], oauth["key"])
    return {"admin": admin, "pk": pk, "pk_client": storefront["client_id"], "ut": login["token"],
            "cookie": cookie, "products": ids, "oauth": oauth, "sk": oauth["key"], "at": at}


def basic(client_id, secret):
    """HTTP Basic client authentication (ids and keys need no form-encoding)."""
    return "Basic " + base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode()


def access_token(server, client_id, secret):
    """An access token from the client credentials grant."""
    request = urllib.request.Request(server.base + "/oauth/token", data=b"grant_type=client_credentials",
                                     method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Authorization", basic(client_id, secret))
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read().decode())["access_token"]


def token_exchange_script(client_id, secret):
    """The client credentials grant, over and over."""
    return """
wrk.method = "POST"
wrk.headers["Authorization"] = %s
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials"
""" % lua_string(basic(client_id, secret))


def cookie_session(server, email, pk):
    """A cookie login from the key's origin: the `Cookie` header a browser
    would then send (the session and the CSRF cookie)."""
    body = json.dumps({"email": email, "password": "bench password", "session": "cookie"}).encode()
    request = urllib.request.Request(server.base + "/api/v1/auth/login", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Bearer " + pk)
    request.add_header("Origin", BENCH_ORIGIN)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        pairs = [value.split(";")[0] for value in response.headers.get_all("Set-Cookie")]
    assert any(pair.startswith("jeton_session=jt_ut_") for pair in pairs), pairs
    return "; ".join(pairs)


def statements_per_read(pg_admin_url, database, server, seeded, duration):
    """PostgreSQL: transactions and row writes the server performs per
    authenticated read, from pg_stat_database. The server's background work
    (the change-feed poll, 8 small reads a second) is measured over an idle
    period of the same length first and subtracted."""
    def stats():
        out = run(["psql", pg_admin_url, "-Atc",
                   "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted "
                   "FROM pg_stat_database WHERE datname = '%s'" % database]).stdout.strip()
        return [int(v) for v in out.split("|")]
    product = seeded["products"][0]
    # Statistics reach pg_stat_database up to a second after the fact.
    time.sleep(2)
    idle_start = stats()
    time.sleep(duration)
    time.sleep(2)
    idle_end = stats()
    rps, _, _ = wrk(server.base + "/api/v1/products/" + product, duration, get_script(seeded["pk"]))
    time.sleep(2)
    loaded_end = stats()
    reads = rps * duration
    idle = [idle_end[i] - idle_start[i] for i in range(2)]
    loaded = [loaded_end[i] - idle_end[i] for i in range(2)]
    return (loaded[0] - idle[0]) / reads, (loaded[1] - idle[1]) / reads, reads, idle[0]


def insert_user_tokens(sqlite_path, count):
    """Stores `count` user tokens (hashes of random tokens) for one customer,
    in jeton-auth's table with Jeton's details beside each."""
    connection = sqlite3.connect(sqlite_path, timeout=60)
    customer = connection.execute("SELECT id FROM customers LIMIT 1").fetchone()[0]
    now = int(time.time() * 1_000_000)

    def write(batch):
        connection.executemany(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, user_id, abilities, created_at) "
            "VALUES (?, 'user', ?, 'abcd', ?, 'products:read', ?)",
            [(token_id, token_hash, customer, now) for token_id, token_hash in batch])
        connection.executemany(
            "INSERT INTO user_token_details (token_id, customer_id, name) VALUES (?, ?, 'bench')",
            [(token_id, customer) for token_id, _ in batch])
        connection.commit()

    batch = []
    for n in range(count):
        batch.append(("bench-%d-%s" % (n, secrets.token_hex(8)), secrets.token_hex(32)))
        if len(batch) == 50_000:
            write(batch)
            batch = []
    if batch:
        write(batch)
    connection.close()


def insert_usage_rows(sqlite_path, client_id, count):
    """Fills jeton-auth's usage table with `count` rows: 30 days of minute,
    hour and day buckets for three keys of `client_id` (the chart the
    benchmark reads), and the rest hourly rows of a thousand other clients'
    keys over the past 90 days."""
    connection = sqlite3.connect(sqlite_path, timeout=60)
    hour = int(time.time()) // 3600 * 3600
    rows = []
    for key in range(3):
        credential = "bench-key-%d" % key
        for h in range(30 * 24):
            rows.append(("hour", (hour - h * 3600) * 1_000_000, credential, client_id, 100, 1))
        for m in range(48 * 60):
            rows.append(("minute", (hour - m * 60) * 1_000_000, credential, client_id, 2, 0))
        for d in range(30):
            rows.append(("day", (hour // 86400 * 86400 - d * 86400) * 1_000_000, credential, client_id, 2400, 24))
    others = max(0, count - len(rows))
    for n in range(others):
        other = n % 1000
        h = n // 1000
        rows.append(("hour", (hour - h * 3600) * 1_000_000, "bench-other-key-%d" % other,
                     "bench-other-client-%d" % other, 10, 0))
    for start in range(0, len(rows), 50_000):
        connection.executemany(
            "INSERT INTO auth_usage (granularity, bucket, credential_id, kind, client_id, ok, rate_limited) "
            "VALUES (?, ?, ?, 'publishable', ?, ?, ?)", rows[start:start + 50_000])
        connection.commit()
    stored = connection.execute("SELECT COUNT(*) FROM auth_usage").fetchone()[0]
    connection.close()
    return stored


# The in-process pairs, measured interleaved by the `auth_overhead` bench:
# (report label, the bench's name for the pair).
OVERHEAD_PAIRS = [
    ("in-process read with auth ≥ 0.95× without: whole app (every layer)", "GET /products/{id}, whole app"),
    ("the same, bare handler (the guard against nothing)", "GET /products/{id}, bare handler"),
    ("in process, a malformed-token refusal against `/healthz` (new client IP each)",
     "malformed-token refusal vs GET /healthz, whole app, a new client IP each"),
]
OVERHEAD_RUNS = 5
NOTES = os.path.join(ROOT, "bench", "notes.md")


def criterion_run(package, bench):
    out = subprocess.run(["cargo", "bench", "-p", package, "--bench", bench, "--", "--noplot"],
                         cwd=ROOT, text=True, capture_output=True, check=True).stdout
    return {name.strip(): float(value) * {"ps": 0.001, "ns": 1, "µs": 1000, "us": 1000, "ms": 1e6}[unit]
            for name, value, unit in re.findall(r"^(\S.*?)\s*\n?\s*time:\s+\[[\d.]+ \w+ ([\d.]+) (\w+)", out, re.M)}


def overhead_ratios(runs_wanted):
    """The interleaved pairs of the `auth_overhead` bench, run `runs_wanted`
    times: {pair label: [(ns without, ns with, ratio) per run]}."""
    runs = {}
    for _ in range(runs_wanted):
        out = subprocess.run(["cargo", "bench", "-p", "jeton", "--bench", "auth_overhead"],
                             cwd=ROOT, text=True, capture_output=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("ratio | "):
                _, name, without, with_, median, _q1, _q3 = [field.strip() for field in line.split("|")]
                runs.setdefault(name, []).append((float(without), float(with_), float(median)))
    return {label: runs[name] for label, name in OVERHEAD_PAIRS} if runs else {}


def criterion_results():
    """Runs the criterion benches: {name: nanoseconds per call}. criterion
    measures one benchmark after the other, so a pair's two sides drift
    apart with the machine; `overhead_ratios` interleaves them (see the
    `auth_overhead` bench)."""
    results = criterion_run("jeton-auth", "verify")
    results.update(criterion_run("jeton", "read"))
    return results


# ------------------------------------------------------------------ report

def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = run(["rustc", "--version"], cwd=ROOT).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], text=True, capture_output=True).stdout.splitlines()[0]
    return "%s, %d cores, %.0f GiB; %s; %s; %s" % (model, os.cpu_count(), memory, platform.platform(), rustc, wrk_version)


# The load average when the login flood began, for the report.
LOAD_AT_FLOOD = []


def login_flood(base, product, pk, options, rows):
    """Reads during a login flood: p99 compared with reads alone, in rounds.
    Appends the two rows; returns (p99 alone, p99 during the flood)."""
    d = options.duration
    LOAD_AT_FLOOD.append(open("/proc/loadavg").read().split()[0])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(login_flood_script(pk))
    alone, during = [], []
    for _ in range(options.rounds):
        # Alone means alone: the previous round's flood may have left logins
        # queued for Argon2, which keep a core busy until they are done.
        time.sleep(3)
        alone.append(wrk(base + "/products/" + product, d, get_script(pk), connections=8, threads=1))
        flood = subprocess.Popen(["wrk", "-t1", "-c16", "-d%ds" % (d + 2), "-s", lua.name, base + "/auth/login"],
                                 stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        during.append(wrk(base + "/products/" + product, d, get_script(pk), connections=8, threads=1))
        out, _ = flood.communicate()
        print("login flood round: %s req/s of logins, %s non-2xx; load %s" % (
            (re.search(r"Requests/sec:\s+([\d.]+)", out) or [None, "?"])[1],
            (re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out) or [None, "0"])[1],
            open("/proc/loadavg").read().split()[0]), file=sys.stderr)
    os.unlink(lua.name)
    for name, samples in (("reads alone (for the login-flood comparison)", alone),
                          ("reads during a login flood", during)):
        rows.append((name, statistics.median(x[0] for x in samples), statistics.median(x[1] for x in samples),
                     sum(x[2] for x in samples)))
    return statistics.median(x[1] for x in alone), statistics.median(x[1] for x in during)


def limit_decisions(server):
    """The server's limit decisions so far, from its `/metrics`: {backend:
    count} (`redis`, `process`), plus its Redis counters by short name."""
    status, text = http("GET", server.base + "/metrics")
    assert status == 200, status
    found = {}
    for line in text.splitlines():
        match = re.match(r'jeton_limit_decisions_total\{backend="(\w+)"\} ([\d.e+]+)', line)
        if match:
            found[match.group(1)] = float(match.group(2))
        match = re.match(r"jeton_limit_backend_redis_(\w+_total) ([\d.e+]+)", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def redis_under_load(shared, key, flood_key, duration):
    """The heaviest load the benchmark puts on a Redis that stays up: reads
    with the limited key (a lease now and then) while a flood of malformed
    tokens from random client IPs counts a failure in Redis for every
    request, both on the server sharing its limits. Returns (reads' req/s,
    flood's req/s, {counter: increase})."""
    before = limit_decisions(shared)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(get_script(flood_key, spread_ips=True))
    flood = subprocess.Popen(["wrk", "-t1", "-c16", "-d%ds" % (duration + 1), "-s", lua.name,
                              shared.base + "/api/v1/products"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    reads = wrk(shared.base + "/api/v1/products?limit=20", duration, get_script(key))
    out, _ = flood.communicate()
    os.unlink(lua.name)
    after = limit_decisions(shared)
    flood_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return reads[0], flood_rps, {name: after.get(name, 0) - before.get(name, 0) for name in after}


def decision_share(counts):
    """(decisions made per process, all decisions) from counter increases."""
    here = counts.get("process", 0)
    return here, here + counts.get("redis", 0)


def fleet_part(work, options, rows, interleaved, paired, round_samples, measure):
    """Limits shared on Redis against per-process limits, the share of limit
    decisions made per process while Redis is up under the heaviest load,
    then reads during a Redis outage."""
    fleet_url = "sqlite://" + os.path.join(work, "fleet.db")
    jeton(fleet_url, "migrate")
    redis = Redis()
    proxy = ["--trusted-proxy", "127.0.0.1/32"]
    shared = Server(fleet_url, ["--redis-url", redis.url, *proxy])
    local = Server(fleet_url, proxy)
    seed(local, fleet_url, products=20)
    key = limited_key(fleet_url)
    started = limit_decisions(shared)
    fleet_rows = interleaved([
        ("limits local", "GET /api/v1/products?limit=20, limited key, per-process limits",
         local.base + "/api/v1/products?limit=20", get_script(key), {}),
        ("limits redis", "GET /api/v1/products?limit=20, limited key, limits shared on Redis",
         shared.base + "/api/v1/products?limit=20", get_script(key), {}),
    ], duration=1)
    fleet = {key: value[0] for key, value in fleet_rows.items()}
    fleet["paired"] = paired("limits redis", "limits local")
    fleet["rounds"] = [a[0] / b[0] for a, b in zip(round_samples["limits redis"], round_samples["limits local"])]
    after_rows = limit_decisions(shared)
    fleet["rows decisions"] = {name: after_rows.get(name, 0) - started.get(name, 0) for name in after_rows}
    # The heaviest load, in rounds of one second (the key's limits are
    # not reached), a fresh limited key for the reads each round.
    heavy = {}
    loads = []
    for _ in range(options.rounds):
        loads.append(float(open("/proc/loadavg").read().split()[0]))
        reads, flood, counts = redis_under_load(shared, limited_key(fleet_url), bad_checksum("pk"), 1)
        for name, value in counts.items():
            heavy[name] = heavy.get(name, 0) + value
        rows_heavy = heavy.setdefault("rows", [])
        rows_heavy.append((reads, flood))
    fleet["heavy"] = heavy
    fleet["heavy loads"] = loads
    here, total = decision_share(heavy)
    print("limit decisions per process under load, Redis up: %d of %d; %s" % (here, total, heavy),
          file=sys.stderr)
    redis.stop()
    # A key of its own: the shared rows' requests still count in this
    # process's window.
    fleet["outage"] = measure("GET /api/v1/products?limit=20, limited key, Redis down (per-process limits)",
                              shared.base + "/api/v1/products?limit=20", get_script(limited_key(fleet_url)))[0]
    shared.stop()
    local.stop()
    return fleet


def main():
    global BIN
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=7, help="runs per row, interleaved; the median is reported")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-criterion", action="store_true", help="skip the criterion micro-benchmarks")
    parser.add_argument("--overhead-runs", type=int, default=OVERHEAD_RUNS,
                        help="runs of the interleaved in-process pairs (0: none)")
    parser.add_argument("--postgres", default=os.environ.get("JETON_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    parser.add_argument("--only", choices=["login-flood", "redis"], action="append",
                        help="run only these parts and print their figures; no report is written")
    parser.add_argument("--bin", help="the jeton binary to run (with --no-build); by default target/release/jeton")
    options = parser.parse_args()
    d = options.duration
    if options.bin:
        BIN = options.bin

    if shutil.which("wrk") is None:
        print("installing wrk from Debian's packages", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
    if not options.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "jeton"], cwd=ROOT, check=True)

    rows, notes = [], []
    work = tempfile.mkdtemp(prefix="jeton-bench-")
    sqlite_path = os.path.join(work, "bench.db")
    sqlite_url = "sqlite://" + sqlite_path
    jeton(sqlite_url, "migrate")
    # Access tokens outlive the rounds that use them.
    server = Server(sqlite_url, ["--demo", "--trusted-proxy", "127.0.0.1/32", "--access-token-ttl", "1d"])
    seeded = seed(server, sqlite_url, products=20)
    base = server.base + "/api/v1"
    product = seeded["products"][0]
    # The customer's orders row reads a customer with 20 orders of one line
    # (a full first page); the orders/s rows add more only after it.
    for _ in range(20):
        status, placed = http("POST", base + "/orders", {"items": [{"product_id": product, "quantity": 1}]},
                              seeded["ut"])
        assert status == 201, placed
    status, listed = http("GET", base + "/me/orders", token=seeded["ut"])
    assert status == 200 and len(listed["data"]) == 20 and listed["next_cursor"] is None, listed

    def measure(name, url, script, **kw):
        rps, p99, non2xx = wrk(url, d, script, **kw)
        rows.append((name, rps, p99, non2xx))
        print("%-62s %10.0f req/s  p99 %7.2f ms  non-2xx %d" % (name, rps, p99, non2xx), file=sys.stderr)
        return rps, p99

    def interleaved(specs, duration=None):
        """Runs every row once per round, in turn, and reports each row's
        median: drift on a shared machine (other load, clock speed) then
        touches every row alike instead of the ones that happened to run
        during it. `specs`: (key, name, url, script, wrk options)."""
        samples = {key: [] for key, *_ in specs}
        round_samples.update(samples)
        for _ in range(options.rounds):
            for key, name, url, script, kw in specs:
                samples[key].append(wrk(url, duration or d, script, **kw))
                if key in after:
                    after[key]()
        medians = {}
        for key, name, *_ in specs:
            rps = statistics.median(sample[0] for sample in samples[key])
            p99 = statistics.median(sample[1] for sample in samples[key])
            non2xx = sum(sample[2] for sample in samples[key])
            rows.append((name, rps, p99, non2xx))
            print("%-62s %10.0f req/s  p99 %7.2f ms  non-2xx %d" % (name, rps, p99, non2xx), file=sys.stderr)
            medians[key] = (rps, p99)
        return medians

    # Every round's (req/s, p99, non-2xx) of every interleaved row, by key.
    round_samples = {}

    def paired(key, baseline):
        """The median of the rounds' ratios of `key` to `baseline`: two rows
        measured one right after the other drift together, where the ratio
        of their two medians pairs runs from different moments."""
        return statistics.median(a[0] / b[0] for a, b in zip(round_samples[key], round_samples[baseline]))

    rss = []
    after = {"page": lambda: rss.append(server.rss_mb())}
    if options.only:
        print("load average at start: %s" % open("/proc/loadavg").read().strip(), file=sys.stderr)
        if "login-flood" in options.only:
            alone, flood = login_flood(base, product, seeded["pk"], options, rows)
            print("login flood: read p99 %.2f ms at rest, %.2f ms during the flood: %.2fx"
                  % (alone, flood, flood / alone), file=sys.stderr)
        server.stop()
        if "redis" in options.only:
            fleet = fleet_part(work, options, rows, interleaved, paired, round_samples, measure)
            here, total = decision_share(fleet["heavy"])
            print("Redis rows: %s; under the heaviest load: %d of %d limit decisions per process (%s), "
                  "load averages %s" % (fleet["rows decisions"], here, total, fleet["heavy"], fleet["heavy loads"]),
                  file=sys.stderr)
        print("load average at end: %s" % open("/proc/loadavg").read().strip(), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return
    # The floods come from a random client IP per request, which wrk makes
    # in Lua for every request; /healthz driven the same way is their
    # like-for-like baseline (the Lua costs wrk, on the same two cores). The
    # flood from one client IP has an address of its own: the IP wrk really
    # connects from must not be the one refused for the next minute.
    main_rows = interleaved([
        ("healthz", "GET /healthz (no auth, no database)", server.base + "/healthz", get_script(), {}),
        ("product", "GET /api/v1/products/{id}, publishable key", base + "/products/" + product,
         get_script(seeded["pk"]), {}),
        ("page", "GET /api/v1/products?limit=20, publishable key", base + "/products?limit=20",
         get_script(seeded["pk"]), {}),
        ("orders", "GET /api/v1/me/orders, user token, 20 orders of one line", base + "/me/orders",
         get_script(seeded["ut"]), {}),
        ("product sk", "GET /api/v1/products/{id}, secret key", base + "/products/" + product,
         get_script(seeded["sk"]), {}),
        ("product at", "GET /api/v1/products/{id}, OAuth 2.0 access token (of that key's client)",
         base + "/products/" + product, get_script(seeded["at"]), {}),
        ("orders cookie", "GET /api/v1/me/orders, cookie session (from the storefront's origin)",
         base + "/me/orders", get_script(extra_headers={"Cookie": seeded["cookie"], "Origin": BENCH_ORIGIN}), {}),
        ("healthz spread", "GET /healthz, a random client IP per request (the floods' baseline)",
         server.base + "/healthz", get_script(spread_ips=True), {}),
        ("malformed", "flood: malformed tokens (bad checksum)", base + "/products",
         get_script(bad_checksum("pk"), spread_ips=True), {}),
        ("unknown", "flood: checksum-valid unknown tokens (each new)", base + "/products",
         fresh_tokens_script("pk"), {}),
        ("one ip", "flood: malformed tokens from one client IP (429 after 500 a minute)", base + "/products",
         get_script(bad_checksum("pk"), extra_headers={"X-Forwarded-For": "192.0.2.1"}), {}),
    ])
    healthz = main_rows["healthz"][0]
    my_orders_rps = main_rows["orders"][0]
    page_rps = main_rows["page"][0]
    product_rps = main_rows["product"][0]
    # The target is the page-of-20 load on the demo catalogue: the first
    # round, before any flood. The floods then fill the bounded caches
    # (failed authentications per IP, unknown tokens); RSS after them is
    # reported beside it.
    rss_under_load = rss[0]
    notes.append("Server RSS after all the rounds above, floods included: %.1f MB (%s MB after each page-of-20 "
                 "run)." % (server.rss_mb(), ", ".join("%.1f" % r for r in rss)))
    cookie = {"paired": paired("orders cookie", "orders"),
              "rounds": [a[0] / b[0] for a, b in zip(round_samples["orders cookie"], round_samples["orders"])],
              "cookie": main_rows["orders cookie"][0], "bearer": main_rows["orders"][0]}
    access = {"paired": paired("product at", "product sk"),
              "rounds": [a[0] / b[0] for a, b in zip(round_samples["product at"], round_samples["product sk"])],
              "at": main_rows["product at"][0], "sk": main_rows["product sk"][0]}
    floods = {"healthz": main_rows["healthz spread"][0], "malformed": main_rows["malformed"][0],
              "unknown": main_rows["unknown"][0],
              "malformed paired": paired("malformed", "healthz spread"),
              "malformed rounds": [a[0] / b[0] for a, b in zip(round_samples["malformed"],
                                                               round_samples["healthz spread"])]}

    p99_alone, p99_flood = login_flood(base, product, seeded["pk"], options, rows)

    # Usage counting on and off: two more servers on the same database,
    # alike but for `--no-usage-counting` (a switch for this benchmark
    # only), read in turn, paired by round.
    counting = Server(sqlite_url, ["--trusted-proxy", "127.0.0.1/32"])
    not_counting = Server(sqlite_url, ["--trusted-proxy", "127.0.0.1/32", "--no-usage-counting"])
    usage_rows = interleaved([
        ("counted", "GET /api/v1/products/{id}, publishable key, usage counted",
         counting.base + "/api/v1/products/" + product, get_script(seeded["pk"]), {}),
        ("not counted", "the same, usage not counted (`--no-usage-counting`)",
         not_counting.base + "/api/v1/products/" + product, get_script(seeded["pk"]), {}),
    ])
    usage = {"paired": paired("counted", "not counted"),
             "rounds": [a[0] / b[0] for a, b in zip(round_samples["counted"], round_samples["not counted"])],
             "counted": usage_rows["counted"][0], "not counted": usage_rows["not counted"][0]}
    not_counting.stop()
    # A 30-day hourly chart of one client, with a million rows of usage in
    # the table: one request at a time, so that 1/throughput is the time
    # of one answer.
    started = time.time()
    usage["rows"] = insert_usage_rows(sqlite_path, seeded["pk_client"], 1_000_000)
    notes.append("Inserting %d usage rows took %.0f s." % (usage["rows"], time.time() - started))
    month_ago = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 30 * 86400))
    chart = counting.base + "/api/v1/admin/clients/%s/usage?granularity=hour&from=%s" % (seeded["pk_client"],
                                                                                         month_ago)
    status, answer = http("GET", chart, token=seeded["admin"])
    assert status == 200 and len(answer["series"]) == 721, (status, answer.get("granularity"))
    rps, p99 = measure("GET /api/v1/admin/clients/{id}/usage, 30 days hourly, 1M usage rows (1 connection)",
                       chart, get_script(seeded["admin"]), connections=1, threads=1)
    usage["chart mean"] = 1000.0 / rps
    usage["chart p99"] = p99
    counting.stop()

    # Orders on SQLite.
    orders = {}
    orders["sqlite hot"] = measure("orders/s, SQLite, one hot product", base + "/orders", order_script(seeded["ut"], [product]))[0]
    orders["sqlite many"] = measure("orders/s, SQLite, 20 products", base + "/orders", order_script(seeded["ut"], seeded["products"]))[0]
    # OAuth 2.0: client credentials exchanges (each writes its token and its
    # audit event).
    access["exchanges"] = measure("POST /oauth/token, client credentials (SQLite)", server.base + "/oauth/token",
                                  token_exchange_script(seeded["oauth"]["client_id"], seeded["sk"]))[0]

    # Verification at 1k and 1M stored tokens: two servers side by side, one
    # database each, measured in turn.
    insert_user_tokens(sqlite_path, 1000)
    big_path = os.path.join(work, "big.db")
    big_url = "sqlite://" + big_path
    jeton(big_url, "migrate")
    big = Server(big_url, ["--trusted-proxy", "127.0.0.1/32"])
    big_seeded = seed(big, big_url, products=1)
    started = time.time()
    insert_user_tokens(big_path, 1_000_000)
    notes.append("Inserting 1,000,000 user tokens took %.0f s." % (time.time() - started))
    big_base = big.base + "/api/v1"
    scale_rows = interleaved([
        ("1k hit", "user token (cache hit), 1k stored tokens", base + "/products/" + product,
         get_script(seeded["ut"]), {}),
        ("1m hit", "user token (cache hit), 1M stored tokens", big_base + "/products/" + big_seeded["products"][0],
         get_script(big_seeded["ut"]), {}),
        ("1k miss", "unknown tokens (store lookup), 1k stored tokens", base + "/products",
         fresh_tokens_script("ut"), {}),
        ("1m miss", "unknown tokens (store lookup), 1M stored tokens", big_base + "/products",
         fresh_tokens_script("ut"), {}),
    ])
    scale = {key: value[0] for key, value in scale_rows.items()}
    for size in ("hit", "miss"):
        scale["paired " + size] = paired("1m " + size, "1k " + size)
    big.stop()
    server.stop()

    # Limits shared on Redis: two servers on one database, one sharing its
    # limits through Redis, one counting them itself, read in rounds with a
    # key whose limits are checked on every request; then the Redis server
    # stops and the shared one is read again (per-process limits).
    fleet = {}
    if shutil.which("redis-server") is None:
        notes.append("Redis rows skipped: redis-server is not installed (apt-get install redis-server).")
    else:
        fleet = fleet_part(work, options, rows, interleaved, paired, round_samples, measure)

    # PostgreSQL: orders and statements per read.
    pg = {}
    database = "jeton_bench_%s" % secrets.token_hex(4)
    pg_url = options.postgres.rsplit("/", 1)[0] + "/" + database
    try:
        run(["psql", options.postgres, "-c", "CREATE DATABASE %s" % database])
        server = Server(pg_url)
        seeded_pg = seed(server, pg_url, products=20)
        base = server.base + "/api/v1"
        pg["statements"] = statements_per_read(options.postgres, database, server, seeded_pg, d)
        pg["hot"] = measure("orders/s, PostgreSQL, one hot product", base + "/orders",
                            order_script(seeded_pg["ut"], seeded_pg["products"][:1]))[0]
        pg["many"] = measure("orders/s, PostgreSQL, 20 products", base + "/orders",
                             order_script(seeded_pg["ut"], seeded_pg["products"]))[0]
        server.stop()
    except (subprocess.CalledProcessError, SystemExit) as error:
        notes.append("PostgreSQL part skipped: %s" % error)
    finally:
        subprocess.run(["psql", options.postgres, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % database],
                       capture_output=True)
    shutil.rmtree(work, ignore_errors=True)

    micro = {} if options.no_criterion else criterion_results()
    micro_ratios = overhead_ratios(options.overhead_runs)
    write_report(options, rows, healthz, product_rps, page_rps, rss_under_load, p99_alone, p99_flood, floods, orders, scale, pg, cookie,
                 access, micro, micro_ratios, notes, my_orders_rps, fleet, usage)


def write_report(options, rows, healthz, product_rps, page_rps, rss, p99_alone, p99_flood, floods, orders, scale, pg, cookie,
                 access,
                 micro,
                 micro_ratios,
                 notes,
                 my_orders_rps,
                 fleet,
                 usage):
    out = []
    out.append("# Benchmarks\n")
    flags = (" --no-criterion" if options.no_criterion else "") + (
        " --overhead-runs %d" % options.overhead_runs if options.overhead_runs != OVERHEAD_RUNS else "")
    out.append("Produced by `python3 bench/run.py --duration %d --rounds %d%s` on %s. Do not edit by hand: run "
               "the script again (the appendix comes from `bench/notes.md`).\n"
               % (options.duration, options.rounds, flags, time.strftime("%Y-%m-%d")))
    out.append("Machine: %s.\n" % machine())
    out.append("The server and wrk share the machine's cores, as they would in a single-box deployment; "
               "every figure is compared with `/healthz` measured in the same run (wrk: 2 threads, 32 "
               "connections, %d s a run, unless noted). Rows that are compared run in rounds, one after "
               "the other, %d times, and the median is reported, so that drift on the machine touches them "
               "alike; the non-2xx column adds up all rounds. Orders run once.\n" % (options.duration, options.rounds))
    out.append("## Throughput\n")
    out.append("| request | req/s | × /healthz | p99 | non-2xx |")
    out.append("|---|---:|---:|---:|---:|")
    for name, rps, p99, non2xx in rows:
        out.append("| %s | %.0f | %.2f | %.2f ms | %d |" % (name, rps, rps / healthz, p99, non2xx))
    out.append("")
    out.append("## Against the targets\n")
    out.append("| target | measured |")
    out.append("|---|---|")
    out.append("| product by id with a publishable key ≥ 0.8× `/healthz` | %.2f× |" % (product_rps / healthz))
    out.append("| product page of 20 with a publishable key ≥ 0.8× `/healthz` | %.2f× |" % (page_rps / healthz))
    out.append("| `GET /me/orders` with a user token, a customer with 20 orders of one line, ≥ 0.4× `/healthz` | "
               "%.2f× |" % (my_orders_rps / healthz))
    out.append("| with usage counted: product by id, page of 20 and `/me/orders` each ≥ 0.75× `/healthz` | %.2f×, "
               "%.2f×, %.2f× |" % (product_rps / healthz, page_rps / healthz, my_orders_rps / healthz))
    out.append("| reads with usage counted within 5%% of reads without (product by id, two servers on one database) "
               "| %.3f× paired by round (the rounds: %s); %.0f vs %.0f req/s as the medians |"
               % (usage["paired"], ", ".join("%.3f" % r for r in usage["rounds"]), usage["counted"],
                  usage["not counted"]))
    out.append("| a 30-day hourly usage chart of one client, %s usage rows in the table, < 50 ms | %.2f ms a "
               "request on average, p99 %.2f ms |" % ("{:,}".format(usage["rows"]), usage["chart mean"],
                                                      usage["chart p99"]))
    out.append("| malformed-token flood ≥ 0.9× `/healthz`, zero database statements | %.2f× `/healthz` driven the same "
               "way (random client IPs), paired by round (the rounds: %s); %.2f× as the ratio of the two rows' "
               "medians; %.2f× plain `/healthz`; no statement (refused before any storage call) |"
               % (floods["malformed paired"], ", ".join("%.2f" % r for r in floods["malformed rounds"]),
                  floods["malformed"] / floods["healthz"], floods["malformed"] / healthz))
    out.append("| checksum-valid unknown-token flood: at most one indexed lookup per token | %.2f× `/healthz` driven "
               "the same way; one lookup per new token, then a negative cache entry |"
               % (floods["unknown"] / floods["healthz"]))
    out.append("| a read with a cookie session ≥ 0.95× the same read with a bearer user token (`/me/orders`) | "
               "%.2f× paired by round (the rounds: %s); %.0f vs %.0f req/s as the medians |"
               % (cookie["paired"], ", ".join("%.2f" % r for r in cookie["rounds"]), cookie["cookie"],
                  cookie["bearer"]))
    out.append("| a read with an OAuth 2.0 access token ≥ 0.95× the same read with the client's secret key "
               "(`/products/{id}`) | %.2f× paired by round (the rounds: %s); %.0f vs %.0f req/s as the medians |"
               % (access["paired"], ", ".join("%.2f" % r for r in access["rounds"]), access["at"], access["sk"]))
    out.append("| client credentials exchanges per second (`POST /oauth/token`, SQLite; each writes a token and "
               "its audit event) | %.0f/s |" % access["exchanges"])
    out.append("| read p99 during a login flood ≤ 3× read p99 at rest | %.2f ms vs %.2f ms: %.2f× (load average "
               "%s at the flood's start) |"
               % (p99_flood, p99_alone, p99_flood / p99_alone, LOAD_AT_FLOOD[0] if LOAD_AT_FLOOD else "?"))
    out.append("| verification at 1M stored tokens within 10%% of 1k (cache hit) | %.0f vs %.0f req/s: %.2f× as the "
               "ratio of the medians, %.2f× paired by round |"
               % (scale["1m hit"], scale["1k hit"], scale["1m hit"] / scale["1k hit"], scale["paired hit"]))
    out.append("| the same on the store-lookup path (unknown tokens) | %.0f vs %.0f req/s: %.2f× as the ratio of "
               "the medians, %.2f× paired by round |"
               % (scale["1m miss"], scale["1k miss"], scale["1m miss"] / scale["1k miss"], scale["paired miss"]))
    out.append("| server RSS under the page-of-20 load ≤ 50 MB (first round, before the floods) | %.1f MB |" % rss)
    if fleet:
        out.append("| a page read with limits shared on Redis ≥ 0.7× the same read with per-process limits | %.2f× "
                   "paired by round (the rounds: %s); %.0f vs %.0f req/s as the medians |"
                   % (fleet["paired"], ", ".join("%.2f" % r for r in fleet["rounds"]), fleet["limits redis"],
                      fleet["limits local"]))
        out.append("| reads during a Redis outage (served, under per-process limits) | %.0f req/s: %.2f× the "
                   "per-process row |" % (fleet["outage"], fleet["outage"] / fleet["limits local"]))
        here, total = decision_share(fleet["heavy"])
        rows_here, rows_total = decision_share(fleet["rows decisions"])
        out.append("| limit decisions made per process instead of on Redis, Redis up, under the heaviest load "
                   "(target: none) | %d of %d (%.3f%%) while reads of the limited key (32 connections) and a "
                   "malformed-token flood from random client IPs (16 connections, a failure counted on Redis "
                   "per request) ran together, %d rounds of 1 s at load averages %s; %d of %d in the two Redis "
                   "rows above; %d slow answers, %d outages |"
                   % (here, total, 100.0 * here / max(total, 1), len(fleet["heavy loads"]),
                      "–".join("%.1f" % x for x in (min(fleet["heavy loads"]), max(fleet["heavy loads"]))),
                      rows_here, rows_total, fleet["heavy"].get("slow_answers_total", 0)
                      + fleet["rows decisions"].get("slow_answers_total", 0),
                      fleet["heavy"].get("fallbacks_total", 0) + fleet["rows decisions"].get("fallbacks_total", 0)))
    if "statements" in pg:
        transactions, writes, reads, background = pg["statements"]
        out.append("| database statements per authenticated read (PostgreSQL) | %.4f transactions and %.4f row "
                   "writes per read, over %.0f reads (after subtracting %d background transactions of an idle "
                   "period as long) |" % (transactions, writes, reads, background))
    hit = micro.get("verify: cache hit")
    if hit:
        out.append("| cache-hit verification ≤ 2 µs | %.0f ns |" % hit)
    if micro_ratios:
        for label, _ in OVERHEAD_PAIRS:
            runs = micro_ratios[label]
            out.append("| %s | %.3f× (median of %d interleaved runs: %s; %.2f µs vs %.2f µs) |"
                       % (label, statistics.median(run[2] for run in runs), len(runs),
                          ", ".join("%.3f" % run[2] for run in runs),
                          statistics.median(run[1] for run in runs) / 1000,
                          statistics.median(run[0] for run in runs) / 1000))
    out.append("")
    out.append("## Orders per second\n")
    out.append("| database | one hot product | 20 products |")
    out.append("|---|---:|---:|")
    out.append("| SQLite | %.0f | %.0f |" % (orders["sqlite hot"], orders["sqlite many"]))
    if "hot" in pg:
        out.append("| PostgreSQL | %.0f | %.0f |" % (pg["hot"], pg["many"]))
    out.append("")
    if micro:
        out.append("## Micro-benchmarks (criterion, in process)\n")
        out.append("| benchmark | time per call |")
        out.append("|---|---:|")
        for name, nanos in micro.items():
            out.append("| %s | %.0f ns |" % (name, nanos))
        out.append("")
    out.append("## Notes\n")
    for note in notes:
        out.append("- " + note)
    out.append("- Malformed tokens are refused before any storage call; checksum-valid unknown tokens cost one "
               "indexed lookup each (the flood sends a new one every request), then are remembered as negatives "
               "for 5 s. The two floods come from random client IPs (through a trusted proxy): from a single IP, the per-IP limit on failed "
               "authentications answers 429 after 500 failures a minute (the one-IP row).")
    if micro_ratios:
        out.append("- The in-process ratios come from `crates/jeton/benches/auth_overhead.rs`: rounds of 400 "
                   "requests through one side of a pair, then 400 through the other, alternating which goes "
                   "first, 301 rounds; a run reports the median of its rounds' ratios, and the script runs it "
                   "%d times. criterion's times (when run) measure each side for seconds on its own, "
                   "so their ratios drift with the machine." % options.overhead_runs)
    out.append("- The per-customer limits (requests and orders per minute) are off for the whole run "
               "(`--customer-rate-limit 0 --customer-order-limit 0`): the user-token rows and the orders hammer "
               "one customer on purpose.")
    out.append("- The Redis rows use a key with limits of 10^6 a minute (the most a client may have), per key and per IP, read for 1 s a round, so that every request "
               "goes through the limit backend without being refused; shared on Redis, a process leases about 1% "
               "of a limit at a time (docs/fleet.md).")
    out.append("- Reads are served from in-process caches; the per-request database work is zero, and "
               "`last_used_at` and the usage counts are written in one batch every 5 s.")
    out.append("")
    if os.path.exists(NOTES):
        with open(NOTES) as notes_file:
            out.append(notes_file.read().rstrip("\n"))
            out.append("")
    with open(options.output, "w") as report:
        report.write("\n".join(out))
    print("wrote " + options.output, file=sys.stderr)


if __name__ == "__main__":
    main()
