#!/usr/bin/env python3
"""Latency tails under concurrent writes: the percentiles of GETs at a fixed rate, alone and
while visits are written at a fixed rate beside them, for the worker's household page and, as the
floor this machine sets, `/healthz` (no database, no authentication).

The server is pinned to core 0 (as in `load.py`); both load generators run on core 1. The one
that measures runs at a higher priority than the one that writes (`nice -n -10`, as root), so
that what is measured is the server's latency, not the writing client's share of core 1.

    python3 benches/tail.py --url /tmp/gl-quick/bench_20000.db --rate 500 --visits 290

`--url` is a data set `load.py` made (a SQLite file or a PostgreSQL URL); `GRIDLIGHT_BENCH_BINARY`
picks the binary, as for `load.py`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402

SHOWN = ("p50", "p90", "p95", "p99", "p99.9")


def measured(url, seconds, rate, token=None):
    """The latency percentiles (ms) of GETs of `url` at `rate` a second, with 8 connections."""
    cmd = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", "8", "-q", str(rate), "--latency-correction"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    cmd = load.pinned(1, cmd + [url])
    if os.geteuid() == 0:
        cmd = ["nice", "-n", "-10"] + cmd
    r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
    if any(not 200 <= k < 300 for k in codes):
        raise SystemExit(f"{url}: answers {codes}")
    lat = r.get("latencyPercentiles", {})
    return {k: (lat.get(k) or 0.0) * 1000 for k in SHOWN}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the data set: a SQLite file or a PostgreSQL URL made by load.py")
    ap.add_argument("--rate", type=int, default=500, help="GETs a second")
    ap.add_argument("--visits", type=int, default=290, help="visits written a second beside them")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default="/tmp/gl-tail", help="where the visit bodies are written")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    srv = load.Server(args.url)
    try:
        token = srv.login(load.WORKER)
        me = srv.get("/api/v1/me", token)
        grid = srv.get(f"/api/v1/communities/{me['community_id']}/grids", token)["items"][0]["id"]
        targets = [("page", f"{srv.base}/api/v1/households?grid_id={grid}&limit=50", token), ("healthz", f"{srv.base}/healthz", None)]
        bodies = load.visit_bodies(srv, token, os.path.join(args.work, "visits.jsonl"))
        for name, url, tok in targets:
            load.oha(url, 2, 8, token=tok)
            for _ in range(args.rounds):
                alone = measured(url, args.seconds, args.rate, tok)
                bg = load.oha(srv.base + "/api/v1/visits", args.seconds + 2, 16, qps=args.visits, token=token, body_lines=bodies, background=True)
                time.sleep(1)
                loaded = measured(url, args.seconds, args.rate, tok)
                out, _ = bg.communicate()
                visits = load.summarize(json.loads(out))
                if visits["non_2xx_share"] > 0:
                    raise SystemExit(f"visits answered non-2xx: {visits}")
                print(f"{name:8} alone  " + " ".join(f"{k} {alone[k]:.2f}" for k in SHOWN), flush=True)
                print(f"{name:8} writes " + " ".join(f"{k} {loaded[k]:.2f}" for k in SHOWN)
                      + f"  (p99 ×{loaded['p99'] / max(alone['p99'], 1e-9):.2f}; visits {visits['rps']:.0f}/s)", flush=True)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
