"""The seeds' load mix for Emporium, run by bench/locust.sh (headless) or by hand:

    LOCUST_POOL=target/bench/locust/pool.json target/locust-venv/bin/locust \
        -f bench/locust/locustfile.py --host http://127.0.0.1:8080

Three kinds of users, weighted 3 : 5 : 2 (the seeds' 30% users, 50% catalog, 20% orders):

- AccountUser  — sign-up (register → 202, token from the dev mailbox, verify, first login) now and
                 then; otherwise log in as a pre-created pool user, read and update the profile,
                 rotate the refresh token, list the saved cards.
- CatalogUser  — storefront pages (home, category, search, product page) and the catalog API
                 (list pages with filters and sorts, search, product by id and slug, facets,
                 related products, reviews, stock levels).
- ShopperUser  — signs in once as its own pool user, then: put a product in the cart, read the
                 cart, quote, check out from the cart with the saved 4242… card and a fresh
                 Idempotency-Key (201 `confirmed`; or 202 `awaiting_payment` while the provider is
                 still answering, then the order is polled until `confirmed`, as docs/api.md says),
                 read the order and the history.

The pool (verified users with a saved card, restocked SKUs, catalog ids) comes from
bench/locust/setup_pool.py, so the mix measures the shop, not argon2 or the sign-up limit.
Money values are {amount, currency} objects; a checkout that is not `confirmed` is a failure.
"""
import itertools
import json
import os
import random
import threading
import time
import urllib.parse
import uuid

from locust import FastHttpUser, between, task

POOL = json.load(open(os.environ.get("LOCUST_POOL", "target/bench/locust/pool.json")))
ADDRESS = {"name": "Locust Shopper", "line1": "12 Analytical Row", "city": "Berlin",
           "postal_code": "10115", "country": "DE"}
WAIT = (float(os.environ.get("LOCUST_WAIT_MIN", "0.1")), float(os.environ.get("LOCUST_WAIT_MAX", "0.5")))

# Each shopper gets a pool user of its own (its own cart); account users share the rest.
_users = POOL["users"]
_shoppers_taken = itertools.count()
_lock = threading.Lock()


def _own_user():
    with _lock:
        i = next(_shoppers_taken)
    return _users[i % len(_users)]


def _json(res):
    try:
        return res.json()
    except Exception:  # noqa: BLE001 - a non-JSON answer is reported as a failure below
        return None


class _Base(FastHttpUser):
    abstract = True
    wait_time = between(*WAIT)

    def login(self, email, password):
        with self.client.post("/api/v1/auth/login", json={"email": email, "password": password},
                              name="POST /api/v1/auth/login", catch_response=True) as res:
            body = _json(res)
            if res.status_code != 200 or not body or "access_token" not in body:
                res.failure(f"login {res.status_code}: {res.text[:200] if res.text else ''}")
                return None
            return body

    def auth(self):
        return {"Authorization": f"Bearer {self.access}"}


class AccountUser(_Base):
    """30%: register / login / profile."""
    weight = 3

    def on_start(self):
        self.user = random.choice(_users)
        self.access = self.refresh = None
        self.sign_in()

    def sign_in(self):
        body = self.login(self.user["email"], self.user["password"])
        if body:
            self.access, self.refresh = body["access_token"], body["refresh_token"]

    @task(1)
    def register(self):
        email = f"locust-{POOL['run']}-new-{uuid.uuid4().hex[:12]}@example.com"
        with self.client.post("/api/v1/auth/register", name="POST /api/v1/auth/register", catch_response=True,
                              json={"email": email, "password": POOL["password"], "name": "New Shopper"}) as res:
            if res.status_code != 202:
                res.failure(f"register answered {res.status_code}")
                return
        token = None
        q = urllib.parse.urlencode({"to": email})
        deadline = time.time() + 10
        while token is None and time.time() < deadline:
            res = self.client.get(f"/api/v1/dev/mailbox?{q}", name="GET /api/v1/dev/mailbox?to=[email]")
            for mail in _json(res) or []:
                token = _token_in(mail.get("body", ""))
            if token is None:
                time.sleep(0.2)
        if token is None:
            self.environment.events.request.fire(
                request_type="MAIL", name="verification mail within 10 s", response_time=10_000,
                response_length=0, exception=Exception("no verification mail within 10 s"), context={})
            return
        self.client.post("/api/v1/auth/verify-email", json={"token": token}, name="POST /api/v1/auth/verify-email")
        self.login(email, POOL["password"])

    @task(3)
    def login_again(self):
        self.sign_in()

    @task(6)
    def profile(self):
        if not self.access:
            return self.sign_in()
        with self.client.get("/api/v1/users/me", headers=self.auth(), name="GET /api/v1/users/me",
                             catch_response=True) as res:
            if res.status_code == 401:  # access token expired: sign in again
                res.success()
                return self.sign_in()
            if res.status_code != 200:
                res.failure(f"{res.status_code}")

    @task(1)
    def update_profile(self):
        if not self.access:
            return self.sign_in()
        self.client.put("/api/v1/users/me", headers=self.auth(), json={"name": f"Shopper {random.randint(1, 9999)}"},
                        name="PUT /api/v1/users/me")

    @task(2)
    def rotate(self):
        if not self.refresh:
            return self.sign_in()
        with self.client.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh},
                              name="POST /api/v1/auth/refresh", catch_response=True) as res:
            body = _json(res)
            if res.status_code != 200 or not body:
                res.failure(f"refresh {res.status_code}")
                return
            self.access, self.refresh = body["access_token"], body["refresh_token"]

    @task(2)
    def cards(self):
        if not self.access:
            return self.sign_in()
        self.client.get("/api/v1/payments/methods", headers=self.auth(), name="GET /api/v1/payments/methods")


def _token_in(body):
    import re
    m = re.search(r"[?&]token=([A-Za-z0-9_-]+)", body)
    if m:
        return m.group(1)
    m = re.search(r"^\s*([A-Za-z0-9_-]{32,})\s*$", body, re.M)
    return m.group(1) if m else None


SORTS = ["price_asc", "price_desc", "newest", "rating"]


class CatalogUser(_Base):
    """50%: browse, search, product pages (storefront HTML and the catalog API)."""
    weight = 5

    def product(self):
        return random.choice(POOL["products"])

    @task(4)
    def home_page(self):
        self.client.get("/", name="GET / (storefront)")

    @task(3)
    def category_page(self):
        if POOL["categories"]:
            self.client.get(f"/c/{random.choice(POOL['categories'])['slug']}", name="GET /c/[slug] (storefront)")

    @task(3)
    def search_page(self):
        q = urllib.parse.urlencode({"q": random.choice(POOL["words"])})
        self.client.get(f"/search?{q}", name="GET /search?q= (storefront)")

    @task(6)
    def product_page(self):
        p = self.product()
        if p.get("slug"):
            self.client.get(f"/p/{p['slug']}", name="GET /p/[slug] (storefront)")

    @task(6)
    def list_api(self):
        params = {"limit": 24, "sort": random.choice(SORTS)}
        if POOL["categories"] and random.random() < 0.5:
            params["category"] = random.choice(POOL["categories"])["id"]
        if random.random() < 0.3:
            params["in_stock"] = "true"
        self.client.get("/api/v1/catalog/products?" + urllib.parse.urlencode(params),
                        name="GET /api/v1/catalog/products?…")

    @task(5)
    def search_api(self):
        q = urllib.parse.urlencode({"q": random.choice(POOL["words"]), "limit": 20})
        self.client.get(f"/api/v1/catalog/search?{q}", name="GET /api/v1/catalog/search?q=")

    @task(8)
    def product_api(self):
        p = self.product()
        self.client.get(f"/api/v1/catalog/products/{p['id']}", name="GET /api/v1/catalog/products/[id]")

    @task(2)
    def product_by_slug(self):
        p = self.product()
        if p.get("slug"):
            self.client.get(f"/api/v1/catalog/products/by-slug/{p['slug']}",
                            name="GET /api/v1/catalog/products/by-slug/[slug]")

    @task(2)
    def related_and_reviews(self):
        p = self.product()
        self.client.get(f"/api/v1/catalog/products/{p['id']}/related?limit=4",
                        name="GET /api/v1/catalog/products/[id]/related")
        self.client.get(f"/api/v1/catalog/products/{p['id']}/reviews?limit=10",
                        name="GET /api/v1/catalog/products/[id]/reviews")

    @task(2)
    def categories(self):
        self.client.get("/api/v1/catalog/categories", name="GET /api/v1/catalog/categories")

    @task(3)
    def stock(self):
        skus = random.sample(POOL["products"], min(5, len(POOL["products"])))
        q = "&".join("sku=" + urllib.parse.quote(p["sku"]) for p in skus)
        self.client.get(f"/api/v1/inventory?{q}", name="GET /api/v1/inventory?sku=…")


class ShopperUser(_Base):
    """20%: cart and checkout with the 4242… test card saved on the pool user's account."""
    weight = 2

    def on_start(self):
        self.user = _own_user()
        self.access = None
        self.sign_in()

    def sign_in(self):
        body = self.login(self.user["email"], self.user["password"])
        self.access = body["access_token"] if body else None

    def order_body(self):
        return {"from_cart": True, "shipping_method": "standard", "payment_method": self.user["payment_method"],
                "shipping_address": ADDRESS}

    @task
    def buy(self):
        if not self.access:
            return self.sign_in()
        sku = random.choice(POOL["buy_skus"])
        with self.client.post("/api/v1/cart/items", json={"sku": sku, "quantity": 1}, headers=self.auth(),
                              name="POST /api/v1/cart/items", catch_response=True) as res:
            if res.status_code == 401:
                res.success()
                return self.sign_in()
            body = _json(res)
            if res.status_code != 200 or not body or not isinstance(body.get("subtotal"), dict):
                res.failure(f"add to cart {res.status_code}: {res.text[:200] if res.text else ''}")
                return
        self.client.get("/api/v1/cart", headers=self.auth(), name="GET /api/v1/cart")
        with self.client.post("/api/v1/orders/quote", json=self.order_body(), headers=self.auth(),
                              name="POST /api/v1/orders/quote", catch_response=True) as quote:
            if quote.status_code != 200:
                problem = _json(quote) or {}
                quote.failure(f"quote {quote.status_code}: {problem.get('detail') or problem.get('title')}")
        expected = (_json(quote) or {}).get("total")
        body = self.order_body()
        if isinstance(expected, dict):
            body["expected_total"] = expected
        headers = {**self.auth(), "Idempotency-Key": f"locust-{uuid.uuid4()}"}
        with self.client.post("/api/v1/orders", json=body, headers=headers, name="POST /api/v1/orders (checkout)",
                              catch_response=True) as res:
            order = _json(res)
            pending = res.status_code == 202 and order and order.get("status") == "awaiting_payment"
            if not pending and (res.status_code != 201 or not order or order.get("status") != "confirmed"):
                why = (order.get("detail") or order.get("title") or order.get("status")) if order else res.text[:200]
                res.failure(f"checkout {res.status_code}: {why}")
                return
        if pending:
            # 202: the provider is still answering; the API says to poll the order (docs/api.md).
            deadline = time.time() + 15
            while order.get("status") not in ("confirmed", "payment_failed", "cancelled") and time.time() < deadline:
                time.sleep(0.25)
                poll = self.client.get(f"/api/v1/orders/{order['id']}", headers=self.auth(),
                                       name="GET /api/v1/orders/[id] (poll after 202)")
                order = _json(poll) or order
            if order.get("status") != "confirmed":
                self.environment.events.request.fire(
                    request_type="ORDER", name="checkout confirmed after 202", response_time=15_000,
                    response_length=0, exception=Exception(f"order ended {order.get('status')}"), context={})
                return
        if not isinstance(order.get("total"), dict) or "amount" not in order["total"]:
            self.environment.events.request.fire(
                request_type="ORDER", name="order total is {amount, currency}", response_time=0,
                response_length=0, exception=Exception(f"total was {order.get('total')!r}"), context={})
            return
        self.client.get(f"/api/v1/orders/{order['id']}", headers=self.auth(), name="GET /api/v1/orders/[id]")

    @task
    def history(self):
        if not self.access:
            return self.sign_in()
        self.client.get("/api/v1/orders?limit=10", headers=self.auth(), name="GET /api/v1/orders")
