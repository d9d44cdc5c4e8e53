"""Console under load: p50/p95/p99 of search, call detail and dashboard pages with 50
concurrent users against the production server (`callscope serve`, gunicorn), on SQLite and
on PostgreSQL, with one year of synthetic calls (`callscope synth`).

Usage: .venv/bin/python bench/console_load.py [--db sqlite,postgres] [--users 50]
           [--seconds 60] [--think 1.0] [--calls-per-year 5000000]

Each database gets its own data directory under bench/out/ (PostgreSQL: its own database
``callscope_bench_console`` on CALLSCOPE_BENCH_POSTGRES, default postgres@127.0.0.1:5432),
filled once by `callscope synth` and reused by later runs. Every simulated user logs in
with their own account and then, in a loop with ``--think`` seconds between clicks, opens
one of: a search (newest first, or filtered by section, result, number or duration; 30% as
the whole page, 70% as the result table alone, which is what the page's htmx fetches when a
filter changes), the next page of a search (keyset cursor taken from the previous result,
result table only), a call's detail page, or the dashboard. Latency is measured at the
client (loopback, keep-alive), so it includes gunicorn's queueing and the client's own
threads waiting for the CPU: it bounds the server time from above. The server time itself
(request read to response written, per page) comes from the server's access log
(CALLSCOPE_ACCESS_LOG, gunicorn's %(M)s), for the same requests.

Peers measured in the same run: the liveness URL (``/healthz``, the cost of a request that
does nothing) under the same load, and, in the database alone, a keyset page deep in the
result against the same page fetched with OFFSET (what a naive paginator does).
"""

# ruff: noqa: PLC0415  (Django is imported only in the child process that has its settings)
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
CALLSCOPE = REPO / ".venv" / "bin" / "callscope"
PYTHON = REPO / ".venv" / "bin" / "python"
PG_SERVER = os.environ.get("CALLSCOPE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DB = "callscope_bench_console"
#: a smaller data set gets its own directory and database (e.g. for a quick trial run)
SUFFIX = ""
PASSWORD = "bench password for the console"
GOAL_MS = 150.0


# -- preparation (runs inside Django, in a child process with the database's environment) --


def prepare_in_django(users: int) -> dict[str, object]:
    """Create the bench accounts; return call ids, section ids and numbers to request."""
    import django

    django.setup()
    from django.db.models import Max, Min
    from django.utils import timezone

    from callscope.accounts.models import Role, User
    from callscope.ingest.bootstrap import prepare
    from callscope.store.models import Call, OrgUnit

    prepare()
    names = []
    for index in range(users):
        name = f"bench{index:02d}"
        user = User.objects.filter(username=name).first() or User(username=name)
        user.role = Role.MANAGER if index == 0 else Role.OPERATOR
        user.must_change_password = False
        user.password_changed_at = timezone.now()
        user.designated_at = user.designated_at or timezone.now()
        user.trained_on = user.trained_on or timezone.localdate()
        user.can_listen = True
        user.is_active = True
        user.set_password(PASSWORD)
        user.save()
        names.append(name)
    bounds = Call.objects.aggregate(lo=Min("id"), hi=Max("id"))
    rng = random.Random(7)
    ids = [rng.randint(bounds["lo"], bounds["hi"]) for _ in range(400)] if bounds["hi"] else []
    ids = list(Call.objects.filter(id__in=ids).values_list("id", flat=True))
    sections = list(OrgUnit.objects.filter(level="section").values_list("id", flat=True)[:400])
    numbers = list(
        Call.objects.filter(id__in=ids[:100])
        .exclude(caller_number="")
        .values_list("caller_number", flat=True)
    )
    return {
        "users": names,
        "call_ids": ids,
        "sections": sections,
        "numbers": numbers,
        "calls": Call.objects.count(),
        "deep": deep_page_peer(),
    }


def deep_page_peer(page: int = 2000, size: int = 50, repeat: int = 5) -> dict[str, float]:
    """Milliseconds for page ``page`` of the newest-first list: keyset against OFFSET."""
    from callscope.console.search import SORTS, page_of
    from callscope.store.models import Call

    key = SORTS["-started"]
    anchor = key.annotate(Call.objects.all()).order_by(*key.ordering())[
        page * size : page * size + 1
    ]
    rows = list(anchor)
    if not rows:
        return {}
    cursor = key.encode(rows[0])

    def best(run: object) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()  # type: ignore[operator]
            times.append((time.perf_counter() - start) * 1000)
        return min(times)

    def offset() -> None:
        list(Call.objects.order_by("-started_at", "-id")[page * size : page * size + size])

    def keyset() -> None:
        page_of(Call.objects.all(), "-started", after=cursor, size=size)

    return {"page": page, "offset_ms": best(offset), "keyset_ms": best(keyset)}


# -- the load generator ------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    ms: float
    status: int


@dataclass
class User:
    name: str
    host: str
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    conn: http.client.HTTPConnection | None = None
    next_search: str = ""

    def request(
        self, method: str, path: str, body: str = "", *, htmx: bool = False
    ) -> tuple[int, str, float]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Accept-Language": "ja", "Connection": "keep-alive"}  # fmt: skip
        if htmx:  # what the page's htmx sends for filter changes and page links
            headers["HX-Request"] = "true"
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://{self.host}:{self.port}{path}"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            start = time.perf_counter()
            try:
                self.conn.request(method, path, body=body or None, headers=headers)
                response = self.conn.getresponse()
                data = response.read().decode("utf-8", "replace")
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - start) * 1000
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, data, elapsed
        raise RuntimeError("unreachable")

    def log_in(self) -> None:
        status, page, _ms = self.request("GET", "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise RuntimeError(f"login page: {status}")
        form = urlencode({"csrfmiddlewaretoken": token.group(1), "username": self.name,
                          "password": PASSWORD, "next": "/"})  # fmt: skip
        status, _page, _ms = self.request("POST", "/accounts/login/", form)
        if status != 302:
            raise RuntimeError(f"login of {self.name} failed: {status}")


def search_query(rng: random.Random, ctx: dict[str, object]) -> str:
    choice = rng.random()
    params: dict[str, str] = {}  # none: newest first, what the page shows when opened
    if choice < 0.3:
        return "/calls/?"
    if choice < 0.55 and ctx["sections"]:
        params["unit"] = str(rng.choice(ctx["sections"]))  # type: ignore[arg-type]
    elif choice < 0.7:
        params["result"] = rng.choice(["cancelled", "busy", "no_answer"])
    elif choice < 0.85 and ctx["numbers"]:
        params["number"] = rng.choice(ctx["numbers"])  # type: ignore[arg-type]
    else:
        params["wait_min"] = "60"
        params["start"] = "2000-01-01T00:00"
    return "/calls/?" + urlencode(params)


def click(user: User, rng: random.Random, ctx: dict[str, object]) -> Sample:
    roll = rng.random()
    if roll < 0.05:
        kind, path = "healthz (peer)", "/healthz"
    elif roll < 0.40:
        kind, path = "search", search_query(rng, ctx)
    elif roll < 0.55 and user.next_search:
        kind, path = "search, next page", user.next_search
    elif roll < 0.85 and ctx["call_ids"]:
        kind, path = "call detail", f"/calls/{rng.choice(ctx['call_ids'])}/"  # type: ignore[arg-type]
    elif ctx.get("dashboard"):
        kind, path = "dashboard", str(ctx["dashboard"])
    else:
        kind, path = "search", search_query(rng, ctx)
    # The search page is loaded whole once; filter changes and page links then fetch only
    # the result table (htmx), as in the browser.
    partial = kind == "search, next page" or (kind == "search" and rng.random() < 0.7)
    status, page, ms = user.request("GET", path, htmx=partial)
    if kind.startswith("search"):
        found = re.search(r'rel="next" href="([^"]+)"', page)
        user.next_search = found.group(1).replace("&amp;", "&") if found else ""
    return Sample(kind, ms, status)


def run_load(
    users: list[User], ctx: dict[str, object], seconds: float, think: float
) -> list[Sample]:
    samples: list[Sample] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(user: User, seed: int) -> None:
        rng = random.Random(seed)
        time.sleep(rng.random() * max(think, 0.2))  # users do not click in step
        while time.monotonic() < stop:
            sample = click(user, rng, ctx)
            with lock:
                samples.append(sample)
            if think:
                time.sleep(rng.expovariate(1 / think))

    threads = [threading.Thread(target=worker, args=(u, i)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def solo(user: User, ctx: dict[str, object], server_pid: int, count: int = 40) -> dict:
    """One user, one request at a time: per page, the latency without queueing and the
    server CPU it costs (the server time when nothing waits in front of the request)."""
    rng = random.Random(11)
    pages = {
        "search": lambda: search_query(rng, ctx),
        "call detail": lambda: f"/calls/{rng.choice(ctx['call_ids'])}/",  # type: ignore[arg-type]
        "healthz (peer)": lambda: "/healthz",
    }
    if ctx.get("dashboard"):
        pages["dashboard"] = lambda: str(ctx["dashboard"])
    result = {}
    for kind, make in pages.items():
        times = []
        before = cpu_seconds(server_pid)
        for _ in range(count):
            _status, _page, ms = user.request("GET", make())
            times.append(ms)
        cpu = (cpu_seconds(server_pid) - before) * 1000 / count
        result[kind] = {"p50": statistics.median(times), "p95": percentile(times, 0.95),
                        "cpu": cpu}  # fmt: skip
    return result


# -- orchestration -----------------------------------------------------------------------


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by the server's process tree (the gunicorn
    master, its workers and the background jobs): a figure the machine's other load does not
    inflate the way it inflates latency."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
    return total / ticks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def access_log(db: str) -> Path:
    return OUT / f"console-{db}{SUFFIX}-access.log"


def environment(db: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CALLSCOPE_DATA_DIR"] = str(OUT / f"console-{db}{SUFFIX}")
    env["CALLSCOPE_LOG_LEVEL"] = "warning"
    env["CALLSCOPE_ACCESS_LOG"] = str(access_log(db))
    env.pop("CALLSCOPE_DATABASE_URL", None)
    if db == "postgres":
        env["CALLSCOPE_DATABASE_URL"] = f"{PG_SERVER}/{PG_DB}{SUFFIX.replace('-', '_')}"
    return env


def ensure_postgres_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        name = PG_DB + SUFFIX.replace("-", "_")
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{name}"')


def call_count(env: dict[str, str]) -> int:
    code = ("import django; django.setup(); from callscope.store.models import Call; "
            "print(Call.objects.count())")  # fmt: skip
    env = {**env, "DJANGO_SETTINGS_MODULE": "callscope.settings"}
    subprocess.run([str(CALLSCOPE), "migrate", "-v", "0"], env=env, check=True)
    result = subprocess.run([str(PYTHON), "-c", code], env=env, check=True,
                            capture_output=True, text=True)  # fmt: skip
    return int(result.stdout.strip().splitlines()[-1])


def fill(env: dict[str, str], calls_per_year: int) -> None:
    if call_count(env) > 0:
        return
    print(f"  callscope synth --years 1 --calls-per-year {calls_per_year} (once; reused by "
          "later runs)", flush=True)  # fmt: skip
    subprocess.run(
        [str(CALLSCOPE), "synth", "--years", "1", "--calls-per-year", str(calls_per_year)],
        env=env, check=True,
    )  # fmt: skip
    if "CALLSCOPE_DATABASE_URL" in env:
        # what autovacuum does some time after a bulk load: without statistics the planner
        # guesses, e.g. walks the whole time index for a phone number's pseudonym
        import psycopg

        with psycopg.connect(env["CALLSCOPE_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ANALYZE")


def prepared(env: dict[str, str], users: int) -> dict[str, object]:
    env = {**env, "DJANGO_SETTINGS_MODULE": "callscope.settings"}
    result = subprocess.run(
        [str(PYTHON), __file__, "--prepare", str(users)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(CALLSCOPE), "serve", "--bind", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("server did not start")


def dashboard_url(user: User) -> str:
    """The dashboard's address as the menu shows it (empty when there is none yet)."""
    _status, page, _ms = user.request("GET", "/")
    menu = page.split('aria-label="メインメニュー"', 1)[-1].split("</nav>", 1)[0]
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', menu)
    return next((href for href, label in links if "ダッシュボード" in label), "")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: the server's access log names the path only (no query): searches and their next pages
#: are one kind there
SERVER_KINDS = [
    (re.compile(r"^/calls/\d+/$"), "call detail"),
    (re.compile(r"^/calls/$"), "search (all)"),
    (re.compile(r"^/dashboards/"), "dashboard"),
    (re.compile(r"^/healthz$"), "healthz (peer)"),
]
_ACCESS_LINE = re.compile(r'"GET (\S+)" (\d+) \S+ (\d+)$')


def server_times(log: Path, start: int, end: int) -> dict[str, list[float]]:
    """Milliseconds the server spent per request (gunicorn's access log, %(M)s), by page
    kind, for the log's bytes ``start``..``end`` (the measured run)."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read(end - start).decode("utf-8", "replace")
    times: dict[str, list[float]] = {}
    for line in text.splitlines():
        found = _ACCESS_LINE.search(line)
        if found is None:
            continue
        kind = next((k for pattern, k in SERVER_KINDS if pattern.match(found.group(1))), None)
        if kind is not None:
            times.setdefault(kind, []).append(float(found.group(3)))
    return times


def summarise(db: str, samples: list[Sample], seconds: float) -> list[dict[str, object]]:
    rows = []
    for kind in sorted({s.kind for s in samples}):
        mine = [s for s in samples if s.kind == kind]
        times = [s.ms for s in mine]
        rows.append({
            "db": db, "kind": kind, "n": len(mine),
            "errors": sum(1 for s in mine if s.status != 200),
            "p50": statistics.median(times), "p95": percentile(times, 0.95),
            "p99": percentile(times, 0.99), "rps": len(mine) / seconds,
        })  # fmt: skip
    return rows


def bench_database(db: str, args: argparse.Namespace) -> tuple[list[dict[str, object]], dict]:
    print(f"== {db}", flush=True)
    if db == "postgres":
        ensure_postgres_database()
    env = environment(db)
    fill(env, args.calls_per_year)
    ctx = prepared(env, args.users)
    port = free_port()
    server = serve(env, port)
    try:
        users = [User(name, "127.0.0.1", port) for name in ctx["users"]]  # type: ignore[attr-defined]
        for user in users:
            user.log_in()
        ctx["dashboard"] = dashboard_url(users[0])
        solo(users[0], ctx, server.pid, count=5)  # warm-up
        ctx["solo"] = solo(users[0], ctx, server.pid)
        run_load(users, ctx, min(10.0, args.seconds), args.think)  # warm-up
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(server.pid)
        log_before = access_log(db).stat().st_size
        samples = run_load(users, ctx, args.seconds, args.think)
        ctx["cpu_ms_per_request"] = (cpu_seconds(server.pid) - cpu_before) * 1000 / len(samples)
        time.sleep(0.5)  # the workers' last access lines
        ctx["server"] = {
            kind: {"n": len(t), "p50": statistics.median(t), "p95": percentile(t, 0.95),
                   "p99": percentile(t, 0.99)}
            for kind, t in server_times(access_log(db), log_before,
                                        access_log(db).stat().st_size).items()
        }  # fmt: skip
        ctx["load"] = (load_before, os.getloadavg()[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
    return summarise(db, samples, args.seconds), ctx


def report(
    rows: list[dict[str, object]], contexts: dict[str, dict], args: argparse.Namespace
) -> str:
    lines = [
        f"{args.users} users, {args.seconds:.0f} s, think time {args.think} s (exponential), "
        f"`callscope serve` defaults (gunicorn gthread), client on the same machine.",
        "",
        "| database | calls | page | requests | errors | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        calls = contexts[str(row["db"])]["calls"]
        lines.append(
            f"| {row['db']} | {calls:,} | {row['kind']} | {row['n']} | {row['errors']} | "
            f"{row['p50']:.0f} | {row['p95']:.0f} | {row['p99']:.0f} | {row['rps']:.1f} |"
        )
    lines += ["", "Server time under the same load (gunicorn's access log, request read to "
              "response written; searches and next pages together):", ""]  # fmt: skip
    lines.append("| database | page | requests | p50 ms | p95 ms | p99 ms |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for db, ctx in contexts.items():
        for kind, row in sorted((ctx.get("server") or {}).items()):
            lines.append(
                f"| {db} | {kind} | {row['n']} | {row['p50']:.0f} | {row['p95']:.0f} | "
                f"{row['p99']:.0f} |"
            )
    lines += ["", "One user, one request at a time (no queueing): latency and server CPU:", ""]
    lines.append("| database | page | p50 ms | p95 ms | server CPU ms |")
    lines.append("|---|---|---:|---:|---:|")
    for db, ctx in contexts.items():
        for kind, row in (ctx.get("solo") or {}).items():
            lines.append(
                f"| {db} | {kind} | {row['p50']:.0f} | {row['p95']:.0f} | {row['cpu']:.0f} |"
            )
    lines += ["", "Server CPU per request (gunicorn workers and background jobs, all pages):"]
    lines.append("")
    for db, ctx in contexts.items():
        load = ctx.get("load") or (0.0, 0.0)
        lines.append(
            f"- {db}: {ctx.get('cpu_ms_per_request', 0.0):.1f} ms; machine load average "
            f"{load[0]:.1f} at the start, {load[1]:.1f} at the end ({os.cpu_count()} cores)"
        )
    lines += [
        "",
        "Keyset against OFFSET for a page deep in the newest-first list (database only):",
        "",
    ]
    for db, ctx in contexts.items():
        deep = ctx.get("deep") or {}
        if deep:
            lines.append(
                f"- {db}: page {deep['page']:,}: keyset {deep['keyset_ms']:.1f} ms, OFFSET "
                f"{deep['offset_ms']:.1f} ms "
                f"({deep['offset_ms'] / max(deep['keyset_ms'], 0.01):.0f}x)"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--calls-per-year", type=int, default=5_000_000)
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        sys.path.insert(0, str(REPO / "src"))
        print(json.dumps(prepare_in_django(args.prepare)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    global SUFFIX  # noqa: PLW0603  (one data set per size)
    SUFFIX = "" if args.calls_per_year == 5_000_000 else f"-{args.calls_per_year}"
    rows: list[dict[str, object]] = []
    contexts = {}
    for db in args.db.split(","):
        found, ctx = bench_database(db, args)
        rows += found
        contexts[db] = ctx
    text = report(rows, contexts, args)
    print(text)
    worst = max((float(r["p95"]) for r in rows if r["kind"] != "healthz (peer)"), default=0.0)
    server = max(
        (float(row["p95"]) for ctx in contexts.values()
         for kind, row in (ctx.get("server") or {}).items() if kind != "healthz (peer)"),
        default=0.0,
    )  # fmt: skip
    print(f"\nworst p95 at the client {worst:.0f} ms, in the server {server:.0f} ms "
          f"(goal < {GOAL_MS:.0f} ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
