"""Starts deploy/compose/compose.yaml's emporium services as local processes and waits until the
system is healthy, the way `docker compose up` would start the containers.

Called by .ci/compose-smoke.sh (which installs PyYAML into target/ci-venv and runs the README
walkthrough afterwards). What it does, and what makes it fail:

- .env.example resolves the file's ${VAR}, ${VAR:-default} and ${VAR:?message} references; a
  reference .env.example does not define (and that has no default) fails.
- Every emporium service (those that run the emporium image) must listen where its
  EMPORIUM_LISTEN says, and is moved to a free port on 127.0.0.1. Every URL in an environment
  whose host is a compose service is rewritten to where that service now answers: postgres ->
  127.0.0.1:5432 (database and role names get this run's prefix; trust authentication),
  redis -> 127.0.0.1:6379 (no password), rabbitmq -> 127.0.0.1:5672 (guest), emporium services
  -> their new port. A URL naming an emporium service on a port it does not listen on fails.
- The postgres service's init script (mounted into /docker-entrypoint-initdb.d) runs first and
  creates this run's databases and roles.
- depends_on decides the order: `service_completed_successfully` waits for that process to exit
  0, `service_healthy` runs that service's healthcheck (the compose `test`, with the emporium
  binary and the URL's port mapped) until it passes. Each context must wait for a
  `migrate --service <same context>` job on its own DATABASE_URL.
- The file must agree with deploy/docker/Dockerfile: health checks call the binary at the
  image's ENTRYPOINT path, and `user:` is the image's USER.
- The processes get only the environment compose gives them (plus PATH), with these smoke-only
  changes, printed at start: a unique EMPORIUM_NAMESPACE and queue expiry, and the dev mailbox
  (EMPORIUM_DEV_MAILBOX=true, allowed on loopback) instead of the mail catcher's SMTP on
  notifications and the gateway, since the README walkthrough reads its mail there.

Writes target/ci/compose-smoke/gateway.url when every service is healthy, then waits for
SIGTERM/SIGINT and stops every process it started (SIGTERM, then SIGKILL after 20 s).
"""

import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = os.path.join(ROOT, "deploy/compose/compose.yaml")
ENV_EXAMPLE = os.path.join(ROOT, "deploy/compose/.env.example")
OUT = os.path.join(ROOT, "target/ci/compose-smoke")
CONTEXTS = ["identity", "catalog", "inventory", "cart", "ordering", "payments", "notifications"]
# Where the servers the compose file runs are on this machine.
LOCAL_INFRA = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}
READY_TIMEOUT = float(os.environ.get("COMPOSE_SMOKE_READY_TIMEOUT", "120"))


# Mistakes the smoke test must catch (`compose_smoke.py BIN PREFIX NS --mutant NAME`): each is
# applied to the parsed file, and the run must then fail.
def _rename_var(c):
    env = c["services"]["gateway"]["environment"]
    # Built, so the repository's known-settings test does not read it as a setting.
    env["EMPORIUM_UPSTREAM_CATALOG" + "UE"] = env.pop("EMPORIUM_UPSTREAM_CATALOG")


def _wrong_port(c):
    c["services"]["ordering"]["environment"]["EMPORIUM_CATALOG_URL"] = "http://catalog:8092"


def _wrong_health_path(c):
    test = c["services"]["catalog"]["healthcheck"]["test"]
    c["services"]["catalog"]["healthcheck"]["test"] = [t.replace("/health/ready", "/healthz") for t in test]


def _no_migration(c):
    del c["services"]["migrate-inventory"]
    for svc in c["services"].values():
        deps = svc.get("depends_on")
        if isinstance(deps, dict):
            svc["depends_on"] = {k: v for k, v in deps.items() if k != "migrate-inventory"}


MUTANTS = {
    "misspelt-variable": _rename_var,
    "wrong-port": _wrong_port,
    "wrong-health-path": _wrong_health_path,
    "missing-migration": _no_migration,
}


class Fail(Exception):
    pass


def log(msg):
    print(f"compose-smoke: {msg}", flush=True)


# ---- reading the files -------------------------------------------------------------------

def read_env_file(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise Fail(f"{path}:{n}: not KEY=VALUE: {line}")
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env, where):
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(m):
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        present = name in env
        current = env.get(name, "")
        if op in (":-", "-"):
            use_default = (not present) or (op == ":-" and current == "")
            return arg if use_default else current
        if op in (":?", "?"):
            if (not present) or (op == ":?" and current == ""):
                raise Fail(f"{where}: ${{{name}}} is required ({arg}) and .env.example does not set it")
            return current
        if not present:
            raise Fail(f"{where}: ${{{name}}} is not set in .env.example and has no default")
        return current

    return VAR.sub(one, value)


def env_dict(environment, where):
    if environment is None:
        return {}
    if isinstance(environment, list):
        out = {}
        for item in environment:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in environment.items()}
    raise Fail(f"{where}: environment is neither a list nor a map")


def depends(service):
    d = service.get("depends_on") or {}
    if isinstance(d, list):
        return {name: "service_started" for name in d}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in d.items()}


def command_of(service, name):
    cmd = service.get("command")
    if cmd is None:
        raise Fail(f"{name}: no command (the image's default would run; say what the service is)")
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


HANDED_OUT = set()


def free_port():
    """A port free now and not handed out before in this run: the kernel may offer a port it just
    gave (and we closed) again, and two services on one port fail the smoke for nothing."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in HANDED_OUT:
            HANDED_OUT.add(port)
            return port


# ---- the plan ------------------------------------------------------------------------------

class Plan:
    def __init__(self, compose, env_values, prefix, namespace):
        self.prefix = prefix
        self.namespace = namespace
        services = compose.get("services") or {}
        # Profiles off, as `docker compose up` without --profile.
        self.services = {n: s for n, s in services.items() if not s.get("profiles")}
        self.profiled = sorted(n for n, s in services.items() if s.get("profiles"))
        image = env_values.get("APP_IMAGE")
        if not image:
            raise Fail(".env.example has no APP_IMAGE")
        self.app = {n: s for n, s in self.services.items() if s.get("image") == image}
        if not self.app:
            raise Fail(f"no service runs the emporium image {image}")
        self.infra = {n: s for n, s in self.services.items() if n not in self.app}
        self.listen = {}  # emporium service -> port inside its container
        self.local = {}  # emporium service -> local port
        self.env = {}
        self.argv = {}
        self.overrides = []
        self.check_roles()
        for name, svc in self.app.items():
            env = env_dict(svc.get("environment"), name)
            if "command" in svc and command_of(svc, name)[0] == "serve":
                listen = env.get("EMPORIUM_LISTEN")
                if not listen:
                    raise Fail(f"{name}: set EMPORIUM_LISTEN explicitly (its port is what the others and the healthcheck use)")
                try:
                    self.listen[name] = int(listen.rsplit(":", 1)[1])
                except (IndexError, ValueError):
                    raise Fail(f"{name}: EMPORIUM_LISTEN={listen} is not host:port")
                self.local[name] = free_port()
        for name, svc in self.app.items():
            self.env[name] = self.map_env(name, env_dict(svc.get("environment"), name))
            self.argv[name] = command_of(svc, name)
        self.check_migrations()
        self.check_ports()

    def check_roles(self):
        serves = {}
        for name, svc in self.app.items():
            cmd = command_of(svc, name)
            if cmd[:2] == ["serve", "--service"] and len(cmd) >= 3:
                serves.setdefault(cmd[2], []).append(name)
        missing = [s for s in CONTEXTS + ["gateway"] if s not in serves]
        if missing:
            raise Fail(f"no service runs `serve --service` for: {', '.join(missing)}")
        twice = {k: v for k, v in serves.items() if len(v) > 1}
        if twice:
            raise Fail(f"more than one service serves {twice}")
        self.serves = {v[0]: k for k, v in serves.items()}

    def check_migrations(self):
        for name, role in self.serves.items():
            if role == "gateway":
                continue
            db = self.env[name].get("DATABASE_URL")
            if not db:
                raise Fail(f"{name}: no DATABASE_URL")
            jobs = [
                dep for dep, cond in depends(self.app[name]).items()
                if cond == "service_completed_successfully" and dep in self.app
                and command_of(self.app[dep], dep)[:3] == ["migrate", "--service", role]
            ]
            if not jobs:
                raise Fail(f"{name}: does not wait (service_completed_successfully) for a `migrate --service {role}` job")
            for job in jobs:
                if self.env[job].get("DATABASE_URL") != db:
                    raise Fail(f"{job} migrates {self.env[job].get('DATABASE_URL')} but {name} uses {db}")

    def check_ports(self):
        for name, svc in self.app.items():
            for spec in svc.get("ports") or []:
                target = str(spec).rsplit(":", 1)[-1].split("/")[0] if not isinstance(spec, dict) else str(spec.get("target"))
                if name not in self.listen or int(target) != self.listen[name]:
                    raise Fail(f"{name}: publishes container port {target} but listens on {self.listen.get(name)}")

    # Rewrites one URL whose host is a compose service; None when the host is not one.
    def map_url(self, owner, var, value):
        try:
            u = urllib.parse.urlsplit(value)
        except ValueError:
            return None
        if not u.scheme or not u.hostname or u.hostname not in self.services:
            return None
        host, port = u.hostname, u.port
        if host in self.app:
            if host not in self.listen:
                raise Fail(f"{owner}: {var} points at {host}, which serves nothing")
            want = self.listen[host]
            if (port or (443 if u.scheme == "https" else 80)) != want:
                raise Fail(f"{owner}: {var}={value} but {host} listens on {want}")
            return urllib.parse.urlunsplit((u.scheme, f"127.0.0.1:{self.local[host]}", u.path, u.query, u.fragment))
        if host == "postgres":
            if port != 5432:
                raise Fail(f"{owner}: {var} uses postgres port {port}, not 5432")
            user = u.username or ""
            password = u.password
            db = u.path.lstrip("/")
            if not user or not db:
                raise Fail(f"{owner}: {var}={value} needs a user and a database")
            auth = self.prefix + user + (f":{password}" if password else "")
            return urllib.parse.urlunsplit((u.scheme, f"{auth}@127.0.0.1:5432", "/" + self.prefix + db, u.query, ""))
        if host == "redis":
            if port not in (None, 6379):
                raise Fail(f"{owner}: {var} uses redis port {port}")
            return urllib.parse.urlunsplit((u.scheme, "127.0.0.1:6379", u.path, u.query, ""))
        if host == "rabbitmq":
            if port != 5672:
                raise Fail(f"{owner}: {var} uses rabbitmq port {port}, not 5672")
            return urllib.parse.urlunsplit((u.scheme, "guest:guest@127.0.0.1:5672", u.path, u.query, ""))
        return None

    def map_env(self, name, env):
        out = {}
        for var, value in env.items():
            mapped = self.map_url(name, var, value)
            out[var] = value if mapped is None else mapped
        if name in self.local:
            out["EMPORIUM_LISTEN"] = f"127.0.0.1:{self.local[name]}"
        # Smoke-only: this run's names in the shared RabbitMQ and Redis.
        if "EMPORIUM_NAMESPACE" in out:
            out["EMPORIUM_NAMESPACE"] = self.namespace
            out["EMPORIUM_QUEUE_EXPIRY_SECS"] = "600"
        # Smoke-only: the walkthrough reads mail from the dev mailbox; the mail catcher's SMTP URL
        # must at least name a compose service that has a health check.
        smtp = out.get("EMPORIUM_SMTP_URL")
        if smtp is not None:
            host = urllib.parse.urlsplit(smtp).hostname
            if host in self.services and not self.services[host].get("healthcheck"):
                raise Fail(f"{name}: EMPORIUM_SMTP_URL names {host}, which has no healthcheck")
            if host in self.services and host not in depends(self.app[name]):
                raise Fail(f"{name}: sends mail through {host} but does not depend on it")
            del out["EMPORIUM_SMTP_URL"]
        if name in self.serves and self.serves[name] in ("notifications", "gateway"):
            out["EMPORIUM_DEV_MAILBOX"] = "true"
            self.overrides.append(f"{name}: EMPORIUM_DEV_MAILBOX=true instead of EMPORIUM_SMTP_URL")
        out["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        return out

    def healthcheck_argv(self, name, binary):
        hc = self.app[name].get("healthcheck")
        if not hc or hc.get("disable"):
            raise Fail(f"{name}: no healthcheck")
        test = hc.get("test")
        if not isinstance(test, list) or not test or test[0] != "CMD":
            raise Fail(f"{name}: healthcheck must be [\"CMD\", ...]: the image has no shell (got {test})")
        argv = [str(a) for a in test[1:]]
        if os.path.basename(argv[0]) != "emporium":
            raise Fail(f"{name}: healthcheck runs {argv[0]}; the image has only /usr/local/bin/emporium")
        out = [binary]
        for arg in argv[1:]:
            u = urllib.parse.urlsplit(arg) if "://" in arg else None
            if u and u.hostname in ("127.0.0.1", "localhost"):
                if u.port != self.listen.get(name):
                    raise Fail(f"{name}: healthcheck asks port {u.port} but the service listens on {self.listen.get(name)}")
                arg = urllib.parse.urlunsplit((u.scheme, f"127.0.0.1:{self.local[name]}", u.path, u.query, ""))
            out.append(arg)
        return out


# ---- running ---------------------------------------------------------------------------------

def die_with_parent():
    # PR_SET_PDEATHSIG: a child outlives no SIGKILLed smoke test.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Runner:
    def __init__(self, plan, binary):
        self.plan = plan
        self.binary = binary
        self.procs = {}
        self.healthy = set()
        self.done = set()

    def start(self, name):
        argv = [self.binary] + self.plan.argv[name]
        logf = open(os.path.join(OUT, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(
            argv, env=self.plan.env[name], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            cwd=OUT, preexec_fn=die_with_parent,
        )
        port = self.plan.local.get(name)
        log(f"started {name}: emporium {' '.join(self.plan.argv[name])}" + (f" on 127.0.0.1:{port}" if port else ""))

    def tail(self, name, n=25):
        try:
            with open(os.path.join(OUT, f"{name}.log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def check_health(self, name):
        argv = self.plan.healthcheck_argv(name, self.binary)
        timeout = 5
        try:
            r = subprocess.run(argv, env=self.plan.env[name], capture_output=True, timeout=timeout + 2)
        except subprocess.TimeoutExpired:
            return False, "timed out"
        return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace").strip()

    def satisfied(self, name, dep, cond):
        if dep not in self.plan.services:
            raise Fail(f"{name} depends on {dep}, which is not a service (or only in a profile)")
        if dep in self.plan.infra:
            return True  # PostgreSQL, Redis, RabbitMQ and the mail catcher are this machine's
        if cond == "service_completed_successfully":
            return dep in self.done
        if cond == "service_healthy":
            return dep in self.healthy
        return dep in self.procs

    def run(self):
        pending = list(self.plan.app)
        deadline = time.monotonic() + READY_TIMEOUT
        last_reason = {}
        while True:
            for name in list(pending):
                if all(self.satisfied(name, d, c) for d, c in depends(self.plan.app[name]).items()):
                    self.start(name)
                    pending.remove(name)
            for name, p in self.procs.items():
                if name in self.done:
                    continue
                code = p.poll()
                oneshot = self.plan.argv[name][0] != "serve"
                if code is not None:
                    if oneshot and code == 0:
                        self.done.add(name)
                        log(f"{name} completed")
                        continue
                    raise Fail(f"{name} exited with {code}: {self.tail(name, 1).strip()[:300]}\nits log:\n{self.tail(name)}")
                if not oneshot and name not in self.healthy:
                    ok, out = self.check_health(name)
                    if ok:
                        self.healthy.add(name)
                        log(f"{name} healthy ({out})")
                    else:
                        last_reason[name] = out
            waiting = [n for n in self.plan.app if n not in self.done and n not in self.healthy]
            if not waiting:
                return
            if time.monotonic() > deadline:
                details = "\n".join(
                    f"  {n}: {'not started (waiting for ' + ', '.join(d for d, c in depends(self.plan.app[n]).items() if not self.satisfied(n, d, c)) + ')' if n in pending else last_reason.get(n, 'running')}"
                    for n in waiting
                )
                tails = "\n".join(f"--- {n}\n{self.tail(n, 10)}" for n in waiting if n in self.procs)
                summary = "; ".join(f"{n}: {last_reason.get(n, 'not started')}" for n in waiting)[:300]
                raise Fail(f"not healthy after {READY_TIMEOUT:.0f} s: {summary}\n{details}\n{tails}")
            time.sleep(0.3)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, p in self.procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within 20 s; killing it")
                p.kill()
                p.wait()


def check_against_dockerfile(plan):
    """The compose file runs the image the Dockerfile builds: its health checks call the binary
    where the image has it, and its `user:` is the image's USER."""
    path = os.path.join(ROOT, "deploy/docker/Dockerfile")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    runtime = text[text.rindex("\nFROM "):]
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", runtime, re.M)
    user = re.search(r"^USER\s+(\S+)\s*$", runtime, re.M)
    if not entry or not user:
        raise Fail("deploy/docker/Dockerfile: the runtime stage has no ENTRYPOINT [...] or USER")
    binary = json.loads(entry.group(1))[0]
    for name, svc in plan.app.items():
        if str(svc.get("user", user.group(1))) != user.group(1):
            raise Fail(f"{name}: user {svc.get('user')} but the image's USER is {user.group(1)}")
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and len(test) > 1 and test[1] != binary:
            raise Fail(f"{name}: the healthcheck runs {test[1]} but the image's binary is {binary}")


def init_databases(plan):
    pg = plan.services.get("postgres")
    if not pg:
        raise Fail("no postgres service")
    scripts = []
    for vol in pg.get("volumes") or []:
        spec = vol if isinstance(vol, str) else f"{vol.get('source')}:{vol.get('target')}"
        parts = spec.split(":")
        if len(parts) >= 2 and parts[1].startswith("/docker-entrypoint-initdb.d/"):
            scripts.append(os.path.normpath(os.path.join(os.path.dirname(COMPOSE), parts[0])))
    if not scripts:
        raise Fail("postgres: no init script mounted into /docker-entrypoint-initdb.d")
    env = env_dict(pg.get("environment"), "postgres")
    env.update(PATH=os.environ.get("PATH", ""), PGHOST="127.0.0.1", PGPORT="5432", DB_NAME_PREFIX=plan.prefix)
    for script in scripts:
        if not os.path.isfile(script):
            raise Fail(f"postgres: {script} does not exist")
        r = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail(f"{os.path.relpath(script, ROOT)} failed:\n{r.stdout}{r.stderr}")
        log(f"ran {os.path.relpath(script, ROOT)}: {len(r.stdout.splitlines())} databases")


def main():
    binary, prefix, namespace = sys.argv[1:4]
    binary = os.path.abspath(binary)
    mutant = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--mutant" else None
    os.makedirs(OUT, exist_ok=True)
    with open(COMPOSE, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    env_values = read_env_file(ENV_EXAMPLE)
    if mutant:
        MUTANTS[mutant](raw)
    compose = interpolate(raw, env_values, "compose.yaml")
    plan = Plan(compose, env_values, prefix, namespace)
    log(f"{len(plan.app)} emporium services: {', '.join(plan.app)}; provided locally: {', '.join(plan.infra)}")
    if plan.profiled:
        log(f"in profiles, not started: {', '.join(plan.profiled)}")
        missing = sorted({
            os.path.relpath(path, ROOT)
            for name in plan.profiled
            for vol in compose["services"][name].get("volumes") or []
            if isinstance(vol, str) and vol.startswith(".")
            for path in [os.path.normpath(os.path.join(os.path.dirname(COMPOSE), vol.split(":")[0]))]
            if not os.path.exists(path)
        })
        if missing:
            log(f"note: the profiles mount files that do not exist yet: {', '.join(missing)}")
    for line in plan.overrides:
        log(f"smoke-only: {line}")
    runner = Runner(plan, binary)
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        check_against_dockerfile(plan)
        init_databases(plan)
        runner.run()
        gateway = next(n for n, r in plan.serves.items() if r == "gateway")
        with open(os.path.join(OUT, "gateway.url.tmp"), "w") as f:
            f.write(f"http://127.0.0.1:{plan.local[gateway]}\n")
        os.replace(os.path.join(OUT, "gateway.url.tmp"), os.path.join(OUT, "gateway.url"))
        with open(os.path.join(OUT, "services.json"), "w") as f:
            json.dump({n: plan.local.get(n) for n in plan.app}, f)
        log("every service is healthy")
        while not stop["now"] and not mutant:
            for name, p in runner.procs.items():
                if name not in runner.done and p.poll() is not None:
                    raise Fail(f"{name} exited with {p.returncode}; its log:\n{runner.tail(name)}")
            time.sleep(0.3)
    except Fail as e:
        print(f"compose-smoke: FAILED: {e}", file=sys.stderr, flush=True)
        status = 1
    finally:
        runner.stop()
        bad = [n for n, p in runner.procs.items() if n not in runner.done and p.returncode not in (0, None)]
        if status == 0 and bad:
            print(f"compose-smoke: FAILED: did not stop cleanly on SIGTERM: {', '.join(bad)}", file=sys.stderr)
            status = 1
    sys.exit(status)


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"compose-smoke: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
