#!/usr/bin/env python3
"""Helpers of .ci/check-observability.sh (Prometheus and Alertmanager against the running system).

    check_observability.py runbooks
        every alert of observability/prometheus/rules has docs/runbooks/<Alert>.md, its runbook_url
        points there, and every runbook is named after (and titled with) an alert that exists
    check_observability.py derive --work DIR --targets JSON --prometheus-port P
                                   --alertmanager-port A --webhook-port W --token-file F
        writes DIR/prometheus.yml, DIR/rules/*.yml and DIR/alertmanager.yml: the repository's
        files with the compose host names mapped to the local processes, short intervals, and
        every receiver pointed at the check's webhook (same routes, grouping and inhibition)
    check_observability.py webhook --port W --out FILE
        an Alertmanager webhook receiver: appends {"path", "body"} per POST to FILE (JSON lines)
    check_observability.py wait-up --prometheus URL --jobs a,b,... --timeout S
    check_observability.py wait-alert --prometheus URL --alert NAME --job JOB --state firing|none
    check_observability.py wait-webhook --file FILE --receiver R --alert NAME --job JOB --status S
    check_observability.py am-probe --alertmanager URL --file FILE
        synthetic alerts posted to Alertmanager: warning and business reach their receivers, and
        InstanceDown inhibits the other alerts of its instance
    check_observability.py query --prometheus URL --expr PROMQL [--expect-empty]
        fails when the result is empty (or, with --expect-empty, when it is not)

PyYAML is needed for `runbooks` and `derive`; the rest is standard library.
"""

from __future__ import annotations

import argparse
import copy
import glob
import http.server
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RULES = os.path.join(ROOT, "observability", "prometheus", "rules")
RUNBOOKS = os.path.join(ROOT, "docs", "runbooks")
RUNBOOK_URL = "https://github.com/emporium/emporium/blob/main/docs/runbooks/{}.md"

# The live check cannot wait InstanceDown's production `for: 2m` (plus the scrapes before it) in a
# check that should take under four minutes: its copy of the rules waits this long instead. The
# rule itself (expression, labels, annotations) is the repository's, and its 2m is unit-tested by
# promtool (observability/prometheus/tests).
LIVE_FOR_OVERRIDES = {"InstanceDown": "10s", "PaymentFailureRate": "10s"}

# Scrape jobs of prometheus.yml the live check has nothing to point at: the exporters run only in
# compose (the check runs on the machine's own PostgreSQL, Redis and RabbitMQ without them).
NOT_LOCAL = {"postgres", "redis", "rabbitmq"}
# Jobs whose server the live check cannot run, and why (printed, so the skip is never silent).
# The collector ships only as a container image or a release binary (no Debian, PyPI or npm
# package); its config is checked statically by check_observability_configs.py, and the spans it
# would receive are checked end to end by the dev_trace test.
SKIPPED_LIVE = {
    "otel-collector": "the OpenTelemetry Collector is not installable here (image or release binary only)",
}


def load_yaml(path):
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def dump_yaml(doc, path):
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


def alerts():
    """{alertname: [rule, ...]} over every rule file."""
    found = {}
    for path in sorted(glob.glob(os.path.join(RULES, "*.yml"))):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found.setdefault(rule["alert"], []).append((os.path.basename(path), rule))
    return found


def cmd_runbooks(_args):
    found = alerts()
    problems = []
    for name, rules in sorted(found.items()):
        path = os.path.join(RUNBOOKS, name + ".md")
        if not os.path.isfile(path):
            problems.append(f"alert {name} has no runbook docs/runbooks/{name}.md")
        for source, rule in rules:
            url = (rule.get("annotations") or {}).get("runbook_url")
            if url != RUNBOOK_URL.format(name):
                problems.append(f"{source}: {name}'s runbook_url is {url!r}, expected {RUNBOOK_URL.format(name)!r}")
            if (rule.get("labels") or {}).get("severity") not in ("critical", "warning", "business"):
                problems.append(f"{source}: {name} has no severity critical, warning or business")
    for path in sorted(glob.glob(os.path.join(RUNBOOKS, "*.md"))):
        stem = os.path.basename(path)[:-3]
        if stem == "README":
            continue
        if stem not in found:
            problems.append(f"docs/runbooks/{stem}.md names no alert of observability/prometheus/rules")
            continue
        with open(path) as f:
            first = f.readline().strip()
        if not re.match(rf"^# {re.escape(stem)}\b", first):
            problems.append(f"docs/runbooks/{stem}.md must start with '# {stem}' (found {first!r})")
        text = open(path).read()
        for section in ("## What it means", "## Look at", "## Likely causes", "## Mitigation", "## Escalation"):
            if section not in text:
                problems.append(f"docs/runbooks/{stem}.md has no '{section}' section")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"runbooks: {len(found)} alerts, each with its runbook; every runbook names an alert")


def cmd_derive(args):
    work = args.work
    targets = json.loads(args.targets)  # {"identity": "127.0.0.1:18081", ..., "gateway": ...}
    prom = load_yaml(os.path.join(ROOT, "observability", "prometheus", "prometheus.yml"))
    live = copy.deepcopy(prom)
    live["global"].update({"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"})
    live["rule_files"] = [os.path.join(work, "rules", "*.yml")]
    live["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{args.alertmanager_port}"]}]}]}
    jobs, mapped = [], []
    for job in prom["scrape_configs"]:
        name = job["job_name"]
        if name in NOT_LOCAL:
            continue
        if name in SKIPPED_LIVE:
            print(f"live check skips scrape job {name}: {SKIPPED_LIVE[name]}")
            continue
        job = copy.deepcopy(job)
        if name.startswith("emporium-"):
            process = name[len("emporium-"):]
            if process not in targets:
                sys.exit(f"prometheus.yml scrapes {name}, but `emporium dev` started no {process}")
            if job.get("authorization", {}).get("credentials_file") != "/tmp/metrics_token":
                sys.exit(f"prometheus.yml: {name} must scrape with credentials_file /tmp/metrics_token (compose)")
            job["authorization"]["credentials_file"] = args.token_file
            job["static_configs"] = [{"targets": [targets[process]]}]
            mapped.append(process)
        elif name == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{args.prometheus_port}"]}]
        elif name == "alertmanager":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{args.alertmanager_port}"]}]
        else:
            sys.exit(f"prometheus.yml: no local mapping for job {name} (add it to check_observability.py)")
        jobs.append(job)
    missing = sorted(set(targets) - set(mapped))
    if missing:
        sys.exit(f"prometheus.yml does not scrape these processes of the topology: {', '.join(missing)}")
    live["scrape_configs"] = jobs
    dump_yaml(live, os.path.join(work, "prometheus.yml"))

    os.makedirs(os.path.join(work, "rules"), exist_ok=True)
    overridden = []
    for path in sorted(glob.glob(os.path.join(RULES, "*.yml"))):
        doc = load_yaml(path)
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in LIVE_FOR_OVERRIDES:
                    overridden.append(f"{rule['alert']} for: {rule.get('for')} -> {LIVE_FOR_OVERRIDES[rule['alert']]}")
                    rule["for"] = LIVE_FOR_OVERRIDES[rule["alert"]]
        dump_yaml(doc, os.path.join(work, "rules", os.path.basename(path)))

    am = load_yaml(os.path.join(ROOT, "observability", "alertmanager", "alertmanager.yml"))
    am["templates"] = [os.path.join(ROOT, "observability", "alertmanager", "templates", "*.tmpl")]
    for receiver in am["receivers"]:
        name = receiver["name"]
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"http://127.0.0.1:{args.webhook_port}/{name}", "send_resolved": True}]

    def quick(route):
        for key, value in (("group_wait", "1s"), ("group_interval", "2s")):
            if key in route or route is am["route"]:
                route[key] = value
        for child in route.get("routes", []):
            quick(child)

    quick(am["route"])
    dump_yaml(am, os.path.join(work, "alertmanager.yml"))
    print(f"derived configs in {work}: {len(jobs)} scrape jobs ({', '.join(j['job_name'] for j in jobs)});"
          f" not scraped here: {', '.join(sorted(NOT_LOCAL))} (exporters of compose);"
          f" test-only override: {'; '.join(overridden)}; receivers -> webhook :{args.webhook_port}")


def cmd_webhook(args):
    out = args.out

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body.decode("utf-8", "replace")
            with open(out, "a") as f:
                f.write(json.dumps({"path": self.path, "body": parsed}) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def query(prometheus, expr):
    return get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]


def cmd_wait_up(args):
    want = set(args.jobs.split(","))
    deadline = time.time() + args.timeout
    while True:
        try:
            active = get(f"{args.prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
        except OSError:
            active = []
        health = {t["labels"]["job"]: (t["health"], t.get("lastError", "")) for t in active}
        down = sorted(j for j in want if health.get(j, ("absent",))[0] != "up")
        if not down:
            print("every target up: " + ", ".join(f"{t['labels']['job']} ({t['scrapeUrl']})" for t in active))
            return
        if time.time() > deadline:
            sys.exit("targets not up: " + "; ".join(f"{j}: {health.get(j, ('absent', ''))}" for j in down))
        time.sleep(1)


def cmd_wait_alert(args):
    deadline = time.time() + args.timeout
    # An aggregated alert (PaymentFailureRate: a sum over every process) has no job: --job "".
    job = f', job="{args.job}"' if args.job else ""
    expr = f'ALERTS{{alertname="{args.alert}"{job}, alertstate="firing"}}'
    while True:
        result = query(args.prometheus, expr)
        if (args.state == "firing") == bool(result):
            print(f"{args.alert} for {args.job}: {args.state} in Prometheus")
            return
        if time.time() > deadline:
            sys.exit(f"{args.alert} for {args.job} is not {args.state} after {args.timeout} s (ALERTS: {result})")
        time.sleep(1)


def cmd_wait_webhook(args):
    deadline = time.time() + args.timeout
    while True:
        if os.path.exists(args.file):
            with open(args.file) as f:
                for line in f:
                    got = json.loads(line)
                    body = got["body"] if isinstance(got["body"], dict) else {}
                    if got["path"] != "/" + args.receiver or body.get("receiver") != args.receiver:
                        continue
                    for alert in body.get("alerts", []):
                        labels = alert.get("labels", {})
                        if (labels.get("alertname") == args.alert and labels.get("job", "") == args.job
                                and alert.get("status") == args.status):
                            url = alert.get("annotations", {}).get("runbook_url", "")
                            if url != RUNBOOK_URL.format(args.alert):
                                sys.exit(f"{args.alert} reached the webhook without its runbook_url ({url!r})")
                            print(f"webhook: {args.receiver} got {args.alert} {args.status} for {args.job}"
                                  f" ({labels.get('instance')}, runbook {url})")
                            return
        if time.time() > deadline:
            seen = open(args.file).read()[-2000:] if os.path.exists(args.file) else "(nothing)"
            sys.exit(f"no {args.status} {args.alert} for {args.job} at receiver {args.receiver} after"
                     f" {args.timeout} s; the webhook got: {seen}")
        time.sleep(1)


def cmd_am_probe(args):
    """Synthetic alerts straight into Alertmanager: the warning and business routes reach their
    receivers, and InstanceDown inhibits the other alerts of its instance (and only those)."""
    job = "emporium-probe"

    def alert(name, severity, instance):
        return {"labels": {"alertname": name, "severity": severity, "job": job, "instance": instance},
                "annotations": {"summary": f"routing probe of check-observability ({name})",
                                "runbook_url": RUNBOOK_URL.format(name)}}

    alerts = [alert("HighMemory", "warning", "probe:1"), alert("LowInventory", "business", "probe:1"),
              alert("InstanceDown", "critical", "probe:2"), alert("HighCPU", "warning", "probe:2")]
    req = urllib.request.Request(f"{args.alertmanager}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    for receiver, name in (("slack-warnings", "HighMemory"), ("email-business", "LowInventory"),
                           ("pagerduty-critical", "InstanceDown")):
        cmd_wait_webhook(argparse.Namespace(file=args.file, receiver=receiver, alert=name, job=job,
                                            status="firing", timeout=30))
    deadline = time.time() + 30
    while True:
        got = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"]
               for a in get(f"{args.alertmanager}/api/v2/alerts?inhibited=true&silenced=true")
               if a["labels"].get("job") == job}
        if got.get(("HighCPU", "probe:2"), {}).get("inhibitedBy") and \
                not got.get(("HighMemory", "probe:1"), {}).get("inhibitedBy", ["?"]):
            print("inhibition: InstanceDown on probe:2 silences HighCPU on probe:2; HighMemory on probe:1 still notifies")
            break
        if time.time() > deadline:
            sys.exit(f"inhibition not as expected: {got}")
        time.sleep(1)
    # Nothing inhibited may have been sent.
    with open(args.file) as f:
        for line in f:
            body = json.loads(line)["body"]
            for a in body.get("alerts", []) if isinstance(body, dict) else []:
                if a["labels"].get("job") == job and a["labels"]["alertname"] == "HighCPU":
                    sys.exit("HighCPU on probe:2 reached a receiver although InstanceDown inhibits it")


def cmd_query(args):
    result = query(args.prometheus, args.expr)
    if args.expect_empty:
        if result:
            sys.exit(f"expected nothing for {args.expr}, got: " + "; ".join(str(r["metric"]) for r in result))
        print(f"{args.expr}: nothing, as expected")
        return
    if not result:
        sys.exit(f"no data for {args.expr}")
    print(f"{args.expr}: {len(result)} series, e.g. {result[0]['metric']} = {result[0]['value'][1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("runbooks")
    d = sub.add_parser("derive")
    d.add_argument("--work", required=True)
    d.add_argument("--targets", required=True)
    d.add_argument("--prometheus-port", type=int, required=True)
    d.add_argument("--alertmanager-port", type=int, required=True)
    d.add_argument("--webhook-port", type=int, required=True)
    d.add_argument("--token-file", required=True)
    w = sub.add_parser("webhook")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--out", required=True)
    u = sub.add_parser("wait-up")
    u.add_argument("--prometheus", required=True)
    u.add_argument("--jobs", required=True)
    u.add_argument("--timeout", type=float, default=30)
    a = sub.add_parser("wait-alert")
    a.add_argument("--prometheus", required=True)
    a.add_argument("--alert", required=True)
    a.add_argument("--job", required=True)
    a.add_argument("--state", choices=["firing", "none"], default="firing")
    a.add_argument("--timeout", type=float, default=60)
    h = sub.add_parser("wait-webhook")
    h.add_argument("--file", required=True)
    h.add_argument("--receiver", required=True)
    h.add_argument("--alert", required=True)
    h.add_argument("--job", required=True)
    h.add_argument("--status", default="firing")
    h.add_argument("--timeout", type=float, default=60)
    m = sub.add_parser("am-probe")
    m.add_argument("--alertmanager", required=True)
    m.add_argument("--file", required=True)
    q = sub.add_parser("query")
    q.add_argument("--prometheus", required=True)
    q.add_argument("--expr", required=True)
    q.add_argument("--expect-empty", action="store_true", help="fail when the result is not empty")
    args = ap.parse_args()
    {
        "runbooks": cmd_runbooks,
        "derive": cmd_derive,
        "webhook": cmd_webhook,
        "wait-up": cmd_wait_up,
        "wait-alert": cmd_wait_alert,
        "wait-webhook": cmd_wait_webhook,
        "query": cmd_query,
        "am-probe": cmd_am_probe,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
