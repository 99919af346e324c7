#!/usr/bin/env python3
"""Turns Locust's `--csv PREFIX` output into the Markdown table docs/benchmarks.md uses.

  report.py PREFIX TITLE [browsers.json]   → prints the section body (per-endpoint table,
                                             share of requests per kind of user, browser journeys)
  report.py --check PREFIX                 → exit 1 on any failure or zero requests (CI smoke)
"""
import csv
import json
import sys

ACCOUNT = ("/api/v1/auth/", "/api/v1/users/", "/api/v1/payments/methods", "/api/v1/dev/mailbox", "verification mail")
ORDERS = ("/api/v1/cart", "/api/v1/orders")


def kind(name):
    if any(k in name for k in ACCOUNT):
        return "register/login/profile"
    if any(k in name for k in ORDERS):
        return "cart/checkout"
    return "browse/search/product"


def ms(v):
    v = float(v or 0)
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def rows(prefix):
    with open(f"{prefix}_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


def check(prefix):
    data = rows(prefix)
    total = next((r for r in data if r["Name"] == "Aggregated"), None)
    if total is None or int(total["Request Count"]) == 0:
        print("locust: zero requests", file=sys.stderr)
        return 1
    failed = int(total["Failure Count"])
    if failed:
        print(f"locust: {failed} of {total['Request Count']} requests failed:", file=sys.stderr)
        try:
            with open(f"{prefix}_failures.csv", newline="") as f:
                for r in list(csv.DictReader(f))[:20]:
                    print(f"  {r['Method']} {r['Name']}: {r['Occurrences']} × {r['Error'][:200]}", file=sys.stderr)
        except FileNotFoundError:
            pass
        return 1
    print(f"locust: {total['Request Count']} requests, 0 failures, {float(total['Requests/s']):.1f} req/s")
    return 0


def report(prefix, title, browsers=None):
    data = rows(prefix)
    out = [f"#### {title}", "", "| Endpoint | Requests | Req/s | p50 | p95 | p99 | Failures |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    per_kind = {}
    total = None
    for r in sorted(data, key=lambda r: -int(r["Request Count"])):
        if r["Name"] == "Aggregated":
            total = r
            continue
        per_kind[kind(r["Name"])] = per_kind.get(kind(r["Name"]), 0) + int(r["Request Count"])
        out.append(f"| `{r['Name']}` | {int(r['Request Count']):,} | {float(r['Requests/s']):.1f} | "
                   f"{ms(r['50%'])} | {ms(r['95%'])} | {ms(r['99%'])} | {int(r['Failure Count'])} |")
    if total:
        out.append(f"| **all** | **{int(total['Request Count']):,}** | **{float(total['Requests/s']):.1f}** | "
                   f"**{ms(total['50%'])}** | **{ms(total['95%'])}** | **{ms(total['99%'])}** | "
                   f"**{int(total['Failure Count'])}** |")
        n = sum(per_kind.values()) or 1
        out += ["", "Share of requests: " + ", ".join(f"{k} {100 * v / n:.0f}%" for k, v in sorted(per_kind.items()))
                + " (the user mix is 30/50/20; a checkout is 5 requests, a product page 1)."]
    if browsers:
        try:
            b = json.load(open(browsers))
        except (OSError, ValueError):
            b = None
        if b:
            out += ["", f"Browser shoppers (Chromium via playwright-core, {b['shoppers']} at once, same run): "
                    f"{b['journeys']} journeys (home → search → product page → add to cart → checkout with "
                    f"4242… → confirmed), {b['failures']} failed."]
            if b.get("steps"):
                out += ["", "| Browser step | Count | p50 | p95 |", "|---|---:|---:|---:|"]
                for name, s in b["steps"].items():
                    out.append(f"| {name} | {s['count']} | {ms(s['p50'])} | {ms(s['p95'])} |")
            if b.get("errors"):
                out += ["", "Browser errors: " + "; ".join(e[:160] for e in b["errors"][:3])]
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    print(report(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
