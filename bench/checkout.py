#!/usr/bin/env python3
"""Helpers of bench/checkout.sh (standard library only).

  checkout.py setup BASE WORKDIR USERS SKUS   users (registered, verified through the dev mailbox,
                                              logged in, one saved card each) and in-stock SKUs,
                                              written to WORKDIR/users.txt and WORKDIR/skus.txt
  checkout.py metrics BASE OUT                saves /metrics to OUT
  checkout.py breakdown BEFORE AFTER          per-step mean latency during the run (sum/count deltas)
  checkout.py check MODE WORKDIR              orders in the ordering DB vs the 201s wrk saw, and
                                              one captured payment (same amount) per order
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PASSWORD = "correct horse battery staple"
CARD = "4242424242424242"


def call(base, method, path, body=None, token=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    if status not in expect:
        sys.exit(f"{method} {path}: {status} {raw[:300]!r}")
    return json.loads(raw) if raw else None


def mailed_token(base, email):
    deadline = time.time() + 60
    while time.time() < deadline:
        for mail in call(base, "GET", f"/api/v1/dev/mailbox?to={email}") or []:
            if "Confirm" in mail.get("subject", ""):
                for line in mail["body"].splitlines():
                    line = line.strip()
                    if len(line) == 43 and " " not in line:
                        return line
        time.sleep(0.1)
    sys.exit(f"no verification mail for {email} within 60 s (is EMPORIUM_SMTP_URL set?)")


def setup(base, workdir, users, skus):
    run = os.environ.get("BENCH_RUN", str(os.getpid()))
    emails = [f"bench-{run}-{i}@example.com" for i in range(users)]

    def register(email):
        # 202: the same answer whether or not the address is taken (no account enumeration).
        call(base, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Bench"},
             expect=(201, 202))

    def finish(email):
        token = mailed_token(base, email)
        call(base, "POST", "/api/v1/auth/verify-email", {"token": token})
        access = call(base, "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})["access_token"]
        pm = call(base, "POST", "/api/v1/payments/methods",
                  {"card_number": CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123", "holder_name": "Bench", "save": True},
                  token=access)["id"]
        return access, pm

    # argon2id dominates (one hash per sign-up and per login): 2 workers match the 2 cores.
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(register, emails))
        accounts = list(pool.map(finish, emails))
    with open(os.path.join(workdir, "users.txt"), "w") as f:
        for access, pm in accounts:
            f.write(f"{access} {pm}\n")

    found, cursor = [], None
    while len(found) < skus:
        q = "/api/v1/catalog/products?in_stock=true&sort=newest&limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = call(base, "GET", q)
        found += [p["sku"] for p in page["items"] if p.get("status", "active") == "active"]
        cursor = page.get("next")
        if not cursor:
            break
    if len(found) < skus:
        sys.exit(f"only {len(found)} in-stock products; seed more")
    found = found[:skus]
    # Availability straight from inventory (the catalog's in_stock flag lags by an event).
    for i in range(0, len(found), 100):
        chunk = found[i:i + 100]
        avail = call(base, "GET", "/api/v1/inventory?" + "&".join("sku=" + s for s in chunk))
        rows = avail.get("items", avail) if isinstance(avail, dict) else avail
        low = [r for r in rows if isinstance(r, dict) and r.get("available", 0) < 1000]
        if low:
            sys.exit(f"SKUs with little stock: {low[:3]}")
    with open(os.path.join(workdir, "skus.txt"), "w") as f:
        f.write("\n".join(found) + "\n")
    print(f"{len(accounts)} users with a saved card, {len(found)} SKUs", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# /metrics

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
            try:
                out[(m.group(1), labels)] = float(m.group(4))
            except ValueError:
                pass
    return out


def breakdown(before_path, after_path):
    before, after = parse(before_path), parse(after_path)
    rows = []
    for (name, labels), total in after.items():
        if not name.endswith("_sum"):
            continue
        base = name[:-4]
        if base not in ("order_saga_step_duration_seconds", "service_client_duration_seconds",
                        "http_request_duration_seconds", "events_handle_duration_seconds"):
            continue
        count = after.get((base + "_count", labels), 0) - before.get((base + "_count", labels), 0)
        if count <= 0:
            continue
        s = total - before.get((name, labels), 0)
        d = dict(labels)
        if base == "http_request_duration_seconds":
            what = f"http {d.get('method', '')} {d.get('route', d.get('path', ''))} {d.get('status', '')}"
        elif base == "service_client_duration_seconds":
            what = f"client -> {d.get('target')} ({d.get('outcome')})"
        elif base == "order_saga_step_duration_seconds":
            what = f"saga step {d.get('step')} ({d.get('outcome')})"
        else:
            what = f"event handler {d.get('consumer')}"
        # Recent-window quantiles of the summaries (histograms have buckets instead).
        q = {k: after.get((base, tuple(sorted(labels + (("quantile", k),)))))
             for k in ("0.5", "0.99")}
        rows.append((what, int(count), s / count * 1000, q))
    rows.sort(key=lambda r: (-r[1] * r[2]))
    print(f"{'what':<62} {'count':>8} {'mean ms':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for what, count, mean, q in rows:
        fmt = lambda v: f"{v * 1000:8.2f}" if v is not None else f"{'-':>8}"
        print(f"{what:<62} {count:>8} {mean:9.2f} {fmt(q['0.5'])} {fmt(q['0.99'])}")
    # Invoice numbers are given in batches (one lock of the counter row per batch).
    delta = lambda key: (sum(v for (n, _), v in after.items() if n == key)
                         - sum(v for (n, _), v in before.items() if n == key))
    batches = delta("order_invoice_batch_size_count")
    if batches > 0:
        print(f"invoice numbering: {int(batches)} transactions, "
              f"{delta('order_invoice_batch_size_sum') / batches:.2f} orders each on average")


# ---------------------------------------------------------------------------------------------
# Cross-check

def rows_sqlite(path, sql):
    import sqlite3
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def rows_pg(url, sql):
    # Retried: with 7 pools of 10 the bench process alone holds up to 70 of PostgreSQL's
    # max_connections (100 by default), and other clients of the server may take the rest.
    for attempt in range(10):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", url, "-c", sql], capture_output=True, text=True)
        if r.returncode == 0:
            break
        print(f"  psql failed ({r.stderr.strip()[:200]}); retrying", file=sys.stderr)
        time.sleep(3)
    else:
        sys.exit(f"psql kept failing on {url}")
    out = r.stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


def check(mode, workdir):
    ids_201 = set()
    for name in os.listdir(workdir):
        if name.startswith("ok-") and name.endswith(".txt"):
            with open(os.path.join(workdir, name)) as f:
                ids_201.update(line.strip().replace("-", "").lower() for line in f if line.strip())
    n201 = 0
    for name in os.listdir(workdir):
        if name.startswith("ok-") and name.endswith(".txt"):
            with open(os.path.join(workdir, name)) as f:
                n201 += sum(1 for line in f if line.strip())
    with open(os.path.join(workdir, "sent.txt")) as f:
        sent, answered = (int(x) for x in f.read().split())
    prefix = open(os.path.join(workdir, "run.txt")).read().strip()
    if mode == "embedded":
        data = os.environ["EMPORIUM_DATA_DIR"]
        hexid = "lower(hex({}))"
        q_orders = lambda sql: rows_sqlite(os.path.join(data, "ordering.db"), sql)
        q_pay = lambda sql: rows_sqlite(os.path.join(data, "payments.db"), sql)
    else:
        hexid = "replace({}::text, '-', '')"
        q_orders = lambda sql: rows_pg(os.environ["EMPORIUM_ORDERING_DATABASE_URL"], sql)
        q_pay = lambda sql: rows_pg(os.environ["EMPORIUM_PAYMENTS_DATABASE_URL"], sql)
    def fetch():
        orders = q_orders(
            f"SELECT c.idem_key, {hexid.format('o.id')}, o.status, o.total FROM order_claims c "
            f"JOIN orders o ON o.id = c.order_id WHERE c.idem_key LIKE '{prefix}-%'")
        orphans = q_orders(
            f"SELECT count(*) FROM order_claims c WHERE c.idem_key LIKE '{prefix}-%' "
            "AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = c.order_id)")[0][0]
        return orders, int(orphans)

    # Requests wrk abandoned at the end were cancelled mid-saga on the server (the client went
    # away); the recovery loop resumes them once their 30 s lease lapses. Wait for that.
    deadline = time.time() + 90
    while True:
        orders, claims_only = fetch()
        unsettled = [o for o in orders if o[2] in ("pending", "awaiting_payment", "paid")]
        if not unsettled or time.time() > deadline:
            break
        print(f"  waiting for {len(unsettled)} abandoned orders to be finished by the saga recovery...",
              file=sys.stderr)
        time.sleep(5)
    payments = q_pay(
        f"SELECT {hexid.format('p.order_id')}, p.status, p.amount, "
        "(SELECT count(*) FROM payment_ledger l WHERE l.payment_id = p.id AND l.kind = 'capture'), "
        "(SELECT coalesce(sum(l.amount), 0) FROM payment_ledger l WHERE l.payment_id = p.id AND l.kind = 'capture') "
        "FROM payments p")
    # order id -> (idempotency key, status, total)
    by_id = {oid: (k, status, int(total)) for k, oid, status, total in orders}
    captured = {}
    for oid, status, amount, n_capture, captured_sum in payments:
        if status == "captured":
            captured.setdefault(oid, []).append((int(amount), int(n_capture), int(captured_sum)))

    problems = []
    if len(ids_201) != n201:
        problems.append(f"{n201} answers 201 but {len(ids_201)} distinct order ids in them")
    missing = ids_201 - set(by_id)
    if missing:
        problems.append(f"{len(missing)} answered 201 but have no order of this run, e.g. {sorted(missing)[:3]}")
    extra = set(by_id) - ids_201
    in_flight = sent - answered
    if len(extra) + claims_only > in_flight:
        problems.append(f"{len(extra)} orders without a 201 and {claims_only} claims without an order: "
                        f"more than the {in_flight} requests wrk sent but never saw answered")
    not_confirmed = [v[1] for v in by_id.values() if v[1] != "confirmed"]
    if not_confirmed:
        problems.append(f"{len(not_confirmed)} orders not confirmed: {sorted(set(not_confirmed))}")
    bad_pay = []
    for oid, (k, status, total) in by_id.items():
        pays = captured.get(oid, [])
        if len(pays) != 1 or pays[0] != (total, 1, total):
            bad_pay.append((k, status, total, pays))
    if bad_pay:
        problems.append(f"{len(bad_pay)} orders without exactly one captured payment (one capture "
                        f"ledger entry) of their total, e.g. {bad_pay[:3]}")
    stray = set(captured) - set(by_id)
    if stray:
        problems.append(f"{len(stray)} captured payments for orders this run does not know")
    print(f"cross-check: {n201} answers 201 | {len(by_id)} orders of this run in the ordering DB "
          f"({len(extra)} of them for requests wrk abandoned at the end: {in_flight} sent, never "
          f"answered; {claims_only} abandoned between claiming the key and writing the order left "
          f"a claim without an order) | {sum(len(v) for v in captured.values())} captured payments, "
          f"{sum(p[0][0] for p in captured.values() if p)} minor units captured = "
          f"{sum(v[2] for v in by_id.values())} in order totals")
    # Events: each confirmed order's `ordering.order.confirmed` becomes exactly one mail to its
    # buyer once the outboxes drain (none lost, none delivered twice), broker restarts included.
    run = prefix.removeprefix("bench")
    if mode == "embedded":
        q_mail = lambda sql: rows_sqlite(os.path.join(data, "notifications.db"), sql)
    else:
        q_mail = lambda sql: rows_pg(os.environ["EMPORIUM_NOTIFICATIONS_DATABASE_URL"], sql)
    confirmed = sum(1 for v in by_id.values() if v[1] == "confirmed")
    deadline = time.time() + 120
    while True:
        mails = int(q_mail("SELECT count(*) FROM notification_deliveries WHERE kind = 'order_confirmed' "
                           f"AND recipient LIKE 'bench-{run}-%'")[0][0])
        if mails >= confirmed or time.time() > deadline:
            break
        print(f"  waiting for {confirmed - mails} order-confirmed mails (events still on their way)...",
              file=sys.stderr)
        time.sleep(3)
    if mails != confirmed:
        problems.append(f"{mails} order-confirmed mails for {confirmed} confirmed orders: "
                        + ("events lost" if mails < confirmed else "events delivered twice"))
    print(f"events: {mails} order-confirmed mails for {confirmed} confirmed orders")
    if problems:
        for p in problems:
            print("cross-check FAILED: " + p)
        sys.exit(1)
    print("cross-check OK: every 201 is one confirmed order with exactly one captured payment of its "
          "total, and exactly one order-confirmed mail")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "setup":
        setup(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "metrics":
        # /metrics answers only to the scrape token the server was started with.
        req = urllib.request.Request(
            args[0] + "/metrics",
            headers={"Authorization": "Bearer " + os.environ.get("EMPORIUM_METRICS_TOKEN", "")},
        )
        with urllib.request.urlopen(req, timeout=30) as r, open(args[1], "wb") as f:
            f.write(r.read())
    elif cmd == "breakdown":
        breakdown(args[0], args[1])
    elif cmd == "check":
        check(args[0], args[1])
    else:
        sys.exit(__doc__)
