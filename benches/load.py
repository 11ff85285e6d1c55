#!/usr/bin/env python3
"""Gridlight benchmark suite.

Measures ratios within one run (absolute numbers drift on a shared 2-core machine): the server is
pinned to core 0 and the load generator (oha) to core 1, every comparison alternates its A and B
runs after a warm-up, and the median of the rounds is reported. Writes benches/results/latest.json
and benches/results/latest.md. See `--help`.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binary under test; GRIDLIGHT_BENCH_BINARY names another (an earlier version's, to compare
# the whole suite's figures before and after a change).
BIN = os.environ.get("GRIDLIGHT_BENCH_BINARY") or os.path.join(ROOT, "target", "release", "gridlight")
# The data key every run seals ID numbers and phones with (required with PostgreSQL; with SQLite
# it keeps the cached data sets openable whichever directory they were made in).
os.environ.setdefault("GRIDLIGHT_DATA_KEY", "YmVuY2htYXJrLWRhdGEta2V5LWJlbmNobWFyay0wMTI=")
SEED = 1
WORKER = f"syn{SEED}.g0"
# The sync measures use grids no other measure writes to: the initial sync's grid takes only its
# (idempotent) 90-day history, the pushes' visits go to another grid, so a cached data set
# measures the same grid again and again.
SYNC_WORKER = f"syn{SEED}.g2"
PUSH_WORKER = f"syn{SEED}.g1"
SECRETARY = f"syn{SEED}.c0.sec"
# The officer of the synthetic set's first district (src/seed/synthetic.rs).
DISTRICT_OFFICER = f"syn{SEED}.d370102"
PASSWORD = "gridlight-synthetic"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pinned(core, cmd):
    return ["taskset", "-c", str(core)] + cmd if shutil.which("taskset") else cmd


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a throwaway cluster with default durability settings.


class Postgres:
    def __init__(self, work):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        self.bin = out.stdout.strip() if out.returncode == 0 else ""
        if not os.path.exists(os.path.join(self.bin, "initdb")):
            cands = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.exists(f"/usr/lib/postgresql/{d}/bin/initdb"))
            self.bin = f"/usr/lib/postgresql/{cands[-1]}/bin"
        self.dir = os.path.join(work, "pg")
        self.port = free_port()
        self.as_pg = os.geteuid() == 0

    def run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bin, tool), *args]
        if self.as_pg:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self):
        data = os.path.join(self.dir, "data")
        if not os.path.exists(data):
            os.makedirs(self.dir, exist_ok=True)
            if self.as_pg:
                subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
            self.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
        conf = os.path.join(data, "postgresql.auto.conf")
        with open(conf, "w") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "max_connections = 200\nshared_buffers = '1GB'\nwork_mem = '32MB'\nmaintenance_work_mem = '256MB'\n"
                    # Loading millions of rows: checkpoints every few GB, not every 1 GB of WAL.
                    "max_wal_size = '8GB'\ncheckpoint_timeout = '30min'\n")
        if self.as_pg:
            subprocess.run(["chown", "postgres:postgres", conf], check=True)
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "120", "start")

    def stop(self):
        self.run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "fast", "-w", "stop", check=False)

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql):
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                              check=True, capture_output=True, text=True).stdout

    def exists(self, db):
        out = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
        return "1" in out


# ---------------------------------------------------------------------------------------------
# The server and the load generator.


class Server:
    def __init__(self, url, extra_env=None, binary=None):
        self.port = free_port()
        env = dict(os.environ)
        env.update({
            "GRIDLIGHT_DATABASE_URL": url,
            "GRIDLIGHT_BIND": f"127.0.0.1:{self.port}",
            "GRIDLIGHT_JWT_SECRET": "benchmark-secret-benchmark-secret-0123456789",
            "GRIDLIGHT_RECONCILE_INTERVAL_SECS": "0",
            "GRIDLIGHT_ACCESS_TOKEN_TTL": "86400",
            "GRIDLIGHT_LOG": "warn",
            "GRIDLIGHT_WORKERS": "1",
            "GRIDLIGHT_DB_POOL_SIZE": "8",
        })
        env.update(extra_env or {})
        self.proc = subprocess.Popen(pinned(0, [binary or BIN, "serve"]), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.base = f"http://127.0.0.1:{self.port}"
        # Generous: `serve` first applies pending migrations, which on a cached 3M set may build
        # an index for minutes.
        deadline = time.time() + 1200
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.base + "/readyz", timeout=2).status == 200:
                    self.settled(url)
                    return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready: " + self.proc.stderr.read(4000).decode(errors="replace"))

    def settled(self, url, timeout=1800):
        """Waits until the server has worked out every kept household suggestion (after a seed or
        the migration that brought them, `serve` does so in the background for a while: ~30,000
        households a second here on SQLite, ~5,500 on PostgreSQL), so that what is measured is the
        steady state. A database without them (an earlier version's) is settled at once."""
        sql = "SELECT count(*) FROM household_suggestions WHERE valid_until <= CURRENT_DATE"
        deadline = time.time() + timeout
        started = time.time()
        while time.time() < deadline:
            try:
                if url.startswith("postgres"):
                    out = subprocess.run(["psql", "-X", "-q", "-t", "-A", url, "-c", sql], capture_output=True, text=True, check=True).stdout
                    due = int(out.strip())
                else:
                    with sqlite3.connect(f"file:{url}?mode=ro", uri=True, timeout=30) as c:
                        due = c.execute(sql).fetchone()[0]
            except (subprocess.CalledProcessError, sqlite3.OperationalError) as e:
                if "household_suggestions" in str(e) + str(getattr(e, "stderr", "")):
                    return
                raise
            if due == 0:
                if time.time() - started > 1:
                    log(f"suggestions worked out in {time.time() - started:.0f} s")
                return
            time.sleep(1)
        raise RuntimeError("the server did not work out its kept suggestions in time")

    def login(self, username):
        req = urllib.request.Request(self.base + "/api/v1/auth/login", data=json.dumps({"username": username, "password": PASSWORD}).encode(),
                                     headers={"content-type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=30).read())["access_token"]

    def get(self, path, token):
        req = urllib.request.Request(self.base + path, headers={"authorization": f"Bearer {token}"})
        return json.loads(urllib.request.urlopen(req, timeout=60).read())

    def post(self, path, token, body):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=120).read())

    def latency_sum(self, method, route):
        """Seconds the server spent answering `method route` so far (the latency histogram's
        sum in /metrics): server time, without the client's or the network's."""
        text = urllib.request.urlopen(self.base + "/metrics", timeout=30).read().decode()
        key = f'gridlight_http_request_duration_seconds_sum{{method="{method}",route="{route}"}}'
        for line in text.splitlines():
            if line.startswith(key):
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def oha(url, seconds, conns, qps=None, token=None, body_lines=None, background=False, plain=False):
    """Runs oha against `url`; it asks for gzip as browsers do unless `plain`."""
    cmd = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(conns)]
    if plain:
        cmd.append("--disable-compression")
    if qps:
        cmd += ["-q", str(qps), "--latency-correction"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if body_lines:
        cmd += ["-m", "POST", "-T", "application/json", "-Z", body_lines]
    cmd.append(url)
    cmd = pinned(1, cmd)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return summarize(json.loads(out))


def status_of(url, token):
    """The status a GET of `url` answers (an older binary refuses what it does not know)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"authorization": f"Bearer {token}"}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def summarize(r):
    s = r["summary"]
    codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
    total = sum(codes.values()) or 1
    lat = r.get("latencyPercentiles", {})
    return {
        "rps": s.get("requestsPerSec") or 0.0,
        "p50_ms": (lat.get("p50") or 0.0) * 1000,
        "p99_ms": (lat.get("p99") or 0.0) * 1000,
        "non_2xx_share": sum(v for k, v in codes.items() if not 200 <= k < 300) / total,
        "errors": sum(r.get("errorDistribution", {}).values()),
        "requests": total,
    }


def alternate(a, b, rounds):
    """Runs a() and b() alternately `rounds` times, a first in even rounds and b first in odd
    ones (what runs second runs on a warmer, more written-to machine); returns the medians of
    their results."""
    ra, rb = [], []
    for i in range(rounds):
        if i % 2 == 0:
            ra.append(a())
            rb.append(b())
        else:
            rb.append(b())
            ra.append(a())
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    pick = lambda xs: {k: med(xs, k) for k in xs[0]}
    return pick(ra), pick(rb)


# ---------------------------------------------------------------------------------------------


def build_dataset(url, n, label, binary=None):
    log(f"seeding {label}: {n} households")
    started = time.time()
    subprocess.run([binary or BIN, "--database-url", url, "--log", "warn", "seed", "synthetic", "--households", str(n), "--seed", str(SEED)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - started


def visit_bodies(server, token, path):
    page = server.get("/api/v1/households?limit=500", token)
    ids = [h["id"] for h in page["items"]]
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    with open(path, "w") as f:
        for i in range(5000):
            f.write(json.dumps({"household_id": ids[i % len(ids)], "kind": "service", "visited_at": now.isoformat(), "notes": f"bench {i}"}) + "\n")
    return path


def raw_sql_seconds(backend, url, pg, sql, repeat=5):
    times = []
    for _ in range(repeat):
        started = time.time()
        if backend == "sqlite":
            con = sqlite3.connect(url)
            con.execute(sql).fetchall()
            con.close()
        else:
            pg.psql(url, sql)
        times.append(time.time() - started)
    return statistics.median(times)


RECONCILE_SQL = {
    # The work reconcile does for households without their open tasks, as one statement: one
    # open task per active template of the household's tag, due one interval after the last
    # visit of its kind (else the tag date), never before the tag date, for the grid's primary.
    "sqlite": """
INSERT INTO tasks (id, household_id, template_id, community_id, grid_id, tag, kind, assignee_id, due_on, status, version, created_at, updated_at)
SELECT lower(hex(randomblob(16))), h.id, t.id, h.community_id, h.grid_id, h.tag, t.kind, ga.user_id,
       max(date(h.tag_set_at), date(coalesce((SELECT max(v.visited_at) FROM visits v WHERE v.household_id = h.id AND v.kind = t.kind), h.tag_set_at), '+' || t.interval_days || ' days')),
       'open', 1, datetime('now'), datetime('now')
FROM households h
JOIN service_templates t ON t.community_id = h.community_id AND t.tag = h.tag AND t.active
LEFT JOIN grid_assignments ga ON ga.grid_id = h.grid_id AND ga.is_primary
WHERE h.removed_at IS NULL""",
    "postgres": """
INSERT INTO tasks (id, household_id, template_id, community_id, grid_id, tag, kind, assignee_id, due_on, status, version, created_at, updated_at)
SELECT gen_random_uuid()::text, h.id, t.id, h.community_id, h.grid_id, h.tag, t.kind, ga.user_id,
       greatest(h.tag_set_at::date, coalesce((SELECT max(v.visited_at) FROM visits v WHERE v.household_id = h.id AND v.kind = t.kind), h.tag_set_at)::date + t.interval_days),
       'open', 1, now(), now()
FROM households h
JOIN service_templates t ON t.community_id = h.community_id AND t.tag = h.tag AND t.active
LEFT JOIN grid_assignments ga ON ga.grid_id = h.grid_id AND ga.is_primary
WHERE h.removed_at IS NULL""",
}


def overview_sql(community, tz="Asia/Shanghai"):
    """The overview dashboard's aggregates for one community (or a list of them: a street's or
    a district's roll-up) as plain SQL (the statements src/store/stats.rs builds, with the values
    bound): what the database alone must do."""
    from zoneinfo import ZoneInfo
    zone = ZoneInfo(tz)
    now = datetime.datetime.now(zone)
    today = now.date()

    def start_of(day):
        local = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
        return local.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    d = today.isoformat()
    f, r, u = start_of(today - datetime.timedelta(days=29)), start_of(today - datetime.timedelta(days=6)), start_of(today + datetime.timedelta(days=1))
    c = ", ".join(f"'{x}'" for x in ([community] if isinstance(community, str) else community))
    stmts = [
        f"SELECT grid_id, tag, count(*), sum(CASE WHEN tag_review_due_on <= '{d}' THEN 1 ELSE 0 END) FROM households WHERE removed_at IS NULL AND community_id IN ({c}) GROUP BY grid_id, tag",
        f"SELECT grid_id, tag, count(*), sum(CASE WHEN due_on < '{d}' THEN 1 ELSE 0 END) FROM tasks WHERE status = 'open' AND community_id IN ({c}) GROUP BY grid_id, tag",
        f"SELECT grid_id, kind, count(*), sum(CASE WHEN visited_at >= '{r}' THEN 1 ELSE 0 END) FROM visits WHERE community_id IN ({c}) AND visited_at >= '{f}' AND visited_at < '{u}' GROUP BY grid_id, kind",
        f"SELECT h.grid_id, count(*) FROM tag_changes t JOIN households h ON h.id = t.household_id WHERE t.status = 'pending' AND h.removed_at IS NULL AND h.community_id IN ({c}) GROUP BY h.grid_id",
        f"SELECT DISTINCT interval_days FROM service_templates WHERE community_id IN ({c}) AND kind = 'home_visit' AND active",
    ]
    for n in (7, 30, 90):
        cutoff = start_of(today - datetime.timedelta(days=n))
        stmts.append(
            "SELECT h.grid_id, h.tag, count(*), sum(CASE WHEN EXISTS (SELECT 1 FROM visits v WHERE v.household_id = h.id AND v.kind = 'home_visit' "
            f"AND v.visited_at >= '{cutoff}') THEN 1 ELSE 0 END) FROM households h JOIN service_templates t ON t.community_id = h.community_id AND t.tag = h.tag "
            f"WHERE t.kind = 'home_visit' AND t.active AND t.interval_days = {n} AND h.removed_at IS NULL AND h.community_id IN ({c}) GROUP BY h.grid_id, h.tag")
    return stmts


def sql_batch_ms(backend, db, pg, stmts, repeat=7):
    """Median over `repeat` runs of the summed execution time of `stmts`: measured in-process
    by SQLite's own library, and by psql's \\timing (server round trips, no process start-up)
    for PostgreSQL."""
    import re
    runs = []
    for _ in range(repeat):
        if backend == "sqlite":
            con = sqlite3.connect(db)
            total = 0.0
            for sql in stmts:
                t = time.perf_counter()
                con.execute(sql).fetchall()
                total += time.perf_counter() - t
            con.close()
            runs.append(total * 1000)
        else:
            script = "\\timing on\n" + "".join(sql + ";\n" for sql in stmts)
            out = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", db],
                                 input=script, capture_output=True, text=True, check=True).stdout
            runs.append(sum(float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out)))
    return statistics.median(runs)


def copy_db(backend, src, dst, pg):
    if backend == "sqlite":
        if os.path.exists(dst):
            os.remove(dst)
        con = sqlite3.connect(src)
        out = sqlite3.connect(dst)
        con.backup(out)
        out.close()
        con.close()
    else:
        pg.psql("postgres", f'DROP DATABASE IF EXISTS "{dst}"')
        pg.psql("postgres", f'CREATE DATABASE "{dst}" TEMPLATE "{src}"')


def delete_open_tasks(backend, db, pg):
    if backend == "sqlite":
        con = sqlite3.connect(db)
        con.execute("DELETE FROM tasks WHERE status = 'open'")
        con.commit()
        con.close()
    else:
        pg.psql(db, "DELETE FROM tasks WHERE status = 'open'")


def reconcile_vs_sql(backend, db_for, url_for, pg, base):
    """`gridlight tasks reconcile` rebuilding every open task of a data set, against the same
    rows inserted by one INSERT … SELECT in the database's own client."""
    a, b = base + "_rec_a", base + "_rec_b"
    url_a, url_b = url_for(a), url_for(b)
    results = {"reconcile_s": [], "sql_s": []}
    for _ in range(2):
        copy_db(backend, db_for(base) if backend == "sqlite" else base, url_a if backend == "sqlite" else a, pg)
        delete_open_tasks(backend, url_a if backend == "sqlite" else a, pg)
        started = time.time()
        subprocess.run(pinned(0, [BIN, "--database-url", url_a, "--log", "warn", "tasks", "reconcile"]), check=True, stdout=subprocess.DEVNULL)
        results["reconcile_s"].append(time.time() - started)
        copy_db(backend, db_for(base) if backend == "sqlite" else base, url_b if backend == "sqlite" else b, pg)
        delete_open_tasks(backend, url_b if backend == "sqlite" else b, pg)
        results["sql_s"].append(raw_sql_seconds(backend, url_b if backend == "sqlite" else b, pg, RECONCILE_SQL[backend], repeat=1))
    for db in (a, b):
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                p = db_for(db) + suffix
                if os.path.exists(p):
                    os.remove(p)
        else:
            pg.psql("postgres", f'DROP DATABASE IF EXISTS "{db}"')
    r = {k: statistics.median(v) for k, v in results.items()}
    r["ratio"] = r["reconcile_s"] / r["sql_s"] if r["sql_s"] else None
    return r


def bench_backend(backend, sizes, args, work, pg):
    res = {"seed_seconds": {}}
    if backend == "sqlite":
        db_for = lambda name: os.path.join(work, f"{name}.db")
        url_for = db_for
    else:
        db_for = lambda name: name
        url_for = pg.url
    names = {n: f"bench_{n}" for n in sizes}
    # The sync measures use the largest set only.
    wanted = {sizes[-1]: names[sizes[-1]]} if args.only in ("sync", "district", "large") else names
    for n, name in wanted.items():
        present = os.path.exists(db_for(name)) if backend == "sqlite" else pg.exists(name)
        if present and not args.fresh:
            continue
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db_for(name) + suffix):
                    os.remove(db_for(name) + suffix)
        else:
            pg.psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')
            pg.psql("postgres", f'CREATE DATABASE "{name}"')
        res["seed_seconds"][n] = build_dataset(url_for(name), n, f"{backend} {n}")

    if args.only in ("sync", "district", "large"):
        largest = names[sizes[-1]]
        if args.only in ("district", "large"):
            srv = Server(url_for(largest))
            try:
                res.update(district_bench(srv, backend, db_for(largest) if backend == "sqlite" else largest, pg, args.seconds))
            finally:
                srv.stop()
        if args.only in ("sync", "large"):
            res["sync"] = sync_bench(url_for(largest), args)
        return res
    d = args.seconds
    small, mid = sizes[0], sizes[min(1, len(sizes) - 1)]
    # 1–2: throughput ratios on the middle data set.
    srv = Server(url_for(names[mid]))
    try:
        token = srv.login(WORKER)
        grid = srv.get("/api/v1/me", token)
        grids = srv.get(f"/api/v1/communities/{grid['community_id']}/grids", token)["items"]
        page_url = f"{srv.base}/api/v1/households?grid_id={grids[0]['id']}&limit=50"
        log(f"{backend}: warm-up")
        oha(page_url, 3, 16, token=token)
        oha(srv.base + "/healthz", 2, 16)
        log(f"{backend}: households page vs healthz")
        page, health = alternate(lambda: oha(page_url, d, 16, token=token), lambda: oha(srv.base + "/healthz", d, 16), args.rounds)
        res["households_page"], res["healthz"] = page, health
        res["page_vs_healthz"] = page["rps"] / health["rps"]
        log(f"{backend}: households page, view=summary, vs healthz")
        summary, health3 = alternate(lambda: oha(page_url + "&view=summary", d, 16, token=token), lambda: oha(srv.base + "/healthz", d, 16), args.rounds)
        res["summary_page"] = summary
        res["summary_vs_healthz"] = summary["rps"] / health3["rps"]
        log(f"{backend}: /me vs healthz")
        me, health2 = alternate(lambda: oha(srv.base + "/api/v1/me", d, 16, token=token), lambda: oha(srv.base + "/healthz", d, 16), args.rounds)
        res["me"] = me
        res["me_vs_healthz"] = me["rps"] / health2["rps"]
        # 4: visits with 32 concurrent clients.
        bodies = visit_bodies(srv, token, os.path.join(work, f"visits-{backend}.jsonl"))
        log(f"{backend}: POST /visits, 32 clients")
        visits = oha(srv.base + "/api/v1/visits", d, 32, token=token, body_lines=bodies)
        res["visits"] = visits
        res["visits_vs_page"] = visits["rps"] / page["rps"]
        # 5: page p99 alone vs while visits are written at half their maximum rate.
        rate = max(1, int(page["rps"] * 0.3))
        half = max(1, int(visits["rps"] / 2))
        log(f"{backend}: page p99 at {rate}/s alone vs with visits at {half}/s")
        alone_runs, loaded_runs = [], []
        for _ in range(args.rounds):
            alone_runs.append(oha(page_url, d, 8, qps=rate, token=token))
            bg = oha(srv.base + "/api/v1/visits", d + 2, 16, qps=half, token=token, body_lines=bodies, background=True)
            time.sleep(1)
            loaded_runs.append(oha(page_url, d, 8, qps=rate, token=token))
            out, _ = bg.communicate()
        res["page_alone_p99_ms"] = statistics.median(r["p99_ms"] for r in alone_runs)
        res["page_under_writes_p99_ms"] = statistics.median(r["p99_ms"] for r in loaded_runs)
        res["reads_under_writes_p99_ratio"] = res["page_under_writes_p99_ms"] / max(res["page_alone_p99_ms"], 1e-9)
        # 6: dashboard vs the same SQL in the database's client.
        sec = srv.login(SECRETARY)
        community = srv.get("/api/v1/me", sec)["community_id"]
        overview_url = f"{srv.base}/api/v1/stats/overview?community_id={community}"
        try:
            srv.get(f"/api/v1/stats/overview?community_id={community}", sec)
            dash = oha(overview_url, d, 1, token=sec)
            res["overview"] = dash
            target = db_for(names[mid]) if backend == "sqlite" else names[mid]
            res["overview_sql_ms"] = sql_batch_ms(backend, target, pg, overview_sql(community))
            res["overview_vs_sql"] = dash["p50_ms"] / max(res["overview_sql_ms"], 1e-9)
        except Exception as e:  # the dashboard is optional for older builds
            res["overview"] = {"error": str(e)}
        # 7: a district's roll-up (issue 20).
        res.update(district_bench(srv, backend, db_for(names[mid]) if backend == "sqlite" else names[mid], pg, d))
    finally:
        srv.stop()
    # 3: page latency at a fixed rate below saturation across data set sizes.
    res["scale"] = {}
    rate = max(1, int(res["households_page"]["rps"] * 0.3))
    for n in sizes:
        s = Server(url_for(names[n]))
        try:
            t = s.login(WORKER)
            me = s.get("/api/v1/me", t)
            g = s.get(f"/api/v1/communities/{me['community_id']}/grids", t)["items"][0]["id"]
            u = f"{s.base}/api/v1/households?grid_id={g}&limit=50"
            oha(u, 2, 8, token=t)
            runs = [oha(u, d, 8, qps=rate, token=t) for _ in range(args.rounds)]
            res["scale"][n] = {"p50_ms": statistics.median(r["p50_ms"] for r in runs), "p99_ms": statistics.median(r["p99_ms"] for r in runs), "qps": rate}
        finally:
            s.stop()
    base = res["scale"][small]
    for n in sizes:
        res["scale"][n]["p50_vs_smallest"] = res["scale"][n]["p50_ms"] / max(base["p50_ms"], 1e-9)
        res["scale"][n]["p99_vs_smallest"] = res["scale"][n]["p99_ms"] / max(base["p99_ms"], 1e-9)
    # 7: reconcile vs INSERT … SELECT on the middle data set.
    log(f"{backend}: reconcile vs INSERT … SELECT on {mid}")
    res["reconcile"] = reconcile_vs_sql(backend, db_for, url_for, pg, names[mid])
    # 8: offline sync on the largest data set.
    log(f"{backend}: sync on {sizes[-1]}")
    res["sync"] = sync_bench(url_for(names[sizes[-1]]), args)
    return res


# ---------------------------------------------------------------------------------------------
# Offline sync (docs/sync.md): a grid worker's phone.

SYNC_ROUTE = "/api/v1/sync"
BENCH_NS = uuid.UUID("6f1d2c3a-9b7e-4e1f-8a42-5d0c1b2a3f4e")


def initial_sync(srv, token, limit=500, since=None):
    """A device's initial sync, page by page, as a phone asks for it (gzip accepted); with
    `since`, its deltas from that token until it is up to date. Returns the server's time for it
    (from /metrics), the bytes on the wire, the changes by entity and the `next` to ask for
    deltas with."""
    before = srv.latency_sum("GET", SYNC_ROUTE)
    started = time.perf_counter()
    wire, pages, entities, more = 0, 0, {}, True
    changes = []
    while more:
        path = f"{SYNC_ROUTE}?limit={limit}" + (f"&since={since}" if since else "")
        req = urllib.request.Request(srv.base + path, headers={"authorization": f"Bearer {token}", "accept-encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            gz = r.headers.get("content-encoding") == "gzip"
        wire += len(raw)
        page = json.loads(zlib.decompress(raw, 16 + zlib.MAX_WBITS) if gz else raw)
        pages += 1
        for c in page["changes"]:
            entities[c["entity"]] = entities.get(c["entity"], 0) + 1
        changes.extend(page["changes"])
        since, more = page["next"], page["more"]
    wall = time.perf_counter() - started
    server = srv.latency_sum("GET", SYNC_ROUTE) - before
    return {"server_s": server, "wall_s": wall, "wire_bytes": wire, "pages": pages, "entities": entities, "next": since, "changes": changes}


def visit_history_ops(changes, days=(29, 90)):
    """Visits for the days the synthetic set has no history for (it holds four weeks), in the
    synthetic set's pattern, so that the grid holds a full 90-day sync window: red households a
    call most days and a home visit a week, yellow a call a week and a visit a month, green a
    visit now and then. Ids are derived from the household and day: pushing them again is a
    duplicate, so a cached data set is topped up once."""
    import random
    now = datetime.datetime.now(datetime.timezone.utc)
    ops = []
    for c in changes:
        if c["entity"] != "household" or c["op"] != "upsert":
            continue
        h = c["data"]
        rng = random.Random(h["id"])
        plan = []
        for d in range(days[0], days[1]):
            if h["tag"] == "red":
                if rng.random() < 0.8:
                    plan.append((d, "phone_call"))
                if d % 7 == 3 and rng.random() < 0.9:
                    plan.append((d, "home_visit"))
            elif h["tag"] == "yellow":
                if d % 7 == 3 and rng.random() < 0.85:
                    plan.append((d, "phone_call"))
                if d % 30 == 10 and rng.random() < 0.8:
                    plan.append((d, "home_visit"))
            elif d % 30 == 10 and rng.random() < 0.1:
                plan.append((d, "home_visit"))
        for d, kind in plan:
            at = (now - datetime.timedelta(days=d)).replace(hour=4, minute=rng.randrange(60), second=0, microsecond=0)
            vid = str(uuid.uuid5(BENCH_NS, f"{h['id']}-{d}-{kind}"))
            ops.append({"op_id": f"bench-{vid}", "kind": "visit.record",
                        "body": {"id": vid, "household_id": h["id"], "kind": kind, "visited_at": at.isoformat(), "notes": "例行服务，情况正常。"}})
    return ops


def push_ops(srv, token, ops):
    statuses = {}
    for i in range(0, len(ops), 500):
        res = srv.post("/api/v1/sync/push", token, {"operations": ops[i:i + 500]})
        for r in res["results"]:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return statuses


def hundred_visits(households, tag):
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    return [{"id": str(uuid.uuid4()), "household_id": households[i % len(households)], "kind": "phone_call",
             "visited_at": now.isoformat(), "notes": f"bench {tag} {i}"} for i in range(100)]


def push_vs_single(srv, token, households, rounds):
    """100 visits in one push against the same 100 as single POST /visits one after the other,
    on one kept-alive connection each (a phone's), alternating; medians of wall time."""
    import http.client
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def one_push():
        ops = [{"op_id": f"bench-{v['id']}", "kind": "visit.record", "body": v} for v in hundred_visits(households, "push")]
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        started = time.perf_counter()
        conn.request("POST", "/api/v1/sync/push", body=json.dumps({"operations": ops}), headers=headers)
        r = conn.getresponse()
        body = json.loads(r.read())
        took = time.perf_counter() - started
        conn.close()
        assert r.status == 200 and all(x["status"] == "applied" for x in body["results"]), body
        return {"seconds": took}

    def singles():
        visits = hundred_visits(households, "single")
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        started = time.perf_counter()
        for v in visits:
            conn.request("POST", "/api/v1/visits", body=json.dumps(v), headers=headers)
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
        took = time.perf_counter() - started
        conn.close()
        return {"seconds": took}

    one_push()
    singles()
    push, single = alternate(one_push, singles, rounds)
    return {"push_s": push["seconds"], "single_s": single["seconds"], "speedup": single["seconds"] / max(push["seconds"], 1e-9)}


def sync_bench(url, args):
    """On the largest data set: a grid worker's initial sync of one 300-household grid, the
    empty delta against /me, and a push of 100 visits against 100 single POST /visits."""
    # The top-up records visits up to 90 days old as the grid's worker.
    srv = Server(url, {"GRIDLIGHT_VISIT_MAX_AGE_DAYS": "100"})
    res = {}
    try:
        token = srv.login(SYNC_WORKER)
        first = initial_sync(srv, token)
        res["topped_up"] = push_ops(srv, token, visit_history_ops(first["changes"]))
        log(f"sync: 90-day visit history of the grid: {res['topped_up']}")
        initial_sync(srv, token)  # warm-up
        runs = [initial_sync(srv, token) for _ in range(args.rounds)]
        res["initial"] = {
            "server_s": statistics.median(r["server_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "wire_bytes": statistics.median(r["wire_bytes"] for r in runs),
            "pages": runs[0]["pages"],
            "entities": runs[0]["entities"],
        }
        res["initial"]["households"] = sum(1 for c in runs[0]["changes"] if c["entity"] == "household" and c["op"] == "upsert")
        # The device catches up before each run of empty deltas: the server's own background
        # work (tasks falling due, events) may write into the grid between runs, and a token
        # that has something new is not an empty delta.
        since = {"next": runs[-1]["next"]}

        def empty_deltas(seconds):
            caught = initial_sync(srv, token, since=since["next"])
            since["next"] = caught["next"]
            if caught["changes"]:
                log(f"sync: caught up with {caught['entities']} written since the last token")
            return oha(f"{srv.base}{SYNC_ROUTE}?since={since['next']}", seconds, 16, token=token)

        me_url = srv.base + "/api/v1/me"
        d = args.seconds
        empty_deltas(2)
        oha(me_url, 2, 16, token=token)
        log("sync: empty delta vs /me")
        delta, me = alternate(lambda: empty_deltas(d), lambda: oha(me_url, d, 16, token=token), args.rounds)
        res["empty_delta"], res["me"] = delta, me
        res["delta_vs_me"] = delta["rps"] / max(me["rps"], 1e-9)
        # Issue 17's yardstick was `/me` when `/me` read the account from the database; with the
        # account cache (issue 23) it reads nothing, so the delta is also set against a request
        # that reads the database once: the worker's own community.
        read_url = f"{srv.base}/api/v1/communities/{srv.get('/api/v1/me', token)['community_id']}"
        oha(read_url, 2, 16, token=token)
        log("sync: empty delta vs one database read (GET /communities/{id})")
        delta2, read = alternate(lambda: empty_deltas(d), lambda: oha(read_url, d, 16, token=token), args.rounds)
        res["one_read"] = read
        res["delta_vs_one_read"] = delta2["rps"] / max(read["rps"], 1e-9)
        log("sync: push 100 visits vs 100 single POST /visits")
        pusher = srv.login(PUSH_WORKER)
        households = [c["id"] for c in initial_sync(srv, pusher)["changes"] if c["entity"] == "household" and c["op"] == "upsert"]
        res["push"] = push_vs_single(srv, pusher, households, max(args.rounds, 5))
    finally:
        srv.stop()
    return res


def district_bench(srv, backend, target, pg, d):
    """A district's roll-up (issue 20) vs its aggregates alone in the database's client: the
    same statements over every community of the district, and the look-ups of the district's
    streets and communities."""
    res = {}
    try:
        officer = srv.login(DISTRICT_OFFICER)
        district = srv.get("/api/v1/me", officer)["district_id"]
        communities = [c["id"] for c in srv.get("/api/v1/communities?limit=500", officer)["items"]]
        url = f"{srv.base}/api/v1/stats/overview?district_id={district}"
        log(f"{backend}: district overview ({len(communities)} communities)")
        srv.get(f"/api/v1/stats/overview?district_id={district}", officer)
        dash = oha(url, d, 1, token=officer)
        res["district_overview"] = dash
        lookups = [
            f"SELECT id FROM streets WHERE district_id = '{district}' ORDER BY code",
            f"SELECT c.id FROM communities c JOIN streets s ON s.id = c.street_id WHERE s.district_id = '{district}'",
            "SELECT id, community_id, code, name FROM grids WHERE community_id IN ("
            + ", ".join(f"'{x}'" for x in communities) + ") ORDER BY code",
        ]
        res["district_overview_sql_ms"] = sql_batch_ms(backend, target, pg, lookups + overview_sql(communities))
        res["district_overview_vs_sql"] = dash["p50_ms"] / max(res["district_overview_sql_ms"], 1e-9)
        res["district_communities"] = len(communities)
    except Exception as e:  # needs a build with streets and districts
        res["district_overview"] = {"error": str(e)}
    return res


def seeded_pair(backend, args, work, pg, what, n, extra_env=None):
    """The same synthetic data set seeded by the binary of an earlier version (`--baseline`) and
    by this one, each served by its own binary: {"before": Server, "after": Server}."""
    servers = {}
    try:
        for label, binary in (("before", args.baseline), ("after", BIN)):
            name = f"{what}_{label}_{n}"
            if backend == "sqlite":
                url = os.path.join(work, f"{name}.db")
                for suffix in ("", "-wal", "-shm", ".data-key"):
                    if os.path.exists(url + suffix):
                        os.remove(url + suffix)
            else:
                pg.psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')
                pg.psql("postgres", f'CREATE DATABASE "{name}"')
                url = pg.url(name)
            build_dataset(url, n, f"{backend} {label} {what}", binary)
            servers[label] = Server(url, extra_env=extra_env, binary=binary)
    except BaseException:
        for srv in servers.values():
            srv.stop()
        raise
    return servers


def cpu_seconds(srv):
    """The server's user + system CPU time: unlike its rate, barely moved by other load on the
    machine."""
    with open(f"/proc/{srv.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(srv, run):
    before = cpu_seconds(srv)
    r = run()
    r["cpu_us_per_request"] = (cpu_seconds(srv) - before) * 1e6 / max(r["requests"], 1)
    return r


def compared(before, after):
    return {"before": before, "after": after, "ratio": after["rps"] / max(before["rps"], 1e-9),
            "cpu_ratio": after["cpu_us_per_request"] / max(before["cpu_us_per_request"], 1e-9)}


def visit_runs(servers, backend, work, what):
    """Per server: its token, a worker's 50-household page, visit bodies, and the server."""
    runs = {}
    for label, srv in servers.items():
        token = srv.login(WORKER)
        me = srv.get("/api/v1/me", token)
        grid = srv.get(f"/api/v1/communities/{me['community_id']}/grids", token)["items"][0]["id"]
        page = f"{srv.base}/api/v1/households?grid_id={grid}&limit=50"
        bodies = visit_bodies(srv, token, os.path.join(work, f"{what}-visits-{backend}-{label}.jsonl"))
        runs[label] = (token, page, bodies, srv)
        oha(page, 2, 16, token=token)
    return runs


def visits_load(run, seconds):
    """POST /visits with 32 clients for `seconds` on one of `visit_runs`, with the server's CPU
    per request."""
    token, _, bodies, srv = run
    return lambda: with_cpu(srv, lambda: oha(srv.base + "/api/v1/visits", seconds, 32, token=token, body_lines=bodies))


def on_pair(backend, args, work, pg, what, measure):
    """Seeds the `--baseline` binary's and this one's data sets (`seeded_pair`), serves each,
    and returns `measure(runs)` (`runs` as `visit_runs` gives them), stopping both servers."""
    servers = seeded_pair(backend, args, work, pg, what, args.sealing_households)
    try:
        return measure(visit_runs(servers, backend, work, what))
    finally:
        for srv in servers.values():
            srv.stop()


def sealing_bench(backend, args, work, pg):
    """The cost of sealing personal fields: the same data set seeded and served by the binary
    before sealing (`--baseline`) and by this one, measured alternately, one at a time on the
    same core: a worker's 50-household page and POST /visits with 32 clients."""
    d = args.seconds

    def measure(runs):
        def page_of(label):
            token, page, _, srv = runs[label]
            return lambda: with_cpu(srv, lambda: oha(page, d, 16, token=token))

        visits_of = lambda label: visits_load(runs[label], d)
        log(f"{backend}: sealing — households page before vs after")
        page_before, page_after = alternate(page_of("before"), page_of("after"), args.rounds)
        log(f"{backend}: sealing — POST /visits before vs after")
        visits_before, visits_after = alternate(visits_of("before"), visits_of("after"), args.rounds)
        return {"page": compared(page_before, page_after), "visits": compared(visits_before, visits_after)}

    return {"households": args.sealing_households, **on_pair(backend, args, work, pg, "sealing", measure)}


def reads_bench(backend, args, work, pg):
    """Reads near the machine's limit (issue 23): on the binary before a change (`--baseline`) and
    on this one, each serving the same data set seeded by itself, alternately: `/healthz`, a grid
    worker's 50-household page with gzip and without, and `/me` — each read's rate against the
    same server's `/healthz` is the issue's yardstick, with the server's CPU per page."""
    d = args.seconds

    def measure(runs):
        def reads_of(label):
            token, page, _, srv = runs[label]

            summary = page + "&view=summary"
            has_summary = status_of(summary, token) == 200

            def run():
                health = oha(srv.base + "/healthz", d, 16)
                gz = with_cpu(srv, lambda: oha(page, d, 16, token=token))
                plain = oha(page, d, 16, token=token, plain=True)
                me = oha(srv.base + "/api/v1/me", d, 16, token=token)
                out = {"healthz": health["rps"], "page_gzip": gz["rps"], "page_plain": plain["rps"], "me": me["rps"],
                       "page_cpu_us": gz["cpu_us_per_request"], "page_p50_ms": gz["p50_ms"]}
                if has_summary:
                    sgz = with_cpu(srv, lambda: oha(summary, d, 16, token=token))
                    out.update(summary_gzip=sgz["rps"], summary_plain=oha(summary, d, 16, token=token, plain=True)["rps"],
                               summary_cpu_us=sgz["cpu_us_per_request"], summary_p50_ms=sgz["p50_ms"])
                return out
            return run

        log(f"{backend}: reads before vs after")
        before, after = alternate(reads_of("before"), reads_of("after"), args.rounds)
        return {"before": before, "after": after}

    return {"households": args.sealing_households, **on_pair(backend, args, work, pg, "reads", measure)}


def reads_markdown(results, meta):
    lines = [f"Run {meta['started']} on {meta['machine']}: before (`{meta['baseline']}`) vs after (`{meta['binary']}`), "
             f"server on core 0, oha on core 1, medians of {meta['rounds']} alternating rounds of {meta['seconds']} s.", "",
             "| measure | backend | before | after | target |", "|---|---|---|---|---|"]
    for backend, r in results.items():
        b, a = r["before"], r["after"]
        lines.append(f"| `/healthz` rps | {backend} | {b['healthz']:.0f} | {a['healthz']:.0f} | |")
        for key, name, target in (("page_gzip", "50-household page, gzip", 0.10), ("page_plain", "50-household page, plain", 0.10), ("me", "`/me`", 0.5)):
            ok = "✅" if a[key] / a["healthz"] >= target else "❌"
            lines.append(f"| {name}: rps (× healthz) | {backend} | {b[key]:.0f} ({b[key] / b['healthz']:.3f}) | {a[key]:.0f} ({a[key] / a['healthz']:.3f}) {ok} | ≥ {target}× |")
        lines.append(f"| page server CPU µs, p50 ms | {backend} | {b['page_cpu_us']:.0f}, {b['page_p50_ms']:.2f} | {a['page_cpu_us']:.0f}, {a['page_p50_ms']:.2f} | |")
        if "summary_gzip" in a:
            cell = lambda r, k: f"{r[k]:.0f} ({r[k] / r['healthz']:.3f})" if k in r else "—"
            for key, name in (("summary_gzip", "50-household page `view=summary`, gzip"), ("summary_plain", "50-household page `view=summary`, plain")):
                ok = "✅" if a[key] / a["healthz"] >= 0.10 else "❌"
                lines.append(f"| {name}: rps (× healthz) | {backend} | {cell(b, key)} | {cell(a, key)} {ok} | ≥ 0.1× |")
            cpu = lambda r: f"{r['summary_cpu_us']:.0f}, {r['summary_p50_ms']:.2f}" if "summary_cpu_us" in r else "—"
            lines.append(f"| summary page server CPU µs, p50 ms | {backend} | {cpu(b)} | {cpu(a)} | |")
    return "\n".join(lines) + "\n"


RECEIVER = os.path.join(ROOT, "benches", "receiver.py")


def events_bench(backend, args, work, pg):
    """Events (issue 21): POST /visits with 32 clients on the binary before events
    (`--baseline`) and on this one, alternately (the cost of writing an event with each visit);
    then, on this one, the same load with a webhook subscription delivering every event to a
    receiver on loopback: delivered events per second against visits per second, the backlog
    when the load stops and how long it takes to drain."""
    n = args.sealing_households
    servers = seeded_pair(backend, args, work, pg, "events", n, extra_env={"GRIDLIGHT_WEBHOOK_ALLOW_PRIVATE": "true"})
    d = args.seconds
    receiver = None
    try:
        runs = visit_runs(servers, backend, work, "events")

        visits_of = lambda label: visits_load(runs[label], d)

        log(f"{backend}: events — POST /visits before vs after")
        visits_before, visits_after = alternate(visits_of("before"), visits_of("after"), args.rounds)

        log(f"{backend}: events — POST /visits with a webhook delivering every event")
        port = free_port()
        receiver = subprocess.Popen(pinned(1, [sys.executable, RECEIVER, str(port)]), stdout=subprocess.DEVNULL)
        stats_url = f"http://127.0.0.1:{port}/stats"
        for _ in range(100):
            try:
                urllib.request.urlopen(stats_url, timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        token, _, bodies, srv = runs["after"]
        secretary = srv.login(SECRETARY)
        srv.post("/api/v1/webhooks", secretary, {"url": f"http://127.0.0.1:{port}/hook", "types": ["visit.recorded"]})
        stats = lambda: json.loads(urllib.request.urlopen(stats_url, timeout=5).read())
        start = stats()
        load = oha(srv.base + "/api/v1/visits", d, 32, token=token, body_lines=bodies)
        at_end = stats()
        ended = time.time()
        visits = int(load["requests"] * (1 - load["non_2xx_share"]))
        drained = None
        while time.time() - ended < 120:
            now = stats()
            if now["count"] - start["count"] >= visits:
                drained = now["last_at"] - ended
                break
            time.sleep(0.1)
        final = stats()
    finally:
        if receiver:
            receiver.terminate()
        for srv in servers.values():
            srv.stop()
    delivered = at_end["count"] - start["count"]
    return {
        "households": n,
        "visits": compared(visits_before, visits_after),
        "delivery": {
            "visits": visits,
            "visits_per_s": load["rps"] * (1 - load["non_2xx_share"]),
            "delivered_during_load": delivered,
            "delivered_per_s": delivered / d,
            "backlog_at_end": visits - delivered,
            "drain_s": drained,
            "delivered_total": final["count"] - start["count"],
            "duplicates": final["duplicates"],
        },
    }


def events_markdown(results, meta):
    lines = [f"Run {meta['started']} on {meta['machine']}: before events (`{meta['baseline']}`) vs with events (`{meta['binary']}`), "
             f"server on core 0, oha and the receiver on core 1, medians of {meta['rounds']} alternating rounds of {meta['seconds']} s.", "",
             "| measure | backend | before (rps) | after (rps) | after / before | server CPU µs per visit, before → after | target |",
             "|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        m = r["visits"]
        mark = "✅" if m["ratio"] >= 0.9 else "❌"
        lines.append(f"| POST /visits, 32 clients ({r['households']:,} households) | {backend} | {m['before']['rps']:.0f} | {m['after']['rps']:.0f} "
                     f"| {m['ratio']:.3f} {mark} | {m['before']['cpu_us_per_request']:.0f} → {m['after']['cpu_us_per_request']:.0f} | overhead ≤ 10 % (≥ 0.90) |")
    lines += ["", "| delivery to one receiver during the visits load | backend | visits/s | delivered/s during the load | backlog at the end | drained after | duplicates | target |",
              "|---|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        m = r["delivery"]
        keeps_up = m["drain_s"] is not None and m["drain_s"] <= 5 and m["delivered_total"] >= m["visits"]
        drain = "never (120 s)" if m["drain_s"] is None else f"{m['drain_s']:.1f} s"
        lines.append(f"| every `visit.recorded` | {backend} | {m['visits_per_s']:.0f} | {m['delivered_per_s']:.0f} | {m['backlog_at_end']} "
                     f"| {drain} {'✅' if keeps_up else '❌'} | {m['duplicates']} | keeps up: all delivered ≤ 5 s after the load stops |")
    return "\n".join(lines) + "\n"


def sealing_markdown(results, meta):
    lines = [f"Run {meta['started']} on {meta['machine']}: sealing off (`{meta['baseline']}`) vs on (`{meta['binary']}`), "
             f"server on core 0, oha on core 1, medians of {meta['rounds']} alternating rounds of {meta['seconds']} s.", "",
             "| measure | backend | before (rps) | after (rps) | after / before | server CPU µs per request, before → after | CPU after / before | target |",
             "|---|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        for key, name in (("page", "worker's 50-household page"), ("visits", "POST /visits, 32 clients")):
            m = r[key]
            mark = "✅" if m["ratio"] >= 0.9 else "❌"
            cpu_mark = "✅" if m["cpu_ratio"] <= 1 / 0.9 else "❌"
            extra = f", non-2xx {m['after']['non_2xx_share']:.1%}" if key == "visits" else ""
            lines.append(f"| {name} ({r['households']:,} households) | {backend} | {m['before']['rps']:.0f} | {m['after']['rps']:.0f}{extra} | {m['ratio']:.3f} {mark} "
                         f"| {m['before']['cpu_us_per_request']:.0f} → {m['after']['cpu_us_per_request']:.0f} | {m['cpu_ratio']:.3f} {cpu_mark} | rate ≥ 0.90, CPU ≤ 1.11 |")
    return "\n".join(lines) + "\n"


TARGETS = [
    ("households page (view=summary) ≥ 0.10× healthz throughput", "summary_vs_healthz", lambda v: v >= 0.10),
    ("/me ≥ 0.5× healthz throughput", "me_vs_healthz", lambda v: v >= 0.5),
    ("visits ≥ 0.25× households-page throughput", "visits_vs_page", lambda v: v >= 0.25),
    ("reads under write load: p99 ≤ 2× alone", "reads_under_writes_p99_ratio", lambda v: v <= 2.0),
]


def markdown(results, meta):
    lines = [f"Run {meta['started']} on {meta['machine']} (server on core 0, oha on core 1; medians of {meta['rounds']} alternating rounds of {meta['seconds']} s).", ""]
    backends = [b for b in ("sqlite", "postgres") if b in results]
    lines.append("| measure | " + " | ".join(backends) + " | target |")
    lines.append("|---|" + "---|" * len(backends) + "---|")

    def row(name, f, target):
        cells = []
        for b in backends:
            try:
                cells.append(f(results[b]))
            except Exception:
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {target} |")

    def ok(v, good):
        return f"{v:.2f} {'✅' if good(v) else '❌'}"

    row("households page (full view) rps / healthz rps", lambda r: f"{r['households_page']['rps']:.0f} / {r['healthz']['rps']:.0f} = {r['page_vs_healthz']:.3f}", "(the target is the summary's)")
    row("households page `view=summary` rps / healthz rps", lambda r: f"{r['summary_page']['rps']:.0f} / {r['healthz']['rps']:.0f} = {ok(r['summary_vs_healthz'], lambda v: v >= 0.10)}", "≥ 0.10")
    row("/me rps / healthz rps", lambda r: f"{r['me']['rps']:.0f} / {r['healthz']['rps']:.0f} = {ok(r['me_vs_healthz'], lambda v: v >= 0.5)}", "≥ 0.5")
    sizes = meta["sizes"]
    for n in sizes:
        last = n == sizes[-1]
        row(f"page p50 / p99 at {n:,} households (ms)", lambda r, n=n, last=last: f"{r['scale'][n]['p50_ms']:.2f} / {r['scale'][n]['p99_ms']:.2f} (p50 ×" + (ok(r['scale'][n]['p50_vs_smallest'], lambda v: v <= 1.5) if last else f"{r['scale'][n]['p50_vs_smallest']:.2f}") + ")", "p50 ≤ 1.5× smallest" if last else "")
    row("POST /visits rps (32 clients), non-2xx share", lambda r: f"{r['visits']['rps']:.0f}, {r['visits']['non_2xx_share']:.1%}", "")
    row("visits rps / page rps", lambda r: f"{r['visits_vs_page']:.2f} " + ("✅" if r["visits_vs_page"] >= 0.25 and r["visits"]["non_2xx_share"] == 0 else "❌"), "≥ 0.25, 0 non-2xx")
    row("page p99 alone → under writes (ms)", lambda r: f"{r['page_alone_p99_ms']:.2f} → {r['page_under_writes_p99_ms']:.2f} = ×{ok(r['reads_under_writes_p99_ratio'], lambda v: v <= 2)}", "≤ 2×")
    row("overview dashboard p50 (ms)", lambda r: f"{r['overview']['p50_ms']:.1f}" + (f" vs SQL {r['overview_sql_ms']:.1f} = ×{ok(r['overview_vs_sql'], lambda v: v <= 1.5)}" if 'overview_vs_sql' in r else ""), "≤ 1.5× SQL")
    row("district overview p50 (ms)", lambda r: f"{r['district_overview']['p50_ms']:.1f}" + (f" vs SQL {r['district_overview_sql_ms']:.1f} = ×{ok(r['district_overview_vs_sql'], lambda v: v <= 1.5)} ({r['district_communities']} communities)" if 'district_overview_vs_sql' in r else ""), "≤ 1.5× SQL")
    row("reconcile / INSERT … SELECT (s)", lambda r: f"{r['reconcile']['reconcile_s']:.1f} / {r['reconcile']['sql_s']:.1f} = ×{ok(r['reconcile']['ratio'], lambda v: v <= 2)}", "≤ 2×")
    row(f"initial sync of one grid ({sizes[-1]:,} set): server s, KB gzip, changes",
        lambda r: f"{r['sync']['initial']['server_s']:.2f} s {'✅' if r['sync']['initial']['server_s'] <= 1 else '❌'}, "
        f"{r['sync']['initial']['wire_bytes'] / 1000:.0f} KB {'✅' if r['sync']['initial']['wire_bytes'] <= 500_000 else '❌'}, "
        f"{sum(r['sync']['initial']['entities'].values()):,} ({r['sync']['initial']['households']} households)", "≤ 1 s, ≤ 500 KB")
    row("empty delta rps / /me rps", lambda r: f"{r['sync']['empty_delta']['rps']:.0f} / {r['sync']['me']['rps']:.0f} = {r['sync']['delta_vs_me']:.2f}", "(`/me` reads no database since issue 23)")
    row("empty delta / one database read (GET /communities/{id})", lambda r: ok(r['sync']['delta_vs_one_read'], lambda v: v >= 0.5), "≥ 0.5")
    row("100 visits: 100 × POST /visits / one push (ms)", lambda r: f"{r['sync']['push']['single_s'] * 1000:.0f} / {r['sync']['push']['push_s'] * 1000:.0f} = ×{ok(r['sync']['push']['speedup'], lambda v: v >= 5)}", "≥ 5×")
    for n in sizes:
        row(f"seed synthetic {n:,} households (s)", lambda r, n=n: f"{r['seed_seconds'][n]:.1f}" if n in r["seed_seconds"] else "(cached)", "")
    return "\n".join(lines) + "\n"


def ready_to_measure():
    """Stops before any data set is built (that can take half an hour) when a tool the
    measurements need is missing: the release binary and the load generator."""
    cargo_bin = os.path.join(os.path.expanduser("~"), ".cargo", "bin")
    os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + cargo_bin
    missing = []
    if not os.access(BIN, os.X_OK):
        missing.append(f"{BIN} (cargo build --release --locked)")
    if not shutil.which("oha"):
        missing.append("oha, the load generator (cargo install oha --locked)")
    if missing:
        sys.exit("load.py: missing " + "; ".join(missing) + " — or run benches/load.sh, which makes both")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small data sets (2k, 20k, 60k) and short runs")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--only", choices=["all", "sync", "district", "large", "sealing", "events", "reads"], default="all",
                    help="run every measure; only the sync ones or only the district roll-up, on the largest set; both of those ('large'); "
                         "or only the sealing, events or reads comparison with an earlier version")
    ap.add_argument("--baseline", default=None, help="with --only sealing, events or reads: the binary of the version before the change")
    ap.add_argument("--sealing-households", type=int, default=20_000, help="with --only sealing, events or reads: the data set size")
    ap.add_argument("--sync-households", type=int, default=None, help="with --only sync, district or large: the data set size (default: the largest)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the data sets even if they exist")
    ap.add_argument("--seconds", type=int, default=None, help="length of one measurement run")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per comparison")
    ap.add_argument("--work", default=os.environ.get("GRIDLIGHT_BENCH_DIR", "/tmp/gridlight-bench"), help="where the data sets live")
    args = ap.parse_args()
    ready_to_measure()
    sizes = [2_000, 20_000, 60_000] if args.quick else [10_000, 300_000, 3_000_000]
    if args.only in ("sync", "district", "large") and args.sync_households:
        sizes = [args.sync_households]
    args.seconds = args.seconds or (3 if args.quick else 8)
    args.rounds = args.rounds or (2 if args.quick else 3)
    os.makedirs(args.work, exist_ok=True)
    meta = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "sizes": sizes,
        "binary": subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    results = {}
    pg = None
    if args.only in ("sealing", "events", "reads"):
        if not args.baseline:
            ap.error(f"--only {args.only} needs --baseline BINARY (the version before the change)")
        meta["baseline"] = subprocess.run([args.baseline, "--version"], capture_output=True, text=True).stdout.strip()
        bench, render = {"sealing": (sealing_bench, sealing_markdown), "events": (events_bench, events_markdown),
                         "reads": (reads_bench, reads_markdown)}[args.only]
        try:
            if args.backend in ("sqlite", "both"):
                results["sqlite"] = bench("sqlite", args, args.work, None)
            if args.backend in ("postgres", "both"):
                pg = Postgres(args.work)
                pg.start()
                results["postgres"] = bench("postgres", args, args.work, pg)
        finally:
            if pg:
                pg.stop()
        md = render(results, meta)
        out_dir = os.path.join(ROOT, "benches", "results")
        with open(os.path.join(out_dir, f"{args.only}-latest.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2, default=str)
        print(md)
        return
    try:
        if args.backend in ("sqlite", "both"):
            results["sqlite"] = bench_backend("sqlite", sizes, args, args.work, None)
        if args.backend in ("postgres", "both"):
            pg = Postgres(args.work)
            pg.start()
            results["postgres"] = bench_backend("postgres", sizes, args, args.work, pg)
    finally:
        if pg:
            pg.stop()
    out_dir = os.path.join(ROOT, "benches", "results")
    os.makedirs(out_dir, exist_ok=True)
    doc = {"meta": meta, "results": results}
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=2, default=str)
    md = markdown(results, meta)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
