#!/usr/bin/env python3
"""Starts the system exactly as a rendered overlay describes it, as local processes, and runs the
README walkthrough through its gateway. Called by .ci/deploy-smoke.sh (which renders the overlay,
builds the binary when missing and provides the venv); see there for the whole story.

    smoke.py RENDERED.yaml --bin target/debug/emporium --prefix ci_k8s_123 --smtp-port N
             [--mutation NAME] [--readme README.md]

What comes from the manifests, unchanged: every Deployment's and Job's command and args (the
image's /usr/local/bin/emporium is the local binary), its environment (env and envFrom, with the
ConfigMaps and Secrets they name resolved key by key; a missing ConfigMap, Secret or key fails),
its probes' paths. What a cluster would provide is stood in for, and checked on the way:
  - Service host names (http://catalog:8082, catalog.<ns>.svc...) become 127.0.0.1 and the local
    port of the Deployment the Service selects, after checking that the URL's port is the
    Service's port, that the Service's targetPort is the container's port and that the process
    listens on that port (EMPORIUM_LISTEN or --listen);
  - the listen address becomes 127.0.0.1:<free port>; the probes use that port;
  - ExternalSecret keys get test values by their Secrets Manager key (the databases of this run on
    the local PostgreSQL, which the smoke creates as the Terraform bootstrap does on RDS; the local
    Redis and RabbitMQ; an SMTP sink; random secrets). A key without a test value fails;
  - EMPORIUM_NAMESPACE becomes this run's (and EMPORIUM_QUEUE_EXPIRY_SECS=600), so runs never share
    queues or cache keys; EMPORIUM_EXIT_WITH_PARENT ties the processes to this script.
No variable from the caller's shell reaches the processes (only PATH): a setting the manifests
forget is missing here as it would be in the pod.

The walkthrough runs verbatim but for its API= line, which points at a small shim in front of the
gateway: the shim forwards every request to the gateway, except GET /api/v1/dev/mailbox, which
production does not serve (mail goes out by SMTP); the shim answers it from the SMTP sink, in the
dev mailbox's format. Before the walkthrough an administrator (`emporium admin create`, as the
operator does) adds one product through the gateway and restocks it, since production starts with
an empty catalog: catalog tells inventory over RabbitMQ, so the bus is exercised too.

Every CronJob (the hourly PostgreSQL backup) runs once, while the system serves, as its Job
template describes it: each container's command with its environment (ConfigMaps resolved, the
Job's labels for fieldRef), the sidecar init containers (restartPolicy Always) first and until
their startupProbe passes, then the other init containers in order, then the containers, then the
sidecars are stopped with SIGTERM. Volumes become directories: a configMap volume holds its items
at their paths (so the script runs from the ConfigMap's copy, as in the pod), an emptyDir is
empty; the mount paths in the commands and the environment point there. Stood in for: `aws`, by a
stub on PATH that answers `rds generate-db-auth-token` and copies `s3 cp` into a local directory
per bucket (and `s3 ls` looks there); the RDS host (PGHOST) and the IAM login (PGUSER) by the local
PostgreSQL and its postgres user; DATABASE_PREFIX by this run's database prefix. The backup must
then be in the stand-in bucket at the URL the manifests give, complete (MANIFEST, one dump per
context).

--mutation breaks the rendering in one way first (see MUTATIONS); the run must then fail, which
.ci/deploy-smoke.sh checks, so the smoke test is known to catch what it claims to.
"""

import argparse
import base64
import glob
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import yaml

IMAGE_BINARY = "/usr/local/bin/emporium"
PG = "postgres://postgres@127.0.0.1:5432"


class SmokeFailure(Exception):
    pass


def fail(msg):
    raise SmokeFailure(msg)


def log(msg):
    print(msg, flush=True)


# ---- breaking the rendering on purpose -------------------------------------------------------

def find(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    fail(f"mutation: no {kind} {name} in the rendering")


def container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


def mutate_variable_name(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("emporium-config"))
    cm["data"]["EMPORIUM_SHUTDOWN_GRACE_SEC"] = cm["data"].pop("EMPORIUM_SHUTDOWN_GRACE_SECS")


def mutate_service_port(docs):
    find(docs, "Service", "catalog")["spec"]["ports"][0]["port"] = 8092


def mutate_listen_port(docs):
    for e in container(find(docs, "Deployment", "inventory"))["env"]:
        if e["name"] == "EMPORIUM_LISTEN":
            e["value"] = "0.0.0.0:9083"


def mutate_service_name(docs):
    for e in container(find(docs, "Deployment", "cart"))["env"]:
        if e["name"] == "EMPORIUM_CATALOG_URL":
            e["value"] = "http://catalogue:8082"


def mutate_probe_path(docs):
    container(find(docs, "Deployment", "payments"))["readinessProbe"]["httpGet"]["path"] = "/healthz"


def mutate_missing_migration(docs):
    docs.remove(find(docs, "Job", "cart-migrate"))


def mutate_missing_secret_key(docs):
    es = find(docs, "ExternalSecret", "ordering-secrets")
    es["spec"]["data"] = [d for d in es["spec"]["data"] if d["secretKey"] != "EMPORIUM_SERVICE_SECRET"]


def mutate_backup_setting(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("backup-target"))
    cm["data"]["BACKUP_S3_URI"] = cm["data"].pop("BACKUP_S3_URL")


MUTATIONS = {
    # name: (what it breaks, a phrase the failure must contain)
    "variable-name": (mutate_variable_name, "EMPORIUM_SHUTDOWN_GRACE_SEC"),
    "service-port": (mutate_service_port, "Service catalog"),
    "listen-port": (mutate_listen_port, "listens on 9083"),
    "service-name": (mutate_service_name, "host catalogue"),
    "probe-path": (mutate_probe_path, "/healthz"),
    "missing-migration": (mutate_missing_migration, "no Job runs `migrate --service cart`"),
    "missing-secret": (mutate_missing_secret_key, "EMPORIUM_SERVICE_SECRET"),
    "backup-setting": (mutate_backup_setting, "key BACKUP_S3_URL"),
}


# ---- the rendering ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class Rendering:
    def __init__(self, docs, test_values):
        self.docs = docs
        self.namespace = next((d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"), None)
        self.configmaps = {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"}
        self.secrets = {}
        for d in docs:
            if d["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
                data.update(d.get("stringData") or {})
                self.secrets[d["metadata"]["name"]] = data
            elif d["kind"] == "ExternalSecret":
                spec = d["spec"]
                if spec.get("dataFrom"):
                    fail(f"ExternalSecret {d['metadata']['name']}: dataFrom is not supported by the smoke test")
                target = spec.get("target", {}).get("name") or d["metadata"]["name"]
                self.secrets[target] = {e["secretKey"]: test_values(e["remoteRef"]["key"]) for e in spec["data"]}
        self.services = [d for d in docs if d["kind"] == "Service"]
        self.deployments = [d for d in docs if d["kind"] == "Deployment"]
        self.jobs = [d for d in docs if d["kind"] == "Job"]
        self.cronjobs = [d for d in docs if d["kind"] == "CronJob"]
        if not self.deployments:
            fail("the rendering has no Deployment")

    def resolve_env(self, what, c):
        """The container's environment as the kubelet builds it: envFrom in order, then env."""
        env = {}
        for src in c.get("envFrom", []):
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref, table, kind = src["configMapRef"], self.configmaps, "ConfigMap"
            else:
                ref, table, kind = src["secretRef"], self.secrets, "Secret"
            if ref["name"] not in table:
                if ref.get("optional"):
                    continue
                fail(f"{what}: envFrom names {kind} {ref['name']}, which the rendering does not have")
            for k, v in table[ref["name"]].items():
                env[prefix + k] = v
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "configMapKeyRef" in vf:
                    ref, table, kind = vf["configMapKeyRef"], self.configmaps, "ConfigMap"
                elif "secretKeyRef" in vf:
                    ref, table, kind = vf["secretKeyRef"], self.secrets, "Secret"
                else:
                    fail(f"{what}: {e['name']} uses {list(vf)}, which the smoke test cannot stand in for")
                if ref["name"] not in table:
                    if ref.get("optional"):
                        continue
                    fail(f"{what}: {e['name']} comes from {kind} {ref['name']}, which the rendering does not have")
                if ref["key"] not in table[ref["name"]]:
                    if ref.get("optional"):
                        continue
                    fail(f"{what}: {e['name']} comes from key {ref['key']} of {kind} {ref['name']}, which has no such key")
                env[e["name"]] = table[ref["name"]][ref["key"]]
            else:
                env[e["name"]] = ""
        return env


def expand(value, env):
    """Kubernetes' $(VAR) references to variables defined before."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def listen_port(what, c, env):
    args = c.get("args", [])
    listen = None
    if "--listen" in args:
        listen = args[args.index("--listen") + 1]
    elif "EMPORIUM_LISTEN" in env:
        listen = env["EMPORIUM_LISTEN"]
    if listen is None:
        fail(f"{what}: neither --listen nor EMPORIUM_LISTEN says where it listens")
    m = re.fullmatch(r"(.*):(\d+)", listen)
    if not m:
        fail(f"{what}: cannot read the listen address {listen!r}")
    if m.group(1) not in ("0.0.0.0", "[::]", "::"):
        fail(f"{what}: listens on {listen}, which other pods cannot reach (0.0.0.0 is needed)")
    return int(m.group(2))


def container_port(what, c, ref):
    """A probe's or Service's port (number or name) as a number of the container."""
    for p in c.get("ports", []):
        if ref == p.get("name") or ref == p["containerPort"]:
            return p["containerPort"]
    fail(f"{what}: port {ref!r} is not one of the container's ports")


# ---- the run ---------------------------------------------------------------------------------

class Process:
    def __init__(self, name, argv, env, logfile):
        self.name = name
        self.logfile = logfile
        self.out = open(logfile, "w")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, n=25):
        with open(self.logfile, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self, timeout):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.out.close()


def call(method, port, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"content-type": "application/json"} if data else {}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# The `aws` CLI as the backup CronJob uses it, without AWS: S3 is a directory per bucket.
AWS_STUB = r"""#!@PYTHON@
import os, shutil, sys
BUCKETS = "@BUCKETS@"
args = [a for a in sys.argv[1:] if a != "--only-show-errors"]


def opt(name):
    i = args.index(name)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def local(url):
    if not url.startswith("s3://"):
        sys.exit(f"aws stub: not an s3:// URL: {url}")
    return os.path.join(BUCKETS, url[5:])


if args[:2] == ["rds", "generate-db-auth-token"]:
    host, port, user = opt("--hostname"), opt("--port"), opt("--username")
    print(f"{host}:{port}/?Action=connect&DBUser={user}&X-Amz-Signature=smoke-test")
elif args[:2] == ["s3", "ls"]:
    sys.exit(0 if os.path.exists(local(args[2])) else 1)
elif args[:2] == ["s3", "cp"]:
    for o in ("--sse", "--sse-kms-key-id"):
        if o in args:
            opt(o)
    src, dst = args[2:4]
    os.makedirs(os.path.dirname(local(dst)), exist_ok=True)
    shutil.copyfile(src, local(dst))
else:
    sys.exit(f"aws stub: unsupported: aws {' '.join(sys.argv[1:])}")
"""


class Smoke:
    def __init__(self, args, docs):
        self.args = args
        self.work = args.workdir
        self.prefix = args.prefix
        self.processes = []
        self.databases = set()
        self.generated = {}
        self.r = Rendering(docs, self.test_value)
        self.namespace = args.prefix.replace("_", "-")

    # Test values of the ExternalSecret-backed keys, by Secrets Manager key (emporium/<env>/<key>).
    def test_value(self, remote_key):
        key = remote_key.rsplit("/", 1)[-1]
        if key in self.generated:
            return self.generated[key]
        m = re.fullmatch(r"([a-z]+)-database-url", key)
        if m:
            db = f"{self.prefix}_{m.group(1)}"
            self.databases.add(db)
            value = f"{PG}/{db}"
        else:
            value = {
                "redis-url": "redis://127.0.0.1:6379",
                "amqp-url": "amqp://guest:guest@127.0.0.1:5672/%2f",
                "smtp-url": f"smtp://127.0.0.1:{self.args.smtp_port}",
                "service-secret": secrets.token_hex(32),
                "web-session-key": secrets.token_hex(64),
                "payments-webhook-secret": secrets.token_hex(32),
                "metrics-token": secrets.token_hex(32),
            }.get(key)
            if value is None:
                fail(f"no test value for Secrets Manager key {remote_key!r} (add it to smoke.py's test_value)")
        self.generated[key] = value
        return value

    def plan(self):
        """Every Deployment: its command, environment (hosts and ports mapped), probes."""
        self.plans = {}
        local = {d["metadata"]["name"]: free_port() for d in self.r.deployments}
        listen = {}
        for d in self.r.deployments:
            name = d["metadata"]["name"]
            c = container(d)
            env = self.r.resolve_env(f"Deployment {name}", c)
            port = listen_port(f"Deployment {name}", c, env)
            if port not in [p["containerPort"] for p in c.get("ports", [])]:
                fail(f"Deployment {name}: listens on {port} but its container declares ports "
                     f"{[p['containerPort'] for p in c.get('ports', [])]}")
            listen[name] = port
        # Service name -> (service port -> local port of the Deployment behind it)
        routes = {}
        for s in self.r.services:
            sname = s["metadata"]["name"]
            behind = [d for d in self.r.deployments
                      if labels_match(s["spec"].get("selector", {}), d["spec"]["template"]["metadata"]["labels"])]
            if len(behind) != 1:
                continue  # not an Emporium process (none in prod)
            d = behind[0]
            dname = d["metadata"]["name"]
            routes[sname] = {}
            for p in s["spec"]["ports"]:
                target = container_port(f"Service {sname} (targetPort)", container(d), p.get("targetPort", p["port"]))
                if target != listen[dname]:
                    fail(f"Service {sname}: targetPort {p.get('targetPort')} is container port {target}, "
                         f"but Deployment {dname} listens on {listen[dname]}")
                routes[sname][p["port"]] = local[dname]
        for d in self.r.deployments:
            name = d["metadata"]["name"]
            c = container(d)
            env = self.r.resolve_env(f"Deployment {name}", c)
            env = {k: self.map_hosts(f"Deployment {name}: {k}", v, routes) for k, v in env.items()}
            env["EMPORIUM_LISTEN"] = f"127.0.0.1:{local[name]}"
            argv = self.argv(f"Deployment {name}", c)
            if "--listen" in argv:
                argv[argv.index("--listen") + 1] = env["EMPORIUM_LISTEN"]
            probes = {}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                p = c.get(kind)
                if not p:
                    fail(f"Deployment {name}: no {kind}")
                if "httpGet" not in p:
                    fail(f"Deployment {name}: {kind} is not an httpGet probe")
                port = container_port(f"Deployment {name} {kind}", c, p["httpGet"]["port"])
                if port != listen[name]:
                    fail(f"Deployment {name}: {kind} probes port {port}, the process listens on {listen[name]}")
                probes[kind] = p["httpGet"]["path"]
            grace = d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            self.plans[name] = dict(argv=argv, env=self.process_env(env), port=local[name], probes=probes,
                                    grace=grace)
        self.routes = routes
        # Every process with a database has its migration Job: a context started on an empty
        # database answers ready and then fails every request that touches a table.
        migrated = {tuple(self.argv(f"Job {j['metadata']['name']}", container(j))[1:]) for j in self.r.jobs}
        for name, p in self.plans.items():
            args = p["argv"][1:]
            if "DATABASE_URL" in p["env"] and args[:2] == ["serve", "--service"]:
                if ("migrate", "--service", args[2]) not in migrated:
                    fail(f"Deployment {name} runs `serve --service {args[2]}` on a database, but no Job runs "
                         f"`migrate --service {args[2]}`")

    def map_hosts(self, what, value, routes):
        def repl(m):
            scheme, host, port = m.group(1), m.group(2), m.group(3)
            parts = host.split(".")
            svc = parts[0]
            rest = ".".join(parts[1:])
            in_cluster = rest == "" or (self.r.namespace and re.fullmatch(
                re.escape(self.r.namespace) + r"(\.svc(\.cluster\.local)?)?", rest))
            if svc not in routes or not in_cluster:
                # A bare name or <name>.<namespace>.svc can only be a Service of the cluster.
                if (rest == "" and host != "localhost") or rest.endswith("svc") or rest.endswith("svc.cluster.local"):
                    fail(f"{what} names host {host}, which is no Service of this rendering")
                return m.group(0)
            if port is None:
                fail(f"{what}: {m.group(0)} gives no port (Service {svc} listens on {sorted(routes[svc])})")
            if int(port) not in routes[svc]:
                fail(f"{what} points to {host}:{port}, but Service {svc} has port(s) {sorted(routes[svc])}")
            return f"{scheme}://127.0.0.1:{routes[svc][int(port)]}"
        return re.sub(r"\b([a-z][a-z0-9+.-]*)://(?:[^@/\s]*@)?([a-z0-9][a-z0-9.-]*)(?::(\d+))?", repl, value)

    def argv(self, what, c):
        cmd = list(c.get("command") or [])
        if not cmd:
            fail(f"{what}: no command (the image has no shell and no default worth relying on)")
        if cmd[0] == IMAGE_BINARY:
            cmd[0] = self.args.bin
        else:
            fail(f"{what}: runs {cmd[0]}, not the image's {IMAGE_BINARY}")
        return cmd + list(c.get("args") or [])

    def process_env(self, env):
        env = dict(env)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        env["EMPORIUM_NAMESPACE"] = self.namespace
        env["EMPORIUM_QUEUE_EXPIRY_SECS"] = "600"
        # Should this script be killed outright, the kernel stops its processes too.
        env["EMPORIUM_EXIT_WITH_PARENT"] = str(os.getpid())
        return env

    def create_databases(self):
        for db in sorted(self.databases):
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{PG}/postgres", "-c", f'CREATE DATABASE "{db}"'],
                           check=True, stdout=subprocess.DEVNULL)

    def drop_databases(self):
        for db in sorted(self.databases):
            subprocess.run(["psql", "-q", f"{PG}/postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run_jobs(self):
        for job in self.r.jobs:
            name = job["metadata"]["name"]
            c = container(job)
            env = self.r.resolve_env(f"Job {name}", c)
            env = {k: self.map_hosts(f"Job {name}: {k}", v, self.routes) for k, v in env.items()}
            argv = self.argv(f"Job {name}", c)
            deadline = job["spec"].get("activeDeadlineSeconds", 600)
            started = time.monotonic()
            out = subprocess.run(argv, env=self.process_env(env), stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, timeout=min(deadline, 120))
            if out.returncode != 0:
                fail(f"Job {name} ({' '.join(argv[1:])}) exited with {out.returncode}:\n{out.stderr[-2000:]}")
            log(f"Job {name}: {' '.join(argv[1:])} OK ({time.monotonic() - started:.1f} s)")

    def run_cronjobs(self):
        """Each CronJob's Job template once, as its pod would run it (module docstring)."""
        for cj in self.r.cronjobs:
            self.run_cronjob(cj)

    def check_cronjobs(self):
        """Before anything starts: every CronJob container's environment resolves (a ConfigMap or
        key it names is missing: fail now, not after the walkthrough)."""
        for cj in self.r.cronjobs:
            spec = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                c = dict(c, env=[e for e in c.get("env", []) if "fieldRef" not in (e.get("valueFrom") or {})])
                self.r.resolve_env(f"CronJob {cj['metadata']['name']} container {c['name']}", c)

    def run_cronjob(self, cj):
        name = cj["metadata"]["name"]
        what = f"CronJob {name}"
        job = cj["spec"]["jobTemplate"]
        pod = job["spec"]["template"]
        spec = pod["spec"]
        job_name = f"{name}-{int(time.time() // 60)}"  # what the CronJob controller names a run
        labels = {**(pod.get("metadata", {}).get("labels") or {}),
                  "batch.kubernetes.io/job-name": job_name, "job-name": job_name}
        root = os.path.join(self.work, f"cronjob-{name}")
        buckets = os.path.join(root, "s3")
        os.makedirs(buckets)
        # Volumes as directories.
        volumes = {}
        for v in spec.get("volumes", []):
            vdir = os.path.join(root, "volumes", v["name"])
            os.makedirs(vdir)
            if "emptyDir" in v:
                pass
            elif "configMap" in v:
                ref = v["configMap"]
                data = self.r.configmaps.get(ref["name"])
                if data is None:
                    fail(f"{what}: volume {v['name']} names ConfigMap {ref['name']}, which the rendering does not have")
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                for it in items:
                    if it["key"] not in data:
                        fail(f"{what}: volume {v['name']} wants key {it['key']} of ConfigMap {ref['name']}, which has no such key")
                    path = os.path.join(vdir, it["path"])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(data[it["key"]])
                    os.chmod(path, it.get("mode", ref.get("defaultMode", 0o644)))
            else:
                fail(f"{what}: volume {v['name']} is {sorted(set(v) - {'name'})}, which the smoke test cannot stand in for")
            volumes[v["name"]] = vdir
        # `aws` stand-in: IAM tokens, and S3 as a directory per bucket.
        stub_dir = os.path.join(root, "bin")
        os.makedirs(stub_dir)
        stub = os.path.join(stub_dir, "aws")
        with open(stub, "w", encoding="utf-8") as f:
            f.write(AWS_STUB.replace("@PYTHON@", sys.executable).replace("@BUCKETS@", buckets))
        os.chmod(stub, 0o755)

        def prepare(c, kind):
            cwhat = f"{what} {kind} {c['name']}"
            mounts = {}
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    fail(f"{cwhat}: mounts volume {m['name']}, which the pod does not have")
                if m.get("subPath"):
                    fail(f"{cwhat}: subPath mounts are not supported by the smoke test")
                mounts[m["mountPath"].rstrip("/")] = volumes[m["name"]]
            pattern = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
                                 + r")(?=/|$|[\s\"':;])") if mounts else None

            def local(value):
                return pattern.sub(lambda m: mounts[m.group(1)], value) if pattern else value
            c = dict(c)
            env_list = []
            for e in c.get("env", []):
                fr = (e.get("valueFrom") or {}).get("fieldRef")
                if fr:
                    m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", fr["fieldPath"])
                    if m:
                        e = {"name": e["name"], "value": labels.get(m.group(1), "")}
                    elif fr["fieldPath"] == "metadata.namespace":
                        e = {"name": e["name"], "value": self.namespace}
                    else:
                        fail(f"{cwhat}: {e['name']} uses fieldRef {fr['fieldPath']}, which the smoke test cannot stand in for")
                env_list.append(e)
            c["env"] = env_list
            env = self.r.resolve_env(cwhat, c)
            env = {k: local(v) for k, v in env.items()}
            # What the cluster provides and this machine stands in for (module docstring).
            if "PGHOST" in env:
                env.update(PGHOST="127.0.0.1", PGPORT="5432", PGUSER="postgres")
            if "DATABASE_PREFIX" in env:
                env["DATABASE_PREFIX"] = f"{self.prefix}_"
            env["PATH"] = stub_dir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
            argv = [local(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
            if not argv:
                fail(f"{cwhat}: no command (the smoke test does not guess an image's entrypoint)")
            return cwhat, argv, env, local

        deadline = job["spec"].get("activeDeadlineSeconds", 600)
        started = time.monotonic()
        sidecars = []
        try:
            for c in spec.get("initContainers", []):
                cwhat, argv, env, local = prepare(c, "init container")
                if c.get("restartPolicy") == "Always":
                    log_path = os.path.join(root, f"{c['name']}.log")
                    with open(log_path, "w") as logf:
                        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                                start_new_session=True)
                    sidecars.append((cwhat, proc, log_path))
                    probe = c.get("startupProbe")
                    if probe:
                        if "exec" not in probe:
                            fail(f"{cwhat}: only exec startup probes are supported by the smoke test")
                        pargv = [local(a) for a in probe["exec"]["command"]]
                        for _ in range(probe.get("failureThreshold", 3) * 2):
                            if proc.poll() is not None:
                                fail(f"{cwhat} exited with {proc.returncode} before its startupProbe passed:\n"
                                     + open(log_path).read()[-2000:])
                            if subprocess.run(pargv, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL).returncode == 0:
                                break
                            time.sleep(probe.get("periodSeconds", 10) / 2)
                        else:
                            fail(f"{cwhat}: startupProbe {' '.join(probe['exec']['command'])} never passed:\n"
                                 + open(log_path).read()[-2000:])
                    continue
                self.run_to_completion(cwhat, argv, env, deadline - (time.monotonic() - started))
            for c in spec["containers"]:
                cwhat, argv, env, _ = prepare(c, "container")
                self.run_to_completion(cwhat, argv, env, deadline - (time.monotonic() - started))
            for cwhat, proc, log_path in sidecars:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(spec.get("terminationGracePeriodSeconds", 30))
                except subprocess.TimeoutExpired:
                    fail(f"{cwhat} did not stop within the grace period of SIGTERM")
                if code != 0:
                    fail(f"{cwhat} exited with {code} on SIGTERM:\n" + open(log_path).read()[-2000:])
        finally:
            # The sidecar's own children too (its sleep): the pod's end takes them all.
            for _, proc, _ in sidecars:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        # The run's result, where the manifests say it goes.
        manifests = glob.glob(os.path.join(buckets, "*", "**", job_name, "MANIFEST"), recursive=True)
        if len(manifests) != 1:
            fail(f"{what}: expected one complete backup {job_name} in the stand-in S3, found {manifests}")
        with open(manifests[0]) as f:
            rows = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
        dumps = sorted(os.listdir(os.path.dirname(manifests[0])))
        want = sorted(db[len(self.prefix) + 1:] for db in self.databases)
        if sorted(r[0] for r in rows) != want or dumps != sorted(["MANIFEST", *(c + ".dump" for c in want)]):
            fail(f"{what}: the backup holds {dumps}, its MANIFEST lists {[r[0] for r in rows]}: want {want}")
        url = "s3://" + os.path.relpath(os.path.dirname(manifests[0]), buckets)
        log(f"{what}: one run of its Job template OK ({time.monotonic() - started:.1f} s): {url} "
            f"({', '.join(r[0] for r in rows)}; {sum(int(r[2]) for r in rows)} bytes)")

    def run_to_completion(self, what, argv, env, timeout):
        out = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=max(1, min(timeout, 300)))
        if out.returncode != 0:
            fail(f"{what} ({' '.join(argv)}) exited with {out.returncode}:\n{out.stderr[-2000:]}")

    def start(self):
        for name, p in self.plans.items():
            self.processes.append(Process(name, p["argv"], p["env"], os.path.join(self.work, f"{name}.log")))

    def wait_ready(self, timeout=120):
        pending = {p.name: p for p in self.processes}
        deadline = time.monotonic() + timeout
        while pending:
            for name, proc in list(pending.items()):
                if proc.proc.poll() is not None:
                    fail(f"Deployment {name} exited with {proc.proc.returncode} while starting:\n{proc.tail()}")
                plan = self.plans[name]
                try:
                    status, body = call("GET", plan["port"], plan["probes"]["readinessProbe"], timeout=3)
                except OSError:
                    continue
                if status == 404:
                    fail(f"Deployment {name}: readinessProbe path {plan['probes']['readinessProbe']} answers 404")
                if status == 200:
                    for kind in ("startupProbe", "livenessProbe"):
                        path = plan["probes"][kind]
                        s, _ = call("GET", plan["port"], path, timeout=3)
                        if s != 200:
                            fail(f"Deployment {name}: {kind} path {path} answers {s}")
                    del pending[name]
            if time.monotonic() > deadline:
                fail("not ready after %d s: %s" % (timeout, ", ".join(
                    f"{n} ({self.plans[n]['probes']['readinessProbe']})\n{p.tail(8)}" for n, p in pending.items())))
            time.sleep(0.2)

    def gateway_port(self):
        ingresses = [d for d in self.r.docs if d["kind"] == "Ingress"]
        if len(ingresses) != 1:
            fail(f"expected one Ingress, found {len(ingresses)}")
        backend = ingresses[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        svc = backend["name"]
        if svc not in self.routes:
            fail(f"the Ingress sends traffic to Service {svc}, which selects no Deployment")
        ports = self.routes[svc]
        if "number" in backend["port"]:
            port = backend["port"]["number"]
        else:
            named = [p["port"] for s in self.r.services if s["metadata"]["name"] == svc
                     for p in s["spec"]["ports"] if p.get("name") == backend["port"]["name"]]
            if not named:
                fail(f"the Ingress names port {backend['port']['name']} of Service {svc}, which has no such port")
            port = named[0]
        if port not in ports:
            fail(f"the Ingress sends traffic to port {port} of Service {svc}, which has {sorted(ports)}")
        return ports[port]

    def seed_catalog(self, gw):
        """An operator's first steps on an empty production catalog: an administrator, a product, stock."""
        identity = next((n for n, p in self.plans.items() if p["argv"][1:4] == ["serve", "--service", "identity"]), None)
        if identity is None:
            fail("no Deployment runs `serve --service identity`")
        env = dict(self.plans[identity]["env"])
        password = secrets.token_hex(12)
        out = subprocess.run([self.args.bin, "admin", "create", "--email", "smoke-admin@example.com", "--name", "Smoke"],
                             env=env, input=password + "\n", capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            fail(f"emporium admin create failed: {out.stderr[-1500:]}")
        status, body = call("POST", gw, "/api/v1/auth/login",
                            {"email": "smoke-admin@example.com", "password": password})
        if status != 200:
            fail(f"admin login through the gateway: {status} {body[:300]!r}")
        auth = {"authorization": "Bearer " + json.loads(body)["access_token"]}
        sku = "SMOKE-KETTLE-1"
        status, body = call("POST", gw, "/api/v1/catalog/products", {
            "sku": sku, "name": "Smoke test kettle", "status": "active", "brand": "Kilnworks",
            "description": "Boils water for the deploy smoke test.", "price": {"amount": 1299, "currency": "EUR"},
        }, auth)
        if status != 201:
            fail(f"creating a product through the gateway: {status} {body[:300]!r}")
        # Inventory learns of the product from catalog's event, over RabbitMQ.
        deadline = time.monotonic() + 30
        while True:
            status, body = call("GET", gw, f"/api/v1/inventory/{sku}")
            if status == 200:
                break
            if time.monotonic() > deadline:
                fail(f"inventory never heard of {sku} (catalog -> RabbitMQ -> inventory): {status} {body[:200]!r}")
            time.sleep(0.3)
        status, body = call("POST", gw, f"/api/v1/inventory/{sku}/adjustments",
                            {"kind": "restock", "quantity": 25, "reason": "deploy smoke test"}, auth)
        if status != 201:
            fail(f"restocking {sku}: {status} {body[:300]!r}")
        log(f"catalog seeded through the gateway: {sku} with 25 in stock (RabbitMQ carried the product to inventory)")

    def walkthrough(self, shim_port):
        with open(self.args.readme, encoding="utf-8") as f:
            text = f.read()
        m = re.search(r"<!-- walkthrough:start -->\n(.*?)<!-- walkthrough:end -->", text, re.S)
        if not m:
            fail("no walkthrough block in README.md")
        lines = [ln for ln in m.group(1).splitlines() if not ln.startswith("```")]
        api = [i for i, ln in enumerate(lines) if re.match(r"API=", ln)]
        if not api:
            fail("the walkthrough sets no API= base URL")
        lines[api[0]] = f"API=http://127.0.0.1:{shim_port}"
        script = os.path.join(self.work, "walkthrough.sh")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        trace = os.path.join(self.work, "walkthrough.trace")
        # The trace (bash -x) and any error go to a file: a failing step shows its last commands.
        with open(trace, "w") as t:
            out = subprocess.run(["bash", "-x", "-euo", "pipefail", script], stdout=subprocess.PIPE, stderr=t,
                                 text=True, timeout=120, env={"PATH": os.environ.get("PATH", ""), "HOME": self.work})
        print(out.stdout, end="")
        if out.returncode != 0:
            with open(trace) as t:
                err = t.read()[-2000:]
            warnings = []
            for p in self.processes:
                with open(p.logfile, errors="replace") as f:
                    warnings += [f"{p.name}: {ln.strip()[:400]}" for ln in f
                                 if '"level":"WARN"' in ln or '"level":"ERROR"' in ln]
            fail("the README walkthrough failed through the gateway:\n" + err + "\n" + "\n".join(warnings[-20:]))
        if '"email":"ada@example.com"' not in out.stdout:
            fail("walkthrough: /me did not answer")
        if out.stdout.strip().splitlines()[-1] != "401":
            fail("walkthrough: the reused refresh token was not refused")

    def stop_all(self):
        for p in self.processes:
            if p.proc.poll() is not None:
                fail(f"Deployment {p.name} exited with {p.proc.returncode} before the end:\n{p.tail()}")
        for p in self.processes:
            p.proc.send_signal(signal.SIGTERM)
        for p in self.processes:
            grace = self.plans[p.name]["grace"]
            code = p.stop(grace)
            if code is None:
                fail(f"Deployment {p.name} did not stop within terminationGracePeriodSeconds ({grace} s) of SIGTERM")
            if code != 0:
                fail(f"Deployment {p.name} exited with {code} on SIGTERM:\n{p.tail()}")
        log(f"all {len(self.processes)} processes stopped cleanly on SIGTERM")

    def cleanup(self):
        for p in self.processes:
            p.kill()
        self.drop_databases()
        subprocess.run(["sh", "-c", f"redis-cli --scan --pattern '{self.namespace}:*' | xargs -r redis-cli del"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Shim(http.server.ThreadingHTTPServer):
    daemon_threads = True


def shim_handler(gateway_port, maildir):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _mailbox(self):
            to = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("to", [None])[0]
            messages = []
            for name in sorted(os.listdir(maildir)):
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                with open(os.path.join(maildir, name)) as f:
                    m = json.load(f)
                rcpt = m.get("envelope_to") or m.get("to") or []
                if to is None or any(r.lower() == to.strip().lower() for r in rcpt):
                    messages.append({"to": rcpt[0] if rcpt else "", "subject": m.get("subject") or "",
                                     "body": (m.get("text") or "").rstrip("\n")})
            body = json.dumps(list(reversed(messages))).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self):
            if self.command == "GET" and urllib.parse.urlsplit(self.path).path == "/api/v1/dev/mailbox":
                return self._mailbox()
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--mutation", choices=sorted(MUTATIONS))
    args = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9_]+", args.prefix):
        sys.exit("--prefix must be lower-case letters, digits and _ (it names databases)")
    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if args.mutation:
        MUTATIONS[args.mutation][0](docs)
    # SIGTERM from the wrapper's trap: unwind through `finally` (processes, databases).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    smoke = None
    started = time.monotonic()
    try:
        smoke = Smoke(args, docs)
        smoke.plan()
        smoke.check_cronjobs()
        smoke.create_databases()
        log(f"{len(smoke.r.jobs)} Jobs, {len(smoke.plans)} Deployments, {len(smoke.r.cronjobs)} CronJobs; "
            f"databases {args.prefix}_*")
        smoke.run_jobs()
        smoke.start()
        smoke.wait_ready()
        log(f"every Deployment ready on its readinessProbe ({time.monotonic() - started:.1f} s): "
            + ", ".join(f"{n} 127.0.0.1:{p['port']}" for n, p in smoke.plans.items()))
        gw = smoke.gateway_port()
        # The gateway's own view: every upstream (EMPORIUM_UPSTREAM_*) answers its readiness check.
        status, body = call("GET", gw, "/health/ready")
        if status != 200:
            fail(f"the gateway's /health/ready answers {status}: {body[:600]!r}")
        smoke.seed_catalog(gw)
        shim = Shim(("127.0.0.1", 0), shim_handler(gw, args.maildir))
        threading.Thread(target=shim.serve_forever, daemon=True).start()
        try:
            smoke.walkthrough(shim.server_address[1])
        finally:
            shim.shutdown()
        log("README walkthrough through the gateway: OK")
        smoke.run_cronjobs()
        smoke.stop_all()
    except SmokeFailure as e:
        if args.mutation:
            phrase = MUTATIONS[args.mutation][1]
            if phrase in str(e):
                line = next(ln for ln in str(e).splitlines() if phrase in ln)
                print(f"deploy smoke: failed as it must: {line.strip()[:240]}")
                return 0
            print(f"deploy smoke: with mutation {args.mutation} the run failed, but not for the reason expected "
                  f"({phrase!r}): {e}", file=sys.stderr)
            return 1
        print(f"deploy smoke: {e}", file=sys.stderr)
        return 1
    finally:
        if smoke:
            smoke.cleanup()
    if args.mutation:
        print(f"deploy smoke: with mutation {args.mutation} the run passed; it must fail", file=sys.stderr)
        return 1
    log(f"deploy smoke: OK ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
