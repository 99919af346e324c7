#!/usr/bin/env python3
"""Memory soak: mixed traffic against a running server while its RSS is sampled every second.

    soak.py run <base-url> <server-pid> <requests> <out-dir>

Traffic is what a shop sees over a day, compressed: storefront pages, product pages, list pages
with many distinct filters and sorts, searches with many distinct terms (every one a new cache
key), guest carts, sign-ins (right and wrong), API reads of products and stock, and 404s.
Eight threads with keep-alive connections. Writes rss.csv (seconds, requests done, RSS MiB) and
rss.svg (the plot) into <out-dir>, and prints the RSS at each tenth of the run and the growth over
the second half.
"""

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

THREADS = 8
WORDS = ["wool", "cotton", "linen", "leather", "steel", "oak", "ceramic", "lamp", "novel", "jacket",
         "mug", "chair", "shirt", "walnut", "glass", "copper", "bamboo", "silk", "denim", "marble"]
SORTS = ["price_asc", "price_desc", "newest", "rating"]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                h = dict(headers or {})
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    h["content-type"] = "application/json"
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                payload = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def catalog_sample(base):
    c = Client(base)
    status, body = c.request("GET", "/api/v1/catalog/products?limit=100&sort=newest")
    if status != 200:
        sys.exit(f"cannot list products ({status}): is the catalog seeded?")
    items = json.loads(body)["items"]
    status, body = c.request("GET", "/api/v1/catalog/categories")
    cats = []
    def walk(nodes):
        for n in nodes:
            cats.append((n["id"], n.get("slug", "")))
            walk(n.get("children", []))
    walk(json.loads(body).get("roots", []))
    return items, cats


def one_request(c, rng, items, cats, counts):
    p = rng.choice(items)
    kind = rng.random()
    if kind < 0.15:
        path = f"/p/{p['slug']}" if p.get("slug") else "/"
    elif kind < 0.25:
        path = "/" if rng.random() < 0.5 else f"/search?q={urllib.parse.quote(rng.choice(WORDS))}"
    elif kind < 0.40:
        path = f"/api/v1/catalog/products/{p['id']}"
    elif kind < 0.55:
        cat = rng.choice(cats)[0] if cats else ""
        lo = rng.randrange(0, 50) * 100
        path = (f"/api/v1/catalog/products?category={cat}&min_price={lo}&max_price={lo + rng.randrange(1, 200) * 100}"
                f"&sort={rng.choice(SORTS)}&limit={rng.choice([12, 24, 48])}")
    elif kind < 0.70:
        q = " ".join(rng.sample(WORDS, rng.randrange(1, 3))) + ("" if rng.random() < 0.5 else str(rng.randrange(1000)))
        path = f"/api/v1/catalog/search?q={urllib.parse.quote(q)}&limit=20"
    elif kind < 0.78:
        path = f"/api/v1/inventory?sku={urllib.parse.quote(p['sku'])}"
    elif kind < 0.86:
        status, body = c.request("POST", "/api/v1/cart/items", {"sku": p["sku"], "quantity": 1})
        counts[status // 100] = counts.get(status // 100, 0) + 1
        return
    elif kind < 0.93:
        status, _ = c.request("POST", "/api/v1/auth/login",
                              {"email": f"soak{rng.randrange(10_000)}@example.com", "password": "not the password 1"})
        counts[status // 100] = counts.get(status // 100, 0) + 1
        return
    else:
        path = f"/api/v1/catalog/products/{rng.getrandbits(64):x}"
    status, _ = c.request("GET", path)
    counts[status // 100] = counts.get(status // 100, 0) + 1


def plot_svg(samples, path, total):
    w, h, pad = 760, 320, 50
    max_t = max(s[0] for s in samples) or 1
    max_r = max(s[2] for s in samples) * 1.15 or 1
    pts = " ".join(f"{pad + s[0] / max_t * (w - 2 * pad):.1f},{h - pad - s[2] / max_r * (h - 2 * pad):.1f}" for s in samples)
    ticks = "".join(
        f'<line x1="{pad}" x2="{w - pad}" y1="{h - pad - v / max_r * (h - 2 * pad):.1f}" y2="{h - pad - v / max_r * (h - 2 * pad):.1f}" stroke="#ddd"/>'
        f'<text x="{pad - 6}" y="{h - pad - v / max_r * (h - 2 * pad) + 4:.1f}" text-anchor="end">{v:.0f}</text>'
        for v in [max_r / 5 * i for i in range(6)])
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">'
                f'<rect width="100%" height="100%" fill="white"/>{ticks}'
                f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{pts}"/>'
                f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">seconds ({total:,} requests)</text>'
                f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">RSS (MiB)</text>'
                f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="13">emporium RSS under mixed traffic</text></svg>\n')


def run(base, pid, total, out):
    items, cats = catalog_sample(base)
    done = [0]
    lock = threading.Lock()
    counts = {}
    samples = []
    stop = threading.Event()
    started = time.monotonic()

    def sampler():
        while not stop.is_set():
            with lock:
                n = done[0]
            samples.append((time.monotonic() - started, n, rss_mib(pid)))
            stop.wait(1.0)

    def worker(seed):
        rng = random.Random(seed)
        c = Client(base)
        local = {}
        while True:
            with lock:
                if done[0] >= total:
                    break
                done[0] += 1
            one_request(c, rng, items, cats, local)
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    s = threading.Thread(target=sampler, daemon=True)
    s.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    last_report = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        with lock:
            n = done[0]
        if n - last_report >= total // 20 or n >= total:
            last_report = n
            print(f"  {n:>7,}/{total:,} requests, RSS {rss_mib(pid):.1f} MiB", file=sys.stderr, flush=True)
    for t in threads:
        t.join()
    time.sleep(2)
    stop.set()
    s.join()
    elapsed = time.monotonic() - started
    with open(f"{out}/rss.csv", "w") as f:
        f.write("seconds,requests,rss_mib\n")
        for t, n, r in samples:
            f.write(f"{t:.1f},{n},{r:.1f}\n")
    plot_svg(samples, f"{out}/rss.svg", total)

    def rss_at(fraction):
        target = total * fraction
        return next((r for _, n, r in samples if n >= target), samples[-1][2])

    print(f"requests: {total:,} in {elapsed:.0f} s ({total / elapsed:.0f}/s); answers by class: "
          + ", ".join(f"{k}xx {v:,}" for k, v in sorted(counts.items())))
    print("RSS (MiB) at each tenth of the run: " + " ".join(f"{rss_at(i / 10):.0f}" for i in range(0, 11)))
    half, end = rss_at(0.5), samples[-1][2]
    print(f"RSS: start {samples[0][2]:.1f}, peak {max(r for _, _, r in samples):.1f}, end {end:.1f} MiB; "
          f"growth over the second half {end - half:+.1f} MiB ({(end - half) / (total / 2) * 10_000:+.2f} MiB per 10k requests)")
    if counts.get(5):
        sys.exit(f"error: {counts[5]} answers were 5xx")


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "run":
        sys.exit(__doc__)
    run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
