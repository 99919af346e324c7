#!/usr/bin/env python3
"""Structural checks of the log and trace configuration under observability/ (run by
.ci/check-observability-configs.sh with PyYAML from target/ci-venv).

Neither Loki, Promtail, Tempo, the OpenTelemetry Collector, Filebeat nor Logstash can be
installed here from a registry (Debian's "loki" is an unrelated Python package; Loki and Tempo
are not in Debian; the collector is not on PyPI/npm), so instead of their own `-verify-config`
this checks, per file, the keys each one needs and what Emporium relies on them for: the paths
compose.yaml mounts exist; Loki keeps 7 days and can store structured metadata; Promtail
sets the labels service, level, namespace and sends trace_id; Grafana's Loki data source links
trace_id to the Tempo data source; the collector's pipelines name only defined components,
sample every error and every slow trace and export to Tempo and to Prometheus; Tempo receives
OTLP where the collector sends it; the Logstash pipeline is balanced and writes
logs-{namespace}-{YYYY.MM.dd}; the Elasticsearch index template matches that name.
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import re
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
OBS = REPO / "observability"
errors: list[str] = []


def check(cond: bool, msg: str) -> None:
    if not cond:
        errors.append(msg)


def load(rel: str) -> dict:
    path = REPO / rel
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        errors.append(f"{rel}: {e}")
        return {}
    if not isinstance(data, dict):
        errors.append(f"{rel}: not a mapping")
        return {}
    return data


def dig(d: object, *keys: str | int, default=None):
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and k < len(d):
            d = d[k]
        else:
            return default
    return d


def only_keys(rel: str, d: dict, allowed: set[str]) -> None:
    extra = set(d) - allowed
    check(not extra, f"{rel}: unknown top-level keys {sorted(extra)} (the binary refuses them)")


# ---- compose mounts -----------------------------------------------------------------------------
def compose() -> None:
    rel = "deploy/compose/compose.yaml"
    c = load(rel)
    mine = ["observability/grafana/provisioning", "observability/grafana/dashboards", "observability/loki/loki.yml",
            "observability/promtail/promtail.yml", "observability/otel-collector/otel-collector.yml",
            "observability/tempo/tempo.yml"]
    mounts = []
    for svc in (c.get("services") or {}).values():
        for v in svc.get("volumes") or []:
            if isinstance(v, str) and v.startswith("../../observability/"):
                mounts.append(v.split(":")[0].removeprefix("../../"))
    for path in mine:
        check(path in mounts, f"{rel} no longer mounts {path}")
        check((REPO / path).exists(), f"{path}: mounted by {rel} but missing")
    elk = load("observability/elk/compose.elk.yaml")
    for name, svc in (elk.get("services") or {}).items():
        check("elk" in (svc.get("profiles") or []), f"compose.elk.yaml: {name} is not in the elk profile")
        for v in svc.get("volumes") or []:
            src = v.split(":")[0]
            if src.startswith("../../"):
                check((REPO / src.removeprefix("../../")).exists(), f"compose.elk.yaml: {name} mounts missing {src}")


# ---- Loki -------------------------------------------------------------------------------------
def loki() -> None:
    rel = "observability/loki/loki.yml"
    d = load(rel)
    only_keys(rel, d, {"auth_enabled", "server", "common", "schema_config", "limits_config", "compactor", "query_range",
                       "ruler", "analytics", "storage_config", "ingester", "querier", "frontend", "table_manager",
                       "memberlist", "pattern_ingester", "tracing"})
    check(dig(d, "server", "http_listen_port") == 3100, f"{rel}: server.http_listen_port must be 3100 (compose, Grafana)")
    configs = dig(d, "schema_config", "configs", default=[])
    check(bool(configs), f"{rel}: schema_config.configs missing")
    last = configs[-1] if configs else {}
    check(last.get("store") == "tsdb" and last.get("schema") == "v13",
          f"{rel}: the newest schema must be tsdb v13 (structured metadata needs it)")
    check(dig(d, "limits_config", "retention_period") == "168h", f"{rel}: limits_config.retention_period must be 168h (7 days)")
    check(dig(d, "limits_config", "allow_structured_metadata") is True, f"{rel}: allow_structured_metadata must be true")
    check(dig(d, "compactor", "retention_enabled") is True, f"{rel}: compactor.retention_enabled must be true")
    check(bool(dig(d, "compactor", "delete_request_store")),
          f"{rel}: compactor.delete_request_store is required with retention_enabled")
    check(bool(dig(d, "common", "storage", "filesystem", "chunks_directory")), f"{rel}: no chunk storage")


# ---- Promtail -----------------------------------------------------------------------------------
def promtail() -> set[str]:
    rel = "observability/promtail/promtail.yml"
    d = load(rel)
    only_keys(rel, d, {"server", "positions", "clients", "scrape_configs", "limits_config", "target_config", "options",
                       "tracing", "global"})
    check(dig(d, "server", "http_listen_port") == 9080, f"{rel}: server.http_listen_port must be 9080 (compose healthcheck)")
    urls = [c.get("url", "") for c in d.get("clients") or []]
    check(any(re.fullmatch(r"http://loki:3100/loki/api/v1/push", u) for u in urls), f"{rel}: no client pushing to Loki")
    labels_all: set[str] = set()
    jobs = d.get("scrape_configs") or []
    check(bool(jobs), f"{rel}: no scrape_configs")
    for job in jobs:
        name = job.get("job_name", "?")
        targets = {r.get("target_label") for r in job.get("relabel_configs") or []}
        check({"service", "namespace"} <= targets, f"{rel}: job {name} must set the labels service and namespace")
        stages = job.get("pipeline_stages") or []
        kinds = [next(iter(s)) for s in stages if isinstance(s, dict) and s]
        check("json" in kinds, f"{rel}: job {name} has no json stage")
        json_expr = next((s["json"].get("expressions", {}) for s in stages if "json" in s), {})
        check({"level", "trace_id"} <= set(json_expr), f"{rel}: job {name}'s json stage must extract level and trace_id")
        stage_labels = set().union(*[set(s["labels"] or {}) for s in stages if "labels" in s]) if "labels" in kinds else set()
        check("level" in stage_labels, f"{rel}: job {name} must make level a label")
        check("trace_id" not in stage_labels, f"{rel}: job {name}: trace_id as a label would explode the index")
        meta = set().union(*[set(s["structured_metadata"] or {}) for s in stages if "structured_metadata" in s]) \
            if "structured_metadata" in kinds else set()
        check("trace_id" in meta, f"{rel}: job {name} must send trace_id as structured metadata")
        known = {"json", "timestamp", "labels", "structured_metadata", "drop", "cri", "docker", "regex", "template",
                 "match", "output", "labeldrop", "labelallow", "static_labels", "limit", "multiline", "pack",
                 "replace", "tenant", "metrics", "decolorize", "logfmt", "sampling"}
        check(set(kinds) <= known, f"{rel}: job {name} has unknown stages {sorted(set(kinds) - known)}")
        labels_all |= {t for t in targets if t and not t.startswith("__")} | stage_labels
    return labels_all


# ---- Grafana data sources -----------------------------------------------------------------------
def grafana(promtail_labels: set[str]) -> None:
    rel = "observability/grafana/provisioning/datasources/datasources.yml"
    d = load(rel)
    ds = {x.get("uid"): x for x in d.get("datasources") or []}
    want = {"prometheus": ("prometheus", "http://prometheus:9090"), "loki": ("loki", "http://loki:3100"),
            "tempo": ("tempo", "http://tempo:3200")}
    for uid, (kind, url) in want.items():
        check(uid in ds, f"{rel}: no data source with uid {uid}")
        if uid in ds:
            check(ds[uid].get("type") == kind and ds[uid].get("url") == url,
                  f"{rel}: {uid} must be type {kind} at {url} (the compose service)")
    derived = dig(ds, "loki", "jsonData", "derivedFields", default=[])
    check(any(f.get("datasourceUid") == "tempo" and "trace_id" in f.get("matcherRegex", "") for f in derived),
          f"{rel}: Loki needs a trace_id derived field linking to the tempo data source")
    for f in derived:
        try:
            rx = re.compile(f.get("matcherRegex", ""))
        except re.error as e:
            errors.append(f"{rel}: derived field regex: {e}")
            continue
        sample = '{"level":"INFO","message":"x","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","target":"t"}'
        check(bool(rx.search(sample)) and rx.search(sample).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736",
              f"{rel}: derived field {f.get('name')} does not capture the trace id of a real log line")
    check(dig(ds, "tempo", "jsonData", "tracesToLogsV2", "datasourceUid") == "loki", f"{rel}: Tempo must link to Loki logs")
    prov = load("observability/grafana/provisioning/dashboards/dashboards.yml")
    check(dig(prov, "providers", 0, "options", "path") == "/var/lib/grafana/dashboards",
          "dashboards.yml: the provider must read /var/lib/grafana/dashboards (compose mounts the JSON there)")
    # The dashboards' LogQL may only select on labels promtail sets.
    for f in sorted((OBS / "grafana" / "dashboards").glob("*.json")):
        for p in json.loads(f.read_text()).get("panels", []):
            for t in p.get("targets", []):
                if dig(t, "datasource", "type") != "loki":
                    continue
                sel = re.match(r"\s*\{([^}]*)\}", t.get("expr", ""))
                for label in re.findall(r"(\w+)\s*[=!]~?", sel.group(1) if sel else ""):
                    check(label in promtail_labels, f"{f.name}: panel {p.get('title')!r} selects on label {label}, "
                          f"which promtail does not set ({sorted(promtail_labels)})")


# ---- Tempo --------------------------------------------------------------------------------------
def tempo() -> None:
    rel = "observability/tempo/tempo.yml"
    d = load(rel)
    only_keys(rel, d, {"stream_over_http_enabled", "server", "distributor", "ingester", "compactor", "query_frontend",
                       "storage", "usage_report", "metrics_generator", "overrides", "querier", "memberlist"})
    check(dig(d, "server", "http_listen_port") == 3200, f"{rel}: http_listen_port must be 3200 (Grafana's data source)")
    check(str(dig(d, "distributor", "receivers", "otlp", "protocols", "grpc", "endpoint", default="")).endswith(":4317"),
          f"{rel}: needs the OTLP gRPC receiver on :4317 (the collector's exporter)")
    check(dig(d, "compactor", "compaction", "block_retention") == "168h", f"{rel}: block_retention must be 168h")
    check(dig(d, "storage", "trace", "backend") in {"local", "s3", "gcs", "azure"}, f"{rel}: storage.trace.backend")
    check(str(dig(d, "storage", "trace", "local", "path", default="")).startswith("/var/tempo"),
          f"{rel}: local blocks must live on the tempo-data volume (/var/tempo)")


# ---- OpenTelemetry Collector --------------------------------------------------------------------
def otel() -> None:
    rel = "observability/otel-collector/otel-collector.yml"
    d = load(rel)
    only_keys(rel, d, {"receivers", "processors", "exporters", "connectors", "extensions", "service"})
    sections = {k: set(d.get(k) or {}) for k in ("receivers", "processors", "exporters", "connectors", "extensions")}
    pipelines = dig(d, "service", "pipelines", default={})
    check(bool(pipelines), f"{rel}: no pipelines")
    used_as_exporter, used_as_receiver = set(), set()
    for name, p in pipelines.items():
        check(name.split("/")[0] in {"traces", "metrics", "logs"}, f"{rel}: pipeline {name}: unknown signal")
        for r in p.get("receivers") or []:
            check(r in sections["receivers"] | sections["connectors"], f"{rel}: pipeline {name}: receiver {r} undefined")
            used_as_receiver.add(r)
        for pr in p.get("processors") or []:
            check(pr in sections["processors"], f"{rel}: pipeline {name}: processor {pr} undefined")
        for e in p.get("exporters") or []:
            check(e in sections["exporters"] | sections["connectors"], f"{rel}: pipeline {name}: exporter {e} undefined")
            used_as_exporter.add(e)
        check(bool(p.get("receivers")) and bool(p.get("exporters")), f"{rel}: pipeline {name} needs receivers and exporters")
        procs = p.get("processors") or []
        if "memory_limiter" in procs:
            check(procs[0] == "memory_limiter", f"{rel}: pipeline {name}: memory_limiter must come first")
    for c in sections["connectors"]:
        check(c in used_as_exporter and c in used_as_receiver, f"{rel}: connector {c} must be an exporter and a receiver")
    for e in dig(d, "service", "extensions", default=[]):
        check(e in sections["extensions"], f"{rel}: extension {e} undefined")
    check({"grpc", "http"} <= set(dig(d, "receivers", "otlp", "protocols", default={})),
          f"{rel}: the OTLP receiver needs grpc and http (the processes send OTLP/HTTP to :4318)")
    check(str(dig(d, "receivers", "otlp", "protocols", "http", "endpoint", default="")).endswith(":4318"),
          f"{rel}: OTLP/HTTP must listen on :4318 (compose's OTEL_EXPORTER_OTLP_ENDPOINT)")
    check("batch" in sections["processors"], f"{rel}: no batch processor")
    policies = dig(d, "processors", "tail_sampling", "policies", default=[])
    check(any(p.get("type") == "status_code" and "ERROR" in dig(p, "status_code", "status_codes", default=[])
              for p in policies), f"{rel}: tail sampling must keep every trace with an error (status_code ERROR)")
    check(any(p.get("type") == "latency" and dig(p, "latency", "threshold_ms") for p in policies),
          f"{rel}: tail sampling must keep slow traces (a latency policy)")
    sampled = [n for n, p in pipelines.items() if "tail_sampling" in (p.get("processors") or [])]
    check(bool(sampled), f"{rel}: no pipeline applies tail_sampling")
    tempo_exp = [e for e in sections["exporters"] if e.startswith("otlp") and "tempo" in str(dig(d, "exporters", e, "endpoint"))]
    check(bool(tempo_exp), f"{rel}: no OTLP exporter to tempo")
    check(all(any(e in (pipelines[n].get("exporters") or []) for e in tempo_exp) for n in sampled),
          f"{rel}: the sampled pipeline must export to Tempo")
    check("spanmetrics" in sections["connectors"], f"{rel}: no spanmetrics connector")
    prom = [e for e in sections["exporters"] if e.split("/")[0] in {"prometheus", "prometheusremotewrite"}]
    check(any("spanmetrics" in (p.get("receivers") or []) and set(prom) & set(p.get("exporters") or [])
              for p in pipelines.values()), f"{rel}: span metrics must reach a Prometheus exporter")
    unsampled_spanmetrics = [n for n, p in pipelines.items() if "spanmetrics" in (p.get("exporters") or [])
                             and "tail_sampling" not in (p.get("processors") or [])]
    check(bool(unsampled_spanmetrics), f"{rel}: span metrics must see every span (before tail sampling)")
    # Span metrics are only useful if Prometheus scrapes the exporter that serves them.
    prom_rel = "observability/prometheus/prometheus.yml"
    scraped = {t for job in (load(prom_rel).get("scrape_configs") or [])
               for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
    for e in prom:
        port = str(dig(d, "exporters", e, "endpoint", default="")).rsplit(":", 1)[-1]
        check(f"otel-collector:{port}" in scraped,
              f"{prom_rel}: no scrape job for the collector's {e} exporter (otel-collector:{port})")


# ---- ELK ----------------------------------------------------------------------------------------
def filebeat() -> None:
    rel = "observability/elk/filebeat/filebeat.yml"
    d = load(rel)
    check(bool(d.get("filebeat.inputs") or d.get("filebeat.autodiscover")), f"{rel}: no inputs")
    check("logstash" in str(d.get("output.logstash", {}).get("hosts")), f"{rel}: must send to Logstash")
    outputs = [k for k in d if k.startswith("output.")]
    check(len(outputs) == 1, f"{rel}: Filebeat allows exactly one output, found {outputs}")


PLUGINS = {"input": {"beats", "tcp", "udp", "http", "stdin", "file"},
           "filter": {"mutate", "json", "date", "grok", "drop", "ruby", "kv", "dissect", "prune", "fingerprint"},
           "output": {"elasticsearch", "stdout", "file"}}


def logstash() -> None:
    rel = "observability/elk/logstash/pipeline/emporium.conf"
    text = (REPO / rel).read_text()
    # Strip comments and strings, then check the brace/bracket structure.
    stripped = re.sub(r"(?m)^\s*#[^\n]*", "", text)  # whole-line comments (they hold apostrophes)
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', stripped)
    stripped = re.sub(r"#[^\n]*", "", stripped)
    stripped = re.sub(r"=~\s*/(?:[^/\\]|\\.)*/", '=~ ""', stripped)
    depth, stack = 0, []
    for n, ch in enumerate(stripped):
        if ch in "{[":
            stack.append(ch)
        elif ch in "}]":
            if not stack or {"{": "}", "[": "]"}[stack.pop()] != ch:
                line = stripped[:n].count("\n") + 1
                errors.append(f"{rel}:{line}: unbalanced {ch}")
                return
    check(not stack, f"{rel}: {len(stack)} unclosed bracket(s)")
    # Top-level sections and the plugins inside them.
    sections = re.findall(r"(?m)^(\w+)\s*\{", stripped)
    check(sections == ["input", "filter", "output"], f"{rel}: top-level sections must be input, filter, output: {sections}")
    for section in ("input", "filter", "output"):
        m = re.search(rf"(?m)^{section}\s*\{{", stripped)
        if not m:
            continue
        i, level, body_start = m.end(), 1, m.end()
        while level and i < len(stripped):
            level += {"{": 1, "}": -1}.get(stripped[i], 0)
            i += 1
        body = stripped[body_start:i - 1]
        # Plugin blocks: a word followed by { that is not a conditional or a hash value.
        for word in re.findall(r"(?<![=>\w])\b([a-z_]+)\s*\{", body):
            if word in {"if", "else", "add_field", "replace", "match", "rename", "update"}:
                continue
            check(word in PLUGINS[section], f"{rel}: {section} uses unknown or unexpected plugin {word}")
    check('index => "logs-%{[namespace]}-%{+YYYY.MM.dd}"' in text,
          f"{rel}: the elasticsearch output must write logs-%{{[namespace]}}-%{{+YYYY.MM.dd}}")
    check('data_stream => "false"' in text, f"{rel}: daily indices, not a data stream (data_stream => false)")
    tmpl = re.search(r'template => "([^"]+)"', text)
    check(bool(tmpl) and tmpl.group(1).endswith("index-template.json"), f"{rel}: must install index-template.json")

    trel = "observability/elk/elasticsearch/index-template.json"
    t = json.loads((REPO / trel).read_text())
    pats = t.get("index_patterns", [])
    check(any(fnmatch.fnmatchcase("logs-emporium-2026.12.03", p) for p in pats),
          f"{trel}: index_patterns {pats} do not match logs-emporium-2026.12.03")
    check(not any(fnmatch.fnmatchcase("logs-generic-default", p) for p in pats),
          f"{trel}: index_patterns {pats} would capture the built-in logs-*-* data streams")
    check(t.get("priority", 0) > 100, f"{trel}: priority must exceed the built-in logs template's 100")
    check("data_stream" not in t, f"{trel}: must not be a data stream template")
    props = dig(t, "template", "mappings", "properties", default={})
    for field in ("@timestamp", "service", "namespace", "message"):
        check(field in props, f"{trel}: no mapping for {field}")
    policy = dig(t, "template", "settings", "index", "lifecycle", "name")
    ilm = json.loads((REPO / "observability/elk/elasticsearch/ilm-policy.json").read_text())
    check(policy == "emporium-logs-7d" and dig(ilm, "policy", "phases", "delete", "min_age") == "7d",
          f"{trel}: must use the 7-day ILM policy emporium-logs-7d")


def main() -> int:
    compose()
    loki()
    labels = promtail()
    grafana(labels)
    tempo()
    otel()
    filebeat()
    logstash()
    for e in errors:
        print(f"FAIL {e}")
    print(f"structure: compose mounts, loki, promtail, grafana data sources, tempo, otel-collector, filebeat, "
          f"logstash, index template: {'ok' if not errors else f'{len(errors)} problem(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
