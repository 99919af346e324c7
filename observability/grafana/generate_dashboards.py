#!/usr/bin/env python3
"""Writes the Grafana dashboards under observability/grafana/dashboards/ (the JSON is committed;
edit this file and rerun it rather than editing the JSON by hand):

    python3 observability/grafana/generate_dashboards.py          # rewrite the JSON files
    python3 observability/grafana/generate_dashboards.py --check  # fail if the JSON is stale

Every query uses only metrics the processes export (crates/**: metrics::counter!/gauge!/
histogram!, metrics_process's process_*), Prometheus's `up`, the exporters of the compose
profile (postgres-exporter, redis_exporter, RabbitMQ's built-in plugin) and, on Kubernetes,
kube-state-metrics and cAdvisor. `check_dashboards.py --prometheus URL` runs every query against
a live Prometheus.

Counters that only appear once something goes wrong (5xx, dead letters, publish failures,
refunds, ...) are written `(... or vector(0))`: a healthy system shows 0 instead of "No data".
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
TEMPO = {"type": "tempo", "uid": "tempo"}
RI = "$__rate_interval"
S5 = 'status="5xx"'
S4 = 'status="4xx"'

JOB_VAR = {
    "name": "job", "label": "Job", "type": "query", "datasource": PROM,
    "query": {"query": "label_values(up, job)", "refId": "job"},
    "definition": "label_values(up, job)", "refresh": 2, "includeAll": True, "multi": True,
    "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "sort": 1, "hide": 0,
}


class Board:
    def __init__(self, uid: str, title: str, description: str, tags: list[str], variables=None):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.variables = variables or [JOB_VAR]
        self.panels: list[dict] = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def panel(self, kind: str, title: str, targets: list[tuple[str, str]] | list[dict], *, w: int = 8,
              h: int = 8, unit: str | None = None, description: str = "", ds=PROM, requires: str | None = None,
              thresholds: list[tuple[float | None, str]] | None = None, extra: dict | None = None,
              instant: bool = False, legend_table: bool = False) -> None:
        if self.x + w > 24:
            self._newline()
        tgts = []
        for n, t in enumerate(targets):
            if isinstance(t, dict):
                tgts.append({"refId": chr(65 + n), "datasource": ds, **t})
                continue
            expr, legend = t
            tgt = {"refId": chr(65 + n), "datasource": ds, "expr": expr, "legendFormat": legend or "__auto",
                   "range": not instant, "instant": instant}
            tgts.append(tgt)
        defaults: dict = {}
        if unit:
            defaults["unit"] = unit
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [
                {"color": c, "value": v} for v, c in thresholds]}
        p = {"id": self._id(), "type": kind, "title": title, "description": description, "datasource": ds,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y}, "targets": tgts,
             "fieldConfig": {"defaults": defaults, "overrides": []}, "options": {}}
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "table" if legend_table else "list", "placement": "bottom",
                                       "showLegend": True, "calcs": ["lastNotNull", "max"] if legend_table else []},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        elif kind == "gauge":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "showThresholdLabels": False, "showThresholdMarkers": True}
        elif kind == "table":
            p["options"] = {"showHeader": True}
            p["transformations"] = [{"id": "merge", "options": {}},
                                    {"id": "organize", "options": {"excludeByName": {"Time": True}}}]
        if requires:
            # Read by check_dashboards.py: the panel may be empty only while no series of this
            # metric exists at all (the exporter or platform that provides it is not scraped).
            p["emporium_requires"] = requires
        if extra:
            p.update(extra)
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)
        if self.x >= 24:
            self._newline()

    def json(self) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["emporium", *self.tags],
            "timezone": "browser", "editable": True, "graphTooltip": 1, "schemaVersion": 41, "version": 1,
            "refresh": "30s", "time": {"from": "now-1h", "to": "now"}, "timepicker": {},
            "templating": {"list": self.variables}, "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "links": [{"type": "dashboards", "tags": ["emporium"], "asDropdown": True, "title": "Emporium",
                       "includeVars": False, "keepTime": True}],
            "panels": self.panels,
        }


def sel(extra: str = "") -> str:
    return '{job=~"$job"' + (", " + extra if extra else "") + "}"


def rate(metric: str, extra: str = "", by: str = "", window: str = RI) -> str:
    agg = f"sum by ({by}) " if by else "sum "
    return f"{agg}(rate({metric}{sel(extra)}[{window}]))"


def avg_duration(metric: str, by: str, extra: str = "") -> str:
    """Mean duration of a histogram or summary (works for both while summaries become histograms)."""
    return (f"sum by ({by}) (rate({metric}_sum{sel(extra)}[{RI}]))\n  / sum by ({by}) "
            f"(rate({metric}_count{sel(extra)}[{RI}]))")


def p_quantile(q: float, metric: str, by: str, extra: str = "", window: str = RI) -> str:
    b = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({b}) (rate({metric}_bucket{sel(extra)}[{window}])))"


K8S = "kube-state-metrics / cAdvisor: only on Kubernetes"


# ---- platform overview ------------------------------------------------------------------------
def overview() -> Board:
    b = Board("emporium-overview", "Emporium / Platform overview",
              "Every process at a glance: traffic, errors, latency, saturation, and on Kubernetes the pods.",
              ["overview"])
    b.row("Traffic, errors, latency")
    b.panel("stat", "Targets up", [(f'sum(up{sel()})', "up")], w=4, h=4,
            description="Scrape targets answering (all jobs).")
    b.panel("stat", "Targets down", [(f'count(up{sel()} == 0) or vector(0)', "down")], w=4, h=4,
            thresholds=[(None, "green"), (1, "red")])
    b.panel("stat", "Requests / s", [(rate("http_requests_total"), "req/s")], w=4, h=4, unit="reqps")
    b.panel("stat", "5xx ratio", [(f'({rate("http_requests_total", S5)} or vector(0))\n  / '
                                   f'{rate("http_requests_total")}', "5xx")], w=4, h=4, unit="percentunit",
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")])
    b.panel("stat", "p95 latency", [(p_quantile(0.95, "http_request_duration_seconds", ""), "p95")], w=4, h=4,
            unit="s", thresholds=[(None, "green"), (0.1, "orange"), (0.5, "red")])
    b.panel("stat", "In flight", [(f"sum(http_requests_in_flight{sel()})", "in flight")], w=4, h=4)
    b.panel("timeseries", "Request rate by service", [(rate("http_requests_total", by="service"), "{{service}}")],
            unit="reqps")
    b.panel("timeseries", "Responses by status class", [(rate("http_requests_total", by="status"), "{{status}}")],
            unit="reqps")
    b.panel("timeseries", "p95 latency by service",
            [(p_quantile(0.95, "http_request_duration_seconds", "service"), "{{service}}")], unit="s")
    b.panel("timeseries", "Error ratio (5xx) by service",
            [(f'({rate("http_requests_total", S5, "service")}\n  / '
              f'{rate("http_requests_total", by="service")})\nor {rate("http_requests_total", by="service")} * 0',
              "{{service}}")], unit="percentunit", w=12)
    b.panel("timeseries", "Client errors (4xx) by service",
            [(f'{rate("http_requests_total", S4, "service")} or vector(0)', "{{service}}")],
            unit="reqps", w=12)
    b.row("Business at a glance (details: Emporium / Business)")
    b.panel("stat", "Orders / min", [(f"{rate('orders_placed_total')} * 60", "orders/min")], w=6, h=4)
    b.panel("stat", "Revenue / min (captured)",
            [('sum by (currency) (rate(payment_amount_sum{job=~"$job"}[$__rate_interval])) * 60 / 100', "{{currency}}")],
            w=6, h=4)
    b.panel("stat", "Payment failures (1h)",
            [('sum(increase(payments_total{job=~"$job", outcome=~"failed|declined"}[1h])) or vector(0)', "failed")],
            w=6, h=4, thresholds=[(None, "green"), (1, "orange")])
    b.panel("stat", "Low-stock SKUs", [(f"max(inventory_low_stock_skus{sel()})", "SKUs")], w=6, h=4,
            thresholds=[(None, "green"), (1, "orange")])
    b.row("Processes")
    b.panel("timeseries", "CPU by instance", [(f"rate(process_cpu_seconds_total{sel()}[{RI}])", "{{instance}}")],
            unit="percentunit", description="Cores used by each process (1 = one full core).")
    b.panel("timeseries", "Resident memory by instance", [(f"process_resident_memory_bytes{sel()}", "{{instance}}")],
            unit="bytes")
    b.panel("timeseries", "Open file descriptors / limit",
            [(f"process_open_fds{sel()} / process_max_fds{sel()}", "{{instance}}")], unit="percentunit")
    b.panel("timeseries", "Threads", [(f"process_threads{sel()}", "{{instance}}")])
    b.panel("table", "Uptime and version",
            [{"expr": f"time() - process_start_time_seconds{sel()}", "legendFormat": "{{instance}}",
              "instant": True, "range": False, "format": "table"},
             {"expr": f"emporium_build_info{sel()}", "legendFormat": "{{version}}", "instant": True,
              "range": False, "format": "table"}], w=16)
    b.row("Kubernetes (kube-state-metrics, cAdvisor)")
    b.panel("stat", "Pods running", [('sum(kube_pod_status_phase{namespace=~"emporium.*", phase="Running"})', "running")],
            w=6, requires="kube_pod_status_phase", description=K8S)
    b.panel("timeseries", "Pod restarts (1h)",
            [('sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace=~"emporium.*"}[1h]))', "{{pod}}")],
            w=6, requires="kube_pod_container_status_restarts_total", description=K8S)
    b.panel("timeseries", "Pod CPU",
            [(f'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace=~"emporium.*", container!=""}}[{RI}]))',
              "{{pod}}")], w=6, unit="percentunit", requires="container_cpu_usage_seconds_total", description=K8S)
    b.panel("timeseries", "Pod memory (working set)",
            [('sum by (pod) (container_memory_working_set_bytes{namespace=~"emporium.*", container!=""})', "{{pod}}")],
            w=6, unit="bytes", requires="container_memory_working_set_bytes", description=K8S)
    b.panel("timeseries", "Deployment replicas available / desired",
            [('kube_deployment_status_replicas_available{namespace=~"emporium.*"}\n  / '
              'kube_deployment_spec_replicas{namespace=~"emporium.*"}', "{{deployment}}")],
            w=12, unit="percentunit", requires="kube_deployment_status_replicas_available", description=K8S)
    b.panel("timeseries", "HPA replicas",
            [('kube_horizontalpodautoscaler_status_current_replicas{namespace=~"emporium.*"}',
              "{{horizontalpodautoscaler}}")],
            w=12, requires="kube_horizontalpodautoscaler_status_current_replicas", description=K8S)
    return b


# ---- RED per service ----------------------------------------------------------------------------
def red() -> Board:
    service = {
        "name": "service", "label": "Service", "type": "query", "datasource": PROM,
        "query": {"query": 'label_values(http_requests_total{job=~"$job"}, service)', "refId": "service"},
        "definition": 'label_values(http_requests_total{job=~"$job"}, service)', "refresh": 2,
        "includeAll": False, "multi": False, "current": {"selected": True, "text": "catalog", "value": "catalog"},
        "sort": 1, "hide": 0,
    }
    b = Board("emporium-red", "Emporium / RED by service",
              "Rate, errors and duration of one service (the `service` label: identity, catalog, ..., web).",
              ["red"], variables=[JOB_VAR, service])
    s = 'service="$service"'
    b.row("Rate")
    b.panel("stat", "Requests / s", [(rate("http_requests_total", s), "req/s")], w=6, h=4, unit="reqps")
    b.panel("stat", "5xx ratio", [(f'({rate("http_requests_total", s + ", " + S5)} or vector(0))\n  / '
                                   f'{rate("http_requests_total", s)}', "5xx")], w=6, h=4, unit="percentunit",
            thresholds=[(None, "green"), (0.001, "orange"), (0.01, "red")])
    b.panel("stat", "p95", [(p_quantile(0.95, "http_request_duration_seconds", "", s), "p95")], w=6, h=4, unit="s",
            thresholds=[(None, "green"), (0.1, "orange"), (0.5, "red")])
    b.panel("stat", "p99", [(p_quantile(0.99, "http_request_duration_seconds", "", s), "p99")], w=6, h=4, unit="s")
    b.panel("timeseries", "Requests / s by route", [(rate("http_requests_total", s, "method, route"),
                                                      "{{method}} {{route}}")], w=12, unit="reqps", legend_table=True)
    b.panel("timeseries", "Requests / s by status class", [(rate("http_requests_total", s, "status"), "{{status}}")],
            w=12, unit="reqps")
    b.row("Errors")
    b.panel("timeseries", "Error ratio (5xx)",
            [(f'({rate("http_requests_total", s + ", " + S5)} or vector(0))\n  / '
              f'{rate("http_requests_total", s)}', "5xx ratio")], w=12, unit="percentunit")
    b.panel("timeseries", "Client errors (4xx) by route",
            [(f'{rate("http_requests_total", s + ", " + S4, "method, route")} or vector(0)',
              "{{method}} {{route}}")], w=12, unit="reqps")
    b.row("Duration")
    b.panel("timeseries", "Latency p50 / p95 / p99",
            [(p_quantile(0.5, "http_request_duration_seconds", "", s), "p50"),
             (p_quantile(0.95, "http_request_duration_seconds", "", s), "p95"),
             (p_quantile(0.99, "http_request_duration_seconds", "", s), "p99")], w=12, unit="s")
    b.panel("timeseries", "p95 by route", [(p_quantile(0.95, "http_request_duration_seconds", "method, route", s),
                                            "{{method}} {{route}}")], w=12, unit="s", legend_table=True)
    b.panel("table", "Busiest routes (1h)",
            [{"expr": f'topk(15, sum by (method, route) (increase(http_requests_total{sel(s)}[1h])))',
              "legendFormat": "{{method}} {{route}}", "instant": True, "range": False, "format": "table"}], w=12)
    b.panel("timeseries", "In-flight requests (process)", [(f"sum by (instance) (http_requests_in_flight{sel()})",
                                                            "{{instance}}")], w=12)
    b.row("Calls to other services (multi-process topology)")
    b.panel("timeseries", "Outgoing calls by target", [(rate("service_client_duration_seconds_count", by="target, outcome"),
                                                        "{{target}} {{outcome}}")], w=12, unit="reqps",
            requires="service_client_duration_seconds_count",
            description="Calls this process makes to its peers; none in embedded mode (in-process calls).")
    b.panel("timeseries", "Mean outgoing call duration",
            [(avg_duration("service_client_duration_seconds", "target"), "{{target}}")], w=12, unit="s",
            requires="service_client_duration_seconds_count")
    b.panel("timeseries", "Outgoing call p95 by target",
            [(p_quantile(0.95, "service_client_duration_seconds", "target"), "{{target}}")], w=24, h=6, unit="s",
            requires="service_client_duration_seconds_bucket")
    b.row("Logs and traces")
    b.panel("logs", "Warnings and errors", [{"expr": '{service=~"$service.*", level=~"WARN|ERROR"}',
                                             "queryType": "range"}], ds=LOKI, w=24, h=10,
            description="From Loki (promtail labels service, level, namespace); a trace_id opens the trace in Tempo.")
    b.panel("table", "Slow traces", [{"queryType": "traceql", "query": '{ duration > 500ms }', "limit": 20}],
            ds=TEMPO, w=24, h=8, description="From Tempo (sampled by the OpenTelemetry Collector: errors and slow traces kept).")
    return b


# ---- business ---------------------------------------------------------------------------------
def business() -> Board:
    b = Board("emporium-business", "Emporium / Business",
              "Orders, revenue, conversion, payment failures, refunds, stock. Money metrics are in minor units "
              "(cents) and divided by 100 here.", ["business"])
    b.row("Orders")
    b.panel("stat", "Orders / min", [(f"{rate('orders_placed_total')} * 60", "orders/min")], w=6, h=5)
    b.panel("stat", "Orders placed (range)", [("sum(increase(orders_placed_total{job=~\"$job\"}[$__range]))", "orders")],
            w=6, h=5)
    b.panel("stat", "Revenue captured (range)",
            [('sum by (currency) (increase(payment_amount_sum{job=~"$job"}[$__range])) / 100', "{{currency}}")],
            w=6, h=5, unit="none", description="Captured payment amounts (payments' payment_amount), major units.")
    b.panel("stat", "Average order value (range)",
            [('sum by (currency) (increase(order_value_minor_units_sum{job=~"$job"}[$__range]))\n  / '
              'sum by (currency) (increase(order_value_minor_units_count{job=~"$job"}[$__range])) / 100',
              "{{currency}}")], w=6, h=5)
    b.panel("timeseries", "Orders per minute: placed, paid, failed, cancelled",
            [(f"{rate('orders_placed_total')} * 60", "placed"), (f"{rate('orders_paid_total')} * 60", "paid"),
             (f"({rate('orders_failed_total')} or vector(0)) * 60", "failed"),
             (f"({rate('orders_cancelled_total')} or vector(0)) * 60", "cancelled")], w=12)
    b.panel("timeseries", "Revenue per minute (captured)",
            [('sum by (currency) (rate(payment_amount_sum{job=~"$job"}[$__rate_interval])) * 60 / 100', "{{currency}}")],
            w=12)
    b.panel("timeseries", "Order value: median and p90 (1h)",
            [('histogram_quantile(0.5, sum by (currency, le) (increase(order_value_minor_units_bucket{job=~"$job"}[1h]))) / 100',
              "median {{currency}}"),
             ('histogram_quantile(0.9, sum by (currency, le) (increase(order_value_minor_units_bucket{job=~"$job"}[1h]))) / 100',
              "p90 {{currency}}")], w=24, h=6,
            description="Bucketed (100 to 1,000,000 minor units), so a value is the bucket's interpolated bound.",
            requires="order_value_minor_units_bucket")
    b.row("Conversion")
    b.panel("stat", "Cart → order conversion (range)",
            [('sum(increase(orders_placed_total{job=~"$job"}[$__range]))\n  / '
              'sum(increase(cart_items_added_total{job=~"$job"}[$__range]))', "orders per cart add")], w=8, h=5,
            unit="percentunit", description="Orders placed per unit added to a cart (cart has no per-cart counter).")
    b.panel("stat", "Checkout success (range)",
            [('sum(increase(orders_paid_total{job=~"$job"}[$__range]))\n  / '
              'sum(increase(orders_placed_total{job=~"$job"}[$__range]))', "paid / placed")], w=8, h=5,
            unit="percentunit", thresholds=[(None, "red"), (0.8, "orange"), (0.95, "green")])
    b.panel("stat", "Logins: failure ratio (range)",
            [('(sum(increase(identity_logins_total{job=~"$job", outcome!="success"}[$__range])) or vector(0))\n  / '
              'sum(increase(identity_logins_total{job=~"$job"}[$__range]))', "failures")], w=8, h=5, unit="percentunit")
    b.panel("timeseries", "Funnel per minute: registrations, cart adds, orders",
            [(f"({rate('identity_registrations_total')} or vector(0)) * 60", "registrations"),
             (f"{rate('cart_items_added_total')} * 60", "units added to carts"),
             (f"{rate('orders_placed_total')} * 60", "orders placed")], w=12)
    b.panel("timeseries", "Active carts", [(f"sum by (kind) (carts_active{sel()})", "{{kind}}")], w=12)
    b.row("Payments and refunds")
    b.panel("stat", "Payment failure ratio (range)",
            [('(sum(increase(payments_total{job=~"$job", outcome=~"failed|declined"}[$__range])) or vector(0))\n  / '
              'sum(increase(payments_total{job=~"$job"}[$__range]))', "failed or declined")], w=6, h=5,
            unit="percentunit", thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")])
    b.panel("stat", "Refunds (range)", [('sum(increase(refunds_total{job=~"$job"}[$__range])) or vector(0)', "refunds")],
            w=6, h=5)
    b.panel("timeseries", "Payments by outcome", [(rate("payments_total", by="outcome"), "{{outcome}}")], w=12,
            unit="reqps")
    b.panel("timeseries", "Failed orders by reason",
            [(f'sum by (reason) (increase(orders_failed_total{sel()}[1h])) or vector(0)', "{{reason}}")], w=12,
            description="Orders that ended failed in the last hour, by reason (card_declined, out_of_stock, ...).")
    b.panel("timeseries", "Refunds by outcome (1h)",
            [(f'sum by (outcome) (increase(refunds_total{sel()}[1h])) or vector(0)', "{{outcome}}")], w=12)
    b.row("Stock")
    b.panel("stat", "Low-stock SKUs", [(f"max(inventory_low_stock_skus{sel()})", "SKUs")], w=6, h=6,
            thresholds=[(None, "green"), (1, "orange")],
            description="SKUs at or below their low-stock threshold (list: /admin/inventory/low-stock).")
    b.panel("table", "Lowest available units",
            [{"expr": f"bottomk(15, max by (sku) (inventory_available_units{sel()}))", "legendFormat": "{{sku}}",
              "instant": True, "range": False, "format": "table"}], w=9, h=6,
            description="Per-SKU gauge, exported while the catalog is small (see inventory/src/service.rs).")
    b.panel("timeseries", "Reservations / min",
            [(f"{rate('inventory_reservations_created_total')} * 60", "created"),
             (f"({rate('inventory_reservations_expired_total')} or vector(0)) * 60", "expired"),
             (f"({rate('inventory_reservations_rejected_total')} or vector(0)) * 60", "rejected")], w=9, h=6)
    return b


# ---- infrastructure ---------------------------------------------------------------------------
def infrastructure() -> Board:
    b = Board("emporium-infrastructure", "Emporium / Infrastructure",
              "Cache, event bus (outbox, consumers, dead letters), mail, saga, gateway, and the data stores' exporters.",
              ["infrastructure"])
    b.row("Cache")
    b.panel("stat", "Cache hit ratio",
            [('sum(rate(cache_requests_total{job=~"$job", outcome="hit"}[$__rate_interval]))\n  / '
              'sum(rate(cache_requests_total{job=~"$job"}[$__rate_interval]))', "hit ratio")], w=6, h=8,
            unit="percentunit", thresholds=[(None, "red"), (0.5, "orange"), (0.8, "green")])
    b.panel("timeseries", "Cache requests by namespace and outcome",
            [(rate("cache_requests_total", by="namespace, outcome"), "{{namespace}} {{outcome}}")], w=6, unit="reqps")
    b.panel("timeseries", "Cache errors (reads fall back to the database)",
            [(f'{rate("cache_errors_total", by="namespace")} or vector(0)', "{{namespace}}")], w=6, unit="reqps")
    b.panel("timeseries", "Catalog reads served from cache",
            [(rate("catalog_cache_hits_total"), "hits/s"), (rate("catalog_search_queries_total", by="kind"), "{{kind}} queries/s")],
            w=6, unit="reqps")
    b.row("Events: outbox, broker, consumers, dead letters")
    b.panel("timeseries", "Outbox backlog by context", [(f"sum by (context) (events_outbox_pending{sel()})", "{{context}}")],
            w=8, description="Events written but not yet confirmed by the broker.")
    b.panel("timeseries", "Published / s by context", [(rate("events_published_total", by="context"), "{{context}}")],
            w=8, unit="ops")
    b.panel("timeseries", "Publish failures / s",
            [(f'{rate("events_publish_failures_total", by="context")} or vector(0)', "{{context}}")], w=8, unit="ops")
    b.panel("timeseries", "Consumed / s by consumer and outcome",
            [(rate("events_consumed_total", by="consumer, outcome"), "{{consumer}} {{outcome}}")], w=8, unit="ops")
    b.panel("stat", "Dead-lettered events (24h)",
            [('sum(increase(events_consumed_total{job=~"$job", outcome="dead_lettered"}[24h])) or vector(0)', "dead")],
            w=4, thresholds=[(None, "green"), (1, "red")],
            description="Replay or delete them at /admin/dead-letters.")
    b.panel("stat", "Retries (1h)",
            [('sum(increase(events_consumed_total{job=~"$job", outcome="retried"}[1h])) or vector(0)', "retried")], w=4)
    b.panel("timeseries", "Mean handling time by consumer",
            [(avg_duration("events_handle_duration_seconds", "consumer"), "{{consumer}}")], w=4, unit="s")
    b.panel("timeseries", "Handling time p95 by consumer",
            [(p_quantile(0.95, "events_handle_duration_seconds", "consumer"), "{{consumer}}")], w=4, unit="s",
            requires="events_handle_duration_seconds_bucket")
    b.row("Database pools (per context)")
    b.panel("timeseries", "Pool utilisation (in use / max)",
            [(f"sum by (context) (db_pool_connections_in_use{sel()})\n  / sum by (context) (db_pool_max_connections{sel()})",
              "{{context}}")], w=6, unit="percentunit", requires="db_pool_connections",
            description="EMPORIUM_DB_MAX_CONNECTIONS is the max; near 1 means requests queue for a connection.")
    b.panel("timeseries", "Pool connections: open and idle",
            [(f"sum by (context) (db_pool_connections{sel()})", "open {{context}}"),
             (f"sum by (context) (db_pool_connections_idle{sel()})", "idle {{context}}")], w=6,
            requires="db_pool_connections")
    b.panel("timeseries", "Connection wait (p95; probe every 5 s)",
            [(p_quantile(0.95, "db_pool_acquire_duration_seconds", "context"), "{{context}}")], w=6, unit="s",
            requires="db_pool_acquire_duration_seconds_count")
    b.panel("timeseries", "Acquire timeouts (1h)",
            [(f"sum by (context) (increase(db_pool_acquire_timeouts_total{sel()}[1h])) or vector(0)", "{{context}}")],
            w=6, requires="db_pool_connections",
            description="Waits for a connection that gave up: DatabaseConnectionFailure's signal.")
    b.row("Broker, as the processes see it (RabbitMQ bus; embedded mode has an in-process bus)")
    b.panel("timeseries", "Queue depth by consumer", [(f"max by (consumer) (events_queue_depth{sel()})", "{{consumer}}")],
            w=6, requires="events_queue_depth")
    b.panel("timeseries", "Unacknowledged by consumer",
            [(f"sum by (consumer) (events_consumer_unacked{sel()})", "{{consumer}}")], w=6,
            requires="events_consumer_unacked")
    b.panel("timeseries", "Redeliveries / s",
            [(f'{rate("events_redeliveries_total", by="consumer")} or vector(0)', "{{consumer}}")], w=6, unit="ops",
            requires="events_queue_depth")
    b.panel("timeseries", "Broker connections up",
            [(f"min by (job) (events_broker_connected{sel()})", "consumers {{job}}"),
             (f"min by (job) (events_broker_publisher_connected{sel()})", "publisher {{job}}")], w=6,
            requires="events_broker_connected", description="1 connected, 0 down (BrokerUnreachable).")
    b.row("RabbitMQ (built-in Prometheus plugin)")
    b.panel("timeseries", "Queue depth (ready) by queue",
            [('sum by (queue) (rabbitmq_detailed_queue_messages_ready) or sum by (queue) (rabbitmq_queue_messages_ready)',
              "{{queue}}")], w=8, requires="rabbitmq_queue_messages_ready",
            description="Needs the rabbitmq_prometheus plugin scraped (port 15692).")
    b.panel("timeseries", "Unacknowledged", [("sum(rabbitmq_queue_messages_unacked)", "unacked")], w=8,
            requires="rabbitmq_queue_messages_unacked")
    b.panel("timeseries", "Broker redeliveries / s", [(f"sum(rate(rabbitmq_global_messages_redelivered_total[{RI}]))", "redelivered")],
            w=8, requires="rabbitmq_global_messages_redelivered_total")
    b.row("Notifications and the order saga")
    b.panel("timeseries", "Mail: sent and failed / s",
            [(rate("notifications_sent_total", by="kind"), "sent {{kind}}"),
             (f'{rate("notifications_failed_total", by="kind")} or vector(0)', "failed {{kind}}")], w=8, unit="ops")
    b.panel("timeseries", "Mail queue and dead messages",
            [(f"sum(notifications_pending{sel()})", "pending"),
             (f'sum(increase(notifications_dead_total{sel()}[1h])) or vector(0)', "dead (1h)")], w=8)
    b.panel("timeseries", "Mean mail delivery time",
            [(avg_duration("notifications_delivery_duration_seconds", "outcome"), "mean {{outcome}}")], w=8, unit="s")
    b.panel("timeseries", "Mean saga step duration",
            [(avg_duration("order_saga_step_duration_seconds", "step"), "{{step}}")], w=8, unit="s")
    b.panel("timeseries", "Mean payment provider call",
            [(avg_duration("payment_provider_call_duration_seconds", "operation"), "{{operation}}")], w=8, unit="s")
    b.panel("timeseries", "Orders stuck by status", [(f"max by (status) (orders_stuck{sel()})", "{{status}}")], w=8,
            description="Orders left in a status longer than EMPORIUM_ORDER_STUCK_MINUTES.")
    b.row("p95 of the former summaries (histograms since the metrics rework)")
    b.panel("timeseries", "Saga step p95", [(p_quantile(0.95, "order_saga_step_duration_seconds", "step"), "{{step}}")],
            w=6, unit="s", requires="order_saga_step_duration_seconds_bucket")
    b.panel("timeseries", "Payment provider p95",
            [(p_quantile(0.95, "payment_provider_call_duration_seconds", "operation"), "{{operation}}")], w=6, unit="s",
            requires="payment_provider_call_duration_seconds_bucket")
    b.panel("timeseries", "Mail delivery p95",
            [(p_quantile(0.95, "notifications_delivery_duration_seconds", "outcome"), "{{outcome}}")], w=6, unit="s",
            requires="notifications_delivery_duration_seconds_bucket")
    b.panel("timeseries", "Gateway upstream p95",
            [(p_quantile(0.95, "gateway_upstream_duration_seconds", "upstream"), "{{upstream}}")], w=6, unit="s",
            requires="gateway_upstream_duration_seconds_bucket")
    b.row("Gateway (multi-process topology)")
    b.panel("timeseries", "Mean upstream time by upstream",
            [(avg_duration("gateway_upstream_duration_seconds", "upstream"), "{{upstream}}")], w=8, unit="s",
            requires="gateway_upstream_duration_seconds_count",
            description="The gateway's proxied calls; no gateway in embedded mode.")
    b.panel("timeseries", "Circuit breakers (0 closed, 1 half-open, 2 open)",
            [(f"max by (upstream) (gateway_breaker_state{sel()})", "{{upstream}}")], w=8,
            requires="gateway_breaker_state")
    b.panel("timeseries", "Rate limited and rejected at the edge",
            [(f'({rate("rate_limited_requests_total")} or vector(0))', "rate limited (contexts)"),
             (f'({rate("gateway_rate_limited_total")} or vector(0))', "rate limited (gateway)"),
             (f'({rate("gateway_edge_rejected_total", by="reason")} or vector(0))', "rejected {{reason}}")],
            w=8, unit="reqps")
    b.panel("timeseries", "Gateway micro-cache: hits and misses",
            [(rate("gateway_cache_lookups_total", by="outcome"), "{{outcome}}")], w=8, unit="reqps",
            requires="gateway_cache_lookups_total",
            description="Cacheable reads (public answers, anonymous GETs) the gateway answered itself "
                        "(hit) or fetched from the context (miss).")
    b.row("Data stores (exporters)")
    b.panel("stat", "PostgreSQL up", [("min(pg_up)", "pg_up")], w=4, requires="pg_up",
            thresholds=[(None, "red"), (1, "green")])
    b.panel("timeseries", "PostgreSQL connections by database",
            [("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}")], w=8,
            requires="pg_stat_database_numbackends")
    b.panel("stat", "Redis up", [("min(redis_up)", "redis_up")], w=4, requires="redis_up",
            thresholds=[(None, "red"), (1, "green")])
    b.panel("timeseries", "Redis memory and clients",
            [("sum(redis_memory_used_bytes)", "memory"), ("sum(redis_connected_clients)", "clients")], w=8,
            requires="redis_memory_used_bytes")
    return b


# ---- SLOs ---------------------------------------------------------------------------------------
AVAIL = 0.999
def slo() -> Board:
    b = Board("emporium-slo", "Emporium / SLOs and error budgets",
              "Availability 99.9 % (non-5xx responses), latency: 95 % of reads (GET) under 100 ms, 95 % of "
              "checkouts (POST /api/v1/orders, POST /checkout) under 500 ms, over 30 days. docs/slo.md explains "
              "the burn-rate policy.", ["slo"])

    def err_ratio(w: str) -> str:
        return (f'(sum(rate(http_requests_total{{job=~"$job", status="5xx"}}[{w}])) or vector(0))\n  / '
                f'sum(rate(http_requests_total{{job=~"$job"}}[{w}]))')

    def slow_ratio(w: str, matcher: str, le: str) -> str:
        return (f'1 - sum(rate(http_request_duration_seconds_bucket{{job=~"$job", {matcher}, le="{le}"}}[{w}]))\n'
                f'  / sum(rate(http_request_duration_seconds_count{{job=~"$job", {matcher}}}[{w}]))')

    reads = 'method="GET"'
    checkout = 'method="POST", route=~"/api/v1/orders|/checkout"'
    b.row("Availability: 99.9 % of requests without a 5xx")
    b.panel("stat", "Availability (30d)", [(f"1 - ({err_ratio('30d')})", "availability")], w=6, h=5,
            unit="percentunit", extra={"fieldConfig": {"defaults": {"unit": "percentunit", "decimals": 3,
                                                                    "thresholds": {"mode": "absolute", "steps": [
                                                                        {"color": "red", "value": None},
                                                                        {"color": "green", "value": AVAIL}]}},
                                                       "overrides": []}})
    b.panel("gauge", "Error budget remaining (30d)", [(f"1 - ({err_ratio('30d')}) / {1 - AVAIL:.3f}", "budget left")],
            w=6, h=5, unit="percentunit", thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")])
    b.panel("stat", "Burn rate 1h / 5m (page at 14.4)",
            [(f"({err_ratio('1h')}) / {1 - AVAIL:.3f}", "1h"), (f"({err_ratio('5m')}) / {1 - AVAIL:.3f}", "5m")],
            w=6, h=5, thresholds=[(None, "green"), (6, "orange"), (14.4, "red")])
    b.panel("stat", "Burn rate 6h / 30m (page at 6)",
            [(f"({err_ratio('6h')}) / {1 - AVAIL:.3f}", "6h"), (f"({err_ratio('30m')}) / {1 - AVAIL:.3f}", "30m")],
            w=6, h=5, thresholds=[(None, "green"), (1, "orange"), (6, "red")])
    b.panel("timeseries", "Error ratio vs. budget",
            [(err_ratio(RI), "5xx ratio"), (f"vector({1 - AVAIL:.3f})", "SLO threshold (0.1 %)")], w=12, unit="percentunit")
    b.panel("timeseries", "Burn rate (1h window)", [(f"({err_ratio('1h')}) / {1 - AVAIL:.3f}", "burn rate"),
                                                    ("vector(1)", "sustainable (1)")], w=12)
    b.row("Latency: reads p95 < 100 ms, checkout p95 < 500 ms")
    b.panel("stat", "Reads under 100 ms (30d)", [(f"1 - ({slow_ratio('30d', reads, '0.1')})", "reads fast")], w=6, h=5,
            unit="percentunit", thresholds=[(None, "red"), (0.95, "green")])
    b.panel("gauge", "Read latency budget remaining (30d)",
            [(f"1 - ({slow_ratio('30d', reads, '0.1')}) / 0.05", "budget left")], w=6, h=5, unit="percentunit",
            thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")])
    b.panel("stat", "Checkouts under 500 ms (30d)", [(f"1 - ({slow_ratio('30d', checkout, '0.5')})", "checkouts fast")],
            w=6, h=5, unit="percentunit", thresholds=[(None, "red"), (0.95, "green")])
    b.panel("gauge", "Checkout latency budget remaining (30d)",
            [(f"1 - ({slow_ratio('30d', checkout, '0.5')}) / 0.05", "budget left")], w=6, h=5, unit="percentunit",
            thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")])
    b.panel("timeseries", "Read p95 vs. 100 ms",
            [(p_quantile(0.95, "http_request_duration_seconds", "", reads), "p95 reads"), ("vector(0.1)", "objective")],
            w=12, unit="s")
    b.panel("timeseries", "Checkout p95 vs. 500 ms",
            [(p_quantile(0.95, "http_request_duration_seconds", "", checkout, "5m"), "p95 checkout"),
             ("vector(0.5)", "objective")], w=12, unit="s")
    b.panel("table", "Availability by service (30d)",
            [{"expr": ('1 - ((sum by (service) (rate(http_requests_total{job=~"$job", status="5xx"}[30d]))\n'
                       '  / sum by (service) (rate(http_requests_total{job=~"$job"}[30d])))\n'
                       '  or sum by (service) (rate(http_requests_total{job=~"$job"}[30d])) * 0)'),
              "legendFormat": "{{service}}", "instant": True, "range": False, "format": "table"}], w=24)
    return b


BOARDS = {"platform-overview.json": overview, "red.json": red, "business.json": business,
          "infrastructure.json": infrastructure, "slo.json": slo}


def render() -> dict[str, str]:
    return {name: json.dumps(fn().json(), indent=2, ensure_ascii=False) + "\n" for name, fn in BOARDS.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs")
    args = ap.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 observability/grafana/generate_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
