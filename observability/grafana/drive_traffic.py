#!/usr/bin/env python3
"""Drives a little of everything through a running Emporium so every dashboard panel has data.

Used by the dashboard-query check (.ci/check-observability-configs.sh --live) before
check_dashboards.py runs, and usable against any running instance (embedded or the gateway):

    python3 observability/grafana/drive_traffic.py --url http://127.0.0.1:8080 \
        [--admin-email admin@example.com --admin-password '...'] [--rounds 3]

Per round: storefront pages (home, category, product, search, cart, login), the catalog API,
a new shopper who registers, verifies (dev mailbox), logs in, adds to the cart and checks out
with the test card 4242 4242 4242 4242, then once more with the declined card 4000 0000 0000 0002
(a payment failure), a few 404s and a wrong password. With administrator credentials it also
refunds one of the paid orders (refunds_total) and reads the admin status page.

Only the standard library; exits non-zero when the shop did not take a single order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

PASSWORD = "correct horse battery staple"
ADDRESS = {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "Berlin",
           "postal_code": "10115", "country": "DE"}


class Shop:
    def __init__(self, url: str, verbose: bool) -> None:
        self.url = url.rstrip("/")
        self.verbose = verbose

    def call(self, method: str, path: str, body: object | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, object | str]:
        data = None
        hdrs = {"accept": "application/json, text/html"}
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["content-type"] = "application/json"
        if token:
            hdrs["authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("content-type", "")
        if self.verbose:
            print(f"  {method} {path} -> {status}", file=sys.stderr)
        if "json" in ctype:
            try:
                return status, json.loads(raw)
            except ValueError:
                pass
        return status, raw.decode("utf-8", "replace")

    def get(self, path: str, **kw) -> tuple[int, object | str]:
        return self.call("GET", path, **kw)


def login(shop: Shop, email: str, password: str) -> str | None:
    status, body = shop.call("POST", "/api/v1/auth/login", {"email": email, "password": password})
    return body.get("access_token") if status == 200 and isinstance(body, dict) else None


def new_shopper(shop: Shop) -> tuple[str, str] | None:
    email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
    status, _ = shop.call("POST", "/api/v1/auth/register",
                          {"email": email, "password": PASSWORD, "name": "Load Shopper"})
    if status not in (200, 201, 202):
        print(f"register answered {status}", file=sys.stderr)
        return None
    token = None
    for _ in range(50):  # the verification mail arrives through the bus a moment later
        status, mail = shop.get("/api/v1/dev/mailbox?" + urllib.parse.urlencode({"to": email}))
        if status == 200 and isinstance(mail, list) and mail:
            try:
                token = mail[0]["body"].split("\n\n")[2].strip()
            except (KeyError, IndexError):
                token = None
            break
        time.sleep(0.2)
    if token:
        shop.call("POST", "/api/v1/auth/verify-email", {"token": token})
    access = login(shop, email, PASSWORD)
    return (email, access) if access else None


def browse(shop: Shop) -> list[dict]:
    status, listing = shop.get("/api/v1/catalog/products?sort=price_asc&limit=20")
    items = listing.get("items", []) if isinstance(listing, dict) else []
    for path in ("/", "/cart", "/login", "/register", "/search?q=a", "/api/v1/catalog/categories",
                 "/api/v1/catalog/search?q=the&limit=5", "/api/v1/catalog/suggest?q=c",
                 "/does-not-exist", "/api/v1/catalog/products/00000000-0000-0000-0000-000000000000"):
        shop.get(path)
    for item in items[:5]:
        if item.get("slug"):
            shop.get(f"/p/{item['slug']}")
        if item.get("id"):
            shop.get(f"/api/v1/catalog/products/{item['id']}")
        if item.get("sku"):
            shop.get("/api/v1/inventory?" + urllib.parse.urlencode({"sku": item["sku"]}))
        if item.get("brand"):
            shop.get("/api/v1/catalog/search?" + urllib.parse.urlencode({"q": item["brand"], "limit": 3}))
    status, cats = shop.get("/api/v1/catalog/categories")
    if isinstance(cats, dict):
        cats = cats.get("items", [])
    for cat in (cats if isinstance(cats, list) else [])[:3]:
        if isinstance(cat, dict) and cat.get("slug"):
            shop.get(f"/c/{cat['slug']}")
    return items


def checkout(shop: Shop, access: str, skus: list[str], card: str, key: str) -> dict | None:
    status, pm = shop.call("POST", "/api/v1/payments/methods", {
        "card_number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123", "save": True}, token=access)
    if status not in (200, 201) or not isinstance(pm, dict):
        print(f"saving card {card[-4:]} answered {status}: {pm}", file=sys.stderr)
        return None
    # The first product with stock left (the cheapest sell out after a few runs).
    for sku in skus:
        status, _ = shop.call("POST", "/api/v1/cart/items", {"sku": sku, "quantity": 1}, token=access)
        if status in (200, 201):
            break
    else:
        print("no product with stock left among the 20 cheapest", file=sys.stderr)
        return None
    shop.get("/api/v1/cart", token=access)
    status, order = shop.call("POST", "/api/v1/orders", {
        "from_cart": True, "shipping_method": "standard", "payment_method": pm["id"],
        "shipping_address": ADDRESS}, token=access, headers={"Idempotency-Key": key})
    if not isinstance(order, dict):
        print(f"order answered {status}: {str(order)[:200]}", file=sys.stderr)
        return None
    return order


def refund(shop: Shop, admin: str, order: dict) -> bool:
    order_id = order.get("id")
    status, full = shop.get(f"/api/v1/orders/{order_id}", token=admin)
    full = full if isinstance(full, dict) else order
    payment_id = full.get("payment_id") or (full.get("payment") or {}).get("id")
    if not payment_id:
        status, payments = shop.get("/api/v1/payments?" + urllib.parse.urlencode({"order_id": order_id}),
                                    token=admin)
        items = payments.get("items", []) if isinstance(payments, dict) else []
        payment_id = items[0]["id"] if items else None
    if not payment_id:
        print(f"no payment id for order {order_id}", file=sys.stderr)
        return False
    status, body = shop.call("POST", f"/api/v1/payments/{payment_id}/refunds",
                             {"amount": 1, "reason": "dashboard check"}, token=admin,
                             headers={"Idempotency-Key": f"refund-{uuid.uuid4().hex}"})
    if status not in (200, 201, 202):
        print(f"refund answered {status}: {body}", file=sys.stderr)
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--admin-email")
    ap.add_argument("--admin-password")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    shop = Shop(args.url, args.verbose)

    admin = login(shop, args.admin_email, args.admin_password) if args.admin_email else None
    if args.admin_email and not admin:
        print("administrator login failed", file=sys.stderr)
    confirmed, declined, refunded = 0, 0, 0
    for n in range(args.rounds):
        items = browse(shop)
        if not items:
            print("the catalog is empty: no orders possible", file=sys.stderr)
            break
        shop.call("POST", "/api/v1/auth/login", {"email": "nobody@example.com", "password": "wrong password 1"})
        who = new_shopper(shop)
        if not who:
            continue
        email, access = who
        shop.get("/api/v1/users/me", token=access)
        skus = [i["sku"] for i in items[n % len(items):] + items[:n % len(items)] if i.get("sku")]
        sku = skus[0]
        order = checkout(shop, access, skus, "4242424242424242", f"drive-{uuid.uuid4().hex}")
        if order and order.get("status") in ("confirmed", "paid"):
            confirmed += 1
            if admin and refund(shop, admin, order):
                refunded += 1
        elif order:
            print(f"order ended {order.get('status')}", file=sys.stderr)
        # A declined card: the saga ends payment_failed and releases the stock.
        bad = checkout(shop, access, skus, "4000000000000002", f"drive-{uuid.uuid4().hex}")
        if bad is not None:
            declined += 1
        # A cart left behind (cart to order conversion below 100 %).
        shop.call("POST", "/api/v1/cart/items", {"sku": sku, "quantity": 1}, token=access)
        shop.get("/api/v1/orders", token=access)
    if admin:
        for path in ("/api/v1/inventory/low-stock", "/admin", "/admin/status"):
            shop.get(path, token=admin)
    print(f"traffic: {confirmed} orders confirmed, {declined} declined checkouts, {refunded} refunds")
    return 0 if confirmed else 1


if __name__ == "__main__":
    sys.exit(main())
