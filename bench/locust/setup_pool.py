#!/usr/bin/env python3
"""Prepares a running Emporium for the Locust mix, through its public API only:

  setup_pool.py BASE_URL OUT.json USERS [SKUS]     (LOCUST_BROWSER_USERS more for shoppers.mjs)

- signs in as the admin named by LOCUST_ADMIN_EMAIL / LOCUST_ADMIN_PASSWORD (created by
  bench/locust.sh with `emporium admin create`) and restocks SKUS in-stock products with
  1,000,000 units each, so checkouts never run out during the run;
- registers USERS customers, verifies each through the dev mailbox and saves the 4242… test card
  on each account, so the mix measures the shop and not argon2 or the sign-up limit;
- collects what the browsing users need (product ids, slugs, SKUs, category slugs, search words).

Everything lands in OUT.json, which bench/locust/locustfile.py reads (LOCUST_POOL).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

PASSWORD = "Plum-Harbour-Lantern-42"
CARD = "4242424242424242"


def call(base, method, path, body=None, token=None, headers=None, expect=(200, 201, 202, 204)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                raw = res.read()
                status = res.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        if status == 429 and attempt < 4:  # the sign-up limit: wait for the budget
            time.sleep(2)
            continue
        break
    if status not in expect:
        sys.exit(f"{method} {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def mailed_token(base, email):
    """The verification token of the newest mail to `email` (link `?token=` or a token line)."""
    q = urllib.parse.urlencode({"to": email})
    for _ in range(150):
        mails = call(base, "GET", f"/api/v1/dev/mailbox?{q}")
        for mail in mails or []:
            body = mail.get("body", "")
            token = token_in(body)
            if token:
                return token
        time.sleep(0.2)
    sys.exit(f"no verification mail for {email} within 30 s")


def token_in(body):
    import re
    m = re.search(r"[?&]token=([A-Za-z0-9_-]+)", body)
    if m:
        return m.group(1)
    m = re.search(r"^\s*([A-Za-z0-9_-]{32,})\s*$", body, re.M)
    return m.group(1) if m else None


def main():
    base, out, users = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3])
    skus_wanted = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    run = os.environ.get("LOCUST_RUN", uuid.uuid4().hex[:8])
    started = time.time()

    # Catalog: everything the browsing users pick from.
    products, cursor = [], None
    while len(products) < 2000:
        q = "/api/v1/catalog/products?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = call(base, "GET", q)
        products += page["items"]
        cursor = page.get("next")
        if not cursor:
            break
    if not products:
        sys.exit("the catalog is empty (start the server with the demo catalog)")
    tree = call(base, "GET", "/api/v1/catalog/categories")
    cats, todo = [], list(tree.get("roots", []) if isinstance(tree, dict) else tree)
    while todo:  # the tree, flattened
        c = todo.pop()
        cats.append(c)
        todo += c.get("children") or []
    words = sorted({p["brand"] for p in products if p.get("brand")})
    for p in products:
        for v in (p.get("attributes") or {}).values():
            if isinstance(v, str) and len(v) > 3:
                words.append(v)
    words = sorted(set(words))[:40]

    # Stock: restock the SKUs checkouts buy, as the admin.
    admin = call(base, "POST", "/api/v1/auth/login",
                 {"email": os.environ["LOCUST_ADMIN_EMAIL"], "password": os.environ["LOCUST_ADMIN_PASSWORD"]})["access_token"]
    buyable = [p for p in products if p.get("status", "active") == "active"][:skus_wanted]
    for p in buyable:
        call(base, "POST", f"/api/v1/inventory/{urllib.parse.quote(p['sku'])}/adjustments",
             {"kind": "restock", "quantity": 1_000_000, "reason": "locust load test"}, token=admin,
             headers={"Idempotency-Key": f"locust-{run}-{p['sku']}"})

    # Customers: register, verify, save a card.
    browsers = int(os.environ.get("LOCUST_BROWSER_USERS", "0"))
    emails = [f"locust-{run}-{i}@example.com" for i in range(users + browsers)]

    def register(email):
        call(base, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Locust Shopper"})

    def finish(email):
        call(base, "POST", "/api/v1/auth/verify-email", {"token": mailed_token(base, email)})
        access = call(base, "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})["access_token"]
        pm = call(base, "POST", "/api/v1/payments/methods",
                  {"card_number": CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123",
                   "holder_name": "Locust Shopper", "save": True}, token=access)["id"]
        return {"email": email, "password": PASSWORD, "payment_method": pm}

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(register, emails))
        accounts = list(pool.map(finish, emails))

    pool_doc = {
        "run": run,
        "password": PASSWORD,
        "users": accounts[:users],
        "browser_users": accounts[users:],
        "products": [{"id": p["id"], "slug": p.get("slug"), "sku": p["sku"]} for p in products],
        "buy_skus": [p["sku"] for p in buyable],
        "categories": [{"id": c["id"], "slug": c["slug"]} for c in cats if c.get("slug")],
        "words": words,
    }
    with open(out, "w") as f:
        json.dump(pool_doc, f)
    print(f"pool: {len(accounts)} verified users with a saved card, {len(products)} products, "
          f"{len(buyable)} SKUs restocked, {len(pool_doc['categories'])} categories "
          f"({time.time() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
