#!/usr/bin/env python3
"""Checks the Grafana dashboards of observability/grafana/dashboards.

Static (always; no network):
  * every dashboard is JSON with a unique uid and title; panel ids are unique per dashboard;
  * every datasource a panel or target names is provisioned (provisioning/datasources/*.yml);
  * every metric a PromQL query names is exported by the code (a string literal in crates/**.rs,
    metrics_process's process_* or Prometheus's own `up`), or belongs to an exporter or to
    Kubernetes and the panel is in the explicit list below (a listed panel naming a metric the
    checkout's code lacks is a warning: the live check skips it until the metric is scraped);
  * the list below names only panels that exist.

Live (--prometheus URL): every panel's PromQL runs against that Prometheus (/api/v1/query),
with the template variables replaced by real values (query variables resolved against the same
Prometheus, "All" as .*; $__rate_interval -> 2m, $__interval -> 15s, $__range -> 1h by default).
Each query must be valid and return data (a result that is only NaN, 0/0 over a window in which
nothing happened, counts as none). A panel of the list below may come back empty only
while Prometheus has no series of the metric it needs at all, and is then reported as SKIP with
its reason; as soon as the metric is scraped (a Kubernetes cluster, the exporters, the
multi-process topology) it must return data like every other panel.

    python3 observability/grafana/check_dashboards.py                       # static only
    python3 observability/grafana/check_dashboards.py --prometheus http://127.0.0.1:9090

Exit status 0 when everything passed; 1 with one line per failure. Standard library only
(the YAML of the provisioning is read with a tiny reader for the `uid:` keys).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

K8S = "needs Kubernetes metrics from kube-state-metrics"
CADVISOR = "needs Kubernetes container metrics from cAdvisor (kubelet)"
MULTI = "needs the multi-process topology (embedded mode makes these calls in-process)"
GATEWAY = "needs the gateway process (multi-process topology or Kubernetes)"
RABBIT = "needs RabbitMQ's rabbitmq_prometheus plugin scraped (not in embedded mode)"
PG = "needs postgres-exporter scraped (compose observability profile)"
REDIS = "needs redis_exporter scraped (compose observability profile)"
BUS = "needs the RabbitMQ bus (multi-process topology, compose, Kubernetes); embedded mode's bus is in-process"
POOLS = "needs a binary that exports the db_pool_* metrics (crates/platform/src/db.rs)"
HISTO = ("needs a binary that exports this metric as a histogram (a summary before crates/platform/src/metrics.rs "
         "listed it in HISTOGRAMS)")

# (dashboard uid, panel title) -> (reason, the metric whose absence excuses an empty result).
# The first six are the Kubernetes panels, empty anywhere but on a cluster; the others need a
# scrape target the embedded check does not have, and are checked for real wherever that target is scraped.
NEEDS = {
    ("emporium-overview", "Pods running"): (K8S, "kube_pod_status_phase"),
    ("emporium-overview", "Pod restarts (1h)"): (K8S, "kube_pod_container_status_restarts_total"),
    ("emporium-overview", "Pod CPU"): (CADVISOR, "container_cpu_usage_seconds_total"),
    ("emporium-overview", "Pod memory (working set)"): (CADVISOR, "container_memory_working_set_bytes"),
    ("emporium-overview", "Deployment replicas available / desired"): (K8S, "kube_deployment_status_replicas_available"),
    ("emporium-overview", "HPA replicas"): (K8S, "kube_horizontalpodautoscaler_status_current_replicas"),
    ("emporium-red", "Outgoing calls by target"): (MULTI, "service_client_duration_seconds_count"),
    ("emporium-red", "Mean outgoing call duration"): (MULTI, "service_client_duration_seconds_count"),
    ("emporium-infrastructure", "Mean upstream time by upstream"): (GATEWAY, "gateway_upstream_duration_seconds_count"),
    ("emporium-infrastructure", "Circuit breakers (0 closed, 1 half-open, 2 open)"): (GATEWAY, "gateway_breaker_state"),
    ("emporium-infrastructure", "Gateway micro-cache: hits and misses"): (GATEWAY, "gateway_cache_lookups_total"),
    ("emporium-infrastructure", "Queue depth (ready) by queue"): (RABBIT, "rabbitmq_queue_messages_ready"),
    ("emporium-infrastructure", "Unacknowledged"): (RABBIT, "rabbitmq_queue_messages_unacked"),
    ("emporium-infrastructure", "Broker redeliveries / s"): (RABBIT, "rabbitmq_global_messages_redelivered_total"),
    ("emporium-infrastructure", "Pool utilisation (in use / max)"): (POOLS, "db_pool_connections"),
    ("emporium-infrastructure", "Pool connections: open and idle"): (POOLS, "db_pool_connections"),
    ("emporium-infrastructure", "Connection wait (p95; probe every 5 s)"): (POOLS, "db_pool_acquire_duration_seconds_count"),
    ("emporium-infrastructure", "Acquire timeouts (1h)"): (POOLS, "db_pool_connections"),
    ("emporium-infrastructure", "Queue depth by consumer"): (BUS, "events_queue_depth"),
    ("emporium-infrastructure", "Unacknowledged by consumer"): (BUS, "events_consumer_unacked"),
    ("emporium-infrastructure", "Redeliveries / s"): (BUS, "events_queue_depth"),
    ("emporium-infrastructure", "Broker connections up"): (BUS, "events_broker_connected"),
    ("emporium-infrastructure", "Handling time p95 by consumer"): (HISTO, "events_handle_duration_seconds_bucket"),
    ("emporium-infrastructure", "Saga step p95"): (HISTO, "order_saga_step_duration_seconds_bucket"),
    ("emporium-infrastructure", "Payment provider p95"): (HISTO, "payment_provider_call_duration_seconds_bucket"),
    ("emporium-infrastructure", "Mail delivery p95"): (HISTO, "notifications_delivery_duration_seconds_bucket"),
    ("emporium-infrastructure", "Gateway upstream p95"): (HISTO + "; " + GATEWAY, "gateway_upstream_duration_seconds_bucket"),
    ("emporium-red", "Outgoing call p95 by target"): (HISTO + "; " + MULTI, "service_client_duration_seconds_bucket"),
    ("emporium-business", "Order value: median and p90 (1h)"): (HISTO, "order_value_minor_units_bucket"),
    ("emporium-infrastructure", "PostgreSQL up"): (PG, "pg_up"),
    ("emporium-infrastructure", "PostgreSQL connections by database"): (PG, "pg_stat_database_numbackends"),
    ("emporium-infrastructure", "Redis up"): (REDIS, "redis_up"),
    ("emporium-infrastructure", "Redis memory and clients"): (REDIS, "redis_memory_used_bytes"),
}

# Metrics not defined in crates/: Prometheus's own and metrics_process's.
BUILTIN = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
           "process_virtual_memory_max_bytes", "process_open_fds", "process_max_fds", "process_threads",
           "process_start_time_seconds"}
# Exporter / Kubernetes prefixes: allowed only in panels listed in NEEDS.
FOREIGN = ("kube_", "container_", "rabbitmq_", "pg_", "redis_")
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "offset", "bool", "inf", "nan", "le", "start", "end", "atan2"}


def datasource_uids() -> set[str]:
    uids = set()
    for f in sorted((HERE / "provisioning" / "datasources").glob("*.y*ml")):
        for line in f.read_text().splitlines():
            m = re.match(r"^\s+uid:\s*['\"]?([\w-]+)", line)
            if m:
                uids.add(m.group(1))
    return uids


def panels_of(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def metric_names(expr: str) -> set[str]:
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                        # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", e):
        word = m.group(1)
        if word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def exported_names() -> set[str]:
    names = set()
    for f in (REPO / "crates").rglob("*.rs"):
        names.update(re.findall(r'"([a-z][a-z0-9_]*_(?:total|seconds|bytes|units|pending|skus|stuck|active|state|'
                                r'info|amount|in_flight|[a-z]+))"', f.read_text(errors="replace")))
    return names


def load() -> list[tuple[pathlib.Path, dict]]:
    return [(f, json.loads(f.read_text())) for f in sorted((HERE / "dashboards").glob("*.json"))]


def static_checks(boards: list[tuple[pathlib.Path, dict]]) -> list[str]:
    errors = []
    ds = datasource_uids()
    exported = exported_names()
    seen_uids, seen_titles, seen_panels = {}, {}, set()
    for f, d in boards:
        uid, title = d.get("uid"), d.get("title")
        if not uid or not title:
            errors.append(f"{f.name}: no uid or title")
        if uid in seen_uids:
            errors.append(f"{f.name}: uid {uid} also in {seen_uids[uid]}")
        if title in seen_titles:
            errors.append(f"{f.name}: title {title!r} also in {seen_titles[title]}")
        seen_uids[uid], seen_titles[title] = f.name, f.name
        ids = {}
        for v in d.get("templating", {}).get("list", []):
            vds = (v.get("datasource") or {}).get("uid")
            if vds and vds not in ds:
                errors.append(f"{f.name}: variable {v.get('name')} uses datasource {vds}, not provisioned")
        for p in panels_of(d):
            pid = p.get("id")
            if pid in ids:
                errors.append(f"{f.name}: panel id {pid} used by {ids[pid]!r} and {p.get('title')!r}")
            ids[pid] = p.get("title")
            if p.get("type") == "row":
                continue
            key = (uid, p.get("title"))
            if key in seen_panels:
                errors.append(f"{f.name}: two panels titled {p.get('title')!r}")
            seen_panels.add(key)
            pds = (p.get("datasource") or {}).get("uid")
            if pds not in ds:
                errors.append(f"{f.name}: panel {p.get('title')!r} datasource {pds!r} is not provisioned {sorted(ds)}")
            if not p.get("targets"):
                errors.append(f"{f.name}: panel {p.get('title')!r} has no query")
            for t in p.get("targets", []):
                tds = (t.get("datasource") or {}).get("uid", pds)
                if tds not in ds:
                    errors.append(f"{f.name}: panel {p.get('title')!r} target {t.get('refId')} datasource {tds!r} "
                                  "is not provisioned")
                if "expr" not in t or (t.get("datasource") or {}).get("type", "prometheus") != "prometheus":
                    continue
                for name in metric_names(t["expr"]):
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    if name in BUILTIN or name in exported or base in exported:
                        continue
                    if name.startswith(FOREIGN) and key in NEEDS:
                        continue
                    if key in NEEDS:
                        # Listed panels may name a metric the code in this checkout does not export
                        # yet; the live check skips them only while Prometheus has no such series.
                        print(f"WARN {f.name}: panel {p.get('title')!r} uses {name}, not (yet) in crates/")
                        continue
                    errors.append(f"{f.name}: panel {p.get('title')!r} uses metric {name}, which nothing exports "
                                  "(not in crates/, not builtin, not an exporter metric of a listed panel)")
            if key in NEEDS and p.get("emporium_requires") != NEEDS[key][1]:
                errors.append(f"{f.name}: panel {p.get('title')!r}: emporium_requires "
                              f"{p.get('emporium_requires')!r} != {NEEDS[key][1]!r} of the check's list")
            if p.get("emporium_requires") and key not in NEEDS:
                errors.append(f"{f.name}: panel {p.get('title')!r} needs {p['emporium_requires']} but is not in "
                              "check_dashboards.py's NEEDS list")
    for key in NEEDS:
        if key not in seen_panels:
            errors.append(f"NEEDS lists {key}, which no dashboard has")
    return errors


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, params: list[tuple[str, str]]) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}"}

    def query(self, expr: str) -> dict:
        return self.get("/api/v1/query", [("query", expr)])

    def has_metric(self, name: str) -> bool:
        r = self.query(f'count({{__name__="{name}"}})')
        return r.get("status") == "success" and bool(r["data"]["result"])


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


def resolve_variables(prom: Prom, dash: dict, builtins: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    values, errors = dict(builtins), []
    for v in dash.get("templating", {}).get("list", []):
        name = v["name"]
        if v.get("type") == "custom":
            opts = [o.strip() for o in str(v.get("query", "")).split(",") if o.strip()]
            values[name] = opts[0] if opts else ""
            continue
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((?:(.*),\s*)?(\w+)\)\s*", q or "")
        if not m:
            errors.append(f"{dash['uid']}: variable {name}: cannot resolve {q!r}")
            continue
        match, label = m.group(1), m.group(2)
        params = [("match[]", substitute(match, values))] if match else []
        r = prom.get(f"/api/v1/label/{label}/values", params)
        found = sorted(r.get("data") or [])
        if not found:
            errors.append(f"{dash['uid']}: variable {name}: {q} has no values in Prometheus")
            values[name] = "no-value"
            continue
        if v.get("includeAll") and v.get("allValue"):
            values[name] = v["allValue"]
            continue
        cur = (v.get("current") or {}).get("value")
        cur = cur[0] if isinstance(cur, list) and cur else cur
        values[name] = cur if cur in found else found[0]
    return values, errors


def live_checks(boards: list[tuple[pathlib.Path, dict]], prom: Prom, builtins: dict[str, str],
                verbose: bool) -> tuple[list[str], int, int, list[str]]:
    errors, ok, skipped, skips = [], 0, 0, []
    for f, d in boards:
        values, errs = resolve_variables(prom, d, builtins)
        errors.extend(errs)
        if verbose:
            shown = {k: v for k, v in values.items() if not k.startswith("__")}
            print(f"{d['uid']}: variables {shown}")
        for p in panels_of(d):
            if p.get("type") == "row":
                continue
            key = (d["uid"], p.get("title"))
            pds = (p.get("datasource") or {}).get("type", "prometheus")
            for t in p.get("targets", []):
                if (t.get("datasource") or {}).get("type", pds) != "prometheus" or "expr" not in t:
                    continue
                expr = substitute(t["expr"], values)
                where = f"{d['uid']} / {p.get('title')} [{t.get('refId')}]"
                if "$" in expr:
                    errors.append(f"{where}: unresolved variable in {expr!r}")
                    continue
                r = prom.query(expr)
                # Only NaN right after start-up can mean that the window held one scrape too few
                # (a probe every 5 s, scraped every few seconds): asked again a few times before
                # it counts as nothing having happened.
                for _ in range(NAN_RETRIES):
                    if r.get("status") != "success" or not _all_nan(r["data"]):
                        break
                    time.sleep(NAN_RETRY_SECONDS)
                    r = prom.query(expr)
                if r.get("status") != "success":
                    errors.append(f"{where}: invalid: {r.get('errorType', '')} {r.get('error')}\n    {expr}")
                    continue
                data = r["data"]
                empty = data["resultType"] in ("vector", "matrix") and not data["result"]
                if not empty and _all_nan(data):
                    errors.append(f"{where}: only NaN (0/0: nothing happened in the window)\n    {expr}")
                    continue
                if not empty:
                    ok += 1
                    if verbose:
                        print(f"OK   {where}: {len(data['result']) if isinstance(data['result'], list) else 1} series")
                    continue
                if key in NEEDS:
                    reason, metric = NEEDS[key]
                    if not prom.has_metric(metric):
                        skipped += 1
                        skips.append(f"SKIP {where}: {reason} (no {metric} series in Prometheus)")
                        continue
                    errors.append(f"{where}: no data although {metric} is scraped\n    {expr}")
                    continue
                errors.append(f"{where}: the query returned no data\n    {expr}")
    return errors, ok, skipped, skips


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", help="base URL of a Prometheus that scrapes Emporium (live check)")
    ap.add_argument("--rate-interval", default="2m", help="value of $__rate_interval (default 2m)")
    ap.add_argument("--interval", default="15s", help="value of $__interval (default 15s)")
    ap.add_argument("--range", default="1h", help="value of $__range (default 1h)")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    boards = load()
    if not boards:
        print("no dashboards found", file=sys.stderr)
        return 1
    errors = static_checks(boards)
    npanels = sum(1 for _, d in boards for p in panels_of(d) if p.get("type") != "row")
    print(f"static: {len(boards)} dashboards, {npanels} panels, datasources {sorted(datasource_uids())}: "
          f"{'ok' if not errors else f'{len(errors)} problem(s)'}")
    if args.prometheus and not errors:
        builtins = {"__rate_interval": args.rate_interval, "__interval": args.interval, "__range": args.range,
                    "__range_s": str(_seconds(args.range)), "__interval_ms": str(_seconds(args.interval) * 1000)}
        live_errors, ok, skipped, skips = live_checks(boards, Prom(args.prometheus), builtins, args.verbose)
        for s in skips:
            print(s)
        print(f"live ({args.prometheus}): {ok} queries returned data, {skipped} skipped (listed above), "
              f"{len(live_errors)} failed")
        errors.extend(live_errors)
    for e in errors:
        print(f"FAIL {e}")
    return 1 if errors else 0


# A query that returns only NaN is asked again this many times, this far apart (see the check).
NAN_RETRIES = 4
NAN_RETRY_SECONDS = 5


def _all_nan(data: dict) -> bool:
    result = data["result"]
    if data["resultType"] == "scalar":
        return str(result[1]).lower() == "nan"
    if data["resultType"] == "vector":
        return all(str(s["value"][1]).lower() == "nan" for s in result)
    if data["resultType"] == "matrix":
        return all(str(v[1]).lower() == "nan" for s in result for v in s["values"])
    return False


def _seconds(d: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", d)
    if not m:
        raise SystemExit(f"bad duration {d!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


if __name__ == "__main__":
    sys.exit(main())
